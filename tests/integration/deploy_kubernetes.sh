#!/bin/sh
# deploy/kubernetes/ without a cluster. First the manifests
# (tests/lib/k8s_manifests.py check): every file parses as YAML; the
# kustomization lists them all and no namespace is named; kinds; a 1-replica
# broker StatefulSet whose store is on a volumeClaimTemplate at
# /var/lib/softlabel; Service ports = the ports of SOFTLABEL_BROKER_BIND and
# SOFTLABEL_BROKER_STATUS_BIND, selector = broker pods, workers connect to
# it; every SOFTLABEL_* variable is an option in its program's --help; every
# path in env and probes is on a mounted volume, Secret paths are its items
# (mode 0440, each .key with its .pub, allow-list = probe + workers keys);
# probes are `softlabel status` on the status port with the probe key;
# non-root 10001 with fsGroup 10001, no service links, requests, worker
# grace > 10 s, worker name from the pod name. With kubectl installed,
# `kubectl kustomize` must build it.
#
# Then the pods for real, on 127.0.0.1: keys from deploy/make-keys.sh laid
# out as the kubelet mounts a Secret (..data symlinks, mode 0440, as root:
# owned by root, group 10001); the broker started with the StatefulSet's
# command and environment (paths remapped into the test's directory, ports
# to free ones) as uid/gid 10001 when the test runs as root; the readiness
# and liveness probes' exact commands, run the same way, must exit 0; a
# worker with the Deployment's command and environment and the workers key
# labels a small dataset over CURVE to completion (verify passes; the broker
# saw the pod's name); then the broker is killed and the probe must fail.
#
# deploy/kubernetes/split/ (a job split by rows over two broker pods, each
# with a softlabel serve sidecar): the manifests checked the same way
# (tests/lib/k8s_split.py), then both broker pods, their sidecars and
# their workers run (as the test's user) and a student over the two
# sidecars, with the students key, trains the model --store A,B trains.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
K8S=$ROOT/deploy/kubernetes
for v in $(env | sed -n 's/^\(SOFTLABEL_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done

# --- the manifests -----------------------------------------------------------------
$DPY -c 'import yaml' 2>/dev/null ||
    sl_fail "python3-yaml is missing (deploy/deps.sh installs it)"
$DPY "$ROOT/tests/lib/k8s_manifests.py" check "$K8S" "$BIN" ||
    sl_fail "the manifests do not fit together (above)"
if command -v kubectl >/dev/null 2>&1; then
	kubectl kustomize "$K8S" >"$T/all.yaml" 2>"$T/kustomize.err" ||
	    sl_fail "kubectl kustomize: $(cat "$T/kustomize.err")"
	sl_check "$(grep -c '^kind: ' "$T/all.yaml") -eq 5" "kustomize built $(grep -c '^kind: ' "$T/all.yaml") objects, want 5"
	echo "kubectl kustomize builds 5 objects"
else
	echo "kubectl not installed: the kustomize build is not checked"
fi

# --- the pods on this machine -------------------------------------------------------
# uid 10001 must reach the test's files, as the pods' user does theirs.
chmod 755 "$T"
if [ "$(id -u)" -eq 0 ]; then
	AS_POD="setpriv --reuid=10001 --regid=10001 --clear-groups --"
	echo "running the pods' programs as uid/gid 10001; Secret files root:10001 0440"
else
	AS_POD=""
	echo "not root: the pods' programs run as $(id -un), Secret files are its own, mode 0400" \
	    "(the root-owned 0440 case needs root)"
fi
SOFTLABEL_BIN=$BIN "$ROOT/deploy/make-keys.sh" "$T/keys" >"$T/make-keys.out" 2>&1 || sl_fail "make-keys: $(cat "$T/make-keys.out")"
# The pods' own copy of the programs: the build tree may not be open to
# uid 10001 (a clone under /root).
mkdir "$T/podbin"
cp "$BIN/softlabel-broker" "$BIN/softlabel-teacher" "$BIN/softlabel" "$T/podbin/"
chmod 755 "$T/podbin" "$T/podbin"/*
export POD_PATH="$T/podbin:/usr/bin:/bin" AS_POD
P_BIND=$(sl_free_port)
P_STATUS=$(sl_free_port)
for pod in broker worker; do
	$DPY "$ROOT/tests/lib/k8s_manifests.py" pod "$K8S" "$pod" "$T/$pod" "$T/fs" \
	    "$P_BIND" "$P_STATUS" || sl_fail "reading the $pod pod"
	# Claims: writable by the pods' group (fsGroup). Secrets as the kubelet
	# writes them: files in a timestamped directory, ..data a link to it,
	# each top-level name a link through ..data.
	while read -r dir kind; do
		mkdir -p "$dir"
		if [ "$kind" = claim ] && [ -n "$AS_POD" ]; then chown 10001:10001 "$dir"; fi
		[ "$kind" = secret ] || continue
		mkdir "$dir/..2030_01_01_00_00_00.1"
		ln -s ..2030_01_01_00_00_00.1 "$dir/..data"
		while read -r key file mode; do
			case $file in "$dir"/*) rel=${file#"$dir"/} ;; *) continue ;; esac
			mkdir -p "$(dirname "$dir/..data/$rel")"
			cp "$T/keys/$key" "$dir/..data/$rel"
			if [ -n "$AS_POD" ]; then
				chown 0:10001 "$dir/..data/$rel"; chmod "$mode" "$dir/..data/$rel"
			else
				chmod 400 "$dir/..data/$rel"
			fi
			top=${rel%%/*}
			[ -e "$dir/$top" ] || ln -s "..data/$top" "$dir/$top"
		done <"$T/$pod/secret"
	done <"$T/$pod/volumes"
done
BKEYS=$(sed -n 's/^SOFTLABEL_BROKER_CURVE_SECRET=//p' "$T/broker/env")
ls -lL "${BKEYS%/*}" "${BKEYS%/*}/allow"

# The inputs volume: a dataset and a teacher where the ConfigMap says.
DATASET=$(sed -n 's/^SOFTLABEL_BROKER_DATASET=//p' "$T/broker/env")
STORE=$(sed -n 's/^SOFTLABEL_BROKER_STORE=//p' "$T/broker/env")
MODEL=$(sed -n 's/^SOFTLABEL_TEACHER_MODEL=//p' "$T/worker/env")
NAME=$(sed -n 's/^SOFTLABEL_TEACHER_NAME=//p' "$T/worker/env")
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 3000 "$DATASET"
sl_make_teacher "$MODEL"
chmod 644 "$DATASET" "$MODEL"

# --- broker, probes, a worker ----------------------------------------------------------
BLOG=$T/broker.log
sl_bg BPID sh "$T/broker/command.sh" 2>"$BLOG"
sl_wait_log "$BLOG" "softlabel-broker INFO ready bind=tcp://127.0.0.1:$P_BIND " 30
grep -q "ZAP self-check passed" "$BLOG" || sl_fail "the broker does not speak CURVE: $(cat "$BLOG")"
if grep -q unauthenticated "$BLOG"; then sl_fail "the broker warns of plaintext"; fi
for probe in readiness liveness; do
	sh "$T/broker/$probe.sh" >"$T/$probe.out" 2>&1 ||
	    sl_fail "the $probe probe failed on a running broker: $(cat "$T/$probe.out")"
	echo "$probe probe passes: $(head -1 "$T/$probe.out")"
done

sl_bg WPID sh "$T/worker/command.sh" 2>"$T/worker.log"
set +e; sl_wait_pid "$WPID" 120; rc=$?; set -e
sl_check "$rc -eq 0" "the worker exit $rc: $(tail -3 "$T/worker.log")"
if [ -n "$AS_POD" ]; then
	sl_check "$(stat -c %u:%g "$STORE/data.mdb") = 10001:10001" \
	    "the cache was not written by the pod's user: $(stat -c %u:%g "$STORE/data.mdb")"
fi
grep -q "worker softlabel-worker-test-pod joined for teacher $NAME" "$BLOG" ||
    sl_fail "the broker never saw the pod's name: $(grep joined "$BLOG")"
sh "$T/broker/readiness.sh" >"$T/status.out" 2>&1 || sl_fail "status after labeling: $(cat "$T/status.out")"
cat "$T/status.out"

kill -9 "$BPID"
set +e; sl_wait_pid "$BPID" 10; set -e
if sh "$T/broker/readiness.sh" >"$T/dead.out" 2>&1; then
	sl_fail "the readiness probe passed with the broker dead: $(cat "$T/dead.out")"
fi
if sh "$T/broker/liveness.sh" >>"$T/dead.out" 2>&1; then
	sl_fail "the liveness probe passed with the broker dead: $(cat "$T/dead.out")"
fi
echo "probes fail with the broker killed: $(head -1 "$T/dead.out")"

"$BIN/softlabel" verify "$STORE" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
cat "$T/verify"
grep -q "teacher $NAME: 3000 records in 3/3 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "the cache is not complete: $(cat "$T/verify")"
# --- split/: two broker pods by rows, a serve sidecar each, a student over both -------
# The manifests, checked as the ones above (tests/lib/k8s_split.py check).
PYTHONPATH=$ROOT/tests/lib $DPY "$ROOT/tests/lib/k8s_split.py" check "$K8S/split" "$BIN" ||
    sl_fail "the split manifests do not fit together (above)"
if command -v kubectl >/dev/null 2>&1; then
	kubectl kustomize "$K8S/split" >"$T/split.yaml" 2>"$T/kustomize-split.err" ||
	    sl_fail "kubectl kustomize split: $(cat "$T/kustomize-split.err")"
fi
# Then the pods for real, as the user running the test (the Secret files
# plain copies, mode 0400): ordinals 0 and 1 of the StatefulSet (broker and
# serve containers, each with its own ports) and their two worker
# Deployments, on a copy of the manifests whose ranges fit a 3000-row
# dataset (0:1024,1024:, the shard size of the ConfigMap).
S=$T/split
mkdir -p "$S"
cp "$K8S"/split/*.yaml "$S/"
sed -i 's|SOFTLABEL_SPLIT_ROWS: .*|SOFTLABEL_SPLIT_ROWS: "0:1024,1024:"|' "$S/configmap.yaml"
SOFTLABEL_BIN=$BIN "$ROOT/deploy/make-keys.sh" "$S/keys" workers students >"$S/make-keys.out" 2>&1 ||
    sl_fail "make-keys workers students: $(cat "$S/make-keys.out")"
for n in 0 1; do
	eval "PB$n=$(sl_free_port) PS$n=$(sl_free_port) PV$n=$(sl_free_port)"
	eval "pb=\$PB$n ps=\$PS$n pv=\$PV$n"
	for c in broker serve worker; do
		PYTHONPATH=$ROOT/tests/lib $DPY "$ROOT/tests/lib/k8s_split.py" pod "$S" "$n" "$c" \
		    "$S/$c$n" "$S/fs" "$pb" "$ps" "$pv" || sl_fail "reading the split $c pod $n"
		while read -r key file; do
			mkdir -p "$(dirname "$file")"
			cp "$S/keys/$key" "$file"
			chmod 400 "$file"
		done <"$S/$c$n/secret"
	done
done
SDATA=$(sed -n 's/^SOFTLABEL_BROKER_DATASET=//p' "$S/broker0/env")
SMODEL=$(sed -n 's/^SOFTLABEL_TEACHER_MODEL=//p' "$S/worker0/env")
mkdir -p "$(dirname "$SDATA")"
cp "$DATASET" "$SDATA"
cp "$MODEL" "$SMODEL"
for n in 0 1; do
	mkdir -p "$S/fs/pvc/cache-softlabel-split-broker-$n"   # the claim of ordinal n
	sl_bg BP "$S/broker$n/command.sh" 2>"$S/broker$n.log"
	eval "BP$n=$BP"
	eval "pb=\$PB$n"
	sl_wait_log "$S/broker$n.log" "softlabel-broker INFO ready bind=tcp://127.0.0.1:$pb " 30
	sl_bg SV "$S/serve$n/command.sh" 2>"$S/serve$n.log"
	eval "SV$n=$SV"
	eval "pv=\$PV$n"
	sl_wait_log "$S/serve$n.log" "softlabel-serve INFO ready bind=tcp://127.0.0.1:$pv " 30
	grep -q "CURVE on: 1 allowed keys" "$S/serve$n.log" || sl_fail "sidecar $n: $(cat "$S/serve$n.log")"
done
grep -q "this cache labels rows 0:1024 (shards 0..0 of 3)" "$S/broker0.log" || sl_fail "broker 0's range: $(grep rows "$S/broker0.log")"
grep -q "this cache labels rows 1024:3000 (shards 1..2 of 3)" "$S/broker1.log" || sl_fail "broker 1's range: $(grep rows "$S/broker1.log")"
for n in 0 1; do
	sl_bg WP "$S/worker$n/command.sh" 2>"$S/worker$n.log"
	set +e; sl_wait_pid "$WP" 120; rc=$?; set -e
	sl_check "$rc -eq 0" "split worker $n exit $rc: $(tail -3 "$S/worker$n.log")"
done
C0=$S/fs/pvc/cache-softlabel-split-broker-0/cache
C1=$S/fs/pvc/cache-softlabel-split-broker-1/cache
"$BIN/softlabel" verify "$C0,$C1" >"$S/verify" || sl_fail "verify of the two caches: $(cat "$S/verify")"
grep -q "^union: teacher $NAME: 3000 of 3000 rows done in 2 caches" "$S/verify" || sl_fail "union: $(cat "$S/verify")"
# A student on another pod: both sidecars over CURVE with the students
# key, read as one; it trains the model a local --store C0,C1 trains.
strain() { # out store extra...
	_o=$1 _s=$2; shift 2
	"$BIN/softlabel-student" --dataset "$DATASET" --store "$_s" --alpha 1 --temperature 2 \
	    --arch 784-16-10 --epochs 2 --threads 1 "$@" --out "$S/$_o.safetensors" 2>"$S/$_o.log" ||
	    sl_fail "student on $_s: $(tail -2 "$S/$_o.log")"
}
strain remote "tcp://127.0.0.1:$PV0,tcp://127.0.0.1:$PV1" --curve-secret "$S/keys/students.key" \
    --curve-server "$S/keys/broker.pub"
strain local "$C0,$C1"
cmp "$S/remote.safetensors" "$S/local.safetensors" || sl_fail "the student over the sidecars differs from --store C0,C1"
grep -q "the cache covers" "$S/remote.log" && sl_fail "the remote student warned of coverage: $(grep WARN "$S/remote.log")"
grep -q "epoch 1: 3000 rows (3000 with teacher targets" "$S/remote.log" || sl_fail "remote student: $(grep epoch "$S/remote.log")"
for p in $BP0 $BP1 $SV0 $SV1; do kill -TERM "$p"; done
for p in $BP0 $BP1 $SV0 $SV1; do
	set +e; sl_wait_pid "$p" 30; rc=$?; set -e
	sl_check "$rc -eq 0" "split pod process $p: exit $rc after SIGTERM"
done
echo "split/: 2 broker pods (rows 0:1024, 1024:), a worker Deployment each; a student over both serve sidecars (CURVE) equals --store C0,C1"
echo "deploy_kubernetes: all checks passed"

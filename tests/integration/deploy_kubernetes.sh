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
echo "deploy_kubernetes: all checks passed"

#!/bin/sh
# softlabel serve: a student reading the cache over tcp:// (one thread)
# ends with a model byte-identical to the same run on the local directory;
# the CLI refuses bad usage with exit 2; options come from the
# environment too; --metrics-bind serves Prometheus text (scraped with
# urllib: well-formed, its request count the one the stop line gives, the
# RECORDS replies counted); SIGTERM stops the server with 0.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
F=$FMNIST
sl_subset "$F/train-images-idx3-ubyte.gz" 4000 "$T/x.npy"
sl_subset "$F/train-labels-idx1-ubyte.gz" 300 "$T/y.npy"
sl_make_teacher "$T/teacher.safetensors"
sl_label_all "$T/cache" "$T/x.npy" "$T/teacher.safetensors" t 3 2 --encoding topk:4

# Usage errors: exit 2 with a one-line reason.
set +e
"$BIN/softlabel" serve 2>"$T/u1"; u1=$?
"$BIN/softlabel" serve "$T/cache" --bind nowhere 2>"$T/u2"; u2=$?
"$BIN/softlabel" serve "$T/cache" --curve-secret x 2>"$T/u3"; u3=$?
"$BIN/softlabel" serve "$T/nocache" --bind tcp://127.0.0.1:1 2>"$T/u4"; u4=$?
"$BIN/softlabel" serve "$T/cache" --metrics-bind nowhere 2>"$T/u7"; u7=$?
"$BIN/softlabel-student" --dataset "$T/x.npy" --store tcp://127.0.0.1 \
    --arch 784-10 --out "$T/o" 2>"$T/u5"; u5=$?
"$BIN/softlabel-student" --dataset "$T/x.npy" --store "$T/cache" \
    --curve-secret k.key --curve-server s.pub --arch 784-10 --out "$T/o" \
    2>"$T/u6"; u6=$?
set -e
sl_check "$u1 -eq 2 -a $u2 -eq 2 -a $u3 -eq 2 -a $u5 -eq 2 -a $u6 -eq 2 -a $u7 -eq 2" \
    "usage exits $u1 $u2 $u3 $u5 $u6 $u7: $(cat "$T/u1" "$T/u2" "$T/u3" "$T/u5" "$T/u6" "$T/u7")"
grep -q "^softlabel serve: --metrics-bind: " "$T/u7" || sl_fail "no reason for a bad --metrics-bind: $(cat "$T/u7")"
sl_check "$u4 -eq 1" "a missing cache exits $u4: $(cat "$T/u4")"
grep -q "want one STORE" "$T/u1" || sl_fail "no reason for a missing STORE"
grep -q "go together" "$T/u3" || sl_fail "no reason for --curve-secret alone"
grep -q "remote --store" "$T/u6" || sl_fail "no reason for CURVE keys with a directory: $(cat "$T/u6")"
grep -q "no cache at" "$T/u4" || sl_fail "no reason for a missing cache: $(cat "$T/u4")"

# Options from the environment too (SOFTLABEL_SERVE_*), as the daemons'.
PORT=$(sl_free_port)
EP=tcp://127.0.0.1:$PORT
SOFTLABEL_SERVE_BIND=$EP SOFTLABEL_SERVE_METRICS_BIND=127.0.0.1:0 \
    sl_bg SPID "$BIN/softlabel" serve "$T/cache" 2>>"$T/serve.log"
sl_wait_log "$T/serve.log" " $SPID softlabel-serve INFO ready bind=$EP " 30
MPORT=$(sed -n 's|.*INFO metrics on http://127.0.0.1:\([0-9]*\)/metrics.*|\1|p' "$T/serve.log")
[ -n "$MPORT" ] || sl_fail "serve did not log its metrics port: $(cat "$T/serve.log")"

train() { # store out log
	"$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" \
	    --store "$1" --alpha 0.7 --temperature 3 --arch 784-64-10 \
	    --epochs 3 --batch 64 --seed 5 --threads 1 --min-confidence 0.3 \
	    --out "$2" 2>"$3" || sl_fail "training from $1 failed: $(tail -3 "$3")"
}
train "$T/cache" "$T/local.safetensors" "$T/local.log"
train "$EP" "$T/remote.safetensors" "$T/remote.log"
cmp "$T/local.safetensors" "$T/remote.safetensors" ||
    sl_fail "the model trained over $EP differs from the local one"
# Both saw the same targets (the epoch lines name their counts).
l=$(grep -E "epoch 1: " "$T/local.log" | sed 's/.*INFO //')
r=$(grep -E "epoch 1: " "$T/remote.log" | sed 's/.*INFO //')
sl_check "-n \"$l\" -a \"$l\" = \"$r\"" "epoch lines differ: '$l' vs '$r'"
echo "remote and local students are bit-identical ($l)"

# Metrics: scraped after the students, when nothing else talks to serve.
URL=http://127.0.0.1:$MPORT/metrics
$DPY "$ROOT/tests/lib/prom_check.py" "$URL" format || sl_fail "serve's metrics are malformed"
$DPY - "$URL" >"$T/metrics.txt" <<'PY' || sl_fail "serve's metrics: $(cat "$T/metrics.txt")"
import sys, urllib.request
text = urllib.request.urlopen(sys.argv[1], timeout=10).read().decode()
v = {}
for line in text.splitlines():
    if line and not line.startswith("#"):
        k, x = line.rsplit(" ", 1)
        v[k] = float(x)
print(int(v["softlabel_serve_requests_total"]))
assert v['softlabel_serve_answered_total{type="META"}'] >= 1, v
assert v['softlabel_serve_answered_total{type="RECORDS"}'] >= 1, v
assert v["softlabel_serve_records_total"] >= 4000, v      # every row labeled, read at least once
assert v["softlabel_serve_record_bytes_total"] > v["softlabel_serve_records_total"], v
assert v["softlabel_serve_errors_total"] == 0, v
PY
kill -TERM "$SPID"
set +e; sl_wait_pid "$SPID" 20; rc=$?; set -e
sl_check "$rc -eq 0" "serve exited $rc on SIGTERM: $(tail -2 "$T/serve.log")"
reqs=$(sed -n 's/.*stopped after \([0-9]*\) requests.*/\1/p' "$T/serve.log")
sl_check "\"$reqs\" = \"$(cat "$T/metrics.txt")\"" "metrics counted $(cat "$T/metrics.txt") requests, the stop line $reqs"
echo "metrics: $reqs requests, as the stop line says"
grep -qE "stopped after [1-9][0-9]* requests \(0 errors" "$T/serve.log" ||
    sl_fail "no clean stop line: $(tail -2 "$T/serve.log")"
echo "serve stopped on SIGTERM: $(grep 'stopped after' "$T/serve.log" | sed 's/.*INFO //')"

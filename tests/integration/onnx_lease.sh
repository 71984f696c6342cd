#!/bin/sh
# Big teachers keep their leases (issue 10). The "slow" model of
# tests/lib/onnx_models.py (one 2048x2048 Gemm run 64 times, a valid
# [B,1,28,28] -> [B,10] graph; PyTorch takes about 1-3 s per batch of 256
# on two cores, more on one) labels 1,024 rows in shards of 512 under a
# lease of 2 s, shorter than one batch:
#   1. one worker, computing: no lease expires, every shard is done at its
#      first attempt (read from the cache's shards db), and the records
#      equal PyTorch's softmax(z) within 1e-5;
#   2. a worker stopped (SIGSTOP) in the middle of a batch loses its leases
#      within a few lease periods and a second worker finishes the job.
# A hang of the computing thread alone (libzmq's thread still answering)
# needs a hook inside the engine to simulate; this test covers the process.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
$DPY -c "import torch, onnx, lmdb, msgpack, numpy" 2>/dev/null ||
    sl_fail "python3-torch, -onnx, -lmdb, -msgpack or -numpy is missing (make deps installs them)"
OM="$DPY $ROOT/tests/lib/onnx_models.py"
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 1024 "$T/x.npy"
$OM export slow "$T/slow.onnx" --opset 13 >"$T/export.log" 2>&1 ||
    sl_fail "exporting the slow model failed: $(tail -3 "$T/export.log")"
$OM predict "$T/slow.onnx" "$T/x.npy" "$T/ref.npy" --batch 256 ||
    sl_fail "PyTorch's reference failed"

# Every shard of teacher 0: "state attempts" per line (state 1 = done).
shards() { # store
	$DPY - "$1" <<'PY'
import struct, sys, lmdb, msgpack
env = lmdb.open(sys.argv[1], readonly=True, max_dbs=8)
db = env.open_db(b"shards", create=False)
with env.begin() as txn:
    for k, v in txn.cursor(db):
        t, s = struct.unpack(">IQ", k)
        r = msgpack.unpackb(v, raw=False)
        print(t, s, r.get("state"), r.get("attempts"), r.get("worker"))
PY
}

# Wait for the broker (--exit-when-done) while some worker lives.
wait_done() { # secs workers...
	_secs=$1; shift
	_i=0
	while kill -0 "$BROKER_PID" 2>/dev/null; do
		_alive=0
		for _p in "$@"; do kill -0 "$_p" 2>/dev/null && _alive=1; done
		if [ "$_alive" -eq 0 ]; then
			set +e; sl_wait_pid "$BROKER_PID" 10; _rc=$?; set -e
			[ "$_rc" -eq 0 ] && return 0
			sl_fail "every worker exited, the broker is not done: $(tail -1 "$T/w1.log")"
		fi
		_i=$((_i + 1))
		[ "$_i" -gt $((_secs * 10)) ] && sl_fail "not done after $_secs s: $(tail -2 "$T/broker.log")"
		sleep 0.1
	done
	set +e; sl_wait_pid "$BROKER_PID" 10; _rc=$?; set -e
	sl_check "$_rc -eq 0" "broker exit $_rc: $(tail -2 "$T/broker.log")"
}

# 1. Computing keeps the lease.
sl_start_broker "$T/cache1" "$T/x.npy" "$T/broker.log" --shard-rows 512 \
    --lease-timeout 2 --exit-when-done --nosync
start=$(date +%s)
sl_bg W1 "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/slow.onnx" \
    --name slow --batch 256 --threads 1 --worker-name computing 2>>"$T/w1.log"
wait_done 300 "$W1"
echo "1,024 rows in $(($(date +%s) - start)) s with a 2 s lease"
n=$(sl_count "$T/broker.log" "lease expired")
sl_check "$n -eq 0" "$n leases expired while the worker computed: $(grep 'lease expired' "$T/broker.log" | head -2)"
shards "$T/cache1" >"$T/shards1"
cat "$T/shards1"
sl_check "$(wc -l <"$T/shards1") -eq 2" "expected 2 shards: $(cat "$T/shards1")"
awk '$3 != 1 || $4 != 1 { bad = 1 } END { exit bad }' "$T/shards1" ||
    sl_fail "a shard took more than one attempt: $(cat "$T/shards1")"
$OM check-cache "$T/cache1" slow "$T/ref.npy" 1 || sl_fail "the records differ from PyTorch's"

# 2. A stopped worker loses its leases; another finishes.
BROKER_PORT=$(sl_free_port)
: >"$T/broker.log"
sl_start_broker "$T/cache2" "$T/x.npy" "$T/broker.log" --shard-rows 512 \
    --lease-timeout 2 --exit-when-done --nosync
sl_bg A "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/slow.onnx" \
    --name slow --batch 256 --threads 1 --worker-name hung 2>>"$T/a.log"
sl_wait_log "$T/a.log" "INFO ready" 60
sleep 1  # inside its first batch by now
kill -STOP "$A" 2>/dev/null ||
    sl_fail "worker A exited before it could be stopped: $(tail -1 "$T/a.log")"
echo "worker A stopped in the middle of a batch"
sl_bg W1 "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/slow.onnx" \
    --name slow --batch 256 --threads 1 --worker-name rescuer 2>>"$T/w1.log"
wait_done 300 "$W1"
sl_check "$(sl_count "$T/broker.log" 'lease expired.*worker hung') -ge 1" \
    "the stopped worker kept its lease: $(grep -i lease "$T/broker.log" | tail -3)"
shards "$T/cache2" >"$T/shards2"
cat "$T/shards2"
awk '$3 != 1 || $5 != "rescuer" { bad = 1 } END { exit bad }' "$T/shards2" ||
    sl_fail "the rescuer did not finish every shard: $(cat "$T/shards2")"
$OM check-cache "$T/cache2" slow "$T/ref.npy" 1 || sl_fail "the records differ from PyTorch's"
echo "PASS: a computing worker kept its leases past the lease timeout; a stopped one lost them"

#!/bin/sh
# A teacher stuck inside one graph node for longer than the lease loses it,
# although its worker is alive and heartbeating. The model
# (tests/lib/slow_model.py --gram K) has one node whose time grows with the
# square of the batch: worker A (--batch 4096, one batch per shard) spends
# about 8 s inside it, where the graph's progress does not advance, against
# a 2 s lease; worker B, same model file and teacher name, at --batch 64
# passes it in milliseconds. A's heartbeats stop listing its shard, the
# lease expires once (never handed back to A while it is stalled), B stores
# the shard, and A's late result is acknowledged and dropped as a duplicate.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
LEASE=2
ROWS=4096
X=$T/x.npy
sl_subset "$FMNIST/train-images-idx3-ubyte.gz" $((2 * ROWS)) "$X"

# The Gram node at 4096 rows: 2 * 4096^2 * 65536 = 2.2 TFLOP. The stall A
# logs ("progressing again after N ms", timed from its last renewal seen
# stalled) must exceed the lease: at K 8192 a quiet machine (Zen 3, the
# GEMM split over the engine's threads) left it in about 3 s, before B had
# stored the re-leased shard, and at 16384 the logged stall was 1.5 s; at
# 65536 it was 9.5 s. A loaded machine only makes the stall longer, and
# B's share of the work is many times smaller than A's stall.
K=65536
$DPY "$ROOT/tests/lib/slow_model.py" --out "$T/hang.onnx" --width 64 \
    --layers 1 --gram "$K" || sl_fail "slow_model.py failed"

# --audit 0: this is about leases; an audit of B's first result would go
# to A, the only other worker, and keep it busy past the test.
sl_start_broker "$T/cache" "$X" "$T/broker.log" --shard-rows $ROWS \
    --lease-timeout "$LEASE" --audit 0
sl_bg A "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/hang.onnx" \
    --name hang --threads 1 --batch $ROWS --credit 1 --worker-name stuck \
    2>>"$T/a.log"
sl_wait_log "$T/a.log" "INFO ready" 30
sl_wait_status leased 1 10 "A leased nothing"
sl_bg B "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/hang.onnx" \
    --name hang --threads 1 --batch 64 --credit 1 --worker-name fast \
    2>>"$T/b.log"
sl_wait_status done 2 60 "job did not finish"
cp "$T/st.json" "$T/st_done.json"
# Who stored each shard: the cache's shards db names the worker (status
# forgets a worker once it has left, and B leaves when the job is done).
stored_by() { # worker name
	$DPY - "$T/cache" "$1" <<'EOF'
import sys, lmdb, msgpack
env = lmdb.open(sys.argv[1], readonly=True, max_dbs=8)
db = env.open_db(b"shards", create=False)
with env.begin() as txn:
    print(sum(1 for _, v in txn.cursor(db)
              if msgpack.unpackb(v, raw=False).get("worker") == sys.argv[2]))
EOF
}
fast=$(stored_by fast)
stuck=$(stored_by stuck)
echo "K=$K; both shards done: fast stored $fast, stuck stored $stuck"
sl_check "$fast -eq 2" "B did not store both shards: $(cat "$T/st_done.json")"
sl_check "$stuck -eq 0" "A stored a shard: $(cat "$T/st_done.json")"

# A lost its lease while alive and heard from, exactly once, and was not
# given it (or anything) back while stalled.
grep -q "lease expired: teacher hang shard 0 worker stuck (attempt 1)" "$T/broker.log" ||
    sl_fail "A's lease did not expire: $(grep -i lease "$T/broker.log" | tail -n 3)"
grep -q "worker stuck is heard from but did not renew" "$T/broker.log" ||
    sl_fail "the broker did not see A as stalled"
sl_check "$(sl_count "$T/broker.log" 'lease expired') -eq 1" \
    "more than one lease expired: $(grep 'lease expired' "$T/broker.log")"
grep -q "heartbeats stop renewing the leases" "$T/a.log" ||
    sl_fail "A did not withhold its renewals: $(tail -n 3 "$T/a.log")"
if grep -q "broker silent" "$T/a.log"; then
	sl_fail "A's session did not stay alive: $(grep 'broker silent' "$T/a.log" | head -1)"
fi
sl_check "$(sl_count "$T/b.log" 'stop renewing') -eq 0" "B stalled too"

# A comes out of the node, finishes, and is told the shard is stored.
set +e; sl_wait_pid "$A" 120; rc=$?; set -e
sl_check "$rc -eq 0" "worker A exit $rc: $(tail -n 3 "$T/a.log")"
# The premise: A was stuck inside the node for longer than the lease.
stall_ms=$(sed -n 's/.*progressing again after \([0-9]*\) ms.*/\1/p' "$T/a.log" | head -n 1)
[ -n "$stall_ms" ] || sl_fail "A never progressed again: $(tail -n 3 "$T/a.log")"
echo "A was stuck inside the Gram node for about $stall_ms ms; lease ${LEASE} s"
sl_check "$stall_ms -ge $((LEASE * 1000))" "A's stall was shorter than the lease"
grep -q "shard 0 was already stored by another worker" "$T/a.log" ||
    sl_fail "A's late result was not dropped as a duplicate: $(tail -n 3 "$T/a.log")"
set +e; sl_wait_pid "$B" 30; rc=$?; set -e
sl_check "$rc -eq 0" "worker B exit $rc: $(tail -n 3 "$T/b.log")"
sl_status_json "$BROKER_EP" >"$T/st.json"
sl_check "$(sl_json_get "$T/st.json" 'd["duplicates"]') -eq 1" \
    "duplicates: $(sl_json_get "$T/st.json" 'd["duplicates"]')"
sl_check "$(sl_json_get "$T/st.json" 'd["teachers"][0]["quarantined"]') -eq 0" "a shard was quarantined"
kill -TERM "$BROKER_PID"
set +e; sl_wait_pid "$BROKER_PID" 20; rc=$?; set -e
sl_check "$rc -eq 0" "broker did not stop cleanly on SIGTERM ($rc)"
"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
grep -q "$((2 * ROWS)) records in 2/2 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "verify: $(cat "$T/verify")"
"$BIN/softlabel" inspect "$T/cache" >"$T/inspect"
grep -q "hang: .* 2/2 shards done, 0 quarantined" "$T/inspect" ||
    sl_fail "inspect: $(cat "$T/inspect")"
echo "A stalled inside one node: its lease expired once, B stored its shard"

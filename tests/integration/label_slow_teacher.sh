#!/bin/sh
# A teacher slower per batch than the lease keeps its leases. The model
# (tests/lib/slow_model.py: a chain of Gemm+Relu layers, calibrated here to
# about 6 s per batch of 256 rows on one thread) runs 2 shards of 256 rows
# at --batch 256 against a 2 s lease. The worker's compute thread finishes a
# graph node every few ms, so the heartbeats from its main thread renew
# both leases all along: no lease expires, a second worker waiting idle
# gets nothing, every shard is stored once, by the slow worker.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
LEASE=2
X=$T/x.npy
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 512 "$X"

# Calibrate: the faster of two runs of 2 batches through 60 layers (the
# least disturbed by other load), then as many layers as take about 6 s per
# batch at that speed, and at least 300 (5 s on the 2-core test machine).
$DPY "$ROOT/tests/lib/slow_model.py" --out "$T/cal.onnx" --width 1024 \
    --layers 60 >/dev/null || sl_fail "slow_model.py failed"
best=
for run in 1 2; do
	t0=$(date +%s.%N)
	"$BIN/softlabel-student" --evaluate --model "$T/cal.onnx" --test-data "$X" \
	    --probs "$T/cal.npy" --threads 1 --batch 256 2>"$T/cal.log" ||
	    sl_fail "calibration run failed: $(tail -n 2 "$T/cal.log")"
	t1=$(date +%s.%N)
	best=$(awk -v a="$t0" -v b="$t1" -v m="$best" 'BEGIN { t = b - a;
	    print (m == "" || t < m ? t : m) }')
done
layers=$(awk -v t="$best" 'BEGIN { n = int(6 / (t / 2 / 60));
    print (n < 300 ? 300 : n > 3000 ? 3000 : n) }')
$DPY "$ROOT/tests/lib/slow_model.py" --out "$T/slow.onnx" --width 1024 \
    --layers "$layers" || sl_fail "slow_model.py failed"

# --audit 0: this is about leases; the idle second worker would otherwise
# audit the slow worker's first result.
sl_start_broker "$T/cache" "$X" "$T/broker.log" --shard-rows 256 \
    --lease-timeout "$LEASE" --audit 0
sl_bg A "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/slow.onnx" \
    --name slow --threads 1 --batch 256 --worker-name slow 2>>"$T/a.log"
sl_wait_log "$T/a.log" "INFO ready" 30
# B joins once A holds both leases; it would get them if they expired.
sl_wait_status leased 2 10 "A did not lease both shards"
sl_bg B "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/slow.onnx" \
    --name slow --threads 1 --batch 256 --worker-name idle 2>>"$T/b.log"
start=$(date +%s)
sl_wait_status done 2 60 "job did not finish"
echo "2 shards done $(($(date +%s) - start)) s after B joined"
for p in "$A" "$B"; do
	set +e; sl_wait_pid "$p" 30; rc=$?; set -e
	sl_check "$rc -eq 0" "worker $p exit $rc: $(tail -n 3 "$T/a.log" "$T/b.log")"
done
# The premise: a batch took clearly longer than the lease.
rate=$(sed -n 's/.*exiting: 2 shards, 512 samples, \([0-9]*\) samples\/s.*/\1/p' "$T/a.log")
[ -n "$rate" ] || sl_fail "A did not do both shards: $(tail -n 3 "$T/a.log")"
batch_ms=$((256 * 1000 / rate))
echo "$layers layers: one batch of 256 rows took about $batch_ms ms; lease ${LEASE} s"
sl_check "$batch_ms -ge $((LEASE * 1000 + 1000))" "the batch was not slower than the lease"

expired=$(sl_count "$T/broker.log" "lease expired")
sl_check "$expired -eq 0" "$expired leases expired: $(grep 'lease expired' "$T/broker.log" | head -3)"
sl_check "$(sl_count "$T/a.log" 'stop renewing') -eq 0" \
    "A withheld a renewal: $(grep 'stop renewing' "$T/a.log" | head -1)"
grep -q "exiting: 0 shards" "$T/b.log" || sl_fail "B computed something: $(tail -2 "$T/b.log")"
dups=$(sl_json_get "$T/st.json" 'd["duplicates"]')
sl_check "$dups -eq 0" "$dups duplicate results: a shard was computed twice"
sl_check "$(sl_json_get "$T/st.json" 'sum(d["rejected"].values())') -eq 0" \
    "results rejected: $(sl_json_get "$T/st.json" 'd["rejected"]')"
kill -TERM "$BROKER_PID"
set +e; sl_wait_pid "$BROKER_PID" 20; rc=$?; set -e
sl_check "$rc -eq 0" "broker did not stop cleanly on SIGTERM ($rc)"
"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
grep -q "512 records in 2/2 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "verify: $(cat "$T/verify")"
"$BIN/softlabel" inspect "$T/cache" >"$T/inspect"
grep -q "slow: .* 2/2 shards done, 0 quarantined" "$T/inspect" ||
    sl_fail "inspect: $(cat "$T/inspect")"
echo "both shards stored once by the slow worker; no lease expired"

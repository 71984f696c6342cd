#!/bin/sh
# Three real workers label the 10,000 Fashion-MNIST test images through a
# real broker: softlabel verify passes, and every stored distribution equals
# softmax(z/T) computed directly by the numeric core (softlabel-student
# --evaluate --probs) within 1e-6. Status is queried before the run.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
X=$FMNIST/t10k-images-idx3-ubyte.gz
sl_make_teacher "$T/teacher.safetensors"

sl_start_broker "$T/cache" "$X" "$T/broker.log" --shard-rows 500 --exit-when-done
# Status of the job before it starts (once the workers are in, the job
# takes well under a second and the broker leaves with --exit-when-done).
"$BIN/softlabel" status "$BROKER_EP" >"$T/status" 2>&1 ||
    sl_fail "status failed: $(cat "$T/status")"
grep -q "dataset .*10000 rows" "$T/status" ||
    sl_fail "status says nothing useful: $(cat "$T/status")"
cat "$T/status"
# The broker is stopped while the workers start, so their HELLOs wait in
# its socket and it meets all three at once: no worker can take every
# shard before another has joined, however the machine schedules them.
kill -STOP "$BROKER_PID"
for i in 1 2 3; do
	sl_bg w "$BIN/softlabel-teacher" --connect "$BROKER_EP" \
	    --model "$T/teacher.safetensors" --name fm64 --temperature 4 \
	    --threads 1 --batch 250 --worker-name "w$i" 2>>"$T/worker$i.log"
	eval "W$i=\$w"
done
for i in 1 2 3; do
	sl_wait_log "$T/worker$i.log" "INFO blas kernel" 30
done
sleep 0.5 # each has connected (the kernel accepts; the handshake waits)
kill -CONT "$BROKER_PID"

set +e
sl_wait_pid "$BROKER_PID" 120; rc=$?
set -e
sl_check "$rc -eq 0" "broker exit $rc: $(tail -3 "$T/broker.log")"
for i in 1 2 3; do
	eval "p=\$W$i"
	set +e; sl_wait_pid "$p" 30; rc=$?; set -e
	sl_check "$rc -eq 0" "worker $i exit $rc: $(tail -3 "$T/worker$i.log")"
done
# Every worker did some of the work.
for i in 1 2 3; do
	grep -q "exiting: [1-9][0-9]* shards" "$T/worker$i.log" ||
	    sl_fail "worker $i labeled nothing: $(tail -2 "$T/worker$i.log")"
done

"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
grep -q "10000 records in 20/20 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "verify: $(cat "$T/verify")"
"$BIN/softlabel" inspect "$T/cache"

# Exactly what the teacher computes, at the stored temperature.
"$BIN/softlabel" export "$T/cache" --teacher fm64 --out "$T/cache.npy" >/dev/null
"$BIN/softlabel-student" --evaluate --model "$T/teacher.safetensors" \
    --test-data "$X" --probs "$T/direct.npy" --temperature 4 --threads 1 \
    --batch 250 2>/dev/null
$DPY - "$T/cache.npy" "$T/direct.npy" <<'PY'
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert a.shape == b.shape == (10000, 10), (a.shape, b.shape)
assert not np.isnan(a).any(), "rows missing from the cache"
err = float(np.abs(a - b).max())
print(f"cache vs direct softmax(z/4): max abs error {err:.3g} over {a.size} values")
sys.exit(0 if err <= 1e-6 else 1)
PY

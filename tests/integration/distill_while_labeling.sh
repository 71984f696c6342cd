#!/bin/sh
# A trainer started while the broker is still labeling trains on what is
# done, takes the new shards at each epoch start, and finishes; the broker
# is never blocked by it.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
X=$FMNIST/train-images-idx3-ubyte.gz
sl_make_big_teacher "$T/teacher.safetensors"
sl_start_broker "$T/cache" "$X" "$T/broker.log" --shard-rows 1000 --exit-when-done
# One slow worker: small batches on one thread.
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name big --threads 1 --batch 16 --credit 1 2>"$T/w.log"
sl_wait_log "$T/broker.log" "teacher big registered" 30
# Wait for a few shards, then train while the rest are labeled.
i=0
while :; do
	"$BIN/softlabel" inspect "$T/cache" >"$T/i" 2>&1 || true
	d=$(sed -n 's/.*big: .* \([0-9]*\)\/60 shards done.*/\1/p' "$T/i")
	[ -n "$d" ] && [ "$d" -ge 3 ] && break
	i=$((i + 1)); [ "$i" -gt 600 ] && sl_fail "labeling does not progress"
	sleep 0.1
done
# A student wide enough that an epoch takes longer than a shard of the slow
# worker (the trainer got several times faster: with 784-32-10 six epochs
# ended before the worker stored its next shard).
"$BIN/softlabel-student" --dataset "$X" --store "$T/cache" --alpha 1 --temperature 2 \
    --arch 784-1024-10 --epochs 4 --batch 64 --threads 1 --metrics "$T/m.jsonl" \
    --out "$T/s.safetensors" 2>"$T/s.log" || sl_fail "trainer: $(tail -2 "$T/s.log")"
first=$(head -n 1 "$T/m.jsonl" | sed -n 's/.*"rows_with_target":\([0-9]*\).*/\1/p')
last=$(sl_metric "$T/m.jsonl" rows_with_target)
echo "rows with targets: $first in the first epoch, $last in the last"
sl_check "$first -gt 0" "the first epoch had nothing"
sl_check "$last -gt $first" "later epochs did not take the new shards"
kill -0 "$BROKER_PID" 2>/dev/null && echo "broker still labeling when the trainer finished"
set +e; sl_wait_pid "$BROKER_PID" 300; rc=$?; set -e
sl_check "$rc -eq 0" "broker: $(tail -2 "$T/broker.log")"
"$BIN/softlabel" verify "$T/cache" | tail -1 | grep -q ok || sl_fail "verify"

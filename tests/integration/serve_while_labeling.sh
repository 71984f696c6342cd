#!/bin/sh
# A remote student (--store tcp:// through softlabel serve) started while
# the broker still labels the same cache trains on what is done, takes
# the new shards at each epoch start, and finishes; serve reads beside the
# writing broker without blocking it, and the cache verifies at the end.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/train-images-idx3-ubyte.gz" 20000 "$T/x.npy"
sl_make_big_teacher "$T/teacher.safetensors"
sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 500 --exit-when-done
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name big --threads 1 --batch 16 --credit 1 2>"$T/w.log"
sl_wait_log "$T/broker.log" "teacher big registered" 30
PORT=$(sl_free_port)
EP=tcp://127.0.0.1:$PORT
sl_bg SPID "$BIN/softlabel" serve "$T/cache" --bind "$EP" 2>>"$T/serve.log"
sl_wait_log "$T/serve.log" " $SPID softlabel-serve INFO ready" 30
i=0
while :; do
	"$BIN/softlabel" inspect "$T/cache" >"$T/i" 2>&1 || true
	d=$(sed -n 's/.*big: .* \([0-9]*\)\/40 shards done.*/\1/p' "$T/i")
	[ -n "$d" ] && [ "$d" -ge 3 ] && break
	i=$((i + 1)); [ "$i" -gt 600 ] && sl_fail "labeling does not progress"
	sleep 0.1
done
"$BIN/softlabel-student" --dataset "$T/x.npy" --store "$EP" --alpha 1 --temperature 2 \
    --arch 784-1024-10 --epochs 4 --batch 64 --threads 1 --metrics "$T/m.jsonl" \
    --out "$T/s.safetensors" 2>"$T/s.log" || sl_fail "trainer: $(tail -2 "$T/s.log")"
first=$(head -n 1 "$T/m.jsonl" | sed -n 's/.*"rows_with_target":\([0-9]*\).*/\1/p')
last=$(sl_metric "$T/m.jsonl" rows_with_target)
echo "rows with targets over $EP: $first in the first epoch, $last in the last"
sl_check "$first -gt 0" "the first epoch had nothing"
sl_check "$last -gt $first" "later epochs did not take the new shards"
sl_check "$(( last % 500 )) -eq 0" "rows with targets ($last) are not whole shards"
kill -0 "$BROKER_PID" 2>/dev/null && echo "broker still labeling when the trainer finished"
set +e; sl_wait_pid "$BROKER_PID" 300; rc=$?; set -e
sl_check "$rc -eq 0" "broker: $(tail -2 "$T/broker.log")"
"$BIN/softlabel" verify "$T/cache" | tail -1 | grep -q ok || sl_fail "verify"
if grep -v "no --curve-secret" "$T/serve.log" | grep -qE " (ERROR|WARN) "; then
	sl_fail "serve logged trouble: $(grep -v 'no --curve-secret' "$T/serve.log" | grep -E ' (ERROR|WARN) ' | head -3)"
fi
echo "broker finished and the cache verifies"

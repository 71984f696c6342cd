#!/bin/sh
# Readers never block the writer: softlabel inspect and verify run over and
# over against the cache while the broker commits, and both proceed. Readers
# killed with kill -9 in the middle of a read leave stale reader slots that
# are cleared, so the reader table does not fill and the file does not grow
# without bound.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
X=$FMNIST/train-images-idx3-ubyte.gz
sl_make_big_teacher "$T/teacher.safetensors"

sl_start_broker "$T/cache" "$X" "$T/broker.log" --shard-rows 500 --exit-when-done
sl_bg W1 "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name big --threads 1 2>"$T/w1.log"
sl_bg W2 "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name big --threads 1 2>"$T/w2.log"
sl_wait_log "$T/broker.log" "teacher big registered" 30

reads=0 kills=0 last=0 grew=0
while kill -0 "$BROKER_PID" 2>/dev/null && [ "$reads" -lt 400 ]; do
	"$BIN/softlabel" inspect "$T/cache" >"$T/inspect" 2>&1 || sl_fail "inspect: $(cat "$T/inspect")"
	reads=$((reads + 1))
	done=$(sed -n 's/.*big: .* \([0-9]*\)\/120 shards done.*/\1/p' "$T/inspect")
	[ -n "$done" ] && [ "$done" -lt "$last" ] && sl_fail "done went backwards"
	[ -n "$done" ] && { [ "$done" -gt "$last" ] && grew=$((grew + 1)); last=$done; }
	# A reader killed while it holds its snapshot.
	"$BIN/softlabel" verify "$T/cache" >/dev/null 2>&1 &
	vp=$!
	sleep 0.05
	kill -9 "$vp" 2>/dev/null && kills=$((kills + 1))
	wait "$vp" 2>/dev/null || true
done
set +e; sl_wait_pid "$BROKER_PID" 240; rc=$?; set -e
sl_check "$rc -eq 0" "broker exit $rc: $(tail -3 "$T/broker.log")"
echo "$reads inspects while labeling saw progress $grew times; $kills readers killed"
sl_check "$grew -ge 3" "readers did not see the writer progress"
"$BIN/softlabel" inspect "$T/cache" | tee "$T/final"
used=$(sed -n 's/readers *\([0-9]*\) of.*/\1/p' "$T/final")
sl_check "$used -le 2" "stale reader slots were not cleared ($used in use)"
size=$(sed -n 's/.*file \([0-9]*\) bytes.*/\1/p' "$T/final")
inuse=$(sed -n 's/size *\([0-9]*\) bytes in use.*/\1/p' "$T/final")
echo "file $size bytes, $inuse in use"
sl_check "$size -le $((inuse * 2 + 4194304))" "the file grew far beyond its contents"
"$BIN/softlabel" verify "$T/cache" | tail -1 | grep -q "ok" || sl_fail "verify"

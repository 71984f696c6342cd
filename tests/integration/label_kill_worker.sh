#!/bin/sh
# kill -9 a worker in the middle of a shard, round after round, starting a
# fresh one each time: the killed worker's leases expire and are re-leased,
# the job completes, verify passes, and the cache equals the teacher.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
X=$FMNIST/train-images-idx3-ubyte.gz
sl_make_big_teacher "$T/teacher.safetensors"

sl_start_broker "$T/cache" "$X" "$T/broker.log" --shard-rows 1000 \
    --lease-timeout 2 --exit-when-done
start_worker() { # n
	sl_bg pid "$BIN/softlabel-teacher" --connect "$BROKER_EP" \
	    --model "$T/teacher.safetensors" --name big --threads 1 --batch 250 \
	    --worker-name "w$1" 2>>"$T/worker$1.log"
	eval "W$1=\$pid"
}
start_worker 1; start_worker 2; start_worker 3
kills=0
for round in 1 2 3 4 5 6; do
	sleep 0.6
	kill -0 "$BROKER_PID" 2>/dev/null || break
	victim=$(( (round % 3) + 1 ))
	eval "p=\$W$victim"
	if kill -9 "$p" 2>/dev/null; then
		kills=$((kills + 1))
		echo "round $round: killed worker $victim (pid $p)"
	fi
	start_worker "$victim$round"
done
set +e; sl_wait_pid "$BROKER_PID" 240; rc=$?; set -e
sl_check "$rc -eq 0" "broker exit $rc: $(tail -3 "$T/broker.log")"
sl_check "$kills -ge 3" "only $kills kills happened before the job ended"
expired=$(sl_count "$T/broker.log" "lease expired")
echo "$kills workers killed, $expired leases expired and were re-leased"
sl_check "$expired -ge 1" "no lease of a killed worker expired"
"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
grep -q "60000 records in 60/60 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "verify: $(cat "$T/verify")"
sl_check_cache_exact "$T/cache" big "$T/teacher.safetensors" "$X" 1

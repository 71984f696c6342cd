#!/bin/sh
# kill -9 the broker while results stream in, check (before restarting it)
# that every shard a worker saw acknowledged is in the cache, restart it on
# the same store and port: the workers reconnect by themselves, the job
# completes, nothing is lost or stored twice.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
X=$FMNIST/train-images-idx3-ubyte.gz
sl_make_big_teacher "$T/teacher.safetensors"

sl_start_broker "$T/cache" "$X" "$T/broker.log" --shard-rows 1000 --lease-timeout 5
for i in 1 2 3; do
	sl_bg p "$BIN/softlabel-teacher" --connect "$BROKER_EP" \
	    --model "$T/teacher.safetensors" --name big --threads 1 --batch 250 \
	    --worker-name "w$i" --log-level debug 2>>"$T/worker$i.log"
	eval "W$i=\$p"
done
sl_wait_log "$T/broker.log" "worker w3 joined" 30
# Let some results commit, then kill the broker in the middle of the stream.
i=0
while [ "$(cat "$T"/worker*.log | grep -c ' stored$' || true)" -lt 8 ] && [ "$i" -lt 600 ]; do
	sleep 0.1; i=$((i + 1))
done
kill -9 "$BROKER_PID"
set +e; sl_wait_pid "$BROKER_PID" 10; set -e
acked=$(cat "$T"/worker*.log | sed -n 's/.*shard \([0-9]*\) stored$/\1/p' | sort -n | uniq)
n_acked=$(echo "$acked" | grep -c . || true)
echo "broker killed after $n_acked acknowledged shards"
sl_check "$n_acked -ge 8" "too few acknowledgements before the kill"
for s in $acked; do
	"$BIN/softlabel" get "$T/cache" --teacher big --sample $((s * 1000)) >/dev/null 2>&1 ||
	    sl_fail "shard $s was acknowledged but is not in the cache after the kill"
	"$BIN/softlabel" get "$T/cache" --teacher big --sample $((s * 1000 + 999)) >/dev/null 2>&1 ||
	    sl_fail "shard $s is only partly in the cache"
done
echo "every acknowledged shard survived the kill"

# Restarted without --exit-when-done: a worker still in its reconnect
# back-off when the others finish would otherwise find no broker to tell
# it the job is done. Each worker exits 0 only after the new broker said
# DONE to it, so all three re-registered by themselves.
sleep 1
sl_start_broker "$T/cache" "$X" "$T/broker2.log" --shard-rows 1000 --lease-timeout 5
for i in 1 2 3; do
	eval "p=\$W$i"
	set +e; sl_wait_pid "$p" 120; rc=$?; set -e
	sl_check "$rc -eq 0" "worker $i exit $rc: $(tail -3 "$T/worker$i.log")"
done
kill -TERM "$BROKER_PID"
set +e; sl_wait_pid "$BROKER_PID" 30; rc=$?; set -e
sl_check "$rc -eq 0" "restarted broker exit $rc: $(tail -3 "$T/broker2.log")"
joined=$(sl_count "$T/broker2.log" "worker w[123] joined")
sl_check "$joined -ge 3" "workers did not re-register by themselves ($joined)"
"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
grep -q "60000 records in 60/60 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "verify: $(cat "$T/verify")"
sl_check_cache_exact "$T/cache" big "$T/teacher.safetensors" "$X" 1

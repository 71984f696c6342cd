#!/bin/sh
# bench_audit - what audits cost (issue 15, finding 8): figures, not
# thresholds. The real broker and three real workers (--threads 1) label
# 60,000 Fashion-MNIST training rows in shards of 250 with the 784-1200-
# 1200-10 teacher (sl_make_big_teacher), durable commits, once with
# --audit 0 and once with --audit 0.05 (--audit-seed 1), BENCH_ROUNDS
# times (default 2), alternating. Reported: the shards the workers
# computed (their "exiting: N shards" lines, summed: every lease they
# answered, audits included) and the wall time from the broker's start to
# its exit (--exit-when-done), median of the rounds; the ratios are
# 0.05 over 0 in the same run. Goal: work ratio <= 1.1 (0.05 of 240 shards,
# plus each worker's first result: about 1.06). Wall time on this shared
# 2-core machine is noisy.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir >/dev/null
T=$SL_TMP
ROUNDS=${BENCH_ROUNDS:-2}
ROWS=60000

now_ms() { echo $(($(date +%s%N) / 1000000)); }
median() { # file
	sort -g "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

sl_subset "$FMNIST/train-images-idx3-ubyte.gz" $ROWS "$T/x.npy"
sl_make_big_teacher "$T/teacher.safetensors"

# One labeling run; prints "SHARDS MS".
run() { # rate tag
	unset BROKER_PORT
	t0=$(now_ms)
	sl_start_broker "$T/c-$2" "$T/x.npy" "$T/b-$2.log" --shard-rows 250 \
	    --exit-when-done --audit "$1" --audit-seed 1
	for n in 1 2 3; do
		sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" \
		    --model "$T/teacher.safetensors" --name big --threads 1 \
		    --batch 250 --worker-name "w$n" 2>>"$T/w-$2.log"
	done
	set +e; sl_wait_pid "$BROKER_PID" 600; rc=$?; set -e
	[ "$rc" -eq 0 ] || sl_fail "broker at --audit $1: exit $rc: $(tail -3 "$T/b-$2.log")"
	t1=$(now_ms)
	i=0
	while [ "$(sl_count "$T/w-$2.log" 'exiting: ')" -lt 3 ]; do
		i=$((i + 1)); [ "$i" -le 300 ] || sl_fail "workers did not exit"
		sleep 0.1
	done
	shards=$(sed -n 's/.*exiting: \([0-9]*\) shards.*/\1/p' "$T/w-$2.log" |
	    awk '{ s += $1 } END { print s }')
	echo "$shards $((t1 - t0))"
}

r=0
while [ "$r" -lt "$ROUNDS" ]; do
	r=$((r + 1))
	set -- $(run 0 "0-$r"); echo "$1" >>"$T/s0"; echo "$2" >>"$T/t0"
	echo "round $r --audit 0:    $1 shards computed, $2 ms"
	set -- $(run 0.05 "5-$r"); echo "$1" >>"$T/s5"; echo "$2" >>"$T/t5"
	echo "round $r --audit 0.05: $1 shards computed, $2 ms"
done
s0=$(median "$T/s0") s5=$(median "$T/s5") t0=$(median "$T/t0") t5=$(median "$T/t5")
awk -v s0="$s0" -v s5="$s5" -v t0="$t0" -v t5="$t5" 'BEGIN {
	printf "audit cost: %d shards computed at --audit 0.05 vs %d at 0: work ratio %.3f (goal <= 1.1)\n", s5, s0, s5 / s0
	printf "audit cost: wall time %d ms vs %d ms: ratio %.3f (noisy: a shared 2-core machine)\n", t5, t0, t5 / t0
}'

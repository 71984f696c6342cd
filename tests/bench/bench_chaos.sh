#!/bin/sh
# bench_chaos - the long chaos run (issue 15): tests/integration/
# chaos_audit.sh with CHAOS_ROUNDS=12 (BENCH_CHAOS_ROUNDS) at seeds 1 and 2
# (BENCH_CHAOS_SEEDS): kill -9 of the broker and of honest workers at
# seeded times, a lying and a hanging worker, then the exact accounting
# (lost, duplicated, unexpected, mismatched: all 0, or this fails). Prints
# each run's kills, refusals, accounting and wall time (noisy: a shared
# 2-core machine).
set -eu
ROUNDS=${BENCH_CHAOS_ROUNDS:-12}
for seed in ${BENCH_CHAOS_SEEDS:-1 2}; do
	t0=$(date +%s)
	out=$(CHAOS_ROUNDS=$ROUNDS CHAOS_SEED=$seed sh "$(dirname "$0")/../integration/chaos_audit.sh" 2>&1) || {
		echo "$out" | tail -20; echo "bench_chaos: seed $seed FAILED"; exit 1; }
	echo "$out" | grep -E "^rounds |^chaos accounting" | sed "s/^/seed $seed: /"
	echo "seed $seed: $(($(date +%s) - t0)) s wall"
done

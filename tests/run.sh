#!/bin/sh
# Run every test: the cmocka unit executables, then the integration scripts
# (each starts the real programs on 127.0.0.1, or on hosts in network
# namespaces it creates). Ends with one summary line "N passed, N failed,
# N skipped" and exits non-zero when anything failed. A test that exits 77
# could not run here (the namespace tests when not root): it is reported
# SKIP, loudly, with its reason, and never counted as passed.
#
#   tests/run.sh              everything
#   tests/run.sh unit         unit tests only
#   tests/run.sh integration  integration tests only
#
# With CI=true or FUZZ=1, "all" ends with one more test, "fuzz": every
# libFuzzer target for 30 s, two at a time (make fuzz; needs clang).
# FUZZ=0 leaves it out even under CI=true (.ci/run's make check).
set -u
BUILD=${BUILD:-build}
export BUILD
what=${1:-all}
pass=0 fail=0 skip=0 failed="" skipped=""
logdir=$(mktemp -d "${TMPDIR:-/tmp}/softlabel-tests.XXXXXX")
mkdir -p "$logdir/unit" "$logdir/integration"

run() { # name command...
	name=$1; shift
	start=$(date +%s)
	"$@" >"$logdir/$name.log" 2>&1
	rc=$?
	if [ "$rc" -eq 0 ]; then
		pass=$((pass + 1))
		printf 'PASS %-40s %4ss\n' "$name" $(($(date +%s) - start))
	elif [ "$rc" -eq 77 ]; then
		skip=$((skip + 1)); skipped="$skipped $name"
		printf 'SKIP %-40s %4ss  %s\n' "$name" $(($(date +%s) - start)) \
		    "$(grep SKIP "$logdir/$name.log" | tail -n 1)"
	else
		fail=$((fail + 1)); failed="$failed $name"
		printf 'FAIL %-40s %4ss  (log below)\n' "$name" $(($(date +%s) - start))
		tail -n 60 "$logdir/$name.log" | sed 's/^/    | /'
	fi
}

if [ "$what" = all ] || [ "$what" = unit ]; then
	for t in "$BUILD"/tests/test_*; do
		[ -x "$t" ] || continue
		run "unit/$(basename "$t")" "$t"
	done
fi
if [ "$what" = all ] || [ "$what" = integration ]; then
	for t in tests/integration/*.sh; do
		[ -f "$t" ] || continue
		run "integration/$(basename "$t" .sh)" sh "$t"
	done
fi
if [ "$what" = all ] && [ "${FUZZ:-}" != 0 ] &&
    { [ "${CI:-}" = true ] || [ "${FUZZ:-}" = 1 ]; }; then
	run fuzz make --no-print-directory fuzz FUZZ_SECONDS=30 FUZZ_JOBS=2
fi

echo "logs: $logdir"
echo "$pass passed, $fail failed, $skip skipped"
[ "$skip" -eq 0 ] || echo "SKIPPED, NOT RUN:$skipped"
[ "$fail" -eq 0 ] || { echo "failed:$failed"; exit 1; }

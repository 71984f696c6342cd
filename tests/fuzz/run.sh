#!/bin/sh
# Run libFuzzer targets for a fixed time each; used by `make fuzz`.
#
#   FUZZ_DIR=build/fuzz FUZZ_SECONDS=60 FUZZ_JOBS=1 sh tests/fuzz/run.sh fuzz_proto ...
#
# Each target starts from a copy of tests/fuzz/corpus/<target>/ in a fresh
# temporary directory (new inputs never land in the tree) and runs with
# -max_total_time=FUZZ_SECONDS -rss_limit_mb=2048 -timeout=10, FUZZ_JOBS
# targets at a time. A crash, leak, timeout or out-of-memory stops that
# target and fails the run; its reproducer is copied to FUZZ_ARTIFACTS (the
# temporary directory unless set). Prints one line per target: runs executed
# and CPU seconds.
set -u
FUZZ_DIR=${FUZZ_DIR:-build/fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_JOBS=${FUZZ_JOBS:-1}
here=$(dirname "$0")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/softlabel-fuzz.XXXXXX")
artifacts=${FUZZ_ARTIFACTS:-$tmp/artifacts}
mkdir -p "$artifacts"

one() { # target: run it, leave "$tmp/$1.status" holding 0 or the exit code
	t=$1 d=$tmp/$1
	mkdir -p "$d/corpus"
	cp "$here/corpus/$t/"* "$d/corpus/" 2>/dev/null
	# CPU time (user + sys) through time(1) where it is installed.
	timer=""
	[ -x /usr/bin/time ] && timer="/usr/bin/time -o $d/times -f %U+%S"
	$timer "$FUZZ_DIR/$t" -max_total_time="$FUZZ_SECONDS" -rss_limit_mb=2048 \
	    -timeout=10 -print_final_stats=1 \
	    -artifact_prefix="$artifacts/$t-" "$d/corpus" >"$d/log" 2>&1
	echo $? >"$d/status"
}

report() { # target
	t=$1 d=$tmp/$1
	rc=$(cat "$d/status")
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$d/log" | tail -n 1)
	cpu=$(awk -F+ '/^[0-9.]+\+[0-9.]+$/ { printf "%.1f", $1 + $2 }' \
	    "$d/times" 2>/dev/null)
	if [ "$rc" -eq 0 ]; then
		printf 'ok   %-18s %10s runs %7s s CPU\n' "$t" "${runs:-?}" "${cpu:-?}"
	else
		printf 'FAIL %-18s %10s runs %7s s CPU  (exit %s)\n' "$t" \
		    "${runs:-?}" "${cpu:-?}" "$rc"
		grep -E 'ERROR|SUMMARY|property failed|Test unit written|#0 |#1 |#2 |#3 ' \
		    "$d/log" | head -n 30 | sed 's/^/    | /'
	fi
	return "$rc"
}

[ $# -gt 0 ] || { echo "usage: $0 fuzz_target..." >&2; exit 2; }
fail=0
while [ $# -gt 0 ]; do
	batch=""
	i=0
	while [ $# -gt 0 ] && [ "$i" -lt "$FUZZ_JOBS" ]; do
		one "$1" &
		batch="$batch $1"
		i=$((i + 1))
		shift
	done
	wait
	for t in $batch; do
		report "$t" || fail=$((fail + 1))
	done
done
echo "fuzz: logs and artifacts in $tmp"
[ "$fail" -eq 0 ] || { echo "fuzz: $fail target(s) failed"; exit 1; }

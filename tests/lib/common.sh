# Shared by the integration tests; source it, then use:
#   T=$(sl_tmpdir)       fresh directory, removed on exit
#   sl_bg VAR cmd...     start a process we own; its pid goes into VAR and is
#                        killed (by pid) when the test exits. cmd must be a
#                        program, or a function that execs one, so that the
#                        pid is the program's and not a subshell's
#   sl_fail "message"    print and exit 1
#   sl_check COND MSG    fail unless the shell test COND holds
# Every wait in these tests is bounded in time.
set -eu

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BIN=$BUILD/bin
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
PY=${PY:-python3}
SL_PIDS=""
SL_TMP=""

sl_cleanup() {
	for p in $SL_PIDS; do
		kill -9 "$p" 2>/dev/null || true
	done
	if [ -n "$SL_TMP" ] && [ -z "${SL_KEEP:-}" ]; then
		rm -rf "$SL_TMP"
	fi
}
trap sl_cleanup EXIT INT TERM

sl_tmpdir() {
	SL_TMP=$(mktemp -d "${TMPDIR:-/tmp}/sl-it.XXXXXX")
	echo "$SL_TMP"
}

sl_fail() {
	echo "FAIL: $*" >&2
	exit 1
}

sl_check() { # "test expression" message
	eval "[ $1 ]" || sl_fail "$2 (check: $1)"
}

sl_bg() { # var cmd...
	_var=$1; shift
	"$@" &
	_pid=$!
	SL_PIDS="$SL_PIDS $_pid"
	eval "$_var=$_pid"
}

# Wait for pid to exit, at most secs seconds; its exit status, or 124.
sl_wait_pid() { # pid secs
	_i=0
	while kill -0 "$1" 2>/dev/null; do
		_i=$((_i + 1))
		[ "$_i" -gt $(($2 * 10)) ] && return 124
		sleep 0.1
	done
	wait "$1" 2>/dev/null
}

# The value of "key" in the last JSON line of a metrics file.
sl_metric() { # file key
	tail -n 1 "$1" | sed -n "s/.*\"$2\":\([^,}]*\).*/\1/p"
}

# Write the first N rows of an IDX[.gz] file as .npy (labels too).
sl_subset() { # src.idx.gz N out.npy [labeled-rows]
	$PY "$ROOT/tests/lib/subset.py" "$@"
}

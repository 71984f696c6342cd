# Shared by the integration tests; source it, then use:
#   sl_tmpdir; T=$SL_TMP  fresh directory, removed on exit (call it in the
#                        test's own shell, not in $(...), so the exit trap
#                        and the helpers see it)
#   sl_bg VAR cmd...     start a process we own; its pid goes into VAR and is
#                        killed (by pid) when the test exits. cmd must be a
#                        program, or a function that execs one, so that the
#                        pid is the program's and not a subshell's
#   sl_fail "message"    print and exit 1
#   sl_check COND MSG    fail unless the shell test COND holds
#   sl_atexit "command"  run at exit, after our processes are killed
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
SL_ATEXIT=""

sl_cleanup() {
	for p in $SL_PIDS; do
		kill -9 "$p" 2>/dev/null || true
	done
	for p in $SL_PIDS; do
		wait "$p" 2>/dev/null || true
	done
	eval "$SL_ATEXIT"
	if [ -n "$SL_TMP" ] && [ -z "${SL_KEEP:-}" ]; then
		rm -rf "$SL_TMP"
	fi
}
trap sl_cleanup EXIT INT TERM

sl_tmpdir() {
	SL_TMP=$(mktemp -d "${TMPDIR:-/tmp}/sl-it.XXXXXX")
	# Fingerprint memos of the test's datasets stay in the test's directory
	# (not in ~/.cache, where every run would leave some).
	SOFTLABEL_FINGERPRINTS=$SL_TMP/fingerprints
	export SOFTLABEL_FINGERPRINTS
}

sl_atexit() { # command
	SL_ATEXIT="$1 || true; $SL_ATEXIT"
}

sl_fail() {
	echo "FAIL: $*" >&2
	exit 1
}

sl_check() { # "test expression" message
	# Two arguments exactly: sl_check "$n" -eq 0 "msg" would test "[ $n ]"
	# and could never fail.
	[ $# -eq 2 ] || sl_fail "sl_check takes one quoted expression and a message, got $# arguments: $*"
	eval "[ $1 ]" || sl_fail "$2 (check: $1)"
}

sl_bg() { # var cmd...
	_var=$1; shift
	"$@" &
	_pid=$!
	SL_PIDS="$SL_PIDS $_pid"
	eval "$_var=$_pid"
}

# The cksum of FILE, or "none" while it does not exist.
sl_sum() { # file
	if [ -f "$1" ]; then cksum <"$1"; else echo none; fi
}
# Wait until FILE's cksum is no longer BEFORE (a checkpoint was written),
# PID has exited, or 60 s have passed; for kills that must land mid-run
# whatever the machine's speed.
sl_wait_change() { # file before pid
	_i=0
	while [ "$(sl_sum "$1")" = "$2" ] && [ "$_i" -lt 1200 ] &&
	    kill -0 "$3" 2>/dev/null; do
		sleep 0.05; _i=$((_i + 1))
	done
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

# Debian's python3, which has the python3-* packages (torch, zmq, msgpack);
# the python3 first on PATH may be another installation.
DPY=/usr/bin/python3

# A free TCP port on 127.0.0.1 (bound and released; tests start at once).
sl_free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Wait until FILE has a line matching PATTERN (grep -E), at most SECS.
sl_wait_log() { # file pattern secs
	_i=0
	while ! grep -qE "$2" "$1" 2>/dev/null; do
		_i=$((_i + 1))
		[ "$_i" -gt $(($3 * 10)) ] && sl_fail "timed out waiting for '$2' in $1: $(tail -3 "$1" 2>/dev/null)"
		sleep 0.1
	done
}

# Count lines matching PATTERN in FILE (0 when none).
sl_count() { # file pattern
	grep -cE "$2" "$1" 2>/dev/null || true
}

# A small trained teacher (784-64-10, one epoch on 3000 test images): good
# enough to label with, quick to make.
sl_make_teacher() { # out.safetensors [arch] [seed]
	sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 3000 "$SL_TMP/teacher_x.npy"
	sl_subset "$FMNIST/t10k-labels-idx1-ubyte.gz" 3000 "$SL_TMP/teacher_y.npy"
	"$BIN/softlabel-student" --dataset "$SL_TMP/teacher_x.npy" \
	    --labels "$SL_TMP/teacher_y.npy" --arch "${2:-784-64-10}" --epochs 1 \
	    --seed "${3:-1}" --out "$1" 2>"$SL_TMP/teacher_train.log" ||
	    sl_fail "training the test teacher failed: $(tail -2 "$SL_TMP/teacher_train.log")"
}

# Start a broker on a free port; sets BROKER_PID, BROKER_EP, BROKER_LOG and
# waits for its ready line. Extra arguments go to softlabel-broker.
sl_start_broker() { # store dataset log extra...
	_store=$1 _data=$2 BROKER_LOG=$3; shift 3
	BROKER_PORT=${BROKER_PORT:-$(sl_free_port)}
	BROKER_EP=tcp://127.0.0.1:$BROKER_PORT
	sl_bg BROKER_PID "$BIN/softlabel-broker" --store "$_store" \
	    --dataset "$_data" --bind "$BROKER_EP" "$@" 2>>"$BROKER_LOG"
	sl_wait_log "$BROKER_LOG" " $BROKER_PID softlabel-broker INFO ready" 30
}

# A teacher big enough that a shard takes a while to compute (784-1200-1200-10,
# trained one epoch on 3000 images), for tests that must catch a worker in
# the middle of a shard.
sl_make_big_teacher() { # out.safetensors
	sl_make_teacher "$1" 784-1200-1200-10 2
}

# softlabel status as JSON, and one number out of it (python, Debian's).
sl_status_json() { # ep
	"$BIN/softlabel" status "$1" --json --timeout 10
}
sl_json_get() { # json-file python-expression-on-d
	$DPY -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}
# Poll the broker at $BROKER_EP every 0.2 s, for at most SECS seconds, until
# teacher 0's FIELD ("leased", "done", ...) in its status equals VALUE. The
# last status is left in $SL_TMP/st.json; on timeout the test fails with
# WHAT and that status.
sl_wait_status() { # field value secs what
	_i=0
	while :; do
		sl_status_json "$BROKER_EP" >"$SL_TMP/st.json" 2>/dev/null || true
		_v=$(sl_json_get "$SL_TMP/st.json" "d['teachers'][0]['$1']" 2>/dev/null || echo)
		[ "$_v" = "$2" ] && return 0
		_i=$((_i + 1))
		[ "$_i" -gt $(($3 * 5)) ] && sl_fail "$4 (teacher 0 $1=${_v:-?}, want $2 within $3 s): $(cat "$SL_TMP/st.json")"
		sleep 0.2
	done
}

# Check that the cache holds exactly what the teacher computes: export from
# the cache, compute directly, compare (max abs error 1e-6 for f32). The
# direct pass runs in batches of 250 on one thread; workers of these tests use
# --batch 250 and shards of a multiple of 250 rows, so both sides sum in the
# same order (other tilings differ by float rounding, about 1e-6 on the big
# teacher).
sl_check_cache_exact() { # cache teacher-name model dataset T
	"$BIN/softlabel" export "$1" --teacher "$2" --out "$SL_TMP/cache.npy" >/dev/null ||
	    sl_fail "export failed"
	"$BIN/softlabel-student" --evaluate --model "$3" --test-data "$4" \
	    --probs "$SL_TMP/direct.npy" --temperature "$5" --threads 1 --batch 250 2>/dev/null ||
	    sl_fail "direct evaluation failed"
	$DPY - "$SL_TMP/cache.npy" "$SL_TMP/direct.npy" <<'PY'
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
assert a.shape == b.shape, (a.shape, b.shape)
missing = int(np.isnan(a).any(axis=1).sum())
assert missing == 0, f"{missing} rows missing from the cache"
err = float(np.abs(a - b).max())
print(f"cache equals the teacher: max abs error {err:.3g} over {a.shape[0]} rows")
sys.exit(0 if err <= 1e-6 else 1)
PY
}

# Label DATA with MODEL into CACHE through a real broker and N workers,
# until done. Extra arguments go to every worker.
sl_label_all() { # cache data model name T nworkers extra...
	_c=$1 _d=$2 _m=$3 _n=$4 _t=$5 _k=$6; shift 6
	BROKER_PORT=$(sl_free_port)
	sl_start_broker "$_c" "$_d" "$SL_TMP/broker-$_n.log" --exit-when-done
	_i=0
	while [ "$_i" -lt "$_k" ]; do
		_i=$((_i + 1))
		sl_bg _w "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$_m" \
		    --name "$_n" --temperature "$_t" --threads 1 "$@" \
		    2>>"$SL_TMP/worker-$_n.log"
	done
	set +e; sl_wait_pid "$BROKER_PID" 300; _rc=$?; set -e
	[ "$_rc" -eq 0 ] || sl_fail "labeling with $_n failed ($_rc): $(tail -3 "$SL_TMP/broker-$_n.log")"
	BROKER_PORT=
}

# Install the four programs as make install does into DIR. In a sanitized
# run (make check) they are first built plainly, into $SL_TMP/plain: the
# sanitizer builds link runtimes an image does not ship, and LeakSanitizer
# cannot work in a systemd sandbox (no ptrace).
SL_PROGS="softlabel-broker softlabel-teacher softlabel-student softlabel"
sl_install_plain() { # dir
	_pbin=$BIN
	if [ -n "${SL_SANITIZED:-}" ]; then
		echo "sanitized run: building the programs plainly, into $SL_TMP/plain"
		# shellcheck disable=SC2046
		make --no-print-directory -C "$ROOT" BUILD="$SL_TMP/plain" \
		    $(for p in $SL_PROGS; do echo "$SL_TMP/plain/bin/$p"; done) \
		    >"$SL_TMP/make.log" 2>&1 ||
		    sl_fail "plain build failed: $(tail -5 "$SL_TMP/make.log")"
		_pbin=$SL_TMP/plain/bin
	fi
	install -d "$1"
	for p in $SL_PROGS; do
		install -m 0755 "$_pbin/$p" "$1/"
	done
}

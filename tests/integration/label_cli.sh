#!/bin/sh
# The labeling programs' start-up, as a new user meets it: an endpoint of
# the wrong form exits 2 saying what is expected and what was given; a
# worker started before its broker says at once what it is doing, waits
# for the broker (and labels once it comes), or gives up after
# --connect-timeout (exit 1); a broker whose start fails leaves no new cache
# directory behind, and never touches what a directory held before.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP

sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 2000 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"

expect() { # want-exit want-substring prog args...
	want=$1 msg=$2 prog=$3; shift 3
	set +e
	"$BIN/$prog" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	set -e
	[ "$rc" -eq "$want" ] || sl_fail "$prog $*: exit $rc, want $want; stderr: $(cat "$T/err")"
	grep -qF -- "$msg" "$T/err" || sl_fail "$prog $*: stderr lacks '$msg': $(cat "$T/err")"
	! grep -q "runtime error\|AddressSanitizer" "$T/err" || sl_fail "$prog $*: sanitizer report"
}

# --- endpoints of the wrong form ------------------------------------------------------
for ep in localhost:5555 tcp://127.0.0.1 tcp://127.0.0.1:99999 tcp://:5555 udp://h:1; do
	expect 2 "softlabel-teacher: --connect: '$ep' is not an endpoint: expected tcp://HOST:PORT or ipc://PATH" \
	    softlabel-teacher --connect "$ep" --model "$T/teacher.safetensors"
	[ "$(wc -l <"$T/err")" -eq 1 ] || sl_fail "not one line: $(cat "$T/err")"
done
expect 2 "softlabel-broker: --bind: 'localhost:5555' is not an endpoint: expected tcp://HOST:PORT or ipc://PATH (HOST may be *)" \
    softlabel-broker --store "$T/never" --dataset "$T/x.npy" --bind localhost:5555
[ ! -e "$T/never" ] || sl_fail "a broker refused for its --bind created $T/never"
expect 2 "softlabel-broker: --status-bind: '5556' is not an endpoint" \
    softlabel-broker --store "$T/never" --dataset "$T/x.npy" --status-bind 5556
[ ! -e "$T/never" ] || sl_fail "a broker refused for its --status-bind created $T/never"

expect 2 "softlabel: status: 'localhost:5555' is not an endpoint: expected tcp://HOST:PORT or ipc://PATH" \
    softlabel status localhost:5555

# A dataset passed as the worker's --model: named for what it is.
expect 1 "$T/x.npy: a NumPy .npy array, not a model (a safetensors MLP or an ONNX model)" \
    softlabel-teacher --model "$T/x.npy" --connect tcp://127.0.0.1:1

# --- a worker with no broker: logs the attempt, gives up after --connect-timeout ------
PORT=$(sl_free_port)
sl_bg W "$BIN/softlabel-teacher" --connect "tcp://127.0.0.1:$PORT" \
    --model "$T/teacher.safetensors" --threads 1 --connect-timeout 2 2>"$T/w1.log"
set +e; sl_wait_pid "$W" 60; rc=$?; set -e
sl_check "$rc -eq 1" "worker without a broker: exit $rc, want 1: $(tail -3 "$T/w1.log")"
grep -q "INFO connecting to tcp://127.0.0.1:$PORT as .* giving up if no broker answers within 2 s (--connect-timeout)" \
    "$T/w1.log" || sl_fail "no connection attempt logged: $(cat "$T/w1.log")"
grep -q "ERROR no broker answered at tcp://127.0.0.1:$PORT within 2 s (--connect-timeout; 0 waits forever)" \
    "$T/w1.log" || sl_fail "no give-up message: $(cat "$T/w1.log")"
echo "worker without a broker: $(grep ERROR "$T/w1.log" | sed 's/.*ERROR //')"

# --- a worker started before its broker labels once the broker comes --------------------
BROKER_PORT=$(sl_free_port)
sl_bg W "$BIN/softlabel-teacher" --connect "tcp://127.0.0.1:$BROKER_PORT" \
    --model "$T/teacher.safetensors" --name early --threads 1 --connect-timeout 0 \
    2>"$T/w2.log"
sl_wait_log "$T/w2.log" "INFO connecting to tcp://127.0.0.1:$BROKER_PORT .*waiting for a broker without limit" 30
sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 500 --exit-when-done
set +e; sl_wait_pid "$W" 120; rc=$?; set -e
sl_check "$rc -eq 0" "early worker: exit $rc: $(tail -3 "$T/w2.log")"
set +e; sl_wait_pid "$BROKER_PID" 60; rc=$?; set -e
sl_check "$rc -eq 0" "broker: exit $rc: $(tail -3 "$T/broker.log")"
"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
grep -q "teacher early: 2000 records in 4/4 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "the early worker's labels: $(cat "$T/verify")"
echo "a worker started before its broker waited, then labeled all 2000 rows"

# --- a broker that cannot bind leaves no new cache behind ------------------------------------
# The port is held by a broker on another store: a second one on the same
# store would be refused by the writer lock before it tried to bind.
BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/holder" "$T/x.npy" "$T/broker2.log"
expect 1 "Address already in use" softlabel-broker --store "$T/new" --dataset "$T/x.npy" \
    --bind "$BROKER_EP"
[ ! -e "$T/new" ] || sl_fail "a broker that could not bind left $T/new: $(ls -la "$T/new")"
grep -q "removed the cache $T/new this failed start created" "$T/err" ||
    sl_fail "no word of the removal: $(cat "$T/err")"
# A directory that was there is kept, with what it held; only the cache
# files this start made go.
mkdir "$T/mine"; echo keep >"$T/mine/notes.txt"
expect 1 "Address already in use" softlabel-broker --store "$T/mine" --dataset "$T/x.npy" \
    --bind "$BROKER_EP"
[ "$(ls "$T/mine")" = "notes.txt" ] || sl_fail "after a failed start $T/mine holds: $(ls "$T/mine")"
[ "$(cat "$T/mine/notes.txt")" = keep ] || sl_fail "notes.txt changed"
# An existing cache is never removed by a failed start.
expect 1 "Address already in use" softlabel-broker --store "$T/cache" --dataset "$T/x.npy" \
    --bind "$BROKER_EP"
[ -f "$T/cache/data.mdb" ] || sl_fail "a failed start on an existing cache removed it"
kill -TERM "$BROKER_PID"
set +e; sl_wait_pid "$BROKER_PID" 30; rc=$?; set -e
sl_check "$rc -eq 0" "broker after SIGTERM: exit $rc"
"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "the cache after failed starts: $(cat "$T/verify")"
echo "label CLI: all checks passed"

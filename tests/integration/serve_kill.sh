#!/bin/sh
# softlabel serve kill -9'ed while a remote student trains, and started
# again on the same port: the student waits (a warning every few seconds),
# resumes when the server is back, and ends with the model of an
# uninterrupted run (one thread), never trained on holes. A student whose
# server never answers gives up after --connect-timeout with exit 1, and
# SIGTERM ends one that waits.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
F=$FMNIST
sl_subset "$F/train-images-idx3-ubyte.gz" 6000 "$T/x.npy"
sl_subset "$F/train-labels-idx1-ubyte.gz" 300 "$T/y.npy"
sl_make_teacher "$T/teacher.safetensors"
sl_label_all "$T/cache" "$T/x.npy" "$T/teacher.safetensors" t 3 2

PORT=$(sl_free_port)
EP=tcp://127.0.0.1:$PORT
start_serve() {
	sl_bg SPID "$BIN/softlabel" serve "$T/cache" --bind "$EP" 2>>"$T/serve.log"
	sl_wait_log "$T/serve.log" " $SPID softlabel-serve INFO ready" 30
}
train() { # store out
	exec "$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" \
	    --store "$1" --alpha 0.7 --temperature 3 --arch 784-128-10 \
	    --epochs 6 --batch 64 --seed 3 --threads 1 --out "$2"
}
(train "$T/cache" "$T/ref.safetensors") 2>"$T/ref.log" ||
    sl_fail "reference run failed: $(tail -3 "$T/ref.log")"

start_serve
sl_bg STU train "$EP" "$T/run.safetensors" 2>"$T/run.log"
sl_wait_log "$T/run.log" "epoch 2: " 120
kill -9 "$SPID"
set +e; sl_wait_pid "$SPID" 10; set -e
# Down long enough for the student to reach the next epoch's reads and
# time out at least once (its request timeout is 5 s).
sl_wait_log "$T/run.log" "no answer for [0-9.]+ s; waiting for a server" 120
kill -0 "$STU" 2>/dev/null || sl_fail "the student died with the server: $(tail -3 "$T/run.log")"
start_serve
set +e; sl_wait_pid "$STU" 300; rc=$?; set -e
sl_check "$rc -eq 0" "student exited $rc: $(tail -3 "$T/run.log")"
grep -q "a server answers again after" "$T/run.log" ||
    sl_fail "no recovery line: $(tail -3 "$T/run.log")"
cmp "$T/ref.safetensors" "$T/run.safetensors" ||
    sl_fail "the model trained across a server kill differs from the uninterrupted one"
waits=$(sl_count "$T/run.log" "no answer for")
echo "student waited ($waits warning lines), resumed and ended bit-identical"

# Nothing listening ever: --connect-timeout gives up with exit 1.
PORT2=$(sl_free_port)
set +e
"$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" \
    --store "tcp://127.0.0.1:$PORT2" --connect-timeout 2 --arch 784-10 \
    --out "$T/none.safetensors" 2>"$T/none.log"
rc=$?
set -e
sl_check "$rc -eq 1" "a student without a server exited $rc: $(tail -2 "$T/none.log")"
grep -q "no server answered within 2 s (--connect-timeout)" "$T/none.log" ||
    sl_fail "no reason given: $(tail -2 "$T/none.log")"
echo "without a server: exit 1 after --connect-timeout"

# SIGTERM ends a student that waits for a server (exit 1, said why).
sl_bg STU2 "$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" \
    --store "tcp://127.0.0.1:$PORT2" --connect-timeout 0 --arch 784-10 \
    --out "$T/term.safetensors" 2>"$T/term.log"
sl_wait_log "$T/term.log" "no answer for [0-9.]+ s; waiting for a server" 60
kill -TERM "$STU2"
set +e; sl_wait_pid "$STU2" 10; rc=$?; set -e
sl_check "$rc -eq 1" "a waiting student on SIGTERM exited $rc: $(tail -2 "$T/term.log")"
grep -q "interrupted while waiting for a server" "$T/term.log" ||
    sl_fail "no reason on SIGTERM: $(tail -2 "$T/term.log")"
echo "SIGTERM ends a student waiting for a server: exit 1"

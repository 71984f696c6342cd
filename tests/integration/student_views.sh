#!/bin/sh
# A student replays a views cache (issue 12): a CNN teacher labels 3 views
# (crop=2,flip, seed 5) of 1,500 Fashion-MNIST rows through a broker and
# two workers; softlabel-student --store on that cache, with no --augment
# of its own, trains epoch e on view (e + offset) mod 3 of every row. For
# the first batch of each epoch its input is byte for byte the view the
# worker labeled (softlabel.views, in Python) and its target the record of
# that (sample, view) (softlabel.cache), not view 0's. --augment and
# --augment-seed that contradict the cache are refused; a student over
# softlabel serve, and a run stopped by SIGTERM and resumed, end
# bit-identical to an uninterrupted local one.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
export PYTHONPATH="$ROOT/common/python${PYTHONPATH:+:$PYTHONPATH}"
F=$FMNIST
N=1500
sl_subset "$F/train-images-idx3-ubyte.gz" $N "$T/x.npy"
sl_subset "$F/train-labels-idx1-ubyte.gz" 300 "$T/y.npy"
CNN=conv:4:3:p=1,relu,maxpool:2,flatten,linear:10

"$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" --arch "$CNN" \
    --epochs 2 --threads 1 --out "$T/t.safetensors" --onnx-out "$T/t.onnx" \
    2>"$T/teacher.log" || sl_fail "teacher: $(tail -2 "$T/teacher.log")"
sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 250 \
    --views 3 --view-recipe crop=2,flip --view-seed 5 --exit-when-done --nosync
for w in 1 2; do
	sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/t.onnx" \
	    --name t --temperature 4 --threads 1 --worker-name "w$w" 2>>"$T/w$w.log"
done
set +e; sl_wait_pid "$BROKER_PID" 300; rc=$?; set -e
sl_check "$rc -eq 0" "broker exit $rc: $(tail -3 "$T/broker.log")"

# The replay, checked against the cache and Python's views.
student() { # out extra...
	o=$1; shift
	exec "$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" \
	    --store "${STORE:-$T/cache}" --arch "$CNN" --epochs 4 --batch 50 --threads 1 \
	    --temperature 4 --out "$o" "$@"
}
(SOFTLABEL_STUDENT_DUMP_INPUTS=$T/s.dump student "$T/s.safetensors" \
    --checkpoint-every 0) 2>"$T/s.log" || sl_fail "student: $(tail -2 "$T/s.log")"
grep -q "replaying 3 views of crop=2,flip (seed 5) from the cache" "$T/s.log" ||
    sl_fail "the student did not say it replays views: $(grep -i view "$T/s.log")"
scale=$($DPY -c 'import numpy as np; print(repr(float(np.float32(1) / np.float32(255))))')
$DPY "$ROOT/tests/python/student_replay.py" "$T/s.dump" "$T/x.npy" "$T/cache" t 4 \
    "$scale" 0 1 4 >"$T/replay.out" || sl_fail "replay: $(tail -1 "$T/replay.out")"
head -1 "$T/replay.out"
other=$(sed -n 's/^other //p' "$T/replay.out")
sl_check "$other -gt 50" "only $other targets differ from view 0's: were views read?"

# Contradicting the cache's views: exit 2, one line.
refuse() { # pattern args...
	pat=$1; shift
	set +e; (student "$T/r.safetensors" "$@") >"$T/r.out" 2>&1; rc=$?; set -e
	sl_check "$rc -eq 2" "'$*': exit $rc, want 2 ($(tail -1 "$T/r.out"))"
	grep -q -- "$pat" "$T/r.out" || sl_fail "'$*': $(cat "$T/r.out"), want '$pat'"
}
refuse "labeled 3 views of crop=2,flip, which the student replays" --augment flip
refuse "drawn with seed 5, which the student replays" --augment crop=2,flip --augment-seed 6
(student "$T/same.safetensors" --augment crop=2,flip --augment-seed 5) 2>"$T/same.log" ||
    sl_fail "the cache's own recipe and seed: $(tail -2 "$T/same.log")"
cmp "$T/s.safetensors" "$T/same.safetensors" ||
    sl_fail "repeating the cache's recipe trained another model"

# Over softlabel serve (RECORDS of (sample, view) pairs): the same model.
PORT=$(sl_free_port)
sl_bg SPID "$BIN/softlabel" serve "$T/cache" --bind "tcp://127.0.0.1:$PORT" \
    2>>"$T/serve.log"
sl_wait_log "$T/serve.log" " $SPID softlabel-serve INFO ready " 30
(STORE=tcp://127.0.0.1:$PORT student "$T/remote.safetensors") 2>"$T/remote.log" ||
    sl_fail "student over serve: $(tail -2 "$T/remote.log")"
grep -q "replaying 3 views of crop=2,flip (seed 5) from the cache" "$T/remote.log" ||
    sl_fail "the remote student did not replay views: $(grep -i view "$T/remote.log")"
cmp "$T/s.safetensors" "$T/remote.safetensors" ||
    sl_fail "the student over softlabel serve trained another model"
kill -TERM "$SPID"
sl_wait_pid "$SPID" 30 || sl_fail "serve did not stop cleanly: $(tail -2 "$T/serve.log")"

# SIGTERM mid-run, then --resume: the same model as the uninterrupted run.
sl_bg P student "$T/k.safetensors" --checkpoint "$T/k.ckpt" --checkpoint-every 5 \
    --resume 2>"$T/k.log"
sl_wait_log "$T/k.log" " $P softlabel-student INFO epoch 1/4" 120
kill -TERM "$P"
set +e; sl_wait_pid "$P" 60; rc=$?; set -e
sl_check "$rc -eq 1" "SIGTERM: exit $rc, want 1 (interrupted; 0: it ended first)"
(student "$T/k.safetensors" --checkpoint "$T/k.ckpt" --checkpoint-every 5 --resume) \
    2>>"$T/k.log" || sl_fail "resumed: $(tail -2 "$T/k.log")"
cmp "$T/s.safetensors" "$T/k.safetensors" || sl_fail "the resumed model differs"
echo "student_views: replay, refusals and resume all checked"

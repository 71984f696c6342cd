#!/bin/sh
# softlabel.worker with per-channel preprocessing (HELLO's 'pre' of
# 4 * (1 + 2C) bytes): a three-channel dataset [N, 3, 28, 28] as in
# label_channels.sh and a small PyTorch CNN exported to ONNX. The C worker
# runs the ONNX file, the Python worker the PyTorch module it came from,
# both with --input-mean 0.485,0.456,0.406 --input-std 0.229,0.224,0.225:
# one teacher, every record equal to PyTorch's softmax(z/2) within 1e-5,
# shards from both. softlabel.Cache reads the three channels as inspect
# shows them; a Python worker with one mean for every channel is another
# preprocessing and refused; three means for one-channel rows are refused
# by the broker naming the rows' shape; lists that do not pair are refused
# before connecting.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
$DPY -c 'import torch, onnx, zmq' 2>/dev/null || { echo "SKIP: python3-torch, python3-onnx or python3-zmq missing"; exit 77; }
export PYTHONPATH="$ROOT/common/python"
OM="$DPY $ROOT/tests/lib/onnx_models.py"
MEAN=0.485,0.456,0.406 STD=0.229,0.224,0.225
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 8000 "$T/gray.npy"
sl_subset "$FMNIST/t10k-labels-idx1-ubyte.gz" 8000 "$T/y.npy"
$DPY -c '
import sys, numpy as np
g = np.load(sys.argv[1])
np.save(sys.argv[2], np.ascontiguousarray(np.stack([g, 255 - g, np.roll(g, 3, axis=2)], axis=1)))' \
    "$T/gray.npy" "$T/rgb.npy"
$OM export rgb "$T/rgb.onnx" --opset 13 --seed 5 --data "$T/rgb.npy" --labels "$T/y.npy" \
    --train-steps 50 --input-mean "$MEAN" --input-std "$STD" >"$T/export.log" 2>&1 ||
    sl_fail "exporting the rgb model: $(tail -3 "$T/export.log")"
$OM predict "$T/rgb.onnx" "$T/rgb.npy" "$T/ref.npy" --temperature 2 \
    --input-mean "$MEAN" --input-std "$STD" >/dev/null || sl_fail "PyTorch's reference"
pyw() { # var log name worker-name extra...
	_v=$1 _l=$2 _n=$3 _w=$4; shift 4
	sl_bg "$_v" $DPY "$ROOT/tests/lib/torch_teacher.py" "$BROKER_EP" "$T/rgb.onnx" "$_n" 2 f32 "$_w" "$@" 2>>"$_l"
}

BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/cache" "$T/rgb.npy" "$T/broker.log" --shard-rows 250
pyw PYW "$T/py.log" rgb py --input-mean "$MEAN" --input-std "$STD"
sl_wait_log "$T/py.log" "INFO ready .*teacher=rgb" 60
sl_bg CW "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/rgb.onnx" --name rgb \
    --temperature 2 --input-mean "$MEAN" --input-std "$STD" --threads 1 --worker-name c \
    2>"$T/c.log"
# One mean for every channel: another teacher's preprocessing.
pyw BAD "$T/bad.log" rgb py-bad --input-mean 0.485 --input-std 0.229
set +e; sl_wait_pid "$BAD" 60; rc=$?; set -e
sl_check "$rc -eq 1" "a Python worker with one mean must be refused (exit $rc)"
grep -q "registered with preprocessing scale 0.00392156886 mean 0.485000014,0.456,0.405999988 std 0.229000002,0.224000007,0.224999994, this worker has scale 0.00392156886 mean 0.485000014 std 0.229000002" "$T/bad.log" ||
    sl_fail "the refusal does not name both preprocessings: $(tail -1 "$T/bad.log")"
$DPY "$ROOT/tests/lib/cache_wait.py" "$T/cache" rgb '*' 32 300 || sl_fail "the job did not finish"
kill -TERM "$BROKER_PID"
set +e; sl_wait_pid "$BROKER_PID" 60; rc=$?; set -e
sl_check "$rc -eq 0" "the broker ended with $rc: $(tail -3 "$T/broker.log")"
"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
"$BIN/softlabel" inspect "$T/cache" >"$T/inspect"
$DPY - "$T/cache" "$T/ref.npy" "$T/inspect" <<'PY' || sl_fail "the cache"
import sys, numpy as np, softlabel
c = softlabel.Cache(sys.argv[1])
t = c.teacher("rgb")
pre = t.preproc
assert pre["channels"] == 3, pre
want = np.float32([0.485, 0.456, 0.406]).tolist(), np.float32([0.229, 0.224, 0.225]).tolist()
assert (pre["mean"], pre["std"]) == want and pre["scale"] == float(np.float32(1) / np.float32(255)), pre
line = f"3 channels: scale {pre['scale']:.9g} mean " + ",".join(f"{v:.9g}" for v in pre["mean"])
assert line in open(sys.argv[3]).read(), f"inspect does not show {line}"
got, ref = c.export("rgb"), np.load(sys.argv[2])
err = float(np.abs(got - ref).max())
workers = sorted({v["worker"] for v in c.shards("rgb").values()})
print(f"rgb: {c.coverage('rgb')['records']} records, max abs error against PyTorch {err:.3g}, "
      f"shards from {workers}")
assert not np.isnan(got).any() and err <= 1e-5 and workers == ["c", "py"]
PY
# Three means for one-channel rows: refused by the broker, naming the shape.
BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/cache-gray" "$T/gray.npy" "$T/broker-gray.log"
pyw G "$T/gray.log" g py-gray --input-mean "$MEAN" --input-std "$STD"
set +e; sl_wait_pid "$G" 60; rc=$?; set -e
sl_check "$rc -eq 1" "three means on one-channel rows must be refused (exit $rc)"
grep -q "3 channel means and stds do not fit rows of shape \[28, 28\]" "$T/gray.log" ||
    sl_fail "the refusal does not name the rows' shape: $(tail -1 "$T/gray.log")"
# Lists that do not pair: refused before anything connects.
set +e
$DPY "$ROOT/tests/lib/torch_teacher.py" "$BROKER_EP" "$T/rgb.onnx" x 2 f32 w \
    --input-mean 1,2 --input-std 1,2,3 2>"$T/pair.log"
rc=$?
set -e
sl_check "$rc -ne 0" "unpaired lists accepted"
grep -q "2 means and 3 stds do not pair" "$T/pair.log" || sl_fail "no reason: $(tail -1 "$T/pair.log")"
echo "softlabel.worker labels per-channel preprocessing beside a C worker, exactly"

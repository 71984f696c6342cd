#!/bin/sh
# Per-channel preprocessing (issue 10): a three-channel dataset [N, 3, 28, 28]
# (Fashion-MNIST images as R, 255 - image as G, the image shifted as B) and
# a small PyTorch CNN on three channels exported to ONNX. A broker and two
# workers with --input-mean 0.485,0.456,0.406 --input-std 0.229,0.224,0.225
# label 2,000 rows: every record equals PyTorch's softmax(z/2) on
# (x / 255 - mean[c]) / std[c] within 1e-5, and so does --evaluate --probs.
# inspect shows the three channels; a second worker with one mean for all
# channels is another teacher's preprocessing and is refused; lists that
# cannot pair exit 2; three means for one-channel rows are refused by the
# broker naming the rows' shape.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
$DPY -c "import torch, onnx, lmdb, numpy" 2>/dev/null ||
    sl_fail "python3-torch, python3-onnx, python3-lmdb or python3-numpy is missing (make deps installs them)"
OM="$DPY $ROOT/tests/lib/onnx_models.py"
MEAN=0.485,0.456,0.406 STD=0.229,0.224,0.225

sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 2000 "$T/gray.npy"
sl_subset "$FMNIST/t10k-labels-idx1-ubyte.gz" 2000 "$T/y.npy"
$DPY -c '
import sys, numpy as np
g = np.load(sys.argv[1])
rgb = np.stack([g, 255 - g, np.roll(g, 3, axis=2)], axis=1)
np.save(sys.argv[2], np.ascontiguousarray(rgb, dtype=np.uint8))
print("rgb rows", rgb.shape)' "$T/gray.npy" "$T/rgb.npy"

$OM export rgb "$T/rgb.onnx" --opset 13 --seed 5 --data "$T/rgb.npy" \
    --labels "$T/y.npy" --train-steps 150 --input-mean "$MEAN" --input-std "$STD" \
    >"$T/export.log" 2>&1 || sl_fail "exporting the rgb model failed: $(tail -3 "$T/export.log")"
$OM predict "$T/rgb.onnx" "$T/rgb.npy" "$T/ref.npy" --temperature 2 \
    --input-mean "$MEAN" --input-std "$STD" || sl_fail "PyTorch's reference failed"

# --evaluate with the lists.
"$BIN/softlabel-student" --evaluate --model "$T/rgb.onnx" --test-data "$T/rgb.npy" \
    --temperature 2 --input-mean "$MEAN" --input-std "$STD" --probs "$T/eval.npy" \
    2>"$T/eval.log" || sl_fail "--evaluate failed: $(tail -2 "$T/eval.log")"
$OM compare "$T/ref.npy" "$T/eval.npy" --atol 1e-5 || sl_fail "--evaluate differs from PyTorch"

# Two workers label it through the broker.
BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/cache" "$T/rgb.npy" "$T/broker.log" --shard-rows 250
sl_bg W1 "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/rgb.onnx" \
    --name rgb --temperature 2 --input-mean "$MEAN" --input-std "$STD" \
    --threads 1 --worker-name w1 2>"$T/w1.log"
sl_bg W2 "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/rgb.onnx" \
    --name rgb --temperature 2 --input-mean "$MEAN" --input-std "$STD" \
    --threads 1 --worker-name w2 --dataset "$T/rgb.npy" 2>"$T/w2.log"
# Each worker exits 0 once the broker says every shard is done.
sl_wait_pid "$W1" 120 || sl_fail "worker 1 failed: $(tail -2 "$T/w1.log")"
sl_wait_pid "$W2" 120 || sl_fail "worker 2 failed: $(tail -2 "$T/w2.log")"

# The same teacher with one mean and std for every channel is refused.
set +e
"$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/rgb.onnx" --name rgb \
    --temperature 2 --input-mean 0.485 --input-std 0.229 --threads 1 2>"$T/w3.log"
rc=$?
set -e
tail -1 "$T/w3.log"
sl_check "$rc -eq 1" "a worker with other preprocessing must be refused (exit $rc)"
grep -q "registered with preprocessing scale 0.00392156886 mean 0.485000014,0.456,0.405999988 std 0.229000002,0.224000007,0.224999994, this worker has scale 0.00392156886 mean 0.485000014 std 0.229000002" "$T/w3.log" ||
    sl_fail "the refusal does not name both preprocessings"

# Lists that do not pair: a usage error before anything connects.
set +e
"$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/rgb.onnx" --name bad \
    --input-mean 1,2 --input-std 1,2,3 2>"$T/w4.log"
rc=$?
set -e
tail -1 "$T/w4.log"
sl_check "$rc -eq 2" "unpaired lists must exit 2 (exit $rc)"
grep -q "2 means and 3 stds do not pair" "$T/w4.log" || sl_fail "no reason for unpaired lists"

"$BIN/softlabel" inspect "$T/cache" >"$T/inspect"
grep -A1 "rgb: " "$T/inspect"
grep -A1 "rgb: " "$T/inspect" | grep -q "3 channels: scale 0.00392156886 mean 0.485000014,0.456,0.405999988 std 0.229000002,0.224000007,0.224999994" ||
    sl_fail "inspect does not show the three channels"
kill "$BROKER_PID"
sl_wait_pid "$BROKER_PID" 20 || sl_fail "the broker did not stop"
"$BIN/softlabel" verify "$T/cache" >"$T/verify" 2>&1 || sl_fail "verify: $(tail -2 "$T/verify")"
$OM check-cache "$T/cache" rgb "$T/ref.npy" 2 --atol 1e-5 ||
    sl_fail "the records differ from PyTorch's"

# Three means for one-channel rows: the broker refuses, naming the shape.
BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/cache-gray" "$T/gray.npy" "$T/broker-gray.log"
set +e
"$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/rgb.onnx" --name g \
    --input-mean "$MEAN" --input-std "$STD" --threads 1 2>"$T/w5.log"
rc=$?
set -e
tail -1 "$T/w5.log"
sl_check "$rc -ne 0" "three means on one-channel rows must be refused"
grep -q "3 channel means and stds do not fit rows of shape \[28, 28\]" "$T/w5.log" ||
    sl_fail "the refusal does not name the rows' shape"
echo "PASS: per-channel preprocessing labels exactly, is registered, shown and checked"

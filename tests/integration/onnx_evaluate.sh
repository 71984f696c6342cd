#!/bin/sh
# Whole models against PyTorch (issue 10): the four issue-10 models (an MLP
# with BatchNorm1d, a ResNet-18-style CNN, a MobileNetV2/V3-style CNN, a
# ViT) are built in PyTorch, trained briefly on Fashion-MNIST, exported with
# torch.onnx.export (dynamic batch) at opsets 13 and 17, and the CNNs once
# more as torch exports them by default (BatchNorm folded into the Conv by
# torch); softlabel-student --evaluate --probs on 2,000 test rows must equal
# PyTorch's softmax(z/2) within 1e-5, with the preprocessing (pixel/255 -
# 0.286) / 0.353 on both sides. Every variant is run; the test fails at the
# end naming each one that differs or did not run.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
$DPY -c "import torch, onnx, numpy" 2>/dev/null ||
    sl_fail "python3-torch, python3-onnx or python3-numpy is missing (make deps installs them)"
OM="$DPY $ROOT/tests/lib/onnx_models.py"
PRE="--input-mean 0.286 --input-std 0.353"
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 2000 "$T/x.npy"

# Train once per kind (Adam, 60 steps, so distributions are far from
# uniform), then export the same weights in each variant.
variants=""
for kind in mlp resnet mobilenet vit; do
	$OM export "$kind" "$T/$kind-{opset}.onnx" --opset 13,17 --seed 7 --train-steps 60 \
	    --data "$FMNIST/train-images-idx3-ubyte.gz" \
	    --labels "$FMNIST/train-labels-idx1-ubyte.gz" $PRE 2>"$T/export.log" ||
	    sl_fail "exporting $kind failed: $(tail -3 "$T/export.log")"
	variants="$variants $kind-13 $kind-17"
	case $kind in resnet|mobilenet)
		$OM export "$kind" "$T/$kind-15-torchbn.onnx" --opset 15 --torch-fold-bn \
		    --state "$T/$kind-13.pt" 2>"$T/export.log" ||
		    sl_fail "exporting $kind folded failed: $(tail -3 "$T/export.log")"
		variants="$variants $kind-15-torchbn" ;;
	esac
done
# shellcheck disable=SC2086
$OM ops $(for v in $variants; do echo "$T/$v.onnx"; done)

failed=""
for v in $variants; do
	$OM predict "$T/$v.onnx" "$T/x.npy" "$T/$v.ref.npy" --temperature 2 $PRE ||
	    sl_fail "PyTorch's reference for $v failed"
	if ! "$BIN/softlabel-student" --evaluate --model "$T/$v.onnx" --test-data "$T/x.npy" \
	    --probs "$T/$v.ours.npy" --temperature 2 $PRE 2>"$T/$v.log"; then
		echo "$v: softlabel-student --evaluate failed: $(tail -1 "$T/$v.log")"
		failed="$failed $v(evaluate)"
		continue
	fi
	$OM compare "$T/$v.ref.npy" "$T/$v.ours.npy" --atol 1e-5 || failed="$failed $v"
done
# To find the first node where the engine goes wrong: SL_KEEP=1, then
#   onnx_models.py run-onnx M.onnx X.npy p.npy --dump DIR   (every node's output)
[ -z "$failed" ] || sl_fail "softlabel differs from PyTorch or did not run on:$failed"
echo "PASS: every model equals PyTorch's softmax(z/2) within 1e-5:$variants"

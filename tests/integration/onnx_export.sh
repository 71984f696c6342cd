#!/bin/sh
# The ONNX files the engine tests use are right, independently of softlabel:
# each issue-10 model (mlp, resnet, mobilenet, vit; random seeded weights,
# BatchNorm with measured statistics), exported at every opset 13..17, is
# run node by node by tests/lib/onnx_models.py's reference interpreter
# (ONNX semantics written out in Python) and equals the PyTorch module
# within 1e-5 on 500 Fashion-MNIST rows, at batch sizes 500, 7 and 1
# (dynamic batch). The op inventory holds what the engine is told to
# expect: BatchNormalization nodes kept (torch's Conv+BN folding is off),
# grouped and dilated and depthwise Conv, LayerNormalization from opset 17
# only, GELU as Erf, HardSwish from opset 14. Passes without the engine; when
# onnx_evaluate.sh fails, this says whether the export or the engine is wrong.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
$DPY -c "import torch, onnx, numpy" 2>/dev/null ||
    sl_fail "python3-torch, python3-onnx or python3-numpy is missing (make deps installs them)"
OM="$DPY $ROOT/tests/lib/onnx_models.py"
PRE="--input-mean 0.286 --input-std 0.353"
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 500 "$T/x.npy"

# The "ops --detail" section of one file.
section() { # file
	awk -v f="$1:" '$1 == f { on = 1; next } /^[^ ]/ { on = 0 } on' "$T/all.ops"
}
has() { # file op -> 0 when the file has that op
	section "$1" | sed -n 1p | grep -qE "(^| )$2 [0-9]"
}

files=""
for kind in mlp resnet mobilenet vit; do
	$OM export "$kind" "$T/$kind-{opset}.onnx" --opset 13-17 --seed 5 \
	    --data "$FMNIST/train-images-idx3-ubyte.gz" $PRE >"$T/export.log" 2>&1 ||
	    sl_fail "exporting $kind failed: $(tail -3 "$T/export.log")"
	for opset in 13 14 15 16 17; do files="$files $T/$kind-$opset.onnx"; done
done
# shellcheck disable=SC2086
$OM check-export "$T/x.npy" $files --temperature 2 $PRE --small-batches 7,1 ||
    sl_fail "an export differs from its PyTorch module (above)"
# shellcheck disable=SC2086
$OM ops --detail $files >"$T/all.ops"
for kind in mlp resnet mobilenet; do
	has "$T/$kind-13.onnx" BatchNormalization ||
	    sl_fail "$kind: no BatchNormalization node (torch folded it)"
done

# What each model must exercise.
section "$T/resnet-13.onnx" >"$T/resnet.ops"
grep -q "g=4 " "$T/resnet.ops" || sl_fail "resnet: no grouped Conv"
grep -q "d=\[2, 2\]" "$T/resnet.ops" || sl_fail "resnet: no dilated Conv"
for op in MaxPool AveragePool GlobalAveragePool Add Gemm Flatten; do
	has "$T/resnet-13.onnx" $op || sl_fail "resnet: no $op"
done
section "$T/mobilenet-13.onnx" >"$T/mobilenet.ops"
grep -q "g=96 W\[96, 1, 3, 3\]" "$T/mobilenet.ops" || sl_fail "mobilenet: no depthwise Conv"
grep -q "Clip x5: min/max as inputs \[0.0, 6.0\]" "$T/mobilenet.ops" || sl_fail "mobilenet: no ReLU6 as Clip(0, 6)"
has "$T/mobilenet-13.onnx" HardSigmoid || sl_fail "mobilenet: no HardSigmoid"
has "$T/mobilenet-13.onnx" HardSwish && sl_fail "mobilenet: HardSwish at opset 13 (it is opset 14)"
has "$T/mobilenet-14.onnx" HardSwish || sl_fail "mobilenet: no HardSwish at opset 14"
for op in Erf Softmax MatMul Transpose Reshape Gather Concat Expand Slice ReduceMean Pow Sqrt; do
	has "$T/vit-13.onnx" $op || sl_fail "vit opset 13: no $op"
done
has "$T/vit-13.onnx" LayerNormalization && sl_fail "vit: LayerNormalization at opset 13"
has "$T/vit-16.onnx" LayerNormalization && sl_fail "vit: LayerNormalization at opset 16"
has "$T/vit-17.onnx" LayerNormalization || sl_fail "vit: no LayerNormalization at opset 17"
echo "PASS: every export equals its PyTorch module at opsets 13-17, batches 500, 7, 1"

#!/bin/sh
# softlabel-student --teacher-model with an ONNX teacher (issue 10): a
# ResNet-style CNN built and exported by PyTorch is the teacher whose
# agreement (fidelity) a small student reports on 2,000 test images. The
# reported fidelity must equal the agreement computed from PyTorch's own
# predictions of the teacher and the student's --evaluate predictions; a
# teacher with another number of classes is refused, naming both.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
$DPY -c "import torch, onnx, numpy" 2>/dev/null ||
    sl_fail "python3-torch, python3-onnx or python3-numpy is missing (make deps installs them)"
OM="$DPY $ROOT/tests/lib/onnx_models.py"
sl_subset "$FMNIST/train-images-idx3-ubyte.gz" 4000 "$T/x.npy"
sl_subset "$FMNIST/train-labels-idx1-ubyte.gz" 4000 "$T/y.npy"
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 2000 "$T/tx.npy"
sl_subset "$FMNIST/t10k-labels-idx1-ubyte.gz" 2000 "$T/ty.npy"

$OM export resnet "$T/teacher.onnx" --opset 17 --seed 3 --data "$T/x.npy" \
    --labels "$T/y.npy" --train-steps 40 >"$T/export.log" 2>&1 ||
    sl_fail "exporting the teacher failed: $(tail -3 "$T/export.log")"
$OM predict "$T/teacher.onnx" "$T/tx.npy" "$T/teacher_probs.npy" ||
    sl_fail "PyTorch's predictions failed"

"$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" --arch 784-32-10 \
    --epochs 2 --seed 1 --threads 1 --test-data "$T/tx.npy" --test-labels "$T/ty.npy" \
    --teacher-model "$T/teacher.onnx" --metrics "$T/m.jsonl" --out "$T/s.safetensors" \
    2>"$T/train.log" || sl_fail "training with an ONNX --teacher-model failed: $(tail -2 "$T/train.log")"
grep "epoch 2/2" "$T/train.log"
"$BIN/softlabel-student" --evaluate --model "$T/s.safetensors" --test-data "$T/tx.npy" \
    --predictions "$T/s_pred.npy" 2>"$T/eval.log" || sl_fail "--evaluate: $(tail -2 "$T/eval.log")"
$DPY - "$T/m.jsonl" "$T/teacher_probs.npy" "$T/s_pred.npy" <<'EOF' || sl_fail "fidelity differs"
import json, sys
import numpy as np
last = json.loads(open(sys.argv[1]).read().splitlines()[-1])
teacher = np.load(sys.argv[2]).argmax(1)
student = np.load(sys.argv[3])
want = float((teacher == student).mean())
print(f"fidelity reported {last['fidelity']:.6f}, from PyTorch's teacher and the student's predictions {want:.6f}")
sys.exit(0 if last["fidelity"] is not None and abs(last["fidelity"] - want) < 1e-6 else 1)
EOF

# A student of 11 classes against the 10-class teacher: refused, naming both.
set +e
"$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" --arch 784-32-11 \
    --epochs 1 --test-data "$T/tx.npy" --test-labels "$T/ty.npy" \
    --teacher-model "$T/teacher.onnx" --out "$T/s11.safetensors" 2>"$T/bad.log"
rc=$?
set -e
tail -1 "$T/bad.log"
sl_check "$rc -ne 0" "a teacher of 10 classes for an 11-class student must be refused"
grep -q "has 10 classes, the student 11" "$T/bad.log" || sl_fail "the refusal does not name both class counts"
echo "PASS: fidelity against an ONNX teacher equals PyTorch's agreement"

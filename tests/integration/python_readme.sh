#!/bin/sh
# The README's Python code runs on Debian 12 as written (no pip package):
# reading a cache, training a PyTorch student with CacheDataset and kd_loss
# (the student it saves is then evaluated by softlabel-student), and
# loading a softlabel model into PyTorch (tests/python/test_readme.py).
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
$DPY -c 'import torch' 2>/dev/null || { echo "SKIP: python3-torch is not installed"; exit 77; }
mkdir "$T/work" "$T/model"
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 3000 "$T/work/train.npy"
sl_subset "$FMNIST/t10k-labels-idx1-ubyte.gz" 3000 "$T/work/labels.npy" 300
sl_subset "$FMNIST/t10k-labels-idx1-ubyte.gz" 3000 "$T/ytest.npy"
sl_make_teacher "$T/teacher.safetensors"
sl_label_all "$T/work/cache" "$T/work/train.npy" "$T/teacher.safetensors" big 4 1
"$BIN/softlabel" export "$T/work/cache" --teacher big --out "$T/work/export.npy" >/dev/null ||
    sl_fail "export"
"$BIN/softlabel-student" --dataset "$T/work/train.npy" --labels "$T/ytest.npy" \
    --arch 784-128-10 --epochs 1 --out "$T/model/student.safetensors" 2>"$T/s.log" ||
    sl_fail "softlabel-student: $(tail -2 "$T/s.log")"
cp "$T/work/train.npy" "$T/model/x.npy"
"$BIN/softlabel-student" --evaluate --model "$T/model/student.safetensors" \
    --test-data "$T/model/x.npy" --probs "$T/model/probs.npy" --threads 1 2>/dev/null >/dev/null ||
    sl_fail "--evaluate --probs"
PYTHONPATH="$ROOT/common/python" OMP_NUM_THREADS=1 $DPY "$ROOT/tests/python/test_readme.py" \
    "$ROOT/README.md" "$T/work" "$T/model" || sl_fail "the README's Python code"
# The PyTorch student the README trains (300 labels, the teacher on all
# 3000 rows) loads in softlabel-student and has learnt.
"$BIN/softlabel-student" --evaluate --model "$T/work/student.safetensors" \
    --test-data "$T/work/train.npy" --test-labels "$T/ytest.npy" >"$T/eval" 2>"$T/eval.log" ||
    sl_fail "softlabel-student cannot evaluate the PyTorch student: $(tail -2 "$T/eval.log")"
"$BIN/softlabel-student" --evaluate --model "$T/teacher.safetensors" \
    --test-data "$T/work/train.npy" --test-labels "$T/ytest.npy" >"$T/teval" 2>/dev/null ||
    sl_fail "evaluating the teacher"
acc=$(sed -n 's/^accuracy \([0-9.]*\).*/\1/p' "$T/eval")
tacc=$(sed -n 's/^accuracy \([0-9.]*\).*/\1/p' "$T/teval")
echo "PyTorch student accuracy $acc, its teacher $tacc"
$DPY -c "import sys; sys.exit(0 if float('$acc') > float('$tacc') - 0.1 else 1)" ||
    sl_fail "the README's PyTorch student reaches only $acc (teacher $tacc)"
echo "the README's Python code runs as written"

#!/bin/sh
# A convolutional student softlabel-student trained in C (conv with stride,
# padding, groups and depthwise, BatchNorm2d, max/avg pools, a residual
# block, global average pool, dropout, a linear layer without bias) loads
# into the torch.nn module --print-torch prints, with strict=True, and
# PyTorch's predictions on the 10,000 Fashion-MNIST test images equal
# softlabel's --evaluate --probs: argmax identical, probabilities within
# 1e-5. --evaluate also reports the same accuracy as the training run's
# last epoch.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
TPY=/usr/bin/python3
export PYTHONPATH="$ROOT/common/python" # softlabel.torch.load_file, as the README
$TPY -c "import torch, numpy" 2>/dev/null ||
    sl_fail "python3-torch is not installed (make deps installs it)"
X=$FMNIST/t10k-images-idx3-ubyte.gz
Y=$FMNIST/t10k-labels-idx1-ubyte.gz
ARCH='conv:8:3:p=1,bn,relu,maxpool:2,res(conv:8:3:p=1:g=8,bn,relu,conv:8:1:bias=0,bn),relu,conv:12:3:s=2:p=1:g=2,bn:eps=0.001:momentum=0.2,relu,avgpool:3:s=1:p=1,gap,flatten,dropout:0.2,linear:10:bias=0'

sl_subset "$X" 2000 "$T/x.npy"
sl_subset "$Y" 2000 "$T/y.npy"
"$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" \
    --arch "$ARCH" --epochs 4 --batch 50 --lr 0.01 --seed 3 --threads 1 \
    --input-mean 0.286 --input-std 0.353 --test-data "$X" --test-labels "$Y" \
    --metrics "$T/m.jsonl" --out "$T/cnn.safetensors" 2>"$T/log" ||
    sl_fail "training failed: $(tail -3 "$T/log")"
acc=$(sl_metric "$T/m.jsonl" test_accuracy)
loss=$(sl_metric "$T/m.jsonl" loss)
echo "trained: loss $loss, test accuracy $acc after 4 epochs on 2000 rows"
# From ln(10) = 2.30 at the start: the network learned, so the weights
# and running statistics compared below are not those of a fresh one.
# (Eval accuracy swings while the running statistics of so short a run
# lag, so the loss is the measure here.)
sl_check "$(awk -v l="$loss" 'BEGIN { print (l < 1.6) }') -eq 1" \
    "the CNN did not learn (loss $loss): the comparison would prove little"
"$BIN/softlabel-student" --print-torch --arch "$ARCH" --dataset "$T/x.npy" \
    >"$T/module.py" 2>>"$T/log" || sl_fail "--print-torch failed"
grep -q "class Residual(nn.Module)" "$T/module.py" || sl_fail "no Residual module printed"
"$BIN/softlabel-student" --evaluate --model "$T/cnn.safetensors" \
    --test-data "$X" --test-labels "$Y" --predictions "$T/pred.npy" \
    --probs "$T/probs.npy" >"$T/eval.out" 2>>"$T/log" ||
    sl_fail "--evaluate failed: $(tail -2 "$T/log")"
cat "$T/eval.out"
ev=$(awk '{ print $2 }' "$T/eval.out")
sl_check "$(awk -v a="$acc" -v b="$ev" 'BEGIN { print (a == b) }') -eq 1" \
    "--evaluate accuracy $ev differs from the training run's $acc"
# 4 epochs of 2000 rows in batches of 50: 160 steps
$TPY "$ROOT/tests/lib/torch_cnn.py" "$T/module.py" "$T/cnn.safetensors" "$X" \
    "$T/probs.npy" "$T/pred.npy" 160 || sl_fail "PyTorch disagrees with softlabel"
echo "PASS"

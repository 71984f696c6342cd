#!/bin/sh
# softlabel-student --augment: the inputs the trainer builds for each row
# of a batch are, byte for byte, the preprocessed view softlabel.views (an
# independent Python implementation of sl_view) computes for (seed, sample,
# view = epoch): on Fashion-MNIST rows (u8, [28, 28]) with every recipe
# item and a mean/std, on float32 [3, 8, 8] rows, with the default seed
# (--seed) and with --augment none. Evaluation never augments: the last
# epoch's test accuracy equals --evaluate's on the saved model. Bad
# combinations are refused with exit 2 and one line.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
F=$FMNIST
sl_subset "$F/train-images-idx3-ubyte.gz" 600 "$T/x.npy"
sl_subset "$F/train-labels-idx1-ubyte.gz" 600 "$T/y.npy"
CNN=conv:4:3:p=1,relu,maxpool:2,flatten,linear:10
TEST="--test-data $F/t10k-images-idx3-ubyte.gz --test-labels $F/t10k-labels-idx1-ubyte.gz"
check() { # dump data recipe seed scale mean std epochs
	PYTHONPATH="$ROOT/common/python" $DPY "$ROOT/tests/python/student_inputs.py" "$@" \
	    >"$T/check.out" || sl_fail "inputs differ from softlabel.views: $(tail -1 "$T/check.out")"
	head -1 "$T/check.out"
	CHANGED=$(sed -n 's/^changed //p' "$T/check.out")
}

# 1. Fashion-MNIST, every item, a mean and std, 3 epochs.
SOFTLABEL_STUDENT_DUMP_INPUTS=$T/a.dump "$BIN/softlabel-student" --dataset "$T/x.npy" \
    --labels "$T/y.npy" --arch "$CNN" --epochs 3 --batch 64 --threads 1 \
    --augment rrc=0.5:1,crop=2,flip --augment-seed 99 --input-mean 0.2 --input-std 0.5 \
    $TEST --metrics "$T/a.jsonl" --out "$T/a.safetensors" 2>"$T/a.log" ||
    sl_fail "augmented training: $(tail -2 "$T/a.log")"
scale=$($DPY -c 'import numpy as np; print(repr(float(np.float32(1) / np.float32(255))))')
check "$T/a.dump" "$T/x.npy" rrc=0.5:1,crop=2,flip 99 "$scale" 0.2 0.5 3
sl_check "$CHANGED -gt 150" "only $CHANGED of 192 rows were transformed"

# Evaluation never augments: --evaluate of the model (no views) scores
# what the last epoch reported.
"$BIN/softlabel-student" --evaluate --model "$T/a.safetensors" $TEST \
    >"$T/eval.out" 2>&1 || sl_fail "--evaluate: $(tail -1 "$T/eval.out")"
errs=$(sl_metric "$T/a.jsonl" test_errors)
grep -q "correct, $errs errors)" "$T/eval.out" ||
    sl_fail "--evaluate: $(grep -o '[0-9]* errors)' "$T/eval.out"), training's last epoch $errs errors"
echo "evaluation without views: $errs errors in training and in --evaluate"

# 2. The seed defaults to --seed.
SOFTLABEL_STUDENT_DUMP_INPUTS=$T/b.dump "$BIN/softlabel-student" --dataset "$T/x.npy" \
    --labels "$T/y.npy" --arch "$CNN" --epochs 1 --batch 32 --seed 5 --threads 1 \
    --augment crop=3 --out "$T/b.safetensors" 2>"$T/b.log" || sl_fail "seed 5: $(tail -2 "$T/b.log")"
check "$T/b.dump" "$T/x.npy" crop=3 5 "$scale" 0 1 1

# 3. float32 rows of 3 channels, an MLP.
$DPY -c 'import numpy as np, sys
g = np.random.default_rng(3)
np.save(sys.argv[1], g.standard_normal((200, 3, 8, 8)).astype(np.float32))
np.save(sys.argv[2], g.integers(0, 10, 200))' "$T/f.npy" "$T/fy.npy"
SOFTLABEL_STUDENT_DUMP_INPUTS=$T/c.dump "$BIN/softlabel-student" --dataset "$T/f.npy" \
    --labels "$T/fy.npy" --arch 192-16-10 --epochs 2 --batch 50 --threads 1 \
    --augment rrc=0.3:0.9,crop=1,flip --augment-seed 7 --out "$T/c.safetensors" \
    2>"$T/c.log" || sl_fail "float32 rows: $(tail -2 "$T/c.log")"
check "$T/c.dump" "$T/f.npy" rrc=0.3:0.9,crop=1,flip 7 1 0 1 2
sl_check "$CHANGED -gt 80" "only $CHANGED of 100 float32 rows were transformed"

# 4. --augment none trains on the stored rows, and the same model as no
# --augment at all.
SOFTLABEL_STUDENT_DUMP_INPUTS=$T/d.dump "$BIN/softlabel-student" --dataset "$T/x.npy" \
    --labels "$T/y.npy" --arch "$CNN" --epochs 1 --batch 64 --threads 1 --augment none \
    --out "$T/d.safetensors" 2>"$T/d.log" || sl_fail "none: $(tail -2 "$T/d.log")"
check "$T/d.dump" "$T/x.npy" none 1 "$scale" 0 1 1
sl_check "$CHANGED -eq 0" "--augment none changed $CHANGED rows"
"$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" --arch "$CNN" \
    --epochs 1 --batch 64 --threads 1 --out "$T/e.safetensors" 2>"$T/e.log" || sl_fail "plain"
cmp "$T/d.safetensors" "$T/e.safetensors" || sl_fail "--augment none trained another model"

# 5. Refusals: exit 2, one line naming the problem.
$DPY -c 'import numpy as np, sys
np.save(sys.argv[1], np.zeros((10, 784), np.uint8))
np.save(sys.argv[2], np.zeros(10, np.int64))' "$T/flat.npy" "$T/flaty.npy"
refuse() { # pattern args...
	pat=$1; shift
	set +e; "$BIN/softlabel-student" "$@" >"$T/r.out" 2>&1; rc=$?; set -e
	sl_check "$rc -eq 2" "'$*': exit $rc, want 2 ($(tail -1 "$T/r.out"))"
	grep -q -- "$pat" "$T/r.out" || sl_fail "'$*': $(cat "$T/r.out"), want '$pat'"
	sl_check "$(grep -c ERROR "$T/r.out") -le 1" "'$*': more than one error line"
}
base="--dataset $T/x.npy --labels $T/y.npy --arch $CNN --out $T/r.safetensors"
refuse "unknown" $base --augment mirror
refuse "crop" $base --augment crop=0
refuse "H, W" --dataset "$T/flat.npy" --labels "$T/flaty.npy" --arch 784-10 --out "$T/r.st" --augment flip
refuse "needs --augment" $base --augment-seed 3
refuse "never augments" --evaluate --model "$T/a.safetensors" $TEST --augment flip
echo "refusals: exit 2 with one line"

# A checkpoint of one recipe or seed does not resume another: the option
# that differs is named.
"$BIN/softlabel-student" $base --epochs 1 --threads 1 --augment crop=2 \
    --checkpoint "$T/k.ckpt" 2>"$T/k.log" || sl_fail "checkpointed run: $(tail -2 "$T/k.log")"
refuse "augment is crop=2 there, crop=3 here" $base --epochs 2 --augment crop=3 --checkpoint "$T/k.ckpt" --resume
refuse "augment-seed is 1 there, 4 here" $base --epochs 2 --augment crop=2 --augment-seed 4 --checkpoint "$T/k.ckpt" --resume
refuse "augment is crop=2 there, none here" $base --epochs 2 --checkpoint "$T/k.ckpt" --resume
echo "a checkpoint resumes only the same views"

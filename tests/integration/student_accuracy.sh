#!/bin/sh
# The 784-128-10 student trained on all 60,000 Fashion-MNIST labels for three
# epochs must pass 85% test accuracy (PyTorch: about 86-87% at this point),
# and --evaluate of the saved model must report the same accuracy as the
# trainer's last epoch.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP

"$BIN/softlabel-student" --dataset "$FMNIST/train-images-idx3-ubyte.gz" \
    --labels "$FMNIST/train-labels-idx1-ubyte.gz" --arch 784-128-10 \
    --epochs 3 --batch 128 --lr 0.001 --optimizer adam --seed 1 \
    --test-data "$FMNIST/t10k-images-idx3-ubyte.gz" \
    --test-labels "$FMNIST/t10k-labels-idx1-ubyte.gz" \
    --metrics "$T/m.jsonl" --out "$T/student.safetensors" 2>"$T/log" ||
    sl_fail "training failed: $(tail -3 "$T/log")"
acc=$(sl_metric "$T/m.jsonl" test_accuracy)
errors=$(sl_metric "$T/m.jsonl" test_errors)
echo "test accuracy after 3 epochs: $acc ($errors errors)"
sl_check "$(awk -v a="$acc" 'BEGIN { print (a >= 0.85) }') -eq 1" \
    "accuracy $acc below 0.85"

"$BIN/softlabel-student" --evaluate --model "$T/student.safetensors" \
    --test-data "$FMNIST/t10k-images-idx3-ubyte.gz" \
    --test-labels "$FMNIST/t10k-labels-idx1-ubyte.gz" >"$T/eval" 2>&1 ||
    sl_fail "evaluate failed: $(cat "$T/eval")"
grep -q "($((10000 - errors))/10000 correct, $errors errors)" "$T/eval" ||
    sl_fail "evaluate disagrees with training: $(cat "$T/eval")"
echo "evaluate agrees: $(cat "$T/eval")"

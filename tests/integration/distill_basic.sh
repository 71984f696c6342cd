#!/bin/sh
# Semi-supervised distillation through real processes: a teacher trained on
# 12,000 labeled images labels them through a broker and two workers; a
# 784-64-10 student that knows only 1,000 of the labels then trains (a) on
# those labels alone and (b) distilled from the cache (alpha 0.9, T 4).
# Distillation must beat labels-only by at least 2 points of test accuracy
# on the 10,000 test images (measured here: 73.8% -> 82.2%).
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
F=$FMNIST
sl_subset "$F/train-images-idx3-ubyte.gz" 12000 "$T/x.npy"
sl_subset "$F/train-labels-idx1-ubyte.gz" 12000 "$T/y.npy"
sl_subset "$F/train-labels-idx1-ubyte.gz" 1000 "$T/y1k.npy"
TEST="--test-data $F/t10k-images-idx3-ubyte.gz --test-labels $F/t10k-labels-idx1-ubyte.gz"

"$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" --arch 784-256-10 \
    --epochs 5 --seed 1 $TEST --metrics "$T/teacher.jsonl" \
    --out "$T/teacher.safetensors" 2>"$T/teacher.log" || sl_fail "teacher"
sl_label_all "$T/cache" "$T/x.npy" "$T/teacher.safetensors" t256 4 2
"$BIN/softlabel" verify "$T/cache" | tail -1 | grep -q ok || sl_fail "verify"

common="--dataset $T/x.npy --labels $T/y1k.npy --arch 784-64-10 --epochs 10 --seed 2 $TEST"
"$BIN/softlabel-student" $common --metrics "$T/labels.jsonl" \
    --out "$T/labels.safetensors" 2>"$T/labels.log" || sl_fail "labels-only"
"$BIN/softlabel-student" $common --store "$T/cache" --alpha 0.9 --temperature 4 \
    --teacher-model "$T/teacher.safetensors" --metrics "$T/kd.jsonl" \
    --out "$T/kd.safetensors" 2>"$T/kd.log" || sl_fail "distilled: $(tail -2 "$T/kd.log")"
teacher=$(sl_metric "$T/teacher.jsonl" test_accuracy)
labels=$(sl_metric "$T/labels.jsonl" test_accuracy)
kd=$(sl_metric "$T/kd.jsonl" test_accuracy)
fid=$(sl_metric "$T/kd.jsonl" fidelity)
rows=$(sl_metric "$T/kd.jsonl" rows)
echo "teacher $teacher; student on 1,000 labels $labels; distilled ($rows rows) $kd, fidelity $fid"
sl_check "$rows -eq 12000" "the distilled student did not use every row"
sl_check "$(awk -v a="$kd" -v b="$labels" 'BEGIN { print (a >= b + 0.02) }') -eq 1" \
    "distillation did not beat labels-only by 2 points"

# Selection queries change what is used, not the cache.
"$BIN/softlabel-student" $common --epochs 1 --store "$T/cache" --min-confidence 0.9 \
    --metrics "$T/sel.jsonl" --out "$T/sel.safetensors" 2>"$T/sel.log" || sl_fail "selection"
sel=$(sl_metric "$T/sel.jsonl" rows)
"$BIN/softlabel-student" $common --epochs 1 --store "$T/cache" --balance 100 \
    --metrics "$T/bal.jsonl" --out "$T/bal.safetensors" 2>"$T/bal.log" || sl_fail "balance"
bal=$(sl_metric "$T/bal.jsonl" rows)
echo "rows with --min-confidence 0.9: $sel; with --balance 100: $bal (1000 labeled + at most 10 x 100)"
sl_check "$sel -gt 1000 -a $sel -lt 12000" "confidence selection kept $sel rows"
sl_check "$bal -gt 1000 -a $bal -le 2000" "balance kept $bal rows"
"$BIN/softlabel" verify "$T/cache" | tail -1 | grep -q ok || sl_fail "the cache changed"

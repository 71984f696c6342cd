#!/bin/sh
# softlabel-student's command line: --help tells every option, bad usage
# exits 2 naming the bad value, bad files exit 1 with one line naming the file
# and the problem, never a crash.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
S=$BIN/softlabel-student
X=$FMNIST/t10k-images-idx3-ubyte.gz
Y=$FMNIST/t10k-labels-idx1-ubyte.gz

expect() { # want-exit want-stderr-substring args...
	want=$1 msg=$2; shift 2
	set +e
	"$S" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	set -e
	[ "$rc" -eq "$want" ] || sl_fail "$*: exit $rc, want $want; stderr: $(cat "$T/err")"
	grep -qF -- "$msg" "$T/err" "$T/out" ||
	    sl_fail "$*: output lacks '$msg': $(cat "$T/err")"
	# A crash would show as a signal exit above; sanitizers print this:
	! grep -q "runtime error\|AddressSanitizer" "$T/err" ||
	    sl_fail "$*: sanitizer report"
}

expect 0 "--checkpoint-every STEPS" --help
for o in dataset labels arch epochs batch lr optimizer dropout seed \
    input-scale test-data test-labels out checkpoint resume metrics threads \
    evaluate model predictions; do
	grep -q -- "--$o" "$T/out" || sl_fail "--help does not list --$o"
done
grep -q "(default 128)" "$T/out" || sl_fail "--help does not give defaults"
expect 0 "softlabel-student 0." --version
expect 2 "unknown option '--bogus'" --bogus
expect 2 "--epochs: 0 is out of range" --epochs 0
expect 2 "--optimizer: 'rmsprop' is not one of sgd|adam" --optimizer rmsprop
expect 2 "--lr: 'fast' is not a finite number" --lr fast
expect 2 "--dataset is required" --labels "$Y" --arch 784-10 --out "$T/m"
expect 2 "--arch: '784-x' is not a layer list" --dataset "$X" --labels "$Y" --arch 784-x --out "$T/m"
expect 2 "rows have 784 values, --arch 100-10 expects 100" --dataset "$X" --labels "$Y" --arch 100-10 --out "$T/m"
expect 2 "label 9 at row" --dataset "$X" --labels "$Y" --arch 784-5 --out "$T/m"
expect 1 "$T/missing.npy: open: No such file" --dataset "$T/missing.npy" --labels "$Y" --arch 784-10 --out "$T/m"

# Malformed files: truncated dataset, garbage model.
head -c 1000 "$X" >"$T/trunc.gz"
expect 1 "$T/trunc.gz:" --dataset "$T/trunc.gz" --labels "$Y" --arch 784-10 --out "$T/m"
printf 'not a model at all' >"$T/bad.safetensors"
expect 1 "$T/bad.safetensors:" --evaluate --model "$T/bad.safetensors" --test-data "$X" --test-labels "$Y"
printf '\377\377\377\377\377\377\377\177{}' >"$T/huge.safetensors"
expect 1 "$T/huge.safetensors:" --evaluate --model "$T/huge.safetensors" --test-data "$X" --test-labels "$Y"
[ "$(wc -l <"$T/err")" -eq 1 ] || sl_fail "error is not one line: $(cat "$T/err")"

# A tiny run end to end, then --evaluate with predictions.
sl_subset "$X" 500 "$T/x.npy"
sl_subset "$Y" 500 "$T/y.npy"
"$S" --dataset "$T/x.npy" --labels "$T/y.npy" --arch 784-32-10 --epochs 2 \
    --batch 50 --seed 3 --out "$T/m.safetensors" --metrics "$T/m.jsonl" \
    2>"$T/train.log" || sl_fail "tiny run failed: $(cat "$T/train.log")"
[ "$(wc -l <"$T/m.jsonl")" -eq 2 ] || sl_fail "want one metrics line per epoch"
grep -q '"epoch":2,"step":20,' "$T/m.jsonl" || sl_fail "metrics: $(cat "$T/m.jsonl")"
expect 0 "accuracy " --evaluate --model "$T/m.safetensors" --test-data "$T/x.npy" \
    --test-labels "$T/y.npy" --predictions "$T/p.npy"
expect 2 "but file has 784-32-10" --evaluate --model "$T/m.safetensors" --arch 784-64-10 --test-data "$X" --test-labels "$Y"
# predictions: .npy header, then 500 int32
sz=$(wc -c <"$T/p.npy")
[ "$sz" -eq $((128 + 500 * 4)) ] || [ "$sz" -eq $((64 + 500 * 4)) ] ||
    sl_fail "predictions file has $sz bytes"

# --- frictions of issue 14 ---------------------------------------------------------
# Nothing a refused start leaves behind: no --out, no --checkpoint, no --metrics.
no_files() { # context
	for f in "$T/f.safetensors" "$T/f.ckpt" "$T/f.jsonl"; do
		[ ! -e "$f" ] || sl_fail "$1: left $f behind"
	done
}
F="--out $T/f.safetensors --checkpoint $T/f.ckpt --metrics $T/f.jsonl"
sl_subset "$Y" 400 "$T/y400.npy"
# Test labels of another length than the test data: refused, in training
# and in --evaluate (they used to score against the wrong rows, exit 0).
expect 2 "$T/y400.npy: 400 labels for the 500 rows of $T/x.npy (test labels: one per row)" \
    --dataset "$T/x.npy" --labels "$T/y.npy" --arch 784-10 --test-data "$T/x.npy" \
    --test-labels "$T/y400.npy" $F
no_files "test labels of another length"
expect 2 "$T/y400.npy: 400 labels for the 500 rows of $T/x.npy (test labels: one per row)" \
    --evaluate --model "$T/m.safetensors" --test-data "$T/x.npy" --test-labels "$T/y400.npy"
[ "$(wc -l <"$T/err")" -eq 1 ] || sl_fail "error is not one line: $(cat "$T/err")"
# Fewer training labels stay allowed: the rest are unlabeled (documented).
"$S" --dataset "$T/x.npy" --labels "$T/y400.npy" --arch 784-10 --epochs 1 \
    --out "$T/short.safetensors" 2>"$T/err" || sl_fail "fewer training labels: $(cat "$T/err")"

# Distillation options without --store: refused, not ignored.
for o in "--teacher big" "--teacher-weights 1" "--alpha 0.5" "--temperature 2" \
    "--min-confidence 0.5" "--balance 10" "--on-corrupt skip" "--wait-coverage 0.5" \
    "--wait-timeout 5"; do
	# shellcheck disable=SC2086
	expect 2 "${o%% *} is a distillation option and needs --store" \
	    --dataset "$T/x.npy" --labels "$T/y.npy" --arch 784-10 $o $F
	no_files "$o without --store"
done
# --alpha 0 without a store is plain supervised training (DESIGN.md).
expect 0 "1 epoch," --dataset "$T/x.npy" --labels "$T/y.npy" --arch 784-10 --alpha 0 \
    --epochs 1 --out "$T/a0.safetensors"
# "1 epoch", not "1 epochs".
! grep -q "1 epochs" "$T/err" || sl_fail "pluralisation: $(grep epochs "$T/err")"

# --evaluate with nothing to print: exit 2, not a silent 0.
expect 2 "--evaluate has nothing to report: give --test-labels (accuracy), --predictions FILE or --probs FILE" \
    --evaluate --model "$T/m.safetensors" --test-data "$T/x.npy"

# A non-model file as --model: what it looks like and what is accepted, on
# each path that loads a model (graph, MLP-only with --arch, --teacher-model).
want="$T/x.npy: a NumPy .npy array, not a model (a safetensors MLP or an ONNX model)"
expect 1 "$want" --evaluate --model "$T/x.npy" --test-data "$T/x.npy" --test-labels "$T/y.npy"
[ "$(wc -l <"$T/err")" -eq 1 ] || sl_fail "error is not one line: $(cat "$T/err")"
expect 1 "$want" --evaluate --model "$T/x.npy" --arch 784-10 --test-data "$T/x.npy" \
    --test-labels "$T/y.npy"
expect 1 "$want" --dataset "$T/x.npy" --labels "$T/y.npy" --arch 784-10 \
    --test-data "$T/x.npy" --test-labels "$T/y.npy" --teacher-model "$T/x.npy" $F
no_files "a .npy as --teacher-model"
cp "$Y" "$T/labels.gz"
expect 1 "gzip data (an IDX.gz dataset?), not a model" --evaluate --model "$T/labels.gz" \
    --test-data "$T/x.npy" --test-labels "$T/y.npy"

# A --metrics file that cannot be written is found before training.
expect 2 "--metrics $T/nodir/m.jsonl: cannot write there: No such file or directory" \
    --dataset "$T/x.npy" --labels "$T/y.npy" --arch 784-10 --metrics "$T/nodir/m.jsonl" \
    --out "$T/f.safetensors"
no_files "an unwritable --metrics"

# A refused checkpoint names the setting that differs and both values (exit 2,
# like any option that does not fit), and leaves the checkpoint alone.
"$S" --dataset "$T/x.npy" --labels "$T/y.npy" --arch 784-16-10 --epochs 1 --lr 0.001 \
    --checkpoint "$T/c.ckpt" --out "$T/c.safetensors" 2>"$T/err" ||
    sl_fail "checkpointed run: $(cat "$T/err")"
cp "$T/c.ckpt" "$T/c.ckpt.orig"
expect 2 "--resume $T/c.ckpt: checkpoint belongs to another run: --lr is 0.001 there, 0.01 here" \
    --dataset "$T/x.npy" --labels "$T/y.npy" --arch 784-16-10 --epochs 2 --lr 0.01 \
    --checkpoint "$T/c.ckpt" --resume --out "$T/c2.safetensors" --metrics "$T/c2.jsonl"
[ ! -e "$T/c2.jsonl" ] || sl_fail "a refused resume created its --metrics file"
expect 2 "--seed is 1 there, 5 here" --dataset "$T/x.npy" --labels "$T/y.npy" \
    --arch 784-16-10 --epochs 2 --seed 5 --checkpoint "$T/c.ckpt" --resume --out "$T/c2.safetensors"
expect 2 "--labels is sha256:" --dataset "$T/x.npy" --labels "$T/y400.npy" \
    --arch 784-16-10 --epochs 2 --checkpoint "$T/c.ckpt" --resume --out "$T/c2.safetensors"
cmp "$T/c.ckpt" "$T/c.ckpt.orig" || sl_fail "a refused resume changed the checkpoint"
[ ! -e "$T/c2.safetensors" ] || sl_fail "a refused resume wrote --out"

# --lr-schedule cosine: epoch e of E trains at lr * (1 + cos(pi * e / E)) / 2,
# as the metrics say; the schedule and, with it, --epochs belong to the
# checkpoint (a cosine run cannot be extended as a constant one can).
"$S" --dataset "$T/x.npy" --labels "$T/y.npy" --arch 784-16-10 --epochs 4 --lr 0.002 \
    --lr-schedule cosine --checkpoint "$T/cos.ckpt" --metrics "$T/cos.jsonl" \
    --out "$T/cos.safetensors" 2>"$T/err" || sl_fail "cosine run: $(cat "$T/err")"
lrs=$(sed -n 's/.*"lr":\([^,]*\),.*/\1/p' "$T/cos.jsonl" | tr '\n' ' ')
want=$(awk 'BEGIN { for (e = 0; e < 4; e++) printf "%.6f ", 0.002 * (1 + cos(3.14159265358979 * e / 4)) / 2 }')
got=$(echo "$lrs" | awk '{ for (i = 1; i <= NF; i++) printf "%.6f ", $i }')
sl_check "\"$got\" = \"$want\"" "cosine learning rates per epoch: $lrs, want $want"
expect 2 "--epochs is 4 there, 5 here" --dataset "$T/x.npy" --labels "$T/y.npy" \
    --arch 784-16-10 --epochs 5 --lr 0.002 --lr-schedule cosine --checkpoint "$T/cos.ckpt" \
    --resume --out "$T/c2.safetensors"
expect 2 "--lr-schedule is cosine there, constant here" --dataset "$T/x.npy" \
    --labels "$T/y.npy" --arch 784-16-10 --epochs 4 --lr 0.002 --checkpoint "$T/cos.ckpt" \
    --resume --out "$T/c2.safetensors"
expect 2 "--lr-schedule: 'step' is not one of constant|cosine" --dataset "$T/x.npy" \
    --labels "$T/y.npy" --arch 784-16-10 --lr-schedule step --out "$T/c2.safetensors"

# A resumed epoch's metrics line covers the whole epoch: a run stopped by
# SIGTERM mid-epoch and resumed reports, epoch by epoch, the very losses of
# an uninterrupted run (one thread: bit-identical, so the printed values are
# equal). SIGTERM is acted on after a batch, so it lands mid-epoch unless
# the run is already over (then the test says so).
sl_subset "$X" 6000 "$T/x6k.npy"
sl_subset "$Y" 6000 "$T/y6k.npy"
run6k() { # out metrics extra...
	o=$1 m=$2; shift 2
	exec "$S" --dataset "$T/x6k.npy" --labels "$T/y6k.npy" --arch 784-256-10 --epochs 6 \
	    --batch 20 --seed 4 --threads 1 --checkpoint-every 0 --metrics "$m" --out "$o" "$@"
}
(run6k "$T/ref6k.safetensors" "$T/ref6k.jsonl") 2>"$T/ref6k.log" ||
    sl_fail "reference run: $(tail -2 "$T/ref6k.log")"
sl_bg P run6k "$T/res6k.safetensors" "$T/res6k.jsonl" --checkpoint "$T/r.ckpt" --resume \
    2>"$T/res6k.log"
sl_wait_log "$T/res6k.log" " $P softlabel-student INFO training" 60
kill -TERM "$P"
set +e; sl_wait_pid "$P" 60; rc=$?; set -e
sl_check "$rc -eq 1" "SIGTERM: exit $rc, want 1 (interrupted; if 0 the run ended before the signal)"
(run6k "$T/res6k.safetensors" "$T/res6k.jsonl" --checkpoint "$T/r.ckpt" --resume) \
    2>>"$T/res6k.log" || sl_fail "resumed run: $(tail -2 "$T/res6k.log")"
grep -qE "resume: epoch [0-9]+ batch [1-9][0-9]* " "$T/res6k.log" ||
    sl_fail "not resumed mid-epoch: $(grep resume "$T/res6k.log")"
cmp "$T/ref6k.safetensors" "$T/res6k.safetensors" || sl_fail "resumed model differs"
for e in 1 2 3 4 5 6; do
	a=$(grep "\"epoch\":$e," "$T/ref6k.jsonl" | sed -n 's/.*"loss":\([^,]*\),.*/\1/p')
	b=$(grep "\"epoch\":$e," "$T/res6k.jsonl" | sed -n 's/.*"loss":\([^,]*\),.*/\1/p')
	[ -n "$a" ] && [ "$a" = "$b" ] ||
	    sl_fail "epoch $e: loss $b after the resume, $a uninterrupted: $(cat "$T/res6k.jsonl")"
done
echo "resumed run: every epoch's loss equals the uninterrupted run's"
echo "student CLI: all checks passed"

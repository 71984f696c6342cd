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
expect 1 "$T/bad.safetensors:" --evaluate --model "$T/bad.safetensors" --test-data "$X"
printf '\377\377\377\377\377\377\377\177{}' >"$T/huge.safetensors"
expect 1 "$T/huge.safetensors:" --evaluate --model "$T/huge.safetensors" --test-data "$X"
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
expect 2 "but file has 784-32-10" --evaluate --model "$T/m.safetensors" --arch 784-64-10 --test-data "$X"
# predictions: .npy header, then 500 int32
sz=$(wc -c <"$T/p.npy")
[ "$sz" -eq $((128 + 500 * 4)) ] || [ "$sz" -eq $((64 + 500 * 4)) ] ||
    sl_fail "predictions file has $sz bytes"
echo "student CLI: all checks passed"

#!/bin/sh
# Convolutional students, softlabel and PyTorch side by side in the same
# run: the same network (the module softlabel-student --print-torch
# prints), the same rows (BENCH_CNN_ROWS of Fashion-MNIST's training set,
# default 10000), PyTorch's initialisation rule on both sides, Adam at lr
# 0.002, batch 64, BENCH_CNN_EPOCHS epochs (default 2), the same
# preprocessing, BENCH_THREADS threads (default 2; PyTorch with
# OMP_WAIT_POLICY=PASSIVE, its best setting here). Prints each side's
# test accuracy on the 10,000 test images and training samples/s (the best
# epoch), and softlabel/PyTorch ratios: figures, never thresholds.
# PyTorch missing is reported, not a failure. Two networks: a small
# student and a larger teacher-sized CNN.
set -eu
BUILD=${BUILD:-build}
THREADS=${BENCH_THREADS:-2}
ROWS=${BENCH_CNN_ROWS:-10000}
EPOCHS=${BENCH_CNN_EPOCHS:-2}
DPY=/usr/bin/python3
F=${FMNIST:-/usr/share/datasets/fashion-mnist}
here=$(dirname "$0")
dir=$(mktemp -d "${TMPDIR:-/tmp}/bench_cnn.XXXXXX")
trap 'rm -rf "$dir"' EXIT
TX=$F/t10k-images-idx3-ubyte.gz
TY=$F/t10k-labels-idx1-ubyte.gz
$DPY "$here/../lib/subset.py" "$F/train-images-idx3-ubyte.gz" "$ROWS" "$dir/x.npy"
$DPY "$here/../lib/subset.py" "$F/train-labels-idx1-ubyte.gz" "$ROWS" "$dir/y.npy"
torch=1
$DPY -c 'import torch' 2>/dev/null || torch=0

run() { # name arch
	name=$1 arch=$2
	echo "-- $name: $arch ($ROWS rows, $EPOCHS epochs, batch 64, Adam 0.002, $THREADS threads)"
	"$BUILD/bin/softlabel-student" --dataset "$dir/x.npy" --labels "$dir/y.npy" \
	    --arch "$arch" --epochs "$EPOCHS" --batch 64 --lr 0.002 \
	    --threads "$THREADS" --input-mean 0.286 --input-std 0.353 \
	    --test-data "$TX" --test-labels "$TY" --metrics "$dir/$name.jsonl" \
	    --out "$dir/$name.safetensors" 2>/dev/null
	sl_rate=$(sed -n 's/.*"samples_per_s":\([0-9.]*\).*/\1/p' "$dir/$name.jsonl" | sort -n | tail -n 1)
	sl_acc=$(tail -n 1 "$dir/$name.jsonl" | sed -n 's/.*"test_accuracy":\([0-9.]*\).*/\1/p')
	echo "softlabel: test_accuracy $sl_acc, train $sl_rate samples/s"
	[ "$torch" -eq 1 ] || return 0
	"$BUILD/bin/softlabel-student" --print-torch --dataset "$dir/x.npy" \
	    --arch "$arch" >"$dir/$name.py"
	OMP_NUM_THREADS=$THREADS OMP_WAIT_POLICY=PASSIVE \
	    $DPY "$here/bench_cnn_torch.py" "$dir/$name.py" "$dir/x.npy" "$dir/y.npy" \
	    "$TX" "$TY" 0.002 64 "$EPOCHS" "$THREADS" 0.286 0.353 | tee "$dir/$name.torch"
	t_rate=$(sed -n 's/.* \([0-9][0-9]*\) samples\/s.*/\1/p' "$dir/$name.torch" | sort -n | tail -n 1)
	t_acc=$(tail -n 1 "$dir/$name.torch" | sed -n 's/.*test_accuracy \([0-9.]*\).*/\1/p')
	awk -v n="$name" -v s="$sl_rate" -v t="$t_rate" -v a="$sl_acc" -v b="$t_acc" 'BEGIN {
	    printf "ratio %-8s softlabel %6.0f  PyTorch %6.0f samples/s  softlabel/PyTorch %.2fx;  accuracy %.4f vs %.4f (%+.2f points)\n",
	        n, s, t, s / t, a, b, 100 * (a - b) }'
}
run student 'conv:8:3:p=1,bn,relu,maxpool:2,conv:16:3:p=1,bn,relu,maxpool:2,flatten,linear:10'
run teacher 'conv:16:3:p=1,bn,relu,maxpool:2,res(conv:16:3:p=1,bn,relu,conv:16:3:p=1,bn),relu,conv:32:3:p=1,bn,relu,maxpool:2,conv:64:3:p=1,bn,relu,gap,flatten,linear:10'
[ "$torch" -eq 1 ] || echo "PyTorch: $DPY cannot import torch (python3-torch): no ratios"

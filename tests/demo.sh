#!/bin/sh
# make demo: softlabel on real Fashion-MNIST (Debian's dataset-fashion-mnist).
#
# Today it trains, with softlabel-student on all 60,000 labeled images:
#   - the 784-1200-1200-10 teacher (dropout 0.2, Adam 1e-3, batch 128, 20 epochs)
#   - the 784-128-10 student on labels only (Adam 1e-3, batch 128, 10 epochs)
# and prints each one's test accuracy, error count, parameters and wall time.
# Distributed labeling into the logit cache and distillation from it are the
# next steps of the project and will join this script as they land.
#
# Everything goes into one directory, printed at the start and the end
# (DEMO_DIR to choose it). No process outlives the script.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
S=$BUILD/bin/softlabel-student
F=${FMNIST:-/usr/share/datasets/fashion-mnist}
OUT=${DEMO_DIR:-$ROOT/build/demo-$(date +%Y%m%d-%H%M%S)}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-20}
STUDENT_EPOCHS=${STUDENT_EPOCHS:-10}
mkdir -p "$OUT"
echo "demo: writing into $OUT"

TRAIN="--dataset $F/train-images-idx3-ubyte.gz --labels $F/train-labels-idx1-ubyte.gz"
TEST="--test-data $F/t10k-images-idx3-ubyte.gz --test-labels $F/t10k-labels-idx1-ubyte.gz"
ROWS=""

step() { # name arch epochs extra...
	name=$1 arch=$2 epochs=$3; shift 3
	echo "demo: training $name ($arch, $epochs epochs); log $OUT/$name.log"
	start=$(date +%s)
	# shellcheck disable=SC2086
	"$S" $TRAIN $TEST --arch "$arch" --epochs "$epochs" --batch 128 \
	    --lr 0.001 --optimizer adam --seed 1 "$@" \
	    --metrics "$OUT/$name.jsonl" --checkpoint "$OUT/$name.ckpt" --resume \
	    --out "$OUT/$name.safetensors" 2>&1 | tee "$OUT/$name.log" |
	    grep --line-buffered -E "epoch|ERROR" | sed -u 's/^/    /'
	wall=$(($(date +%s) - start))
	last=$(tail -n 1 "$OUT/$name.jsonl")
	acc=$(echo "$last" | sed -n 's/.*"test_accuracy":\([^,]*\).*/\1/p')
	err=$(echo "$last" | sed -n 's/.*"test_errors":\([^,]*\).*/\1/p')
	params=$(grep -o '[0-9]* parameters' "$OUT/$name.log" | head -1 | cut -d' ' -f1)
	ROWS="$ROWS$(printf '%-22s %-18s %6s %8s %10s %9s %7ss' "$name" "$arch" \
	    "$epochs" "$(awk -v a="$acc" 'BEGIN { printf "%.2f%%", a * 100 }')" \
	    "$err" "$params" "$wall")
"
}

step teacher-60k 784-1200-1200-10 "$TEACHER_EPOCHS" --dropout 0.2
step student-60k-labels 784-128-10 "$STUDENT_EPOCHS"

echo
echo "Fashion-MNIST test set (10,000 images), softlabel-student on $(nproc) cores:"
printf '%-22s %-18s %6s %8s %10s %9s %8s\n' model arch epochs accuracy errors params wall
printf '%s' "$ROWS"
echo
echo "models (safetensors, PyTorch nn.Sequential layout), metrics and logs: $OUT"

#!/bin/sh
# make demo: the whole system on real Fashion-MNIST (Debian's
# dataset-fashion-mnist), in one directory, with no process left behind.
#
#  1. softlabel-student trains two 784-1200-1200-10 teachers (dropout 0.2,
#     Adam 1e-3, batch 128): teacher-6k on the first 6,000 labeled images,
#     teacher-60k on all 60,000.
#  2. A softlabel-broker and teacher workers (separate processes on
#     127.0.0.1) label all 60,000 training images with both teachers into one
#     logit cache (T = 4, f32), with progress from `softlabel status`.
#  3. 784-128-10 students, 10 epochs each (alpha 0.9, T 4 when distilled):
#     on 6,000 labels only; distilled with 6,000 labels + 54,000 unlabeled
#     rows from teacher-6k, from teacher-60k, and from the committee of both;
#     on all 60,000 labels only; and distilled from teacher-60k with all
#     labels (Hinton et al.'s setting).
#  4. A table: accuracy and errors on the 10,000 test images, agreement with
#     the teacher, parameters, and wall time of each step.
#  5. students.png: the students' test accuracy, fidelity and loss per epoch
#     (python3 -m softlabel.plot on their --metrics files).
#
# DEMO_DIR chooses the directory; TEACHER_EPOCHS / STUDENT_EPOCHS shorten it.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BIN=$BUILD/bin
F=${FMNIST:-/usr/share/datasets/fashion-mnist}
OUT=${DEMO_DIR:-$ROOT/build/demo-$(date +%Y%m%d-%H%M%S)}
TEACHER_EPOCHS=${TEACHER_EPOCHS:-20}
STUDENT_EPOCHS=${STUDENT_EPOCHS:-10}
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM
mkdir -p "$OUT"
echo "demo: writing into $OUT"
T0=$(date +%s)

X=$F/train-images-idx3-ubyte.gz
TEST="--test-data $F/t10k-images-idx3-ubyte.gz --test-labels $F/t10k-labels-idx1-ubyte.gz"
python3 "$ROOT/tests/lib/subset.py" "$F/train-labels-idx1-ubyte.gz" 6000 "$OUT/labels-6k.npy"
ROWS=""

# Train one model; adds a row to the table. extra args go to the student.
train() { # name arch epochs teacher-for-fidelity extra...
	name=$1 arch=$2 epochs=$3 fid_teacher=$4; shift 4
	echo "demo: training $name ($arch, $epochs epochs); log $OUT/$name.log"
	start=$(date +%s)
	fid=""
	[ "$fid_teacher" != - ] && fid="--teacher-model $OUT/$fid_teacher.safetensors"
	# shellcheck disable=SC2086
	"$BIN/softlabel-student" --dataset "$X" $TEST --arch "$arch" \
	    --epochs "$epochs" --batch 128 --lr 0.001 --optimizer adam --seed 1 \
	    $fid "$@" --metrics "$OUT/$name.jsonl" --checkpoint "$OUT/$name.ckpt" \
	    --resume --out "$OUT/$name.safetensors" 2>&1 | tee "$OUT/$name.log" |
	    grep --line-buffered -E "epoch [0-9]+/|ERROR" | sed -u 's/^[^ ]* [0-9]* softlabel-student INFO /    /'
	wall=$(($(date +%s) - start))
	last=$(tail -n 1 "$OUT/$name.jsonl")
	get() { echo "$last" | sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p"; }
	acc=$(get test_accuracy) err=$(get test_errors) f=$(get fidelity) rows=$(get rows)
	params=$(grep -o '[0-9]* parameters' "$OUT/$name.log" | head -1 | cut -d' ' -f1)
	fcol=-
	[ "$f" != null ] && fcol=$(awk -v a="$f" 'BEGIN { printf "%.2f%%", a * 100 }')
	ROWS="$ROWS$(printf '%-24s %-17s %6s %8s %6s %9s %8s %9s %6ss' "$name" "$arch" \
	    "$rows" "$(awk -v a="$acc" 'BEGIN { printf "%.2f%%", a * 100 }')" "$err" \
	    "${fid_teacher#teacher-}" "$fcol" "$params" "$wall")
"
}

# 1. Teachers.
train teacher-6k 784-1200-1200-10 "$TEACHER_EPOCHS" - --labels "$OUT/labels-6k.npy" --dropout 0.2
train teacher-60k 784-1200-1200-10 "$TEACHER_EPOCHS" - --labels "$F/train-labels-idx1-ubyte.gz" --dropout 0.2

# 2. Label all 60,000 images with both teachers into one cache.
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
EP=tcp://127.0.0.1:$PORT
echo "demo: labeling 60,000 images with both teachers through a broker on $EP"
start=$(date +%s)
"$BIN/softlabel-broker" --store "$OUT/cache" --dataset "$X" --bind "$EP" \
    --exit-when-done 2>"$OUT/broker.log" &
BROKER=$!
PIDS="$PIDS $BROKER"
i=0
until grep -q "INFO ready" "$OUT/broker.log"; do
	i=$((i + 1)); [ "$i" -gt 300 ] && { echo "demo: broker did not start" >&2; exit 1; }
	sleep 0.1
done
for t in teacher-6k teacher-60k; do
	for w in 1 2; do
		"$BIN/softlabel-teacher" --connect "$EP" --model "$OUT/$t.safetensors" \
		    --name "$t" --temperature 4 --threads 1 --worker-name "$t-w$w" \
		    2>>"$OUT/worker-$t-$w.log" &
		PIDS="$PIDS $!"
	done
done
i=0
while kill -0 "$BROKER" 2>/dev/null && [ "$i" -lt 600 ]; do
	"$BIN/softlabel" status "$EP" --timeout 2 2>/dev/null | grep -E "^teacher" |
	    sed 's/^/    /' || true
	i=$((i + 1))
	sleep 1
done
wait "$BROKER" || { echo "demo: the broker failed: $(tail -2 "$OUT/broker.log")" >&2; exit 1; }
wait
LABEL_S=$(($(date +%s) - start))
"$BIN/softlabel" verify "$OUT/cache" | sed 's/^/    /'
"$BIN/softlabel" inspect "$OUT/cache" >"$OUT/cache.txt"

# 3. Students.
S=784-128-10 E=$STUDENT_EPOCHS
KD="--store $OUT/cache --alpha 0.9 --temperature 4"
train student-6k-labels $S "$E" teacher-6k --labels "$OUT/labels-6k.npy"
train student-6k+teacher-6k $S "$E" teacher-6k --labels "$OUT/labels-6k.npy" $KD --teacher teacher-6k
train student-6k+teacher-60k $S "$E" teacher-60k --labels "$OUT/labels-6k.npy" $KD --teacher teacher-60k
train student-6k+committee $S "$E" teacher-60k --labels "$OUT/labels-6k.npy" $KD --teacher teacher-6k,teacher-60k
train student-60k-labels $S "$E" teacher-60k --labels "$F/train-labels-idx1-ubyte.gz"
train student-60k+teacher-60k $S "$E" teacher-60k --labels "$F/train-labels-idx1-ubyte.gz" $KD --teacher teacher-60k

# 4. The table.
echo
echo "Fashion-MNIST, 10,000 test images; $(nproc) cores; labeling both teachers into one cache: ${LABEL_S}s"
printf '%-24s %-17s %6s %8s %6s %9s %8s %9s %7s\n' model arch rows accuracy errors teacher agreement params wall
printf '%s' "$ROWS"
echo "(rows: training rows used per epoch; agreement: test images on which the student predicts the teacher's class)"
# 5. The students' curves (python3-matplotlib, from make deps).
PYTHONPATH="$ROOT/common/python" /usr/bin/python3 -m softlabel.plot \
    "$OUT"/student-*.jsonl -o "$OUT/students.png" \
    --title "Fashion-MNIST students: $S, $E epochs" >/dev/null ||
    { echo "demo: plotting the students' curves failed" >&2; exit 1; }
echo "curves of the students (test accuracy, fidelity, loss per epoch): $OUT/students.png"
echo "total $(($(date +%s) - T0))s; models, cache, metrics and logs in $OUT"

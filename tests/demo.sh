#!/bin/sh
# make demo: the whole system on real Fashion-MNIST (Debian's
# dataset-fashion-mnist), in one directory, with no process left behind.
#
#  1. softlabel-student trains a CNN teacher on all 60,000 labeled images
#     (cosine learning rate, random flips) and exports it as ONNX
#     (--onnx-out).
#  2. A softlabel-broker (the teacher registered by the operator, with its
#     SHA-256) and two softlabel-teacher workers running the ONNX file
#     (separate processes on 127.0.0.1) label all 60,000 training images
#     into a logit cache (T = 4, f32), with progress from softlabel status.
#  3. Small students, each on 6,000 labels alone and on 6,000 labels +
#     54,000 rows the teacher labeled (alpha 0.9, T 4): a CNN with under a
#     tenth of the teacher's parameters, and the 784-128-10 MLP. Then the
#     views: the broker labels VIEWS augmented views of every image
#     (crop=2,flip) into a second cache, and the CNN student replays them,
#     each epoch one view of each image with the teacher's output on it.
#  4. Self-training, one round: the distilled CNN student, exported as
#     ONNX, is the next teacher; the broker and workers label the 60,000
#     images with it, and an MLP is distilled from it.
#  5. A table: rows, test accuracy and errors on the 10,000 test images,
#     agreement with the teacher, parameters, bytes of the model file,
#     inference samples/s (softlabel-student --evaluate of that file, batch
#     256) and wall time of each step; the students' curves as a PNG.
#
# DEMO_DIR chooses the directory; TEACHER_EPOCHS, CNN_EPOCHS (the CNN
# students), STUDENT_EPOCHS (the MLPs), TEACHER_ARCH and STUDENT_ARCH
# change the run.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
BIN=$BUILD/bin
F=${FMNIST:-/usr/share/datasets/fashion-mnist}
OUT=${DEMO_DIR:-$ROOT/build/demo-$(date +%Y%m%d-%H%M%S)}
# Sized for about 10 minutes on 2 cores (a teacher epoch takes about 35 s
# here; README, "Convolutional students"): the teacher gets 10 epochs, the
# CNN students 5, the MLPs 10.
TEACHER_EPOCHS=${TEACHER_EPOCHS:-10}
# The teacher's training: Adam at 0.002 with a cosine schedule, each epoch
# a fresh random flip of each image (--augment, view = epoch).
TEACHER_OPTS=${TEACHER_OPTS:---lr 0.002 --lr-schedule cosine --augment flip}
VIEWS=${VIEWS:-4}
VIEW_RECIPE=${VIEW_RECIPE:-crop=2,flip}
CNN_EPOCHS=${CNN_EPOCHS:-5}
STUDENT_EPOCHS=${STUDENT_EPOCHS:-10}
TEACHER_ARCH=${TEACHER_ARCH:-conv:16:3:p=1,bn,relu,maxpool:2,conv:32:3:p=1,bn,relu,maxpool:2,conv:64:3:p=1,bn,relu,maxpool:2,flatten,linear:256,relu,dropout:0.3,linear:10}
STUDENT_ARCH=${STUDENT_ARCH:-conv:8:3:p=1,bn,relu,maxpool:2,conv:16:3:p=1,bn,relu,maxpool:2,flatten,linear:10}
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM
mkdir -p "$OUT"
echo "demo: writing into $OUT"
T0=$(date +%s)

X=$F/train-images-idx3-ubyte.gz
TX=$F/t10k-images-idx3-ubyte.gz
TEST="--test-data $TX --test-labels $F/t10k-labels-idx1-ubyte.gz"
python3 "$ROOT/tests/lib/subset.py" "$F/train-labels-idx1-ubyte.gz" 6000 "$OUT/labels-6k.npy"
ROWS=""

# The file a model is deployed as: its ONNX export when it has one.
model_file() { # name
	if [ -f "$OUT/$1.onnx" ]; then echo "$OUT/$1.onnx"; else echo "$OUT/$1.safetensors"; fi
}

# Train one model; adds a row to the table. extra args go to the student.
train() { # name short-arch arch epochs teacher-for-fidelity extra...
	name=$1 short=$2 arch=$3 epochs=$4 fid_teacher=$5; shift 5
	echo "demo: training $name ($short, $epochs epochs); log $OUT/$name.log"
	start=$(date +%s)
	fid=""
	[ "$fid_teacher" != - ] && fid="--teacher-model $(model_file "$fid_teacher")"
	onnx=""
	case $arch in *[a-z]*) onnx="--onnx-out $OUT/$name.onnx" ;; esac
	# The trainer's exit status, which the pipe to the screen would hide.
	# shellcheck disable=SC2086
	{ "$BIN/softlabel-student" --dataset "$X" $TEST --arch "$arch" \
	    --epochs "$epochs" --batch 128 --lr 0.001 --optimizer adam --seed 1 \
	    $fid $onnx "$@" --metrics "$OUT/$name.jsonl" --checkpoint "$OUT/$name.ckpt" \
	    --resume --out "$OUT/$name.safetensors" 2>&1; echo $? >"$OUT/$name.rc"; } |
	    tee "$OUT/$name.log" | grep --line-buffered -E "epoch [0-9]+/|ERROR" |
	    sed -u 's/^[^ ]* [0-9]* softlabel-student INFO /    /'
	rc=$(cat "$OUT/$name.rc")
	[ "$rc" -eq 0 ] || { echo "demo: training $name failed (exit $rc); see $OUT/$name.log" >&2; exit 1; }
	wall=$(($(date +%s) - start))
	last=$(tail -n 1 "$OUT/$name.jsonl")
	get() { echo "$last" | sed -n "s/.*\"$1\":\([^,}]*\).*/\1/p"; }
	acc=$(get test_accuracy) err=$(get test_errors) f=$(get fidelity) rows=$(get rows)
	params=$(grep -o '[0-9]* parameters' "$OUT/$name.log" | head -1 | cut -d' ' -f1)
	fcol=-
	[ "$f" != null ] && fcol=$(awk -v a="$f" 'BEGIN { printf "%.2f%%", a * 100 }')
	file=$(model_file "$name")
	bytes=$(wc -c <"$file")
	# Inference: the deployed file through softlabel's engine, 10,000 rows.
	rate=$("$BIN/softlabel-student" --evaluate --model "$file" $TEST \
	    --batch 256 2>&1 | sed -n 's/.*: \([0-9]*\) samples\/s.*/\1/p')
	ROWS="$ROWS$(printf '%-19s %-5s %5s %8s %6s %-14s %9s %7s %8s %8s %5ss' "$name" "$short" \
	    "$rows" "$(awk -v a="$acc" 'BEGIN { printf "%.2f%%", a * 100 }')" "$err" \
	    "$fid_teacher" "$fcol" "$params" "$bytes" "$rate" "$wall")
"
}

# Label all 60,000 images with teacher NAME (model FILE) through a broker
# and two workers into cache DIR; the operator registers the teacher by
# its SHA-256. Broker options (--views ...) after them.
label() { # name model-file cache broker-extra...
	name=$1 model=$2 cache=$3; shift 3
	PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	EP=tcp://127.0.0.1:$PORT
	sha=$(sha256sum "$model" | cut -d' ' -f1)
	echo "demo: labeling 60,000 images with $name ($(basename "$model")) through a broker on $EP${*:+ ($*)}"
	start=$(date +%s)
	"$BIN/softlabel-broker" --store "$cache" --dataset "$X" --bind "$EP" \
	    --teacher "$name=$sha" --exit-when-done "$@" 2>"$OUT/broker-$name.log" &
	BROKER=$!
	PIDS="$PIDS $BROKER"
	i=0
	until grep -q "INFO ready" "$OUT/broker-$name.log"; do
		i=$((i + 1)); [ "$i" -gt 300 ] && { echo "demo: broker did not start" >&2; exit 1; }
		sleep 0.1
	done
	for w in 1 2; do
		"$BIN/softlabel-teacher" --connect "$EP" --model "$model" --name "$name" \
		    --temperature 4 --threads 1 --worker-name "$name-w$w" \
		    2>>"$OUT/worker-$name-$w.log" &
		PIDS="$PIDS $!"
	done
	i=0
	while kill -0 "$BROKER" 2>/dev/null && [ "$i" -lt 600 ]; do
		"$BIN/softlabel" status "$EP" --timeout 2 2>/dev/null | grep -E "^teacher" |
		    sed 's/^/    /' || true
		i=$((i + 1))
		sleep 1
	done
	wait "$BROKER" || { echo "demo: the broker failed: $(tail -2 "$OUT/broker-$name.log")" >&2; exit 1; }
	wait
	LABELS="$LABELS $name: $(($(date +%s) - start))s;"
}

S=784-128-10 E=$STUDENT_EPOCHS
KD="--store $OUT/cache --alpha 0.9 --temperature 4"
LABELS=""

# 1. The teacher, exported as ONNX.
# shellcheck disable=SC2086
train teacher-cnn cnn-T "$TEACHER_ARCH" "$TEACHER_EPOCHS" - \
    --labels "$F/train-labels-idx1-ubyte.gz" $TEACHER_OPTS

# 2. Label the training set with it.
label teacher-cnn "$OUT/teacher-cnn.onnx" "$OUT/cache"

# 3. Students: 6,000 labels alone, and with the teacher's 54,000 others.
train cnn-6k-labels cnn-S "$STUDENT_ARCH" "$CNN_EPOCHS" teacher-cnn --labels "$OUT/labels-6k.npy"
train cnn-6k+teacher cnn-S "$STUDENT_ARCH" "$CNN_EPOCHS" teacher-cnn --labels "$OUT/labels-6k.npy" \
    $KD --teacher teacher-cnn
train mlp-6k-labels mlp "$S" "$E" teacher-cnn --labels "$OUT/labels-6k.npy"
train mlp-6k+teacher mlp "$S" "$E" teacher-cnn --labels "$OUT/labels-6k.npy" \
    $KD --teacher teacher-cnn

# 3b. Views: the teacher's output on VIEWS augmented views of every image,
# replayed by the CNN student (its view of each image in epoch e is view
# (e + offset) mod VIEWS, the one the worker labeled).
label teacher-cnn-views "$OUT/teacher-cnn.onnx" "$OUT/cache-views" \
    --views "$VIEWS" --view-recipe "$VIEW_RECIPE" --view-seed 1
train cnn-6k+views cnn-S "$STUDENT_ARCH" "$CNN_EPOCHS" teacher-cnn --labels "$OUT/labels-6k.npy" \
    --store "$OUT/cache-views" --alpha 0.9 --temperature 4 --teacher teacher-cnn-views

# 4. Self-training: the distilled CNN student is the next teacher.
label cnn-6k+teacher "$OUT/cnn-6k+teacher.onnx" "$OUT/cache"
train mlp-6k+cnn-student mlp "$S" "$E" cnn-6k+teacher --labels "$OUT/labels-6k.npy" \
    $KD --teacher cnn-6k+teacher
"$BIN/softlabel" verify "$OUT/cache" | sed 's/^/    /'
"$BIN/softlabel" verify "$OUT/cache-views" | sed 's/^/    /'
"$BIN/softlabel" inspect "$OUT/cache" >"$OUT/cache.txt"
"$BIN/softlabel" inspect "$OUT/cache-views" >"$OUT/cache-views.txt"

# 5. The table.
echo
echo "Fashion-MNIST, 10,000 test images; $(nproc) cores; labeling 60,000 images:$LABELS"
printf '%-19s %-5s %5s %8s %6s %-14s %9s %7s %8s %8s %6s\n' model arch rows accuracy errors \
    teacher agreement params bytes sample/s wall
printf '%s' "$ROWS"
echo "(rows: training rows used per epoch; agreement: test images on which the model predicts its"
echo " teacher's class; bytes: the ONNX file for CNNs, safetensors for MLPs; sample/s: softlabel-student"
echo " --evaluate of that file, batch 256)"
echo "cnn-T: $TEACHER_ARCH"
echo "cnn-S: $STUDENT_ARCH"
echo "mlp:   $S"
echo "views: $VIEWS per image, $VIEW_RECIPE (cnn-6k+views)"
# The students' curves (python3-matplotlib, from make deps).
PYTHONPATH="$ROOT/common/python" /usr/bin/python3 -m softlabel.plot \
    "$OUT"/cnn-*.jsonl "$OUT"/mlp-*.jsonl -o "$OUT/students.png" \
    --title "Fashion-MNIST students (CNN $CNN_EPOCHS epochs, MLP $E)" >/dev/null ||
    { echo "demo: plotting the students' curves failed" >&2; exit 1; }
echo "curves of the students (test accuracy, fidelity, loss per epoch): $OUT/students.png"
echo "total $(($(date +%s) - T0))s; models, cache, metrics and logs in $OUT"

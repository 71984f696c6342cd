#!/bin/sh
# Views and augmentation, student side (issue 12), side by side in one run
# on Fashion-MNIST: a small CNN teacher trained on the 60,000 labeled
# training images labels them through a broker and two workers into a
# 1-view cache (dense f32, T 4); then the demo's small CNN student, on
# 6,000 labels + the 54,000 other rows, the same epochs, seed, alpha 0.9
# and T 4, is trained
#   (b) from the cache, no augmentation;
#   (a) from the cache with --augment (the views' pixels, the stored
#       rows' targets: the inconsistency a view cache removes);
#   (c) with --online-teacher and --augment (the teacher run on every
#       batch: consistent, at the teacher's cost in every epoch);
#   (d) from a V=8 view cache (labeled with --views 8 and the same recipe),
#       replayed: every epoch one labeled view of each row, its own target.
# Prints each one's test accuracy on the 10,000 test images and its wall
# time, and time ratios against (b) measured in this run: figures, never
# thresholds. The machine is shared: wall times are noisy.
#
#   BENCH_VIEWS_TEACHER_EPOCHS (3)  BENCH_VIEWS_EPOCHS (3)
#   BENCH_VIEWS_RECIPE (crop=2,flip)  BENCH_THREADS (2)
set -eu
BUILD=${BUILD:-build}
BIN=$BUILD/bin
THREADS=${BENCH_THREADS:-2}
TE=${BENCH_VIEWS_TEACHER_EPOCHS:-3}
E=${BENCH_VIEWS_EPOCHS:-3}
RECIPE=${BENCH_VIEWS_RECIPE:-crop=2,flip}
DPY=/usr/bin/python3
F=${FMNIST:-/usr/share/datasets/fashion-mnist}
here=$(dirname "$0")
dir=$(mktemp -d "${TMPDIR:-/tmp}/bench_views.XXXXXX")
PIDS=""
cleanup() {
	for p in $PIDS; do kill "$p" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM
export SOFTLABEL_FINGERPRINTS="$dir/fingerprints"
X=$F/train-images-idx3-ubyte.gz
Y=$F/train-labels-idx1-ubyte.gz
TEST="--test-data $F/t10k-images-idx3-ubyte.gz --test-labels $F/t10k-labels-idx1-ubyte.gz"
TEACHER=conv:16:3:p=1,bn,relu,maxpool:2,conv:32:3:p=1,bn,relu,maxpool:2,flatten,linear:10
STUDENT=conv:8:3:p=1,bn,relu,maxpool:2,conv:16:3:p=1,bn,relu,maxpool:2,flatten,linear:10
$DPY "$here/../lib/subset.py" "$Y" 60000 "$dir/labels-6k.npy" 6000
now() { $DPY -c 'import time; print("%.3f" % time.time())'; }
acc() { tail -n 1 "$1" | sed -n 's/.*"test_accuracy":\([0-9.]*\).*/\1/p'; }

echo "-- teacher $TEACHER: 60,000 labels, $TE epochs, $THREADS threads"
"$BIN/softlabel-student" --dataset "$X" --labels "$Y" --arch "$TEACHER" --epochs "$TE" \
    --batch 128 --seed 1 --threads "$THREADS" $TEST --metrics "$dir/teacher.jsonl" \
    --out "$dir/teacher.safetensors" --onnx-out "$dir/teacher.onnx" 2>"$dir/teacher.log" ||
    { tail -3 "$dir/teacher.log" >&2; exit 1; }
echo "teacher test_accuracy $(acc "$dir/teacher.jsonl")"

# Label the 60,000 rows with the teacher into cache DIR through a broker
# and two workers; broker options after it (--views ...). Sets label_s.
label() { # cache broker-extra...
	cache=$1; shift
	port=$($DPY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	EP=tcp://127.0.0.1:$port
	t0=$(now)
	"$BIN/softlabel-broker" --store "$cache" --dataset "$X" --bind "$EP" \
	    --teacher "cnn=$(sha256sum "$dir/teacher.onnx" | cut -d' ' -f1)" --exit-when-done \
	    "$@" 2>"$cache.broker.log" &
	BROKER=$!
	PIDS="$BROKER"
	i=0
	until grep -qs "INFO ready" "$cache.broker.log"; do
		i=$((i + 1)); [ "$i" -le 300 ] || { echo "the broker did not start" >&2; exit 1; }
		sleep 0.1
	done
	for w in 1 2; do
		"$BIN/softlabel-teacher" --connect "$EP" --model "$dir/teacher.onnx" --name cnn \
		    --temperature 4 --encoding f32 --threads 1 2>>"$cache.worker-$w.log" &
		PIDS="$PIDS $!"
	done
	i=0
	while kill -0 "$BROKER" 2>/dev/null; do
		i=$((i + 1)); [ "$i" -le 18000 ] || { echo "labeling took over 30 minutes" >&2; exit 1; }
		sleep 0.1
	done
	wait "$BROKER" || { tail -3 "$cache.broker.log" >&2; exit 1; }
	wait
	PIDS=""
	label_s=$($DPY -c "print('%.1f' % ($(now) - $t0))")
}
label "$dir/cache"
label1_s=$label_s
echo "labeled 60,000 rows into a 1-view cache with 2 workers (1 thread each): ${label1_s} s"
label "$dir/cache8" --views 8 --view-recipe "$RECIPE" --view-seed 1
label8_s=$label_s
echo "labeled 8 views of 60,000 rows ($RECIPE) with 2 workers: ${label8_s} s"

student() { # name extra...
	name=$1; shift
	t0=$(now)
	"$BIN/softlabel-student" --dataset "$X" --labels "$dir/labels-6k.npy" --arch "$STUDENT" \
	    --epochs "$E" --batch 128 --seed 1 --threads "$THREADS" --alpha 0.9 --temperature 4 \
	    $TEST --metrics "$dir/$name.jsonl" --out "$dir/$name.safetensors" "$@" \
	    2>"$dir/$name.log" || { tail -3 "$dir/$name.log" >&2; exit 1; }
	s=$($DPY -c "print('%.1f' % ($(now) - $t0))")
	eval "time_$name=$s"
	eval "acc_$name=$(acc "$dir/$name.jsonl")"
}
echo "-- students $STUDENT: 6,000 labels + 54,000 unlabeled, $E epochs, alpha 0.9, T 4, $THREADS threads"
student b --store "$dir/cache"
student a --store "$dir/cache" --augment "$RECIPE"
student c --online-teacher "$dir/teacher.onnx" --augment "$RECIPE"
# (d) replays the V=8 cache: view (e + offset) mod 8 of every row, the
# cache's recipe and seed (student-trainer/augment.h).
student d --store "$dir/cache8"
row() { # label name
	eval "t=\$time_$2 a=\$acc_$2"
	awk -v l="$1" -v a="$a" -v t="$t" -v b="$time_b" 'BEGIN {
	    printf "%-44s test_accuracy %.4f  wall %7.1f s  (%.2fx of (b))\n", l, a, t, t / b }'
}
row "(b) 1-view cache, no augmentation" b
row "(a) 1-view cache, --augment $RECIPE" a
row "(c) --online-teacher, --augment $RECIPE" c
row "(d) V=8 view cache, replayed ($RECIPE)" d
awk -v a="$acc_a" -v b="$acc_b" -v c="$acc_c" -v d="$acc_d" -v tc="$time_c" -v td="$time_d" \
    -v l8="$label8_s" 'BEGIN {
    printf "ratio (d) - (a) %+.2f points, (d) - (b) %+.2f, (d) - (c) %+.2f; time (d)/(c) %.2fx training, %.2fx with its labeling (%.1f s)\n",
        100 * (d - a), 100 * (d - b), 100 * (d - c), td / tc, (td + l8) / tc, l8 }'

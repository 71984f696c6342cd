#!/bin/sh
# bench_label - labeling figures, not thresholds (issue 3). Every figure is
# the median of BENCH_ROUNDS rounds (default 3), and every ratio is against
# a reference measured in the same run, so both see the same machine.
#
# (a) End to end: the real broker and one real worker (--threads 2) label
#     all 60,000 Fashion-MNIST training rows with a 784-1200-1200-10 teacher
#     (one epoch on 3,000 images, as sl_make_big_teacher makes it), durable
#     commits; timed from the worker's start to its exit (it exits when the
#     broker says every shard is done, i.e. after the last commit). The
#     reference is the bare forward pass of the same model on the same rows:
#     softlabel-student --evaluate --threads 2 --batch 256, timed the same
#     way. Rounds alternate the two. Target: ratio >= 0.85 while the broker
#     shares the two cores (printed, not asserted).
# (b) The broker's ceiling: build/bench/bench_broker feeds a broker on
#     2,000,000 one-byte rows with precomputed results over 4 connections
#     and reports committed samples/s against LMDB's raw batched put rate.
# (c) Bytes per sample in the cache for f32, f16 and topk:5 records of 10
#     classes (the small 784-64-10 teacher, the 10,000 test images, one
#     worker per encoding), from softlabel inspect.
#
# Processes run on 127.0.0.1 with free ports and fresh stores under one
# mktemp directory, removed on exit; every wait is bounded; processes are
# ended by pid.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir >/dev/null # not in $(...): the cleanup trap needs SL_TMP here
T=$SL_TMP
ROUNDS=${BENCH_ROUNDS:-3}
BENCH=$BUILD/bench

now_ns() { date +%s%N; }

# Median of the numbers in FILE, one a line.
median() { # file
	sort -g "$1" | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# Start a broker on a fresh free port (sl_start_broker keeps BROKER_PORT).
start_broker() { # store dataset log extra...
	unset BROKER_PORT
	sl_start_broker "$@"
}

stop_broker() {
	kill -TERM "$BROKER_PID" 2>/dev/null || true
	_rc=0
	sl_wait_pid "$BROKER_PID" 30 || _rc=$?
	[ "$_rc" -ne 124 ] || sl_fail "broker $BROKER_PID did not stop on SIGTERM"
}

# --- (a) end to end against the bare forward pass ----------------------------
sl_subset "$FMNIST/train-images-idx3-ubyte.gz" 60000 "$T/train.npy"
sl_make_big_teacher "$T/big.safetensors"
ROWS=60000
: >"$T/e2e" ; : >"$T/bare"
r=0
while [ "$r" -lt "$ROUNDS" ]; do
	start_broker "$T/e2e$r" "$T/train.npy" "$T/broker_e2e$r.log" --exit-when-done
	t0=$(now_ns)
	sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" \
	    --model "$T/big.safetensors" --name big --threads 2 \
	    --worker-name "bench-$r" 2>>"$T/worker_e2e$r.log"
	rc=0; sl_wait_pid "$W" 300 || rc=$?
	t1=$(now_ns)
	sl_check "$rc -eq 0" "worker exit $rc: $(tail -3 "$T/worker_e2e$r.log")"
	rc=0; sl_wait_pid "$BROKER_PID" 30 || rc=$?
	sl_check "$rc -eq 0" "broker exit $rc: $(tail -3 "$T/broker_e2e$r.log")"
	echo "$t0 $t1" | awk -v n=$ROWS '{ printf "%.1f\n", n * 1e9 / ($2 - $1) }' >>"$T/e2e"
	rm -rf "$T/e2e$r"

	t0=$(now_ns)
	timeout 300 "$BIN/softlabel-student" --evaluate --model "$T/big.safetensors" \
	    --test-data "$T/train.npy" --threads 2 --batch 256 \
	    2>"$T/bare$r.log" || sl_fail "bare forward failed: $(tail -2 "$T/bare$r.log")"
	t1=$(now_ns)
	echo "$t0 $t1" | awk -v n=$ROWS '{ printf "%.1f\n", n * 1e9 / ($2 - $1) }' >>"$T/bare"
	r=$((r + 1))
done
e2e=$(median "$T/e2e")
bare=$(median "$T/bare")
echo "labeling end to end: $ROWS Fashion-MNIST rows, 784-1200-1200-10 teacher," \
    "1 worker --threads 2 --batch 256, broker on the same 2 cores, durable" \
    "commits, median of $ROUNDS rounds"
awk -v e="$e2e" -v b="$bare" 'BEGIN {
	printf "  end to end (broker + worker)  %10.0f samples/s\n", e
	printf "  bare forward (--evaluate)     %10.0f samples/s\n", b
	printf "  ratio end to end / bare       %10.3f   (target >= 0.85)\n", e / b
}'

# --- (b) the broker's ceiling --------------------------------------------------
"$BENCH/bench_broker" --make-dataset "$T/rows.npy" 2000000
start_broker "$T/ceiling" "$T/rows.npy" "$T/broker_ceiling.log"
sl_bg LOAD "$BENCH/bench_broker" "$BROKER_EP" "$T/rows.npy" --connections 4 \
    --credit 16 --rounds "$ROUNDS"
rc=0; sl_wait_pid "$LOAD" 300 || rc=$?
sl_check "$rc -eq 0" "bench_broker exit $rc: $(tail -3 "$T/broker_ceiling.log")"
stop_broker
rm -rf "$T/ceiling"

# --- (c) bytes per sample for each encoding -----------------------------------
sl_make_teacher "$T/small.safetensors"
X=$FMNIST/t10k-images-idx3-ubyte.gz
printf '%s\n' "cache bytes per sample: 10,000 Fashion-MNIST test rows, 784-64-10 teacher, 10 classes"
printf '  %-10s %12s %18s %18s\n' encoding "record bytes" "in use / sample" "file / sample"
for enc in f32 f16 topk:5; do
	d=$T/enc-$(echo "$enc" | tr : -)
	start_broker "$d" "$X" "$d.broker.log" --exit-when-done
	sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" \
	    --model "$T/small.safetensors" --name small --encoding "$enc" \
	    --threads 1 2>>"$d.worker.log"
	rc=0; sl_wait_pid "$W" 120 || rc=$?
	if [ "$rc" -eq 2 ]; then
		# Refused at start-up (usage): report the row, keep benchmarking.
		stop_broker
		printf '  %-10s %12s   worker refused: %s\n' "$enc" - \
		    "$(tail -1 "$d.worker.log")"
		continue
	fi
	sl_check "$rc -eq 0" "$enc worker exit $rc: $(tail -3 "$d.worker.log")"
	rc=0; sl_wait_pid "$BROKER_PID" 30 || rc=$?
	sl_check "$rc -eq 0" "$enc broker exit $rc: $(tail -3 "$d.broker.log")"
	timeout 60 "$BIN/softlabel" inspect "$d" >"$d.inspect" ||
	    sl_fail "inspect $enc: $(cat "$d.inspect")"
	rec=$(sed -n 's/.*, \([0-9]*\) bytes\/record.*/\1/p' "$d.inspect")
	labels=$(sed -n 's/^records *\([0-9]*\) labels.*/\1/p' "$d.inspect")
	used=$(sed -n 's/^size *\([0-9]*\) bytes in use.*/\1/p' "$d.inspect")
	file=$(sed -n 's/.*, file \([0-9]*\) bytes;.*/\1/p' "$d.inspect")
	sl_check "'$labels' = 10000" "$enc: cache holds '$labels' labels: $(cat "$d.inspect")"
	awk -v e="$enc" -v r="$rec" -v n="$labels" -v u="$used" -v f="$file" 'BEGIN {
		printf "  %-10s %12d %18.1f %18.1f\n", e, r, u / n, f / n
	}'
done

# --- (d) student training from the cache ---------------------------------------
# The f32 cache of (c): a 784-128-10 student, batch 128, 2 threads, distilled
# from it (targets gathered per batch), against the same student on the same
# rows with labels only. The last of 3 epochs is reported (steady state).
Y=$FMNIST/t10k-labels-idx1-ubyte.gz
for mode in labels cache; do
	extra="--labels $Y"
	[ "$mode" = cache ] && extra="--labels $Y --store $T/enc-f32 --alpha 0.9 --temperature 4"
	# shellcheck disable=SC2086
	timeout 300 "$BIN/softlabel-student" --dataset "$X" $extra --arch 784-128-10 \
	    --epochs 3 --batch 128 --threads 2 --metrics "$T/train-$mode.jsonl" \
	    --out "$T/train-$mode.safetensors" 2>"$T/train-$mode.log" ||
	    sl_fail "student ($mode): $(tail -2 "$T/train-$mode.log")"
done
lab=$(sl_metric "$T/train-labels.jsonl" samples_per_s)
kd=$(sl_metric "$T/train-cache.jsonl" samples_per_s)
echo "student training 784-128-10, batch 128, 2 threads, 10,000 rows:"
awk -v l="$lab" -v k="$kd" 'BEGIN {
	printf "  distilled from the cache      %10.0f samples/s\n", k
	printf "  labels only (reference)       %10.0f samples/s\n", l
	printf "  ratio                         %10.3f\n", k / l
}'

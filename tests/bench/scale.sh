#!/bin/sh
# Scale figures (issue 13), run by `make bench-scale`, never by make test.
# Figures and ratios against references measured in the same run, never
# thresholds; wall-clock figures on a shared machine are noisy.
#
#   1. start-up: a broker's time to its ready line on a BENCH_SCALE_GB GiB
#      (default 10; 0 skips it) .npy dataset, the first start (hashes it,
#      writes the memo) and the second (reads the memo); the ratio is
#      first/second;
#   2. broker: peak RSS (VmHWM: anonymous and file-backed) and commit rate
#      labeling a synthetic BENCH_SCALE_BROKER_ROWS-row job (default 20M
#      rows of 4 bytes, teacher 4-16-10, shards of 4096 rows) with two
#      workers that ship no rows (--dataset);
#   3. student: peak RSS and samples/s distilling one epoch from a
#      BENCH_SCALE_STUDENT_ROWS-row (default 10M) x 100-class f16 cache that
#      the same broker and two workers label first; with
#      BENCH_SCALE_REF_STUDENT=path (a softlabel-student of an older build,
#      e.g. the in-memory path), the same run with it, and the ratio.
# The dataset of step 1 is a sparse file (zeros): its bytes cost no disk,
# but the first start reads all of them through the page cache.
set -eu
BUILD=${BUILD:-build}
BIN=$BUILD/bin
GB=${BENCH_SCALE_GB:-10}
BROWS=${BENCH_SCALE_BROKER_ROWS:-20000000}
SROWS=${BENCH_SCALE_STUDENT_ROWS:-10000000}
PY=/usr/bin/python3
dir=$(mktemp -d "${TMPDIR:-/tmp}/bench_scale.XXXXXX")
pids=
cleanup() {
	for p in $pids; do kill "$p" 2>/dev/null || true; done
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM
SOFTLABEL_FINGERPRINTS=$dir/fingerprints
export SOFTLABEL_FINGERPRINTS

now() { date +%s.%N; }
free_port() {
	$PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_log FILE PATTERN SECS
wait_log() {
	_i=0
	while ! grep -qE "$2" "$1" 2>/dev/null; do
		_i=$((_i + 1))
		[ "$_i" -gt $(($3 * 20)) ] && { echo "timed out waiting for '$2' in $1"; tail -3 "$1"; exit 1; }
		sleep 0.05
	done
}
# hwm PID: VmHWM and RssFile of a running process, in kB
hwm() { sed -n 's/^VmHWM:[ \t]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
rssfile() { sed -n 's/^RssFile:[ \t]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
ratio() { $PY -c "import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); print(f'{a / b:.2f}' if b else 'n/a')" "$1" "$2"; }

# --- 1. start-up the second time ----------------------------------------------------------
if [ "$GB" -gt 0 ]; then
echo "-- start-up on a $GB GiB dataset (sparse .npy, uint8 rows of 1024)"
$PY - "$dir/big.npy" "$GB" <<'PY'
import os, sys
path, gb = sys.argv[1], int(sys.argv[2])
rows = gb * 1024 * 1024
h = "{'descr': '|u1', 'fortran_order': False, 'shape': (%d, 1024), }" % rows
h += " " * (128 - 10 - len(h) - 1) + "\n"
with open(path, "wb") as f:
    f.write(b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h.encode())
    f.truncate(128 + rows * 1024)
PY
startup() { # store log -> prints seconds to ready
	_port=$(free_port)
	_t0=$(now)
	"$BIN/softlabel-broker" --store "$1" --dataset "$dir/big.npy" --shard-rows 65536 \
	    --bind "tcp://127.0.0.1:$_port" 2>"$2" &
	_b=$!
	pids="$pids $_b"
	wait_log "$2" "INFO ready" 3600
	_t1=$(now)
	kill -TERM "$_b"; wait "$_b" || true
	$PY -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.3f}')" "$_t0" "$_t1"
}
first=$(startup "$dir/s1" "$dir/st1.log")
second=$(startup "$dir/s1" "$dir/st2.log")
grep "fingerprint" "$dir/st1.log" | sed 's/.*INFO /  first:  /'
grep "fingerprint" "$dir/st2.log" | sed 's/.*INFO /  second: /'
echo "start-up to ready: first ${first} s, second ${second} s (first/second $(ratio "$first" "$second"))"
rm -f "$dir/big.npy"
fi

# --- 2. and 3. a synthetic job: broker RSS and commit rate, then a student ----------------
# Rows of 4 uint8 values; a teacher trained one epoch on 20,000 of them with
# labels = value of the first column mod classes.
$PY - "$dir" "$BROWS" "$SROWS" <<'PY'
import sys
import numpy as np
d, brows, srows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(1)
np.save(f"{d}/b.npy", rng.integers(0, 256, size=(brows, 4), dtype=np.uint8))
np.save(f"{d}/s.npy", rng.integers(0, 256, size=(srows, 4), dtype=np.uint8))
x = rng.integers(0, 256, size=(20000, 4), dtype=np.uint8)
np.save(f"{d}/tx.npy", x)
np.save(f"{d}/ty10.npy", (x[:, 0] % 10).astype(np.int64))
np.save(f"{d}/ty100.npy", (x[:, 0] % 100).astype(np.int64))
PY
for c in 10 100; do
	"$BIN/softlabel-student" --dataset "$dir/tx.npy" --labels "$dir/ty$c.npy" \
	    --arch "4-16-$c" --epochs 1 --threads 1 --out "$dir/t$c.safetensors" 2>"$dir/t$c.log"
done

# label STORE DATA TEACHER ENCODING ROWS: broker + two --dataset workers;
# prints "seconds peak_kB file_kB" of the broker
label() {
	_port=$(free_port)
	"$BIN/softlabel-broker" --store "$1" --dataset "$2" --shard-rows 4096 --nosync \
	    --bind "tcp://127.0.0.1:$_port" --exit-when-done 2>"$1.broker.log" &
	_b=$!
	pids="$pids $_b"
	wait_log "$1.broker.log" "INFO ready" 600
	_t0=$(now)
	for w in 1 2; do
		"$BIN/softlabel-teacher" --connect "tcp://127.0.0.1:$_port" --model "$3" \
		    --name t --encoding "$4" --threads 1 --batch 4096 --dataset "$2" \
		    2>"$1.w$w.log" &
		pids="$pids $!"
	done
	_peak=0 _file=0
	while kill -0 "$_b" 2>/dev/null; do
		_h=$(hwm "$_b" 2>/dev/null || true)
		_f=$(rssfile "$_b" 2>/dev/null || true)
		[ -n "$_h" ] && _peak=$_h
		[ -n "$_f" ] && [ "$_f" -gt "$_file" ] && _file=$_f
		sleep 0.2
	done
	wait "$_b" || { echo "broker failed: $(tail -2 "$1.broker.log")"; exit 1; }
	_t1=$(now)
	$PY -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}', sys.argv[3], sys.argv[4])" \
	    "$_t0" "$_t1" "$_peak" "$_file"
}

echo "-- broker: $BROWS rows x 4 bytes, teacher 4-16-10 f32, shards of 4096, two workers with --dataset"
set -- $(label "$dir/cb" "$dir/b.npy" "$dir/t10.safetensors" f32)
shards=$(( (BROWS + 4095) / 4096 ))
echo "broker: $BROWS rows in $1 s ($(ratio "$BROWS" "$1") rows/s, $(ratio "$shards" "$1") commits/s);" \
    "peak RSS $(($2 / 1024)) MiB, of which file-backed (the dataset's and the cache's maps) up to $(($3 / 1024)) MiB"
rm -rf "$dir/cb" "$dir/b.npy"

echo "-- student: $SROWS rows x 100 classes f16 cache (labeled first by the same broker and workers)"
set -- $(label "$dir/cs" "$dir/s.npy" "$dir/t100.safetensors" f16)
echo "labeling it took $1 s"
du -sh "$dir/cs" | sed 's/^/cache size: /'
# VmHWM counts the LMDB pages the process has mapped (file-backed, the
# page cache's, dropped first under memory pressure) with its own memory:
# both are polled, RssAnon (heap) and RssFile (mapped files) apart.
rssanon() { sed -n 's/^RssAnon:[ \t]*\([0-9]*\) kB/\1/p' "/proc/$1/status"; }
student() { # binary name
	"$1" --dataset "$dir/s.npy" --store "$dir/cs" \
	    --alpha 1 --temperature 2 --arch 4-16-100 --epochs 1 --batch 256 --threads 1 \
	    --metrics "$dir/$2.jsonl" --out "$dir/$2.safetensors" 2>"$dir/$2.log" &
	_s=$!
	pids="$pids $_s"
	_peak=0 _anon=0 _file=0
	while kill -0 "$_s" 2>/dev/null; do
		_h=$(hwm "$_s" 2>/dev/null || true)
		_a=$(rssanon "$_s" 2>/dev/null || true)
		_f=$(rssfile "$_s" 2>/dev/null || true)
		[ -n "$_h" ] && _peak=$_h
		[ -n "$_a" ] && [ "$_a" -gt "$_anon" ] && _anon=$_a
		[ -n "$_f" ] && [ "$_f" -gt "$_file" ] && _file=$_f
		sleep 0.2
	done
	wait "$_s" || { echo "$2 failed: $(tail -2 "$dir/$2.log")"; exit 1; }
	_rate=$(tail -n 1 "$dir/$2.jsonl" | sed -n 's/.*"samples_per_s":\([0-9.]*\).*/\1/p')
	echo "$2: peak RSS $((_peak / 1024)) MiB (anonymous up to $((_anon / 1024)) MiB," \
	    "mapped files up to $((_file / 1024)) MiB), $_rate samples/s"
	echo "$_rate" >"$dir/$2.rate"
}
student "$BIN/softlabel-student" student
if [ -n "${BENCH_SCALE_REF_STUDENT:-}" ]; then
	student "$BENCH_SCALE_REF_STUDENT" reference
	echo "samples/s this build / reference: $(ratio "$(cat "$dir/student.rate")" "$(cat "$dir/reference.rate")")"
fi

#!/bin/sh
# Fingerprints without rereading, and rows checked as they are labeled.
#   1. The first broker start hashes the dataset and writes a memo; the
#      second broker start, a worker with --dataset and a student read
#      none of its bytes for the fingerprint (the programs' own counter,
#      printed in their start-up line), also with the memo in the default
#      place under $HOME.
#   2. Bytes changed in place while the broker runs: it labels the shards
#      before them, then stops with exit 1 naming the changed rows; no
#      record of a changed row is stored.
#   3. The same for a worker's local --dataset copy changed while it
#      runs: it stops (exit 1) before sending those shards.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
ROWS=5000 SR=500 BYTES=$((5000 * 784))
sl_subset "$FMNIST/train-images-idx3-ubyte.gz" $ROWS "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"

# Overwrite one byte of row ROW in the .npy in place (r+b: same inode).
flip_row() { # file row
	$DPY - "$1" "$2" <<'PY'
import os, sys
path, row = sys.argv[1], int(sys.argv[2])
off = os.path.getsize(path) - 5000 * 784 + row * 784 + 400
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)
    f.seek(off)
    f.write(bytes([b[0] ^ 0x5a]))
PY
}
fp_line() { # log
	grep "fingerprint " "$1" | tail -1
}

# --- 1. second starts read nothing --------------------------------------------------------
start_and_stop() { # store log
	sl_start_broker "$1" "$T/x.npy" "$2" --shard-rows $SR
	kill -TERM "$BROKER_PID"
	set +e; sl_wait_pid "$BROKER_PID" 30; _rc=$?; set -e
	sl_check "$_rc -eq 0" "broker after SIGTERM: exit $_rc"
	BROKER_PORT=
}
start_and_stop "$T/c1" "$T/b1.log"
fp_line "$T/b1.log" | grep -q "fingerprint computed and remembered ($BYTES of $BYTES sample bytes" ||
    sl_fail "first start: $(fp_line "$T/b1.log")"
ls "$SOFTLABEL_FINGERPRINTS"/*.fp >/dev/null 2>&1 || sl_fail "no memo in $SOFTLABEL_FINGERPRINTS"
start_and_stop "$T/c1" "$T/b2.log"
fp_line "$T/b2.log" | grep -q "fingerprint remembered from its memo (0 of $BYTES sample bytes" ||
    sl_fail "second start: $(fp_line "$T/b2.log")"
echo "broker: first start hashed $BYTES bytes, the second 0"

# A worker with --dataset and a student on the same file use the memo.
sl_start_broker "$T/c1" "$T/x.npy" "$T/b3.log" --shard-rows $SR --exit-when-done
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name t --threads 1 --dataset "$T/x.npy" 2>"$T/w1.log"
set +e; sl_wait_pid "$BROKER_PID" 120; rc=$?; sl_wait_pid "$W" 30; set -e
sl_check "$rc -eq 0" "labeling: broker exit $rc: $(tail -2 "$T/b3.log")"
BROKER_PORT=
fp_line "$T/w1.log" | grep -q "fingerprint remembered from its memo (0 of $BYTES" ||
    sl_fail "worker --dataset: $(fp_line "$T/w1.log")"
"$BIN/softlabel-student" --dataset "$T/x.npy" --store "$T/c1" --alpha 1 --temperature 2 \
    --arch 784-16-10 --epochs 1 --threads 1 --out "$T/s.safetensors" 2>"$T/s.log" ||
    sl_fail "student: $(tail -2 "$T/s.log")"
fp_line "$T/s.log" | grep -q "fingerprint remembered from its memo (0 of $BYTES" ||
    sl_fail "student: $(fp_line "$T/s.log")"
"$BIN/softlabel" verify "$T/c1" | tail -1 | grep -q ok || sl_fail "verify c1"
echo "worker --dataset and student: fingerprint from the memo, 0 bytes read"

# The default place: $HOME/.cache/softlabel/fingerprints.
mkdir "$T/home"
(
	unset SOFTLABEL_FINGERPRINTS XDG_CACHE_HOME
	HOME=$T/home; export HOME
	for i in 1 2; do
		"$BIN/softlabel-student" --dataset "$T/x.npy" --store "$T/c1" --alpha 1 \
		    --temperature 2 --arch 784-16-10 --epochs 1 --threads 1 \
		    --out "$T/s$i.safetensors" 2>"$T/h$i.log" || sl_fail "student $i: $(tail -2 "$T/h$i.log")"
	done
)
fp_line "$T/h1.log" | grep -q "computed and remembered ($BYTES of $BYTES" || sl_fail "home 1: $(fp_line "$T/h1.log")"
fp_line "$T/h2.log" | grep -q "remembered from its memo (0 of $BYTES" || sl_fail "home 2: $(fp_line "$T/h2.log")"
ls "$T/home/.cache/softlabel/fingerprints/"*.fp >/dev/null || sl_fail "no memo under \$HOME"
# Off: every start hashes.
SOFTLABEL_FINGERPRINTS=off "$BIN/softlabel-student" --dataset "$T/x.npy" --store "$T/c1" \
    --alpha 1 --temperature 2 --arch 784-16-10 --epochs 1 --threads 1 \
    --out "$T/s3.safetensors" 2>"$T/h3.log" || sl_fail "student off: $(tail -2 "$T/h3.log")"
fp_line "$T/h3.log" | grep -q "computed (no memo: SOFTLABEL_FINGERPRINTS off or no HOME) ($BYTES of $BYTES" ||
    sl_fail "off: $(fp_line "$T/h3.log")"
echo "memo under \$HOME when nothing is set; SOFTLABEL_FINGERPRINTS=off hashes every time"

# --- 2. the broker's dataset changed in place while it runs ---------------------------------
cp "$T/x.npy" "$T/y.npy"
sl_start_broker "$T/c2" "$T/y.npy" "$T/b4.log" --shard-rows $SR
# Row 2000 is in the second chunk (rows 1024..2047, chunks of 1024 rows):
# shards 2..4 touch it; shards 0 and 1 (rows 0..999) do not.
flip_row "$T/y.npy" 2000
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name t --threads 1 --credit 1 2>"$T/w2.log"
set +e; sl_wait_pid "$BROKER_PID" 60; rc=$?; set -e
BROKER_PORT=
sl_check "$rc -eq 1" "broker on a changed dataset: exit $rc, not 1: $(tail -2 "$T/b4.log")"
grep -q "ERROR $T/y.npy: rows 1024..2047 changed since the dataset's fingerprint was taken" "$T/b4.log" ||
    sl_fail "no error naming the rows: $(grep -E 'ERROR|WARN' "$T/b4.log" | tail -3)"
kill "$W" 2>/dev/null || true
"$BIN/softlabel" verify "$T/c2" >"$T/v2" || sl_fail "verify c2: $(cat "$T/v2")"
grep -q "teacher t: 1000 records in 2/10 done shards checked, 0 problems" "$T/v2" ||
    sl_fail "c2 after the stop: $(cat "$T/v2")"
echo "broker: bytes changed under it: shards 0-1 stored, stopped (exit 1) at shard 2, naming rows 1024..2047"

# --- 3. a worker's local copy changed while it runs ---------------------------------------
cp "$T/x.npy" "$T/z.npy"
# The worker starts first and waits for its broker: its fingerprint is
# taken, then its copy changes, then it labels.
BROKER_PORT=$(sl_free_port)
sl_bg W "$BIN/softlabel-teacher" --connect "tcp://127.0.0.1:$BROKER_PORT" \
    --model "$T/teacher.safetensors" --name t --threads 1 --credit 1 \
    --dataset "$T/z.npy" --connect-timeout 0 2>"$T/w3.log"
sl_wait_log "$T/w3.log" "INFO connecting to tcp://127.0.0.1:$BROKER_PORT .*waiting for a broker without limit" 60
fp_line "$T/w3.log" | grep -q "computed and remembered ($BYTES of $BYTES" || sl_fail "worker 3: $(fp_line "$T/w3.log")"
flip_row "$T/z.npy" 4000 # chunk 3: rows 3072..4095, shards 6..8
sl_start_broker "$T/c3" "$T/x.npy" "$T/b5.log" --shard-rows $SR
set +e; sl_wait_pid "$W" 60; rc=$?; set -e
sl_check "$rc -eq 1" "worker on a changed copy: exit $rc, not 1: $(tail -2 "$T/w3.log")"
grep -q "ERROR shard 6: $T/z.npy: rows 3072..4095 changed since the dataset's fingerprint was taken" "$T/w3.log" ||
    sl_fail "worker: no error naming the rows: $(grep ERROR "$T/w3.log" | tail -2)"
kill -TERM "$BROKER_PID"
set +e; sl_wait_pid "$BROKER_PID" 30; set -e
BROKER_PORT=
"$BIN/softlabel" verify "$T/c3" >"$T/v3" || sl_fail "verify c3: $(cat "$T/v3")"
grep -q "teacher t: 3000 records in 6/10 done shards checked, 0 problems" "$T/v3" ||
    sl_fail "c3 after the worker stopped: $(cat "$T/v3")"
echo "worker: its copy changed under it: shards 0-5 stored, stopped (exit 1) before sending shard 6"
echo "dataset fingerprint: all checks passed"

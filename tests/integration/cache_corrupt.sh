#!/bin/sh
# Bytes flipped inside records of the cache's data.mdb (LMDB has no checksums
# of its own) are caught by the records' CRC: softlabel verify names the
# teacher and the sample and exits 1; the trainer refuses (--on-corrupt fail,
# naming them) or skips and counts (--on-corrupt skip); a broker started with
# --recompute-corrupt puts the affected shards back to pending, a worker
# computes them again, and the cache is whole and exact once more.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 4000 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"
sl_label_all "$T/cache" "$T/x.npy" "$T/teacher.safetensors" t 2 1 --batch 250
"$BIN/softlabel" verify "$T/cache" | tail -1 | grep -q ok || sl_fail "verify before"

n=$($PY "$ROOT/tests/lib/flip_record.py" "$T/cache/data.mdb" 10 12)
echo "flipped a byte in $n record copies"
set +e
"$BIN/softlabel" verify "$T/cache" --max-report 100 >"$T/verify"
rc=$?
set -e
sl_check "$rc -eq 1" "verify must fail on a corrupt cache (exit $rc)"
grep -E "PROBLEM teacher t: sample [0-9]+: label crc32" "$T/verify" | head -3
grep -qE "PROBLEM teacher t: sample [0-9]+: label crc32" "$T/verify" ||
    sl_fail "verify does not name the sample: $(cat "$T/verify")"

set +e
"$BIN/softlabel-student" --dataset "$T/x.npy" --store "$T/cache" --arch 784-16-10 \
    --epochs 1 --out "$T/s.safetensors" 2>"$T/fail.log"
rc=$?
set -e
sl_check "$rc -eq 1" "--on-corrupt fail: exit $rc"
grep -qE "teacher t sample [0-9]+: label crc32.*--on-corrupt skip" "$T/fail.log" ||
    sl_fail "trainer does not name it: $(tail -2 "$T/fail.log")"
"$BIN/softlabel-student" --dataset "$T/x.npy" --store "$T/cache" --arch 784-16-10 \
    --epochs 1 --on-corrupt skip --metrics "$T/m.jsonl" --out "$T/s.safetensors" \
    2>"$T/skip.log" || sl_fail "--on-corrupt skip: $(tail -2 "$T/skip.log")"
grep -qE "[1-9][0-9]* corrupt records skipped" "$T/skip.log" || sl_fail "skip not counted"
rows=$(sl_metric "$T/m.jsonl" rows_with_target)
sl_check "$rows -lt 4000 -a $rows -gt 3900" "skip mode used $rows rows"

BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --recompute-corrupt --exit-when-done
grep "will be recomputed\|shards back to pending" "$T/broker.log" | cut -d' ' -f5- | head -4
grep -qE "shards back to pending" "$T/broker.log" || sl_fail "no repair pass"
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name t --temperature 2 --threads 1 --batch 250 2>"$T/w.log"
set +e; sl_wait_pid "$BROKER_PID" 60; rc=$?; set -e
sl_check "$rc -eq 0" "repair broker: $(tail -2 "$T/broker.log")"
grep -qE "exiting: [1-9][0-9]* shards" "$T/w.log" || sl_fail "nothing was recomputed"
"$BIN/softlabel" verify "$T/cache" >"$T/verify2" || sl_fail "verify after repair: $(cat "$T/verify2")"
tail -1 "$T/verify2"
sl_check_cache_exact "$T/cache" t "$T/teacher.safetensors" "$T/x.npy" 2

#!/bin/sh
# A worker with its own copy of the dataset (--dataset, same fingerprint)
# gets row ranges only, not rows, and its records equal the teacher's; a
# worker whose copy differs is refused with the reason and exits 1.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 2000 "$T/x.npy"
sl_subset "$FMNIST/train-images-idx3-ubyte.gz" 2000 "$T/other.npy"
cp "$T/x.npy" "$T/copy.npy"
sl_make_teacher "$T/teacher.safetensors"
sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 250 --exit-when-done

set +e
"$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name t --dataset "$T/other.npy" 2>"$T/bad.log"
rc=$?
set -e
sl_check "$rc -eq 1" "a worker with another dataset must be refused (exit $rc)"
grep -q "refused this worker: .*another fingerprint" "$T/bad.log" ||
    sl_fail "no reason: $(cat "$T/bad.log")"

sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name t --dataset "$T/copy.npy" --threads 1 --batch 250 2>"$T/w.log"
set +e; sl_wait_pid "$BROKER_PID" 60; rc=$?; set -e
sl_check "$rc -eq 0" "broker: $(tail -2 "$T/broker.log")"
grep -q "joined for teacher t (local dataset" "$T/broker.log" || sl_fail "rows were shipped"
"$BIN/softlabel" verify "$T/cache" | tail -1 | grep -q ok || sl_fail "verify"
sl_check_cache_exact "$T/cache" t "$T/teacher.safetensors" "$T/x.npy" 1

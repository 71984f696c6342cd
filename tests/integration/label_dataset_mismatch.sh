#!/bin/sh
# A broker restarted on an existing cache with a different dataset refuses to
# start with a clear message, and the cache is left as it was; the same
# dataset under another name and format (IDX.gz vs .npy) is accepted.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 1000 "$T/a.npy"
sl_subset "$FMNIST/train-images-idx3-ubyte.gz" 1000 "$T/b.npy"
sl_make_teacher "$T/teacher.safetensors"

sl_start_broker "$T/cache" "$T/a.npy" "$T/broker.log" --shard-rows 100 --exit-when-done
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name t --threads 1 2>"$T/w.log"
set +e; sl_wait_pid "$BROKER_PID" 60; rc=$?; set -e
sl_check "$rc -eq 0" "first job failed: $(tail -2 "$T/broker.log")"
"$BIN/softlabel" verify "$T/cache" >"$T/before" || sl_fail "verify before"

set +e
"$BIN/softlabel-broker" --store "$T/cache" --dataset "$T/b.npy" \
    --bind "tcp://127.0.0.1:$(sl_free_port)" 2>"$T/refused.log"
rc=$?
set -e
cat "$T/refused.log"
sl_check "$rc -eq 2" "a mismatched dataset must be a usage error (exit $rc)"
grep -q "different dataset" "$T/refused.log" || sl_fail "message does not say why"
grep -q "$T/a.npy" "$T/refused.log" || sl_fail "message does not name the job's dataset"
"$BIN/softlabel" verify "$T/cache" >"$T/after" || sl_fail "verify after"
cmp "$T/before" "$T/after" || sl_fail "the cache changed"

# The same rows as a copy under another name resume the job.
cp "$T/a.npy" "$T/a-copy.npy"
sl_start_broker "$T/cache" "$T/a-copy.npy" "$T/broker2.log" --exit-when-done
grep -q "resuming job" "$T/broker2.log" || sl_fail "did not resume"
kill -TERM "$BROKER_PID"
set +e; sl_wait_pid "$BROKER_PID" 20; set -e
echo "mismatched dataset refused; an identical copy resumes the job"

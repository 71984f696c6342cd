#!/bin/sh
# The preprocessing a teacher runs with is part of its registration: a worker
# that claims the same teacher with another --input-mean is refused with the
# registered and its own values, and inspect shows what was registered.
# A worker that gives nothing registers the dataset's default (x / 255).
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 1000 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"

sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 100
sl_bg W1 "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name norm --input-mean 0.286 --input-std 0.353 --threads 1 2>"$T/w1.log"
sl_wait_log "$T/w1.log" "ready connected" 30

set +e
"$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name norm --input-mean 0.5 --input-std 0.353 --threads 1 2>"$T/w2.log"
rc=$?
set -e
cat "$T/w2.log" | tail -2
sl_check "$rc -eq 1" "a worker with other preprocessing must be refused (exit $rc)"
grep -q "registered with preprocessing scale 0.00392156886 mean 0.286000013 std 0.352999985, this worker has scale 0.00392156886 mean 0.5 std 0.352999985" "$T/w2.log" ||
    sl_fail "the refusal does not name both preprocessings"

# Another name with the defaults registers x / 255.
sl_bg W3 "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name plain --threads 1 2>"$T/w3.log"
sl_wait_log "$T/w3.log" "ready connected" 30
"$BIN/softlabel" inspect "$T/cache" >"$T/inspect"
cat "$T/inspect"
grep -A1 "norm: " "$T/inspect" | grep -q "input (x \* 0.00392156886 - 0.286000013) / 0.352999985" ||
    sl_fail "inspect does not show norm's preprocessing"
grep -A1 "plain: " "$T/inspect" | grep -q "input (x \* 0.00392156886 - 0) / 1" ||
    sl_fail "inspect does not show plain's default preprocessing"
echo "preprocessing registered, shown, and a mismatch refused"

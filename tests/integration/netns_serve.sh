#!/bin/sh
# A student on another host reads the cache through softlabel serve: the
# server in one network namespace (host B, bound to 0.0.0.0), the student
# in another (W1, over the veth to 10.77.1.1). Unreachable from the root
# namespace; the model equals the one trained on the directory (one
# thread); the student's host cut off (silent drop) mid-run and healed:
# it waits, resumes, and still ends bit-identical. Needs root (else SKIP).
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/netns.sh"
sl_tmpdir; T=$SL_TMP
sl_netns_require
sl_netns_up
sl_subset "$FMNIST/train-images-idx3-ubyte.gz" 6000 "$T/x.npy"
sl_subset "$FMNIST/train-labels-idx1-ubyte.gz" 300 "$T/y.npy"
sl_make_teacher "$T/teacher.safetensors"
sl_label_all "$T/cache" "$T/x.npy" "$T/teacher.safetensors" t 3 2

sl_bg SPID sl_in "$NS_B" "$BIN/softlabel" serve "$T/cache" \
    --bind "tcp://0.0.0.0:$NS_PORT" 2>>"$T/serve.log"
sl_wait_log "$T/serve.log" "softlabel-serve INFO ready" 30
set +e
"$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" \
    --store "$EP_W1" --connect-timeout 2 --arch 784-10 --out "$T/root.safetensors" \
    2>"$T/root.log"
rc=$?
set -e
sl_check "$rc -eq 1" "the server answered from the root namespace (exit $rc)"

"$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" \
    --store "$T/cache" --alpha 0.7 --temperature 3 --arch 784-128-10 \
    --epochs 6 --batch 64 --seed 4 --threads 1 --out "$T/ref.safetensors" \
    2>"$T/ref.log" || sl_fail "reference: $(tail -3 "$T/ref.log")"
sl_bg STU sl_in "$NS_W1" "$BIN/softlabel-student" --dataset "$T/x.npy" \
    --labels "$T/y.npy" --store "$EP_W1" --alpha 0.7 --temperature 3 \
    --arch 784-128-10 --epochs 6 --batch 64 --seed 4 --threads 1 \
    --out "$T/run.safetensors" 2>"$T/run.log"
sl_wait_log "$T/run.log" "epoch 2: " 120
sl_netns_cut "$NS_W1"
sl_wait_log "$T/run.log" "no answer for [0-9.]+ s; waiting for a server" 120
kill -0 "$STU" 2>/dev/null || sl_fail "the student died when cut off: $(tail -3 "$T/run.log")"
sl_netns_heal "$NS_W1"
set +e; sl_wait_pid "$STU" 300; rc=$?; set -e
sl_check "$rc -eq 0" "student on W1 exited $rc: $(tail -3 "$T/run.log")"
grep -q "a server answers again after" "$T/run.log" || sl_fail "no recovery line"
cmp "$T/ref.safetensors" "$T/run.safetensors" ||
    sl_fail "the student on another host differs from the local run"
echo "student on $NS_W1 over $EP_W1: cut off, waited, resumed; bit-identical to the local run"
kill -TERM "$SPID"
set +e; sl_wait_pid "$SPID" 20; rc=$?; set -e
sl_check "$rc -eq 0" "serve exited $rc"

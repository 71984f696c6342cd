#!/bin/sh
# bench_onnx - the graph engine's speed figures (issue 10), printed, never
# asserted; every ratio is against a reference measured in this run, under
# the same OpenBLAS kernel setting (OPENBLAS_CORETYPE is left as it is).
#
# (a) Teacher forward, batch 256, 2 threads, of the ResNet-style CNN, the
#     MobileNetV2-style CNN and the ViT-style encoder (tests/lib/onnx_models.py)
#     against PyTorch 1.13 running the very same weights with its best setting
#     (OMP_WAIT_POLICY=PASSIVE; the better of eager and
#     torch.jit.optimize_for_inference). Goal: >= 1.0x.
# (b) Conv nodes' GFLOP/s against a cblas_sgemm of a conv-like shape, both
#     measured here (build/bench/bench_graph). Goal: >= 0.7.
# (c) End to end: the broker and one worker (--threads 2, --batch 256) label
#     the 10,000 Fashion-MNIST test rows with the ResNet teacher, against
#     the bare forward pass of the same rows (softlabel-student --evaluate).
#     Goal: >= 0.9.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir >/dev/null
T=$SL_TMP
TPY=/usr/bin/python3
SECONDS_EACH=${BENCH_SECONDS:-4}
MODELS="resnet mobilenet vit"
X=$FMNIST/t10k-images-idx3-ubyte.gz
now_ns() { date +%s%N; }

$TPY "$ROOT/tests/bench/bench_onnx_torch.py" export "$T" \
    --models "$(echo $MODELS | tr ' ' ,)" >/dev/null 2>&1 ||
    sl_fail "export of the bench models failed"

echo "(a) forward, batch 256, 2 threads: softlabel vs PyTorch 1.13 (same weights)"
for m in $MODELS; do
	ours=$("$BUILD/bench/bench_graph" "$T/$m.onnx" --batch 256 --threads 2 \
	    --seconds "$SECONDS_EACH") || sl_fail "bench_graph $m"
	echo "$ours" | sed "s|$T/||g"
	theirs=$(OMP_WAIT_POLICY=PASSIVE $TPY "$ROOT/tests/bench/bench_onnx_torch.py" \
	    run --dir "$T" --models "$m" --batch 256 --threads 2 \
	    --seconds "$SECONDS_EACH" 2>/dev/null | grep "^torch $m ") ||
	    sl_fail "PyTorch bench of $m"
	echo "$theirs"
	a=$(echo "$ours" | awk '/samples\/s/ && !/conv/ { for (i = 1; i < NF; i++) if ($i == "samples/s") print $(i + 1) }')
	b=$(echo "$theirs" | awk '{ for (i = 1; i < NF; i++) if ($i == "samples/s") print $(i + 1) }')
	awk -v m="$m" -v a="$a" -v b="$b" 'BEGIN { printf "ratio %s softlabel/pytorch %.2f (goal >= 1.0)\n", m, a / b }'
	echo "$ours" | grep "conv GFLOP/s" | sed "s|$T/||g" >>"$T/conv"
done
echo "(b) Conv nodes against the cblas_sgemm peak measured in the same run (goal >= 0.7)"
cat "$T/conv"

echo "(c) end to end: broker + one worker labeling 10,000 rows with resnet, against its bare forward"
t0=$(now_ns)
"$BIN/softlabel-student" --evaluate --model "$T/resnet.onnx" --test-data "$X" \
    --threads 2 --batch 256 --probs "$T/bare.npy" 2>/dev/null || sl_fail "bare forward"
bare=$(( $(now_ns) - t0 ))
sl_start_broker "$T/cache" "$X" "$T/broker.log" --exit-when-done --shard-rows 1024
t0=$(now_ns)
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/resnet.onnx" \
    --threads 2 --batch 256 --name resnet 2>"$T/w.log"
sl_wait_pid "$W" 600 || sl_fail "worker: $(tail -2 "$T/w.log")"
e2e=$(( $(now_ns) - t0 ))
sl_wait_pid "$BROKER_PID" 30 || true
awk -v a="$bare" -v b="$e2e" 'BEGIN { printf "bare forward %.1f s (%.0f samples/s), end to end %.1f s (%.0f samples/s): ratio %.2f (goal >= 0.9)\n", a / 1e9, 10000 / (a / 1e9), b / 1e9, 10000 / (b / 1e9), a / b }'

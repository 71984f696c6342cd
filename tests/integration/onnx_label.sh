#!/bin/sh
# Real teachers through the whole system (issue 10): for each issue-10 model
# (ResNet-18-style at opset 17, ViT at opset 13 with LayerNorm decomposed,
# MobileNet at opset 13 with HardSwish as HardSigmoid*x, MLP+BatchNorm1d at
# opset 17), trained briefly in PyTorch and exported to ONNX, a broker and
# two workers (softlabel-teacher --model M.onnx, one thread each) label the
# 10,000 Fashion-MNIST test images with preprocessing (pixel/255 - 0.286) /
# 0.353 at T=2. Then softlabel verify passes and check-cache (python3-lmdb)
# finds exactly one dense f32 record per sample, each equal to PyTorch's
# softmax(z/2) within 1e-5. Every model runs; the test fails at the end
# naming each model that did not label or differs.
#   ONNX_LABEL_MODELS="resnet vit" sh tests/integration/onnx_label.sh
# runs a subset.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
$DPY -c "import torch, onnx, lmdb, numpy" 2>/dev/null ||
    sl_fail "python3-torch, python3-onnx, python3-lmdb or python3-numpy is missing (make deps installs them)"
OM="$DPY $ROOT/tests/lib/onnx_models.py"
PRE="--input-mean 0.286 --input-std 0.353"
X=$FMNIST/t10k-images-idx3-ubyte.gz
MODELS=${ONNX_LABEL_MODELS:-resnet vit mobilenet mlp}

opset_of() { # kind
	case $1 in resnet|mlp) echo 17 ;; *) echo 13 ;; esac
}

# Label X with model $1 into $T/cache-$1; 0 when the broker finished, else
# a reason in $T/why. A worker that dies (a refused model, an unknown
# option) ends the wait at once instead of leaving the broker waiting.
label() { # kind
	_k=$1
	BROKER_PORT=$(sl_free_port)
	sl_start_broker "$T/cache-$_k" "$X" "$T/broker-$_k.log" \
	    --shard-rows 1024 --exit-when-done --nosync
	_pids=""
	for _i in 1 2; do
		sl_bg _w "$BIN/softlabel-teacher" --connect "$BROKER_EP" \
		    --model "$T/$_k.onnx" --name "$_k" --temperature 2 $PRE \
		    --threads 1 --worker-name "$_k-w$_i" 2>>"$T/worker-$_k-$_i.log"
		_pids="$_pids $_w"
	done
	_t=0 _rc=
	while kill -0 "$BROKER_PID" 2>/dev/null; do
		_alive=0
		for _p in $_pids; do kill -0 "$_p" 2>/dev/null && _alive=1; done
		if [ "$_alive" -eq 0 ]; then
			# Workers leave on the broker's DONE, just before it
			# exits itself: give it that moment.
			set +e; sl_wait_pid "$BROKER_PID" 10; _rc=$?; set -e
			[ "$_rc" -ne 124 ] && break
			kill -9 "$BROKER_PID" 2>/dev/null || true
			echo "both workers exited, the broker is not done: $(tail -1 "$T/worker-$_k-1.log")" >"$T/why"
			return 1
		fi
		_t=$((_t + 1))
		if [ "$_t" -gt 3000 ]; then
			kill -9 "$BROKER_PID" 2>/dev/null || true
			echo "not done after 300 s: $(tail -1 "$T/broker-$_k.log")" >"$T/why"
			return 1
		fi
		sleep 0.1
	done
	if [ -z "$_rc" ]; then
		set +e; sl_wait_pid "$BROKER_PID" 10; _rc=$?; set -e
	fi
	if [ "$_rc" -ne 0 ]; then
		echo "broker exit $_rc: $(tail -2 "$T/broker-$_k.log")" >"$T/why"
		return 1
	fi
	for _p in $_pids; do
		set +e; sl_wait_pid "$_p" 30; _rc=$?; set -e
		if [ "$_rc" -ne 0 ]; then
			echo "a worker exited $_rc: $(tail -1 "$T/worker-$_k-1.log") / $(tail -1 "$T/worker-$_k-2.log")" >"$T/why"
			return 1
		fi
	done
	for _i in 1 2; do
		grep -q "exiting: [1-9][0-9]* shards" "$T/worker-$_k-$_i.log" ||
		    { echo "worker $_i labeled nothing: $(tail -1 "$T/worker-$_k-$_i.log")" >"$T/why"; return 1; }
	done
	return 0
}

failed=""
for kind in $MODELS; do
	$OM export "$kind" "$T/$kind.onnx" --opset "$(opset_of "$kind")" --seed 11 \
	    --train-steps 60 --data "$FMNIST/train-images-idx3-ubyte.gz" \
	    --labels "$FMNIST/train-labels-idx1-ubyte.gz" $PRE 2>"$T/export.log" ||
	    sl_fail "exporting $kind failed: $(tail -3 "$T/export.log")"
	$OM predict "$T/$kind.onnx" "$X" "$T/$kind.ref.npy" --temperature 2 $PRE ||
	    sl_fail "PyTorch's reference for $kind failed"
	start=$(date +%s)
	if ! label "$kind"; then
		echo "$kind: labeling failed: $(cat "$T/why")"
		failed="$failed $kind(label)"
		continue
	fi
	echo "$kind: 10000 rows labeled by two workers in $(($(date +%s) - start)) s"
	if ! "$BIN/softlabel" verify "$T/cache-$kind" >"$T/verify-$kind" 2>&1 ||
	    ! grep -q "10000 records in 10/10 done shards checked, 0 problems" "$T/verify-$kind"; then
		echo "$kind: softlabel verify: $(tail -2 "$T/verify-$kind")"
		failed="$failed $kind(verify)"
		continue
	fi
	$OM check-cache "$T/cache-$kind" "$kind" "$T/$kind.ref.npy" 2 --atol 1e-5 ||
	    failed="$failed $kind(cache)"
done
[ -z "$failed" ] || sl_fail "ONNX teachers did not label, or differ from PyTorch:$failed"
echo "PASS: every record equals PyTorch's softmax(z/2) within 1e-5 for:$MODELS"

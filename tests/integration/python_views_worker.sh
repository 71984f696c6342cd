#!/bin/sh
# The Python worker (softlabel.worker) on a views job (issue 12): a broker
# with --views 3 --view-recipe crop=4,flip --view-seed 7 and two Python
# workers running the PyTorch module behind the ResNet-style ONNX teacher
# label 3 views of 1,000 Fashion-MNIST rows as (shard, view) units, taking
# the views from WELCOME. Then every (sample, view) has exactly one record
# under its 16-byte key, 150 sampled pairs equal PyTorch's softmax(z/2) on
# the view softlabel.views computes within 1e-5, the same records compared
# with PyTorch on the plain rows fail (the check sees the views), and
# verify passes. Run on main before this change, the workers stop on the
# first WELCOME ("labels plain rows only").
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
$DPY -c "import torch, onnx, lmdb, numpy, zmq" 2>/dev/null ||
    sl_fail "python3-torch, python3-onnx, python3-lmdb, python3-numpy or python3-zmq is missing (make deps installs them)"
export PYTHONPATH="$ROOT/common/python${PYTHONPATH:+:$PYTHONPATH}"
OM="$DPY $ROOT/tests/lib/onnx_models.py"
VC="$DPY $ROOT/tests/lib/views_check.py"
PRE="--input-mean 0.286 --input-std 0.353"
N=1000 V=3
sl_subset "$FMNIST/train-images-idx3-ubyte.gz" $N "$T/x.npy"
$OM export resnet "$T/res.onnx" --opset 17 --seed 11 --data "$T/x.npy" $PRE \
    2>"$T/export.log" >/dev/null || sl_fail "export: $(tail -3 "$T/export.log")"

sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 125 \
    --views $V --view-recipe crop=4,flip --view-seed 7 --exit-when-done --nosync
for w in 1 2; do
	# shellcheck disable=SC2086
	sl_bg PW "$DPY" "$ROOT/tests/lib/torch_teacher.py" "$BROKER_EP" "$T/res.onnx" \
	    res 2 f32 "py$w" $PRE --connect-timeout 60 2>>"$T/py$w.log"
done
set +e; sl_wait_pid "$BROKER_PID" 300; rc=$?; set -e
sl_check "$rc -eq 0" "broker exit $rc: $(tail -3 "$T/broker.log")"
for w in 1 2; do
	grep -q "views: 3 per row, recipe crop=4,flip, seed 7, rows of 1 x 28 x 28" "$T/py$w.log" ||
	    sl_fail "py$w did not take the broker's views: $(tail -3 "$T/py$w.log")"
done
total=$(grep -hoE "exiting: [0-9]+ shards" "$T/py1.log" "$T/py2.log" |
    awk '{ s += $2 } END { print s + 0 }')
sl_check "$total -ge $((N / 125 * V))" "the Python workers stored $total units, want $((N / 125 * V))"

# Every record, once; sampled ones against PyTorch on Python's views.
$VC make "$T/cache" res "$T/x.npy" 150 "$T/views.npy" "$T/pairs.npy" ||
    sl_fail "making the views in Python failed"
$OM predict "$T/res.onnx" "$T/views.npy" "$T/ref.npy" --temperature 2 $PRE >/dev/null ||
    sl_fail "PyTorch's reference failed"
$VC check "$T/cache" res $N "$T/pairs.npy" "$T/ref.npy" 2 --atol 1e-5 ||
    sl_fail "the cache differs from PyTorch on the views"
$DPY -c "import numpy as np, sys; x = np.load(sys.argv[1]); p = np.load(sys.argv[2]); np.save(sys.argv[3], x[p[:, 0]])" \
    "$T/x.npy" "$T/pairs.npy" "$T/plain.npy"
$OM predict "$T/res.onnx" "$T/plain.npy" "$T/ref_plain.npy" --temperature 2 $PRE >/dev/null
if $VC check "$T/cache" res $N "$T/pairs.npy" "$T/ref_plain.npy" 2 --atol 1e-5 2>/dev/null; then
	sl_fail "the records also equal PyTorch on the plain rows: the check cannot see views"
fi
"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
grep -q "teacher res: 3000 records in 24/24 done (shard, view) units of 3 views checked, 0 problems" "$T/verify" ||
    sl_fail "verify: $(cat "$T/verify")"
echo "python_views_worker: $total units labeled by the Python workers, 150 sampled records equal PyTorch on their views"

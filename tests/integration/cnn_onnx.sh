#!/bin/sh
# A convolutional student exported as ONNX (--onnx-out, protobuf-c) is
# accepted by python3-onnx's checker (full_check: shape inference) and run
# by softlabel's own graph engine: --evaluate on
# the .onnx equals --evaluate on the .safetensors (argmax identical,
# probabilities within 1e-5). Then the student becomes the next teacher:
# a broker and two softlabel-teacher --model student.onnx workers label a
# dataset, the cache equals the model's direct evaluation, and a second
# student distils from that cache. --model M.safetensors --onnx-out F
# converts a saved student the same way.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
$DPY -c "import onnx, numpy" 2>/dev/null ||
    sl_fail "python3-onnx or python3-numpy is missing (make deps installs them)"
X=$FMNIST/t10k-images-idx3-ubyte.gz
Y=$FMNIST/t10k-labels-idx1-ubyte.gz
ARCH='conv:8:3:p=1,bn,relu,maxpool:2,res(conv:8:3:p=1:g=8,bn,relu,conv:8:1:bias=0,bn),relu,conv:12:3:s=2:p=1:g=2,bn,relu,avgpool:3:s=1:p=1,gap,flatten,dropout:0.2,linear:10'

sl_subset "$X" 2000 "$T/x.npy"
sl_subset "$Y" 2000 "$T/y.npy"
"$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" \
    --arch "$ARCH" --epochs 2 --batch 50 --lr 0.01 --seed 4 --threads 1 \
    --out "$T/s.safetensors" --onnx-out "$T/s.onnx" 2>"$T/log" ||
    sl_fail "training failed: $(tail -3 "$T/log")"
grep -q "wrote $T/s.onnx (ONNX)" "$T/log" || sl_fail "no ONNX written: $(tail -2 "$T/log")"
$DPY - "$T/s.onnx" <<'PY' || sl_fail "onnx.checker refused the export"
import sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
ops = sorted({n.op_type for n in m.graph.node})
print("onnx.checker (full_check) accepts it; opset", m.opset_import[0].version, "ops", " ".join(ops))
for want in ("Conv", "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool", "Add", "Gemm"):
    assert want in ops, want
assert [o.name for o in m.graph.output] == ["logits"]
PY
for f in s.safetensors s.onnx; do
	"$BIN/softlabel-student" --evaluate --model "$T/$f" --test-data "$X" \
	    --test-labels "$Y" --probs "$T/$f.probs.npy" --temperature 2 \
	    >"$T/$f.out" 2>>"$T/log" || sl_fail "--evaluate $f failed: $(tail -2 "$T/log")"
done
cmp "$T/s.safetensors.out" "$T/s.onnx.out" ||
    sl_fail "accuracy differs: $(cat "$T/s.safetensors.out") vs $(cat "$T/s.onnx.out")"
$DPY - "$T/s.safetensors.probs.npy" "$T/s.onnx.probs.npy" <<'PY' || sl_fail "the ONNX export computes something else"
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
d = float(np.abs(a - b).max())
same = int((a.argmax(1) == b.argmax(1)).sum())
print(f"engine on the .onnx vs the .safetensors: argmax identical on {same}/{len(a)}, max |p - p'| = {d:.3g}")
sys.exit(0 if same == len(a) and d <= 1e-5 else 1)
PY
# Conversion of a saved file gives the same bytes as the training run's.
"$BIN/softlabel-student" --model "$T/s.safetensors" --onnx-out "$T/c.onnx" 2>>"$T/log" ||
    sl_fail "conversion failed: $(tail -1 "$T/log")"
cmp "$T/s.onnx" "$T/c.onnx" || sl_fail "--onnx-out conversion differs from the training run's export"
set +e
"$BIN/softlabel-student" --model "$T/x.npy" --onnx-out "$T/d.onnx" 2>"$T/err"; rc=$?
set -e
sl_check "$rc -eq 1" "converting a .npy: exit $rc, want 1"
grep -q "x.npy: not a safetensors file" "$T/err" || sl_fail "converting a .npy: $(cat "$T/err")"
[ ! -e "$T/d.onnx" ] || sl_fail "a refused conversion wrote a file"

# The engine takes the .onnx; the .safetensors is refused saying so.
set +e
"$BIN/softlabel-teacher" --connect tcp://127.0.0.1:1 --model "$T/s.safetensors" \
    --name s 2>"$T/err"; rc=$?
set -e
sl_check "$rc -eq 1" "softlabel-teacher --model s.safetensors: exit $rc, want 1"
grep -q "a convolutional student's safetensors: the graph engine runs its ONNX export" "$T/err" ||
    sl_fail "softlabel-teacher --model s.safetensors: $(tail -1 "$T/err")"

# The student as the next teacher, through the broker and two workers.
sl_subset "$X" 3000 "$T/u.npy"
sl_label_all "$T/cache" "$T/u.npy" "$T/s.onnx" student 2 2
sl_check_cache_exact "$T/cache" student "$T/s.onnx" "$T/u.npy" 2
"$BIN/softlabel-student" --dataset "$T/u.npy" --store "$T/cache" --alpha 1 \
    --temperature 2 --arch 'conv:4:3:p=1,bn,relu,maxpool:2,flatten,linear:10' \
    --epochs 1 --threads 1 --out "$T/next.safetensors" 2>>"$T/log" ||
    sl_fail "distilling from the student's cache failed: $(tail -2 "$T/log")"
echo "PASS"

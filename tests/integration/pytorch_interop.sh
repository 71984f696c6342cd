#!/bin/sh
# A model softlabel-student wrote loads into PyTorch's nn.Sequential with
# strict=True and predicts the same classes; a state_dict PyTorch saved as
# safetensors (float32, float16, bfloat16, Dropout modules between the
# layers) loads into softlabel-student --evaluate with the same predictions.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
TPY=/usr/bin/python3
$TPY -c "import torch, numpy" 2>/dev/null ||
    sl_fail "python3-torch is not installed (make deps installs it)"
X=$FMNIST/t10k-images-idx3-ubyte.gz
Y=$FMNIST/t10k-labels-idx1-ubyte.gz

sl_subset "$X" 2000 "$T/x.npy"
sl_subset "$Y" 2000 "$T/y.npy"
"$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" \
    --arch 784-64-10 --epochs 2 --seed 5 --out "$T/ours.safetensors" 2>"$T/log" ||
    sl_fail "training failed: $(cat "$T/log")"
"$BIN/softlabel-student" --evaluate --model "$T/ours.safetensors" \
    --test-data "$X" --predictions "$T/ours.npy" 2>>"$T/log" ||
    sl_fail "evaluate failed: $(cat "$T/log")"
$TPY "$ROOT/tests/lib/torch_interop.py" load "$T/ours.safetensors" "$X" "$T/ours.npy"

for dt in float32 float16 bfloat16; do
	$TPY "$ROOT/tests/lib/torch_interop.py" write "$T/pt_$dt.safetensors" \
	    "$X" "$T/pt_$dt.npy"  "$dt"
	"$BIN/softlabel-student" --evaluate --model "$T/pt_$dt.safetensors" \
	    --arch 784-64-32-10 --test-data "$X" --predictions "$T/ours_$dt.npy" \
	    2>>"$T/log" || sl_fail "PyTorch's $dt file did not load: $(tail -1 "$T/log")"
	$TPY - "$T/pt_$dt.npy" "$T/ours_$dt.npy" <<'PY'
import sys, numpy as np
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
n = int((a == b).sum())
print(f"{sys.argv[1].rsplit('/', 1)[1]}: softlabel agrees with pytorch on {n}/{len(a)}")
sys.exit(0 if n >= len(a) - 2 else 1)
PY
done

#!/bin/sh
# softlabel-student with a convolutional --arch: a bad description exits 2
# with one line naming the element and why and writes nothing; --print-torch
# prints the module (and needs --dataset for the input shape); --dropout and
# --evaluate --arch are refused for networks; a damaged CNN file is a
# one-line error (exit 1); a [C, H, W] dataset gives C input channels.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
S=$BIN/softlabel-student
X=$FMNIST/t10k-images-idx3-ubyte.gz
Y=$FMNIST/t10k-labels-idx1-ubyte.gz

expect() { # want-exit want-output-substring args...
	want=$1 msg=$2; shift 2
	set +e
	"$S" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	set -e
	[ "$rc" -eq "$want" ] || sl_fail "$*: exit $rc, want $want; stderr: $(cat "$T/err")"
	grep -qF -- "$msg" "$T/err" "$T/out" ||
	    sl_fail "$*: output lacks '$msg': $(cat "$T/err")"
	! grep -q "runtime error\|AddressSanitizer" "$T/err" ||
	    sl_fail "$*: sanitizer report"
}
bad_arch() { # message arch
	expect 2 "$1" --dataset "$X" --labels "$Y" --arch "$2" --out "$T/m" \
	    --checkpoint "$T/c" --metrics "$T/j"
	[ "$(grep -c . "$T/err")" -eq 1 ] || sl_fail "$2: not one line: $(cat "$T/err")"
	[ ! -e "$T/m" ] && [ ! -e "$T/c" ] && [ ! -e "$T/j" ] ||
	    sl_fail "$2: a refused start left files behind"
}

bad_arch "--arch: element 0 'conv:8:30': kernel 30 larger than its padded input 28x28" \
    'conv:8:30,flatten,linear:10'
bad_arch "element 1 'linear:10': linear (nn.Linear) needs a flat input, it gets 8x26x26: put flatten before it" \
    'conv:8:3,linear:10'
bad_arch "element 2 'res(...)': its body gives 8x14x14 from 16x14x14" \
    'conv:16:3:p=1,maxpool:2,res(conv:8:3:p=1),flatten,linear:10'
bad_arch "element 3.body.1 'maxpool:9': kernel 9 larger than its padded input 7x7" \
    'conv:4:3:p=1,maxpool:2,maxpool:2,res(conv:4:3:p=1,maxpool:9),flatten,linear:10'
bad_arch "element 1 'bn:eps=0': eps '0' is not in 1e-12..1" 'conv:4:3,bn:eps=0,flatten,linear:10'
bad_arch "element 0 'conv:4:3:g=3': groups 3 must divide the 1 input and 4 output channels" \
    'conv:4:3:g=3,flatten,linear:10'
bad_arch "the last element gives 4x26x26" 'conv:4:3'
# Labels beyond the classes the last linear gives:
expect 2 "label 9 at row" --dataset "$X" --labels "$Y" --arch 'conv:4:3,flatten,linear:5' --out "$T/m"
expect 2 "unknown element 'softmax'" --dataset "$X" --labels "$Y" --arch 'conv:4:3,flatten,linear:10,softmax' --out "$T/m"
expect 2 "--dropout: a convolutional --arch places its own dropout:P elements" \
    --dataset "$X" --labels "$Y" --arch 'conv:4:3,flatten,linear:10' --dropout 0.2 --out "$T/m"
expect 2 "is not a layer list like 784-128-10" --dataset "$X" --labels "$Y" --arch 784-x --out "$T/m"

# --print-torch
expect 0 "nn.Conv2d(1, 4, 3, stride=1, padding=0, groups=1, bias=True)," \
    --print-torch --dataset "$X" --arch 'conv:4:3,relu,flatten,linear:10'
grep -q "nn.Linear(2704, 10, bias=True)" "$T/out" || sl_fail "--print-torch: $(cat "$T/out")"
! grep -q "Residual" "$T/out" || sl_fail "--print-torch prints Residual without res(...)"
expect 2 "--print-torch with a convolutional --arch needs --dataset" \
    --print-torch --arch 'conv:4:3,flatten,linear:10'
expect 0 "nn.Linear(784, 128)," --print-torch --arch 784-128-10
expect 2 "kernel 30 larger" --print-torch --dataset "$X" --arch 'conv:8:30,flatten,linear:10'

# [C, H, W] rows: 3 input channels.
$DPY - "$T/rgb.npy" "$T/rgb_y.npy" <<'PY'
import sys, numpy as np
rng = np.random.default_rng(1)
np.save(sys.argv[1], rng.integers(0, 256, size=(64, 3, 8, 8), dtype=np.uint8))
np.save(sys.argv[2], rng.integers(0, 4, size=64).astype(np.int64))
PY
expect 0 "nn.Conv2d(3, 5, 3, stride=1, padding=1, groups=1, bias=True)," \
    --print-torch --dataset "$T/rgb.npy" --arch 'conv:5:3:p=1,gap,flatten,linear:4'
expect 0 "wrote $T/rgb.safetensors" --dataset "$T/rgb.npy" --labels "$T/rgb_y.npy" \
    --arch 'conv:5:3:p=1,bn,relu,gap,flatten,linear:4' --epochs 1 --batch 16 \
    --input-mean 0.5,0.4,0.3 --input-std 0.2,0.25,0.3 --out "$T/rgb.safetensors"
expect 0 "accuracy" --evaluate --model "$T/rgb.safetensors" --test-data "$T/rgb.npy" \
    --test-labels "$T/rgb_y.npy"
expect 2 "a convolutional model file carries its own architecture" --evaluate \
    --model "$T/rgb.safetensors" --arch 'conv:5:3' --test-data "$T/rgb.npy" --test-labels "$T/rgb_y.npy"
expect 2 "rows of 784 values, the model" --evaluate --model "$T/rgb.safetensors" \
    --test-data "$X" --test-labels "$Y"

# A damaged file: a tensor's shape changed in the header.
$DPY - "$T/rgb.safetensors" "$T/bad.safetensors" <<'PY'
import sys, struct, json
raw = open(sys.argv[1], "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
h = json.loads(raw[8:8 + n])
h["0.weight"]["shape"][1] = 2
b = json.dumps(h, separators=(",", ":")).encode()
b += b" " * ((8 - len(b) % 8) % 8)
open(sys.argv[2], "wb").write(struct.pack("<Q", len(b)) + b + raw[8 + n:])
PY
expect 1 "bad.safetensors: tensor 0.weight: dimension 1 is not 3" --evaluate \
    --model "$T/bad.safetensors" --test-data "$T/rgb.npy" --test-labels "$T/rgb_y.npy"
head -c 300 "$T/rgb.safetensors" >"$T/cut.safetensors"
expect 1 "cut.safetensors:" --evaluate --model "$T/cut.safetensors" \
    --test-data "$T/rgb.npy" --test-labels "$T/rgb_y.npy"
echo "PASS"

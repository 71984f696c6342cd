#!/bin/sh
# softlabel.torch (common/python): kd_loss against the C sl_loss_kd (built
# here from common/sl_loss.c as a shared object with the project's flags
# and called through ctypes), CacheDataset against a real cache labeled by
# a real broker and worker, a PyTorch student distilled from it, and the
# pure-Python safetensors loader/saver against the fixtures
# (tests/python/test_torch.py).
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
$DPY -c 'import torch' 2>/dev/null || { echo "SKIP: python3-torch is not installed"; exit 77; }
${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -fno-math-errno -shared -fPIC \
    -Icommon -o "$T/libslloss.so" "$ROOT/common/sl_loss.c" -lm ||
    sl_fail "building sl_loss.c as a shared object failed"
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 3000 "$T/x.npy"
sl_subset "$FMNIST/t10k-labels-idx1-ubyte.gz" 3000 "$T/y.npy" 1500
sl_make_teacher "$T/teacher.safetensors"
sl_label_all "$T/cache" "$T/x.npy" "$T/teacher.safetensors" t 2 1
PYTHONPATH="$ROOT/common/python" OMP_NUM_THREADS=1 $DPY "$ROOT/tests/python/test_torch.py" \
    "$T/libslloss.so" "$T/cache" "$T/x.npy" "$T/y.npy" "$T" ||
    sl_fail "softlabel.torch"
echo "softlabel.torch: kd_loss equals the C loss and gradient; the Dataset reads the cache"

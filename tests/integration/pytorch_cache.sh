#!/bin/sh
# PyTorch's own probabilities against a real logit cache: an MLP trained
# briefly in PyTorch (nn.Sequential of Linear/ReLU, saved as a softlabel
# safetensors model with its preprocessing, mean 0.286, std 0.353) labels
# the 10,000 Fashion-MNIST test images through a broker and two workers;
# tests/lib/onnx_models.py check-cache reads the LMDB cache with
# python3-lmdb and finds exactly one record per sample, each decoding
# (header, CRC) to PyTorch's softmax(z/2) within 1e-5. The checker must also
# fail where it should: a reference at another temperature, one row short,
# one row too many, an unknown teacher, a flipped byte, a wrong header. This is the checker the ONNX tests
# (onnx_label.sh) use, proven here on today's teachers.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
$DPY -c "import torch, lmdb, numpy" 2>/dev/null ||
    sl_fail "python3-torch, python3-lmdb or python3-numpy is missing (make deps installs them)"
OM="$DPY $ROOT/tests/lib/onnx_models.py"
X=$FMNIST/t10k-images-idx3-ubyte.gz
PRE="--input-mean 0.286 --input-std 0.353"

$OM export mlp-safetensors "$T/pt.safetensors" --seed 3 --train-steps 200 \
    --data "$FMNIST/train-images-idx3-ubyte.gz" \
    --labels "$FMNIST/train-labels-idx1-ubyte.gz" $PRE 2>"$T/export.log" ||
    sl_fail "export failed: $(tail -3 "$T/export.log")"
$OM predict "$T/pt.safetensors" "$X" "$T/ref.npy" --temperature 2 $PRE ||
    sl_fail "PyTorch reference failed"

# softlabel's numeric core agrees with PyTorch on this model to begin with.
"$BIN/softlabel-student" --evaluate --model "$T/pt.safetensors" --test-data "$X" \
    --probs "$T/direct.npy" --temperature 2 --threads 1 2>"$T/eval.log" ||
    sl_fail "evaluate failed: $(tail -2 "$T/eval.log")"
$OM compare "$T/ref.npy" "$T/direct.npy" --atol 1e-5 ||
    sl_fail "softlabel-student --evaluate differs from PyTorch"

sl_start_broker "$T/cache" "$X" "$T/broker.log" --shard-rows 1024 --exit-when-done --nosync
for i in 1 2; do
	sl_bg w "$BIN/softlabel-teacher" --connect "$BROKER_EP" \
	    --model "$T/pt.safetensors" --name ptmlp --temperature 2 \
	    --threads 1 --worker-name "w$i" 2>>"$T/worker$i.log"
	eval "W$i=\$w"
done
set +e; sl_wait_pid "$BROKER_PID" 120; rc=$?; set -e
sl_check "$rc -eq 0" "broker exit $rc: $(tail -3 "$T/broker.log")"
for i in 1 2; do
	eval "p=\$W$i"
	set +e; sl_wait_pid "$p" 30; rc=$?; set -e
	sl_check "$rc -eq 0" "worker $i exit $rc: $(tail -3 "$T/worker$i.log")"
done

$OM check-cache "$T/cache" ptmlp "$T/ref.npy" 2 ||
    sl_fail "the cache differs from PyTorch's softmax(z/2)"
$OM check-cache "$T/cache" 0 "$T/ref.npy" 2 >/dev/null ||
    sl_fail "check-cache by teacher index failed"

# The checker can fail: each of these must be refused, with its reason.
expect_refused() { # what pattern args...
	_what=$1 _pat=$2; shift 2
	if $OM check-cache "$@" >"$T/neg.out" 2>"$T/neg.err"; then
		sl_fail "check-cache passed $_what: $(cat "$T/neg.out")"
	fi
	grep -qE "$_pat" "$T/neg.err" ||
	    sl_fail "check-cache refused $_what for another reason: $(cat "$T/neg.err")"
	echo "refused as it should, $_what: $(cat "$T/neg.err")"
}
$OM predict "$T/pt.safetensors" "$X" "$T/ref_t21.npy" --temperature 2.1 $PRE >/dev/null
expect_refused "a reference at T=2.1" "max abs diff .* > atol" "$T/cache" ptmlp "$T/ref_t21.npy" 2
expect_refused "a registration at T=2 checked as T=2.1" "registered at T=2" \
    "$T/cache" ptmlp "$T/ref_t21.npy" 2.1
$DPY -c "import sys, numpy as np; a = np.load(sys.argv[1]); np.save(sys.argv[2], a[:-1]); \
np.save(sys.argv[3], np.concatenate([a, a[:1]]))" "$T/ref.npy" "$T/short.npy" "$T/long.npy"
expect_refused "a reference one row short" "1 records beyond sample 9998" "$T/cache" ptmlp "$T/short.npy" 2
expect_refused "a reference one row long" "1 samples have no record, first 10000" "$T/cache" ptmlp "$T/long.npy" 2
expect_refused "an unknown teacher" "no teacher nosuch" "$T/cache" nosuch "$T/ref.npy" 2
# Damaged records, written through LMDB into a copy of the cache: a flipped
# value byte (CRC no longer matches) and a record re-labeled f16 with its CRC
# recomputed (header no longer matches).
for how in crc header; do
	cp -r "$T/cache" "$T/bad-$how"
	$DPY - "$T/bad-$how" "$how" <<'PY'
import struct, sys, zlib, lmdb
env = lmdb.open(sys.argv[1], max_dbs=8)
db = env.open_db(b"labels", create=False)
with env.begin(write=True) as txn:
    key = struct.pack(">IQ", 0, 4321)
    v = bytearray(txn.get(key, db=db))
    if sys.argv[2] == "crc":
        v[20] ^= 0x40
    else:
        v[0] = 2
        v[8:12] = struct.pack("<I", zlib.crc32(bytes(v[12:])))
    txn.put(key, bytes(v), db=db)
PY
done
expect_refused "a flipped value byte" "sample 4321: crc32" "$T/bad-crc" ptmlp "$T/ref.npy" 2
expect_refused "a record of another encoding" "sample 4321: header encoding 2" "$T/bad-header" ptmlp "$T/ref.npy" 2
echo "PASS: the cache equals PyTorch's softmax(z/2), and the checker fails where it should"

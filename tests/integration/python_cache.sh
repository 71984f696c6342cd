#!/bin/sh
# softlabel.Cache (common/python) against the C reader on a real cache: a
# real broker and worker label 3000 rows with one teacher under three names
# (f32, f16, top-k:3); tests/python/test_cache.py then checks that the
# package's teachers and coverage match `softlabel inspect`, its
# distributions match `softlabel export` (within one float32 ulp, at the
# stored temperature and re-softened at others) and `softlabel get`, batch
# reads by ids, and that a record with one flipped byte raises a clear
# CorruptRecordError naming teacher and sample.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 3000 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"
sl_label_all "$T/cache" "$T/x.npy" "$T/teacher.safetensors" full 2 1
sl_label_all "$T/cache" "$T/x.npy" "$T/teacher.safetensors" half 2 1 --encoding f16
sl_label_all "$T/cache" "$T/x.npy" "$T/teacher.safetensors" top3 2 1 --encoding topk:3
"$BIN/softlabel" verify "$T/cache" >/dev/null || sl_fail "verify failed"
"$BIN/softlabel" inspect "$T/cache" >"$T/inspect"
for t in full half top3; do
	for temp in 0 1 4.5; do
		"$BIN/softlabel" export "$T/cache" --teacher $t --temperature $temp \
		    --out "$T/export-$t-$temp.npy" >/dev/null || sl_fail "export $t T=$temp"
	done
	for s in 0 1234 2999; do
		"$BIN/softlabel" get "$T/cache" --teacher $t --sample $s >"$T/get-$t-$s" ||
		    sl_fail "get $t $s"
	done
done
PYTHONPATH="$ROOT/common/python" $DPY "$ROOT/tests/python/test_cache.py" \
    "$T/cache" "$T" "$T/x.npy" "$T/teacher.safetensors" ||
    sl_fail "softlabel.Cache differs from the C reader"
echo "softlabel.Cache equals softlabel export and get on f32, f16 and top-k"

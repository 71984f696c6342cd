#!/bin/sh
# f16 and top-k records through the real programs: two teacher names label
# one dataset into one cache with different encodings, verify passes, `get`
# returns distributions that sum to 1, bytes per record are as documented,
# and a student distils from the two as a committee.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 3000 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"
sl_label_all "$T/cache" "$T/x.npy" "$T/teacher.safetensors" half 2 1 --encoding f16
sl_label_all "$T/cache" "$T/x.npy" "$T/teacher.safetensors" top3 2 1 --encoding topk:3
"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
cat "$T/verify"
grep -q "teacher half: 3000 records in 3/3 done shards checked, 0 problems" "$T/verify" || sl_fail "f16"
grep -q "teacher top3: 3000 records in 3/3 done shards checked, 0 problems" "$T/verify" || sl_fail "topk"
"$BIN/softlabel" inspect "$T/cache" | tee "$T/inspect" | grep teacher
grep -q "half: .* f16, 10 classes, 32 bytes/record" "$T/inspect" || sl_fail "f16 record size"
grep -q "top3: .* topk:3, 10 classes, 34 bytes/record" "$T/inspect" || sl_fail "top-k record size"
for t in half top3; do
	"$BIN/softlabel" get "$T/cache" --teacher $t --sample 1234 >"$T/get" || sl_fail "get $t"
	cut -d: -f2 "$T/get" | awk -v t=$t '{ s = 0; for (i = 1; i <= NF; i++) s += $i;
	    if (s < 0.999 || s > 1.001) { print t ": sums to " s; exit 1 } }' || sl_fail "not a distribution"
done
# --logits of a top-k record: the 3 kept classes' logits, nan (JSON null) for the 7 others.
"$BIN/softlabel" get "$T/cache" --teacher top3 --sample 1234 --logits >"$T/get" || sl_fail "get --logits top3"
cut -d: -f2 "$T/get" | awk '{ n = 0; f = 0; for (i = 1; i <= NF; i++) if ($i == "nan") n++; else f++;
    if (n != 7 || f != 3) { print "top3 logits: " n " nan, " f " values"; exit 1 } }' || sl_fail "top-k logits: $(cat "$T/get")"
"$BIN/softlabel" get "$T/cache" --teacher top3 --sample 1234 --logits --json >"$T/get.json" ||
    sl_fail "get --logits --json top3"
$DPY -c 'import json,sys; z = json.load(open(sys.argv[1]))["logits"]; assert sum(v is None for v in z) == 7 and len(z) == 10, z' \
    "$T/get.json" || sl_fail "top-k logits as JSON: $(cat "$T/get.json")"
"$BIN/softlabel-student" --dataset "$T/x.npy" --store "$T/cache" --teacher half,top3 \
    --teacher-weights 1,2 --arch 784-32-10 --epochs 2 --metrics "$T/m.jsonl" \
    --out "$T/s.safetensors" 2>"$T/s.log" || sl_fail "committee student: $(tail -2 "$T/s.log")"
sl_check "$(sl_metric "$T/m.jsonl" rows_with_target) -eq 3000" "committee targets missing"
echo "f16 and top-k labeled, verified and distilled from"

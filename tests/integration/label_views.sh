#!/bin/sh
# Views through the whole system (issue 12): a broker with --views 4
# --view-recipe crop=4,flip --view-seed 7 and two softlabel-teacher workers
# (the ResNet-style ONNX teacher PyTorch exports for onnx_label.sh) label
# 4 views of 4,000 Fashion-MNIST rows as (shard, view) units. Workers that
# insist on another recipe or another V are refused, naming the field. One
# worker is killed with -9 in the middle of the job and replaced; its
# leases expire and go to the others. Then every (sample, view) has exactly
# one record under its 16-byte key, none is missing, and 200 sampled pairs
# equal PyTorch's softmax(z/2) on the view that softlabel.views (Python)
# computes from the raw row, within 1e-5; the same records compared with
# PyTorch on the plain rows must fail (the check sees the views). verify
# (coverage per (shard, view)), inspect, export, get --view and
# --recompute-corrupt of one view's record follow. (The Python worker on a
# views job: python_views_worker.sh.)
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
$DPY -c "import torch, onnx, lmdb, numpy" 2>/dev/null ||
    sl_fail "python3-torch, python3-onnx, python3-lmdb or python3-numpy is missing (make deps installs them)"
export PYTHONPATH="$ROOT/common/python${PYTHONPATH:+:$PYTHONPATH}"
OM="$DPY $ROOT/tests/lib/onnx_models.py"
VC="$DPY $ROOT/tests/lib/views_check.py"
PRE="--input-mean 0.286 --input-std 0.353"
N=4000 V=4
sl_subset "$FMNIST/train-images-idx3-ubyte.gz" $N "$T/x.npy"
$OM export resnet "$T/res.onnx" --opset 17 --seed 11 --data "$T/x.npy" $PRE \
    2>"$T/export.log" >/dev/null || sl_fail "export: $(tail -3 "$T/export.log")"

# Usage: --views without --view-recipe, a bad recipe, rows that are no
# images: exit 2, naming it, no cache left.
$DPY -c "import numpy as np, sys; np.save(sys.argv[1], np.zeros((10, 784), np.uint8))" "$T/flat.npy"
for args in "--views 4|--views and --view-recipe go together" \
    "--views 4 --view-recipe crop=99|'crop=99': want crop=P" \
    "--views 4 --view-recipe flip --dataset $T/flat.npy|rows need a shape \[..., H, W\], not 1 dimension"; do
	opts=${args%%|*} want=${args#*|}
	set +e
	# shellcheck disable=SC2086
	"$BIN/softlabel-broker" --store "$T/usage" --dataset "$T/x.npy" \
	    --bind "tcp://127.0.0.1:$(sl_free_port)" $opts 2>"$T/usage.log"
	rc=$?
	set -e
	sl_check "$rc -eq 2" "softlabel-broker $opts: exit $rc"
	grep -q -e "$want" "$T/usage.log" || sl_fail "softlabel-broker $opts: $(tail -1 "$T/usage.log")"
	[ ! -e "$T/usage" ] || sl_fail "softlabel-broker $opts left a cache"
done

sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 250 \
    --views $V --view-recipe crop=4,flip --view-seed 7 --lease-timeout 2 \
    --exit-when-done --nosync
worker() { # name extra...
	_n=$1; shift
	exec "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/res.onnx" \
	    --name res --temperature 2 $PRE --threads 1 --batch 50 \
	    --worker-name "$_n" "$@" 2>>"$T/$_n.log"
}

# Workers started with other views are refused (exit 1), the reason named.
for bad in "recipe --views 4 --view-recipe crop=2,flip --view-seed 7" \
    "count --views 8 --view-recipe crop=4,flip --view-seed 7" \
    "seed --views 4 --view-recipe crop=4,flip --view-seed 8"; do
	set -- $bad; name=$1; shift
	sl_bg pid worker "bad-$name" "$@"
	set +e; sl_wait_pid "$pid" 30; rc=$?; set -e
	sl_check "$rc -eq 1" "the worker with another $name exited $rc: $(tail -2 "$T/bad-$name.log")"
done
grep -q "refused this worker: teacher 'res' is registered with view recipe crop=4,flip, this worker has crop=2,flip" "$T/bad-recipe.log" ||
    sl_fail "recipe refusal: $(tail -1 "$T/bad-recipe.log")"
grep -q "registered with 4 views, this worker has 8" "$T/bad-count.log" ||
    sl_fail "views refusal: $(tail -1 "$T/bad-count.log")"
grep -q "registered with view seed 7, this worker has 8" "$T/bad-seed.log" ||
    sl_fail "seed refusal: $(tail -1 "$T/bad-seed.log")"

# Two workers (one insisting on the right views, one taking the broker's);
# worker 1 is killed once some units are done, and replaced by one that
# reads its rows from a local copy of the dataset.
sl_bg W1 worker w1 --views 4 --view-recipe crop=4,flip --view-seed 7
sl_bg W2 worker w2
i=0 done_units=0
while [ "$done_units" -lt 6 ]; do
	sl_status_json "$BROKER_EP" >"$T/st.json" 2>/dev/null || true
	done_units=$(sl_json_get "$T/st.json" "d['teachers'][0]['done']" 2>/dev/null || echo 0)
	i=$((i + 1))
	[ "$i" -le 600 ] || sl_fail "no 6 units done in 120 s: $(cat "$T/st.json")"
	sleep 0.2
done
units=$(sl_json_get "$T/st.json" "d['teachers'][0]['units']")
sl_check "$units -eq $((N / 250 * V))" "status has $units units, want $((N / 250 * V))"
sl_check "$done_units -lt $units" "the job ended before the kill"
kill -9 "$W1"
echo "killed worker 1 with $done_units/$units units done"
sl_bg W3 worker w3 --dataset "$T/x.npy" # views of its local rows
set +e; sl_wait_pid "$BROKER_PID" 300; rc=$?; set -e
sl_check "$rc -eq 0" "broker exit $rc: $(tail -3 "$T/broker.log")"
grep -qE "exiting: [1-9][0-9]* shards" "$T/w3.log" ||
    sl_fail "the worker with a local dataset labeled nothing: $(tail -1 "$T/w3.log")"
expired=$(sl_count "$T/broker.log" "lease expired: teacher res unit [0-9]+ \(shard [0-9]+, view [0-3]\) worker w1 ")
sl_check "$expired -ge 1" "no lease of the killed worker expired (named as a unit): $(grep 'lease expired' "$T/broker.log" | head -2)"
grep -q "views: 4 per row, recipe crop=4,flip, seed 7, rows of 1 x 28 x 28" "$T/w2.log" ||
    sl_fail "worker 2 did not take the broker's views: $(grep views "$T/w2.log")"

# Every record, once; sampled ones against PyTorch on Python's views.
$VC make "$T/cache" res "$T/x.npy" 200 "$T/views.npy" "$T/pairs.npy" ||
    sl_fail "making the views in Python failed"
$OM predict "$T/res.onnx" "$T/views.npy" "$T/ref.npy" --temperature 2 $PRE >/dev/null ||
    sl_fail "PyTorch's reference failed"
$VC check "$T/cache" res $N "$T/pairs.npy" "$T/ref.npy" 2 --atol 1e-5 ||
    sl_fail "the cache differs from PyTorch on the views"
# The control: the plain rows of those pairs are not what was labeled.
$DPY -c "import numpy as np, sys; x = np.load(sys.argv[1]); p = np.load(sys.argv[2]); np.save(sys.argv[3], x[p[:, 0]])" \
    "$T/x.npy" "$T/pairs.npy" "$T/plain.npy"
$OM predict "$T/res.onnx" "$T/plain.npy" "$T/ref_plain.npy" --temperature 2 $PRE >/dev/null
if $VC check "$T/cache" res $N "$T/pairs.npy" "$T/ref_plain.npy" 2 --atol 1e-5 2>/dev/null; then
	sl_fail "the records also equal PyTorch on the plain rows: the check cannot see views"
fi

# verify, inspect, export and get know views.
"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
grep -q "teacher res: 16000 records in 64/64 done (shard, view) units of 4 views checked, 0 problems" "$T/verify" ||
    sl_fail "verify: $(cat "$T/verify")"
grep -q "  view 3: 16/16 shards done" "$T/verify" || sl_fail "verify coverage: $(cat "$T/verify")"
"$BIN/softlabel" inspect "$T/cache" >"$T/inspect"
for want in "(schema 2)" "64/64 (shard, view) units done"     "views 4 per sample, recipe crop=4,flip, seed 7"     "16000 records; per view 52 bytes of record + 16 of key, 272 per sample for all 4 views"; do
	grep -qF "$want" "$T/inspect" || sl_fail "inspect lacks '$want': $(cat "$T/inspect")"
done
# Audits ran per unit (each worker identity's first result, a second
# opinion from another identity recomputing the same (shard, view)).
grep -qE "^audits +[1-9][0-9]* agreed, 0 disputed" "$T/inspect" ||
    sl_fail "no audit of a unit agreed: $(grep audits "$T/inspect")"
"$BIN/softlabel" export "$T/cache" --out "$T/e.npy" >"$T/export" ||
    sl_fail "export: $(cat "$T/export")"
grep -q "4000 x 4 x 10 (rows, views, classes) at T=2; 16000 (row, view) records present, 0 absent" "$T/export" ||
    sl_fail "export: $(cat "$T/export")"
$DPY -c "
import numpy as np, sys
e, p, r = np.load(sys.argv[1]), np.load(sys.argv[2]), np.load(sys.argv[3])
assert e.shape == (4000, 4, 10), e.shape
d = np.abs(e[p[:, 0], p[:, 1]] - r).max()
assert d <= 1e-5, 'export differs from PyTorch by %g' % d
" "$T/e.npy" "$T/pairs.npy" "$T/ref.npy" || sl_fail "export is not the views' records"
s=$($DPY -c "import numpy as np; p = np.load('$T/pairs.npy'); print(p[0, 0], p[0, 1])")
set -- $s
"$BIN/softlabel" get "$T/cache" --sample "$1" --view "$2" --json >"$T/get.json" ||
    sl_fail "get --view: $(cat "$T/get.json")"
$DPY -c "
import json, numpy as np, sys
g = json.load(open(sys.argv[1])); r = np.load(sys.argv[2])
assert g['view'] == int(sys.argv[3]), g
assert np.abs(np.array(g['probs']) - r[0]).max() <= 1e-5, 'get differs'
" "$T/get.json" "$T/ref.npy" "$2" || sl_fail "get --view is not the view's record: $(cat "$T/get.json")"
$DPY -c "
import numpy as np, sys, softlabel
c = softlabel.Cache(sys.argv[1]); t = c.teacher('res')
p, r = np.load(sys.argv[2]), np.load(sys.argv[3])
assert (t.views, t.view_recipe, t.view_seed) == (4, 'crop=4,flip', 7), (t.views, t.view_recipe, t.view_seed)
got = np.stack([c.probs([s], view=v)[0] for s, v in p[:50]])
assert np.abs(got - r[:50]).max() <= 1e-5, 'Cache.probs(view=) differs'
" "$T/cache" "$T/pairs.npy" "$T/ref.npy" || sl_fail "the Python cache reader's views differ"
set +e; "$BIN/softlabel" get "$T/cache" --sample 0 --view 4 2>"$T/get4"; rc=$?; set -e
sl_check "$rc -eq 2" "get --view 4 of 4 views: exit $rc"
grep -q "teacher res has views 0..3" "$T/get4" || sl_fail "get --view 4: $(cat "$T/get4")"

# A corrupt record of one view: verify names it, --recompute-corrupt sends
# its (shard, view) unit back, a worker labels it again, exactly.
$DPY -c "
import lmdb, struct, sys
env = lmdb.open(sys.argv[1], max_dbs=4)
db = env.open_db(b'labels', create=False)
with env.begin(write=True, db=db) as t:
    k = struct.pack('>IQI', 0, 1234, 2)
    v = bytearray(t.get(k)); v[20] ^= 0x40; t.put(k, bytes(v))
" "$T/cache"
set +e; "$BIN/softlabel" verify "$T/cache" >"$T/verify2"; rc=$?; set -e
sl_check "$rc -eq 1" "verify of a corrupt view record: exit $rc"
grep -q "PROBLEM teacher res: sample 1234 view 2: label crc32" "$T/verify2" ||
    sl_fail "verify does not name the view: $(cat "$T/verify2")"
BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/cache" "$T/x.npy" "$T/broker2.log" --recompute-corrupt \
    --audit 0 --exit-when-done --nosync
grep -q "sample 1234 view 2: label crc32.*unit 18 (shard 4, view 2) will be recomputed" "$T/broker2.log" ||
    sl_fail "repair: $(grep -i recompute "$T/broker2.log")"
grep -q "1 corrupt, 1 (shard, view) units back to pending" "$T/broker2.log" ||
    sl_fail "repair: $(grep -i pending "$T/broker2.log")"
sl_bg W4 worker w4
set +e; sl_wait_pid "$BROKER_PID" 120; rc=$?; set -e
sl_check "$rc -eq 0" "repair broker exit $rc: $(tail -2 "$T/broker2.log")"
grep -q "exiting: 1 shards, 250 samples" "$T/w4.log" || sl_fail "the repair: $(tail -1 "$T/w4.log")"
"$BIN/softlabel" verify "$T/cache" >"$T/verify3" || sl_fail "verify after repair: $(cat "$T/verify3")"
$VC make "$T/cache" res "$T/x.npy" 20 "$T/views2.npy" "$T/pairs2.npy" --seed 2 --add 1234:2 >/dev/null
$OM predict "$T/res.onnx" "$T/views2.npy" "$T/ref2.npy" --temperature 2 $PRE >/dev/null
$VC check "$T/cache" res $N "$T/pairs2.npy" "$T/ref2.npy" 2 --atol 1e-5 ||
    sl_fail "the recomputed view differs from PyTorch"
echo "PASS: $((N * V)) view records, one each, after a kill -9; refusals named the recipe, V and seed"

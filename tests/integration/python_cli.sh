#!/bin/sh
# python3 -m softlabel inspect / get on a cache a real broker and worker
# filled: get --json gives the same float32 values as the C tool's
# `softlabel get --json` (at the stored T, at another T, and the logits),
# inspect's coverage matches `softlabel verify`; bad usage exits 2 in one
# line, an unreadable cache 1.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
export PYTHONPATH="$ROOT/common/python"
SL="$DPY -m softlabel"
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 1000 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"
sl_label_all "$T/cache" "$T/x.npy" "$T/teacher.safetensors" fm 4 1 --batch 250

$SL inspect "$T/cache" | tee "$T/inspect.txt"
grep -q "^teacher fm (index 0): T=4 f32, 10 classes, model [0-9a-f]\{12\}...; 1/1 shards done, 0 quarantined, 0 pending; 1,000 records (100.0%)$" "$T/inspect.txt" ||
    sl_fail "inspect: $(cat "$T/inspect.txt")"
$SL inspect "$T/cache" --json >"$T/inspect.json"
"$BIN/softlabel" verify "$T/cache" >"$T/verify"
grep -q "teacher fm: $(sl_json_get "$T/inspect.json" "d['teachers'][0]['records']") records in $(sl_json_get "$T/inspect.json" "d['teachers'][0]['done']")/1 done shards" "$T/verify" ||
    sl_fail "inspect --json differs from verify: $(cat "$T/inspect.json") / $(cat "$T/verify")"

same() { # what args...
	_w=$1; shift
	$SL get "$T/cache" --json "$@" >"$T/py.jsonl" || sl_fail "python get $*"
	"$BIN/softlabel" get "$T/cache" --json "$@" >"$T/c.jsonl" || sl_fail "C get $*"
	$DPY - "$T/py.jsonl" "$T/c.jsonl" <<'PY' || sl_fail "get $_w: Python and C differ"
import json, sys
import numpy as np
a = [json.loads(l) for l in open(sys.argv[1])]
b = [json.loads(l) for l in open(sys.argv[2])]
assert len(a) == len(b) > 0, (len(a), len(b))
n = 0
for x, y in zip(a, b):
    assert x["teacher"] == y["teacher"] and x["sample"] == y["sample"], (x, y)
    assert ("T" in x) == ("T" in y), (x.keys(), y.keys())
    if "T" in y:
        assert np.float32(x["T"]) == np.float32(y["T"]), (x["T"], y["T"])
    key = "logits" if "logits" in y else "probs"
    u, v = np.float32(x[key]), np.float32(y[key])
    assert np.array_equal(u, v, equal_nan=True), (x["sample"], u, v)
    n += u.size
print(f"{len(a)} samples, {n} values equal as float32")
PY
	echo "get $_w: equal"
}
same "at the stored T" --sample 0:40
same "at T=1.5" --sample 960: --temperature 1.5
same "logits" --sample 7 --logits

# --- refused -------------------------------------------------------------------------
refused() { # rc pattern args...
	_rc=$1 _p=$2; shift 2
	set +e
	$SL "$@" >"$T/out" 2>"$T/err"; _got=$?
	set -e
	sl_check "$_got -eq $_rc" "$*: exit $_got, want $_rc: $(cat "$T/err")"
	sl_check "$(wc -l <"$T/err") -eq 1" "$*: not one line: $(cat "$T/err")"
	grep -qE "$_p" "$T/err" || sl_fail "$*: no '$_p' in: $(cat "$T/err")"
	echo "refused (exit $_rc): $(cat "$T/err")"
}
refused 2 "a command is needed"
refused 2 "required: --sample" get "$T/cache"
refused 2 "outside the dataset's 1,000 rows \(0..999\)" get "$T/cache" --sample 1000
refused 2 "want A or A:B" get "$T/cache" --sample x
refused 2 "no teacher 'nope'" get "$T/cache" --sample 0 --teacher nope
refused 2 "must be above 0" get "$T/cache" --sample 0 --temperature 0
refused 1 "softlabel: $T/none:" inspect "$T/none"
echo "python_cli: ok"

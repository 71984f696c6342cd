#!/bin/sh
# softlabel-broker --rows A:B: a job split by row range over two brokers,
# each with its own cache. Each cache verifies with exactly its shards,
# inspect and status name the range, and together they hold exactly the
# records of one broker labeling everything (byte for byte). Ranges that
# are not on shard boundaries, empty or unreadable exit 2; a cache keeps
# its range (another --rows is refused, none resumes it).
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/train-images-idx3-ubyte.gz" 5000 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"

SR=500
label() { # store log extra-broker-args... (shards of $SR rows)
	_s=$1 _l=$2; shift 2
	BROKER_PORT=$(sl_free_port)
	sl_start_broker "$_s" "$T/x.npy" "$_l" --shard-rows "$SR" --exit-when-done "$@"
	sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
	    --name t --threads 1 --batch 250 2>>"$_l.w"
	set +e; sl_wait_pid "$BROKER_PID" 120; _rc=$?; sl_wait_pid "$W" 30; set -e
	sl_check "$_rc -eq 0" "broker on $_s: exit $_rc: $(tail -2 "$_l")"
	BROKER_PORT=
}
label "$T/full" "$T/full.log"
label "$T/a" "$T/a.log" --rows 0:2000
grep -q "this cache labels rows 0:2000 (shards 0..3 of 10)" "$T/a.log" || sl_fail "a: $(grep INFO "$T/a.log" | head -5)"
# B with the open-ended form, and a status look while it waits for a worker.
BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/b" "$T/x.npy" "$T/b.log" --shard-rows 500 --exit-when-done --rows 2000:
"$BIN/softlabel" status "$BROKER_EP" >"$T/st" || sl_fail "status: $(cat "$T/st")"
grep -q "5000 rows in 6 shards of 500" "$T/st" || sl_fail "status of b: $(cat "$T/st")"
grep -q "this broker labels rows 2000:5000 (--rows)" "$T/st" || sl_fail "status of b: $(cat "$T/st")"
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name t --threads 1 --batch 250 2>"$T/b.w"
set +e; sl_wait_pid "$BROKER_PID" 120; rc=$?; sl_wait_pid "$W" 30; set -e
sl_check "$rc -eq 0" "broker b: exit $rc: $(tail -2 "$T/b.log")"
BROKER_PORT=

"$BIN/softlabel" verify "$T/a" >"$T/va" || sl_fail "verify a: $(cat "$T/va")"
grep -q "teacher t: 2000 records in 4/4 done shards checked, 0 problems" "$T/va" || sl_fail "verify a: $(cat "$T/va")"
"$BIN/softlabel" verify "$T/b" >"$T/vb" || sl_fail "verify b: $(cat "$T/vb")"
grep -q "teacher t: 3000 records in 6/6 done shards checked, 0 problems" "$T/vb" || sl_fail "verify b: $(cat "$T/vb")"
"$BIN/softlabel" inspect "$T/b" >"$T/ib"
grep -q "rows        2000:5000 of them in this cache (shards 4..9" "$T/ib" || sl_fail "inspect b: $(cat "$T/ib")"
grep -q "t: .* 6/6 shards done" "$T/ib" || sl_fail "inspect b: $(cat "$T/ib")"
$DPY - "$T/a" "$T/b" "$T/full" <<'PY' || sl_fail "the split caches are not the full one"
import sys, lmdb
def labels(p):
    env = lmdb.open(p, readonly=True, lock=False, max_dbs=4)
    db = env.open_db(b"labels", create=False)
    with env.begin(db=db) as t:
        return dict(t.cursor().iternext())
a, b, full = labels(sys.argv[1]), labels(sys.argv[2]), labels(sys.argv[3])
assert not set(a) & set(b), "the caches overlap"
both = dict(a); both.update(b)
assert both == full, f"{len(both)} records, {len(full)} in the full cache; equal keys {set(both) == set(full)}"
print(f"a ({len(a)}) + b ({len(b)}) = the full cache's {len(full)} records, byte for byte")
PY
echo "a job split over two brokers: each cache verifies, together they are the full cache"

# --- refusals and resume ---------------------------------------------------------------------
expect2() { # message-pattern args...
	_p=$1; shift
	set +e
	"$BIN/softlabel-broker" --dataset "$T/x.npy" --bind "tcp://127.0.0.1:$(sl_free_port)" \
	    --shard-rows 500 "$@" 2>"$T/err"; _rc=$?
	set -e
	sl_check "$_rc -eq 2" "softlabel-broker $*: exit $_rc, not 2: $(cat "$T/err")"
	grep -q "$_p" "$T/err" || sl_fail "softlabel-broker $*: $(cat "$T/err")"
}
expect2 "rows 0:2100 is not a range of the 5000 rows on 500-row shard boundaries" --store "$T/n1" --rows 0:2100
[ ! -e "$T/n1/data.mdb" ] || sl_fail "a refused --rows left a cache"
expect2 "rows 5000:5000 is not a range" --store "$T/n2" --rows 5000:
expect2 "'3000:2000' is not A:B with A < B" --store "$T/n3" --rows 3000:2000
expect2 "'x' is not A:B" --store "$T/n4" --rows x
expect2 "the cache labels rows 0:2000, not --rows 0:1000: one range per cache" --store "$T/a" --rows 0:1000
# Without --rows, a split cache resumes its own range: a worker is told
# at once that everything is done (--audit 0: a restarted broker would
# otherwise audit a stored shard again, which is audit_lying_worker's
# business, not this test's).
BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/a" "$T/x.npy" "$T/a2.log" --exit-when-done --audit 0
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name t --threads 1 --batch 250 2>"$T/a2.w"
set +e; sl_wait_pid "$BROKER_PID" 60; rc=$?; sl_wait_pid "$W" 30; set -e
grep -q "0 shards, 0 samples" "$T/a2.w" || sl_fail "the resumed a labeled something: $(tail -2 "$T/a2.w")"
BROKER_PORT=
sl_check "$rc -eq 0" "resuming a without --rows: exit $rc: $(tail -2 "$T/a2.log")"
grep -q "teacher t (index 0): 4/4 shards done" "$T/a2.log" || sl_fail "resume a: $(grep INFO "$T/a2.log" | head -6)"
echo "refused: off-boundary, empty and unreadable ranges, another range on a cache (exit 2); resumed without --rows"

# A student on one part warns with its coverage and trains on it.
"$BIN/softlabel-student" --dataset "$T/x.npy" --store "$T/a" --alpha 1 --temperature 2 \
    --arch 784-16-10 --epochs 1 --threads 1 --metrics "$T/m.jsonl" --out "$T/s.safetensors" \
    2>"$T/s.log" || sl_fail "student on a: $(tail -2 "$T/s.log")"
grep -q "the cache covers 2000 of 5000 rows" "$T/s.log" || sl_fail "student: $(grep WARN "$T/s.log")"
sl_check "$(sl_metric "$T/m.jsonl" rows_with_target) -eq 2000" "student targets: $(tail -1 "$T/m.jsonl")"

# --- the parts read as one: --store a,b trains exactly as the full cache -------------------
train() { # out store
	"$BIN/softlabel-student" --dataset "$T/x.npy" --store "$2" --alpha 1 --temperature 2 \
	    --arch 784-16-10 --epochs 2 --threads 1 --min-confidence 0.3 --balance 150 \
	    --metrics "$T/$1.jsonl" --out "$T/$1.safetensors" 2>"$T/$1.log" ||
	    sl_fail "student on $2: $(tail -2 "$T/$1.log")"
}
train sfull "$T/full"
train sab "$T/b,$T/a"
cmp "$T/sfull.safetensors" "$T/sab.safetensors" || sl_fail "--store b,a trained another model than the full cache"
sl_check "$(sl_metric "$T/sab.jsonl" rows_with_target) -eq 5000" "b,a targets: $(tail -1 "$T/sab.jsonl")"
grep -q "the cache covers" "$T/sab.log" && sl_fail "b,a warned of coverage: $(grep WARN "$T/sab.log")"
echo "--store b,a (the two parts, in any order) trains the same model as the full cache, byte for byte"
# Refused: a part twice (overlap), a cache of another job, a teacher missing.
student_fails() { # pattern store
	set +e
	"$BIN/softlabel-student" --dataset "$T/x.npy" --store "$2" --alpha 1 --arch 784-16-10 \
	    --epochs 1 --out "$T/no.safetensors" 2>"$T/err"; _rc=$?
	set -e
	sl_check "$_rc -ne 0" "--store $2 was accepted"
	grep -q "$1" "$T/err" || sl_fail "--store $2: $(cat "$T/err")"
	[ ! -e "$T/no.safetensors" ] || sl_fail "--store $2 wrote a model"
}
student_fails "$T/a (rows 0:2000) and $T/a (rows 0:2000) overlap" "$T/a,$T/a"
student_fails "$T/full (rows 0:5000) and $T/b (rows 2000:5000) overlap" "$T/full,$T/b"
SR=1000
label "$T/c" "$T/c.log" --rows 0:2000
SR=500
student_fails "are not parts of one job (the dataset's fingerprint or the shard size differ)" "$T/b,$T/c"
echo "refused: overlapping parts, parts of another job"
echo "label rows: all checks passed"

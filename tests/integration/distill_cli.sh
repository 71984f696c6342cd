#!/bin/sh
# The cache as a new user meets it while labeling runs. A student started
# before the broker with --wait-coverage 0.01 waits for the cache (then
# its teacher) and 1% of the rows, then trains. A worker labels
# Fashion-MNIST's 60,000 training rows slowly; once a few shards are done it
# is frozen (SIGSTOP), so the cache's coverage stands still below 100%:
#  - a student started now says how much of the dataset the cache covers;
#  - --wait-coverage 0.9 --wait-timeout 2 gives up (exit 1) naming the
#    coverage; --wait-coverage 0.5 waits, and trains once the worker,
#    thawed (SIGCONT), has labeled half the rows;
#  - --teacher-model of another model than the cache's teacher: exit 2;
#  - softlabel get: no --teacher needed with one teacher (and needed, exit
#    2, with two), --digits, --json with full floats, --logits, ranges, an
#    out-of-range sample named as such (exit 2), a pending one as pending.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
X=$FMNIST/train-images-idx3-ubyte.gz
S=$BIN/softlabel-student
G=$BIN/softlabel

sl_make_big_teacher "$T/big.safetensors"
sl_make_teacher "$T/small.safetensors"
# A student started before the broker, with --wait-coverage: it waits for
# the cache, then for a teacher, then for 1% of the rows, and trains.
sl_bg P0 "$S" --dataset "$X" --store "$T/cache" --arch 784-10 --epochs 1 --batch 256 \
    --metrics "$T/s0.jsonl" --out "$T/s0.safetensors" --wait-coverage 0.01 \
    --wait-timeout 600 2>"$T/s0.log"
sl_wait_log "$T/s0.log" "INFO --wait-coverage: no cache at $T/cache yet; waiting, at most 600 s" 60
sl_start_broker "$T/cache" "$X" "$T/broker.log" --shard-rows 1000
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/big.safetensors" \
    --name big --threads 1 --batch 16 --credit 1 2>"$T/w.log"
i=0
while :; do
	"$G" inspect "$T/cache" >"$T/i" 2>&1 || true
	d=$(sed -n 's/.*big: .* \([0-9]*\)\/60 shards done.*/\1/p' "$T/i")
	[ -n "$d" ] && [ "$d" -ge 2 ] && break
	i=$((i + 1)); [ "$i" -gt 1200 ] && sl_fail "labeling does not progress: $(tail -2 "$T/w.log")"
	sleep 0.1
done
kill -STOP "$W"
"$G" inspect "$T/cache" >"$T/i" 2>&1
d=$(sed -n 's/.*big: .* \([0-9]*\)\/60 shards done.*/\1/p' "$T/i")
sl_check "$d -lt 54" "the worker labeled $d of 60 shards before it was stopped"
echo "worker stopped with $d of 60 shards done"
set +e; sl_wait_pid "$P0" 600; rc=$?; set -e
sl_check "$rc -eq 0" "the student started before the broker: exit $rc: $(tail -2 "$T/s0.log")"
grep -qE "INFO the cache covers [0-9]+ of 60000 rows \([0-9.]+%\) after [0-9.]+ s: training" "$T/s0.log" ||
    sl_fail "the early student did not wait for coverage: $(cat "$T/s0.log")"
n=$(sl_metric "$T/s0.jsonl" rows_with_target)
sl_check "$n -ge 600" "the early student trained with $n rows with targets, want >= 600"
echo "a student started before the broker waited for the cache and 1% of the rows, then trained with $n rows"

# --- the student says how much the cache covers ------------------------------------
"$S" --dataset "$X" --store "$T/cache" --arch 784-10 --epochs 1 --batch 256 \
    --out "$T/s1.safetensors" 2>"$T/s1.log" || sl_fail "student: $(tail -2 "$T/s1.log")"
grep -qE "WARN epoch 1: the cache covers [0-9]+ of 60000 rows \([0-9.]+%\): labeling is not finished" \
    "$T/s1.log" || sl_fail "no coverage warning: $(cat "$T/s1.log")"
grep "WARN epoch 1" "$T/s1.log" | sed 's/.*WARN //'

# --wait-coverage that cannot be met while the worker is stopped: exit 1.
set +e
"$S" --dataset "$X" --store "$T/cache" --arch 784-10 --epochs 1 --out "$T/s2.safetensors" \
    --metrics "$T/s2.jsonl" --wait-coverage 0.9 --wait-timeout 2 2>"$T/s2.log"
rc=$?
set -e
sl_check "$rc -eq 1" "--wait-coverage timeout: exit $rc, want 1: $(tail -2 "$T/s2.log")"
grep -qE "ERROR --wait-coverage 0.9: the cache covers [0-9]+ of 60000 rows \([0-9.]+%\) after --wait-timeout 2 s" \
    "$T/s2.log" || sl_fail "timeout message: $(cat "$T/s2.log")"
[ ! -e "$T/s2.safetensors" ] || sl_fail "a student that gave up wrote --out"
[ ! -e "$T/s2.jsonl" ] || sl_fail "a student that gave up created its --metrics file"

# --teacher-model of another model than the cache's teacher: exit 2, both hashes.
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 1000 "$T/tx.npy"
sl_subset "$FMNIST/t10k-labels-idx1-ubyte.gz" 1000 "$T/ty.npy"
set +e
"$S" --dataset "$X" --store "$T/cache" --arch 784-10 --epochs 1 --out "$T/s3.safetensors" \
    --test-data "$T/tx.npy" --test-labels "$T/ty.npy" --teacher-model "$T/small.safetensors" \
    2>"$T/s3.log"
rc=$?
set -e
sl_check "$rc -eq 2" "--teacher-model of another model: exit $rc, want 2: $(tail -2 "$T/s3.log")"
grep -qE "ERROR --teacher-model $T/small.safetensors \(sha256 [0-9a-f]{16}...\) is not the model of teacher big in $T/cache \(sha256 [0-9a-f]{16}...\)" \
    "$T/s3.log" || sl_fail "teacher-model message: $(cat "$T/s3.log")"
[ ! -e "$T/s3.safetensors" ] || sl_fail "a refused student wrote --out"

# --- softlabel get --------------------------------------------------------------------
expect_get() { # want-exit want-stderr-substring args...
	want=$1 msg=$2; shift 2
	set +e
	"$G" get "$T/cache" "$@" >"$T/out" 2>"$T/err"
	rc=$?
	set -e
	[ "$rc" -eq "$want" ] || sl_fail "get $*: exit $rc, want $want: $(cat "$T/err")"
	[ -z "$msg" ] || grep -qF -- "$msg" "$T/err" || sl_fail "get $*: stderr lacks '$msg': $(cat "$T/err")"
}
expect_get 0 "" --sample 0
grep -qE "^teacher big sample 0 at T=1:( [0-9]\.[0-9]{6}){10}$" "$T/out" ||
    sl_fail "get without --teacher: $(cat "$T/out")"
expect_get 0 "" --sample 0 --digits 3
grep -qE "^teacher big sample 0 at T=1:( [0-9]\.[0-9]{3}){10}$" "$T/out" || sl_fail "--digits 3: $(cat "$T/out")"
expect_get 2 "softlabel: sample 60000 is out of range (dataset has 60,000 rows: 0..59999)" --sample 60000
[ "$(wc -l <"$T/err")" -eq 1 ] || sl_fail "not one line: $(cat "$T/err")"
expect_get 2 "sample 60000 is out of range" --sample 59990:60001
expect_get 2 "'x1' is not a sample index I or a range A:B" --sample x1
expect_get 1 "softlabel: teacher big has no record for sample 59999 yet (shard 59 is pending)" --sample 59999
expect_get 0 "" --sample 0:3
sl_check "$(wc -l <"$T/out") -eq 3" "range 0:3: $(cat "$T/out")"
grep -q "^teacher big sample 2 at T=1:" "$T/out" || sl_fail "range 0:3: $(cat "$T/out")"
"$G" get "$T/cache" --sample 0:3 --json >"$T/p.jsonl" || sl_fail "get --json"
"$G" get "$T/cache" --sample 0:3 --json --logits >"$T/z.jsonl" || sl_fail "get --json --logits"
"$G" get "$T/cache" --sample 0:3 --digits 0 >"$T/full.txt" || sl_fail "get --digits 0"
"$G" get "$T/cache" --sample 0:3 --temperature 4 --json >"$T/p4.jsonl" || sl_fail "get --temperature 4"
$DPY - "$T/p.jsonl" "$T/z.jsonl" "$T/full.txt" "$T/p4.jsonl" <<'PY'
import json, sys
import numpy as np
P = [json.loads(l) for l in open(sys.argv[1])]
Z = [json.loads(l) for l in open(sys.argv[2])]
F = [l.split(":", 1)[1].split() for l in open(sys.argv[3])]
P4 = [json.loads(l) for l in open(sys.argv[4])]
assert [p["sample"] for p in P] == [0, 1, 2], P
for p, z, f, p4 in zip(P, Z, F, P4):
    assert p["teacher"] == "big" and p["T"] == 1 and p4["T"] == 4
    probs = np.array(p["probs"], dtype=np.float32)
    assert abs(float(probs.sum()) - 1) < 1e-5, probs.sum()
    # full precision: the JSON floats and --digits 0 read back as the same float32s
    assert np.array_equal(probs, np.array(f, dtype=np.float32)), (probs, f)
    assert any(len(repr(float(v))) > 9 for v in p["probs"]), p["probs"]
    z = np.array(z["logits"], dtype=np.float64)
    for T, want in ((1, probs), (4, np.array(p4["probs"]))):
        e = np.exp(z / T - (z / T).max())
        err = float(np.abs(e / e.sum() - want).max())
        assert err < 1e-6, (T, err)
print("get: JSON, full floats, logits and ranges agree (softmax(logits/T) = probs at T 1 and 4)")
PY

# export needs no --teacher either with one teacher.
"$G" export "$T/cache" --out "$T/e.npy" >"$T/out" 2>"$T/err" || sl_fail "export without --teacher: $(cat "$T/err")"
grep -q "^wrote $T/e.npy: 60000 x 10 at T=1;" "$T/out" || sl_fail "export: $(cat "$T/out")"

# --- --wait-coverage: waits, then trains once half the rows are labeled -------------------
sl_bg P "$S" --dataset "$X" --store "$T/cache" --arch 784-10 --epochs 1 --batch 256 \
    --metrics "$T/s4.jsonl" --out "$T/s4.safetensors" --wait-coverage 0.5 \
    --wait-timeout 600 2>"$T/s4.log"
sl_wait_log "$T/s4.log" "INFO waiting until the cache covers 0.5 of 60000 rows \(30000 rows; now [0-9]+, [0-9.]+%\), at most 600 s" 60
kill -CONT "$W"
set +e; sl_wait_pid "$P" 600; rc=$?; set -e
sl_check "$rc -eq 0" "--wait-coverage 0.5: exit $rc: $(tail -2 "$T/s4.log")"
grep -qE "INFO the cache covers [0-9]+ of 60000 rows \([0-9.]+%\) after [0-9.]+ s: training" "$T/s4.log" ||
    sl_fail "no end of the wait: $(cat "$T/s4.log")"
n=$(sl_metric "$T/s4.jsonl" rows_with_target)
sl_check "$n -ge 30000" "trained with $n rows with targets, want >= 30000"
echo "--wait-coverage 0.5 waited, then trained with $n of 60000 rows with targets"

# --- a second teacher: get needs --teacher -------------------------------------------------
sl_bg W2 "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/small.safetensors" \
    --name small --threads 1 2>"$T/w2.log"
sl_wait_log "$BROKER_LOG" "teacher small registered" 60
expect_get 2 "softlabel: get: the cache has 2 teachers (big, small): name one with --teacher" --sample 0
expect_get 0 "" --sample 0 --teacher big
set +e; "$G" export "$T/cache" --out "$T/e2.npy" >/dev/null 2>"$T/err"; rc=$?; set -e
sl_check "$rc -eq 2" "export with two teachers and no --teacher: exit $rc, want 2"
grep -qF "softlabel: export: the cache has 2 teachers (big, small): name one with --teacher" "$T/err" ||
    sl_fail "export: $(cat "$T/err")"
grep -q "^teacher big sample 0 at T=1:" "$T/out" || sl_fail "get --teacher big: $(cat "$T/out")"
echo "distill CLI: all checks passed"

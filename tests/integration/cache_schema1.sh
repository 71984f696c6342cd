#!/bin/sh
# A cache written before views (schema 1) still reads as before: a cache is
# labeled, then its meta "schema" is set back to 1 by hand (python3-lmdb;
# schema 1 and 2 differ in nothing else for a teacher without views).
# softlabel inspect names the schema, verify passes, export writes the same
# bytes as before the rewrite, a student trained from it (--threads 1)
# equals the one trained before, bit for bit, and a broker resumes it
# without changing its schema.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
$DPY -c "import lmdb" 2>/dev/null || sl_fail "python3-lmdb is missing (make deps installs it)"
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 2000 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"
sl_label_all "$T/cache" "$T/x.npy" "$T/teacher.safetensors" t 2 1 --batch 250
student() { # out
	"$BIN/softlabel-student" --dataset "$T/x.npy" --store "$T/cache" \
	    --arch 784-16-10 --epochs 1 --threads 1 --out "$1" 2>>"$T/student.log" ||
	    sl_fail "student: $(tail -2 "$T/student.log")"
}
"$BIN/softlabel" export "$T/cache" --out "$T/before.npy" >/dev/null
student "$T/before.safetensors"
"$BIN/softlabel" inspect "$T/cache" | grep -q "(schema 2)" ||
    sl_fail "a new cache is not schema 2: $("$BIN/softlabel" inspect "$T/cache" | head -1)"

$DPY -c "
import lmdb, sys
env = lmdb.open(sys.argv[1], max_dbs=4)
meta = env.open_db(b'meta', create=False)
with env.begin(write=True, db=meta) as t:
    assert t.get(b'schema') == b'\x02', t.get(b'schema')
    t.put(b'schema', b'\x01')
" "$T/cache"

"$BIN/softlabel" inspect "$T/cache" >"$T/inspect" || sl_fail "inspect: $(cat "$T/inspect")"
grep -q "(schema 1, written before views)" "$T/inspect" || sl_fail "inspect: $(head -1 "$T/inspect")"
"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
grep -q "teacher t: 2000 records in 2/2 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "verify: $(cat "$T/verify")"
"$BIN/softlabel" export "$T/cache" --out "$T/after.npy" >/dev/null ||
    sl_fail "export of a schema-1 cache failed"
cmp -s "$T/before.npy" "$T/after.npy" || sl_fail "export of the schema-1 cache differs"
student "$T/after.safetensors"
cmp -s "$T/before.safetensors" "$T/after.safetensors" ||
    sl_fail "the student trained from the schema-1 cache differs"
"$BIN/softlabel" get "$T/cache" --sample 7 >/dev/null || sl_fail "get on schema 1"

# A broker resumes it (a worker is told it is done) and leaves its schema
# alone.
BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --exit-when-done --teacher t \
    --audit 0
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name t --temperature 2 --threads 1 2>"$T/w.log"
set +e; sl_wait_pid "$BROKER_PID" 30; rc=$?; set -e
sl_check "$rc -eq 0" "broker on a schema-1 cache: exit $rc: $(tail -2 "$T/broker.log")"
"$BIN/softlabel" inspect "$T/cache" | grep -q "(schema 1, written before views)" ||
    sl_fail "the broker changed the schema"
echo "PASS: a schema-1 cache inspects, verifies, exports and trains as before"

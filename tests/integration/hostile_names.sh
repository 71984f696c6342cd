#!/bin/sh
# Finding 6 of issue 15: names with a newline or a terminal escape. A raw
# client's HELLOs with such names are refused at the protocol boundary with
# the rule; the broker's log stays one event per line (nothing forged, no
# ESC or BEL byte); status counts them; the teacher worker refuses such a
# --name itself (exit 2); and a name that reached a cache anyway (written
# there by an older broker) is printed escaped by inspect and verify.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 500 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"

sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 100
$DPY "$ROOT/tests/lib/names_client.py" "$BROKER_EP" || sl_fail "names client"
kill -0 "$BROKER_PID" || sl_fail "the broker died"

# One event per line: every line starts with time, pid, program, level.
bad=$(grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z [0-9]+ softlabel-broker (DEBUG|INFO|WARN|ERROR) ' "$T/broker.log" || true)
sl_check "$bad -eq 0" "$bad log lines without the prefix (forged): $(grep -vE '^[0-9]{4}-' "$T/broker.log" | head -3)"
sl_check "$(sl_count "$T/broker.log" 'all shards finished') -eq 0" "a forged 'all shards finished' line"
sl_check "$(tr -cd '\033\007' <"$T/broker.log" | wc -c) -eq 0" "ESC or BEL bytes in the log"
grep -q 'byte 1 (0x0a) is not allowed' "$T/broker.log" || sl_fail "the refusal does not name the newline"
grep -q 'x\\x0a2026' "$T/broker.log" || sl_fail "the newline is not shown escaped"

sl_status_json "$BROKER_EP" >"$T/st.json"
sl_check "$(sl_json_get "$T/st.json" "d['rejected']['bad_name']") -eq 4" "status counts 4 bad names"
sl_check "$(sl_json_get "$T/st.json" "[t['name'] for t in d['teachers']]" | tr -d "[]' ") = names" \
    "only the valid HELLO's teacher is registered"
"$BIN/softlabel" status "$BROKER_EP" --timeout 10 >"$T/status.txt" || sl_fail "status"
sl_check "$(tr -cd '\033\007' <"$T/status.txt" | wc -c) -eq 0" "ESC or BEL bytes in status"

# The worker checks its own names before connecting.
set +e
"$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name "$(printf 'bad\033]0;x\007')" 2>"$T/w1.err"; rc1=$?
"$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name ok --worker-name "a b" 2>"$T/w2.err"; rc2=$?
set -e
sl_check "$rc1 -eq 2" "--name with ESC: exit $rc1, not 2"
sl_check "$rc2 -eq 2" "--worker-name with a space: exit $rc2, not 2"
grep -q 'bad\\x1b\]0;x\\x07' "$T/w1.err" || sl_fail "the bad --name is not shown escaped: $(cat "$T/w1.err")"
cat "$T/w1.err" "$T/w2.err"

# A cache holding such a name anyway: inspect and verify escape it.
kill "$BROKER_PID"; sl_wait_pid "$BROKER_PID" 30 || true
$DPY - "$T/cache" <<'PY'
import sys, lmdb, msgpack
env = lmdb.open(sys.argv[1], max_dbs=8, subdir=True)
meta = env.open_db(b"meta")
with env.begin(write=True, db=meta) as txn:
    v = msgpack.unpackb(txn.get(b"teacher/names"), raw=False)
    v["index"] = 1
    txn.put(b"teacher/ev\x1b]0;title\x07il", msgpack.packb(v, use_bin_type=True))
PY
"$BIN/softlabel" inspect "$T/cache" >"$T/inspect.txt" 2>&1 || sl_fail "inspect: $(cat "$T/inspect.txt")"
cat "$T/inspect.txt"
sl_check "$(tr -cd '\033\007' <"$T/inspect.txt" | wc -c) -eq 0" "ESC or BEL bytes in inspect"
grep -q 'ev\\x1b\]0;title\\x07il' "$T/inspect.txt" || sl_fail "inspect does not show the name escaped"
"$BIN/softlabel" verify "$T/cache" >"$T/verify.txt" 2>&1 || true
sl_check "$(tr -cd '\033\007' <"$T/verify.txt" | wc -c) -eq 0" "ESC or BEL bytes in verify"
echo "names refused, log and outputs escaped"

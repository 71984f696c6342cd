#!/bin/sh
# Hostile input from a client written for the test (real ZeroMQ socket, real
# protocol): the broker refuses each case with its reason, logs one line per
# rejection, counts it in status, keeps serving, and the cache stays valid:
# afterwards a real worker completes the job and verify passes.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 2000 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"
MAX=1048576

sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 100 \
    --max-msg-bytes $MAX --lease-timeout 5
$DPY "$ROOT/tests/lib/hostile_client.py" "$BROKER_EP" $MAX ||
    sl_fail "hostile client: $(tail -5 "$T/broker.log")"
kill -0 "$BROKER_PID" || sl_fail "the broker died"

sl_status_json "$BROKER_EP" >"$T/st.json"
cat "$T/st.json"; echo
for reason in malformed oversize provenance wrong_teacher unknown_shard \
    not_leased wrong_rows wrong_size bad_record; do
	n=$(sl_json_get "$T/st.json" "d['rejected']['$reason']")
	sl_check "$n -ge 1" "status counts no '$reason' rejection"
done
sl_check "$(sl_json_get "$T/st.json" "d['rejected']['malformed']") -ge 5" \
    "five malformed frames were sent"
sl_check "$(sl_json_get "$T/st.json" "d['rejected']['bad_record']") -ge 3" \
    "NaN, Inf and CRC make three bad records (a wrong class count is wrong_size)"
sl_check "$(sl_json_get "$T/st.json" "d['duplicates']") -ge 1" "no duplicate counted"
total=$(sl_json_get "$T/st.json" "sum(d['rejected'].values())")
lines=$(sl_count "$T/broker.log" "WARN rejected \(")
echo "rejections: $total counted in status, $lines logged"
sl_check "$lines -eq $total" "one log line per rejection"

# The cache is valid, and a real worker completes the job.
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name real --threads 1 2>"$T/w.log"
set +e; sl_wait_pid "$W" 60; rc=$?; set -e
sl_check "$rc -eq 0" "real worker exit $rc: $(tail -3 "$T/w.log")"
"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
cat "$T/verify"
grep -q "teacher real: 2000 records in 20/20 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "real teacher incomplete"
grep -q "teacher hostile: 100 records in 1/20 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "the hostile teacher's one valid shard is not exactly there"

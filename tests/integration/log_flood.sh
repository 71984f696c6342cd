#!/bin/sh
# Finding 3 of issue 15: a log flood. 30 raw TCP connections each write
# 100,000 three-byte garbage frames (9 MB, 2,999,970 malformed messages;
# before, one WARN line each: 3,000,002 lines, 336 MB of log in 3 s). Now status counts
# every refusal exactly, the log carries at most SL_LOG_LIMIT_BURST (20)
# "rejected (malformed)" lines per 10 s window plus one "suppressed N"
# summary per window, and the broker still answers status and labels.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 500 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"
ROUNDS=30

sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 100
$DPY "$ROOT/tests/lib/flood_client.py" 127.0.0.1 "$BROKER_PORT" $ROUNDS ||
    sl_fail "flood client"
kill -0 "$BROKER_PID" || sl_fail "the broker died"

sl_status_json "$BROKER_EP" >"$T/st.json" || sl_fail "status did not answer"
n=$(sl_json_get "$T/st.json" "d['rejected']['malformed']")
echo "malformed counted: $n"
sl_check "$n -eq $((ROUNDS * 99999))" "status counts $n malformed frames, not $((ROUNDS * 99999))"

# One window's summary: wait (bounded) for it.
sl_wait_log "$T/broker.log" "WARN suppressed [0-9]+ more 'rejected \(malformed\)' lines" 30
uptime=$(sl_json_get "$T/st.json" "int(d['uptime_s'])")
lines=$(sl_count "$T/broker.log" "WARN rejected \(malformed\)")
summed=$($DPY - "$T/broker.log" <<'PY'
import re, sys
print(sum(int(m.group(1)) for m in re.finditer(
    r"suppressed (\d+) more 'rejected \(malformed\)' lines", open(sys.argv[1]).read())))
PY
)
windows=$((uptime / 10 + 2))
echo "log: $lines malformed lines, $summed suppressed in summaries, $(wc -l <"$T/broker.log") lines, $(wc -c <"$T/broker.log") bytes over ${uptime}s"
sl_check "$lines -le $((20 * windows))" "$lines malformed lines: more than 20 per 10 s window"
sl_check "$lines -ge 1" "no malformed line logged at all"
sl_check "$((lines + summed)) -le $n" "summaries count more lines than refusals"
sl_check "$(wc -l <"$T/broker.log") -lt 1000" "the log grew to $(wc -l <"$T/broker.log") lines"

# Still serving: a real worker labels the job.
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name real --threads 1 2>"$T/w.log"
set +e; sl_wait_pid "$W" 120; rc=$?; set -e
sl_check "$rc -eq 0" "worker exit $rc: $(tail -3 "$T/w.log")"
"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
grep -q "teacher real: 500 records in 5/5 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "the job is incomplete: $(cat "$T/verify")"
echo "flood refused and counted; log bounded; job done"

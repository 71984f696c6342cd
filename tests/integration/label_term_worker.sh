#!/bin/sh
# SIGTERM a worker in the middle of a job: it tells the broker to lease it
# nothing more (READY with credit 0), finishes the shards it already had,
# waits for their acknowledgements and exits 0. Nothing it held is left to
# expire; another worker finishes the job, one record per sample.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
X=$FMNIST/t10k-images-idx3-ubyte.gz
sl_make_big_teacher "$T/teacher.safetensors"
export PYTHONPATH="$ROOT/common/python" # tests/lib/cache_wait.py

# A lease timeout far longer than the test: a shard left behind would
# show as a job that does not finish, not as an expiry hidden by re-leasing.
sl_start_broker "$T/cache" "$X" "$T/broker.log" --shard-rows 250 --lease-timeout 600
sl_bg A "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name big --threads 1 --batch 1 --credit 4 --worker-name leaving 2>>"$T/a.log"
$DPY "$ROOT/tests/lib/cache_wait.py" "$T/cache" big leaving 2 120 ||
    sl_fail "worker A stored nothing: $(tail -3 "$T/a.log")"
kill -TERM "$A"
set +e; sl_wait_pid "$A" 60; rc=$?; set -e
sl_check "$rc -eq 0" "after SIGTERM worker A exited $rc: $(tail -3 "$T/a.log")"
stop=$(grep "INFO stopping: finishing" "$T/a.log") || sl_fail "A logged no orderly stop"
echo "A: $stop"
grep -q "worker leaving is stopping: leasing it nothing more" "$T/broker.log" ||
    sl_fail "the broker was not told A is stopping: $(tail -3 "$T/broker.log")"
# What A sent after the signal is at most what it had: queued shards,
# plus the tasks already on their way when its READY 0 left (its credit).
at_stop=$(echo "$stop" | sed -n 's/.*finishing \([0-9]*\) queued.*; \([0-9]*\) shards done.*/\1 \2/p')
[ -n "$at_stop" ] || sl_fail "cannot read A's stop line: $stop"
set -- $at_stop
total=$(sed -n 's/.*INFO exiting: \([0-9]*\) shards.*/\1/p' "$T/a.log")
[ -n "$total" ] || sl_fail "A did not log its total: $(tail -2 "$T/a.log")"
echo "A: $2 shards before SIGTERM, $1 queued then, $total in all"
sl_check "$total -le $(($2 + $1 + 4))" \
    "A kept taking work after SIGTERM: $total shards, $2 done and $1 queued at the signal"

sl_bg B "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name big --threads 1 --worker-name staying 2>>"$T/b.log"
set +e; sl_wait_pid "$B" 300; rc=$?; set -e
sl_check "$rc -eq 0" "worker B exit $rc: $(tail -3 "$T/b.log")"
sl_check "$(sl_count "$T/broker.log" 'lease expired') -eq 0" \
    "a lease expired: $(grep 'lease expired' "$T/broker.log" | head -2)"
kill -TERM "$BROKER_PID"
set +e; sl_wait_pid "$BROKER_PID" 20; rc=$?; set -e
sl_check "$rc -eq 0" "broker did not stop cleanly on SIGTERM ($rc)"
"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
grep -q "10000 records in 40/40 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "verify: $(cat "$T/verify")"
echo "OK: a stopping worker took no new work; 40/40 shards, nothing twice"

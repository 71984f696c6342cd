#!/bin/sh
# kill -STOP a worker in the middle of a shard for longer than the lease,
# let another worker finish the job, then kill -CONT it: its shards were
# re-leased, and its late results are acknowledged and dropped.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
X=$FMNIST/t10k-images-idx3-ubyte.gz
sl_make_big_teacher "$T/teacher.safetensors"

sl_start_broker "$T/cache" "$X" "$T/broker.log" --shard-rows 1000 --lease-timeout 2
sl_bg A "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name big --threads 1 --batch 8 --worker-name slow 2>>"$T/a.log"
sl_wait_log "$T/a.log" "INFO ready" 30
sleep 0.3
kill -STOP "$A"
echo "worker A stopped while holding its leases"
sl_bg B "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name big --threads 1 --worker-name fast 2>>"$T/b.log"
# B finishes everything, A's shards included once their leases expire.
sl_wait_status done 10 60 "job did not finish without A"
sl_check "$(sl_count "$T/broker.log" 'lease expired.*worker slow') -ge 1" \
    "A's lease did not expire: $(grep -i lease "$T/broker.log" | tail -3)"
kill -CONT "$A"
echo "worker A continued"
set +e; sl_wait_pid "$A" 60; rc=$?; set -e
sl_check "$rc -eq 0" "worker A exit $rc: $(tail -3 "$T/a.log")"
sl_status_json "$BROKER_EP" >"$T/st.json"
dups=$(sl_json_get "$T/st.json" 'd["duplicates"]')
echo "duplicates acknowledged and dropped: $dups"
sl_check "$dups -ge 1" "A's late result was not seen as a duplicate"
grep -q "already stored by another worker" "$T/a.log" || sl_fail "A was not told"
kill -TERM "$BROKER_PID"
set +e; sl_wait_pid "$BROKER_PID" 20; rc=$?; set -e
sl_check "$rc -eq 0" "broker did not stop cleanly on SIGTERM ($rc)"
"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
grep -q "10000 records in 10/10 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "verify: $(cat "$T/verify")"

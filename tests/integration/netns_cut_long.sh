#!/bin/sh
# A worker host cut off for longer than the lease while the worker keeps
# computing: its leases expire, its shards are re-leased to the workers of
# the other host and stored; when the cut heals, its late results are
# acknowledged and dropped as duplicates, and there is exactly one record
# per sample. Needs root; otherwise reported SKIP.
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/netns.sh"
sl_tmpdir; T=$SL_TMP
sl_netns_job
LEASE=4

sl_ns_broker "$T/cache" "$X" --shard-rows 1000 --lease-timeout $LEASE
# Credit 4: w2 has shards queued when cut, so it has work to go on with.
sl_ns_worker "$NS_W2" "$EP_W2" w2 "$M" --log-level debug --credit 4
sl_ns_wait 't["done"] >= 2 and leases("w2") >= 1' 60 "w2 at work"
sl_netns_cut "$NS_W2"
log_at_cut=$(wc -l <"$T/w2.log")
held=$(sl_ns_q 'leases("w2")')
shards=$(sl_ns_q 'd["shards"]')
echo "w2 holds $held leases of $shards shards as the cut begins"
sl_check "$held -ge 1" "w2 held no lease when cut"

sl_ns_worker "$NS_W1" "$EP_W1" w1a "$M"
sl_ns_worker "$NS_W1" "$EP_W1" w1b "$M"
sl_ns_wait "t['done'] == $shards" 120 "every shard done while w2 is cut off"
expired=$(grep -c "lease expired: .* worker w2 " "$BROKER_LOG" || true)
echo "while w2 was cut off: $expired of its leases expired, the job finished"
sl_check "$expired -eq $held" "expected $held of w2's leases to expire, saw $expired"
computed=$(tail -n +"$((log_at_cut + 1))" "$T/w2.log" | grep -c "DEBUG shard [0-9]* sent" || true)
echo "w2 computed $computed shards after the cut began"
sl_check "$computed -ge 1" "w2 did not go on computing while cut off"
sl_netns_heal "$NS_W2"

set +e; sl_wait_pid "$w2_PID" 60; rc=$?; set -e
sl_check "$rc -eq 0" "w2 exit $rc after the heal: $(tail -3 "$T/w2.log")"
grep "worker w2 joined" "$BROKER_LOG" | tail -n 1
sl_netns_check_duplicates w2
sl_check "$NS_DUPLICATES -ge 1" "w2's late results never came back"
sl_netns_finish "$shards"

#!/bin/sh
# A worker host cut off (every packet silently dropped, both ways) for less
# than the lease: the worker notices, reconnects when the cut heals, its new
# session takes over its leases, and each of its shards is stored exactly
# once (a result whose acknowledgement the cut swallowed is resent once and
# dropped); no lease expired. Needs root; otherwise reported SKIP.
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/netns.sh"
sl_tmpdir; T=$SL_TMP
sl_netns_job
LEASE=30

sl_ns_broker "$T/cache" "$X" --shard-rows 1000 --lease-timeout $LEASE
sl_ns_worker "$NS_W2" "$EP_W2" w2 "$M"
sl_ns_wait 't["done"] >= 2 and leases("w2") >= 1' 60 "w2 at work"
sl_netns_cut "$NS_W2"
cut_at=$(date +%s)
held=$(sl_ns_q 'leases("w2")')
shards=$(sl_ns_q 'd["shards"]')
echo "w2 holds $held leases of $shards shards as the cut begins"
sl_check "$held -ge 1" "w2 held no lease when cut"

# The other host's workers do everything else, but cannot have w2's shards.
sl_ns_worker "$NS_W1" "$EP_W1" w1a "$M"
sl_ns_worker "$NS_W1" "$EP_W1" w1b "$M"
sl_ns_wait "t['pending'] == 0 and t['done'] == $shards - $held" 120 \
    "every shard but w2's done"
sl_wait_log "$T/w2.log" "broker silent for [0-9]+ ms; reconnecting" 20
sleep 2
cut_for=$(($(date +%s) - cut_at))
sl_check "$cut_for -lt $LEASE" "the cut lasted $cut_for s, not less than the lease"
sl_netns_heal "$NS_W2"
echo "w2 was cut off for $cut_for s (lease ${LEASE} s)"

sl_ns_wait "t['done'] == $shards" 60 "the job done after the heal"
# A result whose acknowledgement the cut swallowed comes again and is
# dropped as a duplicate: at most once per shard, and only from w2.
sl_netns_check_duplicates w2
grep -E "worker w2 joined .* [1-9][0-9]* leases resumed" "$BROKER_LOG" ||
    sl_fail "w2's new session did not take over its leases"
sl_check "$(sl_count "$BROKER_LOG" "lease expired") -eq 0" \
    "a lease expired: $(grep "lease expired" "$BROKER_LOG" | head -2)"
sl_netns_finish "$shards"

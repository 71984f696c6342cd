#!/bin/sh
# A worker back on a new connection (after a network cut, say) takes over
# its previous session's leases: the ones it lists in HELLO move to the new
# session and its results are stored; one whose TASK it never received goes
# back to the queue at once instead of waiting for its lease to expire.
# Spoken by tests/lib/handover_client.py over real sockets.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 2000 "$T/x.npy"

sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 100
$DPY "$ROOT/tests/lib/handover_client.py" "$BROKER_EP" \
    "$BIN/softlabel" status "$BROKER_EP" --json --timeout 5 ||
    sl_fail "handover client: $(tail -5 "$T/broker.log")"
grep "worker hand joined" "$BROKER_LOG" | tail -n 1 | sed 's/.*INFO //'
grep -q "worker hand joined .* 2 leases resumed, 1 returned" "$BROKER_LOG" ||
    sl_fail "the broker did not report 2 leases resumed and 1 returned"
sl_check "$(sl_count "$BROKER_LOG" "lease expired") -eq 0" "a lease expired"

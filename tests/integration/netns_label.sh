#!/bin/sh
# Multi-host labeling: the broker on one host (network namespace), three
# workers on two others, talking over veth links only. 60,000 rows are
# labeled to completion; every worker took part; verify passes and the
# cache equals the teacher. Needs root; otherwise reported SKIP.
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/netns.sh"
sl_tmpdir; T=$SL_TMP
sl_netns_job

sl_bg BROKER_PID sl_in "$NS_B" "$BIN/softlabel-broker" --store "$T/cache" \
    --dataset "$X" --bind "tcp://0.0.0.0:$NS_PORT" --shard-rows 1000 \
    --exit-when-done 2>>"$T/broker.log"
sl_wait_log "$T/broker.log" "softlabel-broker INFO ready" 30

# Isolation is real: from the root namespace the broker cannot be reached.
if "$BIN/softlabel" status "$EP_W1" --timeout 1 >/dev/null 2>&1; then
	sl_fail "the broker answered from outside its namespaces"
fi

worker() { # ns ep name
	sl_bg "${3}_PID" sl_in "$1" "$BIN/softlabel-teacher" --connect "$2" \
	    --model "$M" --name big --threads 1 \
	    --batch 250 --worker-name "$3" 2>>"$T/$3.log"
}
worker "$NS_W1" "$EP_W1" w1a
worker "$NS_W1" "$EP_W1" w1b
worker "$NS_W2" "$EP_W2" w2a
set +e; sl_wait_pid "$BROKER_PID" 300; rc=$?; set -e
sl_check "$rc -eq 0" "broker exit $rc: $(tail -3 "$T/broker.log")"

for w in w1a w1b w2a; do
	eval "p=\$${w}_PID"
	set +e; sl_wait_pid "$p" 30; rc=$?; set -e
	sl_check "$rc -eq 0" "worker $w exit $rc: $(tail -3 "$T/$w.log")"
	grep -q "ready connected=tcp://10.77" "$T/$w.log" ||
	    sl_fail "$w never connected: $(tail -3 "$T/$w.log")"
	n=$(sed -n 's/.*exiting: \([0-9]*\) shards.*/\1/p' "$T/$w.log")
	echo "worker $w: ${n:-?} shards over $(grep -o 'connected=[^ ]*' "$T/$w.log" | head -1)"
	sl_check "${n:-0} -ge 1" "$w labeled nothing"
done
sl_netns_verify

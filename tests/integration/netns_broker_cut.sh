#!/bin/sh
# The broker's host cut off from every worker (all its packets silently
# dropped) in the middle of a job, then healed: every worker notices, and
# re-registers on its own; the job completes with each shard stored once.
# Needs root; otherwise reported SKIP.
. "$(dirname "$0")/../lib/common.sh"
. "$ROOT/tests/lib/netns.sh"
sl_tmpdir; T=$SL_TMP
sl_netns_job

sl_ns_broker "$T/cache" "$X" --shard-rows 1000
sl_ns_worker "$NS_W1" "$EP_W1" w1a "$M"
sl_ns_worker "$NS_W1" "$EP_W1" w1b "$M"
sl_ns_worker "$NS_W2" "$EP_W2" w2 "$M"
sl_ns_wait 't["done"] >= 3 and len(d["workers"]) == 3' 60 "three workers at work"
sl_netns_cut "$NS_B"
sleep 0.5 # results already on the wire are stored
left=$(sl_ns_q 'd["shards"] - t["done"]')
shards=$(sl_ns_q 'd["shards"]')
echo "the broker is cut off with $left of $shards shards not stored"
sl_check "$left -ge 1" "the job was over before the cut"
# Each worker notices twice: its second notice comes from the new
# connection it made after the first, so the old one is gone. (A heal
# before a worker gave up its connection lets that connection carry on
# with the same session, and the worker need not say HELLO again.)
for w in w1a w1b w2; do
	i=0
	while [ "$(sl_count "$T/$w.log" "broker silent for [0-9]+ ms; reconnecting")" -lt 2 ]; do
		i=$((i + 1))
		[ "$i" -le 300 ] || sl_fail "$w did not notice the broker's silence twice in 30 s"
		sleep 0.1
	done
done
still=$(sl_ns_q 'd["shards"] - t["done"]')
sl_check "$still -eq $left" "shards were stored while the broker was cut off"
echo "every worker noticed the silence; nothing was stored meanwhile"
sl_netns_heal "$NS_B"

sl_ns_wait "t['done'] == $shards" 120 "the job done after the heal"
# Workers that held results finish the job within seconds of the heal, so a
# worker whose reconnect back-off is longer may rejoin after the last shard
# is stored (and be told DONE): wait for each one's second HELLO, bounded.
for w in w1a w1b w2; do
	i=0
	while [ "$(sl_count "$BROKER_LOG" "worker $w joined")" -lt 2 ] && [ "$i" -lt 300 ]; do
		i=$((i + 1))
		sleep 0.1
	done
	n=$(sl_count "$BROKER_LOG" "worker $w joined")
	echo "$w registered $n times: $(grep "worker $w joined" "$BROKER_LOG" | tail -n 1 | sed 's/.*joined //')"
	if [ "$n" -lt 2 ]; then
		# What the worker and the broker said, for the cause.
		eval "_pid=\$${w}_PID"
		kill -0 "$_pid" 2>/dev/null && echo "$w (pid $_pid) is running" ||
		    echo "$w (pid $_pid) has exited"
		tr '\r' '\n' <"$T/$w.log" | grep ' softlabel-teacher ' | tail -n 12
		grep -E "$w|suppressed|refused|busy" "$BROKER_LOG" | tail -n 12
	fi
	sl_check "$n -ge 2" "$w did not re-register after the heal"
done
sl_netns_check_duplicates "w1a|w1b|w2"
sl_netns_finish "$shards"

#!/bin/sh
# Findings 4 and 5 of issue 15: peers that hold connections and sessions.
#  1. Under ulimit -n 256, 300 connections that finish the ZMTP handshake
#     and never say anything: the broker closes the excess, answers status
#     throughout, and a real worker labels the job meanwhile.
#  2. Connections that finish the handshake and never send a valid
#     message are closed after --hello-timeout.
#  3. Every worker slot taken (--max-workers 2, two squatting sessions): a
#     real worker is told BUSY, keeps retrying with back-off instead of
#     exiting; once the squatters' connections close, their sessions are
#     freed and the worker labels the job.
#  4. Pending connections per address (--max-pending-per-peer 8): one host
#     (127.0.0.2) opens 40 that finish the handshake and never say HELLO;
#     exactly 32 are closed at once (8 stay until the heartbeat timeout
#     closes them), while a worker from 127.0.0.1 labels the job. The
#     default bound (256) closes none of the same 40 at once.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 500 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"

status_until() { # ep python-condition-on-d what
	_i=0
	while [ "$_i" -lt 60 ]; do
		if sl_status_json "$1" >"$T/st.json" 2>/dev/null &&
		    [ "$(sl_json_get "$T/st.json" "1 if ($2) else 0")" = 1 ]; then
			return 0
		fi
		_i=$((_i + 1)); sleep 0.5
	done
	sl_fail "status never showed $3: $(cat "$T/st.json" 2>/dev/null)"
}

# --- 1. file descriptors -----------------------------------------------------
limited_broker() { ulimit -n 256 && exec "$BIN/softlabel-broker" "$@"; }
P1=$(sl_free_port); EP1=tcp://127.0.0.1:$P1
sl_bg B1 limited_broker --store "$T/c1" --dataset "$T/x.npy" --bind "$EP1" \
    --shard-rows 100 2>"$T/b1.log"
sl_wait_log "$T/b1.log" " $B1 softlabel-broker INFO ready" 30
grep -q "fd limit 256" "$T/b1.log" || sl_fail "the broker did not see its fd limit: $(grep connections "$T/b1.log")"
sl_bg H1 $DPY "$ROOT/tests/lib/idle_client.py" zmtp "$EP1" 300 "$T/stop1" 120 \
    >"$T/h1.out" 2>&1
sl_wait_log "$T/h1.out" "300 idle connections" 30
status_until "$EP1" "d['connections']['excess_closed'] >= 300 - d['connections']['max']" \
    "the excess connections closed"
for i in 1 2 3; do
	sl_status_json "$EP1" >"$T/st1.json" || sl_fail "status did not answer under the connection flood"
done
sl_bg W1 "$BIN/softlabel-teacher" --connect "$EP1" --model "$T/teacher.safetensors" \
    --name real --threads 1 2>"$T/w1.log"
set +e; sl_wait_pid "$W1" 120; rc=$?; set -e
sl_check "$rc -eq 0" "worker under the connection flood: exit $rc: $(tail -3 "$T/w1.log")"
touch "$T/stop1"
grep -q "WARN closed [0-9]* connections" "$T/b1.log" || sl_fail "no line about closed connections"
echo "1: $(sl_json_get "$T/st1.json" "d['connections']")"

# --- 2. connections that never HELLO --------------------------------------------
P2=$(sl_free_port); EP2=tcp://127.0.0.1:$P2
BROKER_PORT=$P2 sl_start_broker "$T/c2" "$T/x.npy" "$T/b2.log" --shard-rows 100 \
    --hello-timeout 2
$DPY "$ROOT/tests/lib/idle_client.py" greeting 127.0.0.1 "$P2" 20 ||
    sl_fail "connections that never said HELLO stayed open"
sl_status_json "$EP2" >"$T/st2.json"
sl_check "$(sl_json_get "$T/st2.json" "d['connections']['idle_closed']") -ge 20" \
    "status counts fewer than 20 idle connections closed"
echo "2: $(sl_json_get "$T/st2.json" "d['connections']")"
kill "$BROKER_PID"

# --- 3. worker slots full --------------------------------------------------------
P3=$(sl_free_port); EP3=tcp://127.0.0.1:$P3
BROKER_PORT=$P3 sl_start_broker "$T/c3" "$T/x.npy" "$T/b3.log" --shard-rows 100 \
    --max-workers 2
sl_bg H3 $DPY "$ROOT/tests/lib/idle_client.py" hello "$EP3" 2 "$T/stop3" 120 \
    >"$T/h3.out" 2>&1
sl_wait_log "$T/h3.out" "2 sessions welcomed" 30
sl_bg W3 "$BIN/softlabel-teacher" --connect "$EP3" --model "$T/teacher.safetensors" \
    --name real --threads 1 2>"$T/w3.log"
sl_wait_log "$T/w3.log" "broker busy: every worker slot of the broker is taken; saying HELLO again in" 30
# Two BUSY answers: it retried, and is still running.
i=0
while [ "$(sl_count "$T/w3.log" "broker busy")" -lt 2 ] && [ "$i" -lt 100 ]; do
	i=$((i + 1)); sleep 0.1
done
sl_check "$(sl_count "$T/w3.log" "broker busy") -ge 2" "the worker did not retry after BUSY"
kill -0 "$W3" 2>/dev/null || sl_fail "the worker exited on BUSY: $(tail -3 "$T/w3.log")"
status_until "$EP3" "d['connections']['busy'] >= 2" "two BUSY answers"
touch "$T/stop3"
set +e; sl_wait_pid "$W3" 120; rc=$?; set -e
sl_check "$rc -eq 0" "worker after the squatters left: exit $rc: $(tail -3 "$T/w3.log")"
sl_status_json "$EP3" >"$T/st3.json"
sl_check "$(sl_json_get "$T/st3.json" "d['connections']['sessions_closed']") -ge 2" \
    "the squatters' sessions were not freed when their connections closed"
"$BIN/softlabel" verify "$T/c3" >"$T/verify3" || sl_fail "verify: $(cat "$T/verify3")"
grep -q "teacher real: 500 records in 5/5 done shards checked, 0 problems" "$T/verify3" ||
    sl_fail "job 3 incomplete: $(cat "$T/verify3")"
echo "3: $(sl_json_get "$T/st3.json" "d['connections']")"
kill "$BROKER_PID"

# --- 4. pending connections per address ----------------------------------------
$DPY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.2", 0))' ||
    sl_fail "cannot bind a socket to 127.0.0.2 on this machine"
P4=$(sl_free_port); EP4=tcp://127.0.0.1:$P4
BROKER_PORT=$P4 sl_start_broker "$T/c4" "$T/x.npy" "$T/b4.log" --shard-rows 100 \
    --hello-timeout 60 --max-pending-per-peer 8
sl_bg H4 $DPY "$ROOT/tests/lib/idle_client.py" pending 127.0.0.1 "$P4" 127.0.0.2 40 1 \
    >"$T/h4.out" 2>&1
sl_bg W4 "$BIN/softlabel-teacher" --connect "$EP4" --model "$T/teacher.safetensors" \
    --name real --threads 1 2>"$T/w4.log"
set +e; sl_wait_pid "$H4" 60; rc=$?; set -e
sl_check "$rc -eq 0" "the pending client: exit $rc: $(cat "$T/h4.out")"
grep -q "pending: 32 of 40 closed, 8 open" "$T/h4.out" ||
    sl_fail "with --max-pending-per-peer 8: $(cat "$T/h4.out")"
set +e; sl_wait_pid "$W4" 120; rc=$?; set -e
sl_check "$rc -eq 0" "the worker beside the pending connections: exit $rc: $(tail -3 "$T/w4.log")"
sl_status_json "$EP4" >"$T/st4.json"
sl_check "$(sl_json_get "$T/st4.json" "d['connections']['peer_pending_closed']") -eq 32" \
    "status counts other than 32 connections closed for the pending bound"
grep -q "WARN closed a connection from 127.0.0.2: it has 8 without a session open (--max-pending-per-peer)" "$T/b4.log" ||
    sl_fail "no line about the pending bound: $(grep -i pending "$T/b4.log")"
"$BIN/softlabel" verify "$T/c4" >"$T/verify4" || sl_fail "verify: $(cat "$T/verify4")"
echo "4: $(cat "$T/h4.out"); $(sl_json_get "$T/st4.json" "d['connections']")"
kill "$BROKER_PID"
P5=$(sl_free_port)
BROKER_PORT=$P5 sl_start_broker "$T/c5" "$T/x.npy" "$T/b5.log" --shard-rows 100 \
    --hello-timeout 60
$DPY "$ROOT/tests/lib/idle_client.py" pending 127.0.0.1 "$P5" 127.0.0.2 40 1 >"$T/h5.out" 2>&1
grep -q "pending: 0 of 40 closed, 40 open" "$T/h5.out" ||
    sl_fail "with the default bound: $(cat "$T/h5.out")"
echo "4: the default bound: $(cat "$T/h5.out")"
echo "connections and sessions bounded"

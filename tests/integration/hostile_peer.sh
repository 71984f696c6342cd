#!/bin/sh
# Limits per source address (issue 15: "per-peer and global limits on
# sessions, HELLO rate"). One host, 127.0.0.2 (Linux loopback answers all
# of 127.0.0.0/8), floods the broker with HELLOs under throwaway names from
# 300 connections, each retrying 10 ms after every BUSY and keeping its
# session alive with heartbeats, while a real softlabel-teacher from
# 127.0.0.1 joins and labels the job to the end.
#  1. Plaintext, the default limits, --max-workers 300: the flood takes
#     at most --max-sessions-per-peer (256) of the 300 slots; the rest of
#     its HELLOs are refused BUSY (for the rate and for its share), counted
#     in status and metrics, logged under a rate limit; the honest worker
#     labels every row. (Without per-address limits the flood takes all
#     300 slots and the honest worker is told BUSY until it gives up.)
#  2. CURVE, the attacker's key on the allow-list, --max-sessions-per-peer
#     4: the same bound by the address under CURVE.
#  3. --max-sessions-per-peer 1 taken by a squatter on 127.0.0.1: a real
#     worker from there is told BUSY, retries instead of exiting, and
#     labels the job once the squatter leaves (past its --connect-timeout:
#     BUSY is an answer).
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 500 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"

# Loopback answers 127.0.0.2 (all of 127.0.0.0/8 is routed to lo).
$DPY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.2", 0))' ||
    sl_fail "cannot bind a socket to 127.0.0.2 on this machine"

status() { # ep [curve args]: status JSON into $T/st.json
	_ep=$1; shift
	"$BIN/softlabel" status "$_ep" --json --timeout 10 "$@" >"$T/st.json"
}
status_until() { # python-condition-on-d what ep [curve args]
	_c=$1 _w=$2; shift 2
	_i=0
	while [ "$_i" -lt 120 ]; do
		if status "$@" 2>/dev/null &&
		    [ "$(sl_json_get "$T/st.json" "1 if ($_c) else 0")" = 1 ]; then
			return 0
		fi
		_i=$((_i + 1)); sleep 0.5
	done
	sl_fail "status never showed $_w: $(cat "$T/st.json" 2>/dev/null)"
}

# --- 1. plaintext, default per-address limits -------------------------------
P1=$(sl_free_port); EP1=tcp://127.0.0.1:$P1
M1=$(sl_free_port)
BROKER_PORT=$P1 sl_start_broker "$T/c1" "$T/x.npy" "$T/b1.log" --shard-rows 100 \
    --max-workers 300 --metrics-bind "127.0.0.1:$M1"
sl_bg A1 $DPY "$ROOT/tests/lib/peer_flood.py" "$EP1" 127.0.0.2 300 "$T/stop1" 240 \
    >"$T/a1.out" 2>&1
# The flood holds 256 sessions (all 300 without per-address limits) before
# the honest worker starts.
status_until "d['workers_total'] >= 256" "the flood's sessions" "$EP1"
sl_bg W1 "$BIN/softlabel-teacher" --connect "$EP1" --model "$T/teacher.safetensors" \
    --name real --threads 1 2>"$T/w1.log"
set +e; sl_wait_pid "$W1" 120; rc=$?; set -e
sl_check "$rc -eq 0" "the honest worker under a flood from 127.0.0.2: exit $rc (124: still running): $(tail -2 "$T/w1.log")"
touch "$T/stop1"
set +e; sl_wait_pid "$A1" 30; rc=$?; set -e
sl_check "$rc -eq 0" "the flood client: exit $rc: $(tail -2 "$T/a1.out")"
# The flood is over: status and metrics count the same refusals.
status "$EP1" || sl_fail "status after the job"
cp "$T/st.json" "$T/st1.json"
$DPY -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' \
    "http://127.0.0.1:$M1/metrics" >"$T/m1.txt" || sl_fail "metrics did not answer"
flood=$(tail -1 "$T/a1.out")
echo "1: $flood"
echo "1: $(sl_json_get "$T/st1.json" "d['connections']")"
held=$(echo "$flood" | sed -n 's/^flood: \([0-9]*\) sessions.*/\1/p')
sl_check "$held -eq 256" "the flood holds $held sessions, want --max-sessions-per-peer's 256"
busy=$(echo "$flood" | sed -n 's/.* \([0-9]*\) busy.*/\1/p')
sl_check "$busy -gt 0" "the flood was never told BUSY"
rate=$(sl_json_get "$T/st1.json" "d['connections']['peer_rate_refused']")
share=$(sl_json_get "$T/st1.json" "d['connections']['peer_sessions_refused']")
sl_check "$rate -gt 0" "no HELLO refused for its address's rate"
sl_check "$share -gt 0" "no HELLO refused for its address's share of sessions"
sl_check "$(sl_json_get "$T/st1.json" "d['connections']['busy']") -ge $((rate + share))" \
    "busy counts fewer BUSY answers than the per-address refusals"
sl_check "$(sl_json_get "$T/st1.json" "d['connections']['peers']") -eq 2" \
    "the broker tracks other than two addresses (127.0.0.1 and 127.0.0.2)"
grep -q "^softlabel_busy_total{reason=\"peer_rate\"} $rate\$" "$T/m1.txt" ||
    sl_fail "metrics disagree on peer_rate: $(grep busy_total "$T/m1.txt")"
grep -q "^softlabel_busy_total{reason=\"peer_sessions\"} $share\$" "$T/m1.txt" ||
    sl_fail "metrics disagree on peer_sessions: $(grep busy_total "$T/m1.txt")"
# The refusals name the address, and their lines are rate-limited.
grep -q "WARN refused (busy) HELLO from 127.0.0.2: more than 20 HELLOs a second" "$T/b1.log" ||
    sl_fail "no line about the flood's rate"
grep -q "WARN refused (busy) HELLO from 127.0.0.2: 127.0.0.2 holds 256 sessions" "$T/b1.log" ||
    sl_fail "no line about the flood's share of sessions"
lines=$(sl_count "$T/b1.log" "refused \(busy\) HELLO from 127.0.0.2")
sl_check "$lines -lt $(((rate + share) / 4))" "$lines log lines for $((rate + share)) refusals: not rate-limited"
grep -q "HELLO from 127.0.0.1" "$T/b1.log" && sl_fail "the honest worker's address was refused: $(grep "HELLO from 127.0.0.1" "$T/b1.log" | head -2)"
"$BIN/softlabel" verify "$T/c1" --teacher real >"$T/verify1" || sl_fail "verify: $(cat "$T/verify1")"
grep -q "teacher real: 500 records in 5/5 done shards checked, 0 problems" "$T/verify1" ||
    sl_fail "job 1 incomplete: $(cat "$T/verify1")"
echo "1: $(cat "$T/verify1")"

# --- 2. CURVE -----------------------------------------------------------------
K=$T/keys
mkdir -p "$K" "$T/allow"
for n in broker worker attacker admin; do
	"$BIN/softlabel" keygen "$K/$n" >/dev/null || sl_fail "keygen $n"
done
cp "$K/worker.pub" "$K/attacker.pub" "$K/admin.pub" "$T/allow/"
ADMIN="--curve-secret $K/admin.key --curve-server $K/broker.pub"
P2=$(sl_free_port); EP2=tcp://127.0.0.1:$P2
BROKER_PORT=$P2 sl_start_broker "$T/c2" "$T/x.npy" "$T/b2.log" --shard-rows 100 \
    --max-workers 12 --max-sessions-per-peer 4 \
    --curve-secret "$K/broker.key" --allow-keys "$T/allow"
sl_bg A2 $DPY "$ROOT/tests/lib/peer_flood.py" "$EP2" 127.0.0.2 12 "$T/stop2" 240 "$K" \
    >"$T/a2.out" 2>&1
# shellcheck disable=SC2086
status_until "d['connections']['peer_sessions_refused'] > 0" \
    "the CURVE flood refused for its share" "$EP2" $ADMIN
sl_bg W2 "$BIN/softlabel-teacher" --connect "$EP2" --model "$T/teacher.safetensors" \
    --name real --threads 1 --curve-secret "$K/worker.key" \
    --curve-server "$K/broker.pub" 2>"$T/w2.log"
set +e; sl_wait_pid "$W2" 120; rc=$?; set -e
sl_check "$rc -eq 0" "the honest CURVE worker under a flood: exit $rc: $(tail -2 "$T/w2.log")"
touch "$T/stop2"
set +e; sl_wait_pid "$A2" 30; rc=$?; set -e
sl_check "$rc -eq 0" "the CURVE flood client: exit $rc: $(tail -2 "$T/a2.out")"
# shellcheck disable=SC2086
status "$EP2" $ADMIN || sl_fail "status (CURVE) after the job"
cp "$T/st.json" "$T/st2.json"
flood=$(tail -1 "$T/a2.out")
echo "2: $flood"
echo "2: $(sl_json_get "$T/st2.json" "d['connections']")"
held=$(echo "$flood" | sed -n 's/^flood: \([0-9]*\) sessions.*/\1/p')
sl_check "$held -eq 4" "the CURVE flood holds $held sessions, want 4"
grep -q "WARN refused (busy) HELLO from 127.0.0.2: 127.0.0.2 holds 4 sessions" "$T/b2.log" ||
    sl_fail "no line about the CURVE flood's share of sessions"
"$BIN/softlabel" verify "$T/c2" --teacher real >"$T/verify2" || sl_fail "verify: $(cat "$T/verify2")"
grep -q "teacher real: 500 records in 5/5 done shards checked, 0 problems" "$T/verify2" ||
    sl_fail "job 2 incomplete: $(cat "$T/verify2")"

# --- 3. a real worker told BUSY for its address's share ----------------------------
# --max-sessions-per-peer 1 and a squatter from 127.0.0.1 holding that one
# session: the real worker from the same address is told BUSY, keeps
# retrying with back-off instead of exiting, and labels the job once the
# squatter's connection closes and frees its address's share.
P3=$(sl_free_port); EP3=tcp://127.0.0.1:$P3
BROKER_PORT=$P3 sl_start_broker "$T/c3" "$T/x.npy" "$T/b3.log" --shard-rows 100 \
    --max-sessions-per-peer 1
sl_bg H3 $DPY "$ROOT/tests/lib/idle_client.py" hello "$EP3" 1 "$T/stop3" 120 \
    >"$T/h3.out" 2>&1
sl_wait_log "$T/h3.out" "1 sessions welcomed" 30
# --connect-timeout 2: a BUSY broker is one that answered, so the worker
# waits on past it. Six BUSY answers are at least 100+200+...+3200 ms of
# back-off apart: past the 2 s.
sl_bg W3 "$BIN/softlabel-teacher" --connect "$EP3" --model "$T/teacher.safetensors" \
    --name real --threads 1 --connect-timeout 2 2>"$T/w3.log"
sl_wait_log "$T/w3.log" "broker busy: 127.0.0.1 holds 1 sessions \(--max-sessions-per-peer\); saying HELLO again in" 30
i=0
while [ "$(sl_count "$T/w3.log" "broker busy")" -lt 6 ] && kill -0 "$W3" 2>/dev/null &&
    [ "$i" -lt 300 ]; do
	i=$((i + 1)); sleep 0.1
done
sl_check "$(sl_count "$T/w3.log" "broker busy") -ge 6" "the worker did not retry after BUSY: $(tail -2 "$T/w3.log")"
kill -0 "$W3" 2>/dev/null || sl_fail "the worker exited on BUSY: $(tail -3 "$T/w3.log")"
touch "$T/stop3"
set +e; sl_wait_pid "$W3" 120; rc=$?; set -e
sl_check "$rc -eq 0" "the worker after the squatter left: exit $rc: $(tail -3 "$T/w3.log")"
"$BIN/softlabel" verify "$T/c3" --teacher real >"$T/verify3" || sl_fail "verify: $(cat "$T/verify3")"
grep -q "teacher real: 500 records in 5/5 done shards checked, 0 problems" "$T/verify3" ||
    sl_fail "job 3 incomplete: $(cat "$T/verify3")"
echo "3: $(sl_count "$T/w3.log" "broker busy") BUSY answers, then the job: $(cat "$T/verify3" | head -1)"
echo "one address held to its share, plaintext and CURVE; a real worker retries"

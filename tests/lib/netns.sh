# Hosts on one machine, for the multi-host tests: source after common.sh.
#
#   sl_netns_require     exit 77 (reported SKIP by tests/run.sh, never PASS)
#                        unless we are root and may create namespaces
#   sl_netns_up          three network namespaces wired as below, removed
#                        at exit; no default route, no address outside them
#   sl_netns_job         both of these, then the job every test labels:
#                        X, the 60,000 Fashion-MNIST training rows, and M,
#                        a 784-1200-1200-10 teacher (a shard takes a while)
#   sl_netns_finish N    the end of a fault test: every one of the N shards
#                        committed once, nothing rejected; then the broker
#                        stops cleanly and sl_netns_verify
#   sl_netns_verify      softlabel verify passes on $SL_TMP/cache, which
#                        equals the teacher computed directly
#
#        NS_W1 (w1 10.77.1.2) ---veth--- (b1 10.77.1.1) NS_B
#        NS_W2 (w2 10.77.2.2) ---veth--- (b2 10.77.2.1) NS_B
#
#   sl_in NS cmd...      run cmd inside NS (exec: the pid stays the program's)
#   sl_netns_cut NS      drop every packet in and out of NS, silently
#                        (loopback excepted): a cable pulled
#   sl_netns_heal NS     undo sl_netns_cut or sl_netns_storm
#   sl_netns_storm NS ADDR BROKER_ADDR PORT
#                        answer every TCP segment between the worker host NS
#                        (ADDR) and the broker's BROKER_ADDR:PORT with a
#                        reset, both ways: every connection attempt is
#                        refused and every open connection torn down
#   sl_netns_syns        connection attempts (SYNs) the storm has refused
#
# The broker runs in NS_B bound to 0.0.0.0:$NS_PORT, so it is reachable only
# through the veths: the root namespace has no route to 10.77.0.0/16.

NS_PORT=5555

sl_netns_require() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "SKIP: $(basename "$0") needs root to create network" \
		    "namespaces (ip netns, veth, nft); NOT RUN" >&2
		exit 77
	fi
	for tool in ip nft; do
		command -v "$tool" >/dev/null ||
		    sl_fail "$tool is missing: run make deps (iproute2, nftables)"
	done
	_probe=slprobe$$
	if ! ip netns add "$_probe" 2>"$SL_TMP/netns.err"; then
		echo "SKIP: $(basename "$0"): this machine refuses network" \
		    "namespaces ($(cat "$SL_TMP/netns.err")); NOT RUN" >&2
		exit 77
	fi
	ip netns del "$_probe"
}

sl_netns_up() {
	NS_B=slb$$ NS_W1=slw1$$ NS_W2=slw2$$
	for ns in $NS_B $NS_W1 $NS_W2; do
		ip netns add "$ns" || sl_fail "ip netns add $ns"
		sl_atexit "ip netns del $ns"
		ip -n "$ns" link set lo up
	done
	ip link add b1 netns "$NS_B" type veth peer name w1 netns "$NS_W1"
	ip link add b2 netns "$NS_B" type veth peer name w2 netns "$NS_W2"
	ip -n "$NS_B" addr add 10.77.1.1/24 dev b1
	ip -n "$NS_B" addr add 10.77.2.1/24 dev b2
	ip -n "$NS_W1" addr add 10.77.1.2/24 dev w1
	ip -n "$NS_W2" addr add 10.77.2.2/24 dev w2
	for l in "$NS_B b1" "$NS_B b2" "$NS_W1 w1" "$NS_W2 w2"; do
		set -- $l
		ip -n "$1" link set "$2" up
	done
	# The broker's address as each worker host sees it.
	EP_W1=tcp://10.77.1.1:$NS_PORT
	EP_W2=tcp://10.77.2.1:$NS_PORT
	EP_B=tcp://127.0.0.1:$NS_PORT
	_i=0
	until ip -n "$NS_B" -o link show b1 | grep -q "state UP" &&
	    ip -n "$NS_B" -o link show b2 | grep -q "state UP"; do
		_i=$((_i + 1))
		[ "$_i" -lt 50 ] || sl_fail "veth links did not come up"
		sleep 0.1
	done
	echo "hosts: broker $NS_B (10.77.1.1, 10.77.2.1), workers $NS_W1" \
	    "(10.77.1.2), $NS_W2 (10.77.2.2)"
}

sl_in() { # ns cmd...
	_ns=$1; shift
	exec ip netns exec "$_ns" "$@"
}

sl_netns_cut() { # ns
	ip netns exec "$1" nft -f - <<EOF
table inet slcut {
	chain in {
		type filter hook input priority -10; policy drop;
		iifname "lo" accept
	}
	chain out {
		type filter hook output priority -10; policy drop;
		oifname "lo" accept
	}
}
EOF
	echo "cut: $1 drops every packet, both ways"
}

sl_netns_heal() { # ns
	if ip netns exec "$1" nft list table inet slstorm >/dev/null 2>&1; then
		ip netns exec "$1" nft delete table inet slstorm
		ip netns exec "$NS_B" nft delete table inet slstorm
	else
		ip netns exec "$1" nft delete table inet slcut ||
		    sl_fail "nothing to heal in $1"
	fi
	echo "healed: $1"
}

sl_netns_storm() { # worker-ns worker-addr broker-addr port
	# Each side resets what arrives from the other, resets excepted (or
	# each would swallow the other's). A reject in the input hook answers
	# over the wire; one in the output hook would not refuse a local
	# connect, the SYN would only be retransmitted.
	ip netns exec "$1" nft -f - <<EOF
table inet slstorm {
	chain in {
		type filter hook input priority -10; policy accept;
		ip saddr $3 tcp sport $4 tcp flags & rst == 0 reject with tcp reset
	}
}
EOF
	ip netns exec "$NS_B" nft -f - <<EOF
table inet slstorm {
	counter syns { }
	chain in {
		type filter hook input priority -10; policy accept;
		ip saddr $2 tcp dport $4 tcp flags & (syn | ack) == syn counter name syns
		ip saddr $2 tcp dport $4 tcp flags & rst == 0 reject with tcp reset
	}
}
EOF
	echo "storm: every TCP segment between $2 ($1) and $3:$4 is answered with a reset"
}

sl_netns_syns() {
	ip netns exec "$NS_B" nft list counter inet slstorm syns |
	    sed -n 's/.*packets \([0-9]*\).*/\1/p'
}

# softlabel status as JSON from inside a namespace.
sl_ns_status() { # ns ep out.json
	ip netns exec "$1" "$BIN/softlabel" status "$2" --json --timeout 10 >"$3"
}

# The broker on NS_B, bound to every address of that host; waits for ready.
# Sets BROKER_PID and BROKER_LOG. Extra arguments go to softlabel-broker.
# --audit 0: these tests count duplicate results per shard across cuts,
# and an audit's second opinion is one more (audits have tests of their
# own: audit_*.sh, chaos_audit.sh).
sl_ns_broker() { # store dataset extra...
	_store=$1 _data=$2; shift 2
	BROKER_LOG=$SL_TMP/broker.log
	sl_bg BROKER_PID sl_in "$NS_B" "$BIN/softlabel-broker" --store "$_store" \
	    --dataset "$_data" --bind "tcp://0.0.0.0:$NS_PORT" --audit 0 "$@" \
	    2>>"$BROKER_LOG"
	sl_wait_log "$BROKER_LOG" " $BROKER_PID softlabel-broker INFO ready" 30
}

# A teacher worker named NAME on host NS; its log is $SL_TMP/NAME.log and
# its pid goes into the variable NAME_PID. Extra arguments go to the worker.
sl_ns_worker() { # ns ep name model extra...
	_ns=$1 _ep=$2 _name=$3 _model=$4; shift 4
	sl_bg "${_name}_PID" sl_in "$_ns" "$BIN/softlabel-teacher" --connect "$_ep" \
	    --model "$_model" --name big --threads 1 --batch 250 \
	    --worker-name "$_name" "$@" 2>>"$SL_TMP/$_name.log"
}

# Ask the broker (over NS_B's loopback, which cuts spare) for its status and
# evaluate a python expression on it. In the expression: d is the status,
# t the first teacher, leases(name) the leases held by every session of
# the worker called name.
sl_ns_q() { # expression
	ip netns exec "$NS_B" "$BIN/softlabel" status "$EP_B" --json --timeout 5 \
	    >"$SL_TMP/status.json" 2>"$SL_TMP/status.err" || return 1
	$DPY - "$SL_TMP/status.json" "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
t = d["teachers"][0] if d["teachers"] else {"done": 0, "leased": 0, "pending": 0}
def leases(name):
    return sum(w["leases"] for w in d["workers"] if w["name"] == name)
v = eval(sys.argv[2])
print(int(v) if isinstance(v, bool) else v)
PY
}

# Poll the broker's status until the expression is true, at most secs.
sl_ns_wait() { # expression secs what
	_i=0
	while [ "$(sl_ns_q "$1" 2>/dev/null)" != 1 ]; do
		_i=$((_i + 1))
		[ "$_i" -le $(($2 * 5)) ] ||
		    sl_fail "timed out after $2 s waiting for $3 ($1): $(cat "$SL_TMP/status.json" 2>/dev/null | head -c 600)"
		sleep 0.2
	done
}

# SIGTERM the broker and require a clean exit (status 0) within 30 s.
sl_ns_stop_broker() {
	kill -TERM "$BROKER_PID"
	set +e; sl_wait_pid "$BROKER_PID" 30; _rc=$?; set -e
	sl_check "$_rc -eq 0" "broker exit $_rc after SIGTERM: $(tail -2 "$BROKER_LOG")"
}

# Every "duplicate result" the broker logged came from the named workers
# (an extended regex: w2, or w1a|w2), and no shard came twice as a duplicate
# (a resend storm would). Sets NS_DUPLICATES to the count.
sl_netns_check_duplicates() { # workers-regex
	grep "duplicate result" "$BROKER_LOG" >"$SL_TMP/dups" || true
	_n=$(wc -l <"$SL_TMP/dups")
	_other=$(grep -Evc " from ($1): " "$SL_TMP/dups" || true)
	_twice=$(sed -n 's/.* shard \([0-9]*\) from .*/\1/p' "$SL_TMP/dups" |
	    sort | uniq -d | wc -l)
	sl_check "$_other -eq 0" "duplicates from other workers than $1: $(grep -Ev " from ($1): " "$SL_TMP/dups" | head -2)"
	sl_check "$_twice -eq 0" "a shard came back as a duplicate more than once"
	echo "duplicates acknowledged and dropped: $_n (from $1 only, none twice)"
	NS_DUPLICATES=$_n
}

sl_netns_job() {
	sl_netns_require
	sl_netns_up
	X=$FMNIST/train-images-idx3-ubyte.gz
	M=$SL_TMP/teacher.safetensors
	sl_make_big_teacher "$M"
}

sl_netns_verify() {
	"$BIN/softlabel" verify "$SL_TMP/cache" >"$SL_TMP/verify" ||
	    sl_fail "verify: $(cat "$SL_TMP/verify")"
	cat "$SL_TMP/verify"
	grep -q "60000 records in 60/60 done shards checked, 0 problems" \
	    "$SL_TMP/verify" || sl_fail "verify: $(cat "$SL_TMP/verify")"
	sl_check_cache_exact "$SL_TMP/cache" big "$M" "$X" 1
}

sl_netns_finish() { # shards
	sl_ns_q '(d["committed_results"], sum(d["rejected"].values()))' \
	    >"$SL_TMP/counts"
	read -r _counts <"$SL_TMP/counts"
	echo "committed results, rejected: $_counts"
	sl_check "\"$_counts\" = \"($1, 0)\"" "each shard committed once, nothing rejected"
	sl_ns_stop_broker
	sl_netns_verify
}

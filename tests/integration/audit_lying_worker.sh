#!/bin/sh
# Finding 8 of issue 15: a lying worker. It claims the real teacher's name
# and model SHA-256 and sends confident garbage (tests/lib/torch_teacher.py
# with SL_TEST_LIE=1), starting before three honest C workers.
#  A. --audit 0.1: its first result is audited (every identity's is), the
#     honest second opinion disagrees, a third decides; one log line names
#     both workers, the liar is named and refused (also when it says HELLO
#     again), every shard it computed is deleted and recomputed: at the end
#     every record equals the teacher (softlabel-student --evaluate, and
#     PyTorch), status counts the audits, and the broker exits 0.
#  B. The same with --audit 0: the liar's records stay in the cache (the
#     checks of A fail there), so A's checks can fail.
. "$(dirname "$0")/../lib/common.sh"
$DPY -c 'import torch, zmq' 2>/dev/null || { echo "SKIP: python3-torch or python3-zmq missing"; exit 77; }
export PYTHONPATH="$ROOT/common/python${PYTHONPATH:+:$PYTHONPATH}"
sl_tmpdir; T=$SL_TMP
# The value got must be want (sl_check takes one test expression; these
# values hold spaces and brackets).
expect() { # got want message
	[ "$1" = "$2" ] || sl_fail "$3 (got '$1', want '$2')"
}
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 6000 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"
M=$T/teacher.safetensors
SHA=$(sha256sum "$M" | cut -d' ' -f1)

liar() { # log
	SL_TEST_LIE=1 SL_TEST_LIE_DELAY_S=0.2 exec $DPY "$ROOT/tests/lib/torch_teacher.py" "$BROKER_EP" "$M" real 1 f32 \
	    liar --connect-timeout 60 2>>"$1"
}
honest() { # n log
	exec "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$M" --name real \
	    --worker-name "honest-$1" --threads 1 --batch 250 2>>"$2"
}
# The liar first: wait until three results of it are stored (the first is
# audited, the others are the purge's to find), then the honest ones.
start_all() { # broker-log
	sl_bg LIAR liar "$T/liar.log"
	sl_wait_log "$1" "worker liar joined" 60
	_i=0
	while [ "$(sl_status_json "$BROKER_EP" >"$T/st0.json" && sl_json_get "$T/st0.json" \
	    'sum(w["results"] for w in d["workers"] if w["name"] == "liar") >= 3')" = False ]; do
		_i=$((_i + 1)); [ "$_i" -le 600 ] || sl_fail "the liar stored less than 3 results in 60 s"
		sleep 0.1
	done
	for n in 1 2 3; do sl_bg W$n honest $n "$T/honest.log"; done
}

# --- A --------------------------------------------------------------------------
sl_start_broker "$T/a" "$T/x.npy" "$T/a.log" --shard-rows 250 --teacher "real=$SHA" \
    --audit 0.1 --audit-seed 7 --lease-timeout 10
start_all "$T/a.log"
# Until every shard is done and no audit is open (bounded: 120 s).
i=0
while :; do
	sl_status_json "$BROKER_EP" >"$T/st.json" || sl_fail "status failed"
	[ "$(sl_json_get "$T/st.json" 'd["teachers"][0]["done"] == d["shards"] and d["audit"]["open"] == 0 and d["audit"]["refused"] == 1')" = True ] && break
	i=$((i + 1)); [ "$i" -le 1200 ] || sl_fail "not finished in 120 s: $(cat "$T/st.json")"
	sleep 0.1
done
cat "$T/st.json" | $DPY -c 'import json,sys; d=json.load(sys.stdin); print("status audit:", d["audit"])'
expect "$(sl_json_get "$T/st.json" 'd["audit"]["disputed"] >= 1 and d["audit"]["settled"] >= 1 and d["audit"]["passed"] >= 1')" True \
    "status does not count the audits: $(sl_json_get "$T/st.json" 'd["audit"]')"
expect "$(sl_json_get "$T/st.json" 'd["audit"]["refused_workers"]')" "['name liar']" \
    "status does not name the refused worker"
expect "$(sl_json_get "$T/st.json" 'd["audit"]["purged_shards"] >= 2')" True "the liar's unaudited shards were not purged"
# One line names both workers of the dispute; one names the liar refused.
grep -E "audit: teacher real shard [0-9]+: workers (liar \(name liar\) and honest-[1-3]|honest-[1-3] \(name honest-[1-3]\) and liar) .*disagree" "$T/a.log" >/dev/null ||
    sl_fail "no line names both workers of the dispute: $(grep audit "$T/a.log" | head -5)"
grep -q "audit: worker liar (name liar) proven wrong by a third opinion (worker honest-[1-3])" "$T/a.log" ||
    sl_fail "the liar is not named: $(grep audit "$T/a.log" | head -5)"
expect "$(sl_count "$T/a.log" 'proven wrong')" 1 "an honest worker was refused too: $(grep 'proven wrong' "$T/a.log")"
# The liar was told, and a new HELLO under its name is refused.
set +e; sl_wait_pid "$LIAR" 30; rc=$?; set -e
sl_check "$rc -eq 1" "the liar: exit $rc, not 1"
grep -q "refused" "$T/liar.log" || sl_fail "the liar was not told: $(tail -3 "$T/liar.log")"
set +e
SL_TEST_LIE=1 $DPY "$ROOT/tests/lib/torch_teacher.py" "$BROKER_EP" "$M" real 1 f32 liar \
    --connect-timeout 30 2>"$T/liar2.log"; rc=$?
set -e
sl_check "$rc -eq 1" "the liar's second HELLO: exit $rc, not 1"
grep -q "an audit proved the results of name liar wrong" "$T/liar2.log" ||
    sl_fail "second HELLO not refused as proven wrong: $(tail -2 "$T/liar2.log")"
kill "$BROKER_PID"; sl_wait_pid "$BROKER_PID" 30 || sl_fail "broker did not stop"
for n in 1 2 3; do eval "kill \$W$n 2>/dev/null || true"; done
# inspect shows the counters the broker stored (meta "audit").
"$BIN/softlabel" inspect "$T/a" >"$T/inspect.txt" || sl_fail "inspect failed"
grep -E "^audits +[1-9][0-9]* agreed, [1-9][0-9]* disputed \([1-9][0-9]* settled by a third opinion, 0 quarantined\); 1 workers refused, ([2-9]|[1-9][0-9]+) of their shards deleted and recomputed$" "$T/inspect.txt" ||
    sl_fail "inspect does not show the audits: $(grep audits "$T/inspect.txt")"

# Nothing the liar sent stays: every record equals the teacher.
sl_check_cache_exact "$T/a" real "$M" "$T/x.npy" 1 || sl_fail "A: the cache is not the teacher's"
$DPY "$ROOT/tests/lib/torch_reference.py" "$T/a" real "$M" "$T/x.npy" 1 1e-5 ||
    sl_fail "A: the cache differs from PyTorch"
"$BIN/softlabel" verify "$T/a" >/dev/null || sl_fail "A: verify failed"
BROKER_PORT=

# --- B --------------------------------------------------------------------------
sl_start_broker "$T/b" "$T/x.npy" "$T/b.log" --shard-rows 250 --teacher "real=$SHA" \
    --audit 0 --exit-when-done
start_all "$T/b.log"
set +e; sl_wait_pid "$BROKER_PID" 120; rc=$?; set -e
sl_check "$rc -eq 0" "B: broker exit $rc: $(tail -3 "$T/b.log")"
if $DPY "$ROOT/tests/lib/torch_reference.py" "$T/b" real "$M" "$T/x.npy" 1 1e-5 >"$T/b.ref" 2>&1; then
	sl_fail "B: without audits the liar's records should have stayed: $(cat "$T/b.ref")"
fi
echo "B (no audits): $(tail -1 "$T/b.ref")"
echo "PASS audit_lying_worker"

#!/bin/sh
# Audits under CURVE, where an identity is a key (issue 15, finding 8).
#  A. A liar with a listed key (the real teacher's name and model SHA-256,
#     confident garbage) among three honest keyed workers: refused as
#     "key <its key>"; the same key under another worker name is refused
#     too (a name is no identity under CURVE); every record then equals
#     the teacher.
#  B. The same liar's key in --trusted-keys: its results are never audited
#     (status shows it trusted; no dispute has it on the stored side) and,
#     unless it is proven wrong as the auditor of another worker's result
#     (then it is refused like anyone), its records stay: trusted keys are
#     stored as they come, as the README says.
#  C. --trusted-keys without CURVE: exit 2.
. "$(dirname "$0")/../lib/common.sh"
$DPY -c 'import torch, zmq' 2>/dev/null || { echo "SKIP: python3-torch or python3-zmq missing"; exit 77; }
export PYTHONPATH="$ROOT/common/python${PYTHONPATH:+:$PYTHONPATH}"
sl_tmpdir; T=$SL_TMP
# The value got must be want (sl_check takes one test expression; these
# values hold spaces and brackets).
expect() { # got want message
	[ "$1" = "$2" ] || sl_fail "$3 (got '$1', want '$2')"
}
K=$T/keys
mkdir -p "$K" "$T/allow" "$T/trusted"
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 6000 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"
M=$T/teacher.safetensors
SHA=$(sha256sum "$M" | cut -d' ' -f1)
for n in broker admin w1 w2 w3 liar; do
	"$BIN/softlabel" keygen "$K/$n" >/dev/null || sl_fail "keygen $n"
done
for n in admin w1 w2 w3 liar; do cp "$K/$n.pub" "$T/allow/"; done
cp "$K/liar.pub" "$T/trusted/"
LIARKEY=$(cat "$K/liar.pub")
CURVE="--curve-secret $K/broker.key --allow-keys $T/allow"
st() { # out.json
	"$BIN/softlabel" status "$BROKER_EP" --json --timeout 10 \
	    --curve-secret "$K/admin.key" --curve-server "$K/broker.pub" >"$1" ||
	    sl_fail "status over CURVE failed"
}
liar() { # worker-name log
	SL_TEST_LIE=1 SL_TEST_LIE_DELAY_S=0.2 exec $DPY "$ROOT/tests/lib/torch_teacher.py" \
	    "$BROKER_EP" "$M" real 1 f32 "$1" --curve-secret "$K/liar.key" \
	    --curve-server "$K/broker.pub" --connect-timeout 60 2>>"$2"
}
honest() { # n log
	exec "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$M" --name real \
	    --worker-name "honest-$1" --threads 1 --batch 250 --curve-secret "$K/w$1.key" \
	    --curve-server "$K/broker.pub" 2>>"$2"
}
# The liar first, three results of it stored, then the honest workers;
# then until every shard is done and no audit is open (bounded).
run() { # tag
	sl_bg LIAR liar liar "$T/liar-$1.log"
	i=0
	while st "$T/st0.json"; [ "$(sl_json_get "$T/st0.json" \
	    'sum(w["results"] for w in d["workers"] if w["name"] == "liar") >= 3')" = False ]; do
		i=$((i + 1)); [ "$i" -le 600 ] || sl_fail "$1: the liar stored less than 3 results in 60 s"
		sleep 0.1
	done
	for n in 1 2 3; do sl_bg W$n honest $n "$T/honest-$1.log"; done
	i=0
	while st "$T/st-$1.json"; [ "$(sl_json_get "$T/st-$1.json" \
	    'd["teachers"][0]["done"] == d["shards"] and d["audit"]["open"] == 0')" = False ]; do
		i=$((i + 1)); [ "$i" -le 1200 ] || sl_fail "$1: not finished in 120 s: $(cat "$T/st-$1.json")"
		sleep 0.1
	done
}

# --- A ------------------------------------------------------------------------
# shellcheck disable=SC2086
sl_start_broker "$T/a" "$T/x.npy" "$T/a.log" --shard-rows 250 --teacher "real=$SHA" \
    --audit 0.1 --audit-seed 3 $CURVE
run a
expect "$(sl_json_get "$T/st-a.json" 'd["audit"]["refused_workers"]')" "['key $LIARKEY']" \
    "A: the liar's key is not the one refused: $(sl_json_get "$T/st-a.json" 'd["audit"]')"
grep -qF "audit: worker liar (key $LIARKEY) proven wrong" "$T/a.log" ||
    sl_fail "A: the liar's key is not named: $(grep 'audit:' "$T/a.log" | head -3)"
# Another worker name, the same key: still refused.
set +e
SL_TEST_LIE=1 $DPY "$ROOT/tests/lib/torch_teacher.py" "$BROKER_EP" "$M" real 1 f32 honest-9 \
    --curve-secret "$K/liar.key" --curve-server "$K/broker.pub" --connect-timeout 30 \
    2>"$T/renamed.log"; rc=$?
set -e
sl_check "$rc -eq 1" "A: the renamed liar: exit $rc, not 1"
grep -qF "an audit proved the results of key $LIARKEY wrong" "$T/renamed.log" ||
    sl_fail "A: the renamed liar was not refused by its key: $(tail -2 "$T/renamed.log")"
kill "$BROKER_PID"; sl_wait_pid "$BROKER_PID" 30 || sl_fail "A: broker did not stop"
for p in $W1 $W2 $W3 $LIAR; do kill "$p" 2>/dev/null || true; done
sl_check_cache_exact "$T/a" real "$M" "$T/x.npy" 1 || sl_fail "A: the cache is not the teacher's"
BROKER_PORT=

# --- B ------------------------------------------------------------------------
# shellcheck disable=SC2086
sl_start_broker "$T/b" "$T/x.npy" "$T/b.log" --shard-rows 250 --teacher "real=$SHA" \
    --audit 0.1 --audit-seed 3 $CURVE --trusted-keys "$T/trusted"
run b
expect "$(sl_json_get "$T/st0.json" '[w["trusted"] for w in d["workers"] if w["name"] == "liar"]')" "[True]" \
    "B: the liar is not shown trusted"
# Its own results were never second-guessed: no dispute names it first
# (the stored side). It still audits others: where it disagrees and a third
# opinion sides with the other worker, it is proven wrong like anyone
# (trust skips audits of a key's results, it does not make the key right).
if grep -qF "workers liar (key $LIARKEY) and" "$T/b.log"; then
	sl_fail "B: a trusted key's result was audited: $(grep -F 'disagree' "$T/b.log" | head -2)"
fi
expect "$(sl_json_get "$T/st-b.json" 'd["audit"]["passed"] >= 1')" True \
    "B: the untrusted workers were not audited: $(sl_json_get "$T/st-b.json" 'd["audit"]')"
kill "$BROKER_PID"; sl_wait_pid "$BROKER_PID" 30 || sl_fail "B: broker did not stop"
for p in $W1 $W2 $W3 $LIAR; do kill "$p" 2>/dev/null || true; done
if grep -qF "audit: worker liar (key $LIARKEY) proven wrong" "$T/b.log"; then
	# refused as an auditor: what it stored is deleted and recomputed
	$DPY "$ROOT/tests/lib/torch_reference.py" "$T/b" real "$M" "$T/x.npy" 1 1e-5 >"$T/b.ref" 2>&1 ||
	    sl_fail "B: the trusted liar was refused, yet its records stay: $(cat "$T/b.ref")"
	echo "B: the trusted liar audited an honest result, was proven wrong and refused"
elif $DPY "$ROOT/tests/lib/torch_reference.py" "$T/b" real "$M" "$T/x.npy" 1 1e-5 >"$T/b.ref" 2>&1; then
	sl_fail "B: a trusted liar's records should have stayed: $(cat "$T/b.ref")"
fi
echo "B (trusted liar): $(tail -1 "$T/b.ref")"
BROKER_PORT=

# --- C ------------------------------------------------------------------------
set +e
"$BIN/softlabel-broker" --store "$T/c" --dataset "$T/x.npy" --trusted-keys "$T/trusted" \
    --bind "tcp://127.0.0.1:$(sl_free_port)" 2>"$T/c.err"; rc=$?
set -e
sl_check "$rc -eq 2" "C: --trusted-keys without CURVE: exit $rc, not 2"
grep -q "needs CURVE" "$T/c.err" || sl_fail "C: $(cat "$T/c.err")"
echo "PASS audit_curve"

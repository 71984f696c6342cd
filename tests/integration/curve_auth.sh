#!/bin/sh
# CurveZMQ on real sockets: softlabel keygen; a broker with --curve-secret and
# an allow-list holding only the worker's (and an admin's) public key. A
# plaintext client, a client with an unknown key and one with the wrong
# server key get no answer, and nothing of theirs reaches the broker's logic
# (no worker, no teacher, no lease), but each is counted in "auth_refused".
# The allowed worker labels the dataset and verify passes. Bad key files
# stop the broker at start (exit 2, naming the file). SIGHUP after removing
# the worker's key: a new session with it is refused, and the running
# worker's session is revoked (its leases dropped, its results refused).
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
K=$T/keys
mkdir -p "$K" "$T/allow"
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 1000 "$T/x.npy"
sl_make_teacher "$T/teacher.safetensors"

# --- keygen ------------------------------------------------------------------
for n in broker worker admin; do
	"$BIN/softlabel" keygen "$K/$n" >/dev/null || sl_fail "keygen $n"
done
sl_check "$(stat -c %a "$K/worker.key") = 600" "secret key mode $(stat -c %a "$K/worker.key")"
sl_check "$(stat -c %s "$K/worker.key") -eq 41" "secret key is not 40 chars and a newline"
sl_check "$(stat -c %s "$K/worker.pub") -eq 41" "public key is not 40 chars and a newline"
before=$(cat "$K/worker.key")
if "$BIN/softlabel" keygen "$K/worker" 2>"$T/kg.err"; then
	sl_fail "keygen overwrote an existing key"
fi
grep -q "worker.key: File exists" "$T/kg.err" || sl_fail "keygen error: $(cat "$T/kg.err")"
# Z85 has '$' in its alphabet: compare directly, not through sl_check's eval.
[ "$(cat "$K/worker.key")" = "$before" ] || sl_fail "keygen changed an existing key"
cp "$K/worker.pub" "$K/admin.pub" "$T/allow/"

# --- (e) the broker refuses bad keys at start ------------------------------------
refuses() { # name pattern broker-args...
	_n=$1 _p=$2; shift 2
	set +e
	"$BIN/softlabel-broker" --store "$T/nocache" --dataset "$T/x.npy" \
	    --bind tcp://127.0.0.1:1 "$@" 2>"$T/refuse-$_n.log"
	_rc=$?
	set -e
	sl_check "$_rc -eq 2" "broker with $_n: exit $_rc, want 2: $(cat "$T/refuse-$_n.log")"
	grep -qE "$_p" "$T/refuse-$_n.log" ||
	    sl_fail "broker with $_n: no '$_p' in: $(cat "$T/refuse-$_n.log")"
	echo "refused to start with $_n: $(tail -1 "$T/refuse-$_n.log" | sed 's/.*ERROR //')"
}
cp "$K/broker.key" "$T/loose.key"; chmod 644 "$T/loose.key"
refuses "a 0644 secret key" "loose.key: .*open to group or others \(mode 0644, owner uid [0-9]+\): chmod 600 it \(a secret key file must be owned by you" \
    --curve-secret "$T/loose.key" --allow-keys "$T/allow"
printf 'tooshort\n' >"$T/short.key"; chmod 600 "$T/short.key"
refuses "a short key file" "short.key: not 40 Z85 characters" \
    --curve-secret "$T/short.key" --allow-keys "$T/allow"
printf '%s\n' "$(head -c 39 "$K/broker.key")~" >"$T/badchar.key"; chmod 600 "$T/badchar.key"
refuses "a bad Z85 character" "badchar.key: not 40 Z85 characters" \
    --curve-secret "$T/badchar.key" --allow-keys "$T/allow"
cp "$K/broker.key" "$T/mm.key"; cp "$K/worker.pub" "$T/mm.pub"
refuses "a mismatched pair" "mm.pub does not match .*mm.key" \
    --curve-secret "$T/mm.key" --allow-keys "$T/allow"
mkdir "$T/badallow"; cp "$K/worker.pub" "$T/badallow/"; echo junk >"$T/badallow/junk.pub"
refuses "an invalid allow-list file" "junk.pub: not 40 Z85 characters" \
    --curve-secret "$K/broker.key" --allow-keys "$T/badallow"
refuses "--curve-secret alone" "go together" --curve-secret "$K/broker.key"
[ ! -e "$T/nocache" ] || sl_fail "a refused broker created its store"

# --- (a, b, c) refused clients ----------------------------------------------------
CURVE="--curve-secret $K/broker.key --allow-keys $T/allow"
# shellcheck disable=SC2086
sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 100 $CURVE
grep -q "ZAP self-check passed" "$T/broker.log" || sl_fail "no ZAP self-check"
grep -q "unauthenticated" "$T/broker.log" && sl_fail "CURVE broker warns of plaintext"
ADMIN="--curve-secret $K/admin.key --curve-server $K/broker.pub"
st() { # out.json
	# shellcheck disable=SC2086
	"$BIN/softlabel" status "$BROKER_EP" --json --timeout 10 $ADMIN >"$1" ||
	    sl_fail "status over CURVE failed"
}
for mode in plaintext greeting unknown wrongserver; do
	$DPY "$ROOT/tests/lib/curve_client.py" "$BROKER_EP" $mode "$K/broker.pub" 2 ||
	    sl_fail "$mode client was answered"
done
if "$BIN/softlabel" status "$BROKER_EP" --timeout 2 >/dev/null 2>&1; then
	sl_fail "a plaintext status was answered"
fi
sleep 0.5
st "$T/st1.json"
cat "$T/st1.json"; echo
sl_check "$(sl_json_get "$T/st1.json" "len(d['workers'])") -eq 0" "a refused client became a worker"
sl_check "$(sl_json_get "$T/st1.json" "len(d['teachers'])") -eq 0" "a refused client registered a teacher"
sl_check "$(sl_json_get "$T/st1.json" "d['resets'] + sum(d['rejected'].values())") -eq 0" \
    "a refused client's message reached the protocol logic"
for r in plaintext unknown_key handshake_failed; do
	sl_check "$(sl_json_get "$T/st1.json" "d['auth_refused']['$r']") -ge 1" "no '$r' refusal counted"
done
sl_check "$(sl_json_get "$T/st1.json" "d['auth_refused']['revoked']") -eq 0" "revoked before any reload"
grep -q "refused connection (plaintext)" "$T/broker.log" || sl_fail "plaintext refusal not logged"
# shellcheck disable=SC2086
"$BIN/softlabel" status "$BROKER_EP" --timeout 10 $ADMIN | tee "$T/status.txt"
grep -qE "refused before the protocol \(CURVE\): plaintext=[1-9].* unknown_key=[1-9].* handshake_failed=[1-9]" \
    "$T/status.txt" || sl_fail "softlabel status does not show the refused clients"

# --- (d) the allowed worker labels the dataset --------------------------------------
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/teacher.safetensors" \
    --name small --threads 1 --curve-secret "$K/worker.key" \
    --curve-server "$K/broker.pub" 2>"$T/w.log"
set +e; sl_wait_pid "$W" 60; rc=$?; set -e
sl_check "$rc -eq 0" "allowed worker exit $rc: $(tail -3 "$T/w.log")"
"$BIN/softlabel" verify "$T/cache" >"$T/verify" || sl_fail "verify: $(cat "$T/verify")"
cat "$T/verify"
grep -q "teacher small: 1000 records in 10/10 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "the allowed worker's labels are not all there"
kill "$BROKER_PID"; sl_wait_pid "$BROKER_PID" 10 || true

# --- (f) SIGHUP revokes the worker's key --------------------------------------------
# A slow worker (big teacher, batch 8, one shard of 10000 rows: seconds of
# work) is caught mid-shard by the revocation.
sl_make_big_teacher "$T/big.safetensors"
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 10000 "$T/x2.npy"
BROKER_PORT=$(sl_free_port)
# shellcheck disable=SC2086
sl_start_broker "$T/cache2" "$T/x2.npy" "$T/broker2.log" --shard-rows 10000 $CURVE
sl_bg W1 "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/big.safetensors" \
    --name big --threads 1 --batch 8 --credit 1 --worker-name w1 \
    --curve-secret "$K/worker.key" --curve-server "$K/broker.pub" 2>"$T/w1.log"
sl_wait_log "$T/broker2.log" "worker w1 joined" 30
sleep 1
rm "$T/allow/worker.pub"
kill -HUP "$BROKER_PID"
sl_wait_log "$T/broker2.log" "allow-list reloaded: 1 keys" 10
st "$T/st2.json"
committed=$(sl_json_get "$T/st2.json" "d['committed_results']")
sl_check "$committed -eq 0" "the slow worker finished before the revocation; the test proves nothing"
set +e; sl_wait_pid "$W1" 30; rc=$?; set -e
sl_check "$rc -eq 1" "revoked worker exit $rc, want 1: $(tail -3 "$T/w1.log")"
grep -q "broker refused this worker: key revoked" "$T/w1.log" ||
    sl_fail "the revoked worker was not told: $(tail -3 "$T/w1.log")"
# A new session with the removed key: ZAP refuses it, it never joins.
unknown0=$(sl_json_get "$T/st2.json" "d['auth_refused']['unknown_key']")
sl_bg W2 "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/big.safetensors" \
    --name big --threads 1 --worker-name w2 \
    --curve-secret "$K/worker.key" --curve-server "$K/broker.pub" 2>"$T/w2.log"
sleep 3
kill "$W2" 2>/dev/null || true
grep -q "ready connected" "$T/w2.log" && sl_fail "a removed key got a session"
grep -q "worker w2 joined" "$T/broker2.log" && sl_fail "a removed key joined"
st "$T/st3.json"
cat "$T/st3.json"; echo
sl_check "$(sl_json_get "$T/st3.json" "d['auth_refused']['revoked']") -ge 1" "no revoked refusal counted"
sl_check "$(sl_json_get "$T/st3.json" "d['auth_refused']['unknown_key']") -gt $unknown0" \
    "the removed key's new session was not refused by ZAP"
sl_check "$(sl_json_get "$T/st3.json" "d['committed_results']") -eq $committed" \
    "a result of the revoked session was committed"
sl_check "$(sl_json_get "$T/st3.json" "len(d['workers'])") -eq 0" "a revoked worker is still listed"
sl_check "$(sl_json_get "$T/st3.json" "d['teachers'][0]['leased']") -eq 0" "the revoked worker's lease was kept"
echo "revoked: $(sl_json_get "$T/st3.json" "d['auth_refused']")"

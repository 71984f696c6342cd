#!/bin/sh
# softlabel serve against hostile and unauthenticated readers: bad types,
# bad versions, sample lists over the limit, oversize frames and
# multi-frame requests get ERROR replies (or a dropped connection), never a
# crash, and the server keeps answering; a flood of 300 bad requests is
# answered in full while its log lines are rate-limited; replies are bounded and answered
# as prefixes. With CURVE, an allowed student trains (bit-identical to the
# local run) and a client whose key is not allowed gets nothing back,
# counted and logged; after SIGHUP a removed key is refused on the
# connection it already had.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/train-images-idx3-ubyte.gz" 3000 "$T/x.npy"
sl_subset "$FMNIST/train-labels-idx1-ubyte.gz" 200 "$T/y.npy"
sl_make_teacher "$T/teacher.safetensors"
sl_label_all "$T/cache" "$T/x.npy" "$T/teacher.safetensors" t 3 1

PORT=$(sl_free_port)
EP=tcp://127.0.0.1:$PORT
sl_bg SPID "$BIN/softlabel" serve "$T/cache" --bind "$EP" \
    --max-reply-bytes 1048576 --max-request-bytes 262144 2>>"$T/serve.log"
sl_wait_log "$T/serve.log" " $SPID softlabel-serve INFO ready" 30
# Dense f32 records of 10 classes: 12 + 4 * 10 bytes.
$DPY "$ROOT/tests/lib/serve_client.py" "$EP" 262144 1048576 52 >"$T/client.out" 2>&1 ||
    sl_fail "hostile reader: $(tail -5 "$T/client.out")"
cat "$T/client.out"
kill -0 "$SPID" 2>/dev/null || sl_fail "serve died: $(tail -3 "$T/serve.log")"
grep -q "bad request: " "$T/serve.log" || sl_fail "no bad request logged"
# Remote-caused lines are rate-limited as the broker's: at most 20 a
# 10 s window (every bad request above fell in one or two), then one
# summary line.
sl_wait_log "$T/serve.log" "suppressed [0-9]+ more 'bad request lines' lines" 20
n=$(sl_count "$T/serve.log" "bad request: ")
sl_check "$n -le 40" "$n bad request lines for a flood of 300"
echo "log: $n bad request lines for $(grep -c '' "$T/client.out") client lines, then: $(grep -o "suppressed [0-9]* more" "$T/serve.log" | head -1)"
kill -TERM "$SPID"
set +e; sl_wait_pid "$SPID" 20; rc=$?; set -e
sl_check "$rc -eq 0" "serve exited $rc"

# --- CURVE ------------------------------------------------------------------
K=$T/keys
mkdir -p "$K" "$T/allow"
for n in server student; do
	"$BIN/softlabel" keygen "$K/$n" >/dev/null || sl_fail "keygen $n"
done
cp "$K/student.pub" "$T/allow/"
PORT=$(sl_free_port)
EP=tcp://127.0.0.1:$PORT
sl_bg SPID "$BIN/softlabel" serve "$T/cache" --bind "$EP" \
    --curve-secret "$K/server.key" --allow-keys "$T/allow" 2>>"$T/curve.log"
sl_wait_log "$T/curve.log" " $SPID softlabel-serve INFO ready" 30
grep -q "CURVE on: 1 allowed keys" "$T/curve.log" || sl_fail "no CURVE line: $(cat "$T/curve.log")"
for mode in unknown plaintext; do
	$DPY "$ROOT/tests/lib/curve_client.py" "$EP" "$mode" "$K/server.pub" 2 ||
	    sl_fail "a $mode client got an answer"
done
sl_wait_log "$T/curve.log" "refused connection \(key not on --allow-keys\)" 10
train() { # store out log extra...
	_s=$1 _o=$2 _l=$3; shift 3
	"$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" \
	    --store "$_s" --alpha 0.8 --temperature 2 --arch 784-32-10 \
	    --epochs 2 --batch 64 --seed 2 --threads 1 --out "$_o" "$@" 2>"$_l"
}
train "$T/cache" "$T/local.safetensors" "$T/local.log" || sl_fail "local run failed"
train "$EP" "$T/remote.safetensors" "$T/remote.log" \
    --curve-secret "$K/student.key" --curve-server "$K/server.pub" ||
    sl_fail "the allowed student failed: $(tail -3 "$T/remote.log")"
cmp "$T/local.safetensors" "$T/remote.safetensors" || sl_fail "CURVE run differs"
echo "allowed student over CURVE: bit-identical to the local run"
# The same student with a key not on the list: refused, gives up.
"$BIN/softlabel" keygen "$K/other" >/dev/null
set +e
train "$EP" "$T/other.safetensors" "$T/other.log" --connect-timeout 3 \
    --curve-secret "$K/other.key" --curve-server "$K/server.pub"
rc=$?
set -e
sl_check "$rc -eq 1" "a student with a key not allowed exited $rc: $(tail -2 "$T/other.log")"
grep -q "no server answered within 3 s" "$T/other.log" || sl_fail "$(tail -2 "$T/other.log")"
test ! -e "$T/other.safetensors" || sl_fail "a refused student wrote a model"
echo "student with a key not allowed: refused, exit 1"

# SIGHUP: a key removed from the list is refused on its open connection.
rm -f "$T/flag" "$T/go"
sl_bg RV $DPY "$ROOT/tests/lib/serve_revoke.py" "$EP" "$K/student.key" \
    "$K/server.pub" "$T/flag" "$T/go"
i=0
while [ ! -e "$T/flag" ]; do
	i=$((i + 1)); [ "$i" -gt 300 ] && sl_fail "the revoke client never got its first answer"
	kill -0 "$RV" 2>/dev/null || sl_fail "the revoke client ended early"
	sleep 0.1
done
rm "$T/allow/student.pub"
kill -HUP "$SPID"
sl_wait_log "$T/curve.log" "allow-list reloaded: 0 keys" 10
touch "$T/go"
set +e; sl_wait_pid "$RV" 30; rc=$?; set -e
sl_check "$rc -eq 0" "the revoked key was still answered (client exit $rc)"
grep -q "refused request: key .* is no longer on --allow-keys" "$T/curve.log" ||
    sl_fail "no revocation line: $(tail -3 "$T/curve.log")"
echo "SIGHUP: a key removed from --allow-keys is refused on its open connection"
kill -TERM "$SPID"
set +e; sl_wait_pid "$SPID" 20; rc=$?; set -e
sl_check "$rc -eq 0" "serve exited $rc"

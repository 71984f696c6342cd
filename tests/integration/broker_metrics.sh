#!/bin/sh
# softlabel-broker --metrics-bind: Prometheus text over HTTP, scraped with
# a real HTTP client (Python's urllib, tests/lib/prom_check.py).
# 1. Bad addresses stop the start: one line, exit 2 (malformed) or 1 (the
#    port is taken), and no cache directory created.
# 2. A CURVE broker: a plaintext (a raw ZMTP NULL greeting: deterministic,
#    see curve_client.py) and an unknown-key client are refused, an
#    allowed client sends a malformed message, a slow worker labels the
#    dataset. Mid-job the scrape lists that worker (last seen, leases);
#    once the job stands still every number equals `softlabel status`
#    (shards by state, samples, commits, rejections and auth refusals by
#    reason) and the commit histogram counts every commit.
# 3. After the broker exits, nothing listens on the metrics port.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 1000 "$T/x.npy"

# --- 1. bad --metrics-bind ------------------------------------------------------
refused() { # want-rc pattern addr
	set +e
	"$BIN/softlabel-broker" --store "$T/nocache" --dataset "$T/x.npy" \
	    --bind "tcp://127.0.0.1:$(sl_free_port)" --metrics-bind "$3" \
	    2>"$T/refused.log"
	_rc=$?
	set -e
	sl_check "$_rc -eq $1" "--metrics-bind '$3': exit $_rc, want $1: $(cat "$T/refused.log")"
	grep -qE "$2" "$T/refused.log" ||
	    sl_fail "--metrics-bind '$3': no '$2' in: $(cat "$T/refused.log")"
	[ ! -e "$T/nocache" ] || sl_fail "--metrics-bind '$3' left $T/nocache behind"
	echo "--metrics-bind '$3': exit $_rc: $(grep -E "$2" "$T/refused.log")"
}
refused 2 "^softlabel-broker: --metrics-bind: '9100': want HOST:PORT" 9100
refused 2 "^softlabel-broker: --metrics-bind: '127.0.0.1:65536': port '65536' is not a number in 0-65535" 127.0.0.1:65536
refused 2 "^softlabel-broker: --metrics-bind: ':9100': no host" :9100
refused 2 "^softlabel-broker: --metrics-bind: 'no-such-host.invalid:9100': host 'no-such-host.invalid'" no-such-host.invalid:9100
[ "$(wc -l <"$T/refused.log")" -eq 1 ] || sl_fail "more than one line: $(cat "$T/refused.log")"
# A port that is taken: held by a listener of ours for at most 60 s.
HELD=$(sl_free_port)
sl_bg HOLDER $DPY -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1)
open(sys.argv[2], "w").close(); time.sleep(60)' "$HELD" "$T/held"
i=0; while [ ! -e "$T/held" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
refused 1 "ERROR --metrics-bind 127.0.0.1:$HELD: Address already in use" "127.0.0.1:$HELD"
kill "$HOLDER"

# --- 2. a job, scraped ----------------------------------------------------------------
K=$T/keys; mkdir -p "$K" "$T/allow"
for n in broker worker admin; do
	"$BIN/softlabel" keygen "$K/$n" >/dev/null || sl_fail "keygen $n"
done
cp "$K/worker.pub" "$K/admin.pub" "$T/allow/"
ADMIN="--curve-secret $K/admin.key --curve-server $K/broker.pub"
sl_make_big_teacher "$T/big.safetensors"
MPORT=$(sl_free_port)
URL=http://127.0.0.1:$MPORT/metrics
sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 100 \
    --metrics-bind "127.0.0.1:$MPORT" --curve-secret "$K/broker.key" \
    --allow-keys "$T/allow"
grep -q "metrics on http://127.0.0.1:$MPORT/metrics (port $MPORT)" "$T/broker.log" ||
    sl_fail "no metrics line in the log: $(head -5 "$T/broker.log")"
$DPY "$ROOT/tests/lib/prom_check.py" "$URL" format || sl_fail "the first scrape"
for mode in greeting unknown; do
	$DPY "$ROOT/tests/lib/curve_client.py" "$BROKER_EP" $mode "$K/broker.pub" 1 ||
	    sl_fail "$mode client was answered"
done
# An allowed client's malformed message: rejected, counted as malformed.
$DPY - "$BROKER_EP" "$K/admin" "$K/broker.pub" <<'PY' || sl_fail "malformed client"
import sys, zmq
ep, me, server = sys.argv[1], sys.argv[2], sys.argv[3]
s = zmq.Context().socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 2000)
s.curve_serverkey = open(server, "rb").read().strip()
s.curve_publickey = open(me + ".pub", "rb").read().strip()
s.curve_secretkey = open(me + ".key", "rb").read().strip()
s.connect(ep)
s.send(b"\xc1 not msgpack")
s.poll(1000)
s.close()
PY
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/big.safetensors" \
    --name big --threads 1 --batch 8 --worker-name slow-1 \
    --curve-secret "$K/worker.key" --curve-server "$K/broker.pub" 2>"$T/w.log"
sl_wait_log "$T/broker.log" "worker slow-1 joined" 30
$DPY "$ROOT/tests/lib/prom_check.py" "$URL" worker slow-1 big ||
    sl_fail "mid-job scrape"
set +e; sl_wait_pid "$W" 120; rc=$?; set -e
sl_check "$rc -eq 0" "worker exit $rc: $(tail -3 "$T/w.log")"
# shellcheck disable=SC2086
"$BIN/softlabel" status "$BROKER_EP" --json --timeout 10 $ADMIN >"$T/st.json" ||
    sl_fail "status failed"
sl_check "$(sl_json_get "$T/st.json" "d['teachers'][0]['done']") -eq 10" \
    "the job is not done: $(cat "$T/st.json")"
sl_check "$(sl_json_get "$T/st.json" "d['rejected']['malformed']") -ge 1" \
    "the malformed message was not counted: $(cat "$T/st.json")"
sl_check "$(sl_json_get "$T/st.json" "d['auth_refused']['plaintext'] * d['auth_refused']['unknown_key']") -ge 1" \
    "the refused clients were not counted: $(cat "$T/st.json")"
$DPY "$ROOT/tests/lib/prom_check.py" "$URL" status "$T/st.json" ||
    sl_fail "metrics differ from status"
$DPY "$ROOT/tests/lib/prom_check.py" "$URL" format
# What Prometheus would see, for the log.
$DPY -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' "$URL" |
    grep -E '^softlabel_(shards|samples_committed_total|commit_duration_seconds_count|auth_refused_total|rejected_total\{reason="malformed")'

# --- 3. gone with the broker ---------------------------------------------------------
kill "$BROKER_PID"
set +e; sl_wait_pid "$BROKER_PID" 30; rc=$?; set -e
sl_check "$rc -eq 0" "broker exit $rc after SIGTERM: $(tail -3 "$T/broker.log")"
if $DPY -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=5)' "$URL" 2>/dev/null; then
	sl_fail "$URL still answers after the broker exited"
fi
echo "broker_metrics: ok"

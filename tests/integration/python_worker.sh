#!/bin/sh
# softlabel.worker: a PyTorch teacher (tests/lib/torch_teacher.py, the
# 784-1200-1200-10 MLP loaded into torch from its safetensors file) labels
# through the real broker beside the C softlabel-teacher, as one teacher.
#   A. kill -9 of the Python worker mid-job (it holds leases: they expire
#      and go to the others); a second Python worker joins.
#   B. kill -9 of the C worker mid-job, then kill -9 of the broker mid-job
#      and a restart: the Python worker reconnects, says HELLO with what it
#      holds, resends unacknowledged results and finishes the job.
#   C. top-k and f16 records written by the Python encoder pass the
#      broker's checks and equal the C worker's within their rounding.
#   D. CURVE: the Python worker with an allow-listed key labels a CURVE
#      broker, reading rows from its local copy of the dataset.
#   E. a Python teacher stuck inside f keeps heartbeating without renewing
#      its leases, which go to the C worker; another T is refused (exit 1).
#   F. SIGTERM mid-job: the Python worker finishes the shards it had, waits
#      for their acknowledgements and exits 0 (tasks leased after the signal
#      are declined); a local dataset with other samples is refused.
#   G. every worker slot taken: the Python worker is told BUSY, retries
#      with back-off, and labels once the squatters leave; no broker at all:
#      it gives up after its connect timeout (exit 1); a bad name is
#      refused before connecting.
# After each: one record per sample (verify, coverage), each equal to
# PyTorch's softmax(z/T) within 1e-5 (f32), and shards from both kinds of
# worker.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
$DPY -c 'import torch, zmq' 2>/dev/null || { echo "SKIP: python3-torch or python3-zmq missing"; exit 77; }
export PYTHONPATH="$ROOT/common/python"
sl_subset "$FMNIST/train-images-idx3-ubyte.gz" 30000 "$T/x.npy"
sl_make_big_teacher "$T/big.safetensors"
M=$T/big.safetensors
pyw() { # var log name T encoding worker-name [curve keys]
	_v=$1 _l=$2; shift 2
	sl_bg "$_v" $DPY "$ROOT/tests/lib/torch_teacher.py" "$BROKER_EP" "$M" "$@" 2>>"$_l"
}
cw() { # var log name T worker-name extra...
	_v=$1 _l=$2 _n=$3 _t=$4 _w=$5; shift 5
	sl_bg "$_v" "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$M" --name "$_n" \
	    --temperature "$_t" --worker-name "$_w" --threads 1 --batch 250 "$@" 2>>"$_l"
}
waitfor() { # teacher worker n
	$DPY "$ROOT/tests/lib/cache_wait.py" "$T/cache" "$1" "$2" "$3" 120 ||
	    sl_fail "waiting for $2 to store $3 shards of $1: the job ended first or timed out"
}
finish() { # what
	set +e; sl_wait_pid "$BROKER_PID" 300; _rc=$?; set -e
	[ "$_rc" -eq 0 ] || sl_fail "$1: broker ended with $_rc: $(tail -3 "$BROKER_LOG")"
}
workers_of() { # teacher
	$DPY -c 'import softlabel, sys; c = softlabel.Cache(sys.argv[1])
print(" ".join(sorted({v["worker"] for v in c.shards(sys.argv[2]).values()})))' "$T/cache" "$1"
}

# --- A: kill -9 the Python worker mid-job ---------------------------------------
BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 250 --lease-timeout 2 --exit-when-done
pyw PY1 "$T/py1.log" big 4 f32 py-1
sl_wait_log "$T/py1.log" "INFO ready .*teacher=big" 60
cw C1 "$T/c1.log" big 4 c-1
waitfor big py-1 2
kill -9 "$PY1"
echo "A: killed the Python worker py-1 (pid $PY1) mid-job"
pyw PY2 "$T/py2.log" big 4 f32 py-2
finish "A"
grep -q "lease expired: teacher big shard [0-9]* worker py-1" "$T/broker.log" ||
    sl_fail "A: no lease of the killed py-1 expired: it was not killed mid-shard"
"$BIN/softlabel" verify "$T/cache" --teacher big >"$T/verify" || sl_fail "A: verify: $(cat "$T/verify")"
$DPY "$ROOT/tests/lib/torch_reference.py" "$T/cache" big "$M" "$T/x.npy" 4 1e-5 || sl_fail "A: cache not exact"
w=$(workers_of big); echo "A: shards stored by: $w"
case " $w " in *" py-1 "*) ;; *) sl_fail "A: no shard from py-1" ;; esac
case " $w " in *" c-1 "*) ;; *) sl_fail "A: no shard from c-1" ;; esac
sl_wait_pid "$C1" 30 || true; sl_wait_pid "$PY2" 30 || true

# --- B: kill -9 the C worker, then the broker, mid-job ---------------------------
sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --lease-timeout 2 --exit-when-done
pyw PY3 "$T/py3.log" big-t2 2 f32 py-3
sl_wait_log "$T/py3.log" "INFO ready .*teacher=big-t2" 60
cw C2 "$T/c2.log" big-t2 2 c-2
waitfor big-t2 c-2 2
kill -9 "$C2"
echo "B: killed the C worker c-2 (pid $C2) mid-job"
waitfor big-t2 py-3 4
kill -9 "$BROKER_PID"
echo "B: killed the broker (pid $BROKER_PID) mid-job"
sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --lease-timeout 2 --exit-when-done
finish "B"
set +e; sl_wait_pid "$PY3" 60; rc=$?; set -e
sl_check "$rc -eq 0" "B: the Python worker ended with $rc: $(tail -3 "$T/py3.log")"
sl_check "$(sl_count "$T/py3.log" 'INFO ready ') -ge 2" "B: py-3 did not reconnect to the new broker"
grep "INFO ready " "$T/py3.log" | sed 's/.* ready /B: py-3 ready /'
"$BIN/softlabel" verify "$T/cache" --teacher big-t2 >"$T/verify" || sl_fail "B: verify: $(cat "$T/verify")"
$DPY "$ROOT/tests/lib/torch_reference.py" "$T/cache" big-t2 "$M" "$T/x.npy" 2 1e-5 || sl_fail "B: cache not exact"
w=$(workers_of big-t2); echo "B: shards stored by: $w"
case " $w " in *" c-2 "*) ;; *) sl_fail "B: no shard from c-2" ;; esac
case " $w " in *" py-3 "*) ;; *) sl_fail "B: no shard from py-3" ;; esac

# --- C: top-k and f16 from the Python encoder, against the C worker's ---------
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 3000 "$T/small.npy"
# One broker and cache per encoding, two teacher names (py, c) labeling
# every row each; the broker is stopped once both are complete.
for e in topk:3 f16; do
	n=$(echo "$e" | tr -d :)
	BROKER_PORT=$(sl_free_port)
	sl_start_broker "$T/enc-$n" "$T/small.npy" "$T/broker-$n.log" --shard-rows 500
	pyw P "$T/py-$n.log" py 2 "$e" py-enc
	cw C "$T/c-$n.log" c 2 c-enc --encoding "$e"
	for w in py:py-enc c:c-enc; do
		$DPY "$ROOT/tests/lib/cache_wait.py" "$T/enc-$n" "${w%%:*}" "${w#*:}" 6 120 ||
		    sl_fail "C ($e): ${w#*:} did not label all 6 shards"
	done
	kill -TERM "$BROKER_PID"
	finish "C ($e)"
	sl_check "$(sl_count "$T/broker-$n.log" 'rejected') -eq 0" "C: the broker rejected records: $(grep rejected "$T/broker-$n.log" | head -2)"
	"$BIN/softlabel" verify "$T/enc-$n" >"$T/verify" || sl_fail "C: verify: $(cat "$T/verify")"
	$DPY - "$T/enc-$n" "$n" <<'PY' || sl_fail "C: Python and C records differ ($e)"
import sys, numpy as np, softlabel
c = softlabel.Cache(sys.argv[1])
a, b = c.export("py"), c.export("c")
assert not np.isnan(a).any() and not np.isnan(b).any(), "rows missing"
err = float(np.abs(a - b).max())
same = float(np.mean([c.record(s, "py") == c.record(s, "c") for s in range(3000)]))
print(f"C: {sys.argv[2]}: Python and C records agree within {err:.2g} "
      f"({same:.1%} byte-identical)")
assert err <= 2e-3 and same > 0.5, (err, same)
PY
done

# --- D: CURVE ---------------------------------------------------------------------
mkdir "$T/keys" "$T/allow"
(cd "$T/keys" && "$BIN/softlabel" keygen broker >/dev/null && "$BIN/softlabel" keygen py >/dev/null)
cp "$T/keys/py.pub" "$T/allow/"
BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/curve" "$T/small.npy" "$T/broker-curve.log" --shard-rows 500 --exit-when-done \
    --curve-secret "$T/keys/broker.key" --allow-keys "$T/allow"
pyw P "$T/py-curve.log" cur 2 f32 py-curve --curve-secret "$T/keys/py.key" \
    --curve-server "$T/keys/broker.pub" --dataset "$T/small.npy"
finish "D"
grep -q "worker py-curve joined for teacher cur (local dataset" "$T/broker-curve.log" ||
    sl_fail "D: the Python worker's local dataset was not used"
$DPY "$ROOT/tests/lib/torch_reference.py" "$T/curve" cur "$M" "$T/small.npy" 2 1e-5 || sl_fail "D: cache not exact"
# --- E: a Python teacher stuck inside f, and a refused one --------------------------
# Its heartbeats go on (f runs on its own thread) but no longer renew its
# leases: the broker sees it alive but stalled and re-leases its shards to
# the C worker. A worker claiming the teacher with another T is refused.
BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/stall" "$T/small.npy" "$T/broker-stall.log" --shard-rows 500 \
    --lease-timeout 2 --exit-when-done
SL_TEST_STALL_S=8 pyw P "$T/py-stuck.log" stall 2 f32 py-stuck
sl_wait_log "$T/py-stuck.log" "INFO ready .*teacher=stall" 60
pyw PB "$T/py-bad.log" stall 5 f32 py-bad
set +e; sl_wait_pid "$PB" 60; rc=$?; set -e
sl_check "$rc -eq 1" "E: a worker with another temperature exited $rc, not 1"
grep -q "ERROR broker refused this worker: teacher 'stall' is registered with temperature 2" \
    "$T/py-bad.log" || sl_fail "E: no clear refusal: $(tail -2 "$T/py-bad.log")"
cw C "$T/c-stall.log" stall 2 c-stall
finish "E"
grep -q "worker py-stuck is heard from but did not renew its lease" "$T/broker-stall.log" ||
    sl_fail "E: the broker did not see py-stuck as alive and stalled: $(grep -E 'expired|stalled' "$T/broker-stall.log" | head -3)"
grep -q "WARN the teacher has finished no batch" "$T/py-stuck.log" ||
    sl_fail "E: py-stuck did not say its teacher is stalled"
$DPY "$ROOT/tests/lib/torch_reference.py" "$T/stall" stall "$M" "$T/small.npy" 2 1e-5 || sl_fail "E: cache not exact"
echo "E: the stuck Python teacher's leases went to the C worker; the refused one exited 1"
# --- F: SIGTERM, and a local dataset that is not the job's ------------------------
BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/term" "$T/x.npy" "$T/broker-term.log" --shard-rows 250 --lease-timeout 2
pyw PT "$T/py-term.log" term 2 f32 py-term
$DPY "$ROOT/tests/lib/cache_wait.py" "$T/term" term py-term 2 120 ||
    sl_fail "F: py-term did not store 2 shards"
kill -TERM "$PT"
set +e; sl_wait_pid "$PT" 30; rc=$?; set -e
sl_check "$rc -eq 0" "F: after SIGTERM the Python worker exited $rc (0: every result it computed acknowledged): $(tail -2 "$T/py-term.log")"
grep -q "INFO stopping: finishing" "$T/py-term.log" || sl_fail "F: no orderly stop logged"
$DPY -c 'import sys, softlabel
c = softlabel.Cache(sys.argv[1])
sh = c.shards("term")
print(f"F: py-term stopped after {len(sh)} of {c.nshards} shards, all stored")
assert 2 <= len(sh) < c.nshards and {v["worker"] for v in sh.values()} == {"py-term"}' "$T/term" ||
    sl_fail "F: the stop was not mid-job"
$DPY -c 'import sys, numpy as np
x = np.load(sys.argv[1]); x[0, 0, 0] ^= 1; np.save(sys.argv[2], x)' "$T/x.npy" "$T/other.npy"
pyw PO "$T/py-other.log" term 2 f32 py-other --dataset "$T/other.npy"
set +e; sl_wait_pid "$PO" 60; rc=$?; set -e
sl_check "$rc -eq 1" "F: a worker with another dataset exited $rc, not 1"
grep -q "refused this worker: the worker's --dataset has another fingerprint" "$T/py-other.log" ||
    sl_fail "F: no clear refusal: $(tail -1 "$T/py-other.log")"
echo "F: SIGTERM stopped the Python worker cleanly; another local dataset was refused"
# --- G: BUSY, no broker, bad names --------------------------------------------------
BROKER_PORT=$(sl_free_port)
# (No --exit-when-done: the squatters' teacher never finishes.)
sl_start_broker "$T/busy" "$T/small.npy" "$T/broker-busy.log" --shard-rows 500 --max-workers 2
sl_bg SQ $DPY "$ROOT/tests/lib/idle_client.py" hello "$BROKER_EP" 2 "$T/stop-squat" 120 \
    >"$T/squat.out" 2>&1
sl_wait_log "$T/squat.out" "2 sessions welcomed" 30
# --connect-timeout 2: BUSY is an answer, so the worker waits on past it;
# six BUSY answers are at least 100+200+...+3200 ms of back-off apart.
pyw PBZ "$T/py-busy.log" busy 2 f32 py-busy --connect-timeout 2
sl_wait_log "$T/py-busy.log" "WARN broker busy: every worker slot of the broker is taken; saying HELLO again in" 60
i=0
while [ "$(sl_count "$T/py-busy.log" "broker busy")" -lt 6 ] && kill -0 "$PBZ" 2>/dev/null &&
    [ "$i" -lt 300 ]; do
	i=$((i + 1)); sleep 0.1
done
sl_check "$(sl_count "$T/py-busy.log" "broker busy") -ge 6" "G: the Python worker did not retry after BUSY: $(tail -2 "$T/py-busy.log")"
kill -0 "$PBZ" 2>/dev/null || sl_fail "G: the Python worker exited on BUSY: $(tail -2 "$T/py-busy.log")"
touch "$T/stop-squat"
set +e; sl_wait_pid "$PBZ" 120; rc=$?; set -e
sl_check "$rc -eq 0" "G: the Python worker after BUSY exited $rc: $(tail -2 "$T/py-busy.log")"
kill -TERM "$BROKER_PID"
finish "G"
$DPY "$ROOT/tests/lib/torch_reference.py" "$T/busy" busy "$M" "$T/small.npy" 2 1e-5 || sl_fail "G: cache not exact"
NOBODY=tcp://127.0.0.1:$(sl_free_port)
set +e
$DPY "$ROOT/tests/lib/torch_teacher.py" "$NOBODY" "$M" t 2 f32 py-alone --connect-timeout 5 2>"$T/alone.log"
rc=$?
$DPY "$ROOT/tests/lib/torch_teacher.py" "$NOBODY" "$M" "bad name" 2 f32 w 2>"$T/name.log"
rc2=$?
set -e
sl_check "$rc -eq 1" "G: without a broker the Python worker exited $rc, not 1"
grep -q "INFO no broker answers at $NOBODY yet" "$T/alone.log" || sl_fail "G: no 'no broker yet' line"
grep -q "ERROR no broker answered at $NOBODY within 5 s" "$T/alone.log" ||
    sl_fail "G: no clear give-up: $(tail -1 "$T/alone.log")"
sl_check "$rc2 -ne 0" "G: a teacher name with a space was accepted"
grep -q "teacher name 'bad name' has ' ' at 3: names take A-Z a-z 0-9" "$T/name.log" ||
    sl_fail "G: no clear name error: $(tail -1 "$T/name.log")"
echo "G: BUSY retried, no broker given up on, a bad name refused"
echo "softlabel.worker labels beside C workers through kills of workers and the broker, exactly"

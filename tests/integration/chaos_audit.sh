#!/bin/sh
# A chaos run with exact accounting (issue 15). 200,000 rows of 16 bytes,
# a 16-512-512-10 teacher (small rows; enough work that kills land mid-job), shards of 1,000 rows, --audit 0.05. Workers:
# three honest C workers, a liar (the real teacher's name and model
# SHA-256, confident garbage: tests/lib/torch_teacher.py SL_TEST_LIE=1)
# and a worker whose teacher hangs in its first batch while its heartbeats
# go on (SL_TEST_STALL_S). For CHAOS_ROUNDS rounds (default 3; make bench
# runs 12), at seeded random times (CHAOS_SEED, default 1), kill -9 the
# broker or an honest worker and start it again (the broker on the same
# store and port); the liar is started again whenever it has exited
# (refused). Then the job runs to its end without kills (bounded), and
# tests/lib/chaos_check.py counts lost, duplicated, unexpected and
# mismatched records (against softlabel-student --evaluate, the same
# tiling): all must be 0. The liar must have been refused at least once.
. "$(dirname "$0")/../lib/common.sh"
$DPY -c 'import torch, zmq, lmdb' 2>/dev/null || { echo "SKIP: python3-torch, -zmq or -lmdb missing"; exit 77; }
export PYTHONPATH="$ROOT/common/python${PYTHONPATH:+:$PYTHONPATH}"
sl_tmpdir; T=$SL_TMP
ROUNDS=${CHAOS_ROUNDS:-3}
SEED=${CHAOS_SEED:-1}
ROWS=200000

$DPY - "$T" "$ROWS" "$SEED" <<'PY'
import sys, numpy as np
d, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = np.random.default_rng(seed)
x = r.integers(0, 256, (n, 16), dtype=np.uint8)
np.save(f"{d}/x.npy", x)
np.save(f"{d}/tx.npy", x[:5000])
np.save(f"{d}/ty.npy", (x[:5000, 0] // 26).astype(np.int64))
# the seeded schedule: per round a delay (ms) and a victim
# (0: the broker, 1..3: an honest worker)
with open(f"{d}/plan", "w") as f:
    for i in range(64):
        f.write(f"{int(r.integers(300, 1500))} {int(r.integers(0, 4))}\n")
PY
"$BIN/softlabel-student" --dataset "$T/tx.npy" --labels "$T/ty.npy" --arch 16-512-512-10 \
    --epochs 1 --out "$T/t.safetensors" 2>"$T/train.log" || sl_fail "teacher: $(tail -2 "$T/train.log")"
M=$T/t.safetensors
SHA=$(sha256sum "$M" | cut -d' ' -f1)
BROKER_PORT=$(sl_free_port)

broker() {
	sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 1000 \
	    --teacher "real=$SHA" --audit 0.05 --audit-seed "$SEED" --lease-timeout 3
}
honest() { # n
	sl_bg _p "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$M" --name real \
	    --worker-name "w$1" --threads 1 --batch 250 --credit 2 --log-level debug \
	    2>>"$T/w$1.log"
	eval "W$1=\$_p"
}
py_worker() { # var name env... : a Python worker with extra environment
	_v=$1 _n=$2; shift 2
	sl_bg "$_v" env "$@" $DPY "$ROOT/tests/lib/torch_teacher.py" "$BROKER_EP" "$M" real 1 f32 \
	    "$_n" --connect-timeout 60 2>>"$T/$_n.log"
}

broker
# The Python workers first (they take seconds to import torch), and the
# liar's first results stored, then the honest ones.
py_worker LIAR liar SL_TEST_LIE=1 SL_TEST_LIE_DELAY_S=0.02
py_worker HANG hang SL_TEST_STALL_S=100000
sl_wait_log "$T/broker.log" "worker liar joined" 60
sl_wait_log "$T/broker.log" "worker hang joined" 60
i=0
while [ "$(sl_status_json "$BROKER_EP" >"$T/st0.json" && sl_json_get "$T/st0.json" \
    'sum(w["results"] for w in d["workers"] if w["name"] == "liar") >= 3')" = False ]; do
	i=$((i + 1)); [ "$i" -le 600 ] || sl_fail "the liar stored less than 3 results in 60 s"
	sleep 0.1
done
for n in 1 2 3; do honest $n; done
broker_kills=0 worker_kills=0 liar_starts=1 r=0
while [ "$r" -lt "$ROUNDS" ]; do
	r=$((r + 1))
	set -- $(sed -n "${r}p" "$T/plan")
	sleep "$(awk -v ms="$1" 'BEGIN { printf "%.3f", ms / 1000 }')"
	if [ "$2" -eq 0 ]; then
		kill -9 "$BROKER_PID"; sl_wait_pid "$BROKER_PID" 10 || true
		broker_kills=$((broker_kills + 1))
		broker
	else
		eval "_p=\$W$2"
		kill -9 "$_p" 2>/dev/null || true # it may have finished
		sl_wait_pid "$_p" 10 || true
		worker_kills=$((worker_kills + 1))
		honest "$2"
	fi
	if ! kill -0 "$LIAR" 2>/dev/null; then
		py_worker LIAR liar SL_TEST_LIE=1 SL_TEST_LIE_DELAY_S=0.02
		liar_starts=$((liar_starts + 1))
	fi
	echo "round $r: after $1 ms killed $([ "$2" -eq 0 ] && echo broker || echo "worker w$2")"
done
# The end: no more kills; every shard done, no audit open or disputed.
i=0
while :; do
	if sl_status_json "$BROKER_EP" >"$T/st.json" 2>/dev/null &&
	    [ "$(sl_json_get "$T/st.json" 'd["teachers"][0]["done"] == d["shards"] and d["audit"]["open"] == 0')" = True ]; then
		break
	fi
	i=$((i + 1)); [ "$i" -le 1200 ] || sl_fail "the job did not end within 120 s: $(cat "$T/st.json")"
	sleep 0.1
done
refused=$(sl_count "$T/broker.log" "audit: worker liar \(name liar\) proven wrong")
kill "$BROKER_PID"; sl_wait_pid "$BROKER_PID" 30 || sl_fail "broker did not stop"
for p in $W1 $W2 $W3 $HANG $LIAR; do kill -9 "$p" 2>/dev/null || true; done
echo "rounds $ROUNDS (seed $SEED): $broker_kills broker kills, $worker_kills worker kills, liar started $liar_starts times, refused $refused times"
sl_check "$refused -ge 1" "the liar was never refused: $(grep 'audit' "$T/broker.log" | tail -3)"
if grep -q "proven wrong" "$T/broker.log" && grep "proven wrong" "$T/broker.log" | grep -vq "worker liar "; then
	sl_fail "an honest worker was refused: $(grep 'proven wrong' "$T/broker.log" | grep -v 'worker liar ')"
fi
"$BIN/softlabel-student" --evaluate --model "$M" --test-data "$T/x.npy" --probs "$T/direct.npy" \
    --temperature 1 --threads 1 --batch 250 2>/dev/null || sl_fail "direct evaluation failed"
$DPY "$ROOT/tests/lib/chaos_check.py" "$T/cache" real "$ROWS" "$T/direct.npy" "$T/broker.log" \
    "$T/w1.log,$T/w2.log,$T/w3.log" || sl_fail "the accounting is not exact"
"$BIN/softlabel" verify "$T/cache" >/dev/null || sl_fail "verify failed"
echo "PASS chaos_audit"

#!/bin/sh
# softlabel status EP --watch [S]:
# 1. bad intervals and --watch without status: exit 2, one line;
# 2. into a file while a slow worker labels 4,000 rows: one line per
#    refresh (UTC time, the teacher's shards done, rate, workers,
#    rejections), the counts never going back, a line mid-job, the last
#    40/40; when the broker exits it says so and exits 0;
# 3. Ctrl-C (SIGINT) ends it at once with exit 0; a broker killed before
#    its job is done ends it (exit 0), saying shards were left; a broker
#    that never answers: exit 1;
# 4. on a terminal (a pty): the screen is cleared and redrawn with the full
#    status each refresh.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 4000 "$T/x.npy"

# --- 1. usage ------------------------------------------------------------------------
for bad in "status tcp://127.0.0.1:1 --watch x" "status tcp://127.0.0.1:1 --watch 0" \
    "status --watch 99999 tcp://127.0.0.1:1" "inspect $T --watch"; do
	set +e
	# shellcheck disable=SC2086
	"$BIN/softlabel" $bad >"$T/out" 2>"$T/err"; rc=$?
	set -e
	sl_check "$rc -eq 2" "softlabel $bad: exit $rc, want 2: $(cat "$T/err")"
	sl_check "$(wc -l <"$T/err") -eq 1" "softlabel $bad: not one line: $(cat "$T/err")"
	grep -q -- "--watch" "$T/err" || sl_fail "softlabel $bad: $(cat "$T/err")"
	echo "softlabel $bad: exit 2: $(cat "$T/err")"
done

# --- 2. a job watched into a file ------------------------------------------------------
# The broker stays up after the job (no --exit-when-done), so the watch
# sees the end; then SIGTERM, and the watch ends by itself.
sl_make_big_teacher "$T/big.safetensors"
sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 100
sl_bg WATCH "$BIN/softlabel" status "$BROKER_EP" --watch 0.2 --timeout 2 \
    >"$T/watch.out" 2>"$T/watch.err"
sl_bg W "$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/big.safetensors" \
    --name big --threads 1 --batch 8 --worker-name slow 2>"$T/w.log"
set +e; sl_wait_pid "$W" 180; rc=$?; set -e
sl_check "$rc -eq 0" "worker exit $rc: $(tail -3 "$T/w.log")"
i=0; while ! tail -n 1 "$T/watch.out" | grep -q " 40/40 " && [ $i -lt 100 ]; do
	sleep 0.1; i=$((i + 1))
done
kill "$BROKER_PID"
set +e; sl_wait_pid "$BROKER_PID" 30; rc=$?; set -e
sl_check "$rc -eq 0" "broker exit $rc: $(tail -3 "$T/broker.log")"
set +e; sl_wait_pid "$WATCH" 30; rc=$?; set -e
sl_check "$rc -eq 0" "watch exit $rc after the broker went: $(cat "$T/watch.err")"
grep -q "stopped answering after [0-9]* refreshes; its job was done" "$T/watch.err" ||
    sl_fail "watch did not say the broker went: $(cat "$T/watch.err")"
head -3 "$T/watch.out"; echo ...; tail -2 "$T/watch.out"
$DPY - "$T/watch.out" <<'PY' || sl_fail "the watch lines"
import re, sys
lines = open(sys.argv[1]).read().splitlines()
pat = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ( no teacher yet| big (\d+)/40 "
                 r"shards \d+\.\d% \d+ samples/s( ETA \d+:\d\d)?); workers [01]; "
                 r"rejected 0$")
done = []
for l in lines:
    m = pat.match(l)
    assert m, f"line not in the form: {l!r}"
    if m.group(2) is not None:
        done.append(int(m.group(2)))
assert len(lines) >= 3, f"{len(lines)} refreshes"
assert done == sorted(done), f"done went back: {done}"
assert any(0 < d < 40 for d in done), f"no line mid-job: {done}"
assert done[-1] == 40, f"last line says {done[-1]}/40"
print(f"{len(lines)} lines, one per refresh; done {done[0]} .. {done[-1]}")
PY

# --- 3. Ctrl-C, and a broker that dies -----------------------------------------------
BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/cache2" "$T/x.npy" "$T/broker2.log" --shard-rows 100
sl_bg WATCH "$BIN/softlabel" status "$BROKER_EP" --watch 0.2 --timeout 2 \
    >"$T/watch2.out" 2>"$T/watch2.err"
i=0; while [ "$(wc -l <"$T/watch2.out")" -lt 2 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -INT "$WATCH"
set +e; sl_wait_pid "$WATCH" 10; rc=$?; set -e
sl_check "$rc -eq 0" "watch exit $rc after SIGINT: $(cat "$T/watch2.err")"
sl_check "$(wc -l <"$T/watch2.out") -ge 2" "no lines before SIGINT"
echo "Ctrl-C: exit 0 after $(wc -l <"$T/watch2.out") lines"
sl_bg WATCH "$BIN/softlabel" status "$BROKER_EP" --watch 0.2 --timeout 2 \
    >"$T/watch3.out" 2>"$T/watch3.err"
i=0; while [ "$(wc -l <"$T/watch3.out")" -lt 1 ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
kill -9 "$BROKER_PID"
set +e; sl_wait_pid "$WATCH" 20; rc=$?; set -e
sl_check "$rc -eq 0" "watch exit $rc after the broker died mid-job: $(cat "$T/watch3.err")"
grep -q "stopped answering after [0-9]* refreshes; the last status had shards left" "$T/watch3.err" ||
    sl_fail "watch: $(cat "$T/watch3.err")"
echo "broker killed: $(cat "$T/watch3.err")"
set +e
"$BIN/softlabel" status "$BROKER_EP" --watch 0.2 --timeout 1 >/dev/null 2>"$T/watch4.err"; rc=$?
set -e
sl_check "$rc -eq 1" "watch of no broker: exit $rc: $(cat "$T/watch4.err")"
grep -q "no answer from $BROKER_EP in 1 s" "$T/watch4.err" || sl_fail "$(cat "$T/watch4.err")"

# --- 4. on a terminal ------------------------------------------------------------------
BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/cache2" "$T/x.npy" "$T/broker3.log"
set +e
$DPY "$ROOT/tests/lib/watch_tty.py" 1.5 "$T/tty.out" "$BIN/softlabel" status \
    "$BROKER_EP" --watch 0.2 --timeout 2; rc=$?
set -e
sl_check "$rc -eq 0" "watch on a terminal: exit $rc: $(tail -c 300 "$T/tty.out")"
$DPY - "$T/tty.out" <<'PY' || sl_fail "the terminal's screens"
import sys
out = open(sys.argv[1], "rb").read().decode()
screens = out.split("\x1b[H\x1b[2J")[1:]
assert len(screens) >= 3, f"{len(screens)} screens in 1.5 s at 0.2 s"
for s in screens[:-1]:
    assert s.lstrip().startswith("dataset "), s[:80]
    assert "rejected: none" in s and "every 0.2 s (Ctrl-C to stop)" in s, s
print(f"{len(screens)} screens, each the full status")
PY
echo "status_watch: ok"

#!/bin/sh
# softlabel-teacher's progress line:
# 1. on a terminal (a pty): the line shows the teacher's shards done in the
#    whole job, this worker's own, the job's rate and ETA, and is redrawn
#    as the job goes; every log line starts by erasing it ("\r\033[K"), so
#    log lines stay whole; the counts never go back;
# 2. with stderr on a file: no line, no terminal escapes, one log line per
#    event.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 10000 "$T/x.npy"
sl_make_big_teacher "$T/big.safetensors"

# --- 1. on a terminal ---------------------------------------------------------------
sl_start_broker "$T/cache" "$T/x.npy" "$T/broker.log" --shard-rows 250 --exit-when-done
set +e
$DPY "$ROOT/tests/lib/watch_tty.py" -120 "$T/tty.out" "$BIN/softlabel-teacher" \
    --connect "$BROKER_EP" --model "$T/big.safetensors" --name big --threads 1 \
    --batch 8 --worker-name tty; rc=$?
set -e
sl_check "$rc -eq 0" "worker on a terminal: exit $rc: $(tail -c 400 "$T/tty.out")"
set +e; sl_wait_pid "$BROKER_PID" 30; rc=$?; set -e
sl_check "$rc -eq 0" "broker exit $rc"
$DPY - "$T/tty.out" <<'PY' || sl_fail "the terminal's output"
import re, sys
out = open(sys.argv[1], "rb").read().decode()
bars = re.findall(r"\r(big (\d+)/40 shards \((\d+) here\) \[[= ]{30}\] +(\d+)% (\d+)/s "
                  r"ETA (\d+:\d\d|\?))\x1b\[K", out)
assert len(bars) >= 2, f"{len(bars)} progress lines: {out[-500:]!r}"
done = [int(b[1]) for b in bars]
mine = [int(b[2]) for b in bars]
assert done == sorted(done) and mine == sorted(mine), (done, mine)
assert any(0 < d < 40 for d in done), f"no line mid-job: {done}"
for b in bars:
    assert int(b[3]) == int(b[1]) * 100 // 40, b  # percent of the shards
# Every log line begins on a clean line: erased bar, or a fresh line.
for m in re.finditer(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \d+ softlabel-teacher ", out):
    before = out[max(0, m.start() - 4):m.start()]
    assert m.start() == 0 or before.endswith("\n") or before == "\r\x1b[K", \
        f"a log line glued to the bar: {out[max(0, m.start() - 80):m.end()]!r}"
assert "every shard is done" in out, "no end line"
print(f"{len(bars)} progress lines, last: {bars[-1][0]}")
PY

# --- 2. on a file ---------------------------------------------------------------------
BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/cache2" "$T/x.npy" "$T/broker2.log" --shard-rows 2500 --exit-when-done
"$BIN/softlabel-teacher" --connect "$BROKER_EP" --model "$T/big.safetensors" \
    --name big --threads 1 --worker-name file 2>"$T/w.log" ||
    sl_fail "worker on a file: $(tail -3 "$T/w.log")"
set +e; sl_wait_pid "$BROKER_PID" 30; set -e
if LC_ALL=C grep -q "$(printf '[\r\033]')" "$T/w.log"; then
	sl_fail "terminal escapes in a log file: $(cat -A "$T/w.log" | head -5)"
fi
bad=$(grep -vcE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{12}Z [0-9]+ softlabel-teacher (DEBUG|INFO|WARN|ERROR) ' "$T/w.log" || true)
sl_check "$bad -eq 0" "$bad lines of the log are not log lines: $(cat "$T/w.log")"
echo "on a file: $(wc -l <"$T/w.log") log lines, no escapes"
echo "worker_progress: ok"

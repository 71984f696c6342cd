#!/bin/sh
# python3 -m softlabel.plot: real softlabel-student runs (one with test data
# and a teacher for fidelity, one without test data) drawn into a PNG:
# the file is a PNG of exactly the size asked (default 1500x450), the runs'
# lines are in it (the first two colours of matplotlib's cycle), and a
# resumed run's repeated epoch is drawn once. Bad input is refused in one
# line (exit 2 for usage, 1 for files it cannot draw) and writes nothing.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
export PYTHONPATH="$ROOT/common/python"
PLOT="$DPY -m softlabel.plot"
sl_make_teacher "$T/teacher.safetensors"
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 2000 "$T/x.npy"
sl_subset "$FMNIST/t10k-labels-idx1-ubyte.gz" 2000 "$T/y.npy"
TEST="--test-data $FMNIST/t10k-images-idx3-ubyte.gz --test-labels $FMNIST/t10k-labels-idx1-ubyte.gz"
# shellcheck disable=SC2086
"$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" --arch 784-32-10 \
    --epochs 3 --seed 1 $TEST --teacher-model "$T/teacher.safetensors" \
    --metrics "$T/with-test.jsonl" --out "$T/a.safetensors" 2>"$T/a.log" ||
    sl_fail "student a: $(tail -2 "$T/a.log")"
"$BIN/softlabel-student" --dataset "$T/x.npy" --labels "$T/y.npy" --arch 784-16-10 \
    --epochs 2 --seed 2 --metrics "$T/no-test.jsonl" --out "$T/b.safetensors" \
    2>"$T/b.log" || sl_fail "student b: $(tail -2 "$T/b.log")"
# As a resumed run leaves it: epoch 2 written twice, the second one counts.
cp "$T/with-test.jsonl" "$T/resumed.jsonl"
tail -n 1 "$T/with-test.jsonl" >>"$T/resumed.jsonl"
cat "$T/with-test.jsonl"

png_check() { # file width height nruns
	$DPY - "$@" <<'PY'
import struct, sys
import matplotlib.image as mpimg
import numpy as np
path, w, h, nruns = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
b = open(path, "rb").read()
assert b[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
assert b[12:16] == b"IHDR", "no IHDR first"
got = struct.unpack(">II", b[16:24])
assert got == (w, h), f"{got[0]}x{got[1]}, want {w}x{h}"
img = (mpimg.imread(path)[:, :, :3] * 255).round().astype(int)
# matplotlib's first colours: C0 #1f77b4, C1 #ff7f0e; one per run drawn.
for i, rgb in enumerate([(0x1f, 0x77, 0xb4), (0xff, 0x7f, 0x0e)][:nruns]):
    n = int((np.abs(img - rgb).sum(axis=2) <= 30).sum())
    assert n > 200, f"run {i + 1}'s colour {rgb} on {n} pixels: no line"
print(f"{path}: PNG {w}x{h}, {nruns} run(s) drawn")
PY
}
$PLOT "$T/with-test.jsonl" "$T/no-test.jsonl" -o "$T/curves.png" ||
    sl_fail "plot failed"
png_check "$T/curves.png" 1500 450 2 || sl_fail "curves.png"
$PLOT "$T/resumed.jsonl" -o "$T/small.png" --size 800x300 --title "one run" ||
    sl_fail "plot --size failed"
png_check "$T/small.png" 800 300 1 || sl_fail "small.png"
# The same through python3 -m softlabel plot.
$DPY -m softlabel plot "$T/no-test.jsonl" -o "$T/sub.png" --size 600x200 ||
    sl_fail "python3 -m softlabel plot failed"
png_check "$T/sub.png" 600 200 1 || sl_fail "sub.png"
# The repeated epoch is one point: the curve of resumed.jsonl equals the run's.
$DPY - "$T/resumed.jsonl" "$T/with-test.jsonl" <<'PY' || sl_fail "resumed run"
import sys
from softlabel.plot import load_run
a, b = load_run(sys.argv[1]), load_run(sys.argv[2])
assert sorted(a) == sorted(b) == [1, 2, 3], (sorted(a), sorted(b))
assert a == b
print("resumed run: epochs", sorted(a))
PY

# --- refused input ---------------------------------------------------------------------
printf 'not json\n' >"$T/garbage.jsonl"
printf '{"step": 3}\n' >"$T/noepoch.jsonl"
: >"$T/empty.jsonl"
printf '{"epoch": 1, "loss": "high"}\n' >"$T/badloss.jsonl"
refused() { # rc pattern args...
	_rc=$1 _p=$2; shift 2
	rm -f "$T/bad.png"
	set +e
	# shellcheck disable=SC2086
	$PLOT "$@" >"$T/out" 2>"$T/err"; _got=$?
	set -e
	sl_check "$_got -eq $_rc" "plot $*: exit $_got, want $_rc: $(cat "$T/err")"
	sl_check "$(wc -l <"$T/err") -eq 1" "plot $*: not one line: $(cat "$T/err")"
	grep -qE "$_p" "$T/err" || sl_fail "plot $*: no '$_p' in: $(cat "$T/err")"
	[ ! -e "$T/bad.png" ] && [ ! -e "$T/bad.png.tmp" ] || sl_fail "plot $*: wrote a PNG"
	echo "refused (exit $_rc): $(cat "$T/err")"
}
refused 2 "required: METRICS.jsonl" -o "$T/bad.png"
refused 2 "required: -o" "$T/with-test.jsonl"
refused 2 "the output is a PNG" "$T/with-test.jsonl" -o "$T/bad.jpg"
refused 2 "'10x10': width 200-10000" "$T/with-test.jsonl" -o "$T/bad.png" --size 10x10
refused 2 "'big': want WIDTHxHEIGHT" "$T/with-test.jsonl" -o "$T/bad.png" --size big
refused 1 "missing.jsonl: No such file" "$T/missing.jsonl" -o "$T/bad.png"
refused 1 "garbage.jsonl:1: not JSON" "$T/with-test.jsonl" "$T/garbage.jsonl" -o "$T/bad.png"
refused 1 "noepoch.jsonl:1: no \"epoch\"" "$T/noepoch.jsonl" -o "$T/bad.png"
refused 1 "empty.jsonl: no epoch in it" "$T/empty.jsonl" -o "$T/bad.png"
refused 1 "badloss.jsonl:1: \"loss\" is not a number" "$T/badloss.jsonl" -o "$T/bad.png"
refused 1 "nodir/x.png: No such file" "$T/with-test.jsonl" -o "$T/nodir/x.png"
echo "python_plot: ok"

#!/bin/sh
# softlabel and PyTorch side by side, in the same run, on the same networks
# and batch sizes: the teacher 784-1200-1200-10 forward at batch 256, the
# student 784-128-10 and the teacher (dropout 0.5) training at batch 128
# with Adam. Both run under the OpenBLAS kernel softlabel chooses on this
# machine (bench_nn starts like the programs; its "blas kernel=" line names
# the kernel, passed to PyTorch as OPENBLAS_CORETYPE) and the same thread
# count (BENCH_THREADS, default 2). Prints samples/s and softlabel/PyTorch
# ratios; figures, never thresholds. PyTorch missing is reported, not a
# failure.
#
# The two alternate BENCH_REPEAT times (default 2) and each figure is the
# best of its runs: on a shared machine another job's burst then hurts
# neither side more than the other.
set -eu
BUILD=${BUILD:-build}
THREADS=${BENCH_THREADS:-2}
REPEAT=${BENCH_REPEAT:-2}
DPY=/usr/bin/python3
dir=$(mktemp -d "${TMPDIR:-/tmp}/bench_nn.XXXXXX")
trap 'rm -rf "$dir"' EXIT

torch=1
$DPY -c 'import torch' 2>/dev/null || torch=0
i=0
while [ "$i" -lt "$REPEAT" ]; do
	i=$((i + 1))
	echo "-- softlabel (bench_nn), run $i of $REPEAT"
	BENCH_THREADS=$THREADS "$BUILD/bench/bench_nn" | tee "$dir/sl.$i"
	kernel=$(sed -n 's/^blas kernel=\([^ ]*\) .*/\1/p' "$dir/sl.$i")
	[ "$torch" -eq 1 ] || continue
	echo "-- PyTorch under OPENBLAS_CORETYPE=$kernel, $THREADS threads, OMP_WAIT_POLICY=PASSIVE, run $i of $REPEAT"
	OPENBLAS_CORETYPE=$kernel OPENBLAS_NUM_THREADS=$THREADS \
	    OMP_NUM_THREADS=$THREADS OMP_WAIT_POLICY=PASSIVE \
	    $DPY "$(dirname "$0")/bench_torch.py" --threads "$THREADS" |
	    tee "$dir/torch.$i"
done
if [ "$torch" -eq 0 ]; then
	echo "PyTorch: $DPY cannot import torch (python3-torch): no ratios"
	exit 0
fi
best() { # prefix pattern: the best samples/s over the runs' lines matching pattern
	cat "$dir/$1".* | grep -F "$2" |
	    sed -n 's/.*: \([0-9][0-9]*\) samples\/s.*/\1/p' | sort -n | tail -n 1
}
ratio() { # name softlabel-pattern torch-pattern
	s=$(best sl "$2") t=$(best torch "$3")
	if [ -n "$s" ] && [ -n "$t" ] && [ "$t" -gt 0 ]; then
		awk -v n="$1" -v s="$s" -v t="$t" 'BEGIN { printf "ratio %-44s softlabel %7d  PyTorch %7d samples/s  softlabel/PyTorch %.2fx\n", n, s, t, s / t }'
	else
		echo "ratio $1: a figure is missing (softlabel '$s', PyTorch '$t')"
	fi
}
echo "== best of $REPEAT runs each, kernel $kernel, $THREADS threads"
ratio "inference 784-1200-1200-10 b256" "forward 784-1200-1200-10 batch 256" "torch forward 784-1200-1200-10 batch 256"
ratio "student training 784-128-10 b128" "train step 784-128-10 batch 128" "torch train step 784-128-10 batch 128"
ratio "teacher training 784-1200-1200-10 b128 do0.5" "train step 784-1200-1200-10 batch 128" "torch train step 784-1200-1200-10 batch 128"

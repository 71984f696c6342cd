#!/bin/sh
# A trainer distilling from the cache, killed with SIGKILL at random moments
# and resumed, ends bit-identical to an uninterrupted run (one thread).
# Twice: an MLP student with dropout, and a CNN student (BatchNorm, a
# residual block, pools, dropout) distilled from the same cache.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T0=$SL_TMP
F=$FMNIST
sl_subset "$F/train-images-idx3-ubyte.gz" 8000 "$T0/x.npy"
sl_subset "$F/train-labels-idx1-ubyte.gz" 500 "$T0/y.npy"
sl_make_teacher "$T0/teacher.safetensors"
sl_label_all "$T0/cache" "$T0/x.npy" "$T0/teacher.safetensors" t 3 2

train() { # out ckpt extra...
	out=$1 ckpt=$2; shift 2
	exec "$BIN/softlabel-student" --dataset "$T0/x.npy" --labels "$T0/y.npy" \
	    --store "$T0/cache" --alpha 0.7 --temperature 3 \
	    --batch 64 --seed 9 --threads 1 $NET \
	    --checkpoint "$ckpt" --checkpoint-every 5 --out "$out" "$@"
}

scenario() { # name
T=$T0/$1; mkdir -p "$T"
echo "== $1: $NET"
start=$(date +%s)
(train "$T/ref.safetensors" "$T/ref.ckpt") 2>"$T/ref.log" || sl_fail "reference: $(tail -2 "$T/ref.log")"
ref_s=$(($(date +%s) - start))
# Each round is killed once the trainer wrote a new checkpoint in it, after
# a seeded random 0-150 ms more: mid-run, after progress, at any speed.
kills=0 round=0
while [ "$round" -lt 9 ]; do
	round=$((round + 1))
	before=$(sl_sum "$T/run.ckpt")
	sl_bg pid train "$T/run.safetensors" "$T/run.ckpt" --resume 2>>"$T/run.log"
	[ "$round" -eq 9 ] && break
	sl_wait_change "$T/run.ckpt" "$before" "$pid"
	delay=$(awk -v s="$round" 'BEGIN { srand(s * 104729); printf "%.3f", rand() * 0.15 }')
	sleep "$delay"
	kill -0 "$pid" 2>/dev/null || break
	kill -9 "$pid"
	set +e; sl_wait_pid "$pid" 60; set -e
	kills=$((kills + 1))
done
set +e; sl_wait_pid "$pid" $((ref_s * 5 + 60)); rc=$?; set -e
sl_check "$rc -eq 0" "resumed run exited $rc: $(tail -2 "$T/run.log")"
sl_check "$kills -ge 3" "only $kills kills landed"
resumes=$(sl_count "$T/run.log" "resume: epoch")
echo "killed $kills times, resumed $resumes times from a checkpoint"
cmp "$T/ref.safetensors" "$T/run.safetensors" ||
    sl_fail "the resumed distilled model differs from the uninterrupted one"
echo "resumed model is bit-identical to the uninterrupted run"
}

NET="--arch 784-256-256-10 --epochs 5 --dropout 0.1"
scenario mlp
NET="--epochs 2 --arch conv:8:3:p=1,bn,relu,maxpool:2,res(conv:8:3:p=1,bn,relu,conv:8:3:p=1:g=8,bn),relu,avgpool:2,dropout:0.1,flatten,linear:10"
scenario cnn

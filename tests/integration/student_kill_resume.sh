#!/bin/sh
# A trainer killed with SIGKILL at random moments and restarted with --resume
# ends with a model bit-identical to an uninterrupted run (one thread).
# One round uses SIGTERM instead: the trainer checkpoints and exits 1.
# Twice: an MLP with dropout, and a CNN with BatchNorm (running statistics
# and their counts travel in the checkpoint), a residual block, depthwise
# conv, pools and dropout. Then a CNN trained on views (--augment: each
# epoch its own view of every row, from the seed, the row and the epoch).
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T0=$SL_TMP
# Every round hashes the dataset as the reference run does: with the
# fingerprint memo only the first run would, and the rounds' kills, timed
# from the reference run, would land late.
export SOFTLABEL_FINGERPRINTS=off

# exec, so that the pid sl_bg records is the trainer's own and kill hits it.
train() { # out ckpt extra...
	out=$1 ckpt=$2; shift 2
	exec "$BIN/softlabel-student" --dataset "$X" --labels "$Y" \
	    --batch 64 --lr 0.001 --optimizer adam --seed 7 --threads 1 \
	    --checkpoint "$ckpt" --checkpoint-every 7 --out "$out" $NET "$@"
}

scenario() { # name min-accuracy
T=$T0/$1; mkdir -p "$T"; min_acc=$2
echo "== $1: $NET"

start=$(date +%s)
(train "$T/ref.safetensors" "$T/ref.ckpt" --test-data "$X" --test-labels "$Y" \
    --metrics "$T/ref.jsonl") 2>"$T/ref.log" || sl_fail "reference run failed"
ref_s=$(($(date +%s) - start))
acc=$(sl_metric "$T/ref.jsonl" test_accuracy)
echo "reference run: ${ref_s}s, training-set accuracy $acc"
# The model must have learned something, or identical files prove nothing.
sl_check "$(awk -v a="$acc" -v m="$min_acc" 'BEGIN { print (a > m) }') -eq 1" "reference run did not learn"

# Up to eight killed rounds, then one that must finish. Each round is
# killed once the trainer has written a new checkpoint in it, after a
# seeded random 0-150 ms more: so every kill lands mid-run, after some
# progress, whatever the machine's speed (a delay timed from the reference
# run landed after the end on a quiet machine and before the start on a
# loaded one).
kills=0 round=0 done=0 terms=0
while [ "$round" -lt 9 ]; do
	round=$((round + 1))
	before=$(sl_sum "$T/run.ckpt")
	sl_bg pid train "$T/run.safetensors" "$T/run.ckpt" --resume 2>>"$T/run.log"
	if [ "$round" -eq 9 ]; then
		break
	fi
	sl_wait_change "$T/run.ckpt" "$before" "$pid"
	delay=$(awk -v s="$round" 'BEGIN { srand(s * 7919); printf "%.3f", rand() * 0.15 }')
	if [ "$round" -eq 3 ]; then
		# SIGTERM is handled once the trainer runs; before that it
		# kills, as for any program. Wait for the trainer's line.
		i=0
		while ! grep -q " $pid softlabel-student INFO training" "$T/run.log" &&
		    [ "$i" -lt 300 ] && kill -0 "$pid" 2>/dev/null; do
			sleep 0.1; i=$((i + 1))
		done
	fi
	sleep "$delay"
	kill -0 "$pid" 2>/dev/null || break
	if [ "$round" -eq 3 ]; then
		kill -TERM "$pid"
		set +e; sl_wait_pid "$pid" 60; rc=$?; set -e
		sl_check "$rc -eq 1" "SIGTERM: exit $rc, want 1 (interrupted)"
		terms=$((terms + 1))
	else
		kill -9 "$pid"
		set +e; sl_wait_pid "$pid" 60; set -e
		kills=$((kills + 1))
	fi
done
set +e; sl_wait_pid "$pid" $((ref_s * 5 + 60)); rc=$?; set -e
sl_check "$rc -eq 0" "resumed run exited $rc"
done=1
sl_check "$done -eq 1" "training never finished in $round rounds"
sl_check "$kills -ge 3" "only $kills kills landed mid-run; the test proved nothing"
sl_check "$terms -eq 1" "the SIGTERM round did not happen"
echo "killed $kills times with SIGKILL, once with SIGTERM, finished in round $round"
cmp "$T/ref.safetensors" "$T/run.safetensors" ||
    sl_fail "resumed model differs from the uninterrupted one"
echo "resumed model is bit-identical to the uninterrupted run"
}

X=$FMNIST/t10k-images-idx3-ubyte.gz
Y=$FMNIST/t10k-labels-idx1-ubyte.gz
# The MLP with a cosine schedule: the learning rate changes at every epoch,
# so a resume that stepped with another one would differ.
NET="--arch 784-256-256-10 --epochs 5 --dropout 0.2 --lr-schedule cosine"
scenario mlp 0.80
# The CNN on the first 4000 rows (its epochs are slower).
sl_subset "$X" 4000 "$T0/x.npy"
sl_subset "$Y" 4000 "$T0/y.npy"
X=$T0/x.npy Y=$T0/y.npy
NET="--epochs 2 --arch conv:8:3:p=1,bn,relu,maxpool:2,res(conv:8:3:p=1,bn,relu,conv:8:3:p=1:g=8,bn),relu,avgpool:2,dropout:0.2,flatten,linear:10"
scenario cnn 0.60
NET="--epochs 3 --arch conv:8:3:p=1,bn,relu,maxpool:2,flatten,linear:10 --augment rrc=0.6:1,crop=2,flip --augment-seed 11"
scenario cnn-augment 0.55

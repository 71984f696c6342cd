#!/bin/sh
# A trainer killed with SIGKILL at random moments and restarted with --resume
# ends with a model bit-identical to an uninterrupted run (one thread).
# One round uses SIGTERM instead: the trainer checkpoints and exits 1.
. "$(dirname "$0")/../lib/common.sh"
T=$(sl_tmpdir)

X=$FMNIST/t10k-images-idx3-ubyte.gz
Y=$FMNIST/t10k-labels-idx1-ubyte.gz
# exec, so that the pid sl_bg records is the trainer's own and kill hits it.
train() { # out ckpt extra...
	out=$1 ckpt=$2; shift 2
	exec "$BIN/softlabel-student" --dataset "$X" --labels "$Y" \
	    --arch 784-256-256-10 --epochs 5 --batch 64 --lr 0.001 \
	    --optimizer adam --dropout 0.2 --seed 7 --threads 1 \
	    --checkpoint "$ckpt" --checkpoint-every 7 --out "$out" "$@"
}

start=$(date +%s)
(train "$T/ref.safetensors" "$T/ref.ckpt" --test-data "$X" --test-labels "$Y" \
    --metrics "$T/ref.jsonl") 2>"$T/ref.log" || sl_fail "reference run failed"
ref_s=$(($(date +%s) - start))
acc=$(sl_metric "$T/ref.jsonl" test_accuracy)
echo "reference run: ${ref_s}s, training-set accuracy $acc"
# The model must have learned something, or identical files prove nothing.
sl_check "$(awk -v a="$acc" 'BEGIN { print (a > 0.80) }') -eq 1" "reference run did not learn"

kills=0 round=0 done=0 terms=0
while [ "$round" -lt 40 ]; do
	round=$((round + 1))
	sl_bg pid train "$T/run.safetensors" "$T/run.ckpt" --resume 2>>"$T/run.log"
	# Kill somewhere in the run; the checkpoint cadence is a few ms.
	delay=$(awk -v s="$round" 'BEGIN { srand(s * 7919); printf "%.2f", 0.1 + rand() * 0.5 }')
	sleep "$delay"
	if kill -0 "$pid" 2>/dev/null; then
		if [ "$round" -eq 3 ]; then
			kill -TERM "$pid"
			set +e; sl_wait_pid "$pid" 30; rc=$?; set -e
			sl_check "$rc -eq 1" "SIGTERM: exit $rc, want 1 (interrupted)"
			terms=$((terms + 1))
		else
			kill -9 "$pid"
			set +e; sl_wait_pid "$pid" 30; set -e
			kills=$((kills + 1))
		fi
		continue
	fi
	set +e; sl_wait_pid "$pid" 30; rc=$?; set -e
	sl_check "$rc -eq 0" "resumed run exited $rc"
	done=1
	break
done
sl_check "$done -eq 1" "training never finished in $round rounds"
sl_check "$kills -ge 3" "only $kills kills landed mid-run; the test proved nothing"
sl_check "$terms -eq 1" "the SIGTERM round did not happen"
echo "killed $kills times with SIGKILL, once with SIGTERM, finished in round $round"
cmp "$T/ref.safetensors" "$T/run.safetensors" ||
    sl_fail "resumed model differs from the uninterrupted one"
echo "resumed model is bit-identical to the uninterrupted run"

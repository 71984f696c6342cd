#!/bin/sh
# deploy/slurm/*.sbatch run for real without Slurm: srun, scontrol and
# hostname are shims (tests/lib/slurm/) first on PATH, and SLURM_* variables
# describe an allocation whose nodes are all this machine (the first one is
# 127.0.0.1), so the scripts' own logic runs: node list, broker endpoint,
# worker step, shutdown, copy, verify.
#
# softlabel-label.sbatch:
#  - 3 nodes: the broker here and 2 workers, asked for on the 2 other nodes,
#    label 2000 rows; the workers connect through the first node's name; the
#    cache is copied to SOFTLABEL_DEST, the node-local copy removed, verify
#    passes on the copy and its records equal the teacher's; nothing of the
#    job is left running;
#  - 1 node, 2 workers beside the broker, the same SOFTLABEL_DEST and a second
#    teacher: the job resumes from the copy, which ends with both teachers;
#  - a missing dataset: status 1 at once, the file named, no srun, nothing
#    created;
#  - workers that cannot start (a corrupt model): the job ends with status 1
#    and says why, instead of leaving the broker waiting;
#  - SIGTERM to the batch shell (the time limit): the broker commits and
#    stops, the workers are stopped, the copy is made and verifies, status 1
#    with a hint to resubmit.
# softlabel-split.sbatch: rows 0:1000 and 1000: on two brokers, a worker
# step on its own node for each, the copies verified as one, and a student
# trained from both caches that equals one trained here with --store A,B;
# without SOFTLABEL_SPLIT_ROWS it fails at once with a message.
# softlabel-workers.sbatch: two array tasks label a dataset for a broker
# started here and exit 0; without SOFTLABEL_TEACHER_CONNECT, or with nobody
# answering there, a task fails at once with a message.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
LABEL=$ROOT/deploy/slurm/softlabel-label.sbatch
WORKERS=$ROOT/deploy/slurm/softlabel-workers.sbatch
SHIMS=$ROOT/tests/lib/slurm
X=$T/x.npy

# Settings of the caller's shell must not leak into the jobs.
for v in $(env | sed -n 's/^\(SOFTLABEL_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done

sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 2000 "$X"
sl_make_teacher "$T/teacher.safetensors"

# Each job runs in its own process group (setsid: the pid is the group's),
# so that the test can tell whether anything of it is left, and kill it all
# if the test fails.
# (dash's kill takes no "--"; zombies do not count: reparented children
# are reaped by init, and not every init reaps.)
JOBS=""
cleanup_jobs() {
	for j in $JOBS; do kill -9 "-$j" 2>/dev/null || true; done
	sl_cleanup
}
alive_in_group() { # pgid: the live processes of the group, "pid args" lines
	ps -eo pid=,pgid=,stat=,args= | awk -v g="$1" '$2 == g && $3 !~ /^Z/ { $2 = ""; $3 = ""; print }'
}
trap cleanup_jobs EXIT INT TERM

# job_start NAME SCRIPT VAR=VALUE...: start SCRIPT as sbatch would, with the
# shims first on PATH; its pid in JOB, output in $T/NAME.out, srun calls in
# $T/NAME.srun. job_wait NAME: its exit status in RC, bounded (300 s), and
# nothing of it may be left running. job: both.
job_start() {
	_name=$1 _script=$2; shift 2
	env PATH="$SHIMS:$BIN:$PATH" SLURM_SHIM_LOG="$T/$_name.srun" "$@" \
	    setsid sh "$_script" >"$T/$_name.out" 2>&1 &
	JOB=$!
	JOBS="$JOBS $JOB"
}
job() {
	job_start "$@"
	job_wait "$1"
}
job_wait() {
	_name=$1 _pid=$JOB
	set +e; sl_wait_pid "$_pid" 300; RC=$?; set -e
	[ "$RC" -ne 124 ] || sl_fail "$_name: still running after 300 s: $(tail -5 "$T/$_name.out")"
	# Nothing of the job may outlive it: broker, srun, workers.
	sleep 0.2
	_left=$(alive_in_group "$_pid")
	[ -z "$_left" ] || sl_fail "$_name: processes of the job are still running: $_left"
	echo "--- $_name: exit $RC; last lines:"
	tail -n 3 "$T/$_name.out"
}

# --- 3 nodes: broker on the first, 2 workers on the others ------------------------
P=$(sl_free_port)
job label3 "$LABEL" SLURM_JOB_ID=101 SLURM_JOB_NODELIST='127.0.0.1,node[2-3]' \
    SLURM_JOB_NUM_NODES=3 SLURM_SHIM_HOSTS='127.0.0.1 node2 node3' \
    SLURM_NTASKS_PER_NODE=1 SLURM_CPUS_PER_TASK=1 SLURM_SUBMIT_DIR="$T" \
    SLURM_TMPDIR="$T/node-local" \
    SOFTLABEL_BROKER_DATASET="$X" SOFTLABEL_TEACHER_MODEL="$T/teacher.safetensors" \
    SOFTLABEL_BROKER_BIND="tcp://127.0.0.1:$P" SOFTLABEL_BROKER_SHARD_ROWS=250 \
    SOFTLABEL_TEACHER_NAME=t1 SOFTLABEL_TEACHER_TEMPERATURE=4 \
    SOFTLABEL_TEACHER_BATCH=250 SOFTLABEL_DEST="$T/shared/cache"
sl_check "$RC -eq 0" "label job (3 nodes) exit $RC: $(tail -5 "$T/label3.out")"
grep -q "done: cache in $T/shared/cache, verified" "$T/label3.out" ||
    sl_fail "no 'done' line: $(tail -3 "$T/label3.out")"
# One worker step, on the 2 nodes that are not the broker's.
sl_check "$(sl_count "$T/label3.srun" '^srun ') -eq 1" "srun calls: $(cat "$T/label3.srun")"
grep -q -- "--nodes=2 --exclude=127.0.0.1 --ntasks=2 --ntasks-per-node=1" "$T/label3.srun" ||
    sl_fail "worker step not on the 2 other nodes: $(cat "$T/label3.srun")"
sl_check "$(sl_count "$T/label3.srun" '^task [01] pid [0-9]+ node node[23]$') -eq 2" \
    "worker tasks: $(cat "$T/label3.srun")"
# The workers found the broker through the first node's name and the port of
# SOFTLABEL_BROKER_BIND. (Not necessarily both: on 2000 rows one worker may
# finish the job before the other says HELLO; that one is stopped after the
# grace period, and exits 0 holding nothing.)
sl_check "$(sl_count "$T/label3.out" "softlabel-teacher INFO ready connected=tcp://127.0.0.1:$P ") -ge 1" \
    "no worker connected to tcp://127.0.0.1:$P: $(grep teacher "$T/label3.out" | head -5)"
grep -q "softlabel-label: workers exited (srun status 0)" "$T/label3.out" ||
    sl_fail "the worker step did not end cleanly: $(grep 'workers exited' "$T/label3.out")"
[ ! -e "$T/node-local/softlabel-101" ] || sl_fail "the node-local cache was not removed"
[ ! -e "$T/shared/cache/data.mdb.part-101" ] || sl_fail "a partial copy was left"
"$BIN/softlabel" verify "$T/shared/cache" >"$T/verify1" || sl_fail "verify: $(cat "$T/verify1")"
cat "$T/verify1"
grep -q "teacher t1: 2000 records in 8/8 done shards checked, 0 problems" "$T/verify1" ||
    sl_fail "verify of the copy: $(cat "$T/verify1")"
sl_check_cache_exact "$T/shared/cache" t1 "$T/teacher.safetensors" "$X" 4

# --- 1 node, 2 workers beside the broker, resuming the copy with a 2nd teacher -----
P=$(sl_free_port)
job label1 "$LABEL" SLURM_JOB_ID=102 SLURM_JOB_NODELIST=127.0.0.1 \
    SLURM_JOB_NUM_NODES=1 SLURM_SHIM_HOSTS=127.0.0.1 SLURM_CPUS_PER_TASK=1 \
    SLURM_SUBMIT_DIR="$T" SLURM_TMPDIR="$T/node-local" SOFTLABEL_WORKERS_PER_NODE=2 \
    SOFTLABEL_BROKER_DATASET="$X" SOFTLABEL_TEACHER_MODEL="$T/teacher.safetensors" \
    SOFTLABEL_BROKER_BIND="tcp://127.0.0.1:$P" SOFTLABEL_TEACHER_NAME=t2 \
    SOFTLABEL_TEACHER_ENCODING=f16 SOFTLABEL_DEST="$T/shared/cache"
sl_check "$RC -eq 0" "label job (1 node) exit $RC: $(tail -5 "$T/label1.out")"
grep -q "resuming from the cache in $T/shared/cache" "$T/label1.out" ||
    sl_fail "the second job did not start from the copy"
grep -q -- "^srun --nodes=1 --ntasks=2 --ntasks-per-node=2 " "$T/label1.srun" ||
    sl_fail "one-node worker step: $(cat "$T/label1.srun")"
"$BIN/softlabel" verify "$T/shared/cache" >"$T/verify2" || sl_fail "verify: $(cat "$T/verify2")"
cat "$T/verify2"
for t in t1 t2; do
	grep -q "teacher $t: 2000 records in 8/8 done shards checked, 0 problems" "$T/verify2" ||
	    sl_fail "the resumed cache does not hold both teachers: $(cat "$T/verify2")"
done

# --- a missing dataset -------------------------------------------------------------
job missing "$LABEL" SLURM_JOB_ID=103 SLURM_JOB_NODELIST=127.0.0.1 \
    SLURM_SUBMIT_DIR="$T" SLURM_TMPDIR="$T/node-local" \
    SOFTLABEL_BROKER_DATASET="$T/no-such.npy" SOFTLABEL_TEACHER_MODEL="$T/teacher.safetensors" \
    SOFTLABEL_BROKER_BIND="tcp://127.0.0.1:$(sl_free_port)" SOFTLABEL_DEST="$T/shared/none"
sl_check "$RC -eq 1" "label job without its dataset: exit $RC, want 1"
grep -q "error: dataset $T/no-such.npy (SOFTLABEL_BROKER_DATASET): no such readable file" "$T/missing.out" ||
    sl_fail "no clear message: $(cat "$T/missing.out")"
[ ! -e "$T/missing.srun" ] || sl_fail "workers were started without a dataset"
if [ -e "$T/shared/none" ] || [ -e "$T/node-local/softlabel-103" ]; then
	sl_fail "a job without its dataset created directories"
fi

# --- workers that cannot start ----------------------------------------------------
head -c 100 "$T/teacher.safetensors" >"$T/corrupt.safetensors"
job badmodel "$LABEL" SLURM_JOB_ID=104 SLURM_JOB_NODELIST='127.0.0.1,node2' \
    SLURM_SHIM_HOSTS='127.0.0.1 node2' SLURM_CPUS_PER_TASK=1 \
    SLURM_SUBMIT_DIR="$T" SLURM_TMPDIR="$T/node-local" \
    SOFTLABEL_BROKER_DATASET="$X" SOFTLABEL_TEACHER_MODEL="$T/corrupt.safetensors" \
    SOFTLABEL_BROKER_BIND="tcp://127.0.0.1:$(sl_free_port)" SOFTLABEL_DEST="$T/shared/bad"
sl_check "$RC -eq 1" "label job with a corrupt model: exit $RC, want 1"
grep -q "error: the workers ended (srun status 1) before the job was done" "$T/badmodel.out" ||
    sl_fail "no clear message: $(tail -5 "$T/badmodel.out")"

# --- the time limit: SIGTERM to the batch shell (--signal=B:TERM@300) ----------------
# Workers pointed at a port where nobody listens never finish the job, so
# it runs until the signal, whenever that comes.
job_start term "$LABEL" SLURM_JOB_ID=105 SLURM_JOB_NODELIST='127.0.0.1,node2' \
    SLURM_SHIM_HOSTS='127.0.0.1 node2' SLURM_CPUS_PER_TASK=1 \
    SLURM_SUBMIT_DIR="$T" SLURM_TMPDIR="$T/node-local" \
    SOFTLABEL_BROKER_DATASET="$X" SOFTLABEL_TEACHER_MODEL="$T/teacher.safetensors" \
    SOFTLABEL_BROKER_BIND="tcp://127.0.0.1:$(sl_free_port)" \
    SOFTLABEL_TEACHER_CONNECT="tcp://127.0.0.1:$(sl_free_port)" SOFTLABEL_DEST="$T/shared/term"
sl_wait_log "$T/term.out" "softlabel-broker INFO ready" 30
sl_wait_log "$T/term.srun" "^task 0 pid" 30
kill -TERM "$JOB"
job_wait term
sl_check "$RC -eq 1" "label job stopped by SIGTERM: exit $RC, want 1"
grep -q "softlabel-broker INFO stopping: committing" "$T/term.out" ||
    sl_fail "the broker was not stopped with SIGTERM: $(tail -5 "$T/term.out")"
grep -q "error: stopped before the end; resubmit with SOFTLABEL_DEST=$T/shared/term to resume" "$T/term.out" ||
    sl_fail "no resume hint: $(tail -3 "$T/term.out")"
"$BIN/softlabel" verify "$T/shared/term" >/dev/null || sl_fail "the stopped job's copy does not verify"

# --- softlabel-workers.sbatch: an array of 2 for a broker started here --------------
# A broker as a service (no --exit-when-done, as the script asks): a task
# that comes after the end is told DONE and leaves.
sl_start_broker "$T/wcache" "$X" "$T/wbroker.log" --shard-rows 250
for i in 0 1; do
	env PATH="$SHIMS:$PATH" SLURM_JOB_ID=$((201 + i)) SLURM_ARRAY_JOB_ID=200 \
	    SLURM_ARRAY_TASK_ID=$i SLURM_CPUS_PER_TASK=1 SOFTLABEL_BIN="$BIN" \
	    SOFTLABEL_TEACHER_CONNECT="$BROKER_EP" SOFTLABEL_TEACHER_MODEL="$T/teacher.safetensors" \
	    SOFTLABEL_TEACHER_NAME=w SOFTLABEL_TEACHER_TEMPERATURE=4 SOFTLABEL_TEACHER_BATCH=250 \
	    setsid sh "$WORKERS" >"$T/array$i.out" 2>&1 &
	eval "A$i=\$!"
	JOBS="$JOBS $!"
done
for i in 0 1; do
	p=; eval "p=\$A$i"
	set +e; sl_wait_pid "$p" 300; rc=$?; set -e
	sl_check "$rc -eq 0" "array task $i exit $rc: $(tail -3 "$T/array$i.out")"
	grep -q "worker slurm-200-$i joined for teacher w" "$T/wbroker.log" ||
	    sl_fail "array task $i never joined under its name"
done
kill -TERM "$BROKER_PID"
set +e; sl_wait_pid "$BROKER_PID" 30; rc=$?; set -e
sl_check "$rc -eq 0" "broker of the array exit $rc: $(tail -3 "$T/wbroker.log")"
"$BIN/softlabel" verify "$T/wcache" >"$T/verify3" || sl_fail "verify: $(cat "$T/verify3")"
grep -q "teacher w: 2000 records in 8/8 done shards checked, 0 problems" "$T/verify3" ||
    sl_fail "array workers: $(cat "$T/verify3")"
echo "array of 2 workers: $(cat "$T/verify3")"

job noconnect "$WORKERS" SLURM_JOB_ID=205 SOFTLABEL_TEACHER_MODEL="$T/teacher.safetensors"
sl_check "$RC -eq 1" "worker without SOFTLABEL_TEACHER_CONNECT: exit $RC, want 1"
grep -q "error: SOFTLABEL_TEACHER_CONNECT is not set" "$T/noconnect.out" ||
    sl_fail "no clear message: $(cat "$T/noconnect.out")"
NOBODY=tcp://127.0.0.1:$(sl_free_port)
job nobody "$WORKERS" SLURM_JOB_ID=206 SOFTLABEL_TEACHER_MODEL="$T/teacher.safetensors" \
    SOFTLABEL_TEACHER_CONNECT="$NOBODY" SOFTLABEL_BROKER_WAIT=1
sl_check "$RC -eq 1" "worker with no broker: exit $RC, want 1"
grep -q "error: no broker answered at $NOBODY within 1 s" "$T/nobody.out" ||
    sl_fail "no clear message: $(cat "$T/nobody.out")"
# --- softlabel-split.sbatch: two brokers by rows, a worker step each, a student ------
P=$(sl_free_port)
SPLIT=$ROOT/deploy/slurm/softlabel-split.sbatch
job split "$SPLIT" SLURM_JOB_ID=301 SLURM_JOB_NODELIST='127.0.0.1,node[2-3]' \
    SLURM_SHIM_HOSTS='127.0.0.1 node2 node3' SLURM_NTASKS_PER_NODE=1 SLURM_CPUS_PER_TASK=1 \
    SLURM_SUBMIT_DIR="$T" SLURM_TMPDIR="$T/node-local" SOFTLABEL_PORT="$P" \
    SOFTLABEL_BROKER_HOST=127.0.0.1 SOFTLABEL_SPLIT_ROWS=0:1000,1000: \
    SOFTLABEL_BROKER_DATASET="$X" SOFTLABEL_TEACHER_MODEL="$T/teacher.safetensors" \
    SOFTLABEL_BROKER_SHARD_ROWS=250 SOFTLABEL_TEACHER_NAME=t SOFTLABEL_TEACHER_BATCH=250 \
    SOFTLABEL_DEST="$T/shared/split" SOFTLABEL_STUDENT_ARCH=784-16-10 SOFTLABEL_STUDENT_ALPHA=1 \
    SOFTLABEL_STUDENT_TEMPERATURE=2 SOFTLABEL_STUDENT_EPOCHS=2 SOFTLABEL_STUDENT_THREADS=1 \
    SOFTLABEL_STUDENT_OUT="$T/shared/student.safetensors"
sl_check "$RC -eq 0" "split job exit $RC: $(tail -8 "$T/split.out")"
grep -q "done: 2 caches in $T/shared/split, verified as one; student in $T/shared/student.safetensors" "$T/split.out" ||
    sl_fail "no 'done' line: $(tail -3 "$T/split.out")"
# One worker step per range, each on its own node, connected to its broker.
sl_check "$(sl_count "$T/split.srun" '^srun ') -eq 2" "srun calls: $(cat "$T/split.srun")"
grep -q -- "^srun --nodes=1 --nodelist=node2 --ntasks=1 " "$T/split.srun" || sl_fail "range 1's step: $(cat "$T/split.srun")"
grep -q -- "^srun --nodes=1 --nodelist=node3 --ntasks=1 " "$T/split.srun" || sl_fail "range 2's step: $(cat "$T/split.srun")"
for i in 0 1; do
	sl_check "$(sl_count "$T/split.out" "softlabel-teacher INFO ready connected=tcp://127.0.0.1:$((P + i)) ") -eq 1" \
	    "no worker on the broker at port $((P + i)): $(grep 'teacher INFO ready' "$T/split.out")"
done
grep -q "this cache labels rows 0:1000 (shards 0..3 of 8)" "$T/split.out" || sl_fail "broker 1's range: $(grep rows "$T/split.out")"
grep -q "this cache labels rows 1000:2000 (shards 4..7 of 8)" "$T/split.out" || sl_fail "broker 2's range: $(grep rows "$T/split.out")"
# verify ran on the copies as one, each part with its own rows.
grep -q "^union: teacher t: 2000 of 2000 rows done in 2 caches" "$T/split.out" || sl_fail "no union verify: $(grep union "$T/split.out")"
grep -q "^union of 2 caches: ok" "$T/split.out" || sl_fail "the union did not verify: $(grep union "$T/split.out")"
"$BIN/softlabel" inspect "$T/shared/split/part-2" >"$T/insp2"
grep -q "rows        1000:2000 of them in this cache (shards 4..7" "$T/insp2" || sl_fail "part-2: $(cat "$T/insp2")"
[ ! -e "$T/node-local/softlabel-301" ] || sl_fail "the split job's node-local caches were not removed"
# The student read both caches: it equals a student trained here from the
# copies as one (one thread: byte for byte), and every row had a target.
"$BIN/softlabel-student" --dataset "$X" --store "$T/shared/split/part-1,$T/shared/split/part-2" \
    --arch 784-16-10 --alpha 1 --temperature 2 --epochs 2 --threads 1 \
    --metrics "$T/split-ref.jsonl" --out "$T/split-ref.safetensors" 2>"$T/split-ref.log" ||
    sl_fail "reference student: $(tail -2 "$T/split-ref.log")"
cmp "$T/shared/student.safetensors" "$T/split-ref.safetensors" || sl_fail "the split job's student is not the one --store part-1,part-2 trains"
sl_check "$(sl_metric "$T/split-ref.jsonl" rows_with_target) -eq 2000" "targets: $(tail -1 "$T/split-ref.jsonl")"
grep -q "the cache covers" "$T/split.out" && sl_fail "the split job's student warned of coverage"
echo "split job: 2 brokers (rows 0:1000, 1000:), a worker step each, verified as one, the student read both"

job nosplit "$SPLIT" SLURM_JOB_ID=302 SLURM_JOB_NODELIST=127.0.0.1 SLURM_SUBMIT_DIR="$T" \
    SOFTLABEL_BROKER_DATASET="$X" SOFTLABEL_TEACHER_MODEL="$T/teacher.safetensors"
sl_check "$RC -eq 1" "split job without ranges: exit $RC, want 1"
grep -q "error: SOFTLABEL_SPLIT_ROWS is not set" "$T/nosplit.out" || sl_fail "no clear message: $(cat "$T/nosplit.out")"
[ ! -e "$T/nosplit.srun" ] || sl_fail "workers were started without ranges"
echo "deploy_slurm: all checks passed"

#!/bin/sh
# The example configuration files deploy/config/{broker,teacher,student,serve}.env:
# 1. each lists exactly the options of its program's --help (but --help and
#    --version), each under its --help line, with the default --help states,
#    in plain VAR=value lines (tests/lib/envfile_check.py), so the files
#    cannot drift from the option tables;
# 2. they work: a real broker and a real worker started with no command-line
#    option at all, configured only by the files (set -a; . FILE) with the
#    store, dataset, model and endpoint overridden to this test's files and
#    a free 127.0.0.1 port, label a dataset to completion; softlabel verify
#    passes; the teacher is registered with the file's temperature and
#    encoding; a student configured by student.env distills from the cache
#    for the file's number of epochs.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
CFG=$ROOT/deploy/config
ROWS=2000

# --- 1. the files against --help ------------------------------------------------
bad=0
for p in broker teacher student serve; do
	P=$(echo "$p" | tr a-z A-Z)
	if [ "$p" = serve ]; then cmd="softlabel serve"; else cmd="softlabel-$p"; fi
	# shellcheck disable=SC2086
	"$BIN/"$cmd --help >"$T/$p.help" || sl_fail "$cmd --help failed"
	echo "checking deploy/config/$p.env against $cmd --help"
	$DPY "$ROOT/tests/lib/envfile_check.py" "SOFTLABEL_$P" "$T/$p.help" \
	    "$CFG/$p.env" || bad=1
done
[ "$bad" -eq 0 ] || sl_fail "an example env file does not match its program's --help"

# --- 2. a broker, a worker and a student configured by the files alone -------------
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" "$ROWS" "$T/data.npy"
sl_make_teacher "$T/teacher.safetensors"
PORT=$(sl_free_port)
EP=tcp://127.0.0.1:$PORT

# Each runs in the background subshell sl_bg makes, sources its file there
# and execs the program with no argument, so the pid is the program's.
broker_from_env() {
	set -a; . "$CFG/broker.env"; set +a
	export SOFTLABEL_BROKER_STORE="$T/cache" SOFTLABEL_BROKER_DATASET="$T/data.npy" \
	    SOFTLABEL_BROKER_BIND="$EP"
	exec "$BIN/softlabel-broker"
}
teacher_from_env() {
	set -a; . "$CFG/teacher.env"; set +a
	export SOFTLABEL_TEACHER_CONNECT="$EP" \
	    SOFTLABEL_TEACHER_MODEL="$T/teacher.safetensors"
	exec "$BIN/softlabel-teacher"
}
student_from_env() {
	set -a; . "$CFG/student.env"; set +a
	export SOFTLABEL_STUDENT_DATASET="$T/data.npy" SOFTLABEL_STUDENT_STORE="$T/cache" \
	    SOFTLABEL_STUDENT_OUT="$T/student.safetensors" \
	    SOFTLABEL_STUDENT_CHECKPOINT="$T/student.ckpt" \
	    SOFTLABEL_STUDENT_METRICS="$T/metrics.jsonl"
	exec "$BIN/softlabel-student"
}

echo "broker and worker with no options, configured by broker.env and teacher.env"
sl_bg BROKER_PID broker_from_env 2>>"$T/broker.log"
sl_wait_log "$T/broker.log" " $BROKER_PID softlabel-broker INFO ready" 30
grep -q "127.0.0.1:$PORT" "$T/broker.log" ||
    sl_fail "the broker did not bind the endpoint from the environment: $(cat "$T/broker.log")"
sl_bg WORKER_PID teacher_from_env 2>>"$T/worker.log"

# The worker exits 0 once the broker says every shard of its teacher is
# done; the broker (no --exit-when-done in the file) keeps serving until
# SIGTERM, then commits what it holds and exits 0.
set +e; sl_wait_pid "$WORKER_PID" 120; rc=$?; set -e
sl_check "$rc -eq 0" "worker exit $rc: $(tail -3 "$T/worker.log")"
"$BIN/softlabel" status "$EP" >"$T/status" 2>&1 || sl_fail "status: $(cat "$T/status")"
cat "$T/status"
kill -TERM "$BROKER_PID"
set +e; sl_wait_pid "$BROKER_PID" 30; rc=$?; set -e
sl_check "$rc -eq 0" "broker exit $rc after SIGTERM: $(tail -3 "$T/broker.log")"

"$BIN/softlabel" verify "$T/cache" >"$T/verify" 2>&1 || sl_fail "verify: $(cat "$T/verify")"
cat "$T/verify"
grep -q "^teacher teacher: $ROWS records in 2/2 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "verify: expected $ROWS records in 2 shards of 1024 rows: $(cat "$T/verify")"
# The teacher took its name from the model file, and the temperature and
# encoding the file gives.
"$BIN/softlabel" inspect "$T/cache" >"$T/inspect" 2>&1 || sl_fail "inspect: $(cat "$T/inspect")"
cat "$T/inspect"
grep -qE "^teacher 0 +teacher: .*, T=1, f32, 10 classes" "$T/inspect" ||
    sl_fail "inspect does not show teacher 'teacher' at T=1 in f32: $(cat "$T/inspect")"
grep -qE "^shards +2 of 1024 rows" "$T/inspect" ||
    sl_fail "inspect does not show the file's 1024-row shards: $(cat "$T/inspect")"

echo "student with no options, configured by student.env"
set +e; (student_from_env) 2>"$T/student.log"; rc=$?; set -e
sl_check "$rc -eq 0" "student exit $rc: $(tail -3 "$T/student.log")"
lines=$(wc -l <"$T/metrics.jsonl")
sl_check "$lines -eq 10" "student.env says 10 epochs, metrics have $lines lines"
rows=$(sl_metric "$T/metrics.jsonl" rows)
sl_check "$rows -eq $ROWS" "the student used $rows rows, not the $ROWS the cache holds"
[ -s "$T/student.safetensors" ] || sl_fail "no student model written"
[ -s "$T/student.ckpt" ] || sl_fail "no checkpoint written (student.env names one)"
echo "ok: env files match --help; broker, worker and student ran from them alone"

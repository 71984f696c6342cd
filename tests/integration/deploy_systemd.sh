#!/bin/sh
# The systemd units in deploy/systemd, installed by deploy/systemd/install.sh
# into a scratch root (no systemd runs as PID 1 on the test machines, so the
# units are checked, and their commands run, without it):
# 1. `systemd-analyze verify --root` passes on softlabel-broker.service,
#    softlabel-teacher@1.service and softlabel-serve.service with no
#    complaint at all (it also checks that ExecStart= and ExecReload=
#    programs exist in the root), and three broken copies (a misspelt key,
#    a missing program, a bad value) do not pass, so the check can fail;
#    `systemd-analyze security --offline` rates each at most 2.0 (printed);
# 2. the restart policy: Restart=on-failure with RestartPreventExitStatus=2,
#    and the broker really exits 2 on a bad option from its env file;
# 3. each unit's ExecStart=, run by hand as systemd would (EnvironmentFile=
#    lines sourced in order, LoadCredential= files copied mode 0400 into a
#    credentials directory for %d, /etc and /usr/local paths moved into the
#    scratch root, store, dataset, model and endpoint overridden): the broker
#    speaks CURVE and answers `softlabel status` with an allowed key;
#    ExecReload= re-reads the allow-list; a worker instance configured by
#    teacher.env plus teacher-1.env labels the dataset; verify passes; SIGTERM
#    stops the broker with exit 0; the serve unit, on that cache, answers a
#    student with an allowed key (which trains from it), refuses one
#    without, and stops on SIGTERM with exit 0.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
R=$T/root
UNITS=$R/etc/systemd/system
command -v systemd-analyze >/dev/null || sl_fail "systemd-analyze missing (make deps installs systemd)"
systemd-analyze --version | head -1

# --- the scratch root ----------------------------------------------------------------
# make install puts the four programs in $(DESTDIR)$(PREFIX)/bin; copy the
# ones this run tests ($BUILD) the same way rather than rebuild them.
install -d "$R/usr/local/bin" "$R/usr/bin" "$R/usr/lib/systemd"
install -m 0755 "$BIN/softlabel-broker" "$BIN/softlabel-teacher" \
    "$BIN/softlabel-student" "$BIN/softlabel" "$R/usr/local/bin/"
sh "$ROOT/deploy/systemd/install.sh" --root "$R" || sl_fail "install.sh --root failed"
for f in softlabel-broker.service softlabel-teacher@.service softlabel-serve.service; do
	[ -f "$UNITS/$f" ] || sl_fail "install.sh did not install $f"
done
for f in broker teacher student serve; do
	cmp -s "$R/etc/softlabel/$f.env" "$ROOT/deploy/config/$f.env" ||
	    sl_fail "install.sh did not install deploy/config/$f.env"
done
sl_check "$(stat -c %a "$R/etc/softlabel/keys") = 700" "keys/ is not 0700"
# verify resolves units and programs inside the root: the units these refer
# to (multi-user.target, network-online.target, ...) and ExecReload's kill.
cp -a /usr/lib/systemd/system "$R/usr/lib/systemd/"
cp /usr/bin/kill "$R/usr/bin/kill"
ln -s usr/bin "$R/bin"

# --- 1. systemd-analyze verify ------------------------------------------------------
verify() { # unit... ; output in $T/verify.out, status returned
	set +e
	systemd-analyze verify --root="$R" "$@" >"$T/verify.out" 2>&1
	_rc=$?
	set -e
	return $_rc
}
echo "systemd-analyze verify --root=ROOT softlabel-broker.service softlabel-teacher@1.service softlabel-serve.service"
rc=0; verify softlabel-broker.service softlabel-teacher@1.service softlabel-serve.service || rc=$?
sed 's/^/    /' "$T/verify.out"
echo "    (exit $rc, $(wc -l <"$T/verify.out") lines)"
sl_check "$rc -eq 0" "systemd-analyze verify failed"
[ ! -s "$T/verify.out" ] || sl_fail "systemd-analyze verify complained (above)"

broken() { # name sed-expression what
	sed "$2" "$UNITS/softlabel-broker.service" >"$UNITS/$1.service"
	cmp -s "$UNITS/$1.service" "$UNITS/softlabel-broker.service" &&
	    sl_fail "the sed for $1 changed nothing: the unit changed, fix this test"
	rc=0; verify "$1.service" || rc=$?
	if [ "$rc" -eq 0 ] && [ ! -s "$T/verify.out" ]; then
		sl_fail "verify passed a broken unit ($3)"
	fi
	echo "broken copy ($3) fails verify: exit $rc: $(head -1 "$T/verify.out")"
	rm -f "$UNITS/$1.service"
}
broken broken-key 's/^RestartSec=/RestartSecs=/' "misspelt RestartSec="
broken broken-exec 's#bin/softlabel-broker #bin/softlabel-brokr #' "ExecStart= program missing"
broken broken-value 's/^Restart=on-failure/Restart=sometimes/' "Restart=sometimes"

for u in softlabel-broker.service softlabel-teacher@1.service softlabel-serve.service; do
	set +e
	systemd-analyze security --offline=true --threshold=20 --root="$R" "$u" >"$T/sec.out" 2>&1
	rc=$?
	set -e
	tail -n 1 "$T/sec.out"
	sl_check "$rc -eq 0" "$u: exposure above 2.0: $(grep '✗' "$T/sec.out" | head -20)"
done

# --- 2. restart policy ---------------------------------------------------------------
unit_value() { # unit key: the value of the last key= line
	sed -n "s/^$2=//p" "$UNITS/$1" | tail -n 1
}
for u in softlabel-broker.service softlabel-teacher@.service softlabel-serve.service; do
	sl_check "'$(unit_value "$u" Restart)' = on-failure" "$u: Restart= is not on-failure"
	sl_check "'$(unit_value "$u" RestartPreventExitStatus)' = 2" "$u: no RestartPreventExitStatus=2"
	[ -n "$(unit_value "$u" RestartSec)" ] && [ -n "$(unit_value "$u" StartLimitBurst)" ] ||
	    sl_fail "$u: no RestartSec= or StartLimitBurst= back-off"
done

# --- 3. ExecStart= by hand ------------------------------------------------------------
# Paths as the unit has them, moved into the scratch root.
to_root() {
	sed -e "s#/usr/local/bin/#$R/usr/local/bin/#g" -e "s#/etc/softlabel/#$R/etc/softlabel/#g" \
	    -e "s#/var/lib/softlabel/#$R/var/lib/softlabel/#g"
}
# LoadCredential=ID:PATH -> DIR/ID, mode 0400, as systemd hands them over.
load_credentials() { # unit dir
	install -d -m 0700 "$2"
	for _lc in $(sed -n 's/^LoadCredential=//p' "$UNITS/$1"); do
		_id=${_lc%%:*} _src=$(echo "${_lc#*:}" | to_root)
		[ -f "$_src" ] || sl_fail "$1: LoadCredential=$_lc: no $_src"
		install -m 0400 "$_src" "$2/$_id"
	done
}
# The ExecStart= command with %d, %i and the root substituted, in $CMD.
exec_start() { # unit credentials-dir instance
	CMD=$(sed -n 's/^ExecStart=//p' "$UNITS/$1" | to_root |
	    sed -e "s#%d#$2#g" -e "s#%i#$3#g")
	[ -n "$CMD" ] || sl_fail "$1 has no ExecStart="
}
# EnvironmentFile= lines in order; "-" marks one that may be missing.
env_files() { # unit instance
	sed -n 's/^EnvironmentFile=//p' "$UNITS/$1" | sed "s#%i#$2#g" | to_root
}

K=$R/etc/softlabel/keys
for n in broker worker serve; do
	"$BIN/softlabel" keygen "$K/$n" >/dev/null || sl_fail "keygen $n"
done
"$BIN/softlabel" keygen "$T/admin" >/dev/null
"$BIN/softlabel" keygen "$T/worker2" >/dev/null
cp "$K/worker.pub" "$T/admin.pub" "$R/etc/softlabel/allow/"
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 1000 "$T/data.npy"
sl_make_teacher "$T/teacher.safetensors"
PORT=$(sl_free_port)
EP=tcp://127.0.0.1:$PORT

# The broker's unit, run as systemd would run it. The overrides stand for
# an edited /etc/softlabel/broker.env.
run_unit_broker() { # extra-env...
	for f in $(env_files softlabel-broker.service ""); do
		case $f in -*) f=${f#-}; [ -f "$f" ] || continue ;; esac
		set -a; . "$f"; set +a
	done
	export SOFTLABEL_BROKER_STORE="$T/cache" SOFTLABEL_BROKER_DATASET="$T/data.npy" \
	    SOFTLABEL_BROKER_BIND="$EP" "$@"
	set -f
	# shellcheck disable=SC2086
	exec $CMD
}
load_credentials softlabel-broker.service "$T/cred-broker"
sl_check "$(stat -c %a "$T/cred-broker/broker.key") = 400" "credential mode"
exec_start softlabel-broker.service "$T/cred-broker" ""
echo "broker ExecStart: $CMD"

# A bad option from the env file is exit 2, which the unit does not restart.
set +e
(run_unit_broker SOFTLABEL_BROKER_LEASE_TIMEOUT=0) 2>"$T/bad.log"; rc=$?
set -e
sl_check "$rc -eq 2" "broker with SOFTLABEL_BROKER_LEASE_TIMEOUT=0 exit $rc, not 2: $(cat "$T/bad.log")"
grep -q "SOFTLABEL_BROKER_LEASE_TIMEOUT" "$T/bad.log" ||
    sl_fail "the error does not name the variable: $(cat "$T/bad.log")"
echo "bad option in the env file: exit 2 ($(head -1 "$T/bad.log"))"

sl_bg BROKER_PID run_unit_broker 2>>"$T/broker.log"
sl_wait_log "$T/broker.log" " $BROKER_PID softlabel-broker INFO ready" 30
grep -q "INFO CURVE on $EP: .*2 allowed keys" "$T/broker.log" ||
    sl_fail "the unit's broker does not speak CURVE: $(cat "$T/broker.log")"
"$BIN/softlabel" status "$EP" --curve-secret "$T/admin.key" \
    --curve-server "$K/broker.pub" >"$T/status" 2>&1 ||
    sl_fail "softlabel status with an allowed key: $(cat "$T/status")"
cat "$T/status"
grep -q "dataset .*1000 rows" "$T/status" || sl_fail "status: $(cat "$T/status")"

# ExecReload=: re-reads the allow-list (2 keys, then 3).
cp "$T/worker2.pub" "$R/etc/softlabel/allow/"
RELOAD=$(sed -n 's/^ExecReload=//p' "$UNITS/softlabel-broker.service" |
    sed "s#\$MAINPID#$BROKER_PID#g; s#\${MAINPID}#$BROKER_PID#g")
echo "broker ExecReload: $RELOAD"
set -f; $RELOAD; set +f
sl_wait_log "$T/broker.log" "allow-list reloaded: 3 keys" 10

# A worker instance: teacher.env, then teacher-1.env (the instance's file)
# overriding what differs for it.
cat >"$R/etc/softlabel/teacher-1.env" <<EOF
SOFTLABEL_TEACHER_CONNECT=$EP
SOFTLABEL_TEACHER_MODEL=$T/teacher.safetensors
SOFTLABEL_TEACHER_WORKER_NAME=instance-1
SOFTLABEL_TEACHER_THREADS=1
EOF
run_unit_teacher() {
	for f in $(env_files softlabel-teacher@.service 1); do
		case $f in -*) f=${f#-}; [ -f "$f" ] || continue ;; esac
		set -a; . "$f"; set +a
	done
	set -f
	# shellcheck disable=SC2086
	exec $CMD
}
load_credentials softlabel-teacher@.service "$T/cred-teacher-1"
exec_start softlabel-teacher@.service "$T/cred-teacher-1" 1
echo "teacher@1 ExecStart: $CMD"
sl_bg WORKER_PID run_unit_teacher 2>>"$T/worker.log"
set +e; sl_wait_pid "$WORKER_PID" 120; rc=$?; set -e
sl_check "$rc -eq 0" "worker exit $rc: $(tail -3 "$T/worker.log")"
grep -q "INFO worker instance-1 joined" "$T/broker.log" ||
    sl_fail "teacher-1.env's worker name is not in the broker's log"

kill -TERM "$BROKER_PID"
set +e; sl_wait_pid "$BROKER_PID" 30; rc=$?; set -e
sl_check "$rc -eq 0" "broker exit $rc after SIGTERM: $(tail -3 "$T/broker.log")"
"$BIN/softlabel" verify "$T/cache" >"$T/verify" 2>&1 || sl_fail "verify: $(cat "$T/verify")"
cat "$T/verify"
grep -q "1000 records in 1/1 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "verify: $(cat "$T/verify")"

# The serve unit on the broker's cache (its StateDirectory in the root).
install -d "$R/var/lib/softlabel"
ln -s "$T/cache" "$R/var/lib/softlabel/cache"
"$BIN/softlabel" keygen "$T/student" >/dev/null
"$BIN/softlabel" keygen "$T/stranger" >/dev/null
cp "$T/student.pub" "$R/etc/softlabel/students/"
SPORT=$(sl_free_port)
run_unit_serve() {
	for f in $(env_files softlabel-serve.service ""); do
		case $f in -*) f=${f#-}; [ -f "$f" ] || continue ;; esac
		set -a; . "$f"; set +a
	done
	export SOFTLABEL_SERVE_BIND="tcp://127.0.0.1:$SPORT"
	set -f
	# shellcheck disable=SC2086
	exec $CMD
}
load_credentials softlabel-serve.service "$T/cred-serve"
exec_start softlabel-serve.service "$T/cred-serve" ""
echo "serve ExecStart: $CMD"
sl_bg SERVE_PID run_unit_serve 2>>"$T/serve.log"
sl_wait_log "$T/serve.log" "INFO ready" 30
student_from() { # key out
	"$BIN/softlabel-student" --store "tcp://127.0.0.1:$SPORT" --curve-secret "$1" \
	    --curve-server "$K/serve.pub" --connect-timeout 5 --dataset "$T/data.npy" \
	    --arch 784-16-10 --epochs 1 --threads 1 --out "$2"
}
student_from "$T/student.key" "$T/student.safetensors" 2>"$T/student.log" ||
    sl_fail "a student with an allowed key: $(tail -3 "$T/student.log")"
set +e; student_from "$T/stranger.key" "$T/stranger.safetensors" 2>"$T/stranger.log"; src=$?; set -e
sl_check "$src -ne 0" "a student whose key is not in students/ trained from the serve unit"
[ ! -e "$T/stranger.safetensors" ] || sl_fail "the refused student wrote a model"
kill -TERM "$SERVE_PID"
set +e; sl_wait_pid "$SERVE_PID" 30; rc=$?; set -e
sl_check "$rc -eq 0" "serve exit $rc after SIGTERM: $(tail -3 "$T/serve.log")"
echo "serve unit: an allowed student trained from the cache, a stranger was refused (exit $src)"
echo "ok: units verify, broken copies do not; ExecStart/ExecReload work as systemd would run them"

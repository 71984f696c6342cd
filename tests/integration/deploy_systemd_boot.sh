#!/bin/sh
# The systemd units under a real systemd (Debian 12's, 252), sandbox and all.
# The test machines have no systemd as PID 1, so this boots one, as PID 1 of
# new mount, PID, UTS and network namespaces, on an overlay of / whose
# writes go to a tmpfs (nothing lands on the host's disk). Like
# systemd-nspawn it makes /sys and /proc/sys read-only, so the kernel-wide
# units (udev, sysctl, binfmt) skip themselves; the kernel-module unit is
# masked; systemd starts a target of its own, not multi-user.target, so no
# other service of the host is started. Inside, as an administrator would
# (README, "### systemd"): make install's programs, deploy/systemd/install.sh,
# softlabel keygen, then
# - softlabel-broker.service starts (CURVE key by LoadCredential=) and
#   answers softlabel status; `systemctl reload` re-reads the allow-list;
# - softlabel-teacher@1 and @2 label the dataset and end with exit 0, not
#   restarted; softlabel verify passes as the service user;
# - `systemctl stop` stops the broker with exit 0;
# - a bad value in broker.env fails the unit with exit 2 and no restart;
# - kill -9 of the broker: systemd restarts it (Restart=on-failure).
# Needs root (mounts, namespaces).
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
if [ "$(id -u)" -ne 0 ]; then
	echo "SKIP: $(basename "$0") needs root to boot systemd in namespaces; NOT RUN" >&2
	exit 77
fi
[ -x /lib/systemd/systemd ] || sl_fail "no /lib/systemd/systemd (make deps installs systemd)"

# --- what goes in: the programs, deploy/, a dataset and a teacher -------------------
# The programs as make install ships them (built plainly in a sanitized
# run: LeakSanitizer cannot work in the units' sandbox).
S=$T/stage
sl_install_plain "$S/bin"
cp -r "$ROOT/deploy" "$S/"
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 3000 "$S/dataset.npy"
sl_make_teacher "$S/teacher.safetensors"

# The namespaces' first process: overlay, pseudo-filesystems, pivot_root,
# then systemd. Run by unshare --kill-child: killing unshare kills it all.
cat >"$T/boot.sh" <<'EOF'
set -eu
T=$1 M=$1/merged
mount -t tmpfs tmpfs "$T/rw"
mkdir -p "$T/rw/upper" "$T/rw/work" "$M"
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/rw/upper,workdir=$T/rw/work" "$M"
mount -t proc proc "$M/proc"
mount --bind "$M/proc/sys" "$M/proc/sys"
mount -o remount,bind,ro "$M/proc/sys"
mount --rbind /sys "$M/sys"
mount -o remount,bind,ro "$M/sys"
mount --rbind /dev "$M/dev"
mount -t tmpfs tmpfs "$M/run"
mount -t tmpfs tmpfs "$M/tmp"
mkdir -p "$M/opt/stage" "$M/run/oldroot"
mount --bind "$T/stage" "$M/opt/stage"
# Only what this test needs: its own target, no kernel modules.
U=$M/etc/systemd/system
mkdir -p "$U"
printf '[Unit]\nDescription=softlabel boot test\nRequires=basic.target\nAfter=basic.target\n' \
    >"$U/softlabel-boot-test.target"
ln -sf /dev/null "$U/systemd-modules-load.service"
cd "$M"
pivot_root . run/oldroot
umount -l /run/oldroot
# Credentials are made in a child mount namespace and moved into /run:
# that needs shared propagation, as on a booted system.
mount --make-rshared /
exec env container=softlabel-test /lib/systemd/systemd --system \
    --unit=softlabel-boot-test.target --log-target=console
EOF
mkdir -p "$T/rw"
# The mounts vanish with the mount namespace; the control groups systemd
# makes (no cgroup namespace: it shares the host's hierarchies) stay, so on
# exit remove the empty ones that were not there before and have a unit's
# name. rmdir never removes a group that still holds a process.
cg_dirs() {
	find /sys/fs/cgroup -mindepth 1 -type d 2>/dev/null |
	    grep -E '\.(slice|scope|service|mount|socket|target|automount|swap)(/|$)' | sort
}
cg_dirs >"$T/cgroups.before"
boot_cleanup() {
	[ -n "${UNSHARE_PID:-}" ] || return 0
	kill -9 "$UNSHARE_PID" 2>/dev/null || true
	for _try in 1 2 3 4 5; do
		cg_dirs | comm -13 "$T/cgroups.before" - | sort -r >"$T/cgroups.new"
		[ -s "$T/cgroups.new" ] || break
		while read -r _d; do rmdir "$_d" 2>/dev/null || true; done <"$T/cgroups.new"
		sleep 0.2
	done
}
trap 'boot_cleanup; sl_cleanup' EXIT INT TERM
echo "booting $(systemd-analyze --version | head -1) in namespaces"
sl_bg UNSHARE_PID unshare --mount --pid --fork --kill-child --uts --net \
    --propagation private sh "$T/boot.sh" "$T" >"$T/boot.log" 2>&1

# systemd is unshare's child; wait until it answers.
SD=""
i=0
while [ -z "$SD" ]; do
	i=$((i + 1))
	[ "$i" -le 300 ] || sl_fail "systemd did not start: $(tail -5 "$T/boot.log")"
	kill -0 "$UNSHARE_PID" 2>/dev/null || sl_fail "boot failed: $(tail -5 "$T/boot.log")"
	SD=$(pgrep -P "$UNSHARE_PID" 2>/dev/null | head -1) || true
	[ -n "$SD" ] || sleep 0.1
done
inside() { nsenter -t "$SD" -m -p -u -n -r -w "$@"; }
i=0
until state=$(inside systemctl is-system-running 2>/dev/null) ||
    [ "$state" = degraded ]; do
	i=$((i + 1))
	[ "$i" -le 300 ] || sl_fail "systemd inside is '$state': $(inside systemctl --failed --no-pager 2>&1)"
	sleep 0.1
done
echo "systemd inside: $state"
inside ip link set lo up

# Everything below runs inside, as root of the booted system.
cat >"$S/steps.sh" <<'EOF'
set -eu
fail() { echo "FAIL: $*"; exit 1; }
show() { # unit: its state in a fixed order
	for _p in ActiveState Result ExecMainStatus NRestarts; do
		printf '%s=%s' "$_p" "$(systemctl show -p "$_p" --value "$1")"
		[ "$_p" = NRestarts ] || printf ' '
	done
	echo
}
wait_inactive() { # unit: until it is inactive or failed, at most 120 s
	i=0
	while :; do
		s=$(systemctl show -p ActiveState --value "$1")
		[ "$s" = inactive ] || [ "$s" = failed ] && return 0
		i=$((i + 1)); [ "$i" -le 1200 ] || fail "$1 still $s"
		sleep 0.1
	done
}
status() {
	softlabel status tcp://127.0.0.1:5555 --curve-secret /root/admin.key \
	    --curve-server /etc/softlabel/keys/broker.pub --timeout 10
}
cd /opt/stage
install -m 0755 bin/* /usr/local/bin/
sh deploy/systemd/install.sh
softlabel keygen /etc/softlabel/keys/broker >/dev/null
softlabel keygen /etc/softlabel/keys/worker >/dev/null
softlabel keygen /root/admin >/dev/null
softlabel keygen /root/worker2 >/dev/null
cp /root/admin.pub /etc/softlabel/allow/
cp /etc/softlabel/keys/worker.pub /etc/softlabel/allow/host.pub
install -D -m 0644 dataset.npy /srv/softlabel/dataset.npy
install -D -m 0644 teacher.safetensors /srv/softlabel/teacher.safetensors
sed -i 's|^SOFTLABEL_BROKER_SHARD_ROWS=.*|SOFTLABEL_BROKER_SHARD_ROWS=500|' /etc/softlabel/broker.env
sed -i -e 's|^SOFTLABEL_TEACHER_TEMPERATURE=.*|SOFTLABEL_TEACHER_TEMPERATURE=4|' \
    -e 's|^SOFTLABEL_TEACHER_THREADS=.*|SOFTLABEL_TEACHER_THREADS=1|' /etc/softlabel/teacher.env

echo "== systemctl start softlabel-broker"
systemctl start softlabel-broker
i=0
until journalctl -u softlabel-broker --no-pager | grep -q "INFO ready"; do
	i=$((i + 1)); [ "$i" -le 300 ] || fail "no ready line: $(journalctl -u softlabel-broker --no-pager | tail -5; show softlabel-broker)"
	sleep 0.1
done
status || fail "softlabel status: $(journalctl -u softlabel-broker --no-pager -o cat | tail -5; show softlabel-broker)"
journalctl -u softlabel-broker --no-pager -o cat | grep -q "CURVE on tcp://127.0.0.1:5555: .*2 allowed keys" ||
    fail "the broker does not speak CURVE with 2 keys"

echo "== systemctl reload softlabel-broker"
cp /root/worker2.pub /etc/softlabel/allow/
systemctl reload softlabel-broker
i=0
until journalctl -u softlabel-broker --no-pager | grep -q "allow-list reloaded: 3 keys"; do
	i=$((i + 1)); [ "$i" -le 100 ] || fail "no reload line"
	sleep 0.1
done

echo "== systemctl start softlabel-teacher@1 softlabel-teacher@2"
systemctl start softlabel-teacher@1 softlabel-teacher@2
wait_inactive softlabel-teacher@1
wait_inactive softlabel-teacher@2
journalctl -u 'softlabel-teacher@*' --no-pager | tail -4
for n in 1 2; do
	s=$(show softlabel-teacher@$n)
	echo "softlabel-teacher@$n: $s"
	[ "$s" = "ActiveState=inactive Result=success ExecMainStatus=0 NRestarts=0" ] ||
	    fail "softlabel-teacher@$n did not end done: $s"
done
status
runuser -u softlabel -- softlabel verify /var/lib/softlabel/cache | tee /tmp/verify
grep -q "3000 records in 6/6 done shards checked, 0 problems" /tmp/verify || fail "verify"

echo "== kill -9 the broker: restarted"
pid=$(systemctl show -p MainPID --value softlabel-broker)
kill -9 "$pid"
i=0
until [ "$(systemctl show -p NRestarts --value softlabel-broker)" = 1 ] &&
    [ "$(systemctl show -p ActiveState --value softlabel-broker)" = active ]; do
	i=$((i + 1)); [ "$i" -le 300 ] || fail "not restarted: $(show softlabel-broker)"
	sleep 0.1
done
echo "softlabel-broker: $(show softlabel-broker)"

echo "== systemctl stop softlabel-broker"
systemctl stop softlabel-broker
s=$(show softlabel-broker)
echo "softlabel-broker: $s"
case $s in "ActiveState=inactive Result=success ExecMainStatus=0 "*) ;; *) false ;; esac ||
    fail "the broker did not stop with exit 0: $s"

echo "== a bad value in broker.env: exit 2, no restart"
sed -i 's|^SOFTLABEL_BROKER_LEASE_TIMEOUT=.*|SOFTLABEL_BROKER_LEASE_TIMEOUT=0|' /etc/softlabel/broker.env
systemctl reset-failed softlabel-broker 2>/dev/null || true
systemctl restart softlabel-broker || true
wait_inactive softlabel-broker
s=$(show softlabel-broker)
echo "softlabel-broker: $s"
journalctl -u softlabel-broker --no-pager -o cat | tail -1
[ "$s" = "ActiveState=failed Result=exit-code ExecMainStatus=2 NRestarts=0" ] ||
    fail "bad config: $s"
echo "all steps passed"
EOF
set +e
inside sh /opt/stage/steps.sh >"$T/steps.log" 2>&1
rc=$?
set -e
sed 's/^/    /' "$T/steps.log"
sl_check "$rc -eq 0" "the steps under systemd failed (log above)"
echo "ok: both units run under systemd 252 with their sandbox, as the README says"

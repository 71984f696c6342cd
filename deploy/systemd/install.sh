#!/bin/sh
# Install the softlabel systemd units and example configuration.
#
#   make install PREFIX=/usr/local          # the programs, first
#   sh deploy/systemd/install.sh            # as root
#   sh deploy/systemd/install.sh --root DIR # lay the files out under DIR only
#
# Installs softlabel-broker.service, softlabel-teacher@.service and
# softlabel-serve.service into /etc/systemd/system, the example env files
# into /etc/softlabel (an existing file is never overwritten: it is your
# configuration), and creates /etc/softlabel/keys (0700, root: the secret
# keys, read by systemd for LoadCredential=), /etc/softlabel/allow (the
# broker's allow-list of worker public keys) and /etc/softlabel/students
# (softlabel serve's allow-list of student public keys). Without --root it also creates the system user
# softlabel and reloads systemd. Nothing is enabled or started.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
CFG=$HERE/../config
ROOT=
case ${1:-} in
--root) [ $# -eq 2 ] || { echo "usage: install.sh [--root DIR]" >&2; exit 2; }
	ROOT=$2 ;;
"") [ $# -eq 0 ] || { echo "usage: install.sh [--root DIR]" >&2; exit 2; } ;;
*) echo "usage: install.sh [--root DIR]" >&2; exit 2 ;;
esac

for p in softlabel-broker softlabel-teacher softlabel; do
	[ -x "$ROOT/usr/local/bin/$p" ] ||
	    echo "install.sh: note: $ROOT/usr/local/bin/$p is missing (make install PREFIX=/usr/local)" >&2
done

install -d -m 0755 "$ROOT/etc/systemd/system" "$ROOT/etc/softlabel" \
    "$ROOT/etc/softlabel/allow" "$ROOT/etc/softlabel/students"
install -d -m 0700 "$ROOT/etc/softlabel/keys"
install -m 0644 "$HERE/softlabel-broker.service" "$HERE/softlabel-teacher@.service" \
    "$HERE/softlabel-serve.service" "$ROOT/etc/systemd/system/"
for f in broker teacher student serve; do
	if [ -e "$ROOT/etc/softlabel/$f.env" ]; then
		echo "install.sh: keeping $ROOT/etc/softlabel/$f.env (the new example is $CFG/$f.env)" >&2
	else
		install -m 0644 "$CFG/$f.env" "$ROOT/etc/softlabel/$f.env"
	fi
done

if [ -z "$ROOT" ]; then
	if ! id softlabel >/dev/null 2>&1; then
		useradd --system --user-group --home-dir /var/lib/softlabel \
		    --no-create-home --shell /usr/sbin/nologin softlabel
	fi
	if [ -d /run/systemd/system ]; then
		systemctl daemon-reload
	else
		echo "install.sh: systemd is not running here: no daemon-reload" >&2
	fi
fi
echo "installed: $ROOT/etc/systemd/system/softlabel-broker.service, softlabel-teacher@.service, softlabel-serve.service; $ROOT/etc/softlabel/{broker,teacher,student,serve}.env, keys/, allow/, students/"

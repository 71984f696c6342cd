#!/bin/sh
# make-keys.sh DIR [WORKER...] - the CURVE keys of one softlabel deployment.
#
# With `softlabel keygen` it writes into DIR:
#
#   broker.key broker.pub   the broker's pair: softlabel-broker --curve-secret
#                           DIR/broker.key; every client's --curve-server is
#                           DIR/broker.pub
#   probe.key probe.pub     for health probes and `softlabel status`
#   WORKER.key WORKER.pub   one pair per WORKER name; without names, one pair
#                           "workers" that every worker shares
#   allow/                  the public keys the broker admits (probe and
#                           workers, never the broker's own): --allow-keys
#                           DIR/allow
#
# Idempotent: an existing key is kept, never overwritten, so running it again
# with more names adds workers (then `kill -HUP` the broker to re-read
# allow/). A secret key without its .pub, or an allow/ copy that is not the
# key beside it, stops the script: it does not guess which one is right.
#
# The program: $SOFTLABEL_BIN/softlabel when SOFTLABEL_BIN is a directory
# (e.g. build/bin), SOFTLABEL_BIN itself when it is the program, else
# `softlabel` on PATH.
set -eu

me=make-keys.sh
die() { echo "$me: $*" >&2; exit 1; }

[ $# -ge 1 ] || { echo "usage: $me DIR [WORKER...]" >&2; exit 2; }
dir=$1; shift

if [ -n "${SOFTLABEL_BIN:-}" ]; then
	if [ -d "$SOFTLABEL_BIN" ]; then sl=$SOFTLABEL_BIN/softlabel; else sl=$SOFTLABEL_BIN; fi
	[ -x "$sl" ] || die "SOFTLABEL_BIN=$SOFTLABEL_BIN: no softlabel program there"
else
	sl=$(command -v softlabel) ||
	    die "softlabel not found on PATH (install it, or set SOFTLABEL_BIN to build/bin)"
fi

[ $# -gt 0 ] || set -- workers
for w in "$@"; do
	case $w in
	broker | probe) die "worker name '$w' is taken by the broker's or the probe's key" ;;
	"" | *[!A-Za-z0-9._-]* | .*) die "worker name '$w': use letters, digits, '.', '_', '-'" ;;
	esac
done

mkdir -p "$dir/allow"

pair() { # name
	if [ -e "$dir/$1.key" ] || [ -e "$dir/$1.pub" ]; then
		[ -e "$dir/$1.key" ] || die "$dir/$1.pub exists without $1.key"
		[ -e "$dir/$1.pub" ] || die "$dir/$1.key exists without $1.pub"
		echo "kept    $dir/$1.key, $1.pub"
		return 0
	fi
	"$sl" keygen "$dir/$1" >/dev/null || die "softlabel keygen $dir/$1 failed"
	echo "created $dir/$1.key, $1.pub"
}

admit() { # name
	if [ -e "$dir/allow/$1.pub" ]; then
		cmp -s "$dir/$1.pub" "$dir/allow/$1.pub" ||
		    die "$dir/allow/$1.pub differs from $dir/$1.pub (an old key?): remove one"
		return 0
	fi
	cp "$dir/$1.pub" "$dir/allow/$1.pub.tmp"
	chmod 644 "$dir/allow/$1.pub.tmp"
	mv "$dir/allow/$1.pub.tmp" "$dir/allow/$1.pub"
	echo "allowed $dir/allow/$1.pub"
}

pair broker
pair probe
admit probe
for w in "$@"; do
	pair "$w"
	admit "$w"
done

cat <<EOF
broker:  --curve-secret $dir/broker.key --allow-keys $dir/allow
workers: --curve-secret $dir/WORKER.key --curve-server $dir/broker.pub
status:  softlabel status EP --curve-secret $dir/probe.key --curve-server $dir/broker.pub
EOF

#!/bin/sh
# deploy/Dockerfile, checked without a Docker engine (none runs on the test
# machines; the image is not built here):
# 1. tests/lib/dockerfile_check.py: two debian:12 stages; the build stage
#    installs exactly `deploy/deps.sh --list build` and runs make all and
#    make install DESTDIR=/out PREFIX=/usr/local; the runtime stage copies
#    /out/usr/local/bin, installs exactly the packages of the libraries the
#    installed programs link (ldd + dpkg's file lists), and those packages
#    with their dependencies hold every library ldd resolves; USER 10001,
#    WORKDIR and VOLUME /var/lib/softlabel; no ENTRYPOINT;
# 2. the runtime stage as a chroot: the files of exactly those packages
#    (and the dependencies apt would bring) plus the installed programs,
#    nothing else. Each program prints its version there, and a broker and
#    a worker running there as uid 10001 label a dataset into
#    /var/lib/softlabel; softlabel verify passes.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP

# What the build stage's `make install DESTDIR=/out PREFIX=/usr/local` makes:
# the programs this run tests, installed as make install does (built plainly
# in a sanitized run, as the image builds them).
sl_install_plain "$T/out/usr/local/bin"
sh "$ROOT/deploy/deps.sh" --list build >"$T/build-pkgs"

# --- 1. the Dockerfile ------------------------------------------------------------------
$DPY "$ROOT/tests/lib/dockerfile_check.py" "$ROOT/deploy/Dockerfile" \
    "$T/build-pkgs" "$T/out" "$T/rootfs.list" ||
    sl_fail "deploy/Dockerfile: problems above"
[ -f "$ROOT/.dockerignore" ] && grep -qx build "$ROOT/.dockerignore" ||
    sl_fail ".dockerignore does not keep build/ out of the build context"

# --- 2. the runtime stage as a chroot ----------------------------------------------------
if [ "$(id -u)" -eq 0 ]; then
	IN_ROOT="chroot"
else
	IN_ROOT="unshare -r chroot" # user namespaces; no uid 10001 there
fi
RF=$T/rootfs
mkdir -p "$RF/usr/lib" "$RF/usr/lib64" "$RF/usr/bin" "$RF/usr/sbin" "$RF/tmp"
for d in lib lib64 bin sbin; do ln -s "usr/$d" "$RF/$d"; done
tar --no-recursion -cf - -T "$T/rootfs.list" 2>/dev/null | tar -xf - -C "$RF" ||
    sl_fail "copying the runtime packages' files failed"
cp -a "$T/out/usr/local" "$RF/usr/"
echo "chroot: $(wc -l <"$T/rootfs.list") files of the runtime packages, $(du -sh "$RF" | cut -f1)"
for p in softlabel-broker softlabel-teacher softlabel-student softlabel; do
	v=$($IN_ROOT "$RF" "/usr/local/bin/$p" --version 2>&1) ||
	    sl_fail "$p does not run on the runtime stage's libraries: $v"
	echo "in the chroot: $v"
done

[ "$(id -u)" -eq 0 ] || { echo "not root: no labeling as uid 10001 in the chroot"; exit 0; }
# As the image has it: /var/lib/softlabel made for 10001 (install -d -o
# 10001 -g 10001 -m 0750), the programs run as 10001:10001.
install -d -o 10001 -g 10001 -m 0750 "$RF/var/lib/softlabel"
install -d -m 0755 "$RF/data"
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 1000 "$RF/data/x.npy"
sl_make_teacher "$RF/data/teacher.safetensors"
chmod 0644 "$RF/data/x.npy" "$RF/data/teacher.safetensors"
PORT=$(sl_free_port)
EP=tcp://127.0.0.1:$PORT
as_image() { # program args...
	_p=$1; shift
	exec chroot --userspec=10001:10001 "$RF" "/usr/local/bin/$_p" "$@"
}
sl_bg BROKER_PID as_image softlabel-broker --store /var/lib/softlabel/cache \
    --dataset /data/x.npy --bind "$EP" --exit-when-done 2>>"$T/broker.log"
sl_wait_log "$T/broker.log" " $BROKER_PID softlabel-broker INFO ready" 30
sl_bg WORKER_PID as_image softlabel-teacher --connect "$EP" \
    --model /data/teacher.safetensors --threads 1 2>>"$T/worker.log"
set +e; sl_wait_pid "$BROKER_PID" 120; rc=$?; set -e
sl_check "$rc -eq 0" "broker in the chroot exit $rc: $(tail -3 "$T/broker.log")"
set +e; sl_wait_pid "$WORKER_PID" 30; rc=$?; set -e
sl_check "$rc -eq 0" "worker in the chroot exit $rc: $(tail -3 "$T/worker.log")"
sl_check "$(stat -c %u "$RF/var/lib/softlabel/cache/data.mdb") -eq 10001" "the cache is not owned by 10001"
"$BIN/softlabel" verify "$RF/var/lib/softlabel/cache" >"$T/verify" 2>&1 ||
    sl_fail "verify: $(cat "$T/verify")"
cat "$T/verify"
grep -q "1000 records in 1/1 done shards checked, 0 problems" "$T/verify" ||
    sl_fail "verify: $(cat "$T/verify")"
echo "ok: the Dockerfile's stages check out; its runtime libraries run the programs as uid 10001"

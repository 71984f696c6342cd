#!/bin/sh
# Install the Debian 12 packages softlabel builds, tests and demos with.
# Idempotent: installs only what is missing and says nothing when all is there.
# Needs root (or sudo) only when something is missing.
#
#   deploy/deps.sh               install what is missing
#   deploy/deps.sh --list build  print the build packages, one a line
#   deploy/deps.sh --list all    print every package, one a line
set -eu

# What `make all` needs: deploy/Dockerfile's build stage installs exactly
# these (tests/integration/deploy_docker.sh checks it).
BUILD_PKGS="build-essential pkg-config libzmq3-dev libmsgpack-dev liblmdb-dev
libopenblas-dev libcmocka-dev zlib1g-dev libcjson-dev libsodium-dev
libprotobuf-c-dev protobuf-c-compiler libonnx-dev libmicrohttpd-dev"
# Tests, demo and fuzzing (libonnx-testdata: ONNX's backend test cases;
# python3-onnx, python3-lmdb: the PyTorch export and cache checks; python3-lmdb,
# python3-numpy, python3-msgpack, python3-zmq and python3-torch: the Python
# package common/python/softlabel and its tests); systemd (systemd-analyze), iproute2 and nftables
# (network namespaces), python3-yaml (manifests) for the deployment tests;
# python3-matplotlib: softlabel.plot (training curves, the demo's PNG).
TEST_PKGS="dataset-fashion-mnist python3 clang libclang-rt-14-dev
python3-torch python3-numpy python3-zmq python3-msgpack python3-yaml
libonnx-testdata python3-onnx python3-lmdb
systemd iproute2 nftables python3-matplotlib"
PKGS="$BUILD_PKGS $TEST_PKGS"

if [ "${1:-}" = --list ]; then
	case ${2:-} in
	build) set -- $BUILD_PKGS ;;
	all) set -- $PKGS ;;
	*) echo "usage: deps.sh [--list build|all]" >&2; exit 2 ;;
	esac
	printf '%s\n' "$@"
	exit 0
fi
[ $# -eq 0 ] || { echo "usage: deps.sh [--list build|all]" >&2; exit 2; }

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null 2>&1 || { echo "deps: need root to install:$missing" >&2; exit 1; }
	SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >&2

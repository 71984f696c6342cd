#!/bin/sh
# ONNX's own backend test cases (Debian's libonnx-testdata) through the
# graph engine: every float32 case whose ops are all supported must pass,
# with the tolerances ONNX's backend runner uses. Which cases run, how they
# are compared and what "not run" means: tests/conformance/onnx_backend.c.
# Prints the failing cases and the runner's summary,
#   N of M cases passed, K not run (unsupported: op, op, ...)
# and fails when any case that ran failed.
. "$(dirname "$0")/../lib/common.sh"
DATA=${ONNX_TESTDATA:-/usr/share/libonnx-testdata/data}
RUNNER=$BUILD/bin-test/onnx_backend
[ -d "$DATA/node" ] ||
    sl_fail "$DATA: libonnx-testdata is not installed (make deps installs it)"
[ -x "$RUNNER" ] || sl_fail "$RUNNER is not built (make all)"
sl_tmpdir; T=$SL_TMP

start=$(date +%s)
rc=0
# Each case runs in a child with its own 30 s limit; the whole run takes
# well under a minute, so 300 s means something hangs outside the cases.
timeout 300 "$RUNNER" -d "$DATA" >"$T/out" 2>&1 || rc=$?
cat "$T/out"
echo "onnx_backend: $(($(date +%s) - start)) s, exit $rc"
grep -Eq '^[0-9]+ of [0-9]+ cases passed, [0-9]+ not run \(unsupported:' \
    "$T/out" || sl_fail "the runner printed no summary line (exit $rc)"
[ "$rc" -eq 0 ] || sl_fail "conformance: a case of a supported op failed"

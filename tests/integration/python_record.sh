#!/bin/sh
# softlabel.record (common/python) against the C soft-label code itself:
# common/sl_label.c built here as a shared object with the project's flags
# and called through ctypes (tests/python/test_record.py): encoder bytes,
# checker verdicts on mutated records, distributions at any temperature.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
${CC:-cc} -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O2 -fno-math-errno -shared -fPIC \
    -Icommon -o "$T/libsllabel.so" "$ROOT/common/sl_label.c" "$ROOT/common/sl_err.c" -llmdb -lz -lm ||
    sl_fail "building sl_label.c as a shared object failed"
PYTHONPATH="$ROOT/common/python" $DPY "$ROOT/tests/python/test_record.py" "$T/libsllabel.so" ||
    sl_fail "softlabel.record differs from sl_label.c"

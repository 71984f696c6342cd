#!/bin/sh
# softlabel.views (common/python) against sl_view (common/sl_view.c) itself,
# through build/bin-test/view_dump: on Fashion-MNIST rows and random u8 and
# float32 rows of 1 and 3 channels, every recipe item alone and together,
# the drawn parameters and every byte of every view are equal, so a
# PyTorch student sees exactly the pixels a softlabel worker labeled.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
DUMP=$BUILD/bin-test/view_dump
[ -x "$DUMP" ] || sl_fail "$DUMP not built (make all)"
for bad in crop=0 mirror; do
	if "$DUMP" "$bad" 1 u8 1 2 2 1 1 /dev/null "$T/x" 2>"$T/err"; then
		sl_fail "view_dump accepted recipe '$bad'"
	fi
done
PYTHONPATH="$ROOT/common/python" $DPY "$ROOT/tests/python/test_views.py" "$DUMP" "$T" \
    "$FMNIST/train-images-idx3-ubyte.gz" || sl_fail "softlabel.views differs from sl_view"

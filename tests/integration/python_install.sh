#!/bin/sh
# make install puts the Python package where Debian's python3 finds it (for
# PREFIX=/usr and /usr/local), the installed copy imports from outside the
# tree, and make uninstall removes every file install wrote.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
IB=$BUILD
if [ -n "${SL_SANITIZED:-}" ]; then
	# make install links what is out of date with the flags it is given
	# (none): a sanitizer tree would be relinked without its runtime. A
	# plain build is what gets installed anyway.
	IB=$T/plain
	echo "sanitized run: installing a plain build from $IB"
fi
for prefix in /usr/local /usr; do
	D=$T/root$prefix
	make --no-print-directory -C "$ROOT" BUILD="$IB" DESTDIR="$T/root" PREFIX="$prefix" \
	    install >"$T/install.log" 2>&1 || sl_fail "make install: $(tail -3 "$T/install.log")"
	pkg=$(find "$T/root" -name __init__.py -path '*/softlabel/*')
	sl_check "-n '$pkg'" "no softlabel/__init__.py installed under $prefix"
	dir=$(dirname "$(dirname "$pkg")")
	# Without DESTDIR that directory is on Debian's python3 path.
	want=${dir#"$T/root"}
	$DPY -c 'import sys; sys.exit(0 if sys.argv[1] in sys.path else 1)' "$want" ||
	    sl_fail "$want is not on /usr/bin/python3's sys.path"
	for f in "$ROOT"/common/python/softlabel/*.py; do
		cmp -s "$f" "$dir/softlabel/$(basename "$f")" || sl_fail "$(basename "$f") not installed as is"
	done
	# The installed copy imports from outside the tree (and not the tree's).
	(cd "$T" && PYTHONPATH="$dir" $DPY -c 'import softlabel, softlabel.safetensors, softlabel.record, softlabel.cache
import sys; sys.exit(0 if softlabel.__file__.startswith(sys.argv[1]) else 1)' "$dir") ||
	    sl_fail "the installed package does not import from $dir"
	for p in $SL_PROGS; do
		sl_check "-x '$D/bin/$p'" "$p not installed"
	done
	make --no-print-directory -C "$ROOT" BUILD="$IB" DESTDIR="$T/root" PREFIX="$prefix" \
	    uninstall >"$T/uninstall.log" 2>&1 || sl_fail "make uninstall: $(tail -3 "$T/uninstall.log")"
	left=$(find "$T/root" -type f | head -5)
	sl_check "-z '$left'" "make uninstall left files: $left"
	sl_check "! -e '$dir/softlabel'" "make uninstall left $dir/softlabel"
	echo "PREFIX=$prefix: package in $want, uninstalled cleanly"
done

#!/bin/sh
# make install into a DESTDIR, PREFIX=/usr/local: the programs, the shared
# library (soname libsoftlabel.so.0, with its .so symlinks) and the static
# one, every public header, softlabel.pc, the man pages and the Python
# package. A small C program is compiled against the installed tree with
# pkg-config alone (PKG_CONFIG_SYSROOT_DIR for the DESTDIR), linked to the
# shared library, and run: it encodes a soft-label record with the library
# and reads it back; its numbers are checked against numpy. Each man page
# renders with man -l, lists every option its program's --help lists, and
# equals what deploy/manpage.sh makes from that --help now. make uninstall
# then leaves no file and no symlink behind.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
R=$T/root
P=/usr/local
IB=$BUILD
if [ -n "${SL_SANITIZED:-}" ]; then
	# A sanitized library cannot be linked by a plain program: install a
	# plain build (as an image or a package would).
	IB=$T/plain
	echo "sanitized run: installing a plain build from $IB"
fi
make --no-print-directory -C "$ROOT" BUILD="$IB" DESTDIR="$R" PREFIX="$P" \
    install >"$T/install.log" 2>&1 || sl_fail "make install: $(tail -5 "$T/install.log")"
(cd "$R" && find . ! -type d | sort) >"$T/installed"
echo "installed $(wc -l <"$T/installed") files and links"

# --- what is there ----------------------------------------------------------------
for p in $SL_PROGS; do
	sl_check "-x '$R$P/bin/$p'" "$p not installed"
done
# A page per program, and one for softlabel serve (a subcommand).
PAGES="$SL_PROGS softlabel-serve"
for p in $PAGES; do
	sl_check "-f '$R$P/share/man/man1/$p.1'" "no man page for $p"
done
L=$R$P/lib
sl_check "-f '$L/libsoftlabel.so.0.1.0' -a -f '$L/libsoftlabel.a'" "libraries missing: $(ls "$L")"
sl_check "'$(readlink "$L/libsoftlabel.so.0")' = libsoftlabel.so.0.1.0" "libsoftlabel.so.0 -> $(readlink "$L/libsoftlabel.so.0")"
sl_check "'$(readlink "$L/libsoftlabel.so")' = libsoftlabel.so.0" "libsoftlabel.so -> $(readlink "$L/libsoftlabel.so")"
soname=$(readelf -d "$L/libsoftlabel.so.0.1.0" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
sl_check "'$soname' = libsoftlabel.so.0" "soname '$soname'"
for h in "$ROOT"/common/sl_*.h; do
	cmp -s "$h" "$R$P/include/softlabel/$(basename "$h")" ||
	    sl_fail "header $(basename "$h") not installed as is"
done
export PKG_CONFIG_PATH="$L/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$R"
pkg-config --exists softlabel || sl_fail "pkg-config does not find softlabel.pc"
sl_check "'$(pkg-config --modversion softlabel)' = 0.1.0" "version $(pkg-config --modversion softlabel)"
echo "pkg-config: $(pkg-config --cflags --libs softlabel)"

# --- a program built against the installed tree -------------------------------------
cat >"$T/prog.c" <<'C'
/* Encode logits as a dense f32 record at T = 2 with libsoftlabel, check
 * it, read the distribution back at T = 2 and at T = 1. */
#include <stdio.h>
#include <sl_err.h>
#include <sl_label.h>

int
main(void)
{
	const float z[4] = { 2.0f, -1.0f, 0.5f, 3.0f };
	sl_label_fmt fmt = { SL_ENC_F32, 4, 0 }, got;
	unsigned char rec[64];
	float scratch[8], p[4];
	sl_errmsg why = { "" };

	if (sl_label_size(&fmt) > sizeof rec ||
	    sl_label_encode(&fmt, z, 2.0f, scratch, rec) != 0 ||
	    sl_label_check(rec, sl_label_size(&fmt), &fmt, &got, &why) != 0) {
		fprintf(stderr, "record: %s\n", why.text);
		return 1;
	}
	for (float T = 2.0f; T >= 1.0f; T -= 1.0f) {
		sl_label_probs(rec, 2.0f, T, p);
		printf("T=%g %.7f %.7f %.7f %.7f\n", (double)T, (double)p[0],
		    (double)p[1], (double)p[2], (double)p[3]);
	}
	printf("%s\n", sl_strerror(SL_ECORRUPT));
	return 0;
}
C
# shellcheck disable=SC2046
cc -std=c11 -Wall -Werror $(pkg-config --cflags softlabel) -o "$T/prog" "$T/prog.c" \
    $(pkg-config --libs softlabel) 2>"$T/cc.log" || sl_fail "compiling against the install: $(cat "$T/cc.log")"
readelf -d "$T/prog" | grep -q "NEEDED.*\[libsoftlabel.so.0\]" ||
    sl_fail "the program is not linked to libsoftlabel.so.0"
LD_LIBRARY_PATH="$L" ldd "$T/prog" | grep "libsoftlabel.so.0 => $L/libsoftlabel.so.0 " >/dev/null ||
    sl_fail "the loader does not take the installed library: $(LD_LIBRARY_PATH="$L" ldd "$T/prog")"
LD_LIBRARY_PATH="$L" "$T/prog" >"$T/prog.out" || sl_fail "the program failed"
cat "$T/prog.out"
$DPY - "$T/prog.out" <<'PY' || sl_fail "the program's numbers"
import sys, numpy as np
lines = open(sys.argv[1]).read().splitlines()
z = np.array([2.0, -1.0, 0.5, 3.0])
for line, T in zip(lines[:2], (2.0, 1.0)):
    name, *vals = line.split()
    assert name == f"T={T:g}", line
    want = np.exp(z / T - (z / T).max()); want /= want.sum()
    err = np.abs(np.array(vals, dtype=float) - want).max()
    assert err < 1e-6, f"{line}: max error {err} against numpy"
assert "corrupt" in lines[2] or "checksum" in lines[2], lines[2]
print("the installed library computes what numpy does")
PY

# --- man pages ------------------------------------------------------------------------
for p in $PAGES; do
	page=$R$P/share/man/man1/$p.1
	# softlabel-serve(1) is `softlabel serve`'s page.
	bin=$p sub=
	[ "$p" = softlabel-serve ] && bin=softlabel sub=serve
	MANWIDTH=100 man -l "$page" >"$T/$p.txt" 2>"$T/man.err" || sl_fail "man -l $p.1: $(cat "$T/man.err")"
	[ ! -s "$T/man.err" ] || sl_fail "man -l $p.1 warns: $(cat "$T/man.err")"
	for s in NAME SYNOPSIS DESCRIPTION OPTIONS "EXIT STATUS"; do
		grep -q "^$s" "$T/$p.txt" || sl_fail "$p.1 has no $s section"
	done
	# shellcheck disable=SC2086
	"$IB/bin/$bin" $sub --help >"$T/$p.help"
	n=0
	for o in $(grep -oE '^  --[a-z0-9-]+' "$T/$p.help"); do
		grep -qE "^ +$o( |\$)" "$T/$p.txt" || sl_fail "$p.1 does not list $o"
		n=$((n + 1))
	done
	# shellcheck disable=SC2086
	sh "$ROOT/deploy/manpage.sh" "$IB/bin/$bin" "$p" 0.1.0 \
	    "$(awk '/^\.SH NAME$/ { getline; sub(/^[^ ]* \\- /, ""); print; exit }' "$page")" \
	    $sub >"$T/$p.1.now"
	cmp -s "$T/$p.1.now" "$page" || sl_fail "$p.1 differs from its --help now: $(diff "$page" "$T/$p.1.now" | head -5)"
	echo "man $p: renders, lists its $n options, matches --help"
done

# --- uninstall ------------------------------------------------------------------------
make --no-print-directory -C "$ROOT" BUILD="$IB" DESTDIR="$R" PREFIX="$P" \
    uninstall >"$T/uninstall.log" 2>&1 || sl_fail "make uninstall: $(tail -3 "$T/uninstall.log")"
left=$(cd "$R" && find . ! -type d | head -5)
sl_check "-z '$left'" "make uninstall left: $left"
sl_check "! -e '$R$P/include/softlabel'" "make uninstall left include/softlabel"
echo "make uninstall removed all $(wc -l <"$T/installed") files and links"
echo "install_tree: ok"

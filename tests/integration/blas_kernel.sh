#!/bin/sh
# The OpenBLAS kernel at start-up (common/sl_blas.h): a real softlabel-student
# run logs exactly one "blas kernel=..." line, in its own pid (a re-exec keeps
# the pid), saying what happened:
#
#  1. OPENBLAS_CORETYPE unset: OpenBLAS's own pick kept (how=default), or a
#     better one chosen from cpuid (how=cpuid); either way a kernel of the
#     best class /proc/cpuinfo says this CPU has.
#  2. OPENBLAS_CORETYPE set by the machine (a CI runner, a module file, an
#     image): respected as it is, never unset for this assertion.
#  3. OPENBLAS_CORETYPE=Prescott: respected (how=env), no re-exec.
#  4. The re-exec itself, on any CPU OpenBLAS knows: Prescott with the test
#     switch that treats it as OpenBLAS's own pick must come back as a
#     better kernel, and OpenBLAS's config string must name it (the library
#     really loaded it).
#  5. A self-check failure (simulated) under the default kernel falls back
#     to a safer one; under a user's kernel it is an ERROR and not
#     overridden; failing under every kernel stops after a bounded number of
#     re-execs.
#  6. A kernel the CPU cannot run (on CPUs without AVX-512): replaced when it
#     is OpenBLAS's pick, an ERROR (and no self-check) when it is the user's.
#
# Scenarios 1, 4 and 5 unset OPENBLAS_CORETYPE for their own child only
# (env -u): the test changes nothing around it, so a machine that sets the
# variable keeps it for everything else, scenario 2 included.
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
X=$FMNIST/t10k-images-idx3-ubyte.gz
Y=$FMNIST/t10k-labels-idx1-ubyte.gz
ORIG=${OPENBLAS_CORETYPE-}

# Run a short real training with the given environment changes; the log in
# $T/log, the blas line in $LINE. Fails unless there is exactly one, from
# the pid we started.
run() { # env-args...
	env -u SOFTLABEL_BLAS_EXEC -u SOFTLABEL_BLAS_TEST_AS_DEFAULT \
	    -u SOFTLABEL_BLAS_TEST_SELFCHECK_FAIL "$@" \
	    "$BIN/softlabel-student" --dataset "$X" --labels "$Y" \
	    --arch 784-16-10 --epochs 1 --threads 1 --out "$T/m.safetensors" \
	    2>"$T/log" &
	pid=$!
	wait "$pid" || sl_fail "softlabel-student ($*) failed: $(tail -3 "$T/log")"
	n=$(sl_count "$T/log" "softlabel-student [A-Z]+ blas kernel=")
	[ "$n" -eq 1 ] || sl_fail "($*): $n blas lines, want 1: $(cat "$T/log")"
	LINE=$(grep -E "softlabel-student [A-Z]+ blas kernel=" "$T/log")
	echo "$LINE" | grep -q "Z $pid softlabel-student " ||
	    sl_fail "($*): the blas line is not from pid $pid: $LINE"
	KERNEL=$(echo "$LINE" | sed -n 's/.* blas kernel=\([^ ]*\) .*/\1/p')
	HOW=$(echo "$LINE" | sed -n 's/.* how=\([a-z]*\) .*/\1/p')
	echo "($*): kernel=$KERNEL how=$HOW"
}
has() { grep -m1 '^flags' /proc/cpuinfo | grep -qw "$1"; }
class=sse
has avx && class=avx
has avx2 && has fma && class=avx2
has avx512f && has avx512bw && has avx512dq && has avx512vl && class=avx512
echo "cpu class from /proc/cpuinfo: $class"

# 1. unset
run -u OPENBLAS_CORETYPE
case $HOW in default|cpuid) ;; *) sl_fail "unset: how=$HOW: $LINE" ;; esac
case $class:$KERNEL in
avx512:SkylakeX|avx512:Cooperlake|avx512:SapphireRapids) ;;
avx2:Haswell|avx2:Zen|avx2:Excavator) ;;
avx:Sandybridge|avx:Bulldozer|avx:Piledriver|avx:Steamroller) ;;
sse:*) ;;
*) sl_fail "unset: kernel $KERNEL is not of this CPU's class $class: $LINE" ;;
esac
echo "$LINE" | grep -q "selfcheck=ok" || sl_fail "unset: self-check: $LINE"
[ "$HOW" = default ] || echo "$LINE" | grep -q "over OpenBLAS's own pick " ||
    sl_fail "unset: a cpuid choice must name OpenBLAS's own pick: $LINE"
BEST=$KERNEL
"$BIN/softlabel" doctor >"$T/doctor" 2>&1 || true
echo "softlabel doctor here:"; sed 's/^/  /' "$T/doctor"

# 2. set by the machine: respected as it is
if [ -n "$ORIG" ]; then
	run OPENBLAS_CORETYPE="$ORIG"
	[ "$HOW" = env ] || sl_fail "machine's OPENBLAS_CORETYPE=$ORIG: how=$HOW: $LINE"
	echo "$LINE" | grep -qF "OPENBLAS_CORETYPE=$ORIG, respected" ||
	    sl_fail "machine's value not reported as respected: $LINE"
	[ "${OPENBLAS_CORETYPE-}" = "$ORIG" ] || sl_fail "the test changed OPENBLAS_CORETYPE"
else
	echo "OPENBLAS_CORETYPE not set on this machine: scenario 2 has nothing to respect"
fi

# 3. Prescott set by the user: respected, no re-exec
run OPENBLAS_CORETYPE=Prescott
[ "$KERNEL" = Prescott ] && [ "$HOW" = env ] ||
    sl_fail "OPENBLAS_CORETYPE=Prescott not respected: $LINE"
echo "$LINE" | grep -q "OPENBLAS_CORETYPE=Prescott, respected" || sl_fail "$LINE"
echo "$LINE" | grep -q 'openblas="[^"]* Prescott ' || sl_fail "config: $LINE"
echo "$LINE" | grep -q "selfcheck=ok" || sl_fail "Prescott self-check: $LINE"
grep -q "INFO training .* openblas Prescott" "$T/log" ||
    sl_fail "the trainer did not run Prescott: $(cat "$T/log")"

# 4. the re-exec: Prescott as if OpenBLAS had picked it
run OPENBLAS_CORETYPE=Prescott SOFTLABEL_BLAS_TEST_AS_DEFAULT=1
if [ "$class" = sse ]; then
	[ "$HOW" = default ] || sl_fail "SSE-only CPU: nothing better, yet $LINE"
else
	[ "$HOW" = cpuid ] && [ "$KERNEL" != Prescott ] ||
	    sl_fail "generic pick not replaced: $LINE"
	echo "$LINE" | grep -q "over OpenBLAS's own pick Prescott" || sl_fail "$LINE"
	echo "$LINE" | grep -q "openblas=\"[^\"]* $KERNEL " ||
	    sl_fail "OpenBLAS did not load $KERNEL: $LINE"
	grep -q "INFO training .* openblas $KERNEL" "$T/log" ||
	    sl_fail "the trainer did not run $KERNEL: $(cat "$T/log")"
fi

# 5a. self-check failing under the kernel of scenario 1: a safer one
run -u OPENBLAS_CORETYPE SOFTLABEL_BLAS_TEST_SELFCHECK_FAIL="$BEST"
if [ "$BEST" = Prescott ]; then
	echo "$LINE" | grep -q " ERROR blas .*MISMATCH" || sl_fail "$LINE"
else
	[ "$HOW" = fallback ] && [ "$KERNEL" != "$BEST" ] ||
	    sl_fail "no fallback from a failing $BEST: $LINE"
	echo "$LINE" | grep -q "self-check failed under $BEST" || sl_fail "$LINE"
	echo "$LINE" | grep -q "selfcheck=ok" || sl_fail "$LINE"
fi
# 5b. under the user's kernel: reported at ERROR, not overridden
run OPENBLAS_CORETYPE=Prescott SOFTLABEL_BLAS_TEST_SELFCHECK_FAIL=Prescott
[ "$KERNEL" = Prescott ] && [ "$HOW" = env ] || sl_fail "user's kernel overridden: $LINE"
echo "$LINE" | grep -q " ERROR blas .*MISMATCH.*not overridden" || sl_fail "$LINE"
# 5c. failing everywhere: a bounded chain of execs, then an ERROR
run -u OPENBLAS_CORETYPE SOFTLABEL_BLAS_TEST_SELFCHECK_FAIL='*'
echo "$LINE" | grep -q " ERROR blas .*MISMATCH" || sl_fail "$LINE"

# 6. a kernel this CPU cannot run (SkylakeX without AVX-512 dies of SIGILL in
#    sgemm): as OpenBLAS's own pick it is replaced; as the user's it stays,
#    with an ERROR, and the self-check is skipped (so only doctor runs it).
if [ "$class" != avx512 ]; then
	run OPENBLAS_CORETYPE=SkylakeX SOFTLABEL_BLAS_TEST_AS_DEFAULT=1
	[ "$HOW" = fallback ] && [ "$KERNEL" != SkylakeX ] ||
	    sl_fail "an unrunnable default kernel was kept: $LINE"
	set +e
	env -u SOFTLABEL_BLAS_EXEC OPENBLAS_CORETYPE=SkylakeX "$BIN/softlabel" doctor \
	    >"$T/doctor" 2>"$T/doctor.err"
	rc=$?
	set -e
	[ "$rc" -eq 1 ] || sl_fail "doctor under an unrunnable kernel: exit $rc"
	grep -q "^self-check  skipped" "$T/doctor" || sl_fail "doctor: $(cat "$T/doctor")"
	grep -q "ERROR blas kernel=SkylakeX how=env.*needs avx512f" "$T/doctor.err" ||
	    sl_fail "no ERROR for an unrunnable user kernel: $(cat "$T/doctor.err")"
fi
# 7. --precision bf16 is refused with what is missing, before any work.
set +e
"$BIN/softlabel-teacher" --model "$T/none.onnx" --precision bf16 2>"$T/bf16.err"
rc=$?
set -e
[ "$rc" -eq 2 ] || sl_fail "--precision bf16: exit $rc, expected 2"
grep -q "precision bf16 cannot run here: .*\(AVX512-BF16\|cblas_sbgemm\|no bf16 path\)" "$T/bf16.err" ||
    sl_fail "--precision bf16: no reason: $(cat "$T/bf16.err")"
cat "$T/bf16.err"
echo "blas kernel choice: all scenarios as expected"

/* sl_blas: cpuid decoding, the kernel choice as a pure function of
 * (corename, features, environment), the fallback order, and the sgemm
 * self-check, which must pass under the kernel this test runs with (main()
 * starts like the programs do, so that is the kernel softlabel chooses here)
 * and must catch a wrong sgemm, however small the error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "sl_blas.h"
#include "sl_err.h"

/* cpuid bits, as the SDM numbers them */
#define L1C_SSE3 (1u << 0)
#define L1C_SSSE3 (1u << 9)
#define L1C_FMA (1u << 12)
#define L1C_SSE41 (1u << 19)
#define L1C_SSE42 (1u << 20)
#define L1C_OSXSAVE (1u << 27)
#define L1C_AVX (1u << 28)
#define L7B_AVX2 (1u << 5)
#define L7B_AVX512F (1u << 16)
#define L7B_AVX512DQ (1u << 17)
#define L7B_AVX512BW (1u << 30)
#define L7B_AVX512VL (1u << 31)
#define L7S1A_BF16 (1u << 5)

static void
regs_for(sl_blas_cpuid *r, const char *vendor, int avx2, int avx512,
    int bf16, uint64_t xcr0)
{
	memset(r, 0, sizeof *r);
	r->max_leaf = 0x1f;
	memcpy(&r->vendor[0], vendor, 4);     /* ebx */
	memcpy(&r->vendor[1], vendor + 4, 4); /* edx */
	memcpy(&r->vendor[2], vendor + 8, 4); /* ecx */
	r->l1_ecx = L1C_SSE3 | L1C_SSSE3 | L1C_SSE41 | L1C_SSE42 | L1C_OSXSAVE;
	if (avx2) {
		r->l1_ecx |= L1C_AVX | L1C_FMA;
		r->l7_ebx |= L7B_AVX2;
	}
	if (avx512)
		r->l7_ebx |= L7B_AVX512F | L7B_AVX512DQ | L7B_AVX512BW |
		    L7B_AVX512VL;
	if (bf16)
		r->l7s1_eax |= L7S1A_BF16;
	r->xcr0 = xcr0;
}

static sl_blas_features
features(const char *vendor, int avx2, int avx512, int bf16, uint64_t xcr0)
{
	sl_blas_cpuid r;
	sl_blas_features f;

	regs_for(&r, vendor, avx2, avx512, bf16, xcr0);
	sl_blas_features_parse(&r, &f);
	return f;
}

#define INTEL "GenuineIntel"
#define AMD "AuthenticAMD"
#define XCR0_ZMM 0xe7u /* x87, SSE, AVX, opmask, zmm halves */
#define XCR0_YMM 0x7u

static void
test_features_parse(void **state)
{
	sl_blas_features f;
	char buf[200];

	(void)state;
	f = features(INTEL, 1, 1, 1, XCR0_ZMM);
	assert_string_equal(f.vendor, INTEL);
	assert_int_equal(f.bits & SL_CPU_AVX512_SKX, SL_CPU_AVX512_SKX);
	assert_true(f.bits & SL_CPU_AVX2);
	assert_true(f.bits & SL_CPU_FMA);
	assert_true(sl_blas_has_bf16(&f));
	sl_blas_features_format(f.bits, buf, sizeof buf);
	assert_string_equal(buf, "sse3,ssse3,sse4.1,sse4.2,avx,fma,avx2,"
	    "avx512f,avx512bw,avx512dq,avx512vl,avx512_bf16");

	/* An AVX-512 CPU whose OS (or hypervisor) does not save zmm state:
	 * no AVX-512 to run, AVX2 still fine. */
	f = features(INTEL, 1, 1, 1, XCR0_YMM);
	assert_int_equal(f.bits & (SL_CPU_AVX512_SKX | SL_CPU_AVX512_BF16), 0);
	assert_true(f.bits & SL_CPU_AVX2);
	assert_false(sl_blas_has_bf16(&f));

	/* No ymm state either: no AVX, so no FMA or AVX2. */
	f = features(INTEL, 1, 1, 0, 0x3);
	assert_int_equal(f.bits & (SL_CPU_AVX | SL_CPU_FMA | SL_CPU_AVX2), 0);
	sl_blas_features_format(f.bits, buf, sizeof buf);
	assert_string_equal(buf, "sse3,ssse3,sse4.1,sse4.2");

	/* OSXSAVE off: whatever xcr0 says is not to be believed. */
	sl_blas_cpuid r;
	regs_for(&r, AMD, 1, 0, 0, XCR0_YMM);
	r.l1_ecx &= ~L1C_OSXSAVE;
	sl_blas_features_parse(&r, &f);
	assert_int_equal(f.bits & SL_CPU_AVX, 0);

	/* Leaf 7 absent: no AVX2 even if the register happens to hold bits. */
	regs_for(&r, AMD, 1, 0, 0, XCR0_YMM);
	r.max_leaf = 6;
	sl_blas_features_parse(&r, &f);
	assert_true(f.bits & SL_CPU_AVX);
	assert_int_equal(f.bits & SL_CPU_AVX2, 0);

	sl_blas_features_format(0, buf, sizeof buf);
	assert_string_equal(buf, "none");
	/* truncation stays NUL-terminated and reports the length needed */
	assert_int_equal(sl_blas_features_format(SL_CPU_SSE3 | SL_CPU_SSSE3,
	    buf, 4), (int)strlen("sse3,ssse3"));
	assert_string_equal(buf, "sse");
}

static void
test_kernel_runs(void **state)
{
	const sl_blas_features avx2 = features(AMD, 1, 0, 0, XCR0_YMM);
	const sl_blas_features skx = features(INTEL, 1, 1, 0, XCR0_ZMM);
	unsigned missing = 0;

	(void)state;
	assert_int_equal(sl_blas_kernel_runs("Zen", &avx2, NULL), 1);
	assert_int_equal(sl_blas_kernel_runs("haswell", &avx2, NULL), 1);
	assert_int_equal(sl_blas_kernel_runs("SkylakeX", &avx2, &missing), 0);
	assert_int_equal(missing, SL_CPU_AVX512_SKX);
	assert_int_equal(sl_blas_kernel_runs("SkylakeX", &skx, NULL), 1);
	/* Cooperlake's bf16 kernels need AVX512-BF16 */
	assert_int_equal(sl_blas_kernel_runs("Cooperlake", &skx, &missing), 0);
	assert_int_equal(missing, SL_CPU_AVX512_BF16);
	assert_int_equal(sl_blas_kernel_runs("Zen5", &skx, NULL), -1);
}

static void
test_generic_on_avx512_picks_skylakex(void **state)
{
	const sl_blas_features f = features(INTEL, 1, 1, 1, XCR0_ZMM);
	const char *generic[] = { "Prescott", "Core2", "Katmai", "Atom",
		"Nehalem", "Sandybridge", "Haswell" };
	sl_blas_choice c;

	(void)state;
	for (size_t i = 0; i < sizeof generic / sizeof generic[0]; i++) {
		assert_int_equal(sl_blas_choose(generic[i], &f, NULL, NULL, 0,
		    &c), 0);
		assert_int_equal(c.reexec, 1);
		assert_int_equal(c.how, SL_BLAS_CPUID);
		assert_string_equal(c.kernel, "SkylakeX");
		assert_string_equal(c.from, generic[i]);
		assert_int_equal(c.execs, 1);
	}
	/* An empty OPENBLAS_CORETYPE is unset, as OpenBLAS reads it. */
	assert_int_equal(sl_blas_choose("Prescott", &f, "", NULL, 0, &c), 0);
	assert_int_equal(c.reexec, 1);
}

static void
test_generic_on_avx2_picks_haswell_or_zen(void **state)
{
	const sl_blas_features intel = features(INTEL, 1, 0, 0, XCR0_YMM);
	const sl_blas_features amd = features(AMD, 1, 0, 0, XCR0_YMM);
	sl_blas_choice c;

	(void)state;
	assert_int_equal(sl_blas_choose("Prescott", &intel, NULL, NULL, 0, &c), 0);
	assert_true(c.reexec);
	assert_string_equal(c.kernel, "Haswell");
	assert_int_equal(sl_blas_choose("Nehalem", &amd, NULL, NULL, 0, &c), 0);
	assert_true(c.reexec);
	assert_string_equal(c.kernel, "Zen");
	/* AVX without AVX2: Sandybridge */
	sl_blas_features avx = intel;
	avx.bits &= ~(unsigned)(SL_CPU_AVX2 | SL_CPU_FMA);
	assert_int_equal(sl_blas_choose("Core2", &avx, NULL, NULL, 0, &c), 0);
	assert_string_equal(c.kernel, "Sandybridge");
	/* SSE only: Prescott is all there is, nothing to gain */
	avx.bits &= ~(unsigned)SL_CPU_AVX;
	assert_int_equal(sl_blas_choose("Core2", &avx, NULL, NULL, 0, &c), 0);
	assert_false(c.reexec);
	assert_int_equal(c.how, SL_BLAS_DEFAULT);
}

static void
test_already_good_is_kept(void **state)
{
	const sl_blas_features skx = features(INTEL, 1, 1, 0, XCR0_ZMM);
	const sl_blas_features amd = features(AMD, 1, 0, 0, XCR0_YMM);
	sl_blas_choice c;

	(void)state;
	assert_int_equal(sl_blas_choose("SkylakeX", &skx, NULL, NULL, 0, &c), 0);
	assert_false(c.reexec);
	assert_int_equal(c.how, SL_BLAS_DEFAULT);
	assert_string_equal(c.kernel, "SkylakeX");
	assert_int_equal(sl_blas_choose("Zen", &amd, NULL, NULL, 0, &c), 0);
	assert_false(c.reexec);
	/* Haswell on AMD is the same class as Zen: not worth an exec */
	assert_int_equal(sl_blas_choose("Haswell", &amd, NULL, NULL, 0, &c), 0);
	assert_false(c.reexec);
	/* A name newer than our table is OpenBLAS knowing better: kept */
	assert_int_equal(sl_blas_choose("Zen5", &skx, NULL, NULL, 0, &c), 0);
	assert_false(c.reexec);
	assert_int_equal(c.how, SL_BLAS_DEFAULT);
}

static void
test_env_is_respected(void **state)
{
	const sl_blas_features skx = features(INTEL, 1, 1, 1, XCR0_ZMM);
	sl_blas_choice c;

	(void)state;
	/* The machine: Haswell set by the environment on an AVX-512
	 * CPU. Respected. */
	assert_int_equal(sl_blas_choose("Haswell", &skx, "Haswell", NULL, 0, &c), 0);
	assert_false(c.reexec);
	assert_int_equal(c.how, SL_BLAS_ENV);
	assert_string_equal(c.env, "Haswell");
	assert_int_equal(sl_blas_choose("Prescott", &skx, "prescott", NULL, 0,
	    &c), 0);
	assert_false(c.reexec);
	assert_int_equal(c.how, SL_BLAS_ENV);
	/* A marker naming another kernel is not ours to trust: the user
	 * changed OPENBLAS_CORETYPE since. */
	assert_int_equal(sl_blas_choose("Prescott", &skx, "Prescott",
	    "1:SkylakeX:cpuid:Prescott", 0, &c), 0);
	assert_false(c.reexec);
	assert_int_equal(c.how, SL_BLAS_ENV);
	/* The test switch treats the value as OpenBLAS's own pick. */
	assert_int_equal(sl_blas_choose("Prescott", &skx, "Prescott", NULL, 1,
	    &c), 0);
	assert_true(c.reexec);
	assert_string_equal(c.kernel, "SkylakeX");
}

static void
test_marker_ends_the_loop(void **state)
{
	const sl_blas_features skx = features(INTEL, 1, 1, 0, XCR0_ZMM);
	sl_blas_choice c, child;
	char marker[128];

	(void)state;
	assert_int_equal(sl_blas_choose("Prescott", &skx, NULL, NULL, 0, &c), 0);
	assert_int_equal(sl_blas_marker_format(&c, marker, sizeof marker), 0);
	assert_string_equal(marker, "1:SkylakeX:cpuid:Prescott");
	/* the re-executed program: env and marker agree, so it keeps */
	assert_int_equal(sl_blas_choose("SkylakeX", &skx, "SkylakeX", marker, 0,
	    &child), 0);
	assert_false(child.reexec);
	assert_int_equal(child.how, SL_BLAS_CPUID);
	assert_string_equal(child.from, "Prescott");
	assert_int_equal(child.execs, 1);
	/* even with the test switch on (it stays in the environment) */
	assert_int_equal(sl_blas_choose("SkylakeX", &skx, "SkylakeX", marker, 1,
	    &child), 0);
	assert_false(child.reexec);
	assert_int_equal(child.how, SL_BLAS_CPUID);
	/* If OpenBLAS ignored our value and still runs Prescott, the count
	 * stops it: no second exec once SL_BLAS_MAX_EXECS happened. */
	assert_int_equal(sl_blas_choose("Prescott", &skx, NULL,
	    "3:SkylakeX:cpuid:Prescott", 0, &child), 0);
	assert_false(child.reexec);
	/* A garbled marker is ignored, never trusted */
	assert_int_equal(sl_blas_choose("SkylakeX", &skx, "SkylakeX",
	    "x:SkylakeX:cpuid:Prescott", 0, &child), 0);
	assert_int_equal(child.how, SL_BLAS_ENV);
	assert_int_equal(sl_blas_choose("SkylakeX", &skx, "SkylakeX",
	    "1:SkylakeX:bogus:Prescott", 0, &child), 0);
	assert_int_equal(child.how, SL_BLAS_ENV);
	assert_int_equal(sl_blas_choose("SkylakeX", &skx, "SkylakeX",
	    "9:SkylakeX:cpuid:Prescott", 0, &child), 0);
	assert_int_equal(child.how, SL_BLAS_ENV);
	assert_int_equal(sl_blas_choose(NULL, &skx, NULL, NULL, 0, &child),
	    SL_EINVAL);
}

static void
test_mismatch_fallback_order(void **state)
{
	const sl_blas_features skx = features(INTEL, 1, 1, 0, XCR0_ZMM);
	const sl_blas_features zen4 = features(AMD, 1, 1, 0, XCR0_ZMM);
	const sl_blas_features zen3 = features(AMD, 1, 0, 0, XCR0_YMM);
	sl_blas_choice c, next;

	(void)state;
	assert_string_equal(sl_blas_fallback_kernel("SkylakeX", &skx), "Haswell");
	assert_string_equal(sl_blas_fallback_kernel("SkylakeX", &zen4), "Zen");
	assert_string_equal(sl_blas_fallback_kernel("Cooperlake", &skx), "Haswell");
	assert_string_equal(sl_blas_fallback_kernel("Haswell", &skx), "Sandybridge");
	assert_string_equal(sl_blas_fallback_kernel("Zen", &zen3), "Sandybridge");
	assert_string_equal(sl_blas_fallback_kernel("Sandybridge", &skx), "Prescott");
	assert_null(sl_blas_fallback_kernel("Prescott", &skx));
	assert_null(sl_blas_fallback_kernel("Core2", &skx));
	/* a name we do not know: the best we do know */
	assert_string_equal(sl_blas_fallback_kernel("Zen5", &zen4), "SkylakeX");

	/* The chain the programs walk: cpuid picks SkylakeX, it fails, then
	 * Haswell fails, then Sandybridge fails: three execs, then stop. */
	assert_int_equal(sl_blas_choose("Prescott", &skx, NULL, NULL, 0, &c), 0);
	assert_string_equal(c.kernel, "SkylakeX");
	assert_int_equal(sl_blas_on_mismatch(&c, &skx, &next), 1);
	assert_string_equal(next.kernel, "Haswell");
	assert_string_equal(next.from, "SkylakeX");
	assert_int_equal(next.how, SL_BLAS_FALLBACK);
	assert_int_equal(next.execs, 2);
	c = next;
	assert_int_equal(sl_blas_on_mismatch(&c, &skx, &next), 1);
	assert_string_equal(next.kernel, "Sandybridge");
	assert_int_equal(next.execs, 3);
	c = next;
	assert_int_equal(sl_blas_on_mismatch(&c, &skx, &next), 0);

	/* OpenBLAS's own Zen failing: Sandybridge, then Prescott, then none */
	assert_int_equal(sl_blas_choose("Zen", &zen3, NULL, NULL, 0, &c), 0);
	assert_int_equal(sl_blas_on_mismatch(&c, &zen3, &next), 1);
	assert_string_equal(next.kernel, "Sandybridge");
	assert_int_equal(next.execs, 1);
	c = next;
	assert_int_equal(sl_blas_on_mismatch(&c, &zen3, &next), 1);
	assert_string_equal(next.kernel, "Prescott");
	c = next;
	assert_int_equal(sl_blas_on_mismatch(&c, &zen3, &next), 0);

	/* The user's kernel is never replaced, even when it is wrong. */
	assert_int_equal(sl_blas_choose("Haswell", &skx, "Haswell", NULL, 0, &c), 0);
	assert_int_equal(sl_blas_on_mismatch(&c, &skx, &next), 0);
}

/* --- the self-check ------------------------------------------------------- */

static void
good_sgemm(int order, int ta, int tb, int M, int N, int K, float alpha,
    const float *A, int lda, const float *B, int ldb, float beta, float *C,
    int ldc)
{
	cblas_sgemm((enum CBLAS_ORDER)order, (enum CBLAS_TRANSPOSE)ta,
	    (enum CBLAS_TRANSPOSE)tb, M, N, K, alpha, A, lda, B, ldb, beta, C,
	    ldc);
}

/* one element of the threaded shape off by one ulp: the smallest error a
 * float can show */
static void
off_by_an_ulp(int order, int ta, int tb, int M, int N, int K, float alpha,
    const float *A, int lda, const float *B, int ldb, float beta, float *C,
    int ldc)
{
	good_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
	if (M == 65)
		C[7] = nextafterf(C[7], INFINITY);
}

static void
ignores_beta(int order, int ta, int tb, int M, int N, int K, float alpha,
    const float *A, int lda, const float *B, int ldb, float beta, float *C,
    int ldc)
{
	(void)beta;
	good_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, 0.0f, C, ldc);
}

static void
ignores_alpha(int order, int ta, int tb, int M, int N, int K, float alpha,
    const float *A, int lda, const float *B, int ldb, float beta, float *C,
    int ldc)
{
	(void)alpha;
	good_sgemm(order, ta, tb, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
}

static void
writes_padding(int order, int ta, int tb, int M, int N, int K, float alpha,
    const float *A, int lda, const float *B, int ldb, float beta, float *C,
    int ldc)
{
	good_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
	if (order == CblasRowMajor && ldc > N)
		C[N] = 0.0f; /* past the first row's end, inside the padding */
}

static void
makes_nan(int order, int ta, int tb, int M, int N, int K, float alpha,
    const float *A, int lda, const float *B, int ldb, float beta, float *C,
    int ldc)
{
	good_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
	C[0] = NAN;
}

static void
test_selfcheck_passes_with_running_kernel(void **state)
{
	const sl_blas_info *info = sl_blas_info_get();
	sl_blas_check r;

	(void)state;
	assert_int_equal(sl_blas_selfcheck(NULL, &r), 0);
	assert_int_equal(r.ok, 1);
	assert_true(r.shapes >= 6);
	assert_string_equal(r.failed, "");
	assert_true(r.max_abs_err == 0.0);
	assert_int_equal(sl_blas_selfcheck(good_sgemm, &r), 0);
	assert_int_equal(r.ok, 1);
	/* and what main() found at start-up agrees with OpenBLAS */
	assert_non_null(info);
	assert_string_equal(info->corename, openblas_get_corename());
	assert_int_equal(info->checked, 1);
	assert_int_equal(info->check.ok, 1);
	assert_int_equal(info->choice.reexec, 0);
}

static void
test_selfcheck_catches_wrong_sgemm(void **state)
{
	const sl_blas_sgemm_fn bad[] = { off_by_an_ulp, ignores_beta,
		ignores_alpha, writes_padding, makes_nan };
	sl_blas_check r;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(sl_blas_selfcheck(bad[i], &r), 0);
		assert_int_equal(r.ok, 0);
		assert_true(r.failed[0] != '\0');
	}
	assert_int_equal(sl_blas_selfcheck(off_by_an_ulp, &r), 0);
	assert_true(r.max_abs_err > 0.0 && r.max_abs_err < 1e-4);
	assert_non_null(strstr(r.failed, "M=65"));
	assert_int_equal(sl_blas_selfcheck(makes_nan, &r), 0);
	assert_true(isinf(r.max_abs_err));
}

/* Why bf16 cannot run: each missing part named, and with both present the
 * truth that softlabel has no bf16 path. */
static void
test_bf16_missing(void **state)
{
	sl_blas_features f;
	char buf[256];

	(void)state;
	memset(&f, 0, sizeof f);
	sl_blas_bf16_missing(&f, 0, buf, sizeof buf);
	assert_non_null(strstr(buf, "lacks AVX512-BF16, and "));
	assert_non_null(strstr(buf, "no cblas_sbgemm"));
	sl_blas_bf16_missing(&f, 1, buf, sizeof buf);
	assert_string_equal(buf, "this CPU (or OS) lacks AVX512-BF16");
	f.bits = SL_CPU_AVX512_BF16;
	sl_blas_bf16_missing(&f, 0, buf, sizeof buf);
	assert_null(strstr(buf, "lacks AVX512-BF16"));
	assert_non_null(strstr(buf, "no cblas_sbgemm"));
	sl_blas_bf16_missing(&f, 1, buf, sizeof buf);
	assert_non_null(strstr(buf, "no bf16 path yet"));
	assert_true(sl_blas_has_sbgemm() == 0 || sl_blas_has_sbgemm() == 1);
}

static void
test_describe_line(void **state)
{
	const sl_blas_info *info = sl_blas_info_get();
	char line[900];

	(void)state;
	sl_blas_describe(info, 3, line, sizeof line);
	assert_true(strncmp(line, "blas kernel=", 12) == 0);
	assert_non_null(strstr(line, info->corename));
	assert_non_null(strstr(line, " threads=3 "));
	assert_non_null(strstr(line, " selfcheck=ok "));
	assert_non_null(strstr(line, " how="));
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_features_parse),
		cmocka_unit_test(test_kernel_runs),
		cmocka_unit_test(test_generic_on_avx512_picks_skylakex),
		cmocka_unit_test(test_generic_on_avx2_picks_haswell_or_zen),
		cmocka_unit_test(test_already_good_is_kept),
		cmocka_unit_test(test_env_is_respected),
		cmocka_unit_test(test_marker_ends_the_loop),
		cmocka_unit_test(test_mismatch_fallback_order),
		cmocka_unit_test(test_selfcheck_passes_with_running_kernel),
		cmocka_unit_test(test_selfcheck_catches_wrong_sgemm),
		cmocka_unit_test(test_describe_line),
		cmocka_unit_test(test_bf16_missing),
	};

	(void)argc;
	/* As the programs start: this test runs under the kernel softlabel
	 * chooses here (it may re-execute itself once). */
	sl_blas_start(argv);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

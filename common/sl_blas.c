/* sl_blas.c - see sl_blas.h. */
#include "sl_blas.h"
#include "sl_err.h"
#include "sl_log.h"
#include "sl_progress.h"

#include <cblas.h>
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define SL_BLAS_X86 1
#endif

/* --- CPU features --------------------------------------------------------- */

void
sl_blas_cpuid_read(sl_blas_cpuid *out)
{
	memset(out, 0, sizeof *out);
#ifdef SL_BLAS_X86
	unsigned a, b, c, d;

	if (!__get_cpuid(0, &a, &b, &c, &d))
		return;
	out->max_leaf = a;
	out->vendor[0] = b;
	out->vendor[1] = d;
	out->vendor[2] = c;
	if (__get_cpuid(1, &a, &b, &c, &d)) {
		out->l1_ecx = c;
		out->l1_edx = d;
	}
	if (out->max_leaf >= 7) {
		__cpuid_count(7, 0, a, b, c, d);
		out->l7_ebx = b;
		out->l7_ecx = c;
		out->l7_edx = d;
		if (a >= 1) { /* leaf 7's highest subleaf */
			__cpuid_count(7, 1, a, b, c, d);
			out->l7s1_eax = a;
		}
	}
	/* xgetbv faults unless the OS turned on OSXSAVE. */
	if (out->l1_ecx & (1u << 27)) {
		uint32_t lo, hi;

		__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
		out->xcr0 = ((uint64_t)hi << 32) | lo;
	}
#endif
}

void
sl_blas_features_parse(const sl_blas_cpuid *r, sl_blas_features *out)
{
	/* xcr0 bits: 1 SSE, 2 AVX (ymm upper halves), 5 opmask, 6 zmm0-15
	 * upper halves, 7 zmm16-31. */
	const int os_ymm = (r->xcr0 & 0x6) == 0x6;
	const int os_zmm = (r->xcr0 & 0xe6) == 0xe6;
	const int osxsave = (r->l1_ecx >> 27) & 1;
	unsigned f = 0;

	memset(out, 0, sizeof *out);
	memcpy(out->vendor, r->vendor, 12);
	out->vendor[12] = '\0';
	if (r->max_leaf < 1)
		return;
	if (r->l1_ecx & (1u << 0))
		f |= SL_CPU_SSE3;
	if (r->l1_ecx & (1u << 9))
		f |= SL_CPU_SSSE3;
	if (r->l1_ecx & (1u << 19))
		f |= SL_CPU_SSE41;
	if (r->l1_ecx & (1u << 20))
		f |= SL_CPU_SSE42;
	if ((r->l1_ecx & (1u << 28)) && osxsave && os_ymm) {
		f |= SL_CPU_AVX;
		if (r->l1_ecx & (1u << 12))
			f |= SL_CPU_FMA;
		if (r->max_leaf >= 7 && (r->l7_ebx & (1u << 5)))
			f |= SL_CPU_AVX2;
		if (r->max_leaf >= 7 && os_zmm && (r->l7_ebx & (1u << 16))) {
			f |= SL_CPU_AVX512F;
			if (r->l7_ebx & (1u << 17))
				f |= SL_CPU_AVX512DQ;
			if (r->l7_ebx & (1u << 30))
				f |= SL_CPU_AVX512BW;
			if (r->l7_ebx & (1u << 31))
				f |= SL_CPU_AVX512VL;
			if (r->l7s1_eax & (1u << 5))
				f |= SL_CPU_AVX512_BF16;
		}
	}
	out->bits = f;
}

static const char *const feature_names[SL_CPU_NFEATURES] = {
	"sse3", "ssse3", "sse4.1", "sse4.2", "avx", "fma", "avx2", "avx512f",
	"avx512bw", "avx512dq", "avx512vl", "avx512_bf16",
};

int
sl_blas_features_format(unsigned bits, char *buf, size_t cap)
{
	size_t n = 0;
	int any = 0;

	if (cap > 0)
		buf[0] = '\0';
	for (int i = 0; i < SL_CPU_NFEATURES; i++) {
		if (!(bits & (1u << i)))
			continue;
		int m = snprintf(buf + (n < cap ? n : cap), n < cap ? cap - n : 0,
		    "%s%s", any ? "," : "", feature_names[i]);
		n += (size_t)(m > 0 ? m : 0);
		any = 1;
	}
	if (!any)
		n = (size_t)snprintf(buf, cap, "none");
	return (int)n;
}

int
sl_blas_has_bf16(const sl_blas_features *f)
{
	return (f->bits & SL_CPU_AVX512_BF16) != 0;
}

int
sl_blas_has_sbgemm(void)
{
	/* Looked up, not linked: Debian's 0.3.21 is built without
	 * BUILD_BFLOAT16 and has no such symbol. */
	return dlsym(RTLD_DEFAULT, "cblas_sbgemm") != NULL;
}

const char *
sl_blas_bf16_missing(const sl_blas_features *f, int has_sbgemm, char *buf,
    size_t cap)
{
	const int cpu = sl_blas_has_bf16(f);

	if (cpu && has_sbgemm)
		snprintf(buf, cap, "this build of softlabel has no bf16 "
		    "path yet (the CPU has AVX512-BF16 and OpenBLAS "
		    "cblas_sbgemm)");
	else
		snprintf(buf, cap, "%s%s%s", cpu ? "" : "this CPU (or OS) "
		    "lacks AVX512-BF16", !cpu && !has_sbgemm ? ", and " : "",
		    has_sbgemm ? "" : "the OpenBLAS loaded has no cblas_sbgemm "
		    "(Debian 12's 0.3.21 is built without BUILD_BFLOAT16)");
	return buf;
}

/* --- kernels ---------------------------------------------------------------- */

/* OpenBLAS 0.3.21's DYNAMIC_ARCH x86-64 core names, by class: 0 SSE only
 * (the generic kernels a CPU newer than the library gets), 1 AVX, 2 AVX2 +
 * FMA, 3 AVX-512. `needs` lists what we can check of what each one
 * executes (the FMA4 of the Bulldozer family is not checked). */
typedef struct kernel_info {
	const char *name;
	int tier;
	unsigned needs;
} kernel_info;

#define K_AVX (SL_CPU_AVX)
#define K_AVX2 (SL_CPU_AVX | SL_CPU_AVX2 | SL_CPU_FMA)
#define K_SKX (K_AVX2 | SL_CPU_AVX512_SKX)

static const kernel_info kernels[] = {
	{ "Katmai", 0, 0 }, { "Coppermine", 0, 0 }, { "Northwood", 0, 0 },
	{ "Banias", 0, 0 }, { "Athlon", 0, 0 }, { "Opteron", 0, 0 },
	{ "Prescott", 0, SL_CPU_SSE3 }, { "Opteron_SSE3", 0, SL_CPU_SSE3 },
	{ "Barcelona", 0, SL_CPU_SSE3 }, { "Bobcat", 0, SL_CPU_SSSE3 },
	{ "Nano", 0, SL_CPU_SSSE3 }, { "Atom", 0, SL_CPU_SSSE3 },
	{ "Core2", 0, SL_CPU_SSSE3 }, { "Penryn", 0, SL_CPU_SSE41 },
	{ "Dunnington", 0, SL_CPU_SSE41 }, { "Nehalem", 0, SL_CPU_SSE42 },
	{ "Sandybridge", 1, K_AVX }, { "Bulldozer", 1, K_AVX },
	{ "Piledriver", 1, K_AVX | SL_CPU_FMA },
	{ "Steamroller", 1, K_AVX | SL_CPU_FMA },
	{ "Haswell", 2, K_AVX2 }, { "Zen", 2, K_AVX2 }, { "Excavator", 2, K_AVX2 },
	{ "SkylakeX", 3, K_SKX },
	{ "Cooperlake", 3, K_SKX | SL_CPU_AVX512_BF16 },
	{ "SapphireRapids", 3, K_SKX | SL_CPU_AVX512_BF16 },
};

static const kernel_info *
find_kernel(const char *name)
{
	if (name == NULL)
		return NULL;
	for (size_t i = 0; i < sizeof kernels / sizeof kernels[0]; i++)
		if (strcasecmp(kernels[i].name, name) == 0)
			return &kernels[i];
	return NULL;
}

int
sl_blas_kernel_runs(const char *name, const sl_blas_features *f,
    unsigned *missing)
{
	const kernel_info *k = find_kernel(name);

	if (k == NULL)
		return -1;
	if (missing != NULL)
		*missing = k->needs & ~f->bits;
	return (k->needs & ~f->bits) == 0;
}

static int
is_amd(const sl_blas_features *f)
{
	return strcmp(f->vendor, "AuthenticAMD") == 0 ||
	    strcmp(f->vendor, "HygonGenuine") == 0;
}

/* The kernel we run for class `tier` on this CPU, if it can. */
static const char *
tier_kernel(int tier, const sl_blas_features *f)
{
	static const char *const pick[4] = { "Prescott", "Sandybridge",
		"Haswell", "SkylakeX" };
	/* OpenBLAS's Zen kernels are its Haswell ones with AMD's cache
	 * blocking: the better of the two on AMD. */
	const char *name = tier == 2 && is_amd(f) ? "Zen" : pick[tier];

	return sl_blas_kernel_runs(name, f, NULL) == 1 ? name : NULL;
}

const char *
sl_blas_best_kernel(const sl_blas_features *f)
{
	for (int t = 3; t > 0; t--) {
		const char *k = tier_kernel(t, f);

		if (k != NULL)
			return k;
	}
	return "Prescott";
}

const char *
sl_blas_fallback_kernel(const char *failed, const sl_blas_features *f)
{
	const kernel_info *k = find_kernel(failed);
	/* A kernel we do not know is newer than our table: anything in it is
	 * safer. */
	const int t = k != NULL ? k->tier : 4;

	for (int u = t - 1; u >= 0; u--) {
		const char *name = tier_kernel(u, f);

		if (name != NULL && strcasecmp(name, failed) != 0)
			return name;
	}
	return NULL;
}

const char *
sl_blas_how_name(enum sl_blas_how how)
{
	switch (how) {
	case SL_BLAS_DEFAULT: return "default";
	case SL_BLAS_CPUID: return "cpuid";
	case SL_BLAS_ENV: return "env";
	case SL_BLAS_FALLBACK: return "fallback";
	}
	return "?";
}

static void
copy_name(char dst[SL_BLAS_NAME_MAX], const char *src)
{
	snprintf(dst, SL_BLAS_NAME_MAX, "%s", src ? src : "");
}

/* Parse "N:KERNEL:HOW:FROM"; 0 or SL_EINVAL. */
static int
marker_parse(const char *s, int *execs, char kernel[SL_BLAS_NAME_MAX],
    enum sl_blas_how *how, char from[SL_BLAS_NAME_MAX])
{
	const char *p, *q, *r;
	char *end;
	long n;

	if (s == NULL)
		return SL_EINVAL;
	errno = 0;
	n = strtol(s, &end, 10);
	if (end == s || *end != ':' || errno != 0 || n < 1 ||
	    n > SL_BLAS_MAX_EXECS)
		return SL_EINVAL;
	p = end + 1;
	if ((q = strchr(p, ':')) == NULL || (r = strchr(q + 1, ':')) == NULL ||
	    q == p || q - p >= SL_BLAS_NAME_MAX ||
	    strlen(r + 1) >= SL_BLAS_NAME_MAX)
		return SL_EINVAL;
	if ((size_t)(r - q - 1) == strlen("cpuid") &&
	    strncmp(q + 1, "cpuid", 5) == 0)
		*how = SL_BLAS_CPUID;
	else if ((size_t)(r - q - 1) == strlen("fallback") &&
	    strncmp(q + 1, "fallback", 8) == 0)
		*how = SL_BLAS_FALLBACK;
	else
		return SL_EINVAL;
	*execs = (int)n;
	memcpy(kernel, p, (size_t)(q - p));
	kernel[q - p] = '\0';
	copy_name(from, r + 1);
	return 0;
}

int
sl_blas_marker_format(const sl_blas_choice *next, char *buf, size_t cap)
{
	int n = snprintf(buf, cap, "%d:%s:%s:%s", next->execs, next->kernel,
	    sl_blas_how_name(next->how), next->from);

	return n < 0 || (size_t)n >= cap ? SL_EINVAL : 0;
}

int
sl_blas_choose(const char *corename, const sl_blas_features *f,
    const char *env, const char *marker, int as_default, sl_blas_choice *out)
{
	char mk_kernel[SL_BLAS_NAME_MAX], mk_from[SL_BLAS_NAME_MAX];
	enum sl_blas_how mk_how = SL_BLAS_CPUID;
	int mk_execs = 0;
	const int have_marker = marker_parse(marker, &mk_execs, mk_kernel,
	    &mk_how, mk_from) == 0;
	const int have_env = env != NULL && env[0] != '\0';

	if (corename == NULL || f == NULL || out == NULL)
		return SL_EINVAL;
	memset(out, 0, sizeof *out);
	copy_name(out->kernel, corename);
	copy_name(out->env, have_env ? env : "");
	/* Even a stale marker counts: re-execs stay bounded whatever the
	 * environment holds. */
	out->execs = have_marker ? mk_execs : 0;
	if (have_env && have_marker && strcasecmp(env, mk_kernel) == 0) {
		out->how = mk_how; /* we set it, before our last exec */
		copy_name(out->from, mk_from);
		return 0;
	}
	if (have_env && !as_default) {
		out->how = SL_BLAS_ENV;
		return 0;
	}
	out->how = SL_BLAS_DEFAULT;
	const kernel_info *k = find_kernel(corename);
	const char *best = sl_blas_best_kernel(f);
	const kernel_info *b = find_kernel(best);

	if (k == NULL || b == NULL || b->tier <= k->tier ||
	    out->execs >= SL_BLAS_MAX_EXECS)
		return 0;
	out->how = SL_BLAS_CPUID;
	out->reexec = 1;
	out->execs++;
	copy_name(out->kernel, best);
	copy_name(out->from, corename);
	return 0;
}

int
sl_blas_on_mismatch(const sl_blas_choice *cur, const sl_blas_features *f,
    sl_blas_choice *next)
{
	const char *safer;

	if (cur->how == SL_BLAS_ENV || cur->execs >= SL_BLAS_MAX_EXECS ||
	    (safer = sl_blas_fallback_kernel(cur->kernel, f)) == NULL)
		return 0;
	*next = *cur;
	next->how = SL_BLAS_FALLBACK;
	next->reexec = 1;
	next->execs = cur->execs + 1;
	copy_name(next->from, cur->kernel);
	copy_name(next->kernel, safer);
	return 1;
}

/* --- the self-check --------------------------------------------------------- */

typedef struct shape {
	int order, ta, tb, M, N, K;
	float alpha, beta;
	int pad; /* added to every leading dimension */
} shape;

/* Row-major NT and TN are the forward (x W^T) and weight-gradient (dY^T X)
 * products of sl_nn; NN with alpha 1 and beta 0 takes OpenBLAS's "direct"
 * small-matrix path on SkylakeX; N = 1 its gemv-like edge; 65x64x64 is just
 * above OpenBLAS's threading threshold (MNK > 4 * 65536), so the threaded
 * path runs too. About 0.35 M multiply-adds in all: a fraction of a
 * millisecond, most of it the reference loop. */
static const shape shapes[] = {
	{ CblasRowMajor, CblasNoTrans, CblasNoTrans, 7, 5, 3, 1.0f, 0.0f, 0 },
	{ CblasRowMajor, CblasNoTrans, CblasTrans, 17, 33, 19, 0.5f, -1.5f, 3 },
	{ CblasRowMajor, CblasTrans, CblasNoTrans, 33, 17, 65, -1.0f, 1.0f, 1 },
	{ CblasRowMajor, CblasTrans, CblasTrans, 9, 31, 16, 2.0f, 0.5f, 2 },
	{ CblasColMajor, CblasNoTrans, CblasTrans, 23, 1, 40, 1.0f, 0.0f, 5 },
	{ CblasColMajor, CblasTrans, CblasNoTrans, 31, 29, 37, 0.25f, 2.0f, 0 },
	{ CblasRowMajor, CblasNoTrans, CblasTrans, 65, 64, 64, 1.0f, 0.0f, 0 },
};
#define MAX_DIM 80 /* every dimension + pad stays below */

static void
real_sgemm(int order, int transa, int transb, int M, int N, int K,
    float alpha, const float *A, int lda, const float *B, int ldb,
    float beta, float *C, int ldc)
{
	cblas_sgemm((enum CBLAS_ORDER)order, (enum CBLAS_TRANSPOSE)transa,
	    (enum CBLAS_TRANSPOSE)transb, M, N, K, alpha, A, lda, B, ldb, beta,
	    C, ldc);
}

/* Element (r, c) of a matrix stored with leading dimension ld. */
static size_t
at(int order, int r, int c, int ld)
{
	return order == CblasRowMajor ? (size_t)r * (size_t)ld + (size_t)c :
	    (size_t)c * (size_t)ld + (size_t)r;
}

/* A multiple of 1/8 in [-1, 1] from a position: exact in float. */
static float
grid(unsigned i, unsigned salt)
{
	return (float)((int)((i * 2654435761u + salt * 40503u) % 17u) - 8) /
	    8.0f;
}

static int
check_shape(sl_blas_sgemm_fn sgemm, const shape *s, float *A, float *B,
    float *C, float *C0, float *work, double *max_err)
{
	const int ta = s->ta == CblasTrans, tb = s->tb == CblasTrans;
	/* stored shapes: A is (M, K) or (K, M) when transposed; likewise B */
	const int ar = ta ? s->K : s->M, ac = ta ? s->M : s->K;
	const int br = tb ? s->N : s->K, bc = tb ? s->K : s->N;
	const int row = s->order == CblasRowMajor;
	const int lda = (row ? ac : ar) + s->pad, ldb = (row ? bc : br) + s->pad;
	const int ldc = (row ? s->N : s->M) + s->pad;
	const size_t na = (size_t)lda * (size_t)(row ? ar : ac);
	const size_t nb = (size_t)ldb * (size_t)(row ? br : bc);
	const size_t nc = (size_t)ldc * (size_t)(row ? s->M : s->N);
	float *opa = work;                                 /* (M, K) */
	float *opb = opa + (size_t)s->M * (size_t)s->K;    /* (K, N) */
	float *ref = opb + (size_t)s->K * (size_t)s->N;    /* (M, N) */
	int ok = 1;

	for (size_t i = 0; i < na; i++)
		A[i] = grid((unsigned)i, 1);
	for (size_t i = 0; i < nb; i++)
		B[i] = grid((unsigned)i, 2);
	for (size_t i = 0; i < nc; i++)
		C[i] = C0[i] = grid((unsigned)i, 3);
	sgemm(s->order, s->ta, s->tb, s->M, s->N, s->K, s->alpha, A, lda, B,
	    ldb, s->beta, C, ldc);

	/* The reference: op(A) and op(B) copied out dense and row-major, then
	 * the i-p-j loop, which the compiler vectorizes. Float sums are exact
	 * here (see sl_blas.h), so the order does not matter. */
	for (int i = 0; i < s->M; i++)
		for (int p = 0; p < s->K; p++)
			opa[(size_t)i * s->K + p] = A[ta ? at(s->order, p, i, lda) :
			    at(s->order, i, p, lda)];
	for (int p = 0; p < s->K; p++)
		for (int j = 0; j < s->N; j++)
			opb[(size_t)p * s->N + j] = B[tb ? at(s->order, j, p, ldb) :
			    at(s->order, p, j, ldb)];
	for (int i = 0; i < s->M; i++) {
		float *r = ref + (size_t)i * s->N;

		for (int j = 0; j < s->N; j++)
			r[j] = 0.0f;
		for (int p = 0; p < s->K; p++) {
			const float a = opa[(size_t)i * s->K + p];
			const float *b = opb + (size_t)p * s->N;

			for (int j = 0; j < s->N; j++)
				r[j] += a * b[j];
		}
	}
	for (int i = 0; i < s->M; i++) {
		for (int j = 0; j < s->N; j++) {
			const size_t ci = at(s->order, i, j, ldc);
			/* beta 0 means C is not read (BLAS): no 0 * C0 term */
			const double want = (double)s->alpha *
			    (double)ref[(size_t)i * s->N + j] + (s->beta != 0.0f ?
			    (double)s->beta * (double)C0[ci] : 0.0);
			const double err = fabs((double)C[ci] - want);

			if (!(err == 0.0)) { /* NaN included */
				ok = 0;
				if (isnan(err) || err > *max_err)
					*max_err = isnan(err) ? (double)INFINITY : err;
			}
		}
	}
	/* The padding of C is not part of the product: it must be untouched. */
	for (int i = 0; i < (row ? s->M : s->N); i++)
		for (int j = (row ? s->N : s->M); j < ldc; j++)
			if (C[(size_t)i * (size_t)ldc + (size_t)j] !=
			    C0[(size_t)i * (size_t)ldc + (size_t)j])
				ok = 0;
	return ok;
}

int
sl_blas_selfcheck(sl_blas_sgemm_fn sgemm, sl_blas_check *out)
{
	const size_t n = (size_t)MAX_DIM * MAX_DIM;
	float *mem = malloc(7 * n * sizeof *mem);
	sl_blas_check r;

	if (mem == NULL)
		return SL_ENOMEM;
	memset(&r, 0, sizeof r);
	r.ok = 1;
	const double t0 = sl_now_s();
	for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
		const shape *s = &shapes[i];

		r.shapes++;
		if (!check_shape(sgemm ? sgemm : real_sgemm, s, mem, mem + n,
		    mem + 2 * n, mem + 3 * n, mem + 4 * n, &r.max_abs_err) && r.ok) {
			r.ok = 0;
			snprintf(r.failed, sizeof r.failed, "%s %c%c M=%d N=%d "
			    "K=%d alpha=%g beta=%g", s->order == CblasRowMajor ?
			    "row" : "col", s->ta == CblasTrans ? 'T' : 'N',
			    s->tb == CblasTrans ? 'T' : 'N', s->M, s->N, s->K,
			    (double)s->alpha, (double)s->beta);
		}
	}
	r.elapsed_ms = (sl_now_s() - t0) * 1e3;
	free(mem);
	*out = r;
	return 0;
}

/* --- start-up ------------------------------------------------------------- */

static sl_blas_info info;
static int started, logged;

/* The self-check's sgemm when SL_BLAS_TEST_FAIL names the running kernel:
 * right but for one element off by 2^-12, the kind of error a kernel bug
 * makes and a loose tolerance would miss. */
static void
broken_sgemm(int order, int transa, int transb, int M, int N, int K,
    float alpha, const float *A, int lda, const float *B, int ldb,
    float beta, float *C, int ldc)
{
	real_sgemm(order, transa, transb, M, N, K, alpha, A, lda, B, ldb, beta,
	    C, ldc);
	C[0] += 1.0f / 4096.0f;
}

/* Re-execute ourselves into c->kernel; returns only on failure, with the
 * environment as it was. */
static void
reexec(char **argv, const sl_blas_choice *c)
{
	char marker[128], old_env[256], old_marker[128];
	const char *e = getenv("OPENBLAS_CORETYPE"), *m = getenv(SL_BLAS_MARKER);
	const int had_env = e != NULL, had_marker = m != NULL;
	int err;

	snprintf(old_env, sizeof old_env, "%s", e ? e : "");
	snprintf(old_marker, sizeof old_marker, "%s", m ? m : "");
	if (sl_blas_marker_format(c, marker, sizeof marker) != 0) {
		snprintf(info.note, sizeof info.note, "cannot re-exec into %s: "
		    "marker too long", c->kernel);
		return;
	}
	if (setenv("OPENBLAS_CORETYPE", c->kernel, 1) != 0 ||
	    setenv(SL_BLAS_MARKER, marker, 1) != 0) {
		err = errno;
	} else {
		execv("/proc/self/exe", argv);
		err = errno;
	}
	if (had_env)
		setenv("OPENBLAS_CORETYPE", old_env, 1);
	else
		unsetenv("OPENBLAS_CORETYPE");
	if (had_marker)
		setenv(SL_BLAS_MARKER, old_marker, 1);
	else
		unsetenv(SL_BLAS_MARKER);
	snprintf(info.note, sizeof info.note, "re-exec into %s failed (%s): "
	    "running %s", c->kernel, strerror(err), info.corename);
	info.level = SL_LOG_WARN;
}

const sl_blas_info *
sl_blas_start(char **argv)
{
	sl_blas_cpuid regs;
	const char *env = getenv("OPENBLAS_CORETYPE");
	const char *fail = getenv(SL_BLAS_TEST_FAIL);
	const char *as_default = getenv(SL_BLAS_TEST_AS_DEFAULT);
	unsigned missing = 0;

	memset(&info, 0, sizeof info);
	info.level = SL_LOG_INFO;
	sl_blas_cpuid_read(&regs);
	sl_blas_features_parse(&regs, &info.features);
	copy_name(info.corename, openblas_get_corename());
	snprintf(info.config, sizeof info.config, "%s", openblas_get_config());
	info.threads = openblas_get_num_threads();
	sl_blas_choose(info.corename, &info.features, env,
	    getenv(SL_BLAS_MARKER), as_default && strcmp(as_default, "1") == 0,
	    &info.choice);
	if (info.choice.reexec && argv != NULL)
		reexec(argv, &info.choice); /* returns only on failure */
	if (info.choice.reexec) {
		/* not re-executed: say what runs */
		info.choice.reexec = 0;
		info.choice.how = SL_BLAS_DEFAULT;
		info.choice.execs--;
		copy_name(info.choice.kernel, info.corename);
		if (argv == NULL)
			snprintf(info.note, sizeof info.note, "%s would be "
			    "better; set OPENBLAS_CORETYPE=%s",
			    sl_blas_best_kernel(&info.features),
			    sl_blas_best_kernel(&info.features));
	}

	if (info.choice.how == SL_BLAS_ENV &&
	    strcasecmp(info.choice.env, info.corename) != 0) {
		snprintf(info.note, sizeof info.note, "OPENBLAS_CORETYPE=%s, "
		    "but OpenBLAS runs %s (a name it does not know, or cannot "
		    "run here)", info.choice.env, info.corename);
		info.level = SL_LOG_WARN;
	} else if (info.choice.how == SL_BLAS_ENV) {
		const char *best = sl_blas_best_kernel(&info.features);
		const kernel_info *k = find_kernel(info.corename), *b = find_kernel(best);

		if (k != NULL && b != NULL && b->tier > k->tier)
			snprintf(info.note, sizeof info.note, "this CPU could "
			    "run %s; unset OPENBLAS_CORETYPE to let softlabel "
			    "choose", best);
	}

	if (sl_blas_kernel_runs(info.corename, &info.features, &missing) == 0) {
		sl_blas_choice next;
		char m[128];

		/* The self-check would die of SIGILL. Not the user's kernel:
		 * fall back as after a mismatch. The user's: say why and let
		 * the setting stand. */
		if (sl_blas_on_mismatch(&info.choice, &info.features, &next) &&
		    argv != NULL)
			reexec(argv, &next);
		sl_blas_features_format(missing, m, sizeof m);
		snprintf(info.note, sizeof info.note, "kernel %s needs %s, "
		    "which this CPU (or OS) lacks: sgemm will fault; self-check "
		    "skipped", info.corename, m);
		info.level = SL_LOG_ERROR;
		started = 1;
		return &info;
	}
	info.checked = 1;
	if (sl_blas_selfcheck(fail && (strcmp(fail, "*") == 0 ||
	    strcasecmp(fail, info.corename) == 0) ?
	    broken_sgemm : NULL, &info.check) != 0) {
		info.checked = 0;
		snprintf(info.note, sizeof info.note, "self-check skipped: out "
		    "of memory");
		info.level = SL_LOG_WARN;
	} else if (!info.check.ok) {
		sl_blas_choice next;

		if (sl_blas_on_mismatch(&info.choice, &info.features, &next) &&
		    argv != NULL)
			reexec(argv, &next);
		/* still here: report, at ERROR, what runs and why */
		if (info.choice.how == SL_BLAS_ENV)
			snprintf(info.note, sizeof info.note, "sgemm self-check "
			    "MISMATCH under %s (%s, max abs error %g); "
			    "OPENBLAS_CORETYPE is set, so it is not overridden",
			    info.corename, info.check.failed,
			    info.check.max_abs_err);
		else
			snprintf(info.note, sizeof info.note, "sgemm self-check "
			    "MISMATCH under %s (%s, max abs error %g) and no "
			    "safer kernel to fall back to", info.corename,
			    info.check.failed, info.check.max_abs_err);
		info.level = SL_LOG_ERROR;
	}
	started = 1;
	return &info;
}

const sl_blas_info *
sl_blas_info_get(void)
{
	return started ? &info : NULL;
}

void
sl_blas_describe(const sl_blas_info *in, int threads, char *buf, size_t cap)
{
	char feats[160], how[128], check[160];
	const sl_blas_choice *c = &in->choice;

	sl_blas_features_format(in->features.bits, feats, sizeof feats);
	switch (c->how) {
	case SL_BLAS_DEFAULT:
		snprintf(how, sizeof how, "OpenBLAS's own pick");
		break;
	case SL_BLAS_CPUID:
		snprintf(how, sizeof how, "chosen from cpuid over OpenBLAS's "
		    "own pick %s", c->from);
		break;
	case SL_BLAS_ENV:
		snprintf(how, sizeof how, "set by the environment: "
		    "OPENBLAS_CORETYPE=%s, respected", c->env);
		break;
	case SL_BLAS_FALLBACK:
		snprintf(how, sizeof how, "fallback: the sgemm self-check "
		    "failed under %s, or this CPU cannot run it", c->from);
		break;
	}
	if (!in->checked)
		snprintf(check, sizeof check, "skipped");
	else if (in->check.ok)
		snprintf(check, sizeof check, "ok (%d shapes exact, %.2f ms)",
		    in->check.shapes, in->check.elapsed_ms);
	else
		snprintf(check, sizeof check, "MISMATCH (%s)", in->check.failed);
	snprintf(buf, cap, "blas kernel=%s how=%s (%s) cpu=%s features=%s "
	    "threads=%d selfcheck=%s openblas=\"%s\"%s%s", in->corename,
	    sl_blas_how_name(c->how), how, in->features.vendor[0] ?
	    in->features.vendor : "unknown", feats,
	    threads > 0 ? threads : openblas_get_num_threads(), check,
	    in->config, in->note[0] ? "; " : "", in->note);
}

void
sl_blas_log_startup(int threads, int min_level)
{
	char line[900];

	if (!started || logged || info.level < min_level)
		return;
	logged = 1;
	sl_blas_describe(&info, threads, line, sizeof line);
	SL_LOG((enum sl_log_level)info.level, "%s", line);
}

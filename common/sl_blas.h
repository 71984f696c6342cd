/* sl_blas.h - which OpenBLAS kernel runs, and making it the best correct one.
 *
 * Debian's libopenblas0 (0.3.21) is built with DYNAMIC_ARCH: at load time it
 * reads cpuid, or OPENBLAS_CORETYPE when set, and picks one kernel family for
 * the life of the process. A CPU newer than the library (e.g. recent Xeons)
 * gets a generic SSE3 kernel ("Prescott"), 4x slower than the AVX-512 one
 * the CPU can run. The choice cannot be changed once the library is loaded,
 * so sl_blas_start() re-executes the program once with OPENBLAS_CORETYPE set
 * from our own cpuid reading, and a marker variable (SL_BLAS_MARKER) so that
 * it can never loop. A value of OPENBLAS_CORETYPE that we did not set is the
 * user's (or the machine's) and is never overridden.
 *
 * A start-up self-check runs a few small sgemm shapes against a naive loop.
 * On a mismatch the program re-executes with the next safer kernel (bounded
 * by SL_BLAS_MAX_EXECS), except under a user's OPENBLAS_CORETYPE, where it
 * only reports the mismatch.
 *
 * The decision is split into pure functions (features from cpuid registers,
 * the choice from corename + features + environment, the fallback order) so
 * that the unit tests can drive every case without the CPU at hand.
 *
 * Nothing here prints: sl_blas_log_startup() logs through sl_log.
 * Not thread-safe: call sl_blas_start() first thing in main().
 */
#ifndef SL_BLAS_H
#define SL_BLAS_H

#include <stddef.h>
#include <stdint.h>

/* Set by us, with OPENBLAS_CORETYPE, before a re-exec:
 * "N:KERNEL:HOW:FROM", N the re-execs so far, HOW "cpuid" or "fallback",
 * FROM the kernel OpenBLAS picked alone (cpuid) or the one whose
 * self-check failed (fallback). */
#define SL_BLAS_MARKER "SOFTLABEL_BLAS_EXEC"
/* For tests only: "1" treats a set OPENBLAS_CORETYPE as if OpenBLAS had
 * picked that kernel by itself, so the re-exec path can be exercised on a
 * CPU that OpenBLAS knows. */
#define SL_BLAS_TEST_AS_DEFAULT "SOFTLABEL_BLAS_TEST_AS_DEFAULT"
/* For tests only: a kernel name, or "*" for all; the self-check fails
 * under that kernel. */
#define SL_BLAS_TEST_FAIL "SOFTLABEL_BLAS_TEST_SELFCHECK_FAIL"

/* One pick from cpuid plus two fallbacks (SkylakeX, Haswell, Sandybridge,
 * Prescott is the longest chain, and it starts from a CPU-chosen kernel). */
#define SL_BLAS_MAX_EXECS 3

#define SL_BLAS_NAME_MAX 32

/* --- CPU features --------------------------------------------------------- */

enum {
	SL_CPU_SSE3 = 1u << 0,
	SL_CPU_SSSE3 = 1u << 1,
	SL_CPU_SSE41 = 1u << 2,
	SL_CPU_SSE42 = 1u << 3,
	SL_CPU_AVX = 1u << 4,      /* and the OS saves ymm state */
	SL_CPU_FMA = 1u << 5,      /* FMA3; needs AVX */
	SL_CPU_AVX2 = 1u << 6,     /* needs AVX */
	SL_CPU_AVX512F = 1u << 7,  /* and the OS saves zmm and opmask state */
	SL_CPU_AVX512BW = 1u << 8,
	SL_CPU_AVX512DQ = 1u << 9,
	SL_CPU_AVX512VL = 1u << 10,
	SL_CPU_AVX512_BF16 = 1u << 11,
	SL_CPU_NFEATURES = 12
};

/* The four AVX-512 subsets OpenBLAS's SkylakeX kernels use. */
#define SL_CPU_AVX512_SKX (SL_CPU_AVX512F | SL_CPU_AVX512BW | \
	SL_CPU_AVX512DQ | SL_CPU_AVX512VL)

/* Raw cpuid registers, as read (or as a test makes them up). */
typedef struct sl_blas_cpuid {
	uint32_t max_leaf;                /* leaf 0 eax */
	uint32_t vendor[3];               /* leaf 0 ebx, edx, ecx */
	uint32_t l1_ecx, l1_edx;          /* leaf 1 */
	uint32_t l7_ebx, l7_ecx, l7_edx;  /* leaf 7 subleaf 0 */
	uint32_t l7s1_eax;                /* leaf 7 subleaf 1 */
	uint64_t xcr0;                    /* xgetbv(0); 0 when OSXSAVE is off */
} sl_blas_cpuid;

typedef struct sl_blas_features {
	unsigned bits;                    /* SL_CPU_* */
	char vendor[13];                  /* "GenuineIntel", "AuthenticAMD"... */
} sl_blas_features;

/* Read this CPU's registers (all zero off x86). Thread-safe. */
void sl_blas_cpuid_read(sl_blas_cpuid *out);

/* Decode registers into features. A feature counts only when the OS saves
 * the registers it uses (xcr0): an AVX-512 CPU under an OS or hypervisor
 * that does not enable zmm state has no AVX-512 here. Pure. */
void sl_blas_features_parse(const sl_blas_cpuid *r, sl_blas_features *out);

/* "sse3 ssse3 sse4.1 sse4.2 avx fma avx2 ..." (or "none") into buf, always
 * NUL-terminated. Returns the length it needed, as snprintf. Pure. */
int sl_blas_features_format(unsigned bits, char *buf, size_t cap);

/* 1 when the CPU can run AVX512-BF16 instructions. */
int sl_blas_has_bf16(const sl_blas_features *f);

/* 1 when the OpenBLAS loaded exports cblas_sbgemm (bf16 GEMM). */
int sl_blas_has_sbgemm(void);

/* Why --precision bf16 cannot run, as one clause into buf (always
 * NUL-terminated): what the CPU lacks, what the library lacks, or, where
 * both are there, that softlabel has no bf16 path yet. Returns buf. Pure
 * given has_sbgemm. */
const char *sl_blas_bf16_missing(const sl_blas_features *f, int has_sbgemm,
    char *buf, size_t cap);

/* --- kernels and the choice ------------------------------------------------ */

/* What the kernel needs of the CPU: 1 all there, 0 something missing (names
 * of the missing features into missing when not NULL), -1 a kernel name we do
 * not know (never judged). Names compare case-insensitively, as OpenBLAS
 * reads OPENBLAS_CORETYPE. Pure. */
int sl_blas_kernel_runs(const char *kernel, const sl_blas_features *f,
    unsigned *missing);

/* The kernel we would pick for these features: SkylakeX (AVX-512
 * F/BW/DQ/VL), Zen on AMD or Haswell elsewhere (AVX2 + FMA), Sandybridge
 * (AVX), else Prescott. Static string. Pure. */
const char *sl_blas_best_kernel(const sl_blas_features *f);

/* The next safer kernel after `failed` failed its self-check, or NULL when
 * there is none: AVX-512 -> AVX2 -> AVX -> Prescott. Static string. Pure. */
const char *sl_blas_fallback_kernel(const char *failed,
    const sl_blas_features *f);

enum sl_blas_how {
	SL_BLAS_DEFAULT,   /* OpenBLAS's own pick, kept */
	SL_BLAS_CPUID,     /* we chose from cpuid over OpenBLAS's generic pick */
	SL_BLAS_ENV,       /* OPENBLAS_CORETYPE set by the user or environment */
	SL_BLAS_FALLBACK,  /* a self-check failed (or OpenBLAS's pick cannot run
	                      here); we fell back */
};

/* "default", "cpuid", "env", "fallback". Static string. */
const char *sl_blas_how_name(enum sl_blas_how how);

typedef struct sl_blas_choice {
	enum sl_blas_how how;
	int reexec;                       /* 1: exec again with OPENBLAS_CORETYPE=kernel */
	int execs;                        /* re-execs so far (from the marker) */
	char kernel[SL_BLAS_NAME_MAX];    /* reexec: the one to run; else the running one */
	char from[SL_BLAS_NAME_MAX];      /* cpuid: OpenBLAS's own pick; fallback: the failed one */
	char env[SL_BLAS_NAME_MAX];       /* OPENBLAS_CORETYPE as found ("" when unset) */
} sl_blas_choice;

/* Decide, before any self-check, from the running kernel's name, the
 * features, OPENBLAS_CORETYPE (NULL or "" when unset), the marker (NULL when
 * unset) and the test switch as_default:
 *  - OPENBLAS_CORETYPE set and equal to the marker's kernel: we set it; keep
 *    (how cpuid or fallback, from the marker);
 *  - OPENBLAS_CORETYPE set otherwise: the user's; keep (how env), unless
 *    as_default;
 *  - unset (or as_default): OpenBLAS picked corename. When the features
 *    support a kernel of a higher class than corename's (AVX-512 over AVX2
 *    over AVX over SSE) and fewer than SL_BLAS_MAX_EXECS re-execs happened,
 *    reexec with sl_blas_best_kernel() (how cpuid); else keep (how default).
 *    A corename we do not know is kept.
 * Returns 0, or SL_EINVAL for a NULL corename/features/out. Pure. */
int sl_blas_choose(const char *corename, const sl_blas_features *f,
    const char *env, const char *marker, int as_default, sl_blas_choice *out);

/* After the self-check failed under cur: 1 with *next set to re-exec with
 * the fallback kernel (how fallback, execs + 1); 0 when there is nothing to
 * do but report: the kernel is the user's (how env), no safer kernel exists,
 * or SL_BLAS_MAX_EXECS re-execs happened. Pure. */
int sl_blas_on_mismatch(const sl_blas_choice *cur, const sl_blas_features *f,
    sl_blas_choice *next);

/* The marker value for a re-exec into `next`, into buf. Returns 0, or
 * SL_EINVAL when it does not fit. */
int sl_blas_marker_format(const sl_blas_choice *next, char *buf, size_t cap);

/* --- the self-check ------------------------------------------------------- */

/* cblas_sgemm's type (enums as int so tests can pass their own function
 * without the cblas header's types). */
typedef void (*sl_blas_sgemm_fn)(int order, int transa, int transb, int M,
    int N, int K, float alpha, const float *A, int lda, const float *B,
    int ldb, float beta, float *C, int ldc);

typedef struct sl_blas_check {
	int ok;                           /* 1 every shape matched */
	int shapes;                       /* shapes run */
	char failed[96];                  /* the first shape that did not match */
	double max_abs_err;
	double elapsed_ms;
} sl_blas_check;

/* Run the shapes (both transposes, row and column major, odd sizes, alpha
 * and beta other than 1 and 0, padded leading dimensions, and one shape big
 * enough to run on OpenBLAS's threads) through sgemm (NULL: cblas_sgemm) and
 * compare with a naive loop. The inputs are multiples of 1/8 in [-1, 1] and
 * alpha, beta small dyadic numbers, so every partial sum is a float exactly
 * and any correct summation order gives the same result: the tolerance is 0,
 * and a wrong kernel cannot hide in rounding. Returns 0 with *out filled
 * (out->ok says the verdict), or SL_ENOMEM. */
int sl_blas_selfcheck(sl_blas_sgemm_fn sgemm, sl_blas_check *out);

/* --- start-up ------------------------------------------------------------- */

typedef struct sl_blas_info {
	char corename[SL_BLAS_NAME_MAX];  /* openblas_get_corename() */
	char config[160];                 /* openblas_get_config() */
	int threads;                      /* openblas_get_num_threads() at start */
	sl_blas_features features;
	sl_blas_choice choice;
	int checked;                      /* 0: self-check skipped (see note) */
	sl_blas_check check;
	int level;                        /* enum sl_log_level of the start-up line */
	char note[256];                   /* why, when something is off ("" otherwise) */
} sl_blas_info;

/* First thing in main(): read the CPU and OpenBLAS, decide, and re-execute
 * /proc/self/exe with argv (and OPENBLAS_CORETYPE and the marker set) when a
 * better or, after a failed self-check, a safer kernel should run; in that
 * case it does not return. Without argv (NULL) it never re-executes. A failed
 * exec is recorded in the note and the program goes on with the kernel it
 * has. Never prints. Returns the process-wide record, valid for the life of
 * the process. Not thread-safe. */
const sl_blas_info *sl_blas_start(char **argv);

/* The record of sl_blas_start(), or NULL before it ran. */
const sl_blas_info *sl_blas_info_get(void);

/* One line without the log prefix: "blas kernel=Zen how=default (...)
 * cpu=... threads=2 selfcheck=ok ..." into buf, always NUL-terminated;
 * threads <= 0 means openblas_get_num_threads(). */
void sl_blas_describe(const sl_blas_info *info, int threads, char *buf,
    size_t cap);

/* Log the start-up line through sl_log, at INFO, or WARN/ERROR when the
 * note says something is off; at most once per process, and only when its
 * level is at least min_level. A program whose errors must stay one line
 * (softlabel-student on a bad file) calls it with SL_LOG_WARN first thing,
 * so a kernel problem shows at once, and again with SL_LOG_INFO once its
 * inputs are good. threads as for sl_blas_describe. */
void sl_blas_log_startup(int threads, int min_level);

#endif

/* op_matmul.c - MatMul (numpy matmul with batch broadcasting) and Gemm, on
 * cblas_sgemm. On several threads a call splits its rows or matrices over
 * our own threads, each with one-thread GEMMs (sl_g_parallel, parallel.c):
 * OpenBLAS's own threads, left idle spinning between the transformer's
 * small GEMMs, took the core the element-wise ops ran on. */
#include "graph.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* --- kernels ---------------------------------------------------------------- */

/* out = alpha * op(A) op(B) + beta * out, row-major, one call. */
static void
sgemm(float *out, /* (M, N) */
    const float *A, /* (M, K), or (K, M) with ta */
    const float *B, /* (K, N), or (N, K) with tb */
    int M, int N, int K, int ta, int tb, float alpha, float beta)
{
	cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
	    tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, ta ? M : K, B,
	    tb ? K : N, beta, out, N);
}

/* --- MatMul ------------------------------------------------------------------- */

typedef struct matmul_attr {
	/* From infer: A is (batch..., M, K), B (batch..., K, N), broadcast
	 * over the batch dims; a_step/b_step[i] is the element offset of
	 * batch index i (0 where broadcast). */
	int64_t M, N, K;
	int64_t batch;         /* product of the output's batch dims */
	int nb;                /* output batch rank */
	int64_t bdims[SL_G_MAX_RANK];
	int64_t astr[SL_G_MAX_RANK], bstr[SL_G_MAX_RANK]; /* batch strides */
	int a_flat;            /* B has no batch: fold A's batch into M */
} matmul_attr;

static int
matmul_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	(void)g;
	(void)a;
	(void)why;
	if ((n->attr = calloc(1, sizeof(matmul_attr))) == NULL)
		return SL_ENOMEM;
	return 0;
}

static int
matmul_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *A = sl_g_in(g, n, 0), *B = sl_g_in(g, n, 1);
	matmul_attr *m = n->attr;
	int64_t ad[SL_G_MAX_RANK + 1], bd[SL_G_MAX_RANK + 1], od[SL_G_MAX_RANK];
	int ar = A->rank, br = B->rank, nb, orank = 0;
	char s1[96], s2[96];

	if (A->dtype != SL_G_F32 || B->dtype != SL_G_F32)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "MatMul of float32 only");
	if (ar < 1 || br < 1)
		return sl_errmsg_set(why, SL_EMISMATCH, "scalar operand");
	/* 1-D operands: A (K) is (1, K), B (K) is (K, 1); the 1 is dropped
	 * from the output. */
	if (ar == 1) {
		ad[0] = 1;
		ad[1] = A->dims[0];
		ar = 2;
	} else {
		memcpy(ad, A->dims, (size_t)ar * sizeof *ad);
	}
	if (br == 1) {
		bd[0] = B->dims[0];
		bd[1] = 1;
		br = 2;
	} else {
		memcpy(bd, B->dims, (size_t)br * sizeof *bd);
	}
	if (ad[ar - 1] != bd[br - 2])
		return sl_errmsg_set(why, SL_EMISMATCH, "MatMul of %s and %s",
		    sl_g_shape_str(A, s1, sizeof s1), sl_g_shape_str(B, s2,
		    sizeof s2));
	m->M = ad[ar - 2];
	m->K = ad[ar - 1];
	m->N = bd[br - 1];
	nb = (ar > br ? ar : br) - 2;
	m->nb = nb;
	m->batch = 1;
	{
		int64_t as = m->M * m->K, bs = m->K * m->N;

		for (int i = nb - 1; i >= 0; i--) {
			const int ia = i - (nb - (ar - 2)), ib = i - (nb - (br - 2));
			const int64_t x = ia >= 0 ? ad[ia] : 1, y = ib >= 0 ? bd[ib] : 1;

			if (x != y && x != 1 && y != 1)
				return sl_errmsg_set(why, SL_EMISMATCH, "MatMul batch "
				    "dims of %s and %s do not broadcast",
				    sl_g_shape_str(A, s1, sizeof s1),
				    sl_g_shape_str(B, s2, sizeof s2));
			m->bdims[i] = x > y ? x : y;
			m->astr[i] = x == 1 ? 0 : as;
			m->bstr[i] = y == 1 ? 0 : bs;
			as *= x;
			bs *= y;
			m->batch *= m->bdims[i];
		}
	}
	/* B without batch dims (a weight): one GEMM with A's rows stacked. */
	m->a_flat = br == 2 && nb > 0;
	for (int i = 0; i < nb; i++)
		od[orank++] = m->bdims[i];
	if (A->rank > 1)
		od[orank++] = m->M;
	if (B->rank > 1)
		od[orank++] = m->N;
	return sl_g_set_shape(sl_g_out(g, n, 0), SL_G_F32, orank, od, why);
}

/* Below this many multiply-adds a call runs on the caller's thread only:
 * starting one costs tens of microseconds. */
#define PARALLEL_MIN_MACS ((int64_t)1 << 21)

/* Threads for a call of macs multiply-adds over items independent pieces
 * (rows, matrices): OpenBLAS's count, the work split by sl_g_parallel
 * into one-thread GEMMs. */
static int
threads_for(int64_t macs, int64_t items)
{
	int nt = openblas_get_num_threads();

	if (nt <= 1 || macs < PARALLEL_MIN_MACS || items < 2)
		return 1;
	return (int64_t)nt < items ? nt : (int)items;
}

/* The share [*lo, *hi) of n items for part t of nt. */
static void
share(int64_t n, int t, int nt, int64_t *lo, int64_t *hi)
{
	*lo = n * t / nt;
	*hi = n * (t + 1) / nt;
}

typedef struct mm_job {
	float *Y;
	const float *A, *B;
	const matmul_attr *m;
	int flat;
	size_t rows;           /* flat: rows of A and Y */
} mm_job;

/* Flat: part t's rows of Y (rows, N) = A (rows, K) B (K, N). */
static void
mm_rows_part(void *arg, int t, int nt)
{
	const mm_job *j = arg;
	const matmul_attr *m = j->m;
	int64_t lo, hi;

	share((int64_t)j->rows, t, nt, &lo, &hi);
	if (hi > lo)
		sgemm(j->Y + lo * m->N, j->A + lo * m->K, j->B, (int)(hi - lo),
		    (int)m->N, (int)m->K, 0, 0, 1.0f, 0.0f);
}

/* Batched: part t's matrices (attention's B*heads small products). */
static void
mm_batch_part(void *arg, int t, int nt)
{
	const mm_job *j = arg;
	const matmul_attr *m = j->m;
	int64_t lo, hi;

	share(m->batch, t, nt, &lo, &hi);
	for (int64_t b = lo; b < hi; b++) {
		int64_t rem = b, ao = 0, bo = 0;

		for (int i = m->nb - 1; i >= 0; i--) {
			const int64_t k = rem % m->bdims[i];

			rem /= m->bdims[i];
			ao += k * m->astr[i];
			bo += k * m->bstr[i];
		}
		sgemm(j->Y + b * m->M * m->N, j->A + ao, j->B + bo, (int)m->M,
		    (int)m->N, (int)m->K, 0, 0, 1.0f, 0.0f);
	}
}

static void
matmul_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const matmul_attr *m = n->attr;
	const float *A = sl_g_in(g, n, 0)->data, *B = sl_g_in(g, n, 1)->data;
	float *Y = sl_g_out(g, n, 0)->data;

	(void)scratch;
	if (m->batch == 0 || m->M == 0 || m->N == 0)
		return;
	if (m->K == 0) {
		memset(Y, 0, (size_t)(m->batch * m->M * m->N) * sizeof *Y);
		return;
	}
	if (m->a_flat || m->nb == 0) {
		mm_job j = { Y, A, B, m, 1, (size_t)(m->batch * m->M) };

		sl_g_parallel(threads_for(m->batch * m->M * m->N * m->K,
		    m->batch * m->M), mm_rows_part, &j);
		return;
	}
	{
		mm_job j = { Y, A, B, m, 0, 0 };

		sl_g_parallel(threads_for(m->batch * m->M * m->N * m->K,
		    m->batch), mm_batch_part, &j);
	}
}

/* --- Gemm ----------------------------------------------------------------------- */

typedef struct gemm_attr {
	float alpha, beta;
	int ta, tb;
	int64_t M, N, K;
	int c_rows, c_cols;    /* C's broadcast: 1 or M, 1 or N; 0: no C */
} gemm_attr;

static int
gemm_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	gemm_attr *x = calloc(1, sizeof *x);
	int64_t ta = 0, tb = 0;
	int rc;

	(void)g;
	if (x == NULL)
		return SL_ENOMEM;
	n->attr = x;
	x->alpha = 1.0f;
	x->beta = 1.0f;
	if ((rc = sl_g_attr_float(a, "alpha", &x->alpha, why)) < 0 ||
	    (rc = sl_g_attr_float(a, "beta", &x->beta, why)) < 0 ||
	    (rc = sl_g_attr_int(a, "transA", &ta, why)) < 0 ||
	    (rc = sl_g_attr_int(a, "transB", &tb, why)) < 0)
		return rc;
	x->ta = ta != 0;
	x->tb = tb != 0;
	return 0;
}

static int
gemm_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *A = sl_g_in(g, n, 0), *B = sl_g_in(g, n, 1),
	    *C = sl_g_in(g, n, 2);
	gemm_attr *x = n->attr;
	char s1[96], s2[96];
	int64_t k2, od[2];

	if (A->dtype != SL_G_F32 || B->dtype != SL_G_F32 ||
	    (C != NULL && C->dtype != SL_G_F32))
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "Gemm of float32 only");
	if (A->rank != 2 || B->rank != 2)
		return sl_errmsg_set(why, SL_EMISMATCH, "Gemm of %s and %s: both "
		    "must be 2-D", sl_g_shape_str(A, s1, sizeof s1),
		    sl_g_shape_str(B, s2, sizeof s2));
	x->M = x->ta ? A->dims[1] : A->dims[0];
	x->K = x->ta ? A->dims[0] : A->dims[1];
	k2 = x->tb ? B->dims[1] : B->dims[0];
	x->N = x->tb ? B->dims[0] : B->dims[1];
	if (k2 != x->K)
		return sl_errmsg_set(why, SL_EMISMATCH, "Gemm of %s and %s "
		    "(transA %d, transB %d)", sl_g_shape_str(A, s1, sizeof s1),
		    sl_g_shape_str(B, s2, sizeof s2), x->ta, x->tb);
	x->c_rows = x->c_cols = 0;
	if (C != NULL) {
		/* Unidirectional broadcast of C to (M, N). */
		const int64_t r = C->rank == 2 ? C->dims[0] : 1;
		const int64_t c = C->rank >= 1 ? C->dims[C->rank - 1] : 1;

		if (C->rank > 2 || (r != 1 && r != x->M) || (c != 1 && c != x->N))
			return sl_errmsg_set(why, SL_EMISMATCH, "Gemm's C %s does "
			    "not broadcast to [%lld, %lld]", sl_g_shape_str(C, s1,
			    sizeof s1), (long long)x->M, (long long)x->N);
		x->c_rows = (int)r == 1 ? 1 : 2;
		x->c_cols = (int)c == 1 ? 1 : 2;
	}
	od[0] = x->M;
	od[1] = x->N;
	return sl_g_set_shape(sl_g_out(g, n, 0), SL_G_F32, 2, od, why);
}

typedef struct gemm_job {
	float *Y;
	const float *A, *B;
	const gemm_attr *x;
	float beta;
} gemm_job;

/* Part t's rows of Y (M, N): A's rows (A not transposed when nt > 1). */
static void
gemm_rows_part(void *arg, int t, int nt)
{
	const gemm_job *j = arg;
	const gemm_attr *x = j->x;
	int64_t lo, hi;

	share(x->M, t, nt, &lo, &hi);
	if (hi <= lo)
		return;
	if (nt == 1) {
		sgemm(j->Y, j->A, j->B, (int)x->M, (int)x->N, (int)x->K, x->ta,
		    x->tb, x->alpha, j->beta);
		return;
	}
	sgemm(j->Y + lo * x->N, j->A + lo * x->K, j->B, (int)(hi - lo),
	    (int)x->N, (int)x->K, 0, x->tb, x->alpha, j->beta);
}

static void
gemm_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const gemm_attr *x = n->attr;
	const float *A = sl_g_in(g, n, 0)->data, *B = sl_g_in(g, n, 1)->data;
	const sl_gtensor *Ct = sl_g_in(g, n, 2);
	float *Y = sl_g_out(g, n, 0)->data;
	const int64_t M = x->M, N = x->N;
	float beta = 0.0f;

	(void)scratch;
	if (M == 0 || N == 0)
		return;
	if (Ct != NULL && x->beta != 0.0f) {
		const float *C = Ct->data;

		/* Y = beta * C broadcast, then the product accumulates. */
		for (int64_t i = 0; i < M; i++) {
			const float *c = C + (x->c_rows == 2 ? i * (x->c_cols == 2 ?
			    N : 1) : 0);

			if (x->c_cols == 2)
				for (int64_t j = 0; j < N; j++)
					Y[i * N + j] = x->beta * c[j];
			else
				for (int64_t j = 0; j < N; j++)
					Y[i * N + j] = x->beta * c[0];
		}
		beta = 1.0f;
	}
	if (x->K == 0) {
		if (beta == 0.0f)
			memset(Y, 0, (size_t)(M * N) * sizeof *Y);
		return;
	}
	{
		gemm_job j = { Y, A, B, x, beta };

		sl_g_parallel(x->ta ? 1 : threads_for(M * N * x->K, M),
		    gemm_rows_part, &j);
	}
}

const sl_gop sl_g_ops_matmul[] = {
	{ "MatMul", 2, 2, 1, 1, matmul_init, matmul_infer, matmul_forward },
	{ "Gemm", 2, 3, 1, 1, gemm_init, gemm_infer, gemm_forward },
	{ NULL, 0, 0, 0, 0, NULL, NULL, NULL },
};

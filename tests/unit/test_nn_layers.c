/* Trainable layers (common/nn/sl_layers.h): each forward against a naive
 * loop in double, each backward against central finite differences of
 * L = sum(out * r) for a fixed random r, on several geometries (strides,
 * padding, groups, depthwise, rectangular planes).
 *
 * Tolerances: forwards within 1e-5 * (1 + |ref|) of the double loop (float
 * sums of at most a few hundred terms of magnitude < 1); finite
 * differences with h = 1e-2 on functions evaluated in float: within
 * 2e-2 * (1 + |g|) (conv, pools and linear are linear in each input, so
 * the difference is exact up to float rounding of L; BatchNorm is smooth
 * and its curvature over h is far below that bound). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sl_layers.h"
#include "sl_rng.h"

static void
fill(float *x, size_t n, sl_rng *r)
{
	for (size_t i = 0; i < n; i++)
		x[i] = 2.0f * sl_rng_float(r) - 1.0f;
}

static void
assert_near(double got, double want, double rel, const char *what, size_t i)
{
	if (fabs(got - want) > rel * (1.0 + fabs(want))) {
		print_error("%s[%zu]: %.9g, expected %.9g\n", what, i, got, want);
		fail();
	}
}

/* --- a finite-difference harness ------------------------------------------ */

typedef struct fd_case fd_case;
/* Runs the forward into out with the current inputs. */
typedef void (*fd_forward)(fd_case *c);

struct fd_case {
	fd_forward fwd;
	float *out, *r;     /* (nout) */
	size_t nout;
	void *ctx;
};

static double
fd_loss(fd_case *c)
{
	double s = 0.0;

	c->fwd(c);
	for (size_t i = 0; i < c->nout; i++)
		s += (double)c->out[i] * (double)c->r[i];
	return s;
}

/* Compare grad[] (the analytic dL/dv) with finite differences on up to 40
 * entries of v spread over it. */
static void
fd_check(fd_case *c, float *v, const float *grad, size_t n, const char *what)
{
	const float h = 1e-2f;
	const size_t step = n > 40 ? n / 40 : 1;

	for (size_t i = 0; i < n; i += step) {
		const float keep = v[i];
		double lp, lm;

		v[i] = keep + h;
		lp = fd_loss(c);
		v[i] = keep - h;
		lm = fd_loss(c);
		v[i] = keep;
		assert_near((double)grad[i], (lp - lm) / (2.0 * (double)h), 2e-2,
		    what, i);
	}
}

/* --- Conv2d ---------------------------------------------------------------- */

typedef struct conv_ctx {
	sl_conv2d_geom g;
	float *x, *w, *b, *scratch;
} conv_ctx;

static void
conv_fwd(fd_case *c)
{
	conv_ctx *k = c->ctx;

	sl_nn_conv2d_forward(c->out, k->x, k->w, k->b, &k->g, k->scratch);
}

static void
conv_naive(double *ref, const conv_ctx *k)
{
	const sl_conv2d_geom *g = &k->g;
	const int Cg = g->C / g->G, OCg = g->OC / g->G;

	for (int b = 0; b < g->B; b++)
		for (int oc = 0; oc < g->OC; oc++)
			for (int oh = 0; oh < g->OH; oh++)
				for (int ow = 0; ow < g->OW; ow++) {
					double s = k->b ? (double)k->b[oc] : 0.0;
					const int gr = oc / OCg;

					for (int ci = 0; ci < Cg; ci++)
						for (int kh = 0; kh < g->KH; kh++)
							for (int kw = 0; kw < g->KW; kw++) {
								const int ih = oh * g->SH - g->PT + kh;
								const int iw = ow * g->SW - g->PL + kw;
								const int c = gr * Cg + ci;

								if (ih < 0 || ih >= g->H || iw < 0 ||
								    iw >= g->W)
									continue;
								s += (double)k->x[((b * g->C + c) *
								    g->H + ih) * g->W + iw] *
								    (double)k->w[((oc * Cg + ci) *
								    g->KH + kh) * g->KW + kw];
							}
					ref[((b * g->OC + oc) * g->OH + oh) * g->OW + ow] = s;
				}
}

/* The gradients of sum(r * conv(x, w)) in double, the same loops. */
static void
conv_naive_backward(double *dx, double *dw, const float *r,
    const conv_ctx *k)
{
	const sl_conv2d_geom *g = &k->g;
	const int Cg = g->C / g->G, OCg = g->OC / g->G;

	for (int b = 0; b < g->B; b++)
		for (int oc = 0; oc < g->OC; oc++)
			for (int oh = 0; oh < g->OH; oh++)
				for (int ow = 0; ow < g->OW; ow++) {
					const double d = (double)r[((b * g->OC + oc) *
					    g->OH + oh) * g->OW + ow];
					const int gr = oc / OCg;

					for (int ci = 0; ci < Cg; ci++)
						for (int kh = 0; kh < g->KH; kh++)
							for (int kw = 0; kw < g->KW; kw++) {
								const int ih = oh * g->SH - g->PT + kh;
								const int iw = ow * g->SW - g->PL + kw;
								const int c = gr * Cg + ci;
								const size_t xi = (size_t)((b * g->C +
								    c) * g->H + ih) * (size_t)g->W +
								    (size_t)iw;
								const size_t wi = (size_t)((oc * Cg +
								    ci) * g->KH + kh) * (size_t)g->KW +
								    (size_t)kw;

								if (ih < 0 || ih >= g->H || iw < 0 ||
								    iw >= g->W)
									continue;
								dx[xi] += d * (double)k->w[wi];
								dw[wi] += d * (double)k->x[xi];
							}
				}
}

static void
check_conv(int B, int C, int H, int W, int OC, int G, int K, int S, int P,
    int bias, uint64_t seed)
{
	conv_ctx k;
	sl_conv2d_geom *g = &k.g;
	sl_rng r;

	memset(&k, 0, sizeof k);
	*g = (sl_conv2d_geom){ .B = B, .C = C, .H = H, .W = W, .OC = OC,
		.G = G, .KH = K, .KW = K, .SH = S, .SW = S, .DH = 1, .DW = 1,
		.PT = P, .PL = P, .threads = 1 };
	g->OH = (H + 2 * P - K) / S + 1;
	g->OW = (W + 2 * P - K) / S + 1;
	const size_t nx = (size_t)B * C * H * W, nw = (size_t)OC * (C / G) * K * K;
	const size_t ny = (size_t)B * OC * g->OH * g->OW;
	float *dx = calloc(nx, sizeof(float)), *dw = calloc(nw, sizeof(float));
	float *db = calloc((size_t)OC, sizeof(float));
	float *out = malloc(ny * sizeof(float)), *rr = malloc(ny * sizeof(float));
	double *ref = malloc(ny * sizeof(double));
	float *col = malloc((sl_nn_conv2d_col_floats(g) + 1) * sizeof(float));

	k.x = malloc(nx * sizeof(float));
	k.w = malloc(nw * sizeof(float));
	k.b = bias ? malloc((size_t)OC * sizeof(float)) : NULL;
	k.scratch = malloc(sl_op_conv2d_scratch_bytes(g) + sizeof(float));
	assert_true(dx && dw && db && out && rr && ref && col && k.x && k.w &&
	    k.scratch && (!bias || k.b));
	sl_rng_seed(&r, seed);
	fill(k.x, nx, &r);
	fill(k.w, nw, &r);
	if (bias)
		fill(k.b, (size_t)OC, &r);
	fill(rr, ny, &r);

	fd_case c = { conv_fwd, out, rr, ny, &k };

	conv_fwd(&c);
	conv_naive(ref, &k);
	for (size_t i = 0; i < ny; i++)
		assert_near((double)out[i], ref[i], 1e-5, "conv out", i);
	sl_nn_conv2d_backward(dx, dw, bias ? db : NULL, rr, k.x, k.w, g, col);
	/* Every entry against the naive loops (chunks of images included). */
	{
		double *rdx = calloc(nx, sizeof(double));
		double *rdw = calloc(nw, sizeof(double));

		assert_true(rdx && rdw);
		conv_naive_backward(rdx, rdw, rr, &k);
		for (size_t i = 0; i < nx; i++)
			assert_near((double)dx[i], rdx[i], 1e-4, "conv dx naive", i);
		for (size_t i = 0; i < nw; i++)
			assert_near((double)dw[i], rdw[i], 1e-4, "conv dw naive", i);
		free(rdx);
		free(rdw);
	}
	fd_check(&c, k.x, dx, nx, "conv dx");
	fd_check(&c, k.w, dw, nw, "conv dw");
	if (bias)
		fd_check(&c, k.b, db, (size_t)OC, "conv db");
	/* dx NULL computes the same parameter gradients. */
	{
		float *dw2 = calloc(nw, sizeof(float));

		assert_non_null(dw2);
		sl_nn_conv2d_backward(NULL, dw2, NULL, rr, k.x, k.w, g, col);
		for (size_t i = 0; i < nw; i++)
			assert_near((double)dw2[i], (double)dw[i], 1e-6, "dw2", i);
		free(dw2);
	}
	free(dx); free(dw); free(db); free(out); free(rr); free(ref); free(col);
	free(k.x); free(k.w); free(k.b); free(k.scratch);
}

static void
test_conv_plain(void **state)
{
	(void)state;
	check_conv(2, 3, 7, 6, 4, 1, 3, 1, 1, 1, 1);
	check_conv(3, 2, 8, 8, 5, 1, 3, 2, 0, 1, 2);
	check_conv(1, 1, 28, 28, 4, 1, 5, 1, 2, 0, 3);
	check_conv(2, 4, 5, 5, 6, 1, 1, 1, 0, 1, 4);  /* 1x1 */
	/* backward in chunks of 2 images (2, 2, then 1) */
	check_conv(5, 6, 28, 28, 4, 1, 3, 1, 1, 1, 11);
	check_conv(2, 3, 9, 7, 2, 1, 4, 3, 1, 1, 5);  /* stride 3, even kernel */
}

static void
test_conv_groups_and_depthwise(void **state)
{
	(void)state;
	check_conv(2, 4, 6, 6, 6, 2, 3, 1, 1, 1, 6);   /* groups 2 */
	check_conv(5, 6, 28, 28, 6, 2, 3, 1, 1, 1, 12); /* groups, chunks 4, 1 */
	check_conv(2, 6, 7, 7, 6, 3, 3, 2, 1, 0, 7);   /* groups 3, stride 2 */
	check_conv(3, 5, 8, 6, 5, 5, 3, 1, 1, 1, 8);   /* depthwise */
	check_conv(2, 4, 9, 9, 4, 4, 3, 2, 1, 1, 9);   /* depthwise, stride 2 */
	check_conv(2, 3, 6, 6, 6, 3, 3, 1, 0, 1, 10);  /* multiplier 2 */
}

/* --- BatchNorm2d ----------------------------------------------------------- */

typedef struct bn_ctx {
	int B, C, S;
	float *x, *gamma, *beta, *mean, *invstd, *rm, *rv;
} bn_ctx;

static void
bn_fwd(fd_case *c)
{
	bn_ctx *k = c->ctx;

	/* The running statistics are scratch here: FD runs forward often. */
	sl_nn_bn2d_forward_train(c->out, k->mean, k->invstd, k->rm, k->rv, k->x,
	    k->gamma, k->beta, k->B, k->C, k->S, 1e-5f, 0.1f);
}

static void
check_bn(int B, int C, int S, uint64_t seed)
{
	const size_t n = (size_t)B * C * S;
	bn_ctx k = { B, C, S, NULL, NULL, NULL, NULL, NULL, NULL, NULL };
	float *out = malloc(n * sizeof(float)), *rr = malloc(n * sizeof(float));
	float *dx = malloc(n * sizeof(float));
	float *dg = calloc((size_t)C, sizeof(float)), *dbt = calloc((size_t)C,
	    sizeof(float));
	float *rm0 = malloc((size_t)C * sizeof(float)), *rv0 = malloc((size_t)C *
	    sizeof(float));
	sl_rng r;

	k.x = malloc(n * sizeof(float));
	k.gamma = malloc((size_t)C * sizeof(float));
	k.beta = malloc((size_t)C * sizeof(float));
	k.mean = malloc((size_t)C * sizeof(float));
	k.invstd = malloc((size_t)C * sizeof(float));
	k.rm = malloc((size_t)C * sizeof(float));
	k.rv = malloc((size_t)C * sizeof(float));
	assert_true(out && rr && dx && dg && dbt && rm0 && rv0 && k.x &&
	    k.gamma && k.beta && k.mean && k.invstd && k.rm && k.rv);
	sl_rng_seed(&r, seed);
	fill(k.x, n, &r);
	for (size_t i = 0; i < n; i++)   /* channels of different means */
		k.x[i] = k.x[i] * 2.0f + (float)((i / (size_t)S) % (size_t)C);
	fill(k.gamma, (size_t)C, &r);
	fill(k.beta, (size_t)C, &r);
	fill(rm0, (size_t)C, &r);
	for (int c = 0; c < C; c++)
		rv0[c] = 1.0f + 0.5f * sl_rng_float(&r);
	fill(rr, n, &r);
	memcpy(k.rm, rm0, (size_t)C * sizeof(float));
	memcpy(k.rv, rv0, (size_t)C * sizeof(float));

	fd_case c = { bn_fwd, out, rr, n, &k };

	bn_fwd(&c);
	/* forward and running statistics against double loops */
	for (int ch = 0; ch < C; ch++) {
		double s = 0, ss = 0, m, var;
		const double cnt = (double)B * S;

		for (int b = 0; b < B; b++)
			for (int i = 0; i < S; i++)
				s += (double)k.x[((size_t)b * C + ch) * S + i];
		m = s / cnt;
		for (int b = 0; b < B; b++)
			for (int i = 0; i < S; i++) {
				const double d = (double)k.x[((size_t)b * C + ch) * S + i] - m;

				ss += d * d;
			}
		var = ss / cnt;
		for (int b = 0; b < B; b++)
			for (int i = 0; i < S; i++) {
				const size_t o = ((size_t)b * C + ch) * S + i;

				assert_near((double)out[o], ((double)k.x[o] - m) /
				    sqrt(var + 1e-5) * (double)k.gamma[ch] +
				    (double)k.beta[ch], 1e-5, "bn out", o);
			}
		assert_near((double)k.rm[ch], 0.9 * (double)rm0[ch] + 0.1 * m, 1e-6,
		    "running_mean", (size_t)ch);
		assert_near((double)k.rv[ch], 0.9 * (double)rv0[ch] + 0.1 * ss /
		    (cnt - 1), 1e-6, "running_var", (size_t)ch);
	}
	sl_nn_bn2d_backward(dx, dg, dbt, rr, k.x, k.gamma, k.mean, k.invstd, B,
	    C, S);
	fd_check(&c, k.x, dx, n, "bn dx");
	fd_check(&c, k.gamma, dg, (size_t)C, "bn dgamma");
	fd_check(&c, k.beta, dbt, (size_t)C, "bn dbeta");

	/* evaluation: the running statistics, not the batch's */
	sl_nn_bn2d_forward_eval(out, k.x, k.gamma, k.beta, rm0, rv0, B, C, S,
	    1e-3f);
	for (size_t o = 0; o < n; o++) {
		const int ch = (int)((o / (size_t)S) % (size_t)C);

		assert_near((double)out[o], ((double)k.x[o] - (double)rm0[ch]) /
		    sqrt((double)rv0[ch] + 1e-3) * (double)k.gamma[ch] +
		    (double)k.beta[ch], 1e-5, "bn eval", o);
	}
	free(out); free(rr); free(dx); free(dg); free(dbt); free(rm0); free(rv0);
	free(k.x); free(k.gamma); free(k.beta); free(k.mean); free(k.invstd);
	free(k.rm); free(k.rv);
}

static void
test_bn(void **state)
{
	(void)state;
	check_bn(4, 3, 25, 11);
	check_bn(2, 5, 1, 12);   /* after a global pool: S = 1 */
	check_bn(7, 2, 6, 13);
}

/* --- pools ------------------------------------------------------------------- */

typedef struct pool_ctx {
	sl_pool2d_geom g;
	int is_max;
	float *x;
} pool_ctx;

static void
pool_fwd(fd_case *c)
{
	pool_ctx *k = c->ctx;

	if (k->is_max)
		sl_nn_maxpool2d_forward(c->out, k->x, &k->g);
	else
		sl_nn_avgpool2d_forward(c->out, k->x, &k->g);
}

static void
check_pool(int is_max, int N, int H, int W, int K, int S, int P,
    uint64_t seed)
{
	pool_ctx k;
	sl_pool2d_geom *g = &k.g;
	sl_rng r;

	memset(&k, 0, sizeof k);
	k.is_max = is_max;
	*g = (sl_pool2d_geom){ .N = (size_t)N, .D = 1, .KD = 1, .SD = 1,
		.DD = 1, .OD = 1, .H = H, .W = W, .KH = K, .KW = K, .SH = S,
		.SW = S, .DH = 1, .DW = 1, .PT = P, .PL = P, .PB = P, .PR = P };
	g->OH = (H + 2 * P - K) / S + 1;
	g->OW = (W + 2 * P - K) / S + 1;
	const size_t nx = (size_t)N * H * W, ny = (size_t)N * g->OH * g->OW;
	float *out = malloc(ny * sizeof(float)), *rr = malloc(ny * sizeof(float));
	float *dx = malloc(nx * sizeof(float));

	k.x = malloc(nx * sizeof(float));
	assert_true(out && rr && dx && k.x);
	sl_rng_seed(&r, seed);
	fill(k.x, nx, &r);
	if (is_max) {
		/* Distinct values 0.05 apart (> 2h): no window holds two
		 * within the finite-difference step, so no kink is crossed. */
		size_t *perm = malloc(nx * sizeof *perm);

		assert_non_null(perm);
		for (size_t i = 0; i < nx; i++)
			perm[i] = i;
		sl_rng_shuffle(&r, perm, nx);
		for (size_t i = 0; i < nx; i++)
			k.x[perm[i]] = 0.05f * (float)i - 0.025f * (float)nx;
		free(perm);
	}
	fill(rr, ny, &r);

	fd_case c = { pool_fwd, out, rr, ny, &k };

	pool_fwd(&c);
	for (int p = 0; p < N; p++)
		for (int oh = 0; oh < g->OH; oh++)
			for (int ow = 0; ow < g->OW; ow++) {
				double m = -INFINITY, s = 0;

				for (int kh = 0; kh < K; kh++)
					for (int kw = 0; kw < K; kw++) {
						const int ih = oh * S - P + kh;
						const int iw = ow * S - P + kw;

						if (ih < 0 || ih >= H || iw < 0 || iw >= W)
							continue;
						const double v = k.x[((size_t)p * H + ih) *
						    W + iw];

						m = v > m ? v : m;
						s += v;
					}
				const size_t o = ((size_t)p * g->OH + oh) * g->OW + ow;

				/* count_include_pad: every window has K*K taps */
				assert_near((double)out[o], is_max ? m : s / (K * K),
				    1e-5, is_max ? "maxpool" : "avgpool", o);
			}
	/* Backward writes every element of dx: NaN where it did not
	 * would fail the finite differences. */
	for (size_t i = 0; i < nx; i++)
		dx[i] = NAN;
	if (is_max)
		sl_nn_maxpool2d_backward(dx, rr, k.x, g);
	else
		sl_nn_avgpool2d_backward(dx, rr, g);
	fd_check(&c, k.x, dx, nx, is_max ? "maxpool dx" : "avgpool dx");
	free(out); free(rr); free(dx); free(k.x);
}

static void
test_pools(void **state)
{
	(void)state;
	check_pool(1, 3, 8, 8, 2, 2, 0, 21);
	check_pool(1, 2, 7, 9, 2, 2, 0, 27);   /* 2x2 path, a row and column left */
	check_pool(1, 2, 7, 9, 3, 2, 1, 22);
	check_pool(1, 2, 6, 6, 3, 1, 1, 23);   /* overlapping windows */
	check_pool(0, 3, 8, 8, 2, 2, 0, 24);
	check_pool(0, 2, 7, 9, 3, 2, 1, 25);   /* pads counted */
	check_pool(0, 2, 5, 5, 3, 1, 1, 26);
}

/* A tie: the gradient goes to the first maximum only, as in PyTorch. */
static void
test_maxpool_tie_first(void **state)
{
	sl_pool2d_geom g = { .N = 1, .D = 1, .KD = 1, .SD = 1, .DD = 1, .OD = 1,
		.H = 2, .W = 2, .KH = 2, .KW = 2, .SH = 2, .SW = 2, .DH = 1,
		.DW = 1, .OH = 1, .OW = 1 };
	const float x[4] = { 0.5f, 3.0f, 3.0f, 1.0f }, d[1] = { 2.0f };
	float dx[4], out[1];

	(void)state;
	sl_nn_maxpool2d_forward(out, x, &g);
	assert_true(out[0] == 3.0f);
	sl_nn_maxpool2d_backward(dx, d, x, &g);
	assert_true(dx[0] == 0.0f && dx[1] == 2.0f && dx[2] == 0.0f &&
	    dx[3] == 0.0f);
}

/* --- global average pool ------------------------------------------------------- */

typedef struct gap_ctx {
	size_t N, S;
	float *x;
} gap_ctx;

static void
gap_fwd(fd_case *c)
{
	gap_ctx *k = c->ctx;

	sl_nn_gap_forward(c->out, k->x, k->N, k->S);
}

static void
test_gap(void **state)
{
	enum { N = 6, S = 49 };
	float x[N * S], out[N], rr[N], dx[N * S];
	gap_ctx k = { N, S, x };
	fd_case c = { gap_fwd, out, rr, N, &k };
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 31);
	fill(x, N * S, &r);
	fill(rr, N, &r);
	gap_fwd(&c);
	for (int p = 0; p < N; p++) {
		double s = 0;

		for (int i = 0; i < S; i++)
			s += (double)x[p * S + i];
		assert_near((double)out[p], s / S, 1e-6, "gap", (size_t)p);
	}
	sl_nn_gap_backward(dx, rr, N, S);
	fd_check(&c, x, dx, N * S, "gap dx");
}

static void
test_add(void **state)
{
	const float a[3] = { 1, -2, 0.5f }, b[3] = { 0.25f, 2, -4 };
	float o[3];

	(void)state;
	sl_nn_add_forward(o, a, b, 3);
	assert_true(o[0] == 1.25f && o[1] == 0.0f && o[2] == -3.5f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conv_plain),
		cmocka_unit_test(test_conv_groups_and_depthwise),
		cmocka_unit_test(test_bn),
		cmocka_unit_test(test_pools),
		cmocka_unit_test(test_maxpool_tie_first),
		cmocka_unit_test(test_gap),
		cmocka_unit_test(test_add),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

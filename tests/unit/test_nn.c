/* Dense layers against naive loops; every backward pass against central
 * finite differences; the MLP end to end, with and without dropout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sl_err.h"
#include "sl_nn.h"

static void
fill(float *x, size_t n, sl_rng *r, float scale)
{
	for (size_t i = 0; i < n; i++)
		x[i] = (2.0f * sl_rng_float(r) - 1.0f) * scale;
}

/* Float results of sgemm and of a double loop differ by rounding; the bound
 * is a few ulps of the largest partial sum. */
static void
assert_close(const float *a, const float *b, size_t n, double tol)
{
	for (size_t i = 0; i < n; i++)
		if (fabs((double)a[i] - (double)b[i]) > tol) {
			print_error("index %zu: %.9g vs %.9g (tol %g)\n", i,
			    (double)a[i], (double)b[i], tol);
			fail();
		}
}

static void
test_dense_forward_matches_naive(void **state)
{
	enum { B = 7, C = 13, OC = 5 };
	float x[B * C], W[OC * C], b[OC], y[B * OC], ref[B * OC];
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 1);
	fill(x, B * C, &r, 1);
	fill(W, OC * C, &r, 1);
	fill(b, OC, &r, 1);
	sl_nn_dense_forward(y, x, W, b, B, C, OC);
	for (int i = 0; i < B; i++)
		for (int o = 0; o < OC; o++) {
			double s = b[o];

			for (int c = 0; c < C; c++)
				s += (double)x[i * C + c] * (double)W[o * C + c];
			ref[i * OC + o] = (float)s;
		}
	assert_close(y, ref, B * OC, 1e-5);
}

static void
test_dense_backward_matches_naive(void **state)
{
	enum { B = 6, C = 9, OC = 4 };
	float x[B * C], W[OC * C], dy[B * OC];
	float dx[B * C], dW[OC * C], db[OC];
	float rdx[B * C], rdW[OC * C], rdb[OC];
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 2);
	fill(x, B * C, &r, 1);
	fill(W, OC * C, &r, 1);
	fill(dy, B * OC, &r, 1);
	/* dW and db accumulate: start from a known non-zero value. */
	for (int i = 0; i < OC * C; i++)
		dW[i] = rdW[i] = 0.5f;
	for (int i = 0; i < OC; i++)
		db[i] = rdb[i] = -0.25f;
	sl_nn_dense_backward(dx, dW, db, dy, x, W, B, C, OC);
	for (int o = 0; o < OC; o++) {
		for (int c = 0; c < C; c++) {
			double s = 0;

			for (int i = 0; i < B; i++)
				s += (double)dy[i * OC + o] * (double)x[i * C + c];
			rdW[o * C + c] += (float)s;
		}
		for (int i = 0; i < B; i++)
			rdb[o] += dy[i * OC + o];
	}
	for (int i = 0; i < B; i++)
		for (int c = 0; c < C; c++) {
			double s = 0;

			for (int o = 0; o < OC; o++)
				s += (double)dy[i * OC + o] * (double)W[o * C + c];
			rdx[i * C + c] = (float)s;
		}
	assert_close(dW, rdW, OC * C, 1e-5);
	assert_close(db, rdb, OC, 1e-5);
	assert_close(dx, rdx, B * C, 1e-5);
}

/* The SIMD body and the scalar tail must both equal x > 0 ? x : 0, NaN
 * and signed zeros included; 11 values cover two vectors and a tail. */
static void
test_relu_and_backward(void **state)
{
	const float x[11] = { -2, -0.5f, 0, 0.5f, 3, -1e-30f, NAN, -0.0f,
		INFINITY, -INFINITY, 1e-40f };
	const float dy[11] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11 };
	float y[11], d[11], inplace[11];

	(void)state;
	sl_nn_relu_forward(y, x, 11);
	memcpy(inplace, x, sizeof x);
	sl_nn_relu_forward(inplace, inplace, 11);
	for (int i = 0; i < 11; i++) {
		const float want = x[i] > 0.0f ? x[i] : 0.0f;

		assert_memory_equal(&y[i], &want, sizeof want); /* +0, not -0 */
		assert_memory_equal(&inplace[i], &want, sizeof want);
	}
	sl_nn_relu_backward(d, dy, y, 11);
	for (int i = 0; i < 11; i++)
		assert_true(d[i] == (y[i] > 0.0f ? dy[i] : 0.0f));
	assert_true(d[3] == 4 && d[4] == 5 && d[8] == 9 && d[10] == 11);
	assert_true(d[0] == 0 && d[6] == 0 && d[7] == 0);
}

static void
test_dropout_keeps_expectation(void **state)
{
	enum { N = 200000 };
	float *x = malloc(N * sizeof *x), *mask = malloc(N * sizeof *mask);
	double sum = 0;
	size_t zeros = 0;
	sl_rng r;

	(void)state;
	assert_non_null(x);
	assert_non_null(mask);
	sl_rng_seed(&r, 3);
	for (int i = 0; i < N; i++)
		x[i] = 1.0f;
	sl_nn_dropout_forward(x, mask, N, 0.2f, &r);
	for (int i = 0; i < N; i++) {
		sum += (double)x[i];
		zeros += x[i] == 0.0f;
		assert_true(x[i] == 0.0f || fabsf(x[i] - 1.25f) < 1e-6f);
	}
	/* Binomial(200000, 0.2): sd of the zero fraction is 0.0009. */
	assert_true(fabs((double)zeros / N - 0.2) < 0.005);
	assert_true(fabs(sum / N - 1.0) < 0.01);
	/* Backward routes gradient through kept units only, scaled. */
	for (int i = 0; i < N; i++)
		x[i] = 2.0f;
	sl_nn_dropout_backward(x, mask, N);
	for (int i = 0; i < N; i++)
		assert_true(x[i] == 2.0f * mask[i]);
	free(x);
	free(mask);
}

/* L = sum(logits * R): dL/dlogits = R, so the MLP's backward gives dL/dp. */
static double
probe_loss(const sl_mlp *m, sl_mlp_ws *ws, const float *x, int B,
    const float *R)
{
	const float *z = sl_mlp_forward(m, ws, x, B, 0.0f, NULL);
	const int C = m->sizes[m->nlayers];
	double L = 0;

	for (int i = 0; i < B * C; i++)
		L += (double)z[i] * (double)R[i];
	return L;
}

static void
test_mlp_backward_finite_differences(void **state)
{
	const int sizes[] = { 8, 7, 6, 3 };
	enum { B = 5 };
	sl_mlp *m = NULL;
	sl_mlp_ws *ws = NULL;
	float x[B * 8], R[B * 3], *g;
	sl_rng r;
	size_t checked = 0;

	(void)state;
	assert_int_equal(sl_mlp_new(sizes, 3, &m), 0);
	assert_int_equal(sl_mlp_ws_new(m, B, &ws), 0);
	sl_rng_seed(&r, 4);
	sl_mlp_init_params(m, &r);
	fill(x, sizeof x / sizeof *x, &r, 1);
	fill(R, sizeof R / sizeof *R, &r, 1);
	g = malloc(m->nparams * sizeof *g);
	assert_non_null(g);

	(void)sl_mlp_forward(m, ws, x, B, 0.0f, NULL);
	sl_mlp_backward(m, ws, R, B, g);
	for (size_t i = 0; i < m->nparams; i++) {
		const float h = 1e-2f, p0 = m->params[i];
		double lp, lm, fd;

		m->params[i] = p0 + h;
		lp = probe_loss(m, ws, x, B, R);
		m->params[i] = p0 - h;
		lm = probe_loss(m, ws, x, B, R);
		m->params[i] = p0;
		fd = (lp - lm) / (2.0 * (double)h);
		/* A ReLU kink inside [p-h, p+h] makes the difference one-sided;
		 * such parameters are rare and skipped by the second test. */
		if (fabs(fd - (double)g[i]) > 1e-3 + 1e-2 * fabs(fd)) {
			m->params[i] = p0 + h / 8;
			lp = probe_loss(m, ws, x, B, R);
			m->params[i] = p0 - h / 8;
			lm = probe_loss(m, ws, x, B, R);
			m->params[i] = p0;
			fd = (lp - lm) / (2.0 * (double)(h / 8));
		}
		if (fabs(fd - (double)g[i]) > 2e-3 + 2e-2 * fabs(fd)) {
			print_error("param %zu: analytic %.6g, numeric %.6g\n", i,
			    (double)g[i], fd);
			fail();
		}
		checked++;
	}
	assert_int_equal(checked, m->nparams);
	free(g);
	sl_mlp_ws_free(&ws);
	sl_mlp_free(&m);
	assert_null(m);
	assert_null(ws);
}

/* With dropout the forward pass is a fixed function once the mask is drawn;
 * replaying the same RNG state reproduces it, so FD still applies. */
static void
test_mlp_backward_with_dropout(void **state)
{
	const int sizes[] = { 6, 10, 4 };
	enum { B = 3 };
	sl_mlp *m = NULL;
	sl_mlp_ws *ws = NULL;
	float x[B * 6], R[B * 4], *g;
	sl_rng r, drop, saved;

	(void)state;
	assert_int_equal(sl_mlp_new(sizes, 2, &m), 0);
	assert_int_equal(sl_mlp_ws_new(m, B, &ws), 0);
	sl_rng_seed(&r, 5);
	sl_mlp_init_params(m, &r);
	fill(x, sizeof x / sizeof *x, &r, 1);
	fill(R, sizeof R / sizeof *R, &r, 1);
	g = malloc(m->nparams * sizeof *g);
	assert_non_null(g);
	sl_rng_seed(&saved, 99);
	drop = saved;
	(void)sl_mlp_forward(m, ws, x, B, 0.5f, &drop);
	sl_mlp_backward(m, ws, R, B, g);
	for (size_t i = 0; i < (size_t)(10 * 6); i++) { /* first weight */
		const float h = 1e-2f, p0 = m->params[i];
		double L[2];

		for (int s = 0; s < 2; s++) {
			const float *z;

			m->params[i] = p0 + (s ? -h : h);
			drop = saved;
			z = sl_mlp_forward(m, ws, x, B, 0.5f, &drop);
			L[s] = 0;
			for (int k = 0; k < B * 4; k++)
				L[s] += (double)z[k] * (double)R[k];
		}
		m->params[i] = p0;
		const double fd = (L[0] - L[1]) / (2.0 * (double)h);
		assert_true(fabs(fd - (double)g[i]) < 2e-3 + 2e-2 * fabs(fd));
	}
	free(g);
	sl_mlp_ws_free(&ws);
	sl_mlp_free(&m);
}

static void
test_arch_parse_and_limits(void **state)
{
	int sizes[SL_MLP_MAX_LAYERS + 1], nl;
	char buf[64];
	sl_mlp *m = NULL;

	(void)state;
	assert_int_equal(sl_mlp_parse_arch("784-1200-1200-10", sizes, &nl), 0);
	assert_int_equal(nl, 3);
	assert_int_equal(sizes[0], 784);
	assert_int_equal(sizes[3], 10);
	assert_int_equal(sl_mlp_new(sizes, nl, &m), 0);
	assert_int_equal(m->nparams, (size_t)784 * 1200 + 1200 + 1200 * 1200 +
	    1200 + 1200 * 10 + 10);
	sl_mlp_format_arch(m, buf, sizeof buf);
	assert_string_equal(buf, "784-1200-1200-10");
	sl_mlp_free(&m);

	const char *bad[] = { "", "784", "784-", "-10", "784--10", "784-0-10",
		"784-x-10", "784-10 ", "99999999999-10", "1-2-3-4-5-6-7-8-9-10-11-12-13-14-15-16-17-18" };
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		assert_int_not_equal(sl_mlp_parse_arch(bad[i], sizes, &nl), 0);

	const int huge[] = { 1 << 20, 1 << 20, 10 };
	assert_int_equal(sl_mlp_new(huge, 2, &m), SL_EINVAL);
	assert_null(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dense_forward_matches_naive),
		cmocka_unit_test(test_dense_backward_matches_naive),
		cmocka_unit_test(test_relu_and_backward),
		cmocka_unit_test(test_dropout_keeps_expectation),
		cmocka_unit_test(test_mlp_backward_finite_differences),
		cmocka_unit_test(test_mlp_backward_with_dropout),
		cmocka_unit_test(test_arch_parse_and_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

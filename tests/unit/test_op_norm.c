/* Normalizations and reductions (op_norm.c) through the graph engine:
 * BatchNormalization against the formula (and its attribute as fold.c
 * reads it), LayerNormalization and InstanceNormalization against
 * double-precision loops, Softmax/LogSoftmax invariants (rows sum to 1,
 * shift invariance, no overflow) and both axis semantics (opset 13 and
 * the older 2-D coercion), every Reduce* against a naive loop over axis
 * sets, keepdims and noop_with_empty_axes. Tolerances are stated per
 * test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "one_node.h"

/* --- BatchNormalization ---------------------------------------------------- */

/* y = (x - mean) / sqrt(var + eps) * scale + B over (N, C, H, W) and
 * (N, C): atol 1e-5, rtol 1e-5 against double (one float rounding of
 * the per-channel factor, then two operations). The node keeps its
 * epsilon where fold.c reads it. */
static void
test_batchnorm_against_formula(void **state)
{
	const int64_t dx[4] = { 2, 3, 4, 5 }, dc = 3;
	float x[120], sc[3], b[3], m[3], v[3];
	double ref[120];
	const sl_gattr eps = { .name = "epsilon", .type = SL_GA_FLOAT,
	    .f = 1e-2f };
	tin in[5];
	one o;

	(void)state;
	fill(x, 120, -3, 3);
	fill(sc, 3, -2, 2);
	fill(b, 3, -1, 1);
	fill(m, 3, -1, 1);
	fill(v, 3, 0.1f, 2);
	for (int i = 0; i < 120; i++) {
		const int c = (i / 20) % 3;

		ref[i] = ((double)x[i] - (double)m[c]) / sqrt((double)v[c] +
		    (double)1e-2f) * (double)sc[c] + (double)b[c];
	}
	in[0] = f32_in(4, dx, x);
	in[1] = typed_in(SL_G_F32, 1, &dc, sc, 1);
	in[2] = typed_in(SL_G_F32, 1, &dc, b, 1);
	in[3] = typed_in(SL_G_F32, 1, &dc, m, 1);
	in[4] = typed_in(SL_G_F32, 1, &dc, v, 1);
	expect_ok(&o, "BatchNormalization", 15, &eps, 1, in, 5, 1);
	assert_close_f(out_t(&o, 0)->data, ref, 120, 1e-5, 1e-5, "bn 4-D");
	assert_true(((const sl_g_bn_attr *)o.g->n[0].attr)->epsilon == 1e-2f);
	sl_g_free(&o.g);

	{
		/* (N, C) as after a Linear (BatchNorm1d), default epsilon. */
		const int64_t d2[2] = { 40, 3 };

		for (int i = 0; i < 120; i++) {
			const int c = i % 3;

			ref[i] = ((double)x[i] - (double)m[c]) / sqrt((double)v[c] +
			    (double)1e-5f) * (double)sc[c] + (double)b[c];
		}
		in[0] = f32_in(2, d2, x);
		expect_ok(&o, "BatchNormalization", 9, NULL, 0, in, 5, 1);
		assert_close_f(out_t(&o, 0)->data, ref, 120, 1e-5, 1e-5, "bn 2-D");
		assert_true(((const sl_g_bn_attr *)o.g->n[0].attr)->epsilon ==
		    1e-5f);
		sl_g_free(&o.g);
	}
}

static void
test_batchnorm_refusals(void **state)
{
	const int64_t dx[4] = { 2, 3, 4, 5 }, dc = 3, d4 = 4;
	float x[120] = { 0 }, p[4] = { 1, 1, 1, 1 };
	const sl_gattr train = { .name = "training_mode", .type = SL_GA_INT,
	    .i = 1 };
	tin in[5];
	one o;

	(void)state;
	in[0] = f32_in(4, dx, x);
	for (int j = 1; j < 5; j++)
		in[j] = typed_in(SL_G_F32, 1, &dc, p, 1);
	assert_int_equal(one_run(&o, "BatchNormalization", 15, &train, 1, in,
	    5, 1), SL_EUNSUPPORTED);
	assert_non_null(strstr(o.why.text, "training_mode"));
	sl_g_free(&o.g);
	assert_int_equal(one_run(&o, "BatchNormalization", 15, NULL, 0, in, 5,
	    3), SL_EUNSUPPORTED);
	assert_non_null(strstr(o.why.text, "outputs"));
	sl_g_free(&o.g);
	in[3] = typed_in(SL_G_F32, 1, &d4, p, 1);
	assert_int_equal(one_run(&o, "BatchNormalization", 15, NULL, 0, in, 5,
	    1), SL_EMISMATCH);
	assert_non_null(strstr(o.why.text, "mean [4]"));
	assert_non_null(strstr(o.why.text, "[2, 3, 4, 5]"));
	sl_g_free(&o.g);
}

/* --- LayerNormalization, InstanceNormalization ------------------------------ */

/* The double-precision loop: rows of M, mean and variance in double. */
static void
ref_layernorm(double *y, double *mean, double *inv, const float *x,
    const float *sc, const float *b, int64_t R, int64_t M, int64_t pm,
    double eps)
{
	for (int64_t r = 0; r < R; r++) {
		double s = 0, q = 0;

		for (int64_t i = 0; i < M; i++)
			s += (double)x[r * M + i];
		s /= (double)M;
		for (int64_t i = 0; i < M; i++)
			q += ((double)x[r * M + i] - s) * ((double)x[r * M + i] - s);
		q /= (double)M;
		mean[r] = s;
		inv[r] = 1 / sqrt(q + eps);
		for (int64_t i = 0; i < M; i++)
			y[r * M + i] = ((double)x[r * M + i] - s) * inv[r] *
			    (double)sc[i % pm] + (b ? (double)b[i % pm] : 0.0);
	}
}

/* Over the last axis of (3, 5, 64) with Mean and InvStdDev; around an
 * offset of 100 with a small spread (where float sums would lose
 * digits); axis 1 (M = 320) with a (64) scale broadcast and no bias.
 * atol 2e-6, rtol 2e-6 against double. */
static void
test_layernorm_against_double(void **state)
{
	enum { R = 15, M = 64, N = R * M };
	const int64_t dx[3] = { 3, 5, 64 }, dm = 64;
	float x[N], sc[M], b[M];
	double ref[N], rm[R], ri[R];
	tin in[3];
	one o;

	(void)state;
	fill(sc, M, -2, 2);
	fill(b, M, -1, 1);
	for (int pass = 0; pass < 2; pass++) {
		const float off = pass ? 100.0f : 0.0f, spread = pass ? 0.01f : 3.0f;

		for (int i = 0; i < N; i++)
			x[i] = off + frand(-spread, spread);
		ref_layernorm(ref, rm, ri, x, sc, b, R, M, M, (double)1e-5f);
		in[0] = f32_in(3, dx, x);
		in[1] = typed_in(SL_G_F32, 1, &dm, sc, 1);
		in[2] = typed_in(SL_G_F32, 1, &dm, b, 1);
		expect_ok(&o, "LayerNormalization", 17, NULL, 0, in, 3, 3);
		assert_close_f(out_t(&o, 0)->data, ref, N, 2e-6, 2e-6, "ln Y");
		assert_int_equal(out_t(&o, 1)->rank, 3);
		assert_int_equal(out_t(&o, 1)->dims[1], 5);
		assert_int_equal(out_t(&o, 1)->dims[2], 1);
		assert_close_f(out_t(&o, 1)->data, rm, R, 1e-6, 1e-6, "ln Mean");
		assert_close_f(out_t(&o, 2)->data, ri, R, 1e-6, 1e-6,
		    "ln InvStdDev");
		sl_g_free(&o.g);
	}
	{
		const sl_gattr at[2] = {
			{ .name = "axis", .type = SL_GA_INT, .i = 1 },
			{ .name = "epsilon", .type = SL_GA_FLOAT, .f = 1e-3f },
		};

		fill(x, N, -3, 3);
		ref_layernorm(ref, rm, ri, x, sc, NULL, 3, 5 * M, M,
		    (double)1e-3f);
		in[0] = f32_in(3, dx, x);
		expect_ok(&o, "LayerNormalization", 17, at, 2, in, 2, 1);
		assert_close_f(out_t(&o, 0)->data, ref, N, 2e-6, 2e-6,
		    "ln axis 1");
		sl_g_free(&o.g);
	}
	{
		/* A scale that does not broadcast is refused with shapes. */
		const int64_t d63 = 63;

		in[1] = typed_in(SL_G_F32, 1, &d63, sc, 1);
		assert_int_equal(one_run(&o, "LayerNormalization", 17, NULL, 0,
		    in, 2, 1), SL_EMISMATCH);
		assert_non_null(strstr(o.why.text, "[63]"));
		assert_non_null(strstr(o.why.text, "[3, 5, 64]"));
		sl_g_free(&o.g);
	}
}

/* Per (n, c) over H*W: atol 2e-6, rtol 2e-6 against double. */
static void
test_instancenorm_against_double(void **state)
{
	const int64_t dx[4] = { 2, 3, 4, 5 }, dc = 3;
	float x[120], sc[3], b[3], sc20[20 * 6], b20[20 * 6];
	double ref[120], rm[6], ri[6];
	tin in[3];
	one o;

	(void)state;
	fill(x, 120, -3, 3);
	fill(sc, 3, -2, 2);
	fill(b, 3, -1, 1);
	/* As six LayerNorm rows of 20 with the channel's scale and bias. */
	for (int r = 0; r < 6; r++) {
		for (int i = 0; i < 20; i++) {
			sc20[r * 20 + i] = sc[r % 3];
			b20[r * 20 + i] = b[r % 3];
		}
	}
	for (int r = 0; r < 6; r++)
		ref_layernorm(ref + r * 20, rm + r, ri + r, x + r * 20,
		    sc20 + r * 20, b20 + r * 20, 1, 20, 20, (double)1e-5f);
	in[0] = f32_in(4, dx, x);
	in[1] = typed_in(SL_G_F32, 1, &dc, sc, 1);
	in[2] = typed_in(SL_G_F32, 1, &dc, b, 1);
	expect_ok(&o, "InstanceNormalization", 6, NULL, 0, in, 3, 1);
	assert_close_f(out_t(&o, 0)->data, ref, 120, 2e-6, 2e-6, "instnorm");
	sl_g_free(&o.g);
}

/* --- Softmax, LogSoftmax -------------------------------------------------- */

/* Softmax over len values at stride inner, in double. */
static void
ref_softmax(double *y, const float *x, int64_t outer, int64_t len,
    int64_t inner, int log_out)
{
	for (int64_t o = 0; o < outer; o++)
		for (int64_t j = 0; j < inner; j++) {
			const float *px = x + o * len * inner + j;
			double *py = y + o * len * inner + j;
			double mx = -(double)INFINITY, s = 0;

			for (int64_t i = 0; i < len; i++)
				mx = fmax(mx, (double)px[i * inner]);
			for (int64_t i = 0; i < len; i++)
				s += exp((double)px[i * inner] - mx);
			for (int64_t i = 0; i < len; i++)
				py[i * inner] = log_out ? (double)px[i * inner] - mx -
				    log(s) : exp((double)px[i * inner] - mx) / s;
		}
}

/* Rows sum to 1 (within 1e-6), the result is invariant under adding a
 * constant (within 1e-6: the max-subtracted form), huge logits give no
 * NaN, and values match double within atol 1e-7, rtol 1e-5. */
static void
test_softmax_rows_and_shift(void **state)
{
	enum { B = 6, C = 1000 };
	const int64_t dx[2] = { B, C };
	float *x = malloc(B * C * sizeof *x), *xs = malloc(B * C * sizeof *xs);
	double *ref = malloc(B * C * sizeof *ref);
	float *y0;
	tin in;
	one o, os;

	(void)state;
	assert_non_null(x);
	assert_non_null(xs);
	assert_non_null(ref);
	fill(x, B * C, -10, 10);
	for (int i = 0; i < B * C; i++)
		xs[i] = x[i] + 1000.0f;
	ref_softmax(ref, x, B, C, 1, 0);
	in = f32_in(2, dx, x);
	expect_ok(&o, "Softmax", 13, NULL, 0, &in, 1, 1);
	y0 = out_t(&o, 0)->data;
	assert_close_f(y0, ref, B * C, 1e-7, 1e-5, "softmax");
	for (int r = 0; r < B; r++) {
		double s = 0;

		for (int i = 0; i < C; i++)
			s += (double)y0[r * C + i];
		assert_true(fabs(s - 1) < 1e-6);
	}
	in = f32_in(2, dx, xs);
	expect_ok(&os, "Softmax", 13, NULL, 0, &in, 1, 1);
	{
		const float *y1 = out_t(&os, 0)->data;

		for (int i = 0; i < B * C; i++)
			if (fabsf(y1[i] - y0[i]) > 1e-6f)
				fail_msg("shift: %d: %g vs %g", i, (double)y1[i],
				    (double)y0[i]);
	}
	sl_g_free(&o.g);
	sl_g_free(&os.g);

	ref_softmax(ref, x, B, C, 1, 1);
	in = f32_in(2, dx, x);
	expect_ok(&o, "LogSoftmax", 13, NULL, 0, &in, 1, 1);
	assert_close_f(out_t(&o, 0)->data, ref, B * C, 1e-5, 1e-6,
	    "logsoftmax");
	sl_g_free(&o.g);
	{
		const float big[4] = { 1e30f, -1e30f, 88.0f, 89.0f };
		const int64_t d4 = 4;
		const float *y;

		in = f32_in(1, &d4, big);
		expect_ok(&o, "Softmax", 13, NULL, 0, &in, 1, 1);
		y = out_t(&o, 0)->data;
		assert_true(y[0] == 1.0f && y[1] == 0.0f && y[2] == 0.0f &&
		    y[3] == 0.0f);
		sl_g_free(&o.g);
	}
	free(x);
	free(xs);
	free(ref);
}

/* Axis semantics: opset 13 normalizes along one axis (default -1);
 * before, the input is coerced to 2-D at axis (default 1), so
 * Softmax(axis=1) of (2, 3, 4) normalizes over 12 values. */
static void
test_softmax_axis_semantics(void **state)
{
	const int64_t dx[3] = { 2, 3, 4 };
	const sl_gattr ax1 = { .name = "axis", .type = SL_GA_INT, .i = 1 };
	const sl_gattr axm2 = { .name = "axis", .type = SL_GA_INT, .i = -2 };
	const sl_gattr ax3 = { .name = "axis", .type = SL_GA_INT, .i = 3 };
	float x[24];
	double ref[24];
	tin in;
	one o;

	(void)state;
	fill(x, 24, -3, 3);
	in = f32_in(3, dx, x);

	ref_softmax(ref, x, 2, 3, 4, 0);     /* opset 13, axis 1 */
	expect_ok(&o, "Softmax", 13, &ax1, 1, &in, 1, 1);
	assert_close_f(out_t(&o, 0)->data, ref, 24, 1e-7, 1e-5, "13 axis 1");
	sl_g_free(&o.g);
	expect_ok(&o, "Softmax", 13, &axm2, 1, &in, 1, 1);
	assert_close_f(out_t(&o, 0)->data, ref, 24, 1e-7, 1e-5, "13 axis -2");
	sl_g_free(&o.g);

	ref_softmax(ref, x, 6, 4, 1, 0);     /* opset 13 default: -1 */
	expect_ok(&o, "Softmax", 13, NULL, 0, &in, 1, 1);
	assert_close_f(out_t(&o, 0)->data, ref, 24, 1e-7, 1e-5, "13 default");
	sl_g_free(&o.g);

	ref_softmax(ref, x, 2, 12, 1, 0);    /* opset 11, axis 1: 2-D */
	expect_ok(&o, "Softmax", 11, &ax1, 1, &in, 1, 1);
	assert_close_f(out_t(&o, 0)->data, ref, 24, 1e-7, 1e-5, "11 axis 1");
	sl_g_free(&o.g);
	expect_ok(&o, "Softmax", 11, NULL, 0, &in, 1, 1); /* default 1 */
	assert_close_f(out_t(&o, 0)->data, ref, 24, 1e-7, 1e-5, "11 default");
	sl_g_free(&o.g);

	ref_softmax(ref, x, 2, 3, 4, 1);
	expect_ok(&o, "LogSoftmax", 13, &ax1, 1, &in, 1, 1);
	assert_close_f(out_t(&o, 0)->data, ref, 24, 1e-5, 1e-6, "log 13 axis 1");
	sl_g_free(&o.g);

	ref_softmax(ref, x, 2, 12, 1, 1);
	expect_ok(&o, "LogSoftmax", 11, NULL, 0, &in, 1, 1);
	assert_close_f(out_t(&o, 0)->data, ref, 24, 1e-5, 1e-6, "log 11");
	sl_g_free(&o.g);

	assert_int_equal(one_run(&o, "Softmax", 13, &ax3, 1, &in, 1, 1),
	    SL_EMISMATCH);
	assert_non_null(strstr(o.why.text, "axis 3"));
	sl_g_free(&o.g);
}

/* --- Reduce* ------------------------------------------------------------------ */

/* The naive reduction of x (dims d, rank 4) over mask into ref, in
 * output order (kept dims in input order). */
static void
ref_reduce(double *ref, size_t *nref, const char *op, const float *x,
    const int64_t *d, const int *mask)
{
	size_t nin = 1, nout = 1, cnt = 1;

	for (int i = 0; i < 4; i++) {
		nin *= (size_t)d[i];
		if (mask[i])
			cnt *= (size_t)d[i];
		else
			nout *= (size_t)d[i];
	}
	for (size_t o = 0; o < nout; o++)
		ref[o] = !strcmp(op, "ReduceProd") ? 1 : !strcmp(op, "ReduceMax") ?
		    -(double)INFINITY : !strcmp(op, "ReduceMin") ? (double)INFINITY : 0;
	for (size_t i = 0; i < nin; i++) {
		size_t rem = i, o = 0, st = 1;
		const double v = (double)x[i];
		double *r;

		for (int k = 3; k >= 0; k--) {
			const size_t c = rem % (size_t)d[k];

			rem /= (size_t)d[k];
			if (!mask[k]) {
				o += c * st;
				st *= (size_t)d[k];
			}
		}
		r = &ref[o];
		if (!strcmp(op, "ReduceProd")) *r *= v;
		else if (!strcmp(op, "ReduceMax")) *r = fmax(*r, v);
		else if (!strcmp(op, "ReduceMin")) *r = fmin(*r, v);
		else if (!strcmp(op, "ReduceSumSquare") || !strcmp(op, "ReduceL2"))
			*r += v * v;
		else if (!strcmp(op, "ReduceL1")) *r += fabs(v);
		else if (!strcmp(op, "ReduceLogSumExp")) *r += exp(v);
		else *r += v;
	}
	for (size_t o = 0; o < nout; o++) {
		if (!strcmp(op, "ReduceMean")) ref[o] /= (double)cnt;
		else if (!strcmp(op, "ReduceL2")) ref[o] = sqrt(ref[o]);
		else if (!strcmp(op, "ReduceLogSum") ||
		    !strcmp(op, "ReduceLogSumExp")) ref[o] = log(ref[o]);
	}
	*nref = nout;
}

/* Every Reduce* over (2, 3, 4, 5), axes {}, {0}, {1}, {-1}, {3}, {0, 2},
 * {1, 3}, {1, 2}, {-3, -2, 0}, all four, keepdims 1 and 0, against the
 * naive loop: atol 1e-6, rtol 2e-6 (double accumulation, one rounding).
 * Inputs in [0.5, 1.5] keep ReduceProd and the logs tame. */
static void
test_reduce_against_naive(void **state)
{
	static const char *const ops[] = { "ReduceSum", "ReduceMean",
	    "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare",
	    "ReduceL2", "ReduceL1", "ReduceLogSum", "ReduceLogSumExp" };
	static const struct {
		int n;
		int64_t ax[4];
	} axes[] = {
		{ 0, { 0 } }, { 1, { 0 } }, { 1, { 1 } }, { 1, { -1 } },
		{ 1, { 3 } }, { 2, { 0, 2 } }, { 2, { 1, 3 } }, { 2, { 1, 2 } },
		{ 3, { -3, -2, 0 } }, { 4, { 0, 1, 2, 3 } },
	};
	const int64_t dx[4] = { 2, 3, 4, 5 };
	float x[120];
	double ref[120];
	tin in;

	(void)state;
	fill(x, 120, 0.5f, 1.5f);
	in = f32_in(4, dx, x);
	for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
		for (size_t a = 0; a < sizeof axes / sizeof axes[0]; a++)
			for (int keep = 0; keep < 2; keep++) {
				sl_gattr at[2] = {
					{ .name = "keepdims", .type = SL_GA_INT,
					    .i = keep },
					{ .name = "axes", .type = SL_GA_INTS,
					    .ints = axes[a].ax, .n = (size_t)axes[a].n },
				};
				int mask[4] = { 0 };
				size_t nref;
				int rank = 0;
				one o;

				for (int j = 0; j < axes[a].n; j++)
					mask[(axes[a].ax[j] + 4) % 4] = 1;
				if (axes[a].n == 0)
					mask[0] = mask[1] = mask[2] = mask[3] = 1;
				ref_reduce(ref, &nref, ops[k], x, dx, mask);
				expect_ok(&o, ops[k], 11, at, axes[a].n ? 2 : 1, &in,
				    1, 1);
				for (int j = 0; j < 4; j++) {
					if (!mask[j])
						assert_int_equal(out_t(&o, 0)->dims[rank++],
						    dx[j]);
					else if (keep)
						assert_int_equal(out_t(&o, 0)->dims[rank++],
						    1);
				}
				assert_int_equal(out_t(&o, 0)->rank, rank);
				assert_int_equal(sl_g_numel(out_t(&o, 0)), nref);
				assert_close_f(out_t(&o, 0)->data, ref, nref, 1e-6,
				    2e-6, ops[k]);
				sl_g_free(&o.g);
			}
}

/* ReduceSum from opset 13: axes as an input, empty axes reduce all or,
 * with noop_with_empty_axes, nothing; bad axes are refused; int64
 * ReduceSum and ReduceProd (shape arithmetic). */
static void
test_reduce_sum_axes_input_and_int64(void **state)
{
	const int64_t dx[3] = { 2, 3, 4 }, one1 = 1, zero = 0, two = 2;
	const int64_t ax1[1] = { -2 }, dup[2] = { 1, -2 }, bad[1] = { 3 };
	const sl_gattr noop = { .name = "noop_with_empty_axes",
	    .type = SL_GA_INT, .i = 1 };
	const sl_gattr nokeep = { .name = "keepdims", .type = SL_GA_INT,
	    .i = 0 };
	float x[24];
	double ref[24];
	tin in[2];
	one o;

	(void)state;
	fill(x, 24, -1, 1);
	in[0] = f32_in(3, dx, x);
	in[1] = typed_in(SL_G_I64, 1, &one1, ax1, 1);
	for (int a = 0; a < 2; a++)
		for (int c = 0; c < 4; c++) {
			double s = 0;

			for (int b = 0; b < 3; b++)
				s += (double)x[a * 12 + b * 4 + c];
			ref[a * 4 + c] = s;
		}
	expect_ok(&o, "ReduceSum", 13, NULL, 0, in, 2, 1);
	assert_int_equal(out_t(&o, 0)->rank, 3);
	assert_int_equal(out_t(&o, 0)->dims[1], 1);
	assert_close_f(out_t(&o, 0)->data, ref, 8, 1e-6, 1e-6, "axes input");
	sl_g_free(&o.g);

	in[1] = typed_in(SL_G_I64, 1, &zero, ax1, 1);
	expect_ok(&o, "ReduceSum", 13, &noop, 1, in, 2, 1);
	assert_int_equal(out_t(&o, 0)->rank, 3);
	assert_memory_equal(out_t(&o, 0)->data, x, sizeof x);
	sl_g_free(&o.g);
	expect_ok(&o, "ReduceSum", 13, &nokeep, 1, in, 2, 1);
	assert_int_equal(out_t(&o, 0)->rank, 0);
	{
		double s = 0;

		for (int i = 0; i < 24; i++)
			s += (double)x[i];
		assert_close_f(out_t(&o, 0)->data, &s, 1, 1e-6, 1e-6, "all");
	}
	sl_g_free(&o.g);

	in[1] = typed_in(SL_G_I64, 1, &two, dup, 1);
	assert_int_equal(one_run(&o, "ReduceSum", 13, NULL, 0, in, 2, 1),
	    SL_EMISMATCH);
	assert_non_null(strstr(o.why.text, "twice"));
	sl_g_free(&o.g);
	in[1] = typed_in(SL_G_I64, 1, &one1, bad, 1);
	assert_int_equal(one_run(&o, "ReduceSum", 13, NULL, 0, in, 2, 1),
	    SL_EMISMATCH);
	assert_non_null(strstr(o.why.text, "axis 3"));
	sl_g_free(&o.g);
	{
		const int64_t shp[3] = { 4, 197, 768 }, d3 = 3;
		const int64_t *y;

		in[0] = typed_in(SL_G_I64, 1, &d3, shp, 0);
		expect_ok(&o, "ReduceProd", 13, &nokeep, 1, in, 1, 1);
		y = out_t(&o, 0)->data;
		assert_int_equal(out_t(&o, 0)->dtype, SL_G_I64);
		assert_true(y[0] == 4 * 197 * 768);
		sl_g_free(&o.g);
		expect_ok(&o, "ReduceSum", 13, NULL, 0, in, 1, 1);
		y = out_t(&o, 0)->data;
		assert_int_equal(out_t(&o, 0)->rank, 1);
		assert_true(y[0] == 4 + 197 + 768);
		sl_g_free(&o.g);
		/* ReduceMean on int64 is refused by name of the type. */
		assert_int_equal(one_run(&o, "ReduceMean", 13, NULL, 0, in, 1, 1),
		    SL_EUNSUPPORTED);
		assert_non_null(strstr(o.why.text, "INT64"));
		sl_g_free(&o.g);
	}
}

/* What torch exports for nn.LayerNorm below opset 17: ReduceMean, Sub,
 * Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul, Add, planned and run as a
 * graph, against LayerNormalization on the same input: atol 1e-5,
 * rtol 1e-5 (the decomposition rounds in float at each step). */
static void
test_decomposed_layernorm_matches(void **state)
{
	enum { B = 4, T = 7, D = 48 };
	const int64_t dx[3] = { B, T, D }, dd = D, axm1 = -1;
	const float two = 2.0f, eps = 1e-5f;
	float x[B * T * D], sc[D], bi[D];
	double ref[B * T * D], rm[B * T], ri[B * T];
	const sl_gattr rm_at = { .name = "axes", .type = SL_GA_INTS,
	    .ints = &axm1, .n = 1 };
	const sl_gattrs rm_as = { &rm_at, 1 };
	sl_graph *g;
	sl_errmsg why;
	int tx, c2, ce, cs, cb, m, d, p, v, ve, sd, nrm, sy, y;
	const sl_gop *rmean = sl_g_op_find("ReduceMean");

	(void)state;
	fill(x, B * T * D, -3, 3);
	fill(sc, D, -1, 1);
	fill(bi, D, -1, 1);
	ref_layernorm(ref, rm, ri, x, sc, bi, B * T, D, D, (double)eps);
	assert_int_equal(sl_g_new(&g), 0);
	g->opset = 13;
	assert_int_equal(sl_g_tensor_add(g, "x", &tx, &why), 0);
	assert_int_equal(sl_g_set_shape(&g->t[tx], SL_G_F32, 3, dx, &why), 0);
	g->t[tx].flags |= SL_GT_INPUT;
	g->inputs[g->ninputs++] = tx;
	{
		struct { const char *name; int *idx; const float *v; int rank; } c[] = {
			{ "two", &c2, &two, 0 }, { "eps", &ce, &eps, 0 },
			{ "scale", &cs, sc, 1 }, { "bias", &cb, bi, 1 },
		};

		for (size_t k = 0; k < 4; k++) {
			sl_gtensor *t;
			size_t bytes;

			assert_int_equal(sl_g_tensor_add(g, c[k].name, c[k].idx,
			    &why), 0);
			t = &g->t[*c[k].idx];
			assert_int_equal(sl_g_set_shape(t, SL_G_F32, c[k].rank, &dd,
			    &why), 0);
			bytes = sl_g_numel(t) * 4;
			t->data = malloc(bytes);
			assert_non_null(t->data);
			memcpy(t->data, c[k].v, bytes);
			t->flags |= SL_GT_CONST;
		}
	}
	{
		int *ts[] = { &m, &d, &p, &v, &ve, &sd, &nrm, &sy, &y };
		const char *names[] = { "m", "d", "p", "v", "ve", "sd", "nrm",
		    "sy", "y" };

		for (int k = 0; k < 9; k++)
			assert_int_equal(sl_g_tensor_add(g, names[k], ts[k], &why), 0);
	}
	g->t[y].flags |= SL_GT_OUTPUT;
	g->outputs[g->noutputs++] = y;
	assert_int_equal(sl_g_node_add(g, rmean, "mean", &tx, 1, &m, 1, &rm_as,
	    &why), 0);
	assert_int_equal(sl_g_node_add(g, sl_g_op_find("Sub"), "sub",
	    (int[]){ tx, m }, 2, &d, 1, NULL, &why), 0);
	assert_int_equal(sl_g_node_add(g, sl_g_op_find("Pow"), "pow",
	    (int[]){ d, c2 }, 2, &p, 1, NULL, &why), 0);
	assert_int_equal(sl_g_node_add(g, rmean, "var", &p, 1, &v, 1, &rm_as,
	    &why), 0);
	assert_int_equal(sl_g_node_add(g, sl_g_op_find("Add"), "addeps",
	    (int[]){ v, ce }, 2, &ve, 1, NULL, &why), 0);
	assert_int_equal(sl_g_node_add(g, sl_g_op_find("Sqrt"), "sqrt", &ve, 1,
	    &sd, 1, NULL, &why), 0);
	assert_int_equal(sl_g_node_add(g, sl_g_op_find("Div"), "div",
	    (int[]){ d, sd }, 2, &nrm, 1, NULL, &why), 0);
	assert_int_equal(sl_g_node_add(g, sl_g_op_find("Mul"), "mul",
	    (int[]){ nrm, cs }, 2, &sy, 1, NULL, &why), 0);
	assert_int_equal(sl_g_node_add(g, sl_g_op_find("Add"), "add",
	    (int[]){ sy, cb }, 2, &y, 1, NULL, &why), 0);
	if (sl_g_plan(g, B, &why) != 0)
		fail_msg("plan: %s", why.text);
	g->t[tx].data = x;
	if (sl_g_run(g, &why) != 0)
		fail_msg("run: %s", why.text);
	assert_int_equal(g->t[m].rank, 3);
	assert_int_equal(g->t[m].dims[2], 1);
	assert_close_f(g->t[y].data, ref, B * T * D, 1e-5, 1e-5,
	    "decomposed layernorm");
	sl_g_free(&g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_batchnorm_against_formula),
		cmocka_unit_test(test_batchnorm_refusals),
		cmocka_unit_test(test_layernorm_against_double),
		cmocka_unit_test(test_instancenorm_against_double),
		cmocka_unit_test(test_softmax_rows_and_shift),
		cmocka_unit_test(test_softmax_axis_semantics),
		cmocka_unit_test(test_reduce_against_naive),
		cmocka_unit_test(test_reduce_sum_axes_input_and_int64),
		cmocka_unit_test(test_decomposed_layernorm_matches),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Element-wise ops (op_eltwise.c) through the graph engine: each op family
 * against naive double-precision loops (tolerance stated per test), numpy
 * broadcasting edge cases (rank 0, size-1 dims, different ranks,
 * per-channel), int64 shape arithmetic, bool logic and Where, Cast, Clip,
 * Dropout; a small graph planned and run at two batch sizes; a plan-time
 * failure for shapes that do not broadcast; constant folding of an int64
 * chain. */
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

/* Index into an input of shape idims for output element i of odims,
 * numpy's rule: right-aligned, size-1 dims repeat. */
static size_t
bidx(const int64_t *odims, int orank, const int64_t *idims, int irank,
    size_t i)
{
	size_t src = 0, st = 1;

	for (int d = orank - 1; d >= 0; d--) {
		const size_t k = i % (size_t)odims[d];
		const int e = d - (orank - irank);

		i /= (size_t)odims[d];
		if (e >= 0) {
			if (idims[e] != 1)
				src += k * st;
			st *= (size_t)idims[e];
		}
	}
	return src;
}

/* --- unary ------------------------------------------------------------------ */

static double
ref_unary(const char *op, double x, double al, double be)
{
	if (!strcmp(op, "Relu")) return x > 0 ? x : 0;
	if (!strcmp(op, "LeakyRelu")) return x >= 0 ? x : al * x;
	if (!strcmp(op, "Elu")) return x >= 0 ? x : al * (exp(x) - 1);
	if (!strcmp(op, "Selu")) return be * (x > 0 ? x : al * (exp(x) - 1));
	if (!strcmp(op, "Sigmoid")) return 1 / (1 + exp(-x));
	if (!strcmp(op, "Tanh")) return tanh(x);
	if (!strcmp(op, "Exp")) return exp(x);
	if (!strcmp(op, "Log")) return log(x);
	if (!strcmp(op, "Abs")) return fabs(x);
	if (!strcmp(op, "Neg")) return -x;
	if (!strcmp(op, "Sqrt")) return sqrt(x);
	if (!strcmp(op, "Reciprocal")) return 1 / x;
	if (!strcmp(op, "Erf")) return erf(x);
	if (!strcmp(op, "Floor")) return floor(x);
	if (!strcmp(op, "Ceil")) return ceil(x);
	if (!strcmp(op, "Softplus")) return log(exp(x) + 1);
	if (!strcmp(op, "HardSigmoid")) return fmax(0, fmin(1, al * x + be));
	if (!strcmp(op, "HardSwish")) return x * fmax(0, fmin(1, x / 6 + 0.5));
	if (!strcmp(op, "ThresholdedRelu")) return x > al ? x : 0;
	if (!strcmp(op, "Celu")) return fmax(0, x) + fmin(0, al * (exp(x / al) - 1));
	if (!strcmp(op, "Softsign")) return x / (1 + fabs(x));
	if (!strcmp(op, "Sign")) return x > 0 ? 1 : x < 0 ? -1 : 0;
	return (double)NAN;
}

/* Every unary float op against its double formula, float rounding
 * allowed: atol 1e-6, rtol 2e-6 (a few ulps; expf/erff/tanhf are within
 * 1-2 ulps in glibc). Inputs span [-6, 6] (positive for Log, Sqrt,
 * Reciprocal) and include 0 and exact integers for Floor/Ceil. */
static void
test_unary_against_double(void **state)
{
	static const struct {
		const char *op;
		float alpha, beta;      /* 0: defaults */
		int positive;
	} ops[] = {
		{ "Relu", 0, 0, 0 }, { "LeakyRelu", 0.1f, 0, 0 },
		{ "LeakyRelu", 0, 0, 0 }, { "Elu", 0.5f, 0, 0 }, { "Elu", 0, 0, 0 },
		{ "Selu", 0, 0, 0 }, { "Selu", 2.0f, 3.0f, 0 },
		{ "Sigmoid", 0, 0, 0 }, { "Tanh", 0, 0, 0 }, { "Exp", 0, 0, 0 },
		{ "Log", 0, 0, 1 }, { "Abs", 0, 0, 0 }, { "Neg", 0, 0, 0 },
		{ "Sqrt", 0, 0, 1 }, { "Reciprocal", 0, 0, 1 }, { "Erf", 0, 0, 0 },
		{ "Floor", 0, 0, 0 }, { "Ceil", 0, 0, 0 }, { "Softplus", 0, 0, 0 },
		{ "HardSigmoid", 0, 0, 0 }, { "HardSigmoid", 0.5f, 0.6f, 0 },
		{ "HardSwish", 0, 0, 0 }, { "ThresholdedRelu", 0, 0, 0 },
		{ "ThresholdedRelu", 0.5f, 0, 0 }, { "Celu", 0, 0, 0 },
		{ "Celu", 2.0f, 0, 0 }, { "Softsign", 0, 0, 0 }, { "Sign", 0, 0, 0 },
	};
	enum { N = 301 };
	const int64_t dims[] = { 7, 43 };
	float x[N];
	double ref[N];

	(void)state;
	for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
		sl_gattr at[2];
		int nat = 0;
		double al, be;
		one o;
		tin in;

		fill(x, N, ops[k].positive ? 0.01f : -6.0f, 6.0f);
		x[0] = ops[k].positive ? 1.0f : 0.0f;
		x[1] = ops[k].positive ? 2.0f : -3.0f;
		x[2] = 2.5f;
		if (!strcmp(ops[k].op, "LeakyRelu"))
			al = 0.01, be = 0;
		else if (!strcmp(ops[k].op, "Elu") ||
		    !strcmp(ops[k].op, "ThresholdedRelu") ||
		    !strcmp(ops[k].op, "Celu"))
			al = 1.0, be = 0;
		else if (!strcmp(ops[k].op, "Selu"))
			al = 1.67326319217681884765625, be = 1.05070102214813232421875;
		else
			al = 0.2, be = 0.5;
		if (ops[k].alpha != 0.0f) {
			at[nat++] = (sl_gattr){ .name = "alpha", .type = SL_GA_FLOAT,
			    .f = ops[k].alpha };
			al = (double)ops[k].alpha;
		}
		if (ops[k].beta != 0.0f) {
			at[nat++] = (sl_gattr){ .name = !strcmp(ops[k].op, "Selu") ?
			    "gamma" : "beta", .type = SL_GA_FLOAT, .f = ops[k].beta };
			be = (double)ops[k].beta;
		}
		for (int i = 0; i < N; i++)
			ref[i] = ref_unary(ops[k].op, (double)x[i], al, be);
		in = f32_in(2, dims, x);
		expect_ok(&o, ops[k].op, 17, at, nat, &in, 1, 1);
		assert_int_equal(out_t(&o, 0)->dtype, SL_G_F32);
		assert_int_equal(out_t(&o, 0)->rank, 2);
		assert_int_equal(out_t(&o, 0)->dims[1], 43);
		assert_close_f(out_t(&o, 0)->data, ref, N, 1e-6, 2e-6, ops[k].op);
		sl_g_free(&o.g);
	}
}

/* Sigmoid and Softplus at +-100 must not overflow to NaN or lose 0/1. */
static void
test_unary_extremes(void **state)
{
	const float x[4] = { -100.0f, 100.0f, -1e30f, 1e30f };
	const int64_t d = 4;
	const tin in = f32_in(1, &d, x);
	const float *y;
	one o;

	(void)state;
	expect_ok(&o, "Sigmoid", 13, NULL, 0, &in, 1, 1);
	y = out_t(&o, 0)->data;
	assert_true(y[0] >= 0.0f && y[0] < 1e-40f);
	assert_true(y[1] == 1.0f && y[2] == 0.0f && y[3] == 1.0f);
	sl_g_free(&o.g);
	expect_ok(&o, "Softplus", 13, NULL, 0, &in, 1, 1);
	y = out_t(&o, 0)->data;
	assert_true(y[0] >= 0.0f && y[0] < 1e-40f);
	assert_true(y[1] == 100.0f && y[3] == 1e30f);
	sl_g_free(&o.g);
}

/* Clip: inputs from opset 11 (either bound left out), attributes before,
 * int64 too; min > max gives max everywhere (numpy's clip). */
static void
test_clip(void **state)
{
	const float x[6] = { -3.0f, -0.5f, 0.0f, 0.5f, 3.0f, INFINITY };
	const float lo = -1.0f, hi = 2.0f;
	const int64_t d = 6;
	const int64_t xi[4] = { -5, 0, 7, 100 }, ilo = 0, ihi = 10;
	const int64_t di = 4;
	tin in[3];
	const float *y;
	const int64_t *yi;
	one o;

	(void)state;
	in[0] = f32_in(1, &d, x);
	in[1] = typed_in(SL_G_F32, 0, NULL, &lo, 1);
	in[2] = typed_in(SL_G_F32, 0, NULL, &hi, 1);
	expect_ok(&o, "Clip", 13, NULL, 0, in, 3, 1);
	y = out_t(&o, 0)->data;
	assert_true(y[0] == -1.0f && y[1] == -0.5f && y[4] == 2.0f &&
	    y[5] == 2.0f);
	sl_g_free(&o.g);

	in[1].dtype = 0; /* min left out */
	expect_ok(&o, "Clip", 13, NULL, 0, in, 3, 1);
	y = out_t(&o, 0)->data;
	assert_true(y[0] == -3.0f && y[4] == 2.0f);
	sl_g_free(&o.g);

	expect_ok(&o, "Clip", 13, NULL, 0, in, 1, 1); /* no bounds: identity */
	y = out_t(&o, 0)->data;
	assert_true(y[0] == -3.0f && y[5] == INFINITY);
	sl_g_free(&o.g);

	{
		const sl_gattr at[2] = {
			{ .name = "min", .type = SL_GA_FLOAT, .f = 0.0f },
			{ .name = "max", .type = SL_GA_FLOAT, .f = 6.0f },
		};

		expect_ok(&o, "Clip", 6, at, 2, in, 1, 1); /* ReLU6, opset 6 */
		y = out_t(&o, 0)->data;
		assert_true(y[0] == 0.0f && y[3] == 0.5f && y[4] == 3.0f &&
		    y[5] == 6.0f);
		sl_g_free(&o.g);
	}
	{
		const float big = 1.0f, small = 0.0f;

		in[1] = typed_in(SL_G_F32, 0, NULL, &big, 1);
		in[2] = typed_in(SL_G_F32, 0, NULL, &small, 1);
		expect_ok(&o, "Clip", 13, NULL, 0, in, 3, 1);
		y = out_t(&o, 0)->data;
		for (int i = 0; i < 6; i++)
			assert_true(y[i] == 0.0f);
		sl_g_free(&o.g);
	}
	in[0] = typed_in(SL_G_I64, 1, &di, xi, 0);
	in[1] = typed_in(SL_G_I64, 0, NULL, &ilo, 1);
	in[2] = typed_in(SL_G_I64, 0, NULL, &ihi, 1);
	expect_ok(&o, "Clip", 13, NULL, 0, in, 3, 1);
	yi = out_t(&o, 0)->data;
	assert_true(yi[0] == 0 && yi[1] == 0 && yi[2] == 7 && yi[3] == 10);
	sl_g_free(&o.g);

	/* A min of another type is refused at plan time, naming it. */
	in[1] = typed_in(SL_G_F32, 0, NULL, &lo, 1);
	assert_int_equal(one_run(&o, "Clip", 13, NULL, 0, in, 3, 1),
	    SL_EMISMATCH);
	assert_non_null(strstr(o.why.text, "min"));
	sl_g_free(&o.g);
}

/* --- binary with broadcasting ------------------------------------------- */

static double
ref_binary(const char *op, double a, double b)
{
	if (!strcmp(op, "Add")) return a + b;
	if (!strcmp(op, "Sub")) return a - b;
	if (!strcmp(op, "Mul")) return a * b;
	if (!strcmp(op, "Div")) return a / b;
	if (!strcmp(op, "Pow")) return pow(a, b);
	if (!strcmp(op, "Max")) return fmax(a, b);
	if (!strcmp(op, "Min")) return fmin(a, b);
	return (double)NAN;
}

/* Every shape pair numpy broadcasts that we care about: same shape (one
 * tight loop), scalar of rank 0 and of rank 1, per-channel (1, C, 1, 1),
 * (N, C, 1, 1) after a global pool, different ranks, both sides
 * broadcasting, a size-0 dim. Float results against double: atol 1e-6,
 * rtol 1e-6 (Pow: 4e-6, powf is within a few ulps). */
static void
test_binary_broadcast_against_naive(void **state)
{
	static const struct {
		int ra;
		int64_t a[4];
		int rb;
		int64_t b[4];
		int ry;
		int64_t y[4];
	} cases[] = {
		{ 2, { 3, 5 }, 2, { 3, 5 }, 2, { 3, 5 } },
		{ 4, { 2, 3, 4, 5 }, 0, { 0 }, 4, { 2, 3, 4, 5 } },
		{ 0, { 0 }, 3, { 2, 3, 4 }, 3, { 2, 3, 4 } },
		{ 3, { 2, 3, 4 }, 1, { 1 }, 3, { 2, 3, 4 } },
		{ 4, { 2, 3, 4, 5 }, 4, { 1, 3, 1, 1 }, 4, { 2, 3, 4, 5 } },
		{ 4, { 1, 3, 1, 1 }, 4, { 2, 3, 4, 5 }, 4, { 2, 3, 4, 5 } },
		{ 4, { 2, 6, 1, 1 }, 4, { 2, 6, 3, 3 }, 4, { 2, 6, 3, 3 } },
		{ 3, { 2, 3, 4 }, 1, { 4 }, 3, { 2, 3, 4 } },
		{ 3, { 3, 1, 5 }, 2, { 4, 1 }, 3, { 3, 4, 5 } },
		{ 2, { 2, 1 }, 2, { 1, 3 }, 2, { 2, 3 } },
		{ 4, { 2, 1, 4, 1 }, 3, { 3, 1, 5 }, 4, { 2, 3, 4, 5 } },
		{ 3, { 4, 1, 6 }, 3, { 4, 5, 6 }, 3, { 4, 5, 6 } },
		{ 0, { 0 }, 0, { 0 }, 0, { 0 } },
		{ 2, { 0, 3 }, 1, { 3 }, 2, { 0, 3 } },
		{ 1, { 1 }, 1, { 1 }, 1, { 1 } },
	};
	static const char *const ops[] = { "Add", "Sub", "Mul", "Div", "Pow",
	    "Max", "Min" };
	float a[120], b[120];
	double ref[120];

	(void)state;
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		const size_t na = numel_of(cases[c].ra, cases[c].a);
		const size_t nb = numel_of(cases[c].rb, cases[c].b);
		const size_t ny = numel_of(cases[c].ry, cases[c].y);

		for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
			const int pw = !strcmp(ops[k], "Pow");
			tin in[2];
			one o;

			fill(a, na, pw ? 0.1f : -3.0f, 3.0f);
			fill(b, nb, pw ? -2.0f : 0.5f, 3.0f);
			for (size_t i = 0; i < ny; i++)
				ref[i] = ref_binary(ops[k], (double)a[bidx(
				    cases[c].y, cases[c].ry, cases[c].a, cases[c].ra,
				    i)], (double)b[bidx(cases[c].y, cases[c].ry,
				    cases[c].b, cases[c].rb, i)]);
			in[0] = f32_in(cases[c].ra, cases[c].a, a);
			in[1] = f32_in(cases[c].rb, cases[c].b, b);
			expect_ok(&o, ops[k], 14, NULL, 0, in, 2, 1);
			assert_int_equal(out_t(&o, 0)->rank, cases[c].ry);
			for (int i = 0; i < cases[c].ry; i++)
				assert_int_equal(out_t(&o, 0)->dims[i], cases[c].y[i]);
			assert_close_f(out_t(&o, 0)->data, ref, ny, 1e-6,
			    pw ? 4e-6 : 1e-6, ops[k]);
			sl_g_free(&o.g);
		}
	}
}

/* A big same-shape and a big per-channel Add, the fast paths, against the
 * naive loop exactly (one float addition each). */
static void
test_binary_big_fast_paths(void **state)
{
	const int64_t dx[4] = { 4, 32, 17, 19 }, dc[4] = { 1, 32, 1, 1 };
	const size_t n = 4 * 32 * 17 * 19;
	float *x = malloc(n * sizeof *x), *z = malloc(n * sizeof *z);
	float c[32];
	tin in[2];
	one o;

	(void)state;
	assert_non_null(x);
	assert_non_null(z);
	fill(x, n, -1.0f, 1.0f);
	fill(z, n, -1.0f, 1.0f);
	fill(c, 32, -1.0f, 1.0f);
	in[0] = f32_in(4, dx, x);
	in[1] = f32_in(4, dc, c);
	expect_ok(&o, "Mul", 14, NULL, 0, in, 2, 1);
	for (size_t i = 0; i < n; i++) {
		const float *y = out_t(&o, 0)->data;

		if (y[i] != x[i] * c[(i / (17 * 19)) % 32])
			fail_msg("per-channel Mul at %zu", i);
	}
	sl_g_free(&o.g);
	in[1] = f32_in(4, dx, z);
	expect_ok(&o, "Sub", 14, NULL, 0, in, 2, 1);
	for (size_t i = 0; i < n; i++) {
		const float *y = out_t(&o, 0)->data;

		if (y[i] != x[i] - z[i])
			fail_msg("same-shape Sub at %zu", i);
	}
	sl_g_free(&o.g);
	free(x);
	free(z);
}

/* Shape arithmetic the way exporters write it: int64 Mul/Div/Add/Sub
 * with scalars; Div truncates toward zero (ONNX's reference), x / 0 is 0
 * and INT64_MIN / -1 wraps instead of trapping; Pow on int64. */
static void
test_int64_arithmetic(void **state)
{
	const int64_t a[6] = { 7, -7, 8, 0, INT64_MIN, 3 };
	const int64_t b[6] = { 2, 2, -3, 5, -1, 0 };
	const int64_t d = 6;
	static const struct {
		const char *op;
		int64_t y[6];
	} exp[] = {
		{ "Add", { 9, -5, 5, 5, INT64_MAX, 3 } },
		{ "Sub", { 5, -9, 11, -5, INT64_MIN + 1, 3 } },
		{ "Mul", { 14, -14, -24, 0, INT64_MIN, 0 } },
		{ "Div", { 3, -3, -2, 0, INT64_MIN, 0 } },
		{ "Max", { 7, 2, 8, 5, -1, 3 } },
		{ "Min", { 2, -7, -3, 0, INT64_MIN, 0 } },
	};
	tin in[2];
	one o;

	(void)state;
	in[0] = typed_in(SL_G_I64, 1, &d, a, 0);
	in[1] = typed_in(SL_G_I64, 1, &d, b, 0);
	for (size_t k = 0; k < sizeof exp / sizeof exp[0]; k++) {
		const int64_t *y;

		expect_ok(&o, exp[k].op, 14, NULL, 0, in, 2, 1);
		assert_int_equal(out_t(&o, 0)->dtype, SL_G_I64);
		y = out_t(&o, 0)->data;
		for (int i = 0; i < 6; i++)
			if (y[i] != exp[k].y[i])
				fail_msg("%s[%d]: %lld, expected %lld", exp[k].op, i,
				    (long long)y[i], (long long)exp[k].y[i]);
		sl_g_free(&o.g);
	}
	{
		/* Shape [B, 197, 768] -> [B, 197, 12, 64]: Div by a rank-0
		 * constant, broadcast. */
		const int64_t shp[3] = { 8, 197, 768 }, twelve = 12, three = 3;
		const int64_t *y;

		in[0] = typed_in(SL_G_I64, 1, &three, shp, 0);
		in[1] = typed_in(SL_G_I64, 0, NULL, &twelve, 1);
		expect_ok(&o, "Div", 13, NULL, 0, in, 2, 1);
		y = out_t(&o, 0)->data;
		assert_int_equal(out_t(&o, 0)->rank, 1);
		assert_true(y[0] == 0 && y[1] == 16 && y[2] == 64);
		sl_g_free(&o.g);
	}
	{
		const int64_t base[4] = { 2, -3, 10, 1 }, e[4] = { 10, 3, 0, -2 };
		const int64_t four = 4;
		const int64_t *y;

		in[0] = typed_in(SL_G_I64, 1, &four, base, 0);
		in[1] = typed_in(SL_G_I64, 1, &four, e, 0);
		expect_ok(&o, "Pow", 15, NULL, 0, in, 2, 1);
		y = out_t(&o, 0)->data;
		assert_true(y[0] == 1024 && y[1] == -27 && y[2] == 1 && y[3] == 1);
		sl_g_free(&o.g);
	}
}

/* Pow with a float base and an int64 exponent keeps the float type;
 * mixed float/int64 in Add is refused by type name. */
static void
test_pow_mixed_and_type_errors(void **state)
{
	const float x[3] = { 2.0f, -1.5f, 0.5f };
	const int64_t e[3] = { 3, 2, -1 }, d = 3;
	const float *y;
	tin in[2];
	one o;

	(void)state;
	in[0] = f32_in(1, &d, x);
	in[1] = typed_in(SL_G_I64, 1, &d, e, 0);
	expect_ok(&o, "Pow", 15, NULL, 0, in, 2, 1);
	assert_int_equal(out_t(&o, 0)->dtype, SL_G_F32);
	y = out_t(&o, 0)->data;
	assert_true(y[0] == 8.0f && y[1] == 2.25f && y[2] == 2.0f);
	sl_g_free(&o.g);
	{
		/* x^2 takes a squaring path: exact, and right when the
		 * exponent's shape widens the rank ([3] ^ [1, 1] -> [1, 3]). */
		const float two = 2.0f;
		const int64_t d11[2] = { 1, 1 };

		in[1] = f32_in(2, d11, &two);
		expect_ok(&o, "Pow", 15, NULL, 0, in, 2, 1);
		assert_int_equal(out_t(&o, 0)->rank, 2);
		y = out_t(&o, 0)->data;
		assert_true(y[0] == 4.0f && y[1] == 2.25f && y[2] == 0.25f);
		sl_g_free(&o.g);
		in[1] = typed_in(SL_G_F32, 0, NULL, &two, 1);
		expect_ok(&o, "Pow", 15, NULL, 0, in, 2, 1);
		y = out_t(&o, 0)->data;
		assert_true(y[0] == 4.0f && y[1] == 2.25f && y[2] == 0.25f);
		sl_g_free(&o.g);
		in[1] = typed_in(SL_G_I64, 1, &d, e, 0);
	}
	assert_int_equal(one_run(&o, "Add", 14, NULL, 0, in, 2, 1),
	    SL_EUNSUPPORTED);
	assert_non_null(strstr(o.why.text, "INT64"));
	assert_non_null(strstr(o.why.text, "FLOAT"));
	sl_g_free(&o.g);
}

/* PRelu: slope per channel (C, 1, 1) against x (N, C, H, W), and a
 * slope that would widen X refused with both shapes. */
static void
test_prelu(void **state)
{
	const int64_t dx[4] = { 2, 3, 2, 2 }, ds[3] = { 3, 1, 1 }, dw = 5;
	float x[24], sl[3];
	const float *y;
	tin in[2];
	one o;

	(void)state;
	fill(x, 24, -1, 1);
	fill(sl, 3, 0, 1);
	in[0] = f32_in(4, dx, x);
	in[1] = typed_in(SL_G_F32, 3, ds, sl, 1);
	expect_ok(&o, "PRelu", 16, NULL, 0, in, 2, 1);
	y = out_t(&o, 0)->data;
	for (int i = 0; i < 24; i++)
		assert_true(y[i] == (x[i] < 0 ? x[i] * sl[(i / 4) % 3] : x[i]));
	sl_g_free(&o.g);
	in[1] = f32_in(1, &dw, x);
	in[0] = f32_in(1, ds, x); /* X (3), slope (5) */
	assert_int_equal(one_run(&o, "PRelu", 16, NULL, 0, in, 2, 1),
	    SL_EMISMATCH);
	sl_g_free(&o.g);
	{
		const int64_t d1 = 1, d4[2] = { 4, 1 };

		in[0] = f32_in(1, &d1, x);
		in[1] = f32_in(2, d4, sl); /* X (1), slope (4, 1): widens */
		assert_int_equal(one_run(&o, "PRelu", 16, NULL, 0, in, 2, 1),
		    SL_EMISMATCH);
		assert_non_null(strstr(o.why.text, "widening"));
		sl_g_free(&o.g);
	}
}

/* Sum, Mean, Max, Min over three inputs that broadcast to a shape none
 * of them has; one input returns itself. atol 1e-6. */
static void
test_variadic(void **state)
{
	const int64_t d0[2] = { 3, 1 }, d1[1] = { 4 }, d2[3] = { 2, 1, 1 };
	const int64_t dy[3] = { 2, 3, 4 };
	float a[3], b[4], c[2];
	double ref[24];
	static const char *const ops[] = { "Sum", "Mean", "Max", "Min" };
	tin in[3];
	one o;

	(void)state;
	fill(a, 3, -2, 2);
	fill(b, 4, -2, 2);
	fill(c, 2, -2, 2);
	in[0] = f32_in(2, d0, a);
	in[1] = f32_in(1, d1, b);
	in[2] = f32_in(3, d2, c);
	for (size_t k = 0; k < 4; k++) {
		for (size_t i = 0; i < 24; i++) {
			const double u = (double)a[bidx(dy, 3, d0, 2, i)],
			    v = (double)b[bidx(dy, 3, d1, 1, i)],
			    w = (double)c[bidx(dy, 3, d2, 3, i)];

			ref[i] = k == 0 ? u + v + w : k == 1 ? (u + v + w) / 3 :
			    k == 2 ? fmax(u, fmax(v, w)) : fmin(u, fmin(v, w));
		}
		expect_ok(&o, ops[k], 13, NULL, 0, in, 3, 1);
		assert_int_equal(out_t(&o, 0)->rank, 3);
		assert_int_equal(out_t(&o, 0)->dims[1], 3);
		assert_close_f(out_t(&o, 0)->data, ref, 24, 1e-6, 1e-6, ops[k]);
		sl_g_free(&o.g);
	}
	expect_ok(&o, "Max", 13, NULL, 0, in + 1, 1, 1);
	assert_memory_equal(out_t(&o, 0)->data, b, sizeof b);
	sl_g_free(&o.g);
}

/* Comparisons give bool over float and int64; And/Or/Xor/Not on bool;
 * Where broadcasts condition, X and Y. */
static void
test_compare_logic_where(void **state)
{
	const float a[4] = { 1, 2, 3, NAN }, b = 2;
	const int64_t ai[4] = { 1, 2, 3, 4 }, bi = 2, d = 4;
	static const struct {
		const char *op;
		uint8_t y[4];
	} cmp[] = {
		{ "Equal", { 0, 1, 0, 0 } }, { "Less", { 1, 0, 0, 0 } },
		{ "Greater", { 0, 0, 1, 0 } }, { "LessOrEqual", { 1, 1, 0, 0 } },
		{ "GreaterOrEqual", { 0, 1, 1, 0 } },
	};
	tin in[3];
	one o;

	(void)state;
	for (size_t k = 0; k < sizeof cmp / sizeof cmp[0]; k++) {
		in[0] = f32_in(1, &d, a);
		in[1] = f32_in(0, NULL, &b);
		expect_ok(&o, cmp[k].op, 13, NULL, 0, in, 2, 1);
		assert_int_equal(out_t(&o, 0)->dtype, SL_G_BOOL);
		assert_memory_equal(out_t(&o, 0)->data, cmp[k].y, 4);
		sl_g_free(&o.g);
		in[0] = typed_in(SL_G_I64, 1, &d, ai, 0);
		in[1] = typed_in(SL_G_I64, 0, NULL, &bi, 1);
		expect_ok(&o, cmp[k].op, 13, NULL, 0, in, 2, 1);
		{
			uint8_t e[4];

			memcpy(e, cmp[k].y, 4);
			e[3] = (uint8_t)(k == 2 || k == 4); /* 4 vs 2, not NaN */
			assert_memory_equal(out_t(&o, 0)->data, e, 4);
		}
		sl_g_free(&o.g);
	}
	{
		const uint8_t p[4] = { 0, 0, 1, 1 }, q[2] = { 0, 1 };
		const int64_t d22[2] = { 2, 2 }, d2 = 2;
		static const struct {
			const char *op;
			uint8_t y[4];
		} lg[] = {
			{ "And", { 0, 0, 0, 1 } }, { "Or", { 0, 1, 1, 1 } },
			{ "Xor", { 0, 1, 1, 0 } }, { "Equal", { 1, 0, 0, 1 } },
		};

		for (size_t k = 0; k < sizeof lg / sizeof lg[0]; k++) {
			in[0] = typed_in(SL_G_BOOL, 2, d22, p, 0);
			in[1] = typed_in(SL_G_BOOL, 1, &d2, q, 0);
			expect_ok(&o, lg[k].op, 13, NULL, 0, in, 2, 1);
			assert_memory_equal(out_t(&o, 0)->data, lg[k].y, 4);
			sl_g_free(&o.g);
		}
		in[0] = typed_in(SL_G_BOOL, 2, d22, p, 0);
		expect_ok(&o, "Not", 13, NULL, 0, in, 1, 1);
		{
			const uint8_t e[4] = { 1, 1, 0, 0 };

			assert_memory_equal(out_t(&o, 0)->data, e, 4);
		}
		sl_g_free(&o.g);
		/* And on floats is refused. */
		in[0] = f32_in(1, &d, a);
		in[1] = f32_in(1, &d, a);
		assert_int_equal(one_run(&o, "And", 13, NULL, 0, in, 2, 1),
		    SL_EUNSUPPORTED);
		sl_g_free(&o.g);
	}
	{
		/* Where: cond (2, 1), X (3), Y rank 0 -> (2, 3). */
		const uint8_t c[2] = { 1, 0 };
		const float x[3] = { 1, 2, 3 }, y = -1;
		const int64_t dc[2] = { 2, 1 }, dx = 3;
		const float e[6] = { 1, 2, 3, -1, -1, -1 };
		const int64_t xi[3] = { 10, 20, 30 }, yi = -5;
		const int64_t ei[6] = { 10, 20, 30, -5, -5, -5 };

		in[0] = typed_in(SL_G_BOOL, 2, dc, c, 0);
		in[1] = f32_in(1, &dx, x);
		in[2] = f32_in(0, NULL, &y);
		expect_ok(&o, "Where", 16, NULL, 0, in, 3, 1);
		assert_int_equal(out_t(&o, 0)->rank, 2);
		assert_int_equal(out_t(&o, 0)->dims[0], 2);
		assert_int_equal(out_t(&o, 0)->dims[1], 3);
		assert_memory_equal(out_t(&o, 0)->data, e, sizeof e);
		sl_g_free(&o.g);
		in[1] = typed_in(SL_G_I64, 1, &dx, xi, 0);
		in[2] = typed_in(SL_G_I64, 0, NULL, &yi, 0);
		expect_ok(&o, "Where", 16, NULL, 0, in, 3, 1);
		assert_memory_equal(out_t(&o, 0)->data, ei, sizeof ei);
		sl_g_free(&o.g);
		/* A float condition is refused. */
		in[0] = f32_in(1, &dx, x);
		assert_int_equal(one_run(&o, "Where", 16, NULL, 0, in, 3, 1),
		    SL_EUNSUPPORTED);
		assert_non_null(strstr(o.why.text, "condition"));
		sl_g_free(&o.g);
	}
}

/* Cast between float32, int64 and bool: truncation toward zero,
 * saturation, NaN to INT64_MIN, nonzero to true; other types refused
 * by name at build time. */
static void
test_cast(void **state)
{
	const float x[6] = { -2.7f, 2.7f, 0.0f, 1e30f, -1e30f, NAN };
	const int64_t ex[6] = { -2, 2, 0, INT64_MAX, INT64_MIN, INT64_MIN };
	const uint8_t eb[6] = { 1, 1, 0, 1, 1, 1 };
	const int64_t xi[3] = { -3, 0, 5 }, d = 6, d3 = 3;
	sl_gattr to = { .name = "to", .type = SL_GA_INT };
	tin in;
	one o;

	(void)state;
	in = f32_in(1, &d, x);
	to.i = SL_G_I64;
	expect_ok(&o, "Cast", 13, &to, 1, &in, 1, 1);
	assert_int_equal(out_t(&o, 0)->dtype, SL_G_I64);
	assert_memory_equal(out_t(&o, 0)->data, ex, sizeof ex);
	sl_g_free(&o.g);
	to.i = SL_G_BOOL;
	expect_ok(&o, "Cast", 13, &to, 1, &in, 1, 1);
	assert_memory_equal(out_t(&o, 0)->data, eb, sizeof eb);
	sl_g_free(&o.g);
	in = typed_in(SL_G_I64, 1, &d3, xi, 0);
	to.i = SL_G_F32;
	expect_ok(&o, "Cast", 13, &to, 1, &in, 1, 1);
	{
		const float e[3] = { -3.0f, 0.0f, 5.0f };

		assert_memory_equal(out_t(&o, 0)->data, e, sizeof e);
	}
	sl_g_free(&o.g);
	to.i = SL_G_BOOL;
	expect_ok(&o, "Cast", 13, &to, 1, &in, 1, 1);
	{
		const uint8_t e[3] = { 1, 0, 1 };

		assert_memory_equal(out_t(&o, 0)->data, e, sizeof e);
	}
	sl_g_free(&o.g);
	to.i = 11; /* DOUBLE */
	assert_int_equal(one_run(&o, "Cast", 13, &to, 1, &in, 1, 1),
	    SL_EUNSUPPORTED);
	assert_non_null(strstr(o.why.text, "DOUBLE"));
	assert_non_null(strstr(o.why.text, "'n' (Cast)"));
	sl_g_free(&o.g);
}

/* Identity copies any dtype; Dropout passes its input and a mask of all
 * true (bool from opset 10, float ones before); training refused. */
static void
test_identity_dropout(void **state)
{
	const float x[5] = { 1, -2, 3, -4, 5 };
	const int64_t xi[2] = { 7, -7 }, d = 5, d2 = 2;
	const uint8_t t = 1, f = 0, ones[5] = { 1, 1, 1, 1, 1 };
	const float ratio = 0.5f;
	tin in[3];
	one o;

	(void)state;
	in[0] = typed_in(SL_G_I64, 1, &d2, xi, 0);
	expect_ok(&o, "Identity", 13, NULL, 0, in, 1, 1);
	assert_memory_equal(out_t(&o, 0)->data, xi, sizeof xi);
	sl_g_free(&o.g);

	in[0] = f32_in(1, &d, x);
	in[1] = typed_in(SL_G_F32, 0, NULL, &ratio, 1);
	in[2] = typed_in(SL_G_BOOL, 0, NULL, &f, 1);
	expect_ok(&o, "Dropout", 13, NULL, 0, in, 3, 2);
	assert_memory_equal(out_t(&o, 0)->data, x, sizeof x);
	assert_int_equal(out_t(&o, 1)->dtype, SL_G_BOOL);
	assert_memory_equal(out_t(&o, 1)->data, ones, sizeof ones);
	sl_g_free(&o.g);

	expect_ok(&o, "Dropout", 7, NULL, 0, in, 1, 2);
	assert_int_equal(out_t(&o, 1)->dtype, SL_G_F32);
	assert_true(((const float *)out_t(&o, 1)->data)[4] == 1.0f);
	sl_g_free(&o.g);

	in[2] = typed_in(SL_G_BOOL, 0, NULL, &t, 1);
	assert_int_equal(one_run(&o, "Dropout", 13, NULL, 0, in, 3, 1),
	    SL_EUNSUPPORTED);
	assert_non_null(strstr(o.why.text, "training_mode"));
	sl_g_free(&o.g);
	{
		const sl_gattr tm = { .name = "training_mode", .type = SL_GA_INT,
		    .i = 1 };

		assert_int_equal(one_run(&o, "Dropout", 13, &tm, 1, in, 1, 1),
		    SL_EUNSUPPORTED);
		assert_non_null(strstr(o.why.text, "training_mode"));
		sl_g_free(&o.g);
	}
}

/* --- graphs -------------------------------------------------------------- */

static int
add_tensor(sl_graph *g, const char *name, int dtype, int rank,
    const int64_t *dims, const void *cdata)
{
	sl_errmsg why;
	int idx;

	assert_int_equal(sl_g_tensor_add(g, name, &idx, &why), 0);
	if (dtype != 0)
		assert_int_equal(sl_g_set_shape(&g->t[idx], dtype, rank, dims,
		    &why), 0);
	if (cdata != NULL) {
		const size_t bytes = sl_g_numel(&g->t[idx]) *
		    sl_g_dtype_size(dtype);

		g->t[idx].data = malloc(bytes ? bytes : 1);
		assert_non_null(g->t[idx].data);
		memcpy(g->t[idx].data, cdata, bytes);
		g->t[idx].flags |= SL_GT_CONST;
		g->t[idx].cap_bytes = bytes;
	}
	return idx;
}

static void
add_node(sl_graph *g, const char *op, const char *name, const int *in,
    int nin, int out)
{
	sl_errmsg why;
	int rc = sl_g_node_add(g, sl_g_op_find(op), name, in, nin, &out, 1,
	    NULL, &why);

	if (rc != 0)
		fail_msg("%s: %s", name, why.text);
}

/* x (B, 3, 2, 2) -> Mul by a per-channel constant (1, 3, 1, 1) -> Add a
 * rank-0 constant -> Relu -> Sub x; planned for batch 4, run at 4 and 2,
 * checked against the loop. The Relu is fused into the Add (fold.c): three
 * nodes run, the Add broadcasting its rank-0 input. */
static void
test_graph_chain_runs(void **state)
{
	const float scale[3] = { 1.0f, -2.0f, 0.5f }, bias = 0.25f;
	const int64_t dx[4] = { 4, 3, 2, 2 }, dc[4] = { 1, 3, 1, 1 };
	float x[48];
	sl_graph *g;
	sl_errmsg why;
	int tx, ts, tb, t1, t2, t3, ty;

	(void)state;
	assert_int_equal(sl_g_new(&g), 0);
	g->opset = 17;
	tx = add_tensor(g, "x", SL_G_F32, 4, dx, NULL);
	g->t[tx].flags |= SL_GT_INPUT;
	g->inputs[g->ninputs++] = tx;
	ts = add_tensor(g, "scale", SL_G_F32, 4, dc, scale);
	tb = add_tensor(g, "bias", SL_G_F32, 0, NULL, &bias);
	t1 = add_tensor(g, "t1", 0, 0, NULL, NULL);
	t2 = add_tensor(g, "t2", 0, 0, NULL, NULL);
	t3 = add_tensor(g, "t3", 0, 0, NULL, NULL);
	ty = add_tensor(g, "y", 0, 0, NULL, NULL);
	g->t[ty].flags |= SL_GT_OUTPUT;
	g->outputs[g->noutputs++] = ty;
	/* Added out of order: the plan sorts them. */
	add_node(g, "Sub", "sub", (int[]){ t3, tx }, 2, ty);
	add_node(g, "Relu", "relu", (int[]){ t2 }, 1, t3);
	add_node(g, "Mul", "mul", (int[]){ tx, ts }, 2, t1);
	add_node(g, "Add", "add", (int[]){ t1, tb }, 2, t2);
	if (sl_g_plan(g, 4, &why) != 0)
		fail_msg("plan: %s", why.text);
	assert_int_equal(g->norder, 3);
	for (int batch = 4; batch >= 2; batch -= 2) {
		const float *y;

		fill(x, 48, -2, 2);
		g->t[tx].data = x;
		g->t[tx].dims[0] = batch;
		if (sl_g_run(g, &why) != 0)
			fail_msg("run: %s", why.text);
		assert_int_equal(g->t[ty].dims[0], batch);
		y = g->t[ty].data;
		for (int i = 0; i < batch * 12; i++) {
			const float v = x[i] * scale[(i / 4) % 3] + bias;
			const float e = (v > 0.0f ? v : 0.0f) - x[i];

			if (y[i] != e)
				fail_msg("batch %d, y[%d] = %g, expected %g", batch,
				    i, (double)y[i], (double)e);
		}
	}
	sl_g_free(&g);
	assert_null(g);
}

/* A bool tensor between two run-time nodes (Greater -> Where), as masks
 * are written: the planner gives it its own buffer; run at batch 3 and 1. */
static void
test_graph_bool_mask_runs(void **state)
{
	const float zero = 0.0f, fill_v = -7.0f;
	const int64_t dx[2] = { 3, 5 };
	float x[15];
	sl_graph *g;
	sl_errmsg why;
	int tx, tz, tf, tc, ty;

	(void)state;
	assert_int_equal(sl_g_new(&g), 0);
	g->opset = 16;
	tx = add_tensor(g, "x", SL_G_F32, 2, dx, NULL);
	g->t[tx].flags |= SL_GT_INPUT;
	g->inputs[g->ninputs++] = tx;
	tz = add_tensor(g, "zero", SL_G_F32, 0, NULL, &zero);
	tf = add_tensor(g, "fill", SL_G_F32, 0, NULL, &fill_v);
	tc = add_tensor(g, "c", 0, 0, NULL, NULL);
	ty = add_tensor(g, "y", 0, 0, NULL, NULL);
	g->t[ty].flags |= SL_GT_OUTPUT;
	g->outputs[g->noutputs++] = ty;
	add_node(g, "Greater", "gt", (int[]){ tx, tz }, 2, tc);
	add_node(g, "Where", "where", (int[]){ tc, tx, tf }, 3, ty);
	if (sl_g_plan(g, 3, &why) != 0)
		fail_msg("plan: %s", why.text);
	assert_int_equal(g->t[tc].dtype, SL_G_BOOL);
	assert_int_equal(g->norder, 2);
	for (int batch = 3; batch >= 1; batch -= 2) {
		const float *y;

		fill(x, 15, -1, 1);
		g->t[tx].data = x;
		g->t[tx].dims[0] = batch;
		if (sl_g_run(g, &why) != 0)
			fail_msg("run: %s", why.text);
		y = g->t[ty].data;
		assert_int_equal(g->t[ty].dims[0], batch);
		for (int i = 0; i < batch * 5; i++)
			assert_true(y[i] == (x[i] > 0.0f ? x[i] : -7.0f));
	}
	sl_g_free(&g);
}

/* Shapes that do not broadcast fail the plan with both shapes named. */
static void
test_plan_fails_on_bad_broadcast(void **state)
{
	const int64_t da[2] = { 2, 3 }, db = 4;
	float a[6] = { 0 }, b[4] = { 0 };
	tin in[2];
	one o;

	(void)state;
	in[0] = f32_in(2, da, a);
	in[1] = f32_in(1, &db, b);
	assert_int_equal(one_run(&o, "Add", 14, NULL, 0, in, 2, 1),
	    SL_EMISMATCH);
	assert_non_null(strstr(o.why.text, "[2, 3]"));
	assert_non_null(strstr(o.why.text, "[4]"));
	assert_non_null(strstr(o.why.text, "'n' (Add)"));
	sl_g_free(&o.g);
	{
		/* Opset 6's broadcast=1 aligns on the left: refused rather than
		 * computed with numpy's rule. */
		const sl_gattr bc = { .name = "broadcast", .type = SL_GA_INT,
		    .i = 1 };

		in[1] = f32_in(1, da, b);
		assert_int_equal(one_run(&o, "Add", 6, &bc, 1, in, 2, 1),
		    SL_EUNSUPPORTED);
		assert_non_null(strstr(o.why.text, "broadcast"));
		sl_g_free(&o.g);
	}
}

/* Shape -> Gather -> Mul/Div -> Concat as exporters write it, with the
 * shape already constant: (c0 * 2 + 1) / 3 and Neg on int64 constants
 * fold at plan time (no node left but the last, which reads a graph
 * input), and the folded values are right. */
static void
test_int64_chain_folds(void **state)
{
	const int64_t shp[3] = { 4, 197, 768 }, two = 2, one_ = 1, three = 3;
	const int64_t d3 = 3;
	int64_t xin[3] = { 100, 200, 300 };
	sl_graph *g;
	sl_errmsg why;
	int c0, c2, c1, c3, t1, t2, t3, t4, tx, ty;
	const int64_t *y, *f;

	(void)state;
	assert_int_equal(sl_g_new(&g), 0);
	g->opset = 13;
	c0 = add_tensor(g, "shape", SL_G_I64, 1, &d3, shp);
	c2 = add_tensor(g, "two", SL_G_I64, 0, NULL, &two);
	c1 = add_tensor(g, "one", SL_G_I64, 0, NULL, &one_);
	c3 = add_tensor(g, "three", SL_G_I64, 0, NULL, &three);
	tx = add_tensor(g, "x", SL_G_I64, 1, &d3, NULL);
	g->t[tx].flags |= SL_GT_INPUT;
	g->t[tx].data = xin;
	g->inputs[g->ninputs++] = tx;
	t1 = add_tensor(g, "t1", 0, 0, NULL, NULL);
	t2 = add_tensor(g, "t2", 0, 0, NULL, NULL);
	t3 = add_tensor(g, "t3", 0, 0, NULL, NULL);
	t4 = add_tensor(g, "t4", 0, 0, NULL, NULL);
	ty = add_tensor(g, "y", 0, 0, NULL, NULL);
	g->t[ty].flags |= SL_GT_OUTPUT;
	g->outputs[g->noutputs++] = ty;
	add_node(g, "Mul", "mul", (int[]){ c0, c2 }, 2, t1);
	add_node(g, "Add", "add", (int[]){ t1, c1 }, 2, t2);
	add_node(g, "Div", "div", (int[]){ t2, c3 }, 2, t3);
	add_node(g, "Neg", "neg", (int[]){ t3 }, 1, t4);
	add_node(g, "Sub", "sub", (int[]){ tx, t4 }, 2, ty);
	if (sl_g_plan(g, 1, &why) != 0)
		fail_msg("plan: %s", why.text);
	assert_int_equal(g->norder, 1);
	assert_true(g->t[t4].flags & SL_GT_CONST);
	f = g->t[t4].data;
	assert_true(f[0] == -3 && f[1] == -131 && f[2] == -512);
	assert_int_equal(sl_g_run(g, &why), 0);
	y = g->t[ty].data;
	assert_true(y[0] == 103 && y[1] == 331 && y[2] == 812);
	/* A new bound value is read on the next run. */
	xin[0] = 0;
	assert_int_equal(sl_g_run(g, &why), 0);
	assert_true(((const int64_t *)g->t[ty].data)[0] == 3);
	sl_g_free(&g);
}

/* Float constants fold too: Sqrt(c) * 0.5 runs once at plan time and
 * the node left (Mul by the input) reads the folded values. */
static void
test_float_chain_folds(void **state)
{
	const float c[3] = { 4.0f, 9.0f, 0.25f }, half = 0.5f;
	const int64_t d3 = 3;
	float x[3] = { 1.0f, 2.0f, 3.0f };
	sl_graph *g;
	sl_errmsg why;
	int tc, th, t1, t2, tx, ty;
	const float *y;

	(void)state;
	assert_int_equal(sl_g_new(&g), 0);
	tc = add_tensor(g, "c", SL_G_F32, 1, &d3, c);
	th = add_tensor(g, "half", SL_G_F32, 0, NULL, &half);
	tx = add_tensor(g, "x", SL_G_F32, 1, &d3, NULL);
	g->t[tx].flags |= SL_GT_INPUT;
	g->inputs[g->ninputs++] = tx;
	t1 = add_tensor(g, "t1", 0, 0, NULL, NULL);
	t2 = add_tensor(g, "t2", 0, 0, NULL, NULL);
	ty = add_tensor(g, "y", 0, 0, NULL, NULL);
	g->t[ty].flags |= SL_GT_OUTPUT;
	g->outputs[g->noutputs++] = ty;
	add_node(g, "Sqrt", "sqrt", &tc, 1, t1);
	add_node(g, "Mul", "half", (int[]){ t1, th }, 2, t2);
	add_node(g, "Mul", "mul", (int[]){ tx, t2 }, 2, ty);
	if (sl_g_plan(g, 1, &why) != 0)
		fail_msg("plan: %s", why.text);
	assert_int_equal(g->norder, 1);
	assert_true(g->t[t2].flags & SL_GT_CONST);
	g->t[tx].data = x;
	assert_int_equal(sl_g_run(g, &why), 0);
	y = g->t[ty].data;
	assert_true(y[0] == 1.0f && y[1] == 3.0f && y[2] == 0.75f);
	sl_g_free(&g);
}

/* x + z (same shape) -> Relu, fused into the Add (one node runs) unless
 * the sum is also a graph output (two nodes); the same bits either way,
 * on a length that is not a multiple of the fused block or of four. */
static void
test_add_relu_fused(void **state)
{
	enum { N = 3 * 1031 };
	const int64_t d[2] = { 3, 1031 };
	static float x[N], z[N], y[2][N];

	(void)state;
	fill(x, N, -2, 2);
	fill(z, N, -2, 2);
	for (int mode = 0; mode < 2; mode++) {
		sl_graph *g;
		sl_errmsg why;
		int tx, tz, ts, ty;

		assert_int_equal(sl_g_new(&g), 0);
		g->opset = 17;
		tx = add_tensor(g, "x", SL_G_F32, 2, d, NULL);
		tz = add_tensor(g, "z", SL_G_F32, 2, d, NULL);
		g->t[tx].flags |= SL_GT_INPUT;
		g->t[tz].flags |= SL_GT_INPUT;
		g->inputs[g->ninputs++] = tx;
		g->inputs[g->ninputs++] = tz;
		ts = add_tensor(g, "s", 0, 0, NULL, NULL);
		ty = add_tensor(g, "y", 0, 0, NULL, NULL);
		g->t[ty].flags |= SL_GT_OUTPUT;
		g->outputs[g->noutputs++] = ty;
		if (mode == 1) {
			g->t[ts].flags |= SL_GT_OUTPUT;
			g->outputs[g->noutputs++] = ts;
		}
		add_node(g, "Add", "add", (int[]){ tx, tz }, 2, ts);
		add_node(g, "Relu", "relu", (int[]){ ts }, 1, ty);
		if (sl_g_plan(g, 3, &why) != 0)
			fail_msg("plan: %s", why.text);
		assert_int_equal(g->norder, mode == 0 ? 1 : 2);
		g->t[tx].data = x;
		g->t[tz].data = z;
		if (sl_g_run(g, &why) != 0)
			fail_msg("run: %s", why.text);
		memcpy(y[mode], g->t[ty].data, sizeof y[mode]);
		sl_g_free(&g);
	}
	assert_memory_equal(y[0], y[1], sizeof y[0]);
	for (int i = 0; i < N; i++) {
		const float v = x[i] + z[i];

		assert_true(y[0][i] == (v > 0.0f ? v : 0.0f));
	}
}

/* Erf's rational approximation against double erf on a dense sweep of
 * [-5, 5] and at the edges: within 5e-7 (it is 4.8e-7 at worst over every
 * float, against erff), +-1 at +-inf, NaN kept. */
static void
test_erf_approximation(void **state)
{
	enum { N = 200003 };
	static float x[N];
	const int64_t d = N;
	const float *y;
	tin in;
	one o;

	(void)state;
	for (int i = 0; i < N; i++)
		x[i] = -5.0f + 10.0f * (float)i / (float)(N - 1);
	x[0] = INFINITY;
	x[1] = -INFINITY;
	x[2] = NAN;
	x[3] = 0.0f;
	x[4] = 1e-30f;
	in = f32_in(1, &d, x);
	expect_ok(&o, "Erf", 17, NULL, 0, &in, 1, 1);
	y = out_t(&o, 0)->data;
	assert_true(y[0] == 1.0f && y[1] == -1.0f && isnan(y[2]) &&
	    y[3] == 0.0f);
	for (int i = 4; i < N; i++)
		if (!(fabs((double)y[i] - erf((double)x[i])) <= 5e-7))
			fail_msg("erf(%.9g) = %.9g, expected %.9g", (double)x[i],
			    (double)y[i], erf((double)x[i]));
	sl_g_free(&o.g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unary_against_double),
		cmocka_unit_test(test_unary_extremes),
		cmocka_unit_test(test_clip),
		cmocka_unit_test(test_binary_broadcast_against_naive),
		cmocka_unit_test(test_binary_big_fast_paths),
		cmocka_unit_test(test_int64_arithmetic),
		cmocka_unit_test(test_pow_mixed_and_type_errors),
		cmocka_unit_test(test_prelu),
		cmocka_unit_test(test_variadic),
		cmocka_unit_test(test_compare_logic_where),
		cmocka_unit_test(test_cast),
		cmocka_unit_test(test_identity_dropout),
		cmocka_unit_test(test_graph_chain_runs),
		cmocka_unit_test(test_graph_bool_mask_runs),
		cmocka_unit_test(test_plan_fails_on_bad_broadcast),
		cmocka_unit_test(test_int64_chain_folds),
		cmocka_unit_test(test_float_chain_folds),
		cmocka_unit_test(test_add_relu_fused),
		cmocka_unit_test(test_erf_approximation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

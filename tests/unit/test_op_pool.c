/* Pools: the max and average kernels against naive loops on fixed and
 * random geometries (strides, dilations, asymmetric pads, windows past the
 * end as ceil_mode makes them, count_include_pad both ways), NaN in a max,
 * the global pools, ceil_mode output sizes, 3-D windows, and the ops
 * through the graph engine (ONNX's own examples; Indices and 4-D refused; a
 * mismatch at plan).
 *
 * Tolerance: max is exact (it picks an element); averages within
 * 1e-6 * (1 + |ref|) of the double mean (float sums of at most 49 terms of
 * magnitude < 1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "kernels_conv.h"
#include "sl_err.h"
#include "sl_rng.h"

static void
fill(float *x, size_t n, sl_rng *r)
{
	for (size_t i = 0; i < n; i++)
		x[i] = 2.0f * sl_rng_float(r) - 1.0f;
}

static void
pool_naive(double *ref, const float *x, const sl_pool2d_geom *g, int is_max,
    int include_pad)
{
	for (size_t p = 0; p < g->N; p++)
		for (int od = 0; od < g->OD; od++)
			for (int oh = 0; oh < g->OH; oh++)
				for (int ow = 0; ow < g->OW; ow++) {
					double m = -INFINITY, s = 0;
					int cnt = 0;

					for (int kd = 0; kd < g->KD; kd++)
						for (int kh = 0; kh < g->KH; kh++)
							for (int kw = 0; kw < g->KW; kw++) {
								const int id = od * g->SD - g->PF + kd * g->DD;
								const int ih = oh * g->SH - g->PT + kh * g->DH;
								const int iw = ow * g->SW - g->PL + kw * g->DW;

								if (include_pad && id >= -g->PF &&
								    id < g->D + g->PK && ih >= -g->PT &&
								    ih < g->H + g->PB && iw >= -g->PL &&
								    iw < g->W + g->PR)
									cnt++;
								if (id < 0 || id >= g->D || ih < 0 ||
								    ih >= g->H || iw < 0 || iw >= g->W)
									continue;
								const double v = (double)x[((p *
								    (size_t)g->D + (size_t)id) *
								    (size_t)g->H + (size_t)ih) *
								    (size_t)g->W + (size_t)iw];

								m = v > m ? v : m;
								s += v;
								cnt += !include_pad;
							}
					ref[((p * (size_t)g->OD + (size_t)od) *
					    (size_t)g->OH + (size_t)oh) * (size_t)g->OW +
					    (size_t)ow] = is_max ? m : cnt ? s / cnt : 0.0;
				}
}

/* g with OH, OW from the end pads and ceil_mode the ONNX way (through
 * sl_op_window_resolve is tested separately; here the sizes are chosen
 * directly, possibly with windows running past the end pad). */
static void
check_pool(sl_pool2d_geom g, uint64_t seed)
{
	const size_t nx = g.N * (size_t)g.D * (size_t)g.H * (size_t)g.W;
	const size_t ny = g.N * (size_t)g.OD * (size_t)g.OH * (size_t)g.OW;
	float *x = malloc(nx * sizeof *x + 4), *y = malloc(ny * sizeof *y + 4);
	double *ref = malloc(ny * sizeof *ref + 8);
	sl_rng r;

	assert_non_null(x);
	assert_non_null(y);
	assert_non_null(ref);
	sl_rng_seed(&r, seed);
	fill(x, nx, &r);
	for (int kind = 0; kind < 3; kind++) {
		for (size_t i = 0; i < ny; i++)
			y[i] = NAN;
		if (kind == 0)
			sl_op_maxpool2d_forward(y, x, &g);
		else
			sl_op_avgpool2d_forward(y, x, &g, kind == 2);
		pool_naive(ref, x, &g, kind == 0, kind == 2);
		for (size_t i = 0; i < ny; i++) {
			const double tol = kind == 0 ? 0.0 : 1e-6 * (1 + fabs(ref[i]));

			if (!(fabs((double)y[i] - ref[i]) <= tol)) {
				print_error("kind %d N=%zu %dx%d k=%dx%d s=%d,%d d=%d,%d "
				    "pads=%d,%d,%d,%d out %dx%d: index %zu: %.9g vs "
				    "%.9g\n", kind, g.N, g.H, g.W, g.KH, g.KW, g.SH,
				    g.SW, g.DH, g.DW, g.PT, g.PL, g.PB, g.PR, g.OH,
				    g.OW, i, (double)y[i], ref[i]);
				fail();
			}
		}
	}
	free(x);
	free(y);
	free(ref);
}

static int
osize(int in, int k, int s, int d, int pb, int pe, int ceil_mode)
{
	const int span = in + pb + pe - ((k - 1) * d + 1);
	int o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;

	if (ceil_mode && (o - 1) * s >= in + pb)
		o--;
	return o;
}

static sl_pool2d_geom
geom(size_t N, int H, int W, int KH, int KW, int SH, int SW, int DH, int DW,
    int PT, int PL, int PB, int PR, int ceil_mode)
{
	return (sl_pool2d_geom){ .N = N, .D = 1, .KD = 1, .SD = 1, .DD = 1,
	    .OD = 1, .H = H, .W = W, .KH = KH, .KW = KW,
	    .SH = SH, .SW = SW, .DH = DH, .DW = DW, .PT = PT, .PL = PL,
	    .PB = PB, .PR = PR,
	    .OH = osize(H, KH, SH, DH, PT, PB, ceil_mode),
	    .OW = osize(W, KW, SW, DW, PL, PR, ceil_mode) };
}

/* g with a depth axis added. */
static sl_pool2d_geom
deep(sl_pool2d_geom g, int D, int KD, int SD, int DD, int PF, int PK,
    int ceil_mode)
{
	g.D = D;
	g.KD = KD;
	g.SD = SD;
	g.DD = DD;
	g.PF = PF;
	g.PK = PK;
	g.OD = osize(D, KD, SD, DD, PF, PK, ceil_mode);
	return g;
}

static void
test_pool_fixed_geometries(void **state)
{
	(void)state;
	/* ResNet's 3x3 stride-2 pad-1 max pool; 2x2 stride 2. */
	check_pool(geom(6, 28, 28, 3, 3, 2, 2, 1, 1, 1, 1, 1, 1, 0), 1);
	check_pool(geom(5, 14, 14, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0, 0), 2);
	/* ceil_mode: windows past the end (and past the end pad). */
	check_pool(geom(3, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0, 0, 0, 1), 3);
	check_pool(geom(3, 7, 9, 2, 3, 2, 3, 1, 1, 1, 1, 1, 0, 1), 4);
	/* Dilations, asymmetric pads, stride 1 and 3, 1-D as H = 1. */
	check_pool(geom(2, 10, 11, 3, 2, 1, 3, 2, 3, 2, 1, 0, 2, 0), 5);
	check_pool(geom(4, 1, 17, 1, 4, 1, 2, 1, 1, 0, 1, 0, 2, 1), 6);
	check_pool(geom(2, 5, 5, 5, 5, 1, 1, 1, 1, 2, 2, 2, 2, 0), 7);
	/* Wide rows: the four-wide loop and its tail. */
	check_pool(geom(2, 9, 37, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 0), 8);
	check_pool(geom(2, 9, 37, 3, 3, 1, 2, 1, 1, 1, 1, 1, 1, 1), 9);
	/* 3-D: ONNX's 32^3 default case shape, strides, pads, dilation. */
	check_pool(deep(geom(3, 32, 32, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0, 0), 32, 2, 1,
	    1, 0, 0, 0), 10);
	check_pool(deep(geom(2, 5, 6, 3, 2, 2, 1, 1, 2, 1, 0, 1, 1, 0), 7, 3, 2,
	    1, 1, 1, 0), 11);
	check_pool(deep(geom(2, 5, 5, 2, 2, 2, 2, 1, 1, 0, 0, 1, 1, 1), 6, 3, 2,
	    2, 1, 0, 1), 12);
}

static void
test_pool_random_geometries(void **state)
{
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 99);
	for (int t = 0; t < 300; t++) {
		const int KH = 1 + (int)sl_rng_below(&r, 4);
		const int KW = 1 + (int)sl_rng_below(&r, 4);
		const int DH = 1 + (int)sl_rng_below(&r, 2);
		const int DW = 1 + (int)sl_rng_below(&r, 3);
		/* Pads below the kernel, as ONNX and PyTorch expect. */
		const int PT = (int)sl_rng_below(&r, (uint64_t)KH);
		const int PL = (int)sl_rng_below(&r, (uint64_t)KW);
		const int PB = (int)sl_rng_below(&r, (uint64_t)KH);
		const int PR = (int)sl_rng_below(&r, (uint64_t)KW);
		const int H = (KH - 1) * DH + 1 + (int)sl_rng_below(&r, 12);
		const int W = (KW - 1) * DW + 1 + (int)sl_rng_below(&r, 12);

		const int cm = (int)sl_rng_below(&r, 2);
		sl_pool2d_geom g = geom(1 + sl_rng_below(&r, 5), H, W, KH, KW,
		    1 + (int)sl_rng_below(&r, 3), 1 + (int)sl_rng_below(&r, 3),
		    DH, DW, PT, PL, PB, PR, cm);

		if (t % 4 == 0) {       /* a quarter of them 3-D */
			const int KD = 1 + (int)sl_rng_below(&r, 3);

			g = deep(g, KD + (int)sl_rng_below(&r, 5), KD,
			    1 + (int)sl_rng_below(&r, 2), 1,
			    (int)sl_rng_below(&r, (uint64_t)KD),
			    (int)sl_rng_below(&r, (uint64_t)KD), cm);
		}
		check_pool(g, 100 + (uint64_t)t);
	}
}

/* The 3x3 stride-2 max pool fast path (pads <= 1): every small size, pad
 * and ceil_mode against the naive loop, and a NaN in each tap position. */
static void
test_pool_3x3s2_fast_path(void **state)
{
	uint64_t seed = 500;

	(void)state;
	for (int H = 3; H <= 9; H++)
		for (int W = 3; W <= 9; W += 3)
			for (int pads = 0; pads < 16; pads++)
				for (int cm = 0; cm < 2; cm++)
					check_pool(geom(2, H, W, 3, 3, 2, 2, 1, 1,
					    pads & 1, pads >> 1 & 1, pads >> 2 & 1,
					    pads >> 3 & 1, cm), seed++);
	for (int k = 0; k < 9; k++) {
		const sl_pool2d_geom g = geom(1, 3, 3, 3, 3, 2, 2, 1, 1, 0, 0, 0,
		    0, 0);
		float x[9], y[1];

		for (int i = 0; i < 9; i++)
			x[i] = (float)i;
		x[k] = NAN;
		sl_op_maxpool2d_forward(y, x, &g);
		assert_true(isnan(y[0]));
	}
}

static void
test_pool_nan_and_global(void **state)
{
	float x[2 * 13], y[4];
	sl_pool2d_geom g = geom(1, 1, 6, 1, 3, 1, 3, 1, 1, 0, 0, 0, 0, 0);

	(void)state;
	for (int i = 0; i < 26; i++)
		x[i] = (float)((i * 7) % 13) - 6.0f;
	x[4] = NAN;
	sl_op_maxpool2d_forward(y, x, &g);
	/* Windows (-6, 1, -5) and (2, NaN, 3). */
	assert_true(y[0] == 1.0f);
	assert_true(isnan(y[1]));
	/* Global pools over 13-element planes: the vector loop and a tail. */
	sl_op_globalmaxpool_forward(y, x, 2, 13);
	assert_true(isnan(y[0]));
	x[4] = 100.0f;
	sl_op_globalmaxpool_forward(y, x, 2, 13);
	assert_true(y[0] == 100.0f);
	assert_true(y[1] == 6.0f);
	sl_op_globalavgpool_forward(y, x, 2, 13);
	{
		double s0 = 0, s1 = 0;

		for (int i = 0; i < 13; i++) {
			s0 += (double)x[i];
			s1 += (double)x[13 + i];
		}
		assert_true(fabs((double)y[0] - s0 / 13) < 1e-5);
		assert_true(fabs((double)y[1] - s1 / 13) < 1e-5);
	}
}

static void
test_pool_ceil_mode_sizes(void **state)
{
	static const struct {
		int64_t in, k, s, pad, ceil_mode, out;
	} cases[] = {
		{ 4, 3, 2, 0, 0, 1 },   /* ONNX test_maxpool_2d_ceil: 2x2 */
		{ 4, 3, 2, 0, 1, 2 },
		{ 5, 2, 2, 1, 0, 3 },
		{ 5, 2, 2, 1, 1, 3 },   /* the 4th window would start in the pad */
		{ 6, 3, 2, 1, 1, 4 },
		{ 112, 3, 2, 1, 0, 56 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const int64_t st[1] = { cases[i].s };
		const int64_t pads[2] = { cases[i].pad, cases[i].pad };
		const sl_gattr at[] = {
			{ .name = "kernel_shape", .type = SL_GA_INTS,
			    .ints = &cases[i].k, .n = 1 },
			{ .name = "strides", .type = SL_GA_INTS, .ints = st, .n = 1 },
			{ .name = "pads", .type = SL_GA_INTS, .ints = pads, .n = 2 },
			{ .name = "ceil_mode", .type = SL_GA_INT,
			    .i = cases[i].ceil_mode },
		};
		const sl_gattrs a = { at, 4 };
		sl_op_window w;
		int64_t pb, pe, out;
		sl_errmsg why;

		assert_int_equal(sl_op_window_init(&w, &a, 1, &why), 0);
		assert_int_equal(sl_op_window_resolve(&w, 1, &cases[i].in,
		    w.kernel, &pb, &pe, &out, &why), 0);
		if (out != cases[i].out) {
			print_error("case %zu: out %lld, expected %lld\n", i,
			    (long long)out, (long long)cases[i].out);
			fail();
		}
	}
}

/* --- through the graph engine ---------------------------------------------- */

static int
tensor(sl_graph *g, const char *name)
{
	int idx;

	assert_int_equal(sl_g_tensor_add(g, name, &idx, NULL), 0);
	return idx;
}

static int
input(sl_graph *g, const char *name, int rank, const int64_t *dims)
{
	int idx = tensor(g, name);

	assert_int_equal(sl_g_set_shape(&g->t[idx], SL_G_F32, rank, dims, NULL),
	    0);
	g->t[idx].flags |= SL_GT_INPUT;
	g->inputs[g->ninputs++] = idx;
	return idx;
}

static int
output(sl_graph *g, const char *name)
{
	int idx = tensor(g, name);

	g->t[idx].flags |= SL_GT_OUTPUT;
	g->outputs[g->noutputs++] = idx;
	return idx;
}

/* One pool node on x of dims xd; runs and returns the graph (caller frees). */
static sl_graph *
run_one(const char *op, const int64_t *xd, int rank, float *x,
    const sl_gattrs *a, int *y)
{
	sl_graph *g;
	sl_errmsg why;
	int xi;

	assert_int_equal(sl_g_new(&g), 0);
	xi = input(g, "x", rank, xd);
	*y = output(g, "y");
	assert_int_equal(sl_g_node_add(g, sl_g_op_find(op), "pool", &xi, 1, y, 1,
	    a, &why), 0);
	assert_int_equal(sl_g_plan(g, (int)xd[0], &why), 0);
	g->t[xi].data = x;
	assert_int_equal(sl_g_run(g, &why), 0);
	return g;
}

static void
assert_values(const float *y, const float *expect, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fabsf(y[i] - expect[i]) > 1e-5f * (1.0f + fabsf(expect[i]))) {
			print_error("index %zu: %.9g, expected %.9g\n", i,
			    (double)y[i], (double)expect[i]);
			fail();
		}
}

/* ONNX's test_maxpool_2d_precomputed_pads, test_averagepool_2d_precomputed_
 * pads(_count_include_pad) and test_maxpool_2d_precomputed_same_upper:
 * X = 1 .. 25 as (1, 1, 5, 5). */
static void
test_graph_pool_onnx_examples(void **state)
{
	static const float max_pads[25] = {
		13, 14, 15, 15, 15, 18, 19, 20, 20, 20, 23, 24, 25, 25, 25,
		23, 24, 25, 25, 25, 23, 24, 25, 25, 25,
	};
	static const float avg_pads[25] = {
		7, 7.5f, 8, 8.5f, 9, 9.5f, 10, 10.5f, 11, 11.5f, 12, 12.5f, 13,
		13.5f, 14, 14.5f, 15, 15.5f, 16, 16.5f, 17, 17.5f, 18, 18.5f, 19,
	};
	static const float avg_incl[25] = {
		2.5200f, 3.6000f, 4.8000f, 4.0800f, 3.2400f,
		4.5600f, 6.4000f, 8.4000f, 7.0400f, 5.5200f,
		7.2000f, 10.0000f, 13.0000f, 10.8000f, 8.4000f,
		6.9600f, 9.6000f, 12.4000f, 10.2400f, 7.9200f,
		6.1200f, 8.4000f, 10.8000f, 8.8800f, 6.8400f,
	};
	static const float max_same[9] = { 7, 9, 10, 17, 19, 20, 22, 24, 25 };
	const int64_t xd[4] = { 1, 1, 5, 5 }, k5[2] = { 5, 5 }, k3[2] = { 3, 3 };
	const int64_t p2[4] = { 2, 2, 2, 2 }, s2[2] = { 2, 2 };
	float x[25];

	(void)state;
	for (int i = 0; i < 25; i++)
		x[i] = (float)(i + 1);
	for (int c = 0; c < 4; c++) {
		const sl_gattr at[] = {
			{ .name = "kernel_shape", .type = SL_GA_INTS,
			    .ints = c == 3 ? k3 : k5, .n = 2 },
			c == 3 ? (sl_gattr){ .name = "auto_pad", .type = SL_GA_STRING,
			    .s = "SAME_UPPER", .slen = 10 } :
			    (sl_gattr){ .name = "pads", .type = SL_GA_INTS,
			    .ints = p2, .n = 4 },
			c == 3 ? (sl_gattr){ .name = "strides", .type = SL_GA_INTS,
			    .ints = s2, .n = 2 } :
			    (sl_gattr){ .name = "count_include_pad", .type = SL_GA_INT,
			    .i = c == 2 },
		};
		const sl_gattrs a = { at, c == 0 ? 2 : 3 };
		int y;
		sl_graph *g = run_one(c == 0 || c == 3 ? "MaxPool" : "AveragePool",
		    xd, 4, x, &a, &y);

		assert_int_equal(g->t[y].dims[2], c == 3 ? 3 : 5);
		assert_values(g->t[y].data, c == 0 ? max_pads : c == 1 ? avg_pads :
		    c == 2 ? avg_incl : max_same, c == 3 ? 9 : 25);
		sl_g_free(&g);
	}
}

static void
test_graph_global_pools(void **state)
{
	const int64_t xd[4] = { 2, 3, 2, 2 };
	float x[24], avg[6], mx[6];

	(void)state;
	for (int i = 0; i < 24; i++)
		x[i] = (float)((i * 5) % 24) - 10.0f;
	for (int p = 0; p < 6; p++) {
		avg[p] = (x[4 * p] + x[4 * p + 1] + x[4 * p + 2] + x[4 * p + 3]) / 4;
		mx[p] = fmaxf(fmaxf(x[4 * p], x[4 * p + 1]), fmaxf(x[4 * p + 2],
		    x[4 * p + 3]));
	}
	for (int c = 0; c < 2; c++) {
		int y;
		sl_graph *g = run_one(c ? "GlobalMaxPool" : "GlobalAveragePool", xd,
		    4, x, NULL, &y);

		assert_int_equal(g->t[y].rank, 4);
		assert_int_equal(g->t[y].dims[0], 2);
		assert_int_equal(g->t[y].dims[1], 3);
		assert_int_equal(g->t[y].dims[2], 1);
		assert_int_equal(g->t[y].dims[3], 1);
		assert_values(g->t[y].data, c ? mx : avg, 6);
		sl_g_free(&g);
	}
}

/* A hostile window: kernel 2^24 x 2^24 over a 2x2 input with pads 2^23.
 * Only the taps that reach the input are visited (this would take days
 * otherwise); every window covers the whole input. */
static void
test_graph_pool_huge_window(void **state)
{
	const int64_t xd[4] = { 1, 1, 2, 2 }, k[2] = { 1 << 24, 1 << 24 };
	const int64_t pads[4] = { 1 << 23, 1 << 23, 1 << 23, 1 << 23 };
	float x[4] = { 3, -1, 7, 2 };

	(void)state;
	for (int c = 0; c < 3; c++) {
		const sl_gattr at[] = {
			{ .name = "kernel_shape", .type = SL_GA_INTS, .ints = k,
			    .n = 2 },
			{ .name = "pads", .type = SL_GA_INTS, .ints = pads, .n = 4 },
			{ .name = "count_include_pad", .type = SL_GA_INT,
			    .i = c == 2 },
		};
		const sl_gattrs a = { at, c == 0 ? 2 : 3 };
		int y;
		sl_graph *g = run_one(c == 0 ? "MaxPool" : "AveragePool", xd, 4, x,
		    &a, &y);
		const float *v = g->t[y].data;

		assert_int_equal(g->t[y].dims[2], 3);
		assert_int_equal(g->t[y].dims[3], 3);
		for (int i = 0; i < 9; i++) {
			const float want = c == 0 ? 7.0f : c == 1 ? 2.75f : 11.0f /
			    ((float)(1 << 24) * (float)(1 << 24));

			assert_true(fabsf(v[i] - want) <= 1e-6f * fabsf(want));
		}
		sl_g_free(&g);
	}
}

static void
test_graph_pool_refused(void **state)
{
	const int64_t xd[4] = { 1, 1, 3, 3 }, x4[6] = { 1, 1, 3, 3, 3, 3 };
	const int64_t k5[2] = { 5, 5 }, k2[4] = { 2, 2, 2, 2 };
	const sl_gattr at5[] = {
		{ .name = "kernel_shape", .type = SL_GA_INTS, .ints = k5, .n = 2 },
	};
	const sl_gattr at4[] = {
		{ .name = "kernel_shape", .type = SL_GA_INTS, .ints = k2, .n = 4 },
	};
	const sl_gattrs a5 = { at5, 1 }, a4 = { at4, 1 };
	sl_graph *g;
	sl_errmsg why;
	int xi, y[2];

	(void)state;
	/* Indices refused when the node is added. */
	assert_int_equal(sl_g_new(&g), 0);
	xi = input(g, "x", 4, xd);
	y[0] = output(g, "y");
	y[1] = output(g, "indices");
	assert_int_equal(sl_g_node_add(g, sl_g_op_find("MaxPool"), "mp", &xi, 1,
	    y, 2, &a5, &why), SL_EUNSUPPORTED);
	assert_non_null(strstr(why.text, "Indices"));
	assert_non_null(strstr(why.text, "mp"));
	/* No kernel_shape. */
	assert_int_equal(sl_g_node_add(g, sl_g_op_find("AveragePool"), "ap", &xi,
	    1, y, 1, NULL, &why), SL_EFORMAT);
	assert_non_null(strstr(why.text, "kernel_shape"));
	/* A 5x5 window on a 3x3 input without pads: at plan, naming it. */
	assert_int_equal(sl_g_node_add(g, sl_g_op_find("MaxPool"), "mp", &xi, 1,
	    y, 1, &a5, &why), 0);
	assert_int_equal(sl_g_plan(g, 1, &why), SL_EMISMATCH);
	assert_non_null(strstr(why.text, "smaller than"));
	sl_g_free(&g);
	/* 4-D windows refused at plan, naming the shape. */
	assert_int_equal(sl_g_new(&g), 0);
	xi = input(g, "x", 6, x4);
	y[0] = output(g, "y");
	assert_int_equal(sl_g_node_add(g, sl_g_op_find("MaxPool"), "mp", &xi, 1,
	    y, 1, &a4, &why), 0);
	assert_int_equal(sl_g_plan(g, 1, &why), SL_EUNSUPPORTED);
	assert_non_null(strstr(why.text, "4-D"));
	assert_non_null(strstr(why.text, "[1, 1, 3, 3, 3, 3]"));
	sl_g_free(&g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_fixed_geometries),
		cmocka_unit_test(test_pool_random_geometries),
		cmocka_unit_test(test_pool_nan_and_global),
		cmocka_unit_test(test_pool_3x3s2_fast_path),
		cmocka_unit_test(test_pool_ceil_mode_sizes),
		cmocka_unit_test(test_graph_pool_onnx_examples),
		cmocka_unit_test(test_graph_global_pools),
		cmocka_unit_test(test_graph_pool_huge_window),
		cmocka_unit_test(test_graph_pool_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

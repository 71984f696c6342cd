/* Conv: sl_op_conv2d_forward against a naive double-precision loop on fixed
 * and random geometries (every path: im2col with chunks that split images,
 * 1x1 per image and batched, grouped, depthwise with multipliers, strides,
 * dilations, asymmetric pads); the window attributes (auto_pad); and the Conv
 * op through the graph engine (ONNX's own examples, a runtime W, a smaller
 * batch than planned, shape mismatches and 3-D refused at plan).
 *
 * Tolerance: |y - ref| <= 1e-5 * sum |w * x| + 1e-6 per element, where ref
 * and the sum are in double: float32 accumulation over K terms stays far
 * inside K * 2^-24 of the sum of magnitudes for the K (<= 1200) used. */
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

/* ref and the bound for each output element. */
static void
conv_naive(double *ref, double *mag, const float *x, const float *w,
    const float *b, const sl_conv2d_geom *g)
{
	const int Cg = g->C / g->G, OCg = g->OC / g->G;

	for (int bi = 0; bi < g->B; bi++)
		for (int oc = 0; oc < g->OC; oc++)
			for (int oh = 0; oh < g->OH; oh++)
				for (int ow = 0; ow < g->OW; ow++) {
					double s = b ? (double)b[oc] : 0.0;
					double m = b ? fabs((double)b[oc]) : 0.0;

					for (int c = 0; c < Cg; c++)
						for (int kh = 0; kh < g->KH; kh++)
							for (int kw = 0; kw < g->KW; kw++) {
								const int ih = oh * g->SH - g->PT + kh * g->DH;
								const int iw = ow * g->SW - g->PL + kw * g->DW;
								const int ci = oc / OCg * Cg + c;
								double t;

								if (ih < 0 || ih >= g->H || iw < 0 ||
								    iw >= g->W)
									continue;
								t = (double)x[((size_t)(bi * g->C + ci) *
								    (size_t)g->H + (size_t)ih) *
								    (size_t)g->W + (size_t)iw] *
								    (double)w[(((size_t)oc * (size_t)Cg +
								    (size_t)c) * (size_t)g->KH +
								    (size_t)kh) * (size_t)g->KW +
								    (size_t)kw];
								s += t;
								m += fabs(t);
							}
					const size_t o = (((size_t)bi * (size_t)g->OC +
					    (size_t)oc) * (size_t)g->OH + (size_t)oh) *
					    (size_t)g->OW + (size_t)ow;
					ref[o] = s;
					mag[o] = m;
				}
}

/* Output size for explicit pads (ONNX NOTSET, floor). */
static int
out_size(int in, int k, int s, int d, int pb, int pe)
{
	return (in + pb + pe - ((k - 1) * d + 1)) / s + 1;
}

/* Run the kernel on random data for g (OH, OW filled from pads pb, pr) and
 * compare with the naive loop. */
static void
check_geom(sl_conv2d_geom g, int PB, int PR, int with_bias, uint64_t seed)
{
	sl_rng r;
	size_t nx, nw, ny, ns;
	float *x, *w, *b, *y;
	double *ref, *mag;

	g.OH = out_size(g.H, g.KH, g.SH, g.DH, g.PT, PB);
	g.OW = out_size(g.W, g.KW, g.SW, g.DW, g.PL, PR);
	assert_true(g.OH > 0 && g.OW > 0);
	nx = (size_t)g.B * (size_t)g.C * (size_t)g.H * (size_t)g.W;
	nw = (size_t)g.OC * (size_t)(g.C / g.G) * (size_t)g.KH * (size_t)g.KW;
	ny = (size_t)g.B * (size_t)g.OC * (size_t)g.OH * (size_t)g.OW;
	ns = sl_op_conv2d_scratch_bytes(&g);
	assert_true(ns <= SL_CONV_CHUNK_BYTES + (size_t)(g.C / g.G * g.KH *
	    g.KW + g.OC / g.G) * (size_t)g.OW * sizeof(float));
	x = malloc(nx * sizeof *x + 4);
	w = malloc(nw * sizeof *w);
	b = malloc((size_t)g.OC * sizeof *b);
	y = malloc(ny * sizeof *y + 4);
	ref = malloc(ny * sizeof *ref + 8);
	mag = malloc(ny * sizeof *mag + 8);
	assert_non_null(x);
	assert_non_null(w);
	assert_non_null(b);
	assert_non_null(y);
	assert_non_null(ref);
	assert_non_null(mag);
	sl_rng_seed(&r, seed);
	fill(x, nx, &r);
	fill(w, nw, &r);
	fill(b, (size_t)g.OC, &r);
	conv_naive(ref, mag, x, w, with_bias ? b : NULL, &g);
	/* One thread, then three for the kernel's own loops (used when the
	 * call is big enough), with the workspace sized for each. */
	for (int th = 1; th <= 3; th += 2) {
		float *sc;

		g.threads = th;
		sc = malloc(sl_op_conv2d_scratch_bytes(&g) + 4);
		assert_non_null(sc);
		for (size_t i = 0; i < ny; i++)
			y[i] = NAN;     /* every output must be written */
		sl_op_conv2d_forward(y, x, w, with_bias ? b : NULL, &g, sc);
		free(sc);
		for (size_t i = 0; i < ny; i++)
			if (!(fabs((double)y[i] - ref[i]) <= 1e-5 * mag[i] + 1e-6)) {
				print_error("B=%d C=%d %dx%d OC=%d G=%d k=%dx%d s=%d,%d "
				    "d=%d,%d pads=%d,%d,%d,%d threads %d: index %zu: "
				    "%.9g vs %.9g\n", g.B, g.C, g.H, g.W, g.OC, g.G,
				    g.KH, g.KW, g.SH, g.SW, g.DH, g.DW, g.PT, g.PL, PB,
				    PR, th, i, (double)y[i], ref[i]);
				fail();
			}
	}
	free(x);
	free(w);
	free(b);
	free(y);
	free(ref);
	free(mag);
}

#define GEOM(B_, C_, H_, W_, OC_, G_, KH_, KW_, SH_, SW_, DH_, DW_, PT_, PL_) \
	((sl_conv2d_geom){ .B = B_, .C = C_, .H = H_, .W = W_, .OC = OC_, \
	    .G = G_, .KH = KH_, .KW = KW_, .SH = SH_, .SW = SW_, .DH = DH_, \
	    .DW = DW_, .PT = PT_, .PL = PL_ })

static void
test_conv_fixed_geometries(void **state)
{
	(void)state;
	/* im2col: ResNet-style 3x3 pad 1, without and with bias. */
	check_geom(GEOM(3, 8, 14, 14, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1), 1, 1, 1, 1);
	check_geom(GEOM(2, 5, 9, 7, 3, 1, 3, 3, 1, 1, 1, 1, 1, 1), 1, 1, 0, 2);
	/* Stride 2, 7x7 stem with pad 3; stride 2 with asymmetric pads. */
	check_geom(GEOM(2, 3, 28, 28, 8, 1, 7, 7, 2, 2, 1, 1, 3, 3), 3, 3, 1, 3);
	check_geom(GEOM(2, 4, 11, 10, 6, 1, 3, 2, 2, 3, 1, 1, 0, 2), 1, 0, 1, 4);
	/* Dilations; rectangular kernels; pads bigger than the dilation. */
	check_geom(GEOM(2, 3, 12, 13, 4, 1, 3, 3, 1, 1, 2, 3, 2, 3), 2, 1, 1, 5);
	check_geom(GEOM(1, 2, 6, 6, 2, 1, 1, 5, 1, 2, 1, 1, 0, 4), 0, 4, 1, 6);
	/* Chunks that end inside an image: K = 576, OW = 28 gives 64-row
	 * chunks over 5 * 28 rows. */
	check_geom(GEOM(5, 64, 28, 28, 8, 1, 3, 3, 1, 1, 1, 1, 1, 1), 1, 1, 1, 7);
	/* 7x7 planes (one wide GEMM and a scatter): 128-row chunks over 40
	 * images of 7 rows. */
	check_geom(GEOM(40, 128, 7, 7, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1), 1, 1, 1, 26);
	/* 1x1: batched through the im2col copy (small planes), per image on
	 * planes of 1024 or more (and 4M multiply-adds), with a stride
	 * (im2col), grouped both ways. */
	check_geom(GEOM(4, 16, 7, 7, 24, 1, 1, 1, 1, 1, 1, 1, 0, 0), 0, 0, 1, 8);
	check_geom(GEOM(2, 64, 32, 40, 96, 1, 1, 1, 1, 1, 1, 1, 0, 0), 0, 0, 1, 9);
	check_geom(GEOM(2, 6, 32, 40, 5, 1, 1, 1, 1, 1, 1, 1, 0, 0), 0, 0, 0, 10);
	check_geom(GEOM(2, 6, 9, 9, 5, 1, 1, 1, 2, 2, 1, 1, 0, 0), 0, 0, 1, 11);
	check_geom(GEOM(2, 8, 32, 32, 12, 4, 1, 1, 1, 1, 1, 1, 0, 0), 0, 0, 1, 12);
	check_geom(GEOM(1, 128, 32, 32, 128, 2, 1, 1, 1, 1, 1, 1, 0, 0), 0, 0, 1, 25);
	/* Groups (im2col per group). */
	check_geom(GEOM(3, 6, 8, 8, 9, 3, 3, 3, 1, 1, 1, 1, 1, 1), 1, 1, 1, 13);
	check_geom(GEOM(2, 4, 8, 8, 4, 2, 3, 3, 2, 2, 1, 1, 1, 1), 0, 0, 0, 14);
	/* Depthwise (MobileNet): multiplier 1 and 2, strides 1 and 2 and 3,
	 * dilation, asymmetric pads, bias or not. */
	check_geom(GEOM(3, 16, 14, 14, 16, 16, 3, 3, 1, 1, 1, 1, 1, 1), 1, 1, 1, 15);
	check_geom(GEOM(2, 8, 15, 15, 8, 8, 3, 3, 2, 2, 1, 1, 1, 1), 1, 1, 1, 16);
	check_geom(GEOM(2, 4, 13, 17, 8, 4, 5, 3, 1, 3, 2, 1, 3, 0), 1, 2, 0, 17);
	check_geom(GEOM(1, 3, 28, 28, 6, 3, 3, 3, 2, 2, 1, 1, 0, 0), 1, 1, 1, 18);
	/* Big enough for the kernel's threads: depthwise, grouped im2col
	 * (the pipeline across groups), a strided one with several chunks. */
	check_geom(GEOM(16, 32, 28, 28, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1), 1, 1, 1, 22);
	check_geom(GEOM(8, 16, 14, 14, 32, 2, 3, 3, 1, 1, 1, 1, 1, 1), 1, 1, 1, 23);
	check_geom(GEOM(6, 48, 30, 30, 16, 1, 3, 3, 2, 2, 1, 1, 1, 0), 0, 1, 0, 24);
	/* First layer: one input channel. */
	check_geom(GEOM(4, 1, 28, 28, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1), 1, 1, 1, 19);
	/* 1-D as H = 1. */
	check_geom(GEOM(2, 3, 1, 20, 4, 1, 1, 5, 1, 2, 1, 2, 0, 3), 0, 1, 1, 20);
	/* A kernel as large as the padded input: one output. */
	check_geom(GEOM(2, 2, 4, 4, 3, 1, 6, 6, 1, 1, 1, 1, 1, 1), 1, 1, 1, 21);
}

static void
test_conv_random_geometries(void **state)
{
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 42);
	for (int t = 0; t < 300; t++) {
		sl_conv2d_geom g = { 0 };
		int PB, PR, mult;

		g.G = 1 + (int)sl_rng_below(&r, 3);
		if (sl_rng_below(&r, 4) == 0) {     /* depthwise */
			g.C = 2 + (int)sl_rng_below(&r, 6);
			g.G = g.C;
			mult = 1 + (int)sl_rng_below(&r, 3);
			g.OC = g.C * mult;
		} else {
			g.C = g.G * (1 + (int)sl_rng_below(&r, 4));
			g.OC = g.G * (1 + (int)sl_rng_below(&r, 4));
		}
		g.B = 1 + (int)sl_rng_below(&r, 3);
		g.KH = 1 + (int)sl_rng_below(&r, 4);
		g.KW = 1 + (int)sl_rng_below(&r, 4);
		g.SH = 1 + (int)sl_rng_below(&r, 3);
		g.SW = 1 + (int)sl_rng_below(&r, 3);
		g.DH = 1 + (int)sl_rng_below(&r, 2);
		g.DW = 1 + (int)sl_rng_below(&r, 3);
		g.PT = (int)sl_rng_below(&r, 3);
		g.PL = (int)sl_rng_below(&r, 3);
		PB = (int)sl_rng_below(&r, 3);
		PR = (int)sl_rng_below(&r, 3);
		g.H = (g.KH - 1) * g.DH + 1 + (int)sl_rng_below(&r, 9);
		g.W = (g.KW - 1) * g.DW + 1 + (int)sl_rng_below(&r, 9);
		check_geom(g, PB, PR, (int)sl_rng_below(&r, 2), 1000 + (uint64_t)t);
	}
}

/* --- window attributes ------------------------------------------------- */

static void
test_window_auto_pad(void **state)
{
	static const struct {
		const char *mode;
		int64_t in, k, s, d;
		int64_t pb, pe, out;
	} cases[] = {
		{ "SAME_UPPER", 5, 3, 2, 1, 1, 1, 3 },
		{ "SAME_UPPER", 4, 3, 2, 1, 0, 1, 2 },
		{ "SAME_LOWER", 4, 3, 2, 1, 1, 0, 2 },
		{ "SAME_UPPER", 28, 3, 1, 1, 1, 1, 28 },
		{ "SAME_LOWER", 6, 2, 1, 1, 1, 0, 6 },
		{ "SAME_UPPER", 6, 3, 1, 2, 2, 2, 6 },
		{ "SAME_UPPER", 3, 5, 2, 1, 2, 2, 2 },
		{ "SAME_LOWER", 4, 4, 3, 1, 2, 1, 2 },
		{ "VALID", 5, 3, 2, 1, 0, 0, 2 },
		{ "VALID", 6, 3, 2, 1, 0, 0, 2 },
		{ "NOTSET", 6, 3, 2, 1, 0, 0, 2 },
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const int64_t strides[1] = { cases[i].s }, dil[1] = { cases[i].d };
		const sl_gattr at[] = {
			{ .name = "auto_pad", .type = SL_GA_STRING,
			    .s = cases[i].mode, .slen = strlen(cases[i].mode) },
			{ .name = "strides", .type = SL_GA_INTS, .ints = strides,
			    .n = 1 },
			{ .name = "dilations", .type = SL_GA_INTS, .ints = dil,
			    .n = 1 },
		};
		const sl_gattrs a = { at, 3 };
		sl_op_window w;
		int64_t pb, pe, out;
		sl_errmsg why;

		assert_int_equal(sl_op_window_init(&w, &a, 0, &why), 0);
		assert_int_equal(sl_op_window_resolve(&w, 1, &cases[i].in,
		    &cases[i].k, &pb, &pe, &out, &why), 0);
		if (pb != cases[i].pb || pe != cases[i].pe ||
		    out != cases[i].out) {
			print_error("case %zu %s: pads %lld %lld out %lld\n", i,
			    cases[i].mode, (long long)pb, (long long)pe,
			    (long long)out);
			fail();
		}
	}
}

static void
test_window_bad_attributes(void **state)
{
	const int64_t zero[2] = { 0, 1 }, three[3] = { 1, 1, 1 };
	sl_gattr at[1];
	const sl_gattrs a = { at, 1 };
	sl_op_window w;
	sl_errmsg why;
	int64_t in[2] = { 5, 5 }, k[2] = { 3, 3 }, pb[2], pe[2], out[2];

	(void)state;
	at[0] = (sl_gattr){ .name = "strides", .type = SL_GA_INTS, .ints = zero,
	    .n = 2 };
	assert_int_equal(sl_op_window_init(&w, &a, 0, &why), SL_EFORMAT);
	assert_non_null(strstr(why.text, "strides"));
	at[0] = (sl_gattr){ .name = "auto_pad", .type = SL_GA_STRING,
	    .s = "SAME", .slen = 4 };
	assert_int_equal(sl_op_window_init(&w, &a, 0, &why), SL_EUNSUPPORTED);
	assert_non_null(strstr(why.text, "SAME"));
	at[0] = (sl_gattr){ .name = "pads", .type = SL_GA_INTS, .ints = three,
	    .n = 3 };
	assert_int_equal(sl_op_window_init(&w, &a, 0, &why), SL_EFORMAT);
	/* Counts are checked against the rank at resolve. */
	at[0] = (sl_gattr){ .name = "dilations", .type = SL_GA_INTS,
	    .ints = three, .n = 3 };
	assert_int_equal(sl_op_window_init(&w, &a, 0, &why), 0);
	assert_int_equal(sl_op_window_resolve(&w, 2, in, k, pb, pe, out, &why),
	    SL_EMISMATCH);
	/* A kernel larger than the input. */
	at[0] = (sl_gattr){ .name = "dilations", .type = SL_GA_INTS,
	    .ints = three, .n = 2 };
	assert_int_equal(sl_op_window_init(&w, &a, 0, &why), 0);
	k[1] = 6;
	assert_int_equal(sl_op_window_resolve(&w, 2, in, k, pb, pe, out, &why),
	    SL_EMISMATCH);
}

/* --- through the graph engine --------------------------------------------- */

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
constant(sl_graph *g, const char *name, int rank, const int64_t *dims,
    const float *v)
{
	int idx = tensor(g, name);
	sl_gtensor *t = &g->t[idx];

	assert_int_equal(sl_g_set_shape(t, SL_G_F32, rank, dims, NULL), 0);
	t->data = malloc(sl_g_numel(t) * sizeof(float));
	assert_non_null(t->data);
	memcpy(t->data, v, sl_g_numel(t) * sizeof(float));
	t->cap_bytes = sl_g_numel(t) * sizeof(float);
	t->flags |= SL_GT_CONST;
	g->const_bytes += t->cap_bytes;
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

static void
assert_values(const float *y, const float *expect, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fabsf(y[i] - expect[i]) > 1e-4f * (1.0f + fabsf(expect[i]))) {
			print_error("index %zu: %.9g, expected %.9g\n", i,
			    (double)y[i], (double)expect[i]);
			fail();
		}
}

/* ONNX's test_basic_conv_with_padding and test_conv_with_strides_and_
 * asymmetric_padding: X = 0, 1, 2, ..., W all ones. */
static void
test_graph_conv_onnx_examples(void **state)
{
	static const float y_pad[25] = {
		12, 21, 27, 33, 24, 33, 54, 63, 72, 51, 63, 99, 108, 117, 81,
		93, 144, 153, 162, 111, 72, 111, 117, 123, 84,
	};
	static const float y_asym[8] = { 21, 33, 99, 117, 189, 207, 171, 183 };
	const int64_t pads1[4] = { 1, 1, 1, 1 }, pads2[4] = { 1, 0, 1, 0 };
	const int64_t ks[2] = { 3, 3 }, st[2] = { 2, 2 };
	const int64_t xd1[4] = { 1, 1, 5, 5 }, xd2[4] = { 1, 1, 7, 5 };
	const int64_t wd[4] = { 1, 1, 3, 3 };
	float ones[9], xv[35];
	sl_errmsg why;

	(void)state;
	for (int i = 0; i < 9; i++)
		ones[i] = 1;
	for (int i = 0; i < 35; i++)
		xv[i] = (float)i;
	for (int c = 0; c < 2; c++) {
		const sl_gattr at[] = {
			{ .name = "kernel_shape", .type = SL_GA_INTS, .ints = ks,
			    .n = 2 },
			{ .name = "pads", .type = SL_GA_INTS,
			    .ints = c ? pads2 : pads1, .n = 4 },
			{ .name = "strides", .type = SL_GA_INTS, .ints = st, .n = 2 },
		};
		const sl_gattrs a = { at, c ? 3 : 2 };
		sl_graph *g;
		int io[2], y;

		assert_int_equal(sl_g_new(&g), 0);
		io[0] = input(g, "x", 4, c ? xd2 : xd1);
		io[1] = constant(g, "W", 4, wd, ones);
		y = output(g, "y");
		assert_int_equal(sl_g_node_add(g, sl_g_op_find("Conv"), "conv", io,
		    2, &y, 1, &a, &why), 0);
		assert_int_equal(sl_g_plan(g, 1, &why), 0);
		g->t[io[0]].data = xv;
		assert_int_equal(sl_g_run(g, &why), 0);
		assert_int_equal(g->t[y].rank, 4);
		assert_int_equal(g->t[y].dims[2], c ? 4 : 5);
		assert_int_equal(g->t[y].dims[3], c ? 2 : 5);
		assert_values(g->t[y].data, c ? y_asym : y_pad, c ? 8 : 25);
		sl_g_free(&g);
	}
}

/* W and B as runtime inputs, a batch smaller than planned, auto_pad
 * SAME_UPPER, bias: against the kernel's naive reference. */
static void
test_graph_conv_runtime_weights(void **state)
{
	const int64_t xd[4] = { 4, 6, 9, 9 }, wd[4] = { 8, 3, 3, 3 };
	const int64_t bd[1] = { 8 }, st[2] = { 2, 2 };
	const sl_gattr at[] = {
		{ .name = "auto_pad", .type = SL_GA_STRING, .s = "SAME_UPPER",
		    .slen = 10 },
		{ .name = "strides", .type = SL_GA_INTS, .ints = st, .n = 2 },
		{ .name = "group", .type = SL_GA_INT, .i = 2 },
	};
	const sl_gattrs a = { at, 3 };
	const sl_conv2d_geom ge = GEOM(3, 6, 9, 9, 8, 2, 3, 3, 2, 2, 1, 1, 1, 1);
	float x[4 * 6 * 81], w[8 * 27], b[8];
	double ref[3 * 8 * 25], mag[3 * 8 * 25];
	sl_graph *g;
	sl_errmsg why;
	sl_rng r;
	int io[3], y;

	(void)state;
	sl_rng_seed(&r, 7);
	fill(x, sizeof x / sizeof x[0], &r);
	fill(w, sizeof w / sizeof w[0], &r);
	fill(b, 8, &r);
	assert_int_equal(sl_g_new(&g), 0);
	io[0] = input(g, "x", 4, xd);
	io[1] = input(g, "W", 4, wd);
	io[2] = input(g, "B", 1, bd);
	y = output(g, "y");
	assert_int_equal(sl_g_node_add(g, sl_g_op_find("Conv"), "conv", io, 3,
	    &y, 1, &a, &why), 0);
	assert_int_equal(sl_g_plan(g, 4, &why), 0);
	g->t[io[0]].data = x;
	g->t[io[0]].dims[0] = 3;
	g->t[io[1]].data = w;
	g->t[io[2]].data = b;
	assert_int_equal(sl_g_run(g, &why), 0);
	assert_int_equal(g->t[y].dims[0], 3);
	assert_int_equal(g->t[y].dims[1], 8);
	assert_int_equal(g->t[y].dims[2], 5);
	assert_int_equal(g->t[y].dims[3], 5);
	{
		sl_conv2d_geom gg = ge;

		gg.OH = 5;
		gg.OW = 5;
		conv_naive(ref, mag, x, w, b, &gg);
	}
	for (size_t i = 0; i < 3 * 8 * 25; i++)
		assert_true(fabs((double)((float *)g->t[y].data)[i] - ref[i]) <=
		    1e-5 * mag[i] + 1e-6);
	sl_g_free(&g);
}

/* Plan fails, naming the shapes: C of X and W disagree; B of the wrong
 * length; 3-D refused; a 1-D conv runs. */
static void
test_graph_conv_refused_at_plan(void **state)
{
	const int64_t xd[4] = { 2, 3, 5, 5 }, wbad[4] = { 4, 2, 3, 3 };
	const int64_t wd[4] = { 4, 3, 3, 3 }, bbad[1] = { 5 };
	const int64_t x3[5] = { 1, 1, 4, 4, 4 }, w3[5] = { 1, 1, 2, 2, 2 };
	float zeros[108] = { 0 };
	sl_errmsg why;

	(void)state;
	for (int c = 0; c < 3; c++) {
		sl_graph *g;
		int io[3], y, rc;

		assert_int_equal(sl_g_new(&g), 0);
		io[0] = input(g, "x", c == 2 ? 5 : 4, c == 2 ? x3 : xd);
		io[1] = constant(g, "W", c == 2 ? 5 : 4, c == 0 ? wbad : c == 1 ?
		    wd : w3, zeros);
		io[2] = constant(g, "B", 1, bbad, zeros);
		y = output(g, "y");
		assert_int_equal(sl_g_node_add(g, sl_g_op_find("Conv"), "conv1",
		    io, c == 1 ? 3 : 2, &y, 1, NULL, &why), 0);
		rc = sl_g_plan(g, 2, &why);
		if (c == 0) {
			assert_int_equal(rc, SL_EMISMATCH);
			assert_non_null(strstr(why.text, "[4, 2, 3, 3]"));
			assert_non_null(strstr(why.text, "[2, 3, 5, 5]"));
		} else if (c == 1) {
			assert_int_equal(rc, SL_EMISMATCH);
			assert_non_null(strstr(why.text, "[5]"));
		} else {
			assert_int_equal(rc, SL_EUNSUPPORTED);
			assert_non_null(strstr(why.text, "3-D"));
		}
		assert_non_null(strstr(why.text, "conv1"));
		sl_g_free(&g);
	}
}

static void
test_graph_conv_1d(void **state)
{
	/* x (1, 1, 6) = 0..5, w (2, 1, 3) = [1 0 -1], [1 1 1], pads 1, stride 2. */
	static const float w[6] = { 1, 0, -1, 1, 1, 1 };
	static const float x[6] = { 0, 1, 2, 3, 4, 5 };
	static const float expect[6] = { -1, -2, -2, 1, 6, 12 };
	const int64_t xd[3] = { 1, 1, 6 }, wd[3] = { 2, 1, 3 };
	const int64_t pads[2] = { 1, 1 }, st[1] = { 2 };
	const sl_gattr at[] = {
		{ .name = "pads", .type = SL_GA_INTS, .ints = pads, .n = 2 },
		{ .name = "strides", .type = SL_GA_INTS, .ints = st, .n = 1 },
	};
	const sl_gattrs a = { at, 2 };
	sl_graph *g;
	sl_errmsg why;
	int io[2], y;

	(void)state;
	assert_int_equal(sl_g_new(&g), 0);
	io[0] = input(g, "x", 3, xd);
	io[1] = constant(g, "W", 3, wd, w);
	y = output(g, "y");
	assert_int_equal(sl_g_node_add(g, sl_g_op_find("Conv"), "c", io, 2, &y,
	    1, &a, &why), 0);
	assert_int_equal(sl_g_plan(g, 1, &why), 0);
	g->t[io[0]].data = (float *)x;
	assert_int_equal(sl_g_run(g, &why), 0);
	assert_int_equal(g->t[y].rank, 3);
	assert_int_equal(g->t[y].dims[2], 3);
	assert_values(g->t[y].data, expect, 6);
	sl_g_free(&g);
}

/* A stand-in BatchNormalization (the real one lives in op_norm.c): what
 * fold.c needs is the op name and sl_g_bn_attr. Its forward computes BN
 * too, so the values are right whether or not the fold happens; the test
 * checks that it did. */
static int
bn_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	sl_g_bn_attr *p = malloc(sizeof *p);

	(void)g;
	if (p == NULL)
		return SL_ENOMEM;
	p->epsilon = 1e-5f;
	n->attr = p;
	return sl_g_attr_float(a, "epsilon", &p->epsilon, why) < 0 ? SL_EFORMAT :
	    0;
}

static int
bn_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);

	return sl_g_set_shape(sl_g_out(g, n, 0), SL_G_F32, x->rank, x->dims, why);
}

static void
bn_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	const float *gam = sl_g_in(g, n, 1)->data, *bet = sl_g_in(g, n, 2)->data;
	const float *mean = sl_g_in(g, n, 3)->data, *var = sl_g_in(g, n, 4)->data;
	const sl_g_bn_attr *a = n->attr;
	const size_t C = (size_t)x->dims[1], S = sl_g_numel(x) / (size_t)x->dims[0] / C;
	float *y = sl_g_out(g, n, 0)->data;

	(void)scratch;
	for (size_t i = 0; i < sl_g_numel(x); i++) {
		const size_t c = i / S % C;

		y[i] = (((const float *)x->data)[i] - mean[c]) * gam[c] /
		    sqrtf(var[c] + a->epsilon) + bet[c];
	}
}

static const sl_gop fake_bn = { "BatchNormalization", 5, 5, 1, 1, bn_init,
    bn_infer, bn_forward };

/* Conv (with and without B) -> BatchNormalization: the plan folds the BN
 * into the Conv (one node left, the Conv taking a third input) and the
 * values equal conv then BN computed naively. */
static void
test_graph_conv_batchnorm_folded(void **state)
{
	const int64_t xd[4] = { 2, 3, 6, 6 }, wd[4] = { 4, 3, 3, 3 };
	const int64_t cd[1] = { 4 }, pads[4] = { 1, 1, 1, 1 };
	const sl_gattr at[] = {
		{ .name = "pads", .type = SL_GA_INTS, .ints = pads, .n = 4 },
	};
	const sl_gattr bat[] = {
		{ .name = "epsilon", .type = SL_GA_FLOAT, .f = 1e-3f },
	};
	const sl_gattrs a = { at, 1 }, ba = { bat, 1 };
	sl_conv2d_geom ge = GEOM(2, 3, 6, 6, 4, 1, 3, 3, 1, 1, 1, 1, 1, 1);
	float x[2 * 3 * 36], w[4 * 27], b[4], gam[4], bet[4], mean[4], var[4];
	double ref[2 * 4 * 36], mag[2 * 4 * 36];
	sl_rng r;

	(void)state;
	ge.OH = ge.OW = 6;
	sl_rng_seed(&r, 11);
	fill(x, sizeof x / sizeof x[0], &r);
	fill(w, sizeof w / sizeof w[0], &r);
	fill(b, 4, &r);
	fill(gam, 4, &r);
	fill(bet, 4, &r);
	fill(mean, 4, &r);
	fill(var, 4, &r);
	for (int c = 0; c < 4; c++)
		var[c] = var[c] + 1.5f;
	for (int with_b = 0; with_b < 2; with_b++) {
		sl_graph *g;
		sl_errmsg why;
		int io[3], bn[5], mid, y;

		conv_naive(ref, mag, x, w, with_b ? b : NULL, &ge);
		assert_int_equal(sl_g_new(&g), 0);
		io[0] = input(g, "x", 4, xd);
		io[1] = constant(g, "W", 4, wd, w);
		io[2] = constant(g, "B", 1, cd, b);
		mid = tensor(g, "conv_out");
		bn[0] = mid;
		bn[1] = constant(g, "gamma", 1, cd, gam);
		bn[2] = constant(g, "beta", 1, cd, bet);
		bn[3] = constant(g, "mean", 1, cd, mean);
		bn[4] = constant(g, "var", 1, cd, var);
		y = output(g, "y");
		assert_int_equal(sl_g_node_add(g, sl_g_op_find("Conv"), "conv", io,
		    with_b ? 3 : 2, &mid, 1, &a, &why), 0);
		assert_int_equal(sl_g_node_add(g, &fake_bn, "bn", bn, 5, &y, 1, &ba,
		    &why), 0);
		assert_int_equal(sl_g_plan(g, 2, &why), 0);
		assert_int_equal(g->norder, 1);
		assert_string_equal(g->n[g->order[0]].op->name, "Conv");
		assert_int_equal(g->n[g->order[0]].nin, 3);
		g->t[io[0]].data = x;
		assert_int_equal(sl_g_run(g, &why), 0);
		for (size_t i = 0; i < 2 * 4 * 36; i++) {
			const size_t c = i / 36 % 4;
			const double s = (double)gam[c] / sqrt((double)var[c] + 1e-3);
			const double want = (ref[i] - (double)mean[c]) * s +
			    (double)bet[c];
			const double got = ((const float *)g->t[y].data)[i];

			if (!(fabs(got - want) <= 1e-5 * (mag[i] + 1) * fabs(s) +
			    1e-5)) {
				print_error("B %d, index %zu: %.9g vs %.9g\n", with_b, i,
				    got, want);
				fail();
			}
		}
		sl_g_free(&g);
	}
}

/* A hostile geometry: strides and pads of 2^24 on a 1x1 depthwise input
 * give a 3x3 output but a padded plane of 2^50 floats: refused at plan
 * instead of allocated. */
static void
test_graph_conv_hostile_workspace(void **state)
{
	const int64_t xd[4] = { 1, 2, 1, 1 }, wd[4] = { 2, 1, 1, 1 };
	const int64_t st[2] = { 1 << 24, 1 << 24 };
	const int64_t pads[4] = { 1 << 24, 1 << 24, 1 << 24, 1 << 24 };
	const sl_gattr at[] = {
		{ .name = "strides", .type = SL_GA_INTS, .ints = st, .n = 2 },
		{ .name = "pads", .type = SL_GA_INTS, .ints = pads, .n = 4 },
		{ .name = "group", .type = SL_GA_INT, .i = 2 },
	};
	const sl_gattrs a = { at, 3 };
	const float w[2] = { 1, 2 };
	sl_graph *g;
	sl_errmsg why;
	int io[2], y;

	(void)state;
	assert_int_equal(sl_g_new(&g), 0);
	io[0] = input(g, "x", 4, xd);
	io[1] = constant(g, "W", 4, wd, w);
	y = output(g, "y");
	assert_int_equal(sl_g_node_add(g, sl_g_op_find("Conv"), "c", io, 2, &y,
	    1, &a, &why), 0);
	assert_int_equal(sl_g_plan(g, 1, &why), SL_ELIMIT);
	assert_non_null(strstr(why.text, "workspace"));
	sl_g_free(&g);
}

/* The activation fused into each path (im2col per image and scattered,
 * 1x1 per image and batched, depthwise 3x3 and general, grouped), on one
 * and three threads: bit for bit the unfused output with the activation
 * applied after. Inputs reach +-4 so HardSwish sees all three pieces. */
static void
test_conv_fused_act_every_path(void **state)
{
	const sl_conv2d_geom geoms[] = {
		GEOM(3, 8, 14, 14, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1),
		GEOM(40, 16, 7, 7, 16, 1, 3, 3, 1, 1, 1, 1, 1, 1),
		GEOM(4, 16, 16, 16, 24, 1, 1, 1, 1, 1, 1, 1, 0, 0),
		GEOM(4, 16, 7, 7, 24, 1, 1, 1, 1, 1, 1, 1, 0, 0),
		GEOM(16, 32, 14, 14, 32, 32, 3, 3, 2, 2, 1, 1, 1, 1),
		GEOM(2, 4, 13, 17, 8, 4, 5, 3, 1, 3, 2, 1, 3, 0),
		GEOM(8, 16, 14, 14, 32, 2, 3, 3, 1, 1, 1, 1, 1, 1),
	};
	const sl_g_act acts[] = {
		{ SL_G_ACT_RELU, 0, 0 }, { SL_G_ACT_CLIP, 0.0f, 6.0f },
		{ SL_G_ACT_CLIP, -0.5f, 0.25f }, { SL_G_ACT_HARDSWISH, 0, 0 },
	};
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 77);
	for (size_t gi = 0; gi < sizeof geoms / sizeof geoms[0]; gi++) {
		sl_conv2d_geom g = geoms[gi];
		const int PB = g.PT, PR = g.PL;
		size_t nx, nw, ny;
		float *x, *w, *b, *y0, *y1;

		g.OH = out_size(g.H, g.KH, g.SH, g.DH, g.PT, PB);
		g.OW = out_size(g.W, g.KW, g.SW, g.DW, g.PL, PR);
		nx = (size_t)g.B * (size_t)g.C * (size_t)g.H * (size_t)g.W;
		nw = (size_t)g.OC * (size_t)(g.C / g.G) * (size_t)g.KH * (size_t)g.KW;
		ny = (size_t)g.B * (size_t)g.OC * (size_t)g.OH * (size_t)g.OW;
		x = malloc(nx * sizeof *x);
		w = malloc(nw * sizeof *w);
		b = malloc((size_t)g.OC * sizeof *b);
		y0 = malloc(ny * sizeof *y0);
		y1 = malloc(ny * sizeof *y1);
		assert_true(x && w && b && y0 && y1);
		fill(x, nx, &r);
		fill(w, nw, &r);
		fill(b, (size_t)g.OC, &r);
		for (size_t i = 0; i < nx; i++)
			x[i] *= 4.0f;
		for (size_t a = 0; a < sizeof acts / sizeof acts[0]; a++)
			for (int th = 1; th <= 3; th += 2) {
				float *sc;

				g.threads = th;
				sc = malloc(sl_op_conv2d_scratch_bytes(&g) + 4);
				assert_non_null(sc);
				g.act = (sl_g_act){ SL_G_ACT_NONE, 0, 0 };
				sl_op_conv2d_forward(y0, x, w, b, &g, sc);
				sl_g_act_apply(&acts[a], y0, ny);
				g.act = acts[a];
				for (size_t i = 0; i < ny; i++)
					y1[i] = NAN;
				sl_op_conv2d_forward(y1, x, w, b, &g, sc);
				free(sc);
				if (memcmp(y0, y1, ny * sizeof *y0) != 0) {
					print_error("geometry %zu, act %zu, threads %d: "
					    "fused differs\n", gi, a, th);
					fail();
				}
			}
		free(x);
		free(w);
		free(b);
		free(y0);
		free(y1);
	}
}

/* Graph: x -> Conv -> ACT -> y, where ACT is one of Relu, Clip (bounds as
 * constant inputs, ReLU6) and HardSwish. mode 0: nothing else reads the
 * conv's output (fused: one node runs); 1: the conv's output is also a
 * graph output; 2: a Neg reads it too. 1 and 2 must refuse the rewrite
 * (two or three nodes run), and y must be the same bits in all three. */
static void
conv_act_graph(const char *act, int mode, float *y_out /* (2, 4, 6, 6) */)
{
	const int64_t xd[4] = { 2, 3, 6, 6 }, wd[4] = { 4, 3, 3, 3 };
	const int64_t cd[1] = { 4 }, pads[4] = { 1, 1, 1, 1 };
	const sl_gattr at[] = {
		{ .name = "pads", .type = SL_GA_INTS, .ints = pads, .n = 4 },
	};
	const sl_gattrs a = { at, 1 }, none = { NULL, 0 };
	const float lo = 0.0f, hi = 6.0f;
	float x[2 * 3 * 36], w[4 * 27], bias[4];
	sl_graph *g;
	sl_errmsg why;
	sl_rng r;
	int io[3], ain[3], mid, y, y2;

	sl_rng_seed(&r, 5);
	fill(x, sizeof x / sizeof x[0], &r);
	fill(w, sizeof w / sizeof w[0], &r);
	fill(bias, 4, &r);
	for (size_t i = 0; i < sizeof x / sizeof x[0]; i++)
		x[i] *= 3.0f;
	assert_int_equal(sl_g_new(&g), 0);
	io[0] = input(g, "x", 4, xd);
	io[1] = constant(g, "W", 4, wd, w);
	io[2] = constant(g, "B", 1, cd, bias);
	mid = mode == 1 ? output(g, "conv_out") : tensor(g, "conv_out");
	y = output(g, "y");
	ain[0] = mid;
	ain[1] = constant(g, "lo", 0, NULL, &lo);
	ain[2] = constant(g, "hi", 0, NULL, &hi);
	assert_int_equal(sl_g_node_add(g, sl_g_op_find("Conv"), "conv", io, 3,
	    &mid, 1, &a, &why), 0);
	assert_int_equal(sl_g_node_add(g, sl_g_op_find(act), "act", ain,
	    strcmp(act, "Clip") == 0 ? 3 : 1, &y, 1, &none, &why), 0);
	if (mode == 2) {
		y2 = output(g, "y2");
		assert_int_equal(sl_g_node_add(g, sl_g_op_find("Neg"), "neg", &mid,
		    1, &y2, 1, &none, &why), 0);
	}
	assert_int_equal(sl_g_plan(g, 2, &why), 0);
	assert_int_equal(g->norder, mode == 0 ? 1 : mode == 1 ? 2 : 3);
	g->t[io[0]].data = x;
	assert_int_equal(sl_g_run(g, &why), 0);
	memcpy(y_out, g->t[y].data, 2 * 4 * 36 * sizeof(float));
	sl_g_free(&g);
}

static void
test_graph_conv_act_fused(void **state)
{
	const char *const acts[] = { "Relu", "Clip", "HardSwish" };

	(void)state;
	for (size_t k = 0; k < 3; k++) {
		float y[3][2 * 4 * 36];
		int neg = 0, zero = 0;

		for (int mode = 0; mode < 3; mode++)
			conv_act_graph(acts[k], mode, y[mode]);
		assert_memory_equal(y[0], y[1], sizeof y[0]);
		assert_memory_equal(y[0], y[2], sizeof y[0]);
		/* The activation did something: some outputs were clamped. */
		for (size_t i = 0; i < 2 * 4 * 36; i++) {
			zero += y[0][i] == 0.0f;
			neg += y[0][i] < 0.0f;
		}
		assert_true(zero > 0 || neg > 0);
		assert_true(k == 2 || neg == 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conv_fixed_geometries),
		cmocka_unit_test(test_conv_random_geometries),
		cmocka_unit_test(test_window_auto_pad),
		cmocka_unit_test(test_window_bad_attributes),
		cmocka_unit_test(test_graph_conv_onnx_examples),
		cmocka_unit_test(test_graph_conv_runtime_weights),
		cmocka_unit_test(test_graph_conv_refused_at_plan),
		cmocka_unit_test(test_graph_conv_1d),
		cmocka_unit_test(test_graph_conv_batchnorm_folded),
		cmocka_unit_test(test_graph_conv_hostile_workspace),
		cmocka_unit_test(test_conv_fused_act_every_path),
		cmocka_unit_test(test_graph_conv_act_fused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

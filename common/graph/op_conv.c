/* op_conv.c - Conv (ONNX opsets 1..17, 1-D and 2-D) on cblas_sgemm, and
 * the window attributes Conv and the pools share.
 *
 * Conv supports: float32 X (N, C, H, W) or (N, C, L); W (OC, C/group, kh,
 * kw) constant or computed at run time; optional B (OC), also the one the
 * BatchNormalization fold adds; kernel_shape (checked against W), strides,
 * dilations, pads (begins then ends, asymmetric allowed), auto_pad NOTSET,
 * SAME_UPPER, SAME_LOWER, VALID; group, depthwise with any multiplier.
 * Refused, at plan, with the shapes named: 3-D and higher (SL_EUNSUPPORTED),
 * other dtypes (SL_EUNSUPPORTED), W that does not fit X and group, B of
 * another length, a window larger than the padded input (SL_EMISMATCH);
 * at load: strides, dilations or kernel_shape < 1, pads < 0, any over
 * 2^24, an unknown auto_pad (SL_EFORMAT, SL_EUNSUPPORTED).
 *
 * Three paths, chosen from the geometry alone (sl_op_conv2d_forward):
 *   depthwise  G == C > 1 (one input channel per group, any multiplier):
 *              direct, on a zero-padded copy of each input plane, eight
 *              then four outputs at a time accumulating over all taps;
 *   1x1        1x1 kernel, stride 1, no padding, large enough planes
 *              (see DIRECT_MIN_OHW): x is already the GEMM's right operand,
 *              one sgemm per image and group into out, no workspace;
 *   im2col     everything else: a chunk of output rows (b, oh), possibly
 *              spanning several images, is unfolded into (C/G*KH*KW,
 *              rows*OW) columns. Planes of DIRECT_MIN_OHW pixels or more:
 *              one sgemm per image of the chunk straight into out (bias
 *              written first, beta 1). Smaller planes (7x7): one wide sgemm
 *              per chunk into the workspace, scattered to NCHW with the
 *              bias added in the same pass. A chunk is sized to
 *              SL_CONV_CHUNK_BYTES, small enough to stay in one core's L2,
 *              so unfolding, GEMM and scatter read and write cache rather
 *              than memory.
 * Every path applies g->act (a Relu, ReLU6 or HardSwish that fold.c fused
 * into the Conv) to each piece of output right after writing it.
 *
 * Threads: a call on g->threads > 1 splits its work (chunks, images,
 * planes) over that many short-lived threads, each running its part start
 * to end with one-thread GEMMs (sl_g_parallel says why), so no thread waits
 * for another and none outlives the call. glibc reuses the stacks of
 * joined threads, so after the first call nothing is mapped; one
 * pthread_create per call and thread (about 20 us) is all it costs.
 */
#include "graph.h"
#include "kernels_conv.h"

#include <cblas.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* GEMMs per image, straight into out, need planes of DIRECT_MIN_OHW
 * output pixels: narrower ones are slower than one wide GEMM per chunk
 * of rows and a scatter (measured on Zen 3, OpenBLAS 0.3.21, one thread:
 * per-image wins on 14x14 and 28x28 planes, loses on 7x7). Every GEMM
 * runs on one thread (sl_g_parallel), so the rule holds at any thread
 * count. */
#define DIRECT_MIN_OHW 128

/* Four floats: GCC and clang vector extensions, SSE2 on x86-64 and NEON on
 * arm64 without -march flags. Loads and stores go through memcpy (no
 * alignment assumed). */
typedef float v4 __attribute__((vector_size(16)));

static inline v4
v4_load(const float *p)
{
	v4 v;

	memcpy(&v, p, sizeof v);
	return v;
}

static inline void
v4_store(float *p, v4 v)
{
	memcpy(p, &v, sizeof v);
}

/* o[i] = x[i] + b for i < n. */
static void
copy_bias(float *restrict o, const float *restrict x, size_t n, float b)
{
	const v4 bv = { b, b, b, b };
	size_t i = 0;

	for (; i + 4 <= n; i += 4)
		v4_store(o + i, v4_load(x + i) + bv);
	for (; i < n; i++)
		o[i] = x[i] + b;
}

static void
fill(float *o, size_t n, float v)
{
	for (size_t i = 0; i < n; i++)
		o[i] = v;
}

/* The outputs i in [lo, hi) of n_out whose input i * stride + off lies in
 * [0, n_in). */
static void
valid_range(int n_out, int stride, int off, int n_in, int *lo, int *hi)
{
	int a = off >= 0 ? 0 : (-off + stride - 1) / stride;
	int b = n_in - 1 - off < 0 ? 0 : (n_in - 1 - off) / stride + 1;

	if (b > n_out)
		b = n_out;
	if (a > b)
		a = b;
	*lo = a;
	*hi = b;
}

/* Below this many multiply-adds a call runs on one thread: starting one
 * costs tens of microseconds. */
#define PARALLEL_MIN_MACS ((size_t)1 << 21)

static int
threads_for(const sl_conv2d_geom *g)
{
	const size_t macs = (size_t)g->B * (size_t)g->OC * (size_t)g->OH *
	    (size_t)g->OW * (size_t)(g->C / g->G) * (size_t)g->KH *
	    (size_t)g->KW;

	if (g->threads <= 1 || macs < PARALLEL_MIN_MACS)
		return 1;
	return g->threads < SL_CONV_MAX_THREADS ? g->threads : SL_CONV_MAX_THREADS;
}

/* The share [*lo, *hi) of n items for part t of nt. */
static void
share(size_t n, int t, int nt, size_t *lo, size_t *hi)
{
	*lo = n * (size_t)t / (size_t)nt;
	*hi = n * (size_t)(t + 1) / (size_t)nt;
}

static int
is_depthwise(const sl_conv2d_geom *g)
{
	return g->G == g->C && g->G > 1;
}

static int
is_1x1(const sl_conv2d_geom *g)
{
	const size_t hw = (size_t)g->H * (size_t)g->W;

	/* Every GEMM runs on one thread (sl_g_parallel): the one-thread
	 * rule. */
	return g->KH == 1 && g->KW == 1 && g->SH == 1 && g->SW == 1 &&
	    g->PT == 0 && g->PL == 0 && g->OH == g->H && g->OW == g->W &&
	    hw >= DIRECT_MIN_OHW;
}

/* The depthwise path reads a zero-padded copy of each input plane, so that
 * every output has all its taps inside and the loops have no borders:
 * rows (OH-1)*SH + (KH-1)*DH + 1. */
static size_t
depthwise_pad_h(const sl_conv2d_geom *g)
{
	return (size_t)(g->OH - 1) * (size_t)g->SH + (size_t)(g->KH - 1) *
	    (size_t)g->DH + 1;
}

/* Columns: for OW rounded up to a multiple of 4, so that the last partial
 * block of four outputs reads inside the plane too. */
static size_t
depthwise_pad_w(const sl_conv2d_geom *g)
{
	const size_t ow4 = ((size_t)g->OW + 3) & ~(size_t)3;

	return (ow4 - 1) * (size_t)g->SW + (size_t)(g->KW - 1) *
	    (size_t)g->DW + 1;
}

/* Output rows (b, oh) per im2col chunk, >= 1. */
static size_t
chunk_rows(const sl_conv2d_geom *g)
{
	const size_t K = (size_t)(g->C / g->G) * (size_t)g->KH * (size_t)g->KW;
	const size_t per_row = (K + (size_t)(g->OC / g->G)) * (size_t)g->OW *
	    sizeof(float);
	const size_t total = (size_t)g->B * (size_t)g->OH;
	size_t rows = SL_CONV_CHUNK_BYTES / per_row;

	if (rows < 1)
		rows = 1;
	return rows < total ? rows : total;
}

size_t
sl_op_conv2d_scratch_bytes(const sl_conv2d_geom *g)
{
	const size_t K = (size_t)(g->C / g->G) * (size_t)g->KH * (size_t)g->KW;

	if (is_depthwise(g))
		return (size_t)threads_for(g) * depthwise_pad_h(g) *
		    depthwise_pad_w(g) * sizeof(float);
	if (is_1x1(g))
		return 0;
	return (size_t)threads_for(g) * chunk_rows(g) * (size_t)g->OW * (K +
	    (size_t)(g->OC / g->G)) * sizeof(float);
}

static inline v4
v4_gather(const float *x, int stride)
{
	if (stride == 1)
		return v4_load(x);
	return (v4){ x[0], x[stride], x[2 * stride], x[3 * stride] };
}

/* Copy plane xp into the padded plane pad (its borders already zero). */
static void
depthwise_pad(float *restrict pad, const float *restrict xp,
    const sl_conv2d_geom *g)
{
	const size_t Hp = depthwise_pad_h(g), Wp = depthwise_pad_w(g);
	/* Input rows and columns the windows reach (pads may exceed it). */
	const size_t rows = Hp <= (size_t)g->PT ? 0 : Hp - (size_t)g->PT <
	    (size_t)g->H ? Hp - (size_t)g->PT : (size_t)g->H;
	const size_t cols = Wp <= (size_t)g->PL ? 0 : Wp - (size_t)g->PL <
	    (size_t)g->W ? Wp - (size_t)g->PL : (size_t)g->W;

	for (size_t r = 0; r < rows; r++)
		memcpy(pad + (r + (size_t)g->PT) * Wp + (size_t)g->PL,
		    xp + r * (size_t)g->W, cols * sizeof *pad);
}

/* One output plane: op = bias + sum over taps of the padded plane; eight,
 * then four outputs at a time accumulate in registers over all taps (the
 * last block of four may hang over OW: the plane is padded for it). */
static void
depthwise_plane(float *restrict op,  /* (OH, OW) */
    const float *restrict pad,       /* (Hp, Wp) */
    const float *restrict wp,        /* (KH, KW) */
    float bias, const sl_conv2d_geom *g)
{
	const int SW = g->SW, DW = g->DW, KW = g->KW, KH = g->KH;
	const size_t Wp = depthwise_pad_w(g);
	const v4 bv = { bias, bias, bias, bias };

	for (int oh = 0; oh < g->OH; oh++) {
		const float *xr0 = pad + (size_t)oh * (size_t)g->SH * Wp;
		float *orow = op + (size_t)oh * (size_t)g->OW;
		int ow = 0;

		for (; ow + 8 <= g->OW; ow += 8) {
			v4 a0 = bv, a1 = bv;

			for (int kh = 0; kh < KH; kh++) {
				const float *xr = xr0 + (size_t)(kh * g->DH) * Wp +
				    (size_t)(ow * SW);
				const float *wr = wp + kh * KW;

				for (int kw = 0; kw < KW; kw++) {
					const v4 wv = { wr[kw], wr[kw], wr[kw], wr[kw] };
					const float *xk = xr + kw * DW;

					a0 += wv * v4_gather(xk, SW);
					a1 += wv * v4_gather(xk + 4 * SW, SW);
				}
			}
			v4_store(orow + ow, a0);
			v4_store(orow + ow + 4, a1);
		}
		for (; ow < g->OW; ow += 4) {
			v4 a0 = bv;

			for (int kh = 0; kh < KH; kh++) {
				const float *xr = xr0 + (size_t)(kh * g->DH) * Wp +
				    (size_t)(ow * SW);
				const float *wr = wp + kh * KW;

				for (int kw = 0; kw < KW; kw++) {
					const v4 wv = { wr[kw], wr[kw], wr[kw], wr[kw] };

					a0 += wv * v4_gather(xr + kw * DW, SW);
				}
			}
			if (ow + 4 <= g->OW) {
				v4_store(orow + ow, a0);
			} else {
				float t[4];

				v4_store(t, a0);
				memcpy(orow + ow, t, (size_t)(g->OW - ow) * sizeof *t);
			}
		}
	}
}

/* depthwise_plane for the MobileNet cases, 3x3 with stride S of 1 or 2 and
 * no dilation: the nine weights stay in registers for the whole plane and
 * the taps are unrolled. Inlined with a constant S, so each stride gets
 * its own loop. */
static inline void
depthwise_plane_3x3(float *restrict op, /* (OH, OW) */
    const float *restrict pad,          /* (Hp, Wp) */
    const float *restrict wp,           /* (3, 3) */
    float bias, const sl_conv2d_geom *g, const int S)
{
	const size_t Wp = depthwise_pad_w(g);
	const v4 bv = { bias, bias, bias, bias };
	v4 wv[9];

	for (int k = 0; k < 9; k++)
		wv[k] = (v4){ wp[k], wp[k], wp[k], wp[k] };
	for (int oh = 0; oh < g->OH; oh++) {
		const float *r0 = pad + (size_t)oh * (size_t)S * Wp;
		const float *r1 = r0 + Wp, *r2 = r1 + Wp;
		float *orow = op + (size_t)oh * (size_t)g->OW;

		for (int ow = 0; ow < g->OW; ow += 4) {
			const size_t i = (size_t)ow * (size_t)S;
			v4 a = bv;

			a += wv[0] * v4_gather(r0 + i, S) +
			    wv[1] * v4_gather(r0 + i + 1, S) +
			    wv[2] * v4_gather(r0 + i + 2, S);
			a += wv[3] * v4_gather(r1 + i, S) +
			    wv[4] * v4_gather(r1 + i + 1, S) +
			    wv[5] * v4_gather(r1 + i + 2, S);
			a += wv[6] * v4_gather(r2 + i, S) +
			    wv[7] * v4_gather(r2 + i + 1, S) +
			    wv[8] * v4_gather(r2 + i + 2, S);
			if (ow + 4 <= g->OW) {
				v4_store(orow + ow, a);
			} else {
				float t[4];

				v4_store(t, a);
				memcpy(orow + ow, t, (size_t)(g->OW - ow) * sizeof *t);
			}
		}
	}
}

typedef struct dw_job {
	float *out;
	const float *x, *w, *b;
	const sl_conv2d_geom *g;
	float *scratch;
} dw_job;

/* Part t of the (B*C) input planes, each padded once into this part's own
 * plane of the workspace, then filtered by its mult output channels. */
static void
dw_part(void *arg, int t, int nt)
{
	const dw_job *j = arg;
	const sl_conv2d_geom *g = j->g;
	const int mult = g->OC / g->C;
	const size_t HW = (size_t)g->H * (size_t)g->W;
	const size_t OHW = (size_t)g->OH * (size_t)g->OW;
	const size_t padn = depthwise_pad_h(g) * depthwise_pad_w(g);
	float *pad = j->scratch + (size_t)t * padn;
	const int k3 = g->KH == 3 && g->KW == 3 && g->SH == g->SW &&
	    (g->SW == 1 || g->SW == 2) && g->DH == 1 && g->DW == 1;
	size_t lo, hi;

	share((size_t)g->B * (size_t)g->C, t, nt, &lo, &hi);
	memset(pad, 0, padn * sizeof *pad);
	for (size_t pc = lo; pc < hi; pc++) {
		const size_t bi = pc / (size_t)g->C, c = pc % (size_t)g->C;

		depthwise_pad(pad, j->x + pc * HW, g);
		for (int m = 0; m < mult; m++) {
			const size_t oc = c * (size_t)mult + (size_t)m;

			float *op = j->out + (bi * (size_t)g->OC + oc) * OHW;
			const float *wp = j->w + oc * (size_t)g->KH * (size_t)g->KW;
			const float bias = j->b != NULL ? j->b[oc] : 0.0f;

			if (k3 && g->SW == 1)
				depthwise_plane_3x3(op, pad, wp, bias, g, 1);
			else if (k3)
				depthwise_plane_3x3(op, pad, wp, bias, g, 2);
			else
				depthwise_plane(op, pad, wp, bias, g);
			sl_g_act_apply(&g->act, op, OHW);
		}
	}
}

static void
conv_depthwise(float *out,           /* (B, OC, OH, OW) */
    const float *x,                  /* (B, C, H, W) */
    const float *w,                  /* (OC, 1, KH, KW) */
    const float *b,                  /* (OC) or NULL */
    const sl_conv2d_geom *g,
    float *scratch)                  /* threads x (Hp, Wp) */
{
	dw_job j = { out, x, w, b, g, scratch };

	sl_g_parallel(threads_for(g), dw_part, &j);
}

typedef struct one_job {
	float *out;
	const float *x, *w, *b;
	const sl_conv2d_geom *g;
} one_job;

/* Part t of the images: per image and group one sgemm into out, then the
 * activation on the image just written (still in cache). */
static void
one_part(void *arg, int t, int nt)
{
	const one_job *j = arg;
	const sl_conv2d_geom *g = j->g;
	float *out = j->out;
	const float *x = j->x, *w = j->w, *b = j->b;
	const int Cg = g->C / g->G, OCg = g->OC / g->G;
	const size_t HW = (size_t)g->H * (size_t)g->W;
	size_t lo, hi;

	share((size_t)g->B, t, nt, &lo, &hi);
	for (size_t bi = lo; bi < hi; bi++) {
		float *ob = out + bi * (size_t)g->OC * HW;

		if (b != NULL)
			for (int oc = 0; oc < g->OC; oc++)
				fill(ob + (size_t)oc * HW, HW, b[oc]);
		for (int gi = 0; gi < g->G; gi++)
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
			    OCg, (int)HW, Cg, 1.0f,
			    w + (size_t)gi * (size_t)OCg * (size_t)Cg, Cg,
			    x + (bi * (size_t)g->C + (size_t)gi * (size_t)Cg) * HW,
			    (int)HW, b != NULL ? 1.0f : 0.0f,
			    ob + (size_t)gi * (size_t)OCg * HW, (int)HW);
		sl_g_act_apply(&g->act, ob, (size_t)g->OC * HW);
	}
}

static void
conv_1x1(float *out,                 /* (B, OC, H, W) */
    const float *x,                  /* (B, C, H, W) */
    const float *w,                  /* (OC, C/G) */
    const float *b,                  /* (OC) or NULL */
    const sl_conv2d_geom *g)
{
	one_job j = { out, x, w, b, g };

	sl_g_parallel(threads_for(g), one_part, &j);
}

/* dst[i] = src[i * stride] for i < n; rows are short (OW of 7 to 28), so
 * no library calls. */
static inline void
copy_strided(float *restrict dst, const float *restrict src, int n, int stride)
{
	int i = 0;

	if (stride == 1)
		for (; i + 4 <= n; i += 4)
			v4_store(dst + i, v4_load(src + i));
	for (; i < n; i++)
		dst[i] = src[(size_t)i * (size_t)stride];
}

/* dst[i] = 0 for i < n. Most calls clear the one or two columns a pad
 * leaves on each side of a row: written as vector stores and a switch so
 * that GCC does not turn them into memset calls (8% of the ResNet's
 * samples, mostly call overhead for one or two floats). */
static inline void
zero(float *dst, int n)
{
	const v4 z = { 0.0f, 0.0f, 0.0f, 0.0f };
	int i = 0;

	for (; i + 4 <= n; i += 4)
		v4_store(dst + i, z);
	switch (n - i) {
	case 3:
		dst[i + 2] = 0.0f;
		/* fall through */
	case 2:
		dst[i + 1] = 0.0f;
		/* fall through */
	case 1:
		dst[i] = 0.0f;
		break;
	default:
		break;
	}
}

/* Rows k0 .. k1 of col (Cg*KH*KW, nrows*OW): the input patches of output
 * rows r0 .. r0+nrows of the flattened (B*OH) rows, channels c0 .. c0+Cg.
 * Stride 1 with OW == W (the "same" 3x3 and 1x1 convs): the rows of one
 * image that the tap reaches are one contiguous copy, then the columns
 * the tap misses are zeroed. */
static void
im2col_rows(float *restrict col, const float *restrict x,
    const sl_conv2d_geom *g, int c0, size_t r0, size_t nrows, size_t k0,
    size_t k1)
{
	const int OW = g->OW, OH = g->OH;
	const size_t N = nrows * (size_t)OW;
	const size_t HW = (size_t)g->H * (size_t)g->W;
	const int block = g->SH == 1 && g->SW == 1 && OW == g->W;

	for (size_t kr = k0; kr < k1; kr++) {
		const int kw = (int)(kr % (size_t)g->KW);
		const int kh = (int)(kr / (size_t)g->KW % (size_t)g->KH);
		const size_t c = kr / ((size_t)g->KW * (size_t)g->KH);
		const int woff = kw * g->DW - g->PL, hoff = kh * g->DH - g->PT;
		float *dst = col + kr * N;
		int lo, hi, vlo, vhi;
		size_t r = r0;

		valid_range(OW, g->SW, woff, g->W, &lo, &hi);
		valid_range(OH, g->SH, hoff, g->H, &vlo, &vhi);
		while (r < r0 + nrows) {
			const size_t bi = r / (size_t)OH;
			const int oa = (int)(r % (size_t)OH);
			const size_t end = (bi + 1) * (size_t)OH < r0 + nrows ?
			    (bi + 1) * (size_t)OH : r0 + nrows;
			const int ob = oa + (int)(end - r);
			const int va = vlo > oa ? vlo : oa;
			const int vb = vhi < ob ? vhi : ob;
			const float *plane = x + (bi * (size_t)g->C + (size_t)c0 +
			    c) * HW;
			float *d = dst + (r - r0) * (size_t)OW - (size_t)oa *
			    (size_t)OW;   /* d + oh * OW is row oh */

			if (va >= vb || lo >= hi) {
				zero(d + (size_t)oa * (size_t)OW, (ob - oa) * OW);
				r = end;
				continue;
			}
			zero(d + (size_t)oa * (size_t)OW, (va - oa) * OW);
			if (block) {
				memcpy(d + (size_t)va * (size_t)OW + (size_t)lo, plane +
				    (size_t)(va + hoff) * (size_t)g->W +
				    (size_t)(lo + woff), ((size_t)(vb - va - 1) *
				    (size_t)OW + (size_t)(hi - lo)) * sizeof *d);
				for (int oh = va; oh < vb; oh++) {
					zero(d + (size_t)oh * (size_t)OW, lo);
					zero(d + (size_t)oh * (size_t)OW + hi, OW - hi);
				}
			} else {
				for (int oh = va; oh < vb; oh++) {
					float *row = d + (size_t)oh * (size_t)OW;

					zero(row, lo);
					copy_strided(row + lo, plane + (size_t)(oh *
					    g->SH + hoff) * (size_t)g->W +
					    (size_t)(lo * g->SW + woff), hi - lo, g->SW);
					zero(row + hi, OW - hi);
				}
			}
			zero(d + (size_t)vb * (size_t)OW, (ob - vb) * OW);
			r = end;
		}
	}
}

/* Rows o0 .. o1 of tmp (OCg, nrows*OW) -> out's channels oc0 + o for
 * output rows r0 .. r0+nrows, adding the bias and applying the
 * activation on each piece while it is in L1; the rows of one image are
 * contiguous in both. */
static void
scatter_rows(float *out, const float *tmp, const float *b,
    const sl_conv2d_geom *g, int oc0, size_t r0, size_t nrows, size_t o0,
    size_t o1)
{
	const size_t N = nrows * (size_t)g->OW;
	const size_t OHW = (size_t)g->OH * (size_t)g->OW;
	size_t r = r0;

	while (r < r0 + nrows) {
		const size_t bi = r / (size_t)g->OH;
		const size_t oh = r % (size_t)g->OH;
		size_t end = (bi + 1) * (size_t)g->OH;

		if (end > r0 + nrows)
			end = r0 + nrows;
		for (size_t o = o0; o < o1; o++) {
			const size_t oc = (size_t)oc0 + o;

			float *dst = out + (bi * (size_t)g->OC + oc) * OHW +
			    oh * (size_t)g->OW;

			copy_bias(dst, tmp + o * N + (r - r0) * (size_t)g->OW,
			    (end - r) * (size_t)g->OW, b != NULL ? b[oc] : 0.0f);
			sl_g_act_apply(&g->act, dst, (end - r) * (size_t)g->OW);
		}
		r = end;
	}
}

/* Channels oc0 + o, o in [o0, o1), of output rows r0 .. r0+nrows = b. */
static void
bias_rows(float *out, const float *b, const sl_conv2d_geom *g, int oc0,
    size_t r0, size_t nrows, size_t o0, size_t o1)
{
	const size_t OHW = (size_t)g->OH * (size_t)g->OW;
	size_t r = r0;

	while (r < r0 + nrows) {
		const size_t bi = r / (size_t)g->OH;
		const size_t oh = r % (size_t)g->OH;
		size_t end = (bi + 1) * (size_t)g->OH;

		if (end > r0 + nrows)
			end = r0 + nrows;
		for (size_t o = o0; o < o1; o++)
			fill(out + (bi * (size_t)g->OC + (size_t)oc0 + o) * OHW +
			    oh * (size_t)g->OW, (end - r) * (size_t)g->OW,
			    b[(size_t)oc0 + o]);
		r = end;
	}
}

/* The activation on channels oc0 .. oc0+OCg of output rows r0 .. r0+nr
 * (the GEMMs just wrote them: they are in cache). */
static void
act_rows(float *out, const sl_conv2d_geom *g, int oc0, size_t r0, size_t nr)
{
	const size_t OHW = (size_t)g->OH * (size_t)g->OW;
	size_t r = r0;

	if (g->act.kind == SL_G_ACT_NONE)
		return;
	while (r < r0 + nr) {
		const size_t bi = r / (size_t)g->OH;
		const size_t oh = r % (size_t)g->OH;
		size_t end = (bi + 1) * (size_t)g->OH;

		if (end > r0 + nr)
			end = r0 + nr;
		for (int o = 0; o < g->OC / g->G; o++)
			sl_g_act_apply(&g->act, out + (bi * (size_t)g->OC +
			    (size_t)oc0 + (size_t)o) * OHW + oh * (size_t)g->OW,
			    (end - r) * (size_t)g->OW);
		r = end;
	}
}

/* The GEMMs of one unit straight into out, one per image the chunk
 * touches: C is that image's rows of channels oc0 .., ldc = OH*OW. */
static void
gemm_direct(float *out, const float *wg, const float *col,
    const sl_conv2d_geom *g, int oc0, size_t r0, size_t nr, int K,
    float beta)
{
	const int OCg = g->OC / g->G;
	const size_t N = nr * (size_t)g->OW;
	const size_t OHW = (size_t)g->OH * (size_t)g->OW;
	size_t r = r0;

	while (r < r0 + nr) {
		const size_t bi = r / (size_t)g->OH;
		const size_t oh = r % (size_t)g->OH;
		size_t end = (bi + 1) * (size_t)g->OH;

		if (end > r0 + nr)
			end = r0 + nr;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OCg,
		    (int)((end - r) * (size_t)g->OW), K, 1.0f, wg, K,
		    col + (r - r0) * (size_t)g->OW, (int)N, beta,
		    out + (bi * (size_t)g->OC + (size_t)oc0) * OHW + oh *
		    (size_t)g->OW, (int)OHW);
		r = end;
	}
}

typedef struct im2col_job {
	float *out;
	const float *x, *w, *b;
	const sl_conv2d_geom *g;
	float *scratch;              /* nt x (K + OCg, rows * OW) */
	size_t rows;                 /* output rows (b, oh) per chunk */
	int direct;                  /* GEMMs write out: bias first, no tmp */
	atomic_size_t next;          /* the next unit a thread takes */
} im2col_job;

/* The units (chunk u / G, group u % G) thread t takes, each done start
 * to end on this thread with a one-thread sgemm: unfold into col, GEMM,
 * scatter from tmp (or, direct, the GEMM writes out and the activation
 * runs on the rows just written). A unit's col and result stay in this
 * core's cache, and no thread waits for another between the steps.
 * Threads take the next unit as they finish one rather than a fixed
 * share: on a loaded machine one of them may lose its core for a while,
 * and a fixed share would make the call wait for it. */
static void
im2col_part(void *arg, int t, int nt)
{
	im2col_job *j = arg;
	const sl_conv2d_geom *g = j->g;
	const int Cg = g->C / g->G, OCg = g->OC / g->G;
	const int K = Cg * g->KH * g->KW;
	const size_t total = (size_t)g->B * (size_t)g->OH;
	const size_t nunits = (total + j->rows - 1) / j->rows * (size_t)g->G;
	const size_t per = ((size_t)K + (size_t)OCg) * j->rows * (size_t)g->OW;
	float *col = j->scratch + (size_t)t * per;
	float *tmp = col + (size_t)K * j->rows * (size_t)g->OW;
	size_t u;

	(void)nt;
	while ((u = atomic_fetch_add_explicit(&j->next, 1,
	    memory_order_relaxed)) < nunits) {
		const size_t r0 = u / (size_t)g->G * j->rows;
		const size_t nr = total - r0 < j->rows ? total - r0 : j->rows;
		const int gi = (int)(u % (size_t)g->G);
		const float *wg = j->w + (size_t)gi * (size_t)OCg * (size_t)K;
		const int N = (int)(nr * (size_t)g->OW);

		im2col_rows(col, j->x, g, gi * Cg, r0, nr, 0, (size_t)K);
		if (j->direct) {
			if (j->b != NULL)
				bias_rows(j->out, j->b, g, gi * OCg, r0, nr, 0,
				    (size_t)OCg);
			gemm_direct(j->out, wg, col, g, gi * OCg, r0, nr, K,
			    j->b != NULL ? 1.0f : 0.0f);
			act_rows(j->out, g, gi * OCg, r0, nr);
		} else {
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
			    OCg, N, K, 1.0f, wg, K, col, N, 0.0f, tmp, N);
			scatter_rows(j->out, tmp, j->b, g, gi * OCg, r0, nr, 0,
			    (size_t)OCg);
		}
	}
}

static void
conv_im2col(float *out,              /* (B, OC, OH, OW) */
    const float *x,                  /* (B, C, H, W) */
    const float *w,                  /* (OC, C/G, KH, KW) */
    const float *b,                  /* (OC) or NULL */
    const sl_conv2d_geom *g,
    float *scratch)                  /* nt x (K + OCg, chunk_rows * OW) */
{
	im2col_job j = { out, x, w, b, g, scratch, chunk_rows(g),
	    (size_t)g->OH * (size_t)g->OW >= DIRECT_MIN_OHW, 0 };

	atomic_init(&j.next, 0);
	sl_g_parallel(threads_for(g), im2col_part, &j);
}

void
sl_op_conv2d_forward(float *out, const float *x, const float *w,
    const float *b, const sl_conv2d_geom *g, float *scratch)
{
	if (g->B == 0 || g->OC == 0)
		return;
	if (is_depthwise(g))
		conv_depthwise(out, x, w, b, g, scratch);
	else if (is_1x1(g))
		conv_1x1(out, x, w, b, g);
	else
		conv_im2col(out, x, w, b, g, scratch);
}

/* --- window attributes ---------------------------------------------------- */

#define WINDOW_MAX ((int64_t)1 << 24)

static int
window_ints(const sl_gattrs *a, const char *name, int64_t *dst, int max,
    int64_t lo, int *count, sl_errmsg *why)
{
	const int64_t *v;
	size_t n;
	int rc = sl_g_attr_ints(a, name, &v, &n, why);

	*count = 0;
	if (rc <= 0)
		return rc;
	if (n > (size_t)max)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "attribute '%s' has "
		    "%zu values, at most %d handled", name, n, max);
	for (size_t i = 0; i < n; i++) {
		if (v[i] < lo || v[i] > WINDOW_MAX)
			return sl_errmsg_set(why, SL_EFORMAT, "attribute '%s'[%zu] "
			    "is %lld, expected %lld to %lld", name, i,
			    (long long)v[i], (long long)lo, (long long)WINDOW_MAX);
		dst[i] = v[i];
	}
	*count = (int)n;
	return 0;
}

int
sl_op_window_init(sl_op_window *w, const sl_gattrs *a, int has_ceil,
    sl_errmsg *why)
{
	static const char *const modes[] = { "NOTSET", "SAME_UPPER",
	    "SAME_LOWER", "VALID" };
	const char *s;
	size_t len;
	int rc;

	memset(w, 0, sizeof *w);
	if ((rc = window_ints(a, "kernel_shape", w->kernel, SL_OP_MAX_SPATIAL,
	    1, &w->nk, why)) != 0 ||
	    (rc = window_ints(a, "strides", w->strides, SL_OP_MAX_SPATIAL, 1,
	    &w->ns, why)) != 0 ||
	    (rc = window_ints(a, "dilations", w->dilations, SL_OP_MAX_SPATIAL, 1,
	    &w->nd, why)) != 0 ||
	    (rc = window_ints(a, "pads", w->pads, 2 * SL_OP_MAX_SPATIAL, 0,
	    &w->np, why)) != 0)
		return rc;
	if (w->np % 2 != 0)
		return sl_errmsg_set(why, SL_EFORMAT, "attribute 'pads' has %d "
		    "values, expected twice the spatial rank", w->np);
	if ((rc = sl_g_attr_string(a, "auto_pad", &s, &len, why)) < 0)
		return rc;
	if (rc == 1) {
		size_t m;

		for (m = 0; m < sizeof modes / sizeof modes[0]; m++)
			if (strlen(modes[m]) == len && memcmp(modes[m], s, len) == 0)
				break;
		if (m == sizeof modes / sizeof modes[0])
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "auto_pad '%.*s' "
			    "is not NOTSET, SAME_UPPER, SAME_LOWER or VALID",
			    (int)(len > 32 ? 32 : len), s);
		w->auto_pad = (int)m;
	}
	if (has_ceil) {
		int64_t v;

		if ((rc = sl_g_attr_int(a, "ceil_mode", &v, why)) < 0)
			return rc;
		if (rc == 1 && v != 0 && v != 1)
			return sl_errmsg_set(why, SL_EFORMAT, "ceil_mode is %lld, "
			    "expected 0 or 1", (long long)v);
		w->ceil_mode = rc == 1 && v == 1;
	}
	return 0;
}

int
sl_op_window_resolve(const sl_op_window *w, int nsp, const int64_t *in,
    const int64_t *k, int64_t *pad_begin, int64_t *pad_end, int64_t *out,
    sl_errmsg *why)
{
	if ((w->ns != 0 && w->ns != nsp) || (w->nd != 0 && w->nd != nsp) ||
	    (w->np != 0 && w->np != 2 * nsp) || (w->nk != 0 && w->nk != nsp))
		return sl_errmsg_set(why, SL_EMISMATCH, "%d-D input, but "
		    "kernel_shape has %d, strides %d, dilations %d and pads %d "
		    "values", nsp, w->nk, w->ns, w->nd, w->np);
	for (int i = 0; i < nsp; i++) {
		const int64_t s = w->ns ? w->strides[i] : 1;
		const int64_t d = w->dilations[i] && w->nd ? w->dilations[i] : 1;
		const int64_t dk = (k[i] - 1) * d + 1;
		int64_t pb = 0, pe = 0, o;

		switch (w->auto_pad) {
		case SL_OP_PAD_SAME_UPPER:
		case SL_OP_PAD_SAME_LOWER: {
			int64_t total;

			o = (in[i] + s - 1) / s;
			total = (o - 1) * s + dk - in[i];
			if (total < 0)
				total = 0;
			if (w->auto_pad == SL_OP_PAD_SAME_UPPER)
				pb = total / 2;
			else
				pb = total - total / 2;
			pe = total - pb;
			break;
		}
		case SL_OP_PAD_VALID:
			if (in[i] < dk)
				goto small;
			o = (in[i] - dk) / s + 1;
			break;
		default: {
			int64_t span;

			pb = w->np ? w->pads[i] : 0;
			pe = w->np ? w->pads[nsp + i] : 0;
			span = in[i] + pb + pe - dk;
			if (span < 0)
				goto small;
			o = (w->ceil_mode ? (span + s - 1) / s : span / s) + 1;
			/* PyTorch's and ONNX Runtime's rule: the last window
			 * starts inside the input or its begin pad. */
			if (w->ceil_mode && (o - 1) * s >= in[i] + pb)
				o--;
			break;
		}
		}
		if (pb > WINDOW_MAX || pe > WINDOW_MAX)
			return sl_errmsg_set(why, SL_ELIMIT, "spatial axis %d: "
			    "pads %lld + %lld are over %lld", i, (long long)pb,
			    (long long)pe, (long long)WINDOW_MAX);
		pad_begin[i] = pb;
		pad_end[i] = pe;
		out[i] = o;
		continue;
small:
		return sl_errmsg_set(why, SL_EMISMATCH, "spatial axis %d: input "
		    "%lld is smaller than the dilated kernel %lld with pads "
		    "%lld + %lld", i, (long long)in[i], (long long)dk,
		    (long long)(w->np ? w->pads[i] : 0),
		    (long long)(w->np ? w->pads[nsp + i] : 0));
	}
	return 0;
}

/* --- the Conv op ------------------------------------------------------------ */

typedef struct conv_attr {
	sl_op_window win;
	int64_t group;
	int plan_threads;       /* OpenBLAS's thread count at the first infer */
	sl_conv2d_geom geom;    /* resolved by infer, read by forward */
} conv_attr;

static int
conv_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	conv_attr *c;
	int rc;

	(void)g;
	if ((c = calloc(1, sizeof *c)) == NULL)
		return SL_ENOMEM;
	n->attr = c;
	if ((rc = sl_op_window_init(&c->win, a, 0, why)) != 0)
		return rc;
	c->group = 1;
	if ((rc = sl_g_attr_int(a, "group", &c->group, why)) < 0)
		return rc;
	if (c->group < 1 || c->group > INT_MAX)
		return sl_errmsg_set(why, SL_EFORMAT, "group is %lld",
		    (long long)c->group);
	return 0;
}

/* Dimensions the kernels index with int: up to 2^30, so that positions
 * plus pads (under 2^24 each) never overflow. */
#define DIM_MAX ((int64_t)1 << 30)
#define SCRATCH_MAX ((size_t)1 << 30)

static int
fits_int(const int64_t *v, int n)
{
	for (int i = 0; i < n; i++)
		if (v[i] < 0 || v[i] > DIM_MAX)
			return 0;
	return 1;
}

static int
conv_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	conv_attr *c = n->attr;
	const sl_gtensor *X = sl_g_in(g, n, 0), *W = sl_g_in(g, n, 1);
	const sl_gtensor *B = sl_g_in(g, n, 2);
	char xs[96], ws[96];
	int64_t in[2], k[2], pb[2], pe[2], o[2], dims[4];
	int nsp, rc, threads;

	if (X == NULL || W == NULL)
		return sl_errmsg_set(why, SL_EFORMAT, "inputs X and W are "
		    "required");
	if (X->dtype != SL_G_F32 || W->dtype != SL_G_F32 ||
	    (B != NULL && B->dtype != SL_G_F32))
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "only float32 X, W "
		    "and B are supported");
	sl_g_shape_str(X, xs, sizeof xs);
	sl_g_shape_str(W, ws, sizeof ws);
	if (X->rank > 4)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "%d-D convolution "
		    "(X %s) is not supported, only 1-D and 2-D", X->rank - 2, xs);
	if (X->rank < 3)
		return sl_errmsg_set(why, SL_EMISMATCH, "X %s: expected (N, C, "
		    "H, W) or (N, C, L)", xs);
	if (W->rank != X->rank)
		return sl_errmsg_set(why, SL_EMISMATCH, "W %s does not have the "
		    "rank of X %s", ws, xs);
	nsp = X->rank - 2;
	if (X->dims[1] % c->group != 0 || W->dims[0] % c->group != 0 ||
	    W->dims[1] * c->group != X->dims[1] || X->dims[1] == 0 ||
	    W->dims[0] == 0)
		return sl_errmsg_set(why, SL_EMISMATCH, "W %s does not fit X %s "
		    "with group %lld: W must be (OC, C/group, ...) with C and "
		    "OC multiples of group", ws, xs, (long long)c->group);
	for (int i = 0; i < nsp; i++) {
		in[i] = X->dims[2 + i];
		k[i] = W->dims[2 + i];
		if (k[i] == 0 || (c->win.nk != 0 && c->win.nk == nsp &&
		    c->win.kernel[i] != k[i]))
			return sl_errmsg_set(why, SL_EMISMATCH, "W %s does not "
			    "match kernel_shape", ws);
	}
	if (B != NULL && (B->rank != 1 || B->dims[0] != W->dims[0])) {
		char bs[96];

		return sl_errmsg_set(why, SL_EMISMATCH, "B %s: expected [%lld] "
		    "for W %s", sl_g_shape_str(B, bs, sizeof bs),
		    (long long)W->dims[0], ws);
	}
	if ((rc = sl_op_window_resolve(&c->win, nsp, in, k, pb, pe, o,
	    why)) != 0)
		return rc;
	dims[0] = X->dims[0];
	dims[1] = W->dims[0];
	dims[2] = o[0];
	if (nsp == 2)
		dims[3] = o[1];
	if (!fits_int(X->dims, X->rank) || !fits_int(W->dims, W->rank) ||
	    !fits_int(dims, X->rank) || (int64_t)(sl_g_numel(W) /
	    (size_t)W->dims[0]) > DIM_MAX)
		return sl_errmsg_set(why, SL_ELIMIT, "X %s or W %s is over %lld "
		    "in one dimension or per filter", xs, ws,
		    (long long)DIM_MAX);
	if ((rc = sl_g_set_shape(sl_g_out(g, n, 0), SL_G_F32, X->rank, dims,
	    why)) != 0)
		return rc;
	/* The workspace planned at the first infer (plan) must do for every
	 * run: a later run uses at most the threads counted then. */
	threads = openblas_get_num_threads();
	if (c->plan_threads == 0)
		c->plan_threads = threads > 0 ? threads : 1;
	if (threads > c->plan_threads)
		threads = c->plan_threads;
	c->geom = (sl_conv2d_geom){
		.threads = threads,
		.B = (int)X->dims[0], .C = (int)X->dims[1],
		.H = nsp == 2 ? (int)in[0] : 1, .W = (int)in[nsp - 1],
		.OC = (int)W->dims[0], .G = (int)c->group,
		.KH = nsp == 2 ? (int)k[0] : 1, .KW = (int)k[nsp - 1],
		.SH = nsp == 2 && c->win.ns ? (int)c->win.strides[0] : 1,
		.SW = c->win.ns ? (int)c->win.strides[nsp - 1] : 1,
		.DH = nsp == 2 && c->win.nd ? (int)c->win.dilations[0] : 1,
		.DW = c->win.nd ? (int)c->win.dilations[nsp - 1] : 1,
		.PT = nsp == 2 ? (int)pb[0] : 0, .PL = (int)pb[nsp - 1],
		.OH = nsp == 2 ? (int)o[0] : 1, .OW = (int)o[nsp - 1],
		.act = n->act,
	};
	n->scratch_bytes = sl_op_conv2d_scratch_bytes(&c->geom);
	/* Real layers need SL_CONV_CHUNK_BYTES and a row; only a file that
	 * pads and dilates to extremes asks for more than this. */
	if (n->scratch_bytes > SCRATCH_MAX)
		return sl_errmsg_set(why, SL_ELIMIT, "X %s, W %s: the workspace "
		    "would be %zu bytes, over %zu", xs, ws, n->scratch_bytes,
		    SCRATCH_MAX);
	return 0;
}

static void
conv_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const conv_attr *c = n->attr;
	const sl_gtensor *B = sl_g_in(g, n, 2);

	sl_op_conv2d_forward(sl_g_out(g, n, 0)->data, sl_g_in(g, n, 0)->data,
	    sl_g_in(g, n, 1)->data, B != NULL ? B->data : NULL, &c->geom,
	    scratch);
}

const sl_gop sl_g_ops_conv[] = {
	{ "Conv", 2, 3, 1, 1, conv_init, conv_infer, conv_forward },
	{ NULL, 0, 0, 0, 0, NULL, NULL, NULL },
};

/* op_pool.c - MaxPool, AveragePool (1-D, 2-D, 3-D), GlobalAveragePool and
 * GlobalMaxPool (any spatial rank), float32, ONNX opsets 1..17.
 *
 * Windows are walked tap by tap over an output plane that stays in L1,
 * as in the depthwise conv: for each kernel position the rows and columns
 * it reaches inside x are computed once, and the inner loop runs four
 * floats at a time; a 3-D window folds in the 2-D windows of the input
 * planes its depth taps reach. Padding never enters a max; an average
 * divides by the positions counted (count_include_pad).
 *
 * Refused: MaxPool's second output Indices (at load), other dtypes than
 * float32 and 4-D or higher windows (at plan, SL_EUNSUPPORTED); a window
 * larger than the padded input (SL_EMISMATCH). storage_order is accepted
 * and ignored (it only orders Indices). */
#include "graph.h"
#include "kernels_conv.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef float v4 __attribute__((vector_size(16)));
typedef int32_t v4i __attribute__((vector_size(16)));

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

/* max that keeps a NaN from either side: the window's maximum is NaN if
 * any element is (numpy's and ONNX's reference). */
static inline v4
v4_max(v4 a, v4 b)
{
	const v4i take_b = (b > a) | (b != b);

	return (v4)(((v4i)a & ~take_b) | ((v4i)b & take_b));
}

static inline float
max1(float a, float b)
{
	return b > a || b != b ? b : a;
}

static inline v4
v4_gather(const float *x, int stride)
{
	if (stride == 1)
		return v4_load(x);
	return (v4){ x[0], x[stride], x[2 * stride], x[3 * stride] };
}

/* o[i] = max(o[i], x[i * stride]) or o[i] += x[i * stride], i < n. */
static void
row_max(float *restrict o, const float *restrict x, int n, int stride)
{
	int i = 0;

	for (; i + 4 <= n; i += 4)
		v4_store(o + i, v4_max(v4_load(o + i),
		    v4_gather(x + (size_t)i * (size_t)stride, stride)));
	for (; i < n; i++)
		o[i] = max1(o[i], x[(size_t)i * (size_t)stride]);
}

static void
row_add(float *restrict o, const float *restrict x, int n, int stride)
{
	int i = 0;

	for (; i + 4 <= n; i += 4)
		v4_store(o + i, v4_load(o + i) +
		    v4_gather(x + (size_t)i * (size_t)stride, stride));
	for (; i < n; i++)
		o[i] += x[(size_t)i * (size_t)stride];
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

/* floor(a / b) and ceil(a / b) for b > 0 and any a. */
static int64_t
floor_div(int64_t a, int64_t b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

static int64_t
ceil_div(int64_t a, int64_t b)
{
	return a >= 0 ? (a + b - 1) / b : -(-a / b);
}

/* Taps k < K of a window starting at start (dilation d) that land in
 * [lo, hi): constant time, since a hostile kernel_shape may be 2^24. */
static int
taps_in(int start, int d, int K, int lo, int hi)
{
	int64_t a = ceil_div((int64_t)lo - start, d);
	int64_t b = floor_div((int64_t)hi - 1 - start, d);

	if (a < 0)
		a = 0;
	if (b > K - 1)
		b = K - 1;
	return b >= a ? (int)(b - a + 1) : 0;
}

/* The taps k of K (dilation d) that reach [0, n_in) for some output
 * position o * s - p, o < n_out: the loops skip the rest, so a window far
 * larger than its input costs only the taps that read it. */
static void
tap_range(int K, int d, int p, int s, int n_out, int n_in, int *klo,
    int *khi)
{
	int64_t a = ceil_div((int64_t)p - (int64_t)(n_out - 1) * s, d);
	int64_t b = floor_div((int64_t)p + n_in - 1, d) + 1;

	if (a < 0)
		a = 0;
	if (b > K)
		b = K;
	*klo = (int)a;
	*khi = (int)(b > a ? b : a);
}

/* Fold the plane xp into the output plane op tap by tap (max or sum). */
static void
pool_plane(float *restrict op,       /* (OH, OW) */
    const float *restrict xp,        /* (H, W) */
    const sl_pool2d_geom *g, int is_max)
{
	int kh0, kh1, kw0, kw1;

	tap_range(g->KH, g->DH, g->PT, g->SH, g->OH, g->H, &kh0, &kh1);
	tap_range(g->KW, g->DW, g->PL, g->SW, g->OW, g->W, &kw0, &kw1);
	for (int kh = kh0; kh < kh1; kh++) {
		const int hoff = kh * g->DH - g->PT;
		int hlo, hhi;

		valid_range(g->OH, g->SH, hoff, g->H, &hlo, &hhi);
		for (int kw = kw0; kw < kw1; kw++) {
			const int woff = kw * g->DW - g->PL;
			int wlo, whi;

			valid_range(g->OW, g->SW, woff, g->W, &wlo, &whi);
			if (wlo >= whi)
				continue;
			for (int oh = hlo; oh < hhi; oh++) {
				float *o = op + (size_t)oh * (size_t)g->OW +
				    (size_t)wlo;
				const float *xr = xp + (size_t)(oh * g->SH + hoff) *
				    (size_t)g->W + (size_t)(wlo * g->SW + woff);

				if (is_max)
					row_max(o, xr, whi - wlo, g->SW);
				else
					row_add(o, xr, whi - wlo, g->SW);
			}
		}
	}
}

/* Every output plane (p, od) starts at init; each input plane id its
 * depth window reaches folds in. */
static void
pool_taps(float *out, const float *x, const sl_pool2d_geom *g, float init,
    int is_max)
{
	const size_t HW = (size_t)g->H * (size_t)g->W;
	const size_t OHW = (size_t)g->OH * (size_t)g->OW;

	for (size_t p = 0; p < g->N; p++)
		for (int od = 0; od < g->OD; od++) {
			float *op = out + (p * (size_t)g->OD + (size_t)od) * OHW;

			for (size_t i = 0; i < OHW; i++)
				op[i] = init;
			int kd0, kd1;

			tap_range(g->KD, g->DD, g->PF - od * g->SD, 1, 1, g->D, &kd0,
			    &kd1);
			for (int kd = kd0; kd < kd1; kd++) {
				const int id = od * g->SD - g->PF + kd * g->DD;

				if (id >= 0 && id < g->D)
					pool_plane(op, x + (p * (size_t)g->D +
					    (size_t)id) * HW, g, is_max);
			}
		}
}

/* Input columns a row buffer of the 3x3 stride-2 fast path holds. */
#define POOL3_MAX_W 1024

/* The fast path's geometry: 2-D, 3x3, stride 2, no dilation, pads of at
 * most 1 (ResNet's stem, MaxPool2d(3, 2, 1)), rows that fit the buffer. */
static int
is_pool3s2(const sl_pool2d_geom *g)
{
	return g->D == 1 && g->KD == 1 && g->OD == 1 && g->KH == 3 &&
	    g->KW == 3 && g->SH == 2 && g->SW == 2 && g->DH == 1 && g->DW == 1 &&
	    g->PT <= 1 && g->PL <= 1 && g->W + 4 <= POOL3_MAX_W;
}

/* One plane of the fast path. Per output row: the element-wise max of
 * the (up to three) input rows its windows cover, contiguous and four at
 * a time, into row[1 ..] with -inf around it; then each output the max of
 * three neighbours of that row. Each input is read about 1.5 times
 * instead of nine strided taps over the output. max1 and v4_max keep
 * NaN, and max is exact, so the order of the taps does not matter. */
static void
pool3s2_plane(float *restrict op,    /* (OH, OW) */
    const float *restrict xp,        /* (H, W) */
    const sl_pool2d_geom *g)
{
	float row[POOL3_MAX_W];
	const int W = g->W;

	for (int i = 0; i < W + 4; i++)
		row[i] = -INFINITY;
	for (int oh = 0; oh < g->OH; oh++) {
		const int h0 = oh * 2 - g->PT;
		float *o = op + (size_t)oh * (size_t)g->OW;
		int first = 1;

		for (int kh = 0; kh < 3; kh++) {
			const int h = h0 + kh;

			if (h < 0 || h >= g->H)
				continue;
			if (first)
				memcpy(row + 1, xp + (size_t)h * (size_t)W,
				    (size_t)W * sizeof *row);
			else
				row_max(row + 1, xp + (size_t)h * (size_t)W, W, 1);
			first = 0;
		}
		if (first) {            /* every row in the padding */
			for (int ow = 0; ow < g->OW; ow++)
				o[ow] = -INFINITY;
			continue;
		}
		/* Output ow covers columns 2 ow - PL + {0, 1, 2}: row[2 ow -
		 * PL + 1 + k]. */
		for (int ow = 0; ow < g->OW; ow++) {
			const float *r = row + 2 * ow - g->PL + 1;

			o[ow] = max1(max1(r[0], r[1]), r[2]);
		}
	}
}

void
sl_op_maxpool2d_forward(float *out, const float *x, const sl_pool2d_geom *g)
{
	if (is_pool3s2(g)) {
		const size_t HW = (size_t)g->H * (size_t)g->W;
		const size_t OHW = (size_t)g->OH * (size_t)g->OW;

		for (size_t p = 0; p < g->N; p++)
			pool3s2_plane(out + p * OHW, x + p * HW, g);
		return;
	}
	pool_taps(out, x, g, -INFINITY, 1);
}

void
sl_op_avgpool2d_forward(float *out, const float *x, const sl_pool2d_geom *g,
    int count_include_pad)
{
	const size_t OHW = (size_t)g->OH * (size_t)g->OW;
	const size_t ODHW = (size_t)g->OD * OHW;
	const int dlo = count_include_pad ? -g->PF : 0;
	const int dhi = count_include_pad ? g->D + g->PK : g->D;
	const int hlo = count_include_pad ? -g->PT : 0;
	const int hhi = count_include_pad ? g->H + g->PB : g->H;
	const int wlo = count_include_pad ? -g->PL : 0;
	const int whi = count_include_pad ? g->W + g->PR : g->W;

	pool_taps(out, x, g, 0.0f, 0);
	/* Divisors are products of per-axis counts; they are the same for
	 * every plane, so the loop runs over planes innermost. */
	for (int od = 0; od < g->OD; od++) {
		const int nd = taps_in(od * g->SD - g->PF, g->DD, g->KD, dlo, dhi);

		for (int oh = 0; oh < g->OH; oh++) {
			const int64_t nh = (int64_t)nd * taps_in(oh * g->SH - g->PT,
			    g->DH, g->KH, hlo, hhi);

			for (int ow = 0; ow < g->OW; ow++) {
				/* Counts reach 2^72 in a hostile 3-D window:
				 * float, exact for any window below 2^24. */
				const float cnt = (float)nh * (float)taps_in(ow *
				    g->SW - g->PL, g->DW, g->KW, wlo, whi);
				/* A window wholly in the padding averages
				 * nothing: 0. */
				const float inv = cnt > 0 ? 1.0f / cnt : 0.0f;
				float *o = out + (size_t)od * OHW + (size_t)oh *
				    (size_t)g->OW + (size_t)ow;

				for (size_t p = 0; p < g->N; p++)
					o[p * ODHW] *= inv;
			}
		}
	}
}

void
sl_op_globalavgpool_forward(float *out, const float *x, size_t N, size_t S)
{
	const float inv = 1.0f / (float)S;

	for (size_t p = 0; p < N; p++) {
		const float *xp = x + p * S;
		v4 acc = { 0, 0, 0, 0 };
		float s;
		size_t i = 0;

		for (; i + 4 <= S; i += 4)
			acc += v4_load(xp + i);
		s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
		for (; i < S; i++)
			s += xp[i];
		out[p] = s * inv;
	}
}

void
sl_op_globalmaxpool_forward(float *out, const float *x, size_t N, size_t S)
{
	for (size_t p = 0; p < N; p++) {
		const float *xp = x + p * S;
		v4 acc = { -INFINITY, -INFINITY, -INFINITY, -INFINITY };
		float m;
		size_t i = 0;

		for (; i + 4 <= S; i += 4)
			acc = v4_max(acc, v4_load(xp + i));
		m = max1(max1(acc[0], acc[1]), max1(acc[2], acc[3]));
		for (; i < S; i++)
			m = max1(m, xp[i]);
		out[p] = m;
	}
}

/* --- the ops ----------------------------------------------------------------- */

enum { POOL_MAX, POOL_AVG };

typedef struct pool_attr {
	int kind;               /* POOL_MAX, POOL_AVG */
	int count_include_pad;
	sl_op_window win;
	sl_pool2d_geom geom;    /* resolved by infer, read by forward */
} pool_attr;

static int
pool_init(sl_gnode *n, const sl_gattrs *a, int kind, sl_errmsg *why)
{
	pool_attr *p;
	int64_t v;
	int rc;

	if ((p = calloc(1, sizeof *p)) == NULL)
		return SL_ENOMEM;
	n->attr = p;
	p->kind = kind;
	if ((rc = sl_op_window_init(&p->win, a, 1, why)) != 0)
		return rc;
	if (p->win.nk == 0)
		return sl_errmsg_set(why, SL_EFORMAT, "attribute 'kernel_shape' "
		    "is required");
	if (kind == POOL_MAX) {
		if (n->nout > 1)
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "the second "
			    "output (Indices) is not supported");
		if ((rc = sl_g_attr_int(a, "storage_order", &v, why)) < 0)
			return rc;
		/* storage_order only orders Indices, which are refused. */
		if (rc == 1 && v != 0 && v != 1)
			return sl_errmsg_set(why, SL_EFORMAT, "storage_order is "
			    "%lld, expected 0 or 1", (long long)v);
	} else {
		if ((rc = sl_g_attr_int(a, "count_include_pad", &v, why)) < 0)
			return rc;
		if (rc == 1 && v != 0 && v != 1)
			return sl_errmsg_set(why, SL_EFORMAT, "count_include_pad "
			    "is %lld, expected 0 or 1", (long long)v);
		p->count_include_pad = rc == 1 && v == 1;
	}
	return 0;
}

static int
maxpool_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	(void)g;
	return pool_init(n, a, POOL_MAX, why);
}

static int
avgpool_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	(void)g;
	return pool_init(n, a, POOL_AVG, why);
}

#define DIM_MAX ((int64_t)1 << 30)

static int
pool_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	pool_attr *p = n->attr;
	const sl_gtensor *X = sl_g_in(g, n, 0);
	char xs[96];
	int64_t pb[3], pe[3], o[3], dims[5];
	int nsp, d, h, rc;

	if (X->dtype != SL_G_F32)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "only float32 X is "
		    "supported");
	sl_g_shape_str(X, xs, sizeof xs);
	if (X->rank > 5)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "%d-D pooling (X %s) "
		    "is not supported, only 1-D, 2-D and 3-D", X->rank - 2, xs);
	if (X->rank < 3)
		return sl_errmsg_set(why, SL_EMISMATCH, "X %s: expected (N, C, "
		    "D, H, W), (N, C, H, W) or (N, C, L)", xs);
	nsp = X->rank - 2;
	for (int i = 0; i < X->rank; i++)
		if (X->dims[i] > DIM_MAX)
			return sl_errmsg_set(why, SL_ELIMIT, "X %s has a dimension "
			    "over %lld", xs, (long long)DIM_MAX);
	if ((rc = sl_op_window_resolve(&p->win, nsp, X->dims + 2,
	    p->win.kernel, pb, pe, o, why)) != 0)
		return rc;
	dims[0] = X->dims[0];
	dims[1] = X->dims[1];
	for (int i = 0; i < nsp; i++)
		dims[2 + i] = o[i];
	if ((rc = sl_g_set_shape(sl_g_out(g, n, 0), SL_G_F32, X->rank, dims,
	    why)) != 0)
		return rc;
	/* Spatial axes: depth d and height h when present (-1 otherwise),
	 * width last. */
	d = nsp - 3;
	h = nsp - 2;
#define AXIS(a, v, dflt) ((a) >= 0 ? (int)(v) : (dflt))
	p->geom = (sl_pool2d_geom){
		.N = (size_t)X->dims[0] * (size_t)X->dims[1],
		.D = AXIS(d, X->dims[2 + d], 1),
		.KD = AXIS(d, p->win.kernel[d], 1),
		.SD = AXIS(d, p->win.ns ? p->win.strides[d] : 1, 1),
		.DD = AXIS(d, p->win.nd ? p->win.dilations[d] : 1, 1),
		.PF = AXIS(d, pb[d], 0), .PK = AXIS(d, pe[d], 0),
		.OD = AXIS(d, o[d], 1),
		.H = AXIS(h, X->dims[2 + h], 1),
		.KH = AXIS(h, p->win.kernel[h], 1),
		.SH = AXIS(h, p->win.ns ? p->win.strides[h] : 1, 1),
		.DH = AXIS(h, p->win.nd ? p->win.dilations[h] : 1, 1),
		.PT = AXIS(h, pb[h], 0), .PB = AXIS(h, pe[h], 0),
		.OH = AXIS(h, o[h], 1),
		.W = (int)X->dims[X->rank - 1],
		.KW = (int)p->win.kernel[nsp - 1],
		.SW = p->win.ns ? (int)p->win.strides[nsp - 1] : 1,
		.DW = p->win.nd ? (int)p->win.dilations[nsp - 1] : 1,
		.PL = (int)pb[nsp - 1], .PR = (int)pe[nsp - 1],
		.OW = (int)o[nsp - 1],
	};
#undef AXIS
	return 0;
}

static void
pool_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const pool_attr *p = n->attr;
	float *y = sl_g_out(g, n, 0)->data;
	const float *x = sl_g_in(g, n, 0)->data;

	(void)scratch;
	if (p->kind == POOL_MAX)
		sl_op_maxpool2d_forward(y, x, &p->geom);
	else
		sl_op_avgpool2d_forward(y, x, &p->geom, p->count_include_pad);
}

/* Global pools: any rank >= 3; the output keeps the rank, spatial dims 1. */
static int
global_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *X = sl_g_in(g, n, 0);
	int64_t dims[SL_G_MAX_RANK];
	char xs[96];

	if (X->dtype != SL_G_F32)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "only float32 X is "
		    "supported");
	if (X->rank < 3)
		return sl_errmsg_set(why, SL_EMISMATCH, "X %s: expected (N, C, "
		    "spatial...)", sl_g_shape_str(X, xs, sizeof xs));
	for (int i = 2; i < X->rank; i++)
		if (X->dims[i] == 0)
			return sl_errmsg_set(why, SL_EMISMATCH, "X %s: an empty "
			    "spatial axis has no mean or max",
			    sl_g_shape_str(X, xs, sizeof xs));
	dims[0] = X->dims[0];
	dims[1] = X->dims[1];
	for (int i = 2; i < X->rank; i++)
		dims[i] = 1;
	return sl_g_set_shape(sl_g_out(g, n, 0), SL_G_F32, X->rank, dims, why);
}

static void
global_sizes(const sl_gtensor *X, size_t *N, size_t *S)
{
	*N = (size_t)X->dims[0] * (size_t)X->dims[1];
	*S = 1;
	for (int i = 2; i < X->rank; i++)
		*S *= (size_t)X->dims[i];
}

static void
globalavg_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const sl_gtensor *X = sl_g_in(g, n, 0);
	size_t N, S;

	(void)scratch;
	global_sizes(X, &N, &S);
	sl_op_globalavgpool_forward(sl_g_out(g, n, 0)->data, X->data, N, S);
}

static void
globalmax_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const sl_gtensor *X = sl_g_in(g, n, 0);
	size_t N, S;

	(void)scratch;
	global_sizes(X, &N, &S);
	sl_op_globalmaxpool_forward(sl_g_out(g, n, 0)->data, X->data, N, S);
}

const sl_gop sl_g_ops_pool[] = {
	{ "MaxPool", 1, 1, 1, 2, maxpool_init, pool_infer, pool_forward },
	{ "AveragePool", 1, 1, 1, 1, avgpool_init, pool_infer, pool_forward },
	{ "GlobalAveragePool", 1, 1, 1, 1, NULL, global_infer,
	    globalavg_forward },
	{ "GlobalMaxPool", 1, 1, 1, 1, NULL, global_infer, globalmax_forward },
	{ NULL, 0, 0, 0, 0, NULL, NULL, NULL },
};

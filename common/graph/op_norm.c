/* op_norm.c - normalizations and reductions: BatchNormalization
 * (inference), LayerNormalization, InstanceNormalization, Softmax,
 * LogSoftmax and the Reduce* family.
 *
 * Precision: every mean, variance and reduction sum accumulates in double
 * (LayerNorm rows of 64-768 values, softmax denominators, ReduceMean over
 * a ViT's tokens): the whole-model check against PyTorch is 1e-5 on
 * probabilities, tighter than float sums over hundreds of terms give.
 * Reductions keep one double per output element in the node's scratch.
 */
#include "graph.h"
#include "kernels_norm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int64_t
opset_of(const sl_graph *g)
{
	return g->opset > 0 ? g->opset : 17;
}

static const char *
dtype_name(int dt)
{
	switch (dt) {
	case SL_G_F32: return "FLOAT";
	case SL_G_I64: return "INT64";
	case SL_G_BOOL: return "BOOL";
	case 10: return "FLOAT16";
	case 11: return "DOUBLE";
	case 16: return "BFLOAT16";
	default: return "an integer or other type";
	}
}

static int
need_f32(const sl_gtensor *t, const char *what, sl_errmsg *why)
{
	if (t->dtype != SL_G_F32)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "%s has type %s (%d): "
		    "FLOAT only", what, dtype_name(t->dtype), t->dtype);
	return 0;
}

/* axis in [-rank, rank) (or [-rank, rank] when end_ok) to [0, rank). */
static int
norm_axis(int64_t axis, int rank, const sl_gtensor *x, sl_errmsg *why)
{
	char s[96];

	if (axis < -rank || axis >= rank)
		return sl_errmsg_set(why, SL_EMISMATCH, "axis %lld is out of range "
		    "for input %s", (long long)axis, sl_g_shape_str(x, s,
		    sizeof s));
	return (int)(axis < 0 ? axis + rank : axis);
}

static int64_t
prod(const int64_t *d, int from, int to)
{
	int64_t p = 1;

	for (int i = from; i < to; i++)
		p *= d[i];
	return p;
}

/* --- BatchNormalization ------------------------------------------------------ */

/* n->attr starts with sl_g_bn_attr: fold.c reads epsilon through it. */
typedef struct bn_attr {
	sl_g_bn_attr bn;
} bn_attr;

static int
bn_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	bn_attr *at;
	int64_t v;
	int rc;

	(void)g;
	if ((at = calloc(1, sizeof *at)) == NULL)
		return SL_ENOMEM;
	n->attr = at;
	at->bn.epsilon = 1e-5f;
	if ((rc = sl_g_attr_float(a, "epsilon", &at->bn.epsilon, why)) < 0)
		return rc;
	if ((rc = sl_g_attr_int(a, "training_mode", &v, why)) < 0)
		return rc;
	if (rc == 1 && v != 0)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "training_mode=%lld: "
		    "BatchNormalization runs for inference only", (long long)v);
	if ((rc = sl_g_attr_int(a, "spatial", &v, why)) < 0)
		return rc;
	if (rc == 1 && v == 0)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "spatial=0 "
		    "(per-activation statistics) is not supported");
	if (n->nout > 1)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "%d outputs: the "
		    "running and saved statistics are training outputs; only Y "
		    "is supported", n->nout);
	return 0;
}

static int
bn_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	static const char *const names[] = { "X", "scale", "B", "mean", "var" };
	const sl_gtensor *x = sl_g_in(g, n, 0);
	char s[96], sx[96];
	int rc;

	for (int j = 0; j < 5; j++) {
		const sl_gtensor *p = sl_g_in(g, n, j);

		if (p == NULL)
			return sl_errmsg_set(why, SL_EFORMAT, "input %s is missing",
			    names[j]);
		if ((rc = need_f32(p, names[j], why)) != 0)
			return rc;
		if (j > 0 && (x->rank < 2 || p->rank != 1 ||
		    p->dims[0] != x->dims[1]))
			return sl_errmsg_set(why, SL_EMISMATCH, "%s %s does not "
			    "fit X %s: (C) for X (N, C, ...) expected", names[j],
			    sl_g_shape_str(p, s, sizeof s), sl_g_shape_str(x, sx,
			    sizeof sx));
	}
	return sl_g_set_shape(sl_g_out(g, n, 0), SL_G_F32, x->rank, x->dims,
	    why);
}

void
sl_op_batchnorm_forward(float *y, /* (N, C, S) */ const float *x, /* (N, C, S) */
    const float *scale, const float *bias, const float *mean,
    const float *var, /* each (C) */ int64_t N, int64_t C, int64_t S,
    float eps)
{
	for (int64_t b = 0; b < N; b++)
		for (int64_t c = 0; c < C; c++) {
			const float s = (float)((double)scale[c] /
			    sqrt((double)var[c] + (double)eps));
			const float m = mean[c], t = bias[c];
			const float *px = x + (b * C + c) * S;
			float *py = y + (b * C + c) * S;

			for (int64_t i = 0; i < S; i++)
				py[i] = (px[i] - m) * s + t;
		}
}

static void
bn_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const bn_attr *at = n->attr;
	const sl_gtensor *x = sl_g_in(g, n, 0);

	(void)scratch;
	sl_op_batchnorm_forward(sl_g_out(g, n, 0)->data, x->data,
	    sl_g_in(g, n, 1)->data, sl_g_in(g, n, 2)->data,
	    sl_g_in(g, n, 3)->data, sl_g_in(g, n, 4)->data, x->dims[0],
	    x->dims[1], prod(x->dims, 2, x->rank), at->bn.epsilon);
}

/* --- InstanceNormalization --------------------------------------------------- */

typedef struct eps_attr {
	float epsilon;
	int64_t axis;           /* LayerNormalization */
} eps_attr;

static int
in_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	eps_attr *at;
	int rc;

	(void)g;
	if ((at = calloc(1, sizeof *at)) == NULL)
		return SL_ENOMEM;
	n->attr = at;
	at->epsilon = 1e-5f;
	rc = sl_g_attr_float(a, "epsilon", &at->epsilon, why);
	return rc < 0 ? rc : 0;
}

static int
in_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	char s[96], sx[96];
	int rc;

	if ((rc = need_f32(x, "input", why)) != 0)
		return rc;
	if (x->rank < 3)
		return sl_errmsg_set(why, SL_EMISMATCH, "input %s: (N, C, D1, "
		    "...) expected", sl_g_shape_str(x, sx, sizeof sx));
	for (int j = 1; j < 3; j++) {
		const sl_gtensor *p = sl_g_in(g, n, j);

		if ((rc = need_f32(p, j == 1 ? "scale" : "B", why)) != 0)
			return rc;
		if (p->rank != 1 || p->dims[0] != x->dims[1])
			return sl_errmsg_set(why, SL_EMISMATCH, "%s %s does not "
			    "fit input %s", j == 1 ? "scale" : "B",
			    sl_g_shape_str(p, s, sizeof s), sl_g_shape_str(x, sx,
			    sizeof sx));
	}
	return sl_g_set_shape(sl_g_out(g, n, 0), SL_G_F32, x->rank, x->dims,
	    why);
}

/* Mean and 1/sqrt(variance + eps) of x[0..len), two passes in double. */
static void
moments(const float *x, int64_t len, double eps, double *mean, double *inv)
{
	double s = 0.0, q = 0.0;

	for (int64_t i = 0; i < len; i++)
		s += (double)x[i];
	s /= (double)(len > 0 ? len : 1);
	for (int64_t i = 0; i < len; i++) {
		const double d = (double)x[i] - s;

		q += d * d;
	}
	q /= (double)(len > 0 ? len : 1);
	*mean = s;
	*inv = 1.0 / sqrt(q + eps);
}

static void
instancenorm_forward(float *y, /* (N, C, S) */ const float *x, /* (N, C, S) */
    const float *scale, const float *bias, /* (C) */ int64_t N, int64_t C,
    int64_t S, float eps)
{
	for (int64_t r = 0; r < N * C; r++) {
		const float *px = x + r * S;
		float *py = y + r * S;
		double m, inv;

		moments(px, S, (double)eps, &m, &inv);
		{
			const double s = inv * (double)scale[r % C];
			const double t = (double)bias[r % C];

			for (int64_t i = 0; i < S; i++)
				py[i] = (float)(((double)px[i] - m) * s + t);
		}
	}
}

static void
in_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const eps_attr *at = n->attr;
	const sl_gtensor *x = sl_g_in(g, n, 0);

	(void)scratch;
	instancenorm_forward(sl_g_out(g, n, 0)->data, x->data,
	    sl_g_in(g, n, 1)->data, sl_g_in(g, n, 2)->data, x->dims[0],
	    x->dims[1], prod(x->dims, 2, x->rank), at->epsilon);
}

/* --- LayerNormalization ------------------------------------------------------ */

static int
ln_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	eps_attr *at;
	int64_t stash = 1;
	int rc;

	(void)g;
	if ((at = calloc(1, sizeof *at)) == NULL)
		return SL_ENOMEM;
	n->attr = at;
	at->epsilon = 1e-5f;
	at->axis = -1;
	if ((rc = sl_g_attr_float(a, "epsilon", &at->epsilon, why)) < 0 ||
	    (rc = sl_g_attr_int(a, "axis", &at->axis, why)) < 0 ||
	    (rc = sl_g_attr_int(a, "stash_type", &stash, why)) < 0)
		return rc;
	/* stash_type is the type of Mean and InvStdDev (and of the
	 * computation, which runs in double here anyway). */
	if (stash != 1 && n->nout > 1)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "stash_type=%lld with "
		    "Mean/InvStdDev outputs: FLOAT (1) only", (long long)stash);
	return 0;
}

/* Scale and B broadcast over X's dims [axis, rank): right-aligned, each
 * dim equal or 1. */
static int
ln_param_ok(const sl_gtensor *p, const sl_gtensor *x, int axis)
{
	if (p->rank > x->rank - axis)
		return 0;
	for (int i = 0; i < p->rank; i++) {
		const int64_t d = p->dims[i], e = x->dims[x->rank - p->rank + i];

		if (d != e && d != 1)
			return 0;
	}
	return 1;
}

static int
ln_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const eps_attr *at = n->attr;
	const sl_gtensor *x = sl_g_in(g, n, 0);
	int64_t dims[SL_G_MAX_RANK];
	size_t m;
	int axis, rc;

	if ((rc = need_f32(x, "X", why)) != 0)
		return rc;
	if ((axis = norm_axis(at->axis, x->rank, x, why)) < 0)
		return axis;
	m = (size_t)prod(x->dims, axis, x->rank);
	n->scratch_bytes = 0;
	for (int j = 1; j < 3; j++) {
		const sl_gtensor *p = sl_g_in(g, n, j);
		char s[96], sx[96];

		if (p == NULL)
			continue;
		if ((rc = need_f32(p, j == 1 ? "Scale" : "B", why)) != 0)
			return rc;
		if (!ln_param_ok(p, x, axis))
			return sl_errmsg_set(why, SL_EMISMATCH, "%s %s does not "
			    "broadcast to the normalized dims of X %s from axis "
			    "%d", j == 1 ? "Scale" : "B", sl_g_shape_str(p, s,
			    sizeof s), sl_g_shape_str(x, sx, sizeof sx), axis);
		if (sl_g_numel(p) != m)
			n->scratch_bytes += m * sizeof(float);
	}
	if ((rc = sl_g_set_shape(sl_g_out(g, n, 0), SL_G_F32, x->rank, x->dims,
	    why)) != 0)
		return rc;
	memcpy(dims, x->dims, sizeof dims);
	for (int i = axis; i < x->rank; i++)
		dims[i] = 1;
	for (int j = 1; j < n->nout; j++)
		if ((rc = sl_g_set_shape(sl_g_out(g, n, j), SL_G_F32, x->rank,
		    dims, why)) != 0)
			return rc;
	return 0;
}

/* y[r] = (x[r] - mean) / sqrt(var + eps) * scale + bias over rows of M;
 * mean and inv (optional) get each row's mean and 1/sqrt(var + eps). */
static void
layernorm_forward(float *y, /* (R, M) */ float *mean, float *inv, /* (R) */
    const float *x, /* (R, M) */ const float *scale, /* (M) */
    const float *bias, /* (M) or NULL */ int64_t R, int64_t M, float eps)
{
	for (int64_t r = 0; r < R; r++) {
		const float *px = x + r * M;
		float *py = y + r * M;
		double m, is;

		moments(px, M, (double)eps, &m, &is);
		if (bias != NULL)
			for (int64_t i = 0; i < M; i++)
				py[i] = (float)(((double)px[i] - m) * is) * scale[i] +
				    bias[i];
		else
			for (int64_t i = 0; i < M; i++)
				py[i] = (float)(((double)px[i] - m) * is) * scale[i];
		if (mean != NULL)
			mean[r] = (float)m;
		if (inv != NULL)
			inv[r] = (float)is;
	}
}

/* p broadcast to the trailing shape dims[axis..rank) into out (M). */
static void
expand_param(float *out, const sl_gtensor *p, const sl_gtensor *x, int axis)
{
	const int r = x->rank - axis;
	const int off = r - p->rank;
	const float *v = p->data;
	const size_t m = (size_t)prod(x->dims, axis, x->rank);

	for (size_t i = 0; i < m; i++) {
		size_t rem = i, src = 0, st = 1;

		for (int d = r - 1; d >= 0; d--) {
			const size_t e = (size_t)x->dims[axis + d];
			const size_t k = rem % e;

			rem /= e;
			if (d >= off && p->dims[d - off] != 1) {
				src += k * st;
				st *= (size_t)p->dims[d - off];
			}
		}
		out[i] = v[src];
	}
}

static void
ln_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const eps_attr *at = n->attr;
	const sl_gtensor *x = sl_g_in(g, n, 0);
	const sl_gtensor *sc = sl_g_in(g, n, 1), *b = sl_g_in(g, n, 2);
	const int axis = (int)(at->axis < 0 ? at->axis + x->rank : at->axis);
	const int64_t M = prod(x->dims, axis, x->rank);
	const float *ps = sc->data, *pb = b != NULL ? b->data : NULL;
	float *w = scratch;

	if (sl_g_numel(sc) != (size_t)M) {
		expand_param(w, sc, x, axis);
		ps = w;
		w += M;
	}
	if (b != NULL && sl_g_numel(b) != (size_t)M) {
		expand_param(w, b, x, axis);
		pb = w;
	}
	layernorm_forward(sl_g_out(g, n, 0)->data,
	    n->nout > 1 ? sl_g_out(g, n, 1)->data : NULL,
	    n->nout > 2 ? sl_g_out(g, n, 2)->data : NULL, x->data, ps, pb,
	    prod(x->dims, 0, axis), M, at->epsilon);
}

/* --- Softmax, LogSoftmax --------------------------------------------------- */

typedef struct sm_attr {
	int64_t axis;
	int coerce_2d;          /* opset < 13: flatten to 2-D at axis */
	int log;
} sm_attr;

static int
sm_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	sm_attr *at;
	int rc;

	if ((at = calloc(1, sizeof *at)) == NULL)
		return SL_ENOMEM;
	n->attr = at;
	at->coerce_2d = opset_of(g) < 13;
	at->axis = at->coerce_2d ? 1 : -1;
	at->log = strcmp(n->op->name, "LogSoftmax") == 0;
	rc = sl_g_attr_int(a, "axis", &at->axis, why);
	return rc < 0 ? rc : 0;
}

static int
sm_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sm_attr *at = n->attr;
	const sl_gtensor *x = sl_g_in(g, n, 0);
	int rc;

	if ((rc = need_f32(x, "input", why)) != 0)
		return rc;
	/* Before opset 13, axis == rank is allowed (a (N, 1) view). */
	if (!(at->coerce_2d && at->axis == x->rank) &&
	    (rc = norm_axis(at->axis, x->rank, x, why)) < 0)
		return rc;
	return sl_g_set_shape(sl_g_out(g, n, 0), SL_G_F32, x->rank, x->dims,
	    why);
}

/* Along the middle axis of (outer, len, inner), max-subtracted:
 * softmax y = exp(x - max) / sum, log-softmax y = x - max - log(sum).
 * The sum accumulates in double. */
static void
softmax_rows_forward(float *y, /* (rows, len) */ const float *x, /* (rows, len) */
    int64_t rows, int64_t len, int log_out)
{
	for (int64_t r = 0; r < rows; r++) {
		const float *px = x + r * len;
		float *py = y + r * len;
		float mx = -INFINITY;
		double sum = 0.0;

		for (int64_t i = 0; i < len; i++)
			mx = px[i] > mx ? px[i] : mx;
		if (log_out) {
			float ls;

			for (int64_t i = 0; i < len; i++)
				sum += (double)expf(px[i] - mx);
			ls = (float)log(sum);
			for (int64_t i = 0; i < len; i++)
				py[i] = px[i] - mx - ls;
		} else {
			float is;

			for (int64_t i = 0; i < len; i++) {
				const float e = expf(px[i] - mx);

				py[i] = e;
				sum += (double)e;
			}
			is = (float)(1.0 / sum);
			for (int64_t i = 0; i < len; i++)
				py[i] *= is;
		}
	}
}

static void
softmax_forward(float *y, /* (outer, len, inner) */
    const float *x, /* (outer, len, inner) */ int64_t outer, int64_t len,
    int64_t inner, int log_out)
{
	if (inner == 1) {
		/* The common case (last axis, or the old 2-D coercion):
		 * contiguous rows. */
		softmax_rows_forward(y, x, outer, len, log_out);
		return;
	}
	for (int64_t o = 0; o < outer; o++)
		for (int64_t j = 0; j < inner; j++) {
			const float *px = x + o * len * inner + j;
			float *py = y + o * len * inner + j;
			float mx = -INFINITY;
			double sum = 0.0;

			for (int64_t i = 0; i < len; i++)
				mx = px[i * inner] > mx ? px[i * inner] : mx;
			if (log_out) {
				float ls;

				for (int64_t i = 0; i < len; i++)
					sum += (double)expf(px[i * inner] - mx);
				ls = (float)log(sum);
				for (int64_t i = 0; i < len; i++)
					py[i * inner] = px[i * inner] - mx - ls;
			} else {
				float is;

				for (int64_t i = 0; i < len; i++) {
					const float e = expf(px[i * inner] - mx);

					py[i * inner] = e;
					sum += (double)e;
				}
				is = (float)(1.0 / sum);
				for (int64_t i = 0; i < len; i++)
					py[i * inner] *= is;
			}
		}
}

static void
sm_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const sm_attr *at = n->attr;
	const sl_gtensor *x = sl_g_in(g, n, 0);
	const int axis = (int)(at->axis < 0 ? at->axis + x->rank : at->axis);
	int64_t outer = prod(x->dims, 0, axis), len, inner;

	(void)scratch;
	if (at->coerce_2d) {
		len = prod(x->dims, axis, x->rank);
		inner = 1;
	} else {
		len = x->dims[axis];
		inner = prod(x->dims, axis + 1, x->rank);
	}
	if (outer * len * inner == 0)
		return;
	softmax_forward(sl_g_out(g, n, 0)->data, x->data, outer, len, inner,
	    at->log);
}

/* --- Reduce* --------------------------------------------------------------- */

enum rkind {
	R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_SUMSQ, R_L2, R_L1, R_LOGSUM,
	R_LOGSUMEXP,
};

static const struct {
	const char *name;
	int kind;
} rkinds[] = {
	{ "ReduceSum", R_SUM }, { "ReduceMean", R_MEAN }, { "ReduceMax", R_MAX },
	{ "ReduceMin", R_MIN }, { "ReduceProd", R_PROD },
	{ "ReduceSumSquare", R_SUMSQ }, { "ReduceL2", R_L2 },
	{ "ReduceL1", R_L1 }, { "ReduceLogSum", R_LOGSUM },
	{ "ReduceLogSumExp", R_LOGSUMEXP },
};

typedef struct red_attr {
	int kind;
	int keepdims;
	int noop_empty;         /* noop_with_empty_axes */
	int naxes;              /* -1: none given (reduce all) */
	int64_t axes[SL_G_MAX_RANK];
	/* From infer, for forward: */
	unsigned char reduce[SL_G_MAX_RANK]; /* per input dim */
	int noop;               /* this run copies */
} red_attr;

static int
red_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	red_attr *at;
	const int64_t *ax;
	size_t nax;
	int64_t v;
	int rc;

	(void)g;
	if ((at = calloc(1, sizeof *at)) == NULL)
		return SL_ENOMEM;
	n->attr = at;
	for (size_t i = 0; i < sizeof rkinds / sizeof rkinds[0]; i++)
		if (strcmp(rkinds[i].name, n->op->name) == 0)
			at->kind = rkinds[i].kind;
	at->keepdims = 1;
	at->naxes = -1;
	if ((rc = sl_g_attr_int(a, "keepdims", &v, why)) < 0)
		return rc;
	if (rc == 1)
		at->keepdims = v != 0;
	if ((rc = sl_g_attr_int(a, "noop_with_empty_axes", &v, why)) < 0)
		return rc;
	if (rc == 1)
		at->noop_empty = v != 0;
	if ((rc = sl_g_attr_ints(a, "axes", &ax, &nax, why)) < 0)
		return rc;
	if (rc == 1) {
		if (n->nin > 1)
			return sl_errmsg_set(why, SL_EFORMAT, "axes given both as "
			    "an attribute and as an input");
		if (nax > SL_G_MAX_RANK)
			return sl_errmsg_set(why, SL_ELIMIT, "%zu axes", nax);
		at->naxes = (int)nax;
		memcpy(at->axes, ax, nax * sizeof *ax);
	}
	return 0;
}

static int
red_int_ok(int kind)
{
	return kind == R_SUM || kind == R_MAX || kind == R_MIN || kind == R_PROD;
}

static int
red_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	red_attr *at = n->attr;
	const sl_gtensor *x = sl_g_in(g, n, 0);
	const sl_gtensor *ta = sl_g_in(g, n, 1);
	const int64_t *axes = at->axes;
	int64_t dims[SL_G_MAX_RANK];
	int naxes = at->naxes, rank = 0;
	char s[96];

	if (x->dtype != SL_G_F32 && !(x->dtype == SL_G_I64 &&
	    red_int_ok(at->kind)))
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "input has type %s "
		    "(%d): FLOAT%s only", dtype_name(x->dtype), x->dtype,
		    red_int_ok(at->kind) ? " and INT64" : "");
	if (ta != NULL) {
		if (ta->dtype != SL_G_I64 || ta->rank > 1 ||
		    sl_g_numel(ta) > SL_G_MAX_RANK)
			return sl_errmsg_set(why, SL_EMISMATCH, "axes %s of type "
			    "%d: a 1-D INT64 tensor of at most %d axes expected",
			    sl_g_shape_str(ta, s, sizeof s), ta->dtype,
			    SL_G_MAX_RANK);
		if ((axes = sl_g_i64(g, ta)) == NULL)
			return sl_errmsg_set(why, SL_EINVAL, "axes '%s' are not "
			    "known at plan time", ta->name);
		naxes = (int)sl_g_numel(ta);
	}
	memset(at->reduce, 0, sizeof at->reduce);
	at->noop = 0;
	if (naxes <= 0) {
		/* No axes: all of them, or none with noop_with_empty_axes. */
		at->noop = at->noop_empty;
		for (int i = 0; i < x->rank; i++)
			at->reduce[i] = !at->noop;
	}
	for (int k = 0; k < naxes; k++) {
		int a = norm_axis(axes[k], x->rank, x, why);

		if (a < 0)
			return a;
		if (at->reduce[a])
			return sl_errmsg_set(why, SL_EMISMATCH, "axis %lld is "
			    "given twice", (long long)axes[k]);
		at->reduce[a] = 1;
	}
	for (int i = 0; i < x->rank; i++) {
		if (!at->reduce[i])
			dims[rank++] = x->dims[i];
		else if (at->keepdims)
			dims[rank++] = 1;
	}
	{
		const int rc = sl_g_set_shape(sl_g_out(g, n, 0), x->dtype, rank,
		    dims, why);

		if (rc != 0)
			return rc;
	}
	if (x->dtype == SL_G_F32 && !at->noop)
		n->scratch_bytes = sl_g_numel(sl_g_out(g, n, 0)) * sizeof(double);
	return 0;
}

/* Accumulate x (total) (contiguous, coalesced dims cd[0..cr) alternating
 * kept and reduced, cred[] flags) into acc (output elements, strides
 * ost[] over cd, 0 along reduced runs): for
 * each element, s = acc[o]; STEP; acc[o] = s, with v the element. The
 * innermost run is either reduced (one accumulator over contiguous x) or
 * kept (contiguous accumulators): both are tight loops. */
#define RED_LOOP(NAME, TX, TA, STEP)                                         \
static void                                                                  \
NAME(TA *acc, const TX *x, const int64_t *cd, const int *cred,               \
    const int64_t *ost, int cr, size_t total)                                \
{                                                                            \
	const int64_t inner = cd[cr - 1];                                    \
	int64_t idx[SL_G_MAX_RANK] = { 0 }, o = 0;                           \
                                                                             \
	for (size_t done = 0; done < total; done += (size_t)inner) {         \
		const TX *px = x + done;                                     \
                                                                             \
		if (cred[cr - 1]) {                                          \
			TA s = acc[o];                                       \
                                                                             \
			for (int64_t i = 0; i < inner; i++) {                \
				const TX v = px[i];                          \
				STEP;                                        \
			}                                                    \
			acc[o] = s;                                          \
		} else {                                                     \
			for (int64_t i = 0; i < inner; i++) {                \
				const TX v = px[i];                          \
				TA s = acc[o + i];                           \
				STEP;                                        \
				acc[o + i] = s;                              \
			}                                                    \
		}                                                            \
		for (int d = cr - 2; d >= 0; d--) {                          \
			o += ost[d];                                         \
			if (++idx[d] < cd[d])                                \
				break;                                       \
			o -= ost[d] * cd[d];                                 \
			idx[d] = 0;                                          \
		}                                                            \
	}                                                                    \
}

RED_LOOP(red_sum_f32, float, double, s += (double)v)
RED_LOOP(red_sq_f32, float, double, s += (double)v * (double)v)
RED_LOOP(red_abs_f32, float, double, s += fabs((double)v))
RED_LOOP(red_exp_f32, float, double, s += exp((double)v))
RED_LOOP(red_prod_f32, float, double, s *= (double)v)
RED_LOOP(red_max_f32, float, double, s = ((double)v > s || v != v) ? (double)v : s)
RED_LOOP(red_min_f32, float, double, s = ((double)v < s || v != v) ? (double)v : s)
RED_LOOP(red_sum_i64, int64_t, int64_t, s = (int64_t)((uint64_t)s + (uint64_t)v))
RED_LOOP(red_prod_i64, int64_t, int64_t, s = (int64_t)((uint64_t)s * (uint64_t)v))
RED_LOOP(red_max_i64, int64_t, int64_t, s = v > s ? v : s)
RED_LOOP(red_min_i64, int64_t, int64_t, s = v < s ? v : s)

static void
red_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const red_attr *at = n->attr;
	const sl_gtensor *x = sl_g_in(g, n, 0);
	sl_gtensor *y = sl_g_out(g, n, 0);
	const size_t total = sl_g_numel(x), nout = sl_g_numel(y);
	int64_t cd[SL_G_MAX_RANK], ost[SL_G_MAX_RANK];
	int cred[SL_G_MAX_RANK], cr = 0;
	const int k = at->kind;

	if (at->noop) {
		memcpy(y->data, x->data, total * sl_g_dtype_size(x->dtype));
		return;
	}
	/* Coalesce: drop size-1 dims, merge neighbours alike. */
	for (int i = 0; i < x->rank; i++) {
		if (x->dims[i] == 1)
			continue;
		if (cr > 0 && cred[cr - 1] == at->reduce[i]) {
			cd[cr - 1] *= x->dims[i];
		} else {
			cd[cr] = x->dims[i];
			cred[cr++] = at->reduce[i];
		}
	}
	if (cr == 0) {
		cd[0] = 1;
		cred[cr++] = 0;
	}
	{
		int64_t s = 1;

		for (int i = cr - 1; i >= 0; i--) {
			ost[i] = cred[i] ? 0 : s;
			s *= cred[i] ? 1 : cd[i];
		}
	}
	if (x->dtype == SL_G_I64) {
		int64_t *acc = y->data;
		const int64_t init = k == R_PROD ? 1 : k == R_MAX ? INT64_MIN :
		    k == R_MIN ? INT64_MAX : 0;

		for (size_t o = 0; o < nout; o++)
			acc[o] = init;
		if (total == 0)
			return;
		switch (k) {
		case R_SUM: red_sum_i64(acc, x->data, cd, cred, ost, cr, total); break;
		case R_PROD: red_prod_i64(acc, x->data, cd, cred, ost, cr, total); break;
		case R_MAX: red_max_i64(acc, x->data, cd, cred, ost, cr, total); break;
		default: red_min_i64(acc, x->data, cd, cred, ost, cr, total); break;
		}
		return;
	}
	{
		double *acc = scratch;
		float *py = y->data;
		const double init = k == R_PROD ? 1.0 : k == R_MAX ? -(double)INFINITY :
		    k == R_MIN ? (double)INFINITY : 0.0;
		const double cnt = nout > 0 ? (double)(total / nout) : 1.0;

		for (size_t o = 0; o < nout; o++)
			acc[o] = init;
		if (total > 0) {
			switch (k) {
			case R_SUM: case R_MEAN: case R_LOGSUM:
				red_sum_f32(acc, x->data, cd, cred, ost, cr, total);
				break;
			case R_SUMSQ: case R_L2:
				red_sq_f32(acc, x->data, cd, cred, ost, cr, total);
				break;
			case R_L1:
				red_abs_f32(acc, x->data, cd, cred, ost, cr, total);
				break;
			case R_LOGSUMEXP:
				red_exp_f32(acc, x->data, cd, cred, ost, cr, total);
				break;
			case R_PROD:
				red_prod_f32(acc, x->data, cd, cred, ost, cr, total);
				break;
			case R_MAX:
				red_max_f32(acc, x->data, cd, cred, ost, cr, total);
				break;
			default:
				red_min_f32(acc, x->data, cd, cred, ost, cr, total);
				break;
			}
		}
		for (size_t o = 0; o < nout; o++) {
			double v = acc[o];

			switch (k) {
			case R_MEAN: v /= cnt; break;
			case R_L2: v = sqrt(v); break;
			case R_LOGSUM: case R_LOGSUMEXP: v = log(v); break;
			default: break;
			}
			py[o] = (float)v;
		}
	}
}

#define RED(name) { name, 1, 2, 1, 1, red_init, red_infer, red_forward }

const sl_gop sl_g_ops_norm[] = {
	{ "BatchNormalization", 5, 5, 1, 5, bn_init, bn_infer, bn_forward },
	{ "InstanceNormalization", 3, 3, 1, 1, in_init, in_infer, in_forward },
	{ "LayerNormalization", 2, 3, 1, 3, ln_init, ln_infer, ln_forward },
	{ "Softmax", 1, 1, 1, 1, sm_init, sm_infer, sm_forward },
	{ "LogSoftmax", 1, 1, 1, 1, sm_init, sm_infer, sm_forward },
	RED("ReduceSum"), RED("ReduceMean"), RED("ReduceMax"), RED("ReduceMin"),
	RED("ReduceProd"), RED("ReduceSumSquare"), RED("ReduceL2"),
	RED("ReduceL1"), RED("ReduceLogSum"), RED("ReduceLogSumExp"),
	{ NULL, 0, 0, 0, 0, NULL, NULL, NULL },
};

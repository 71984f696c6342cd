/* op_eltwise.c - element-wise ops: unary activations and math, Clip, Cast,
 * Identity, Dropout (inference), Not; binary and variadic arithmetic,
 * comparisons and logic with ONNX's multidirectional (numpy) broadcasting;
 * Where.
 *
 * Dtypes: float32 everywhere; int64 where exporters compute shapes with the
 * op (Add, Sub, Mul, Div, Pow, Max, Min, Sum, Abs, Neg, Sign, Clip,
 * comparisons, Where, Cast, Identity); bool for Not, And, Or, Xor, Equal,
 * Where, Cast, Identity.
 *
 * Broadcasting: forward right-aligns every input's shape on the output's,
 * gives a broadcast dimension stride 0, drops size-1 dimensions and merges
 * neighbours that every input walks the same way ("coalescing"). What is
 * left ends in one dimension along which each input has stride 1 or 0, so
 * same-shape, scalar and per-channel ((N, C, H, W) op (1, C, 1, 1): inner
 * H*W with the channel's value fixed) cases all run as tight inner loops;
 * an odometer over the outer dimensions handles every other shape. This
 * costs O(rank) per forward, on the stack: nothing is allocated.
 *
 * Integer semantics (int64): +, -, * wrap modulo 2^64 (no undefined
 * behaviour on hostile constants); Div truncates toward zero as ONNX's
 * reference (numpy divide, then a cast back) does; x / 0 gives 0 and
 * INT64_MIN / -1 gives INT64_MIN (the reference leaves both undefined).
 * Float to int64 casts truncate and saturate; NaN gives INT64_MIN (what
 * x86's cvttss2si gives).
 */
#include "graph.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

enum kind {
	/* unary float */
	K_RELU, K_LEAKYRELU, K_ELU, K_SELU, K_SIGMOID, K_TANH, K_EXP, K_LOG,
	K_ABS, K_NEG, K_SQRT, K_RECIPROCAL, K_ERF, K_FLOOR, K_CEIL,
	K_SOFTPLUS, K_HARDSIGMOID, K_HARDSWISH, K_CLIP, K_THRESHRELU, K_CELU,
	K_SOFTSIGN, K_SIGN,
	/* pass-through and conversions */
	K_IDENTITY, K_DROPOUT, K_CAST, K_NOT,
	/* binary */
	K_ADD, K_SUB, K_MUL, K_DIV, K_POW, K_MAX, K_MIN, K_MEAN, K_SUM,
	K_EQUAL, K_LESS, K_GREATER, K_LESSEQ, K_GREATEREQ,
	K_AND, K_OR, K_XOR, K_WHERE, K_PRELU,
};

static const struct {
	const char *name;
	int kind;
} kinds[] = {
	{ "Relu", K_RELU }, { "LeakyRelu", K_LEAKYRELU }, { "Elu", K_ELU },
	{ "Selu", K_SELU }, { "Sigmoid", K_SIGMOID }, { "Tanh", K_TANH },
	{ "Exp", K_EXP }, { "Log", K_LOG }, { "Abs", K_ABS }, { "Neg", K_NEG },
	{ "Sqrt", K_SQRT }, { "Reciprocal", K_RECIPROCAL }, { "Erf", K_ERF },
	{ "Floor", K_FLOOR }, { "Ceil", K_CEIL }, { "Softplus", K_SOFTPLUS },
	{ "HardSigmoid", K_HARDSIGMOID }, { "HardSwish", K_HARDSWISH },
	{ "Clip", K_CLIP }, { "ThresholdedRelu", K_THRESHRELU },
	{ "Celu", K_CELU }, { "Softsign", K_SOFTSIGN }, { "Sign", K_SIGN },
	{ "PRelu", K_PRELU }, { "Identity", K_IDENTITY }, { "Dropout", K_DROPOUT },
	{ "Cast", K_CAST }, { "Not", K_NOT },
	{ "Add", K_ADD }, { "Sub", K_SUB }, { "Mul", K_MUL }, { "Div", K_DIV },
	{ "Pow", K_POW }, { "Max", K_MAX }, { "Min", K_MIN }, { "Mean", K_MEAN },
	{ "Sum", K_SUM }, { "Equal", K_EQUAL }, { "Less", K_LESS },
	{ "Greater", K_GREATER }, { "LessOrEqual", K_LESSEQ },
	{ "GreaterOrEqual", K_GREATEREQ }, { "And", K_AND }, { "Or", K_OR },
	{ "Xor", K_XOR }, { "Where", K_WHERE },
};

/* n->attr of every op here. */
typedef struct elt_attr {
	int kind;
	float alpha, beta;      /* LeakyRelu, Elu, HardSigmoid, ThresholdedRelu,
	                         * Celu; Selu: alpha, gamma */
	float lo, hi;           /* Clip's attributes before opset 11 */
	int to;                 /* Cast: enum sl_gdtype */
	int mask_bool;          /* Dropout: mask is bool (opset >= 10), else T */
} elt_attr;

/* graph.c's private "values exist now" tensor flag (SL_GT_KNOWN): set on
 * constants and on int64/bool tensors computed at plan time. */
#define KNOWN (1u << 8)

static int64_t
opset_of(const sl_graph *g)
{
	/* A graph built in C (the safetensors MLP, tests) sets no opset:
	 * it gets the newest semantics. */
	return g->opset > 0 ? g->opset : 17;
}

static const char *
dtype_name(int dt)
{
	static const char *const names[] = {
		"UNDEFINED", "FLOAT", "UINT8", "INT8", "UINT16", "INT16", "INT32",
		"INT64", "STRING", "BOOL", "FLOAT16", "DOUBLE", "UINT32", "UINT64",
		"COMPLEX64", "COMPLEX128", "BFLOAT16",
	};

	if (dt >= 0 && dt < (int)(sizeof names / sizeof names[0]))
		return names[dt];
	return "an unknown type";
}

/* --- broadcasting ------------------------------------------------------------ */

/* A coalesced iteration space over the output, with each input's strides
 * in elements (0 along broadcast dimensions). */
typedef struct bcast {
	int rank;               /* >= 1 */
	int64_t dims[SL_G_MAX_RANK];
	int64_t st[3][SL_G_MAX_RANK];
	size_t numel;
} bcast;

static void
bcast_make(bcast *bc, const sl_gtensor *y, const sl_gtensor *const *x, int nx)
{
	int64_t st[3][SL_G_MAX_RANK];
	const int r = y->rank;

	for (int k = 0; k < nx; k++) {
		const int off = r - x[k]->rank;
		int64_t s = 1;

		for (int i = r - 1; i >= 0; i--) {
			const int64_t d = i >= off ? x[k]->dims[i - off] : 1;

			st[k][i] = d == 1 ? 0 : s;
			s *= d;
		}
	}
	bc->rank = 0;
	bc->numel = sl_g_numel(y);
	for (int i = 0; i < r; i++) {
		const int p = bc->rank - 1;
		int merge = p >= 0;

		if (y->dims[i] == 1)
			continue;
		for (int k = 0; k < nx && merge; k++)
			merge = st[k][p] == st[k][i] * y->dims[i];
		if (merge) {
			bc->dims[p] *= y->dims[i];
			for (int k = 0; k < nx; k++)
				bc->st[k][p] = st[k][i];
		} else {
			bc->dims[bc->rank] = y->dims[i];
			for (int k = 0; k < nx; k++)
				bc->st[k][bc->rank] = st[k][i];
			bc->rank++;
		}
	}
	if (bc->rank == 0) {
		bc->rank = 1;
		bc->dims[0] = 1;
		for (int k = 0; k < nx; k++)
			bc->st[k][0] = 0;
	}
}

/* The broadcast shape of inputs [first, first + count) into out's dims. */
static int
bcast_infer(sl_graph *g, const sl_gnode *n, int first, int count,
    int dtype, sl_gtensor *y, sl_errmsg *why)
{
	int64_t dims[SL_G_MAX_RANK];
	int rank = 0;

	for (int k = first; k < first + count; k++) {
		const sl_gtensor *x = sl_g_in(g, n, k);

		if (x == NULL)
			return sl_errmsg_set(why, SL_EFORMAT, "input %d is missing",
			    k);
		if (x->rank > rank) {
			/* Shift what we have right to the new rank. */
			const int sh = x->rank - rank;

			for (int i = rank - 1; i >= 0; i--)
				dims[i + sh] = dims[i];
			for (int i = 0; i < sh; i++)
				dims[i] = 1;
			rank = x->rank;
		}
		for (int i = 0; i < x->rank; i++) {
			int64_t *d = &dims[rank - x->rank + i];
			const int64_t e = x->dims[i];

			if (*d == e || e == 1)
				continue;
			if (*d == 1) {
				*d = e;
				continue;
			}
			{
				char s1[96], sy[96];
				sl_gtensor acc = { .rank = rank };

				memcpy(acc.dims, dims, sizeof dims);
				return sl_errmsg_set(why, SL_EMISMATCH, "input %d "
				    "shape %s does not broadcast with %s (the "
				    "broadcast of inputs %d..%d)", k,
				    sl_g_shape_str(x, s1, sizeof s1),
				    sl_g_shape_str(&acc, sy, sizeof sy), first,
				    k - 1);
			}
		}
	}
	return sl_g_set_shape(y, dtype, rank, dims, why);
}

/* y[i] = OP(u, v) over a broadcast pair, u from a, v from b:
 *   a: walked with strides bc->st[0] over bc->dims,
 *   b: walked with strides bc->st[1],
 *   y: (bc->numel), contiguous in the output's order.
 * y may be a (the variadic ops accumulate in place): each element is read
 * before it is written. */
#define BIN_LOOP(NAME, TA, TB, TY, OP)                                       \
static void                                                                  \
NAME(const bcast *bc, const TA *a, const TB *b, TY *y)                       \
{                                                                            \
	const int r = bc->rank;                                              \
	const int64_t n = bc->dims[r - 1];                                   \
	const int64_t sa = bc->st[0][r - 1], sb = bc->st[1][r - 1];          \
	int64_t idx[SL_G_MAX_RANK] = { 0 };                                  \
	int64_t oa = 0, ob = 0;                                              \
                                                                             \
	for (size_t done = 0; done < bc->numel; done += (size_t)n) {         \
		const TA *pa = a + oa;                                       \
		const TB *pb = b + ob;                                       \
                                                                             \
		if (sa && sb) {                                              \
			for (int64_t i = 0; i < n; i++) {                    \
				const TA u = pa[i];                          \
				const TB v = pb[i];                          \
				y[i] = (OP);                                 \
			}                                                    \
		} else if (sa) {                                             \
			const TB v = *pb;                                    \
			for (int64_t i = 0; i < n; i++) {                    \
				const TA u = pa[i];                          \
				y[i] = (OP);                                 \
			}                                                    \
		} else if (sb) {                                             \
			const TA u = *pa;                                    \
			for (int64_t i = 0; i < n; i++) {                    \
				const TB v = pb[i];                          \
				y[i] = (OP);                                 \
			}                                                    \
		} else {                                                     \
			const TA u = *pa;                                    \
			const TB v = *pb;                                    \
			const TY c = (OP);                                   \
			for (int64_t i = 0; i < n; i++)                      \
				y[i] = c;                                    \
		}                                                            \
		y += n;                                                      \
		for (int d = r - 2; d >= 0; d--) {                           \
			oa += bc->st[0][d];                                  \
			ob += bc->st[1][d];                                  \
			if (++idx[d] < bc->dims[d])                          \
				break;                                       \
			oa -= bc->st[0][d] * bc->dims[d];                    \
			ob -= bc->st[1][d] * bc->dims[d];                    \
			idx[d] = 0;                                          \
		}                                                            \
	}                                                                    \
}

static inline int64_t
i64_add(int64_t a, int64_t b)
{
	return (int64_t)((uint64_t)a + (uint64_t)b);
}

static inline int64_t
i64_sub(int64_t a, int64_t b)
{
	return (int64_t)((uint64_t)a - (uint64_t)b);
}

static inline int64_t
i64_mul(int64_t a, int64_t b)
{
	return (int64_t)((uint64_t)a * (uint64_t)b);
}

static inline int64_t
i64_div(int64_t a, int64_t b)
{
	if (b == 0)
		return 0;
	if (b == -1)
		return i64_sub(0, a);
	return a / b;
}

static inline int64_t
f2i64(double x)
{
	if (!(x >= -9223372036854775808.0))
		return INT64_MIN; /* also NaN */
	if (x >= 9223372036854775808.0)
		return INT64_MAX;
	return (int64_t)x;
}

/* a^b for integers by squaring, wrapping; a negative exponent gives
 * 1/a^|b| truncated: 0 unless |a| == 1. */
static inline int64_t
i64_pow(int64_t a, int64_t b)
{
	uint64_t r = 1, x = (uint64_t)a;

	if (b < 0)
		return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
	while (b > 0) {
		if (b & 1)
			r *= x;
		x *= x;
		b >>= 1;
	}
	return (int64_t)r;
}

static inline float
f_max(float a, float b)
{
	/* NaN propagates, as numpy's maximum does. */
	return (a > b || a != a) ? a : b;
}

static inline float
f_min(float a, float b)
{
	return (a < b || a != a) ? a : b;
}

BIN_LOOP(add_f32, float, float, float, u + v)
BIN_LOOP(sub_f32, float, float, float, u - v)
BIN_LOOP(mul_f32, float, float, float, u * v)
BIN_LOOP(div_f32, float, float, float, u / v)
BIN_LOOP(pow_f32, float, float, float, powf(u, v))
BIN_LOOP(pow_f32_i64, float, int64_t, float, powf(u, (float)v))
BIN_LOOP(max_f32, float, float, float, f_max(u, v))
BIN_LOOP(prelu_f32, float, float, float, u < 0.0f ? u * v : u)
BIN_LOOP(min_f32, float, float, float, f_min(u, v))
BIN_LOOP(add_i64, int64_t, int64_t, int64_t, i64_add(u, v))
BIN_LOOP(sub_i64, int64_t, int64_t, int64_t, i64_sub(u, v))
BIN_LOOP(mul_i64, int64_t, int64_t, int64_t, i64_mul(u, v))
BIN_LOOP(div_i64, int64_t, int64_t, int64_t, i64_div(u, v))
BIN_LOOP(pow_i64, int64_t, int64_t, int64_t, i64_pow(u, v))
BIN_LOOP(pow_i64_f32, int64_t, float, int64_t, f2i64(pow((double)u, (double)v)))
BIN_LOOP(max_i64, int64_t, int64_t, int64_t, u > v ? u : v)
BIN_LOOP(min_i64, int64_t, int64_t, int64_t, u < v ? u : v)
BIN_LOOP(eq_f32, float, float, uint8_t, u == v)
BIN_LOOP(lt_f32, float, float, uint8_t, u < v)
BIN_LOOP(gt_f32, float, float, uint8_t, u > v)
BIN_LOOP(le_f32, float, float, uint8_t, u <= v)
BIN_LOOP(ge_f32, float, float, uint8_t, u >= v)
BIN_LOOP(eq_i64, int64_t, int64_t, uint8_t, u == v)
BIN_LOOP(lt_i64, int64_t, int64_t, uint8_t, u < v)
BIN_LOOP(gt_i64, int64_t, int64_t, uint8_t, u > v)
BIN_LOOP(le_i64, int64_t, int64_t, uint8_t, u <= v)
BIN_LOOP(ge_i64, int64_t, int64_t, uint8_t, u >= v)
BIN_LOOP(eq_b, uint8_t, uint8_t, uint8_t, (uint8_t)((u != 0) == (v != 0)))
BIN_LOOP(and_b, uint8_t, uint8_t, uint8_t, (uint8_t)(u && v))
BIN_LOOP(or_b, uint8_t, uint8_t, uint8_t, (uint8_t)(u || v))
BIN_LOOP(xor_b, uint8_t, uint8_t, uint8_t, (uint8_t)((u != 0) != (v != 0)))

/* y = c ? a : b, all three broadcast: c, a, b walked with strides
 * bc->st[0], [1], [2]; y (bc->numel). */
#define WHERE_LOOP(NAME, T)                                                  \
static void                                                                  \
NAME(const bcast *bc, const uint8_t *c, const T *a, const T *b, T *y)        \
{                                                                            \
	const int r = bc->rank;                                              \
	const int64_t n = bc->dims[r - 1];                                   \
	const int64_t sc = bc->st[0][r - 1], sa = bc->st[1][r - 1],          \
	    sb = bc->st[2][r - 1];                                           \
	int64_t idx[SL_G_MAX_RANK] = { 0 };                                  \
	int64_t oc = 0, oa = 0, ob = 0;                                      \
                                                                             \
	for (size_t done = 0; done < bc->numel; done += (size_t)n) {         \
		const uint8_t *pc = c + oc;                                  \
		const T *pa = a + oa, *pb = b + ob;                          \
                                                                             \
		for (int64_t i = 0; i < n; i++)                              \
			y[i] = pc[i * sc] ? pa[i * sa] : pb[i * sb];         \
		y += n;                                                      \
		for (int d = r - 2; d >= 0; d--) {                           \
			oc += bc->st[0][d];                                  \
			oa += bc->st[1][d];                                  \
			ob += bc->st[2][d];                                  \
			if (++idx[d] < bc->dims[d])                          \
				break;                                       \
			oc -= bc->st[0][d] * bc->dims[d];                    \
			oa -= bc->st[1][d] * bc->dims[d];                    \
			ob -= bc->st[2][d] * bc->dims[d];                    \
			idx[d] = 0;                                          \
		}                                                            \
	}                                                                    \
}

WHERE_LOOP(where_f32, float)
WHERE_LOOP(where_i64, int64_t)
WHERE_LOOP(where_b, uint8_t)

/* --- init ---------------------------------------------------------------------- */

static int
elt_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	const int64_t opset = opset_of(g);
	elt_attr *at;
	int rc = 0;
	int64_t v;

	if ((at = calloc(1, sizeof *at)) == NULL)
		return SL_ENOMEM;
	n->attr = at;
	at->kind = -1;
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
		if (strcmp(kinds[i].name, n->op->name) == 0)
			at->kind = kinds[i].kind;
	switch (at->kind) {
	case K_LEAKYRELU:
		at->alpha = 0.01f;
		rc = sl_g_attr_float(a, "alpha", &at->alpha, why);
		break;
	case K_ELU: case K_THRESHRELU: case K_CELU:
		at->alpha = 1.0f;
		rc = sl_g_attr_float(a, "alpha", &at->alpha, why);
		break;
	case K_SELU:
		at->alpha = 1.67326319217681884765625f;
		at->beta = 1.05070102214813232421875f;
		if ((rc = sl_g_attr_float(a, "alpha", &at->alpha, why)) >= 0)
			rc = sl_g_attr_float(a, "gamma", &at->beta, why);
		break;
	case K_HARDSIGMOID:
		at->alpha = 0.2f;
		at->beta = 0.5f;
		if ((rc = sl_g_attr_float(a, "alpha", &at->alpha, why)) >= 0)
			rc = sl_g_attr_float(a, "beta", &at->beta, why);
		break;
	case K_CLIP:
		/* A bound left out does not clamp (ONNX's reference), so +-inf
		 * pass from opset 11; Clip-6 documents lowest()/max(). */
		at->lo = -INFINITY;
		at->hi = INFINITY;
		if (opset < 11) {
			at->lo = -FLT_MAX;
			at->hi = FLT_MAX;
			if (n->nin > 1)
				return sl_errmsg_set(why, SL_EFORMAT, "Clip takes "
				    "min and max as attributes before opset 11, "
				    "not as inputs");
			if ((rc = sl_g_attr_float(a, "min", &at->lo, why)) >= 0)
				rc = sl_g_attr_float(a, "max", &at->hi, why);
		}
		break;
	case K_DROPOUT:
		at->mask_bool = opset >= 10;
		if (opset < 12 && n->nin > 1)
			return sl_errmsg_set(why, SL_EFORMAT, "Dropout takes ratio "
			    "and training_mode as inputs from opset 12 only");
		if ((rc = sl_g_attr_int(a, "is_test", &v, why)) == 1 && v == 0)
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "Dropout with "
			    "is_test=0 (training) is not supported: inference "
			    "only");
		/* No ONNX opset has this attribute (training_mode is an input
		 * from 12); some converters write it anyway. */
		if (rc >= 0 && (rc = sl_g_attr_int(a, "training_mode", &v,
		    why)) == 1 && v != 0)
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "training_mode "
			    "is true: Dropout runs for inference only");
		break;
	case K_CAST:
		if ((rc = sl_g_attr_int(a, "to", &v, why)) < 0)
			break;
		if (rc == 0)
			return sl_errmsg_set(why, SL_EFORMAT, "Cast without 'to'");
		if (v != SL_G_F32 && v != SL_G_I64 && v != SL_G_BOOL)
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "Cast to %s "
			    "(%lld) is not supported: FLOAT, INT64 and BOOL only",
			    dtype_name((int)v), (long long)v);
		at->to = (int)v;
		break;
	case K_ADD: case K_SUB: case K_MUL: case K_DIV: case K_POW:
	case K_EQUAL: case K_LESS: case K_GREATER: case K_AND: case K_OR:
	case K_XOR:
		/* Before opset 7 these broadcast only with broadcast=1 and an
		 * axis, aligned on the left: not numpy's rule. */
		if ((rc = sl_g_attr_int(a, "broadcast", &v, why)) == 1 && v != 0)
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "legacy "
			    "broadcasting (broadcast=1, opset < 7) is not "
			    "supported");
		break;
	case -1:
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "not an eltwise op");
	default:
		break;
	}
	return rc < 0 ? rc : 0;
}

/* --- unary ------------------------------------------------------------------- */

static int
is_int_ok(int kind)
{
	return kind == K_ABS || kind == K_NEG || kind == K_CLIP ||
	    kind == K_SIGN;
}

static int
unary_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const elt_attr *at = n->attr;
	const sl_gtensor *x = sl_g_in(g, n, 0);
	sl_gtensor *y = sl_g_out(g, n, 0);

	if (x->dtype != SL_G_F32 && !(x->dtype == SL_G_I64 &&
	    is_int_ok(at->kind)))
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "input of type %s is "
		    "not supported (FLOAT%s)", dtype_name(x->dtype),
		    is_int_ok(at->kind) ? " and INT64" : "");
	if (at->kind == K_CLIP) {
		for (int k = 1; k < n->nin; k++) {
			const sl_gtensor *m = sl_g_in(g, n, k);
			char s[96];

			if (m == NULL)
				continue;
			if (m->dtype != x->dtype || sl_g_numel(m) != 1)
				return sl_errmsg_set(why, SL_EMISMATCH, "%s %s of "
				    "type %s: expected a scalar of type %s",
				    k == 1 ? "min" : "max", sl_g_shape_str(m, s,
				    sizeof s), dtype_name(m->dtype),
				    dtype_name(x->dtype));
		}
	}
	return sl_g_set_shape(y, x->dtype, x->rank, x->dims, why);
}

/* Numerically stable forms: sigmoid never computes exp of a large
 * positive number, softplus is max(x, 0) + log1p(exp(-|x|)). */
static inline float
sigmoidf(float x)
{
	if (x >= 0.0f)
		return 1.0f / (1.0f + expf(-x));
	{
		const float e = expf(x);

		return e / (1.0f + e);
	}
}

static inline float
softplusf(float x)
{
	return (x > 0.0f ? x : 0.0f) + log1pf(expf(-fabsf(x)));
}

static inline float
clampf(float x, float lo, float hi)
{
	/* min(max(x, lo), hi): with lo > hi everything becomes hi, as numpy's
	 * clip does; NaN stays NaN. */
	x = x < lo ? lo : x;
	return x > hi ? hi : x;
}

/* erf as a rational function on [-4, 4] (odd numerator of degree 13 over
 * an even denominator of degree 8; Eigen's and XLA's float erf), +-1
 * outside, NaN kept. glibc's erff took 13% of the ViT's samples (GELU).
 * Against erff over every float: at most 4.8e-7 off (near |x| = 3.3,
 * where erf is 1 - 1e-6: 8 units in the last place of 1.0); the GELU
 * x / 2 * (1 + erf(x / sqrt 2)) it feeds then moves by under 1e-6 of x.
 * The whole-model test (onnx_evaluate.sh, probabilities against
 * PyTorch's at 1e-5) stays at ~3e-7. Four lanes and a scalar tail with
 * the same operations, so lanes and tail agree bit for bit. */
#define ERF_POLY(X2, X, P, Q) do {                                        \
	P = X2 * -2.72614225801306e-10f + 2.77068142495902e-08f;        \
	P = X2 * P + -2.10102402082508e-06f;                              \
	P = X2 * P + -5.69250639462346e-05f;                              \
	P = X2 * P + -7.34990630326855e-04f;                              \
	P = X2 * P + -2.95459980854025e-03f;                              \
	P = X2 * P + -1.60960333262415e-02f;                              \
	P = X * P;                                                           \
	Q = X2 * -1.45660718464996e-05f + -2.13374055278905e-04f;      \
	Q = X2 * Q + -1.68282697438203e-03f;                              \
	Q = X2 * Q + -7.37332916720468e-03f;                              \
	Q = X2 * Q + -1.42647390514189e-02f;                              \
} while (0)

static void
erf_f32(float *y, /* (len) */ const float *x, /* (len) */ size_t len)
{
	const sl_g_v4f lo = { -4.0f, -4.0f, -4.0f, -4.0f };
	const sl_g_v4f hi = { 4.0f, 4.0f, 4.0f, 4.0f };
	size_t i = 0;

	for (; i + 4 <= len; i += 4) {
		sl_g_v4f v, v2, p, q;

		memcpy(&v, x + i, sizeof v);
		v = sl_g_v4_clamp(v, lo, hi);
		v2 = v * v;
		ERF_POLY(v2, v, p, q);
		v = p / q;
		memcpy(y + i, &v, sizeof v);
	}
	for (; i < len; i++) {
		const float v = sl_g_act_clampf(x[i], -4.0f, 4.0f);
		const float v2 = v * v;
		float p, q;

		ERF_POLY(v2, v, p, q);
		y[i] = p / q;
	}
}

#define UNARY(EXPR) do {                                                     \
	for (size_t i = 0; i < len; i++) {                                   \
		const float v = x[i];                                        \
		y[i] = (EXPR);                                               \
	}                                                                    \
} while (0)

/* y = f(x) element-wise. */
static void
unary_f32_forward(float *y, /* (len) */ const float *x, /* (len) */
    size_t len, const elt_attr *at, float lo, float hi)
{
	const float al = at->alpha, be = at->beta;

	switch (at->kind) {
	case K_RELU: UNARY(v > 0.0f ? v : 0.0f); break;
	case K_LEAKYRELU: UNARY(v >= 0.0f ? v : al * v); break;
	case K_ELU: UNARY(v >= 0.0f ? v : al * expm1f(v)); break;
	case K_SELU: UNARY(be * (v > 0.0f ? v : al * expm1f(v))); break;
	case K_SIGMOID: UNARY(sigmoidf(v)); break;
	case K_TANH: UNARY(tanhf(v)); break;
	case K_EXP: UNARY(expf(v)); break;
	case K_LOG: UNARY(logf(v)); break;
	case K_ABS: UNARY(fabsf(v)); break;
	case K_NEG: UNARY(-v); break;
	case K_SQRT: UNARY(sqrtf(v)); break;
	case K_RECIPROCAL: UNARY(1.0f / v); break;
	case K_ERF: erf_f32(y, x, len); break;
	case K_FLOOR: UNARY(floorf(v)); break;
	case K_CEIL: UNARY(ceilf(v)); break;
	case K_SOFTPLUS: UNARY(softplusf(v)); break;
	case K_HARDSIGMOID: UNARY(clampf(al * v + be, 0.0f, 1.0f)); break;
	case K_HARDSWISH: UNARY(v * clampf(v * (1.0f / 6.0f) + 0.5f, 0.0f,
	    1.0f)); break;
	case K_CLIP: UNARY(clampf(v, lo, hi)); break;
	case K_THRESHRELU: UNARY(v > al ? v : 0.0f); break;
	case K_CELU: UNARY((v > 0.0f ? v : 0.0f) + (v < 0.0f ? al * expm1f(v / al)
	    : 0.0f)); break;
	case K_SOFTSIGN: UNARY(v / (1.0f + fabsf(v))); break;
	case K_SIGN: UNARY(v > 0.0f ? 1.0f : v < 0.0f ? -1.0f : v); break;
	default: break;
	}
}

static void
unary_i64_forward(int64_t *y, /* (len) */ const int64_t *x, /* (len) */
    size_t len, int kind, int64_t lo, int64_t hi)
{
	for (size_t i = 0; i < len; i++) {
		int64_t v = x[i];

		switch (kind) {
		case K_ABS: v = v < 0 ? i64_sub(0, v) : v; break;
		case K_NEG: v = i64_sub(0, v); break;
		case K_SIGN: v = (v > 0) - (v < 0); break;
		default:
			v = v < lo ? lo : v;
			v = v > hi ? hi : v;
			break;
		}
		y[i] = v;
	}
}

static void
unary_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const elt_attr *at = n->attr;
	const sl_gtensor *x = sl_g_in(g, n, 0);
	const sl_gtensor *mn = sl_g_in(g, n, 1), *mx = sl_g_in(g, n, 2);
	sl_gtensor *y = sl_g_out(g, n, 0);

	(void)scratch;
	if (x->dtype == SL_G_F32) {
		float lo = at->lo, hi = at->hi;

		if (mn != NULL)
			lo = *(const float *)mn->data;
		if (mx != NULL)
			hi = *(const float *)mx->data;
		unary_f32_forward(y->data, x->data, sl_g_numel(x), at, lo, hi);
	} else {
		int64_t lo = INT64_MIN, hi = INT64_MAX;

		if (mn != NULL)
			lo = *(const int64_t *)mn->data;
		if (mx != NULL)
			hi = *(const int64_t *)mx->data;
		unary_i64_forward(y->data, x->data, sl_g_numel(x), at->kind, lo,
		    hi);
	}
}

/* --- Identity, Dropout, Cast, Not ---------------------------------------- */

static int
dtype_ok(int dt)
{
	return dt == SL_G_F32 || dt == SL_G_I64 || dt == SL_G_BOOL;
}

static int
identity_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);

	if (!dtype_ok(x->dtype))
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "input of type %s",
		    dtype_name(x->dtype));
	return sl_g_set_shape(sl_g_out(g, n, 0), x->dtype, x->rank, x->dims,
	    why);
}

static void
copy_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	sl_gtensor *y = sl_g_out(g, n, 0);

	(void)scratch;
	if (y->data != x->data)
		memcpy(y->data, x->data, sl_g_numel(x) * sl_g_dtype_size(x->dtype));
}

static int
dropout_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const elt_attr *at = n->attr;
	const sl_gtensor *x = sl_g_in(g, n, 0);
	const sl_gtensor *tm = sl_g_in(g, n, 2);
	int rc;

	if (x->dtype != SL_G_F32)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "input of type %s "
		    "(FLOAT only)", dtype_name(x->dtype));
	if (tm != NULL) {
		if (tm->dtype != SL_G_BOOL || sl_g_numel(tm) != 1)
			return sl_errmsg_set(why, SL_EMISMATCH, "training_mode "
			    "must be one BOOL, is %s", dtype_name(tm->dtype));
		/* Known when constant, bound or computed before us: bool
		 * tensors run early. */
		if (tm->data == NULL || !(tm->flags & (SL_GT_CONST | KNOWN)))
			return sl_errmsg_set(why, SL_EINVAL, "training_mode '%s' "
			    "is not known at plan time", tm->name);
		if (*(const uint8_t *)tm->data)
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "training_mode "
			    "is true: Dropout runs for inference only");
	}
	if ((rc = sl_g_set_shape(sl_g_out(g, n, 0), SL_G_F32, x->rank, x->dims,
	    why)) != 0)
		return rc;
	if (n->nout > 1)
		return sl_g_set_shape(sl_g_out(g, n, 1), at->mask_bool ?
		    SL_G_BOOL : SL_G_F32, x->rank, x->dims, why);
	return 0;
}

static void
dropout_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	copy_forward(g, n, scratch);
	if (n->nout > 1) {
		sl_gtensor *m = sl_g_out(g, n, 1);
		const size_t len = sl_g_numel(m);

		if (m->dtype == SL_G_BOOL) {
			memset(m->data, 1, len);
		} else {
			float *p = m->data;

			for (size_t i = 0; i < len; i++)
				p[i] = 1.0f;
		}
	}
}

static int
cast_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const elt_attr *at = n->attr;
	const sl_gtensor *x = sl_g_in(g, n, 0);

	if (!dtype_ok(x->dtype))
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "Cast from %s is not "
		    "supported: FLOAT, INT64 and BOOL only", dtype_name(x->dtype));
	return sl_g_set_shape(sl_g_out(g, n, 0), at->to, x->rank, x->dims, why);
}

static void
cast_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	sl_gtensor *y = sl_g_out(g, n, 0);
	const size_t len = sl_g_numel(x);
	const float *xf = x->data;
	const int64_t *xi = x->data;
	const uint8_t *xb = x->data;
	float *yf = y->data;
	int64_t *yi = y->data;
	uint8_t *yb = y->data;

	if (x->dtype == y->dtype) {
		copy_forward(g, n, scratch);
		return;
	}
	for (size_t i = 0; i < len; i++) {
		switch (x->dtype * 16 + y->dtype) {
		case SL_G_F32 * 16 + SL_G_I64: yi[i] = f2i64((double)xf[i]); break;
		case SL_G_F32 * 16 + SL_G_BOOL: yb[i] = xf[i] != 0.0f; break;
		case SL_G_I64 * 16 + SL_G_F32: yf[i] = (float)xi[i]; break;
		case SL_G_I64 * 16 + SL_G_BOOL: yb[i] = xi[i] != 0; break;
		case SL_G_BOOL * 16 + SL_G_F32: yf[i] = xb[i] ? 1.0f : 0.0f; break;
		case SL_G_BOOL * 16 + SL_G_I64: yi[i] = xb[i] != 0; break;
		default: break;
		}
	}
}

static int
not_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);

	if (x->dtype != SL_G_BOOL)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "input of type %s "
		    "(BOOL only)", dtype_name(x->dtype));
	return sl_g_set_shape(sl_g_out(g, n, 0), SL_G_BOOL, x->rank, x->dims,
	    why);
}

static void
not_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	const uint8_t *xb = x->data;
	uint8_t *yb = sl_g_out(g, n, 0)->data;
	const size_t len = sl_g_numel(x);

	(void)scratch;
	for (size_t i = 0; i < len; i++)
		yb[i] = !xb[i];
}

/* --- binary, variadic, Where ---------------------------------------------- */

static int
binary_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const elt_attr *at = n->attr;
	const int k = at->kind;
	const sl_gtensor *a = sl_g_in(g, n, 0);
	int out_dt = a->dtype;

	/* A Relu or HardSwish fused into this Add (fold.c, before dtypes are
	 * known): both take floats only, as they would have on their own. */
	if (n->act.kind != SL_G_ACT_NONE && a->dtype != SL_G_F32)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "input of type %s "
		    "into the activation fused after it is not supported "
		    "(FLOAT)", dtype_name(a->dtype));
	for (int j = 0; j < n->nin; j++) {
		const sl_gtensor *b = sl_g_in(g, n, j);
		int ok;

		if (b == NULL)
			return sl_errmsg_set(why, SL_EFORMAT, "input %d is missing",
			    j);
		if (k == K_POW && j == 1)
			ok = b->dtype == SL_G_F32 || b->dtype == SL_G_I64;
		else if (j > 0 && b->dtype != a->dtype)
			ok = 0;
		else if (k == K_AND || k == K_OR || k == K_XOR)
			ok = b->dtype == SL_G_BOOL;
		else if (k == K_EQUAL)
			ok = dtype_ok(b->dtype);
		else if (k == K_MEAN)
			ok = b->dtype == SL_G_F32;
		else
			ok = b->dtype == SL_G_F32 || b->dtype == SL_G_I64;
		if (!ok)
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "input %d of "
			    "type %s (input 0: %s) is not supported", j,
			    dtype_name(b->dtype), dtype_name(a->dtype));
	}
	if (k >= K_EQUAL && k <= K_XOR)
		out_dt = SL_G_BOOL;
	return bcast_infer(g, n, 0, n->nin, out_dt, sl_g_out(g, n, 0), why);
}

/* Pow(x, 2), as decomposed LayerNorms write it: exactly x * x (powf is
 * not always correctly rounded). A one-element exponent does not widen
 * x, so x and y have the same elements. */
static void
square_f32(float *y, /* (len) */ const float *x, /* (len) */ size_t len)
{
	for (size_t i = 0; i < len; i++)
		y[i] = x[i] * x[i];
}

/* y = a OP b for one pair; y has the broadcast shape of all inputs. */
static void
pair_forward(int kind, const sl_gtensor *ta, const void *a,
    const sl_gtensor *tb, const void *b, sl_gtensor *y)
{
	const sl_gtensor *x[2] = { ta, tb };
	bcast bc;

	if (sl_g_numel(y) == 0)
		return;
	bcast_make(&bc, y, x, 2);
	if (ta->dtype == SL_G_F32) {
		switch (kind) {
		case K_ADD: case K_SUM: case K_MEAN:
			add_f32(&bc, a, b, y->data); break;
		case K_SUB: sub_f32(&bc, a, b, y->data); break;
		case K_MUL: mul_f32(&bc, a, b, y->data); break;
		case K_DIV: div_f32(&bc, a, b, y->data); break;
		case K_POW:
			if (tb->dtype == SL_G_I64)
				pow_f32_i64(&bc, a, b, y->data);
			else if (sl_g_numel(tb) == 1 && *(const float *)b == 2.0f)
				square_f32(y->data, a, sl_g_numel(y));
			else
				pow_f32(&bc, a, b, y->data);
			break;
		case K_MAX: max_f32(&bc, a, b, y->data); break;
		case K_MIN: min_f32(&bc, a, b, y->data); break;
		case K_EQUAL: eq_f32(&bc, a, b, y->data); break;
		case K_LESS: lt_f32(&bc, a, b, y->data); break;
		case K_GREATER: gt_f32(&bc, a, b, y->data); break;
		case K_LESSEQ: le_f32(&bc, a, b, y->data); break;
		case K_GREATEREQ: ge_f32(&bc, a, b, y->data); break;
		case K_PRELU: prelu_f32(&bc, a, b, y->data); break;
		default: break;
		}
	} else if (ta->dtype == SL_G_I64) {
		switch (kind) {
		case K_ADD: case K_SUM: add_i64(&bc, a, b, y->data); break;
		case K_SUB: sub_i64(&bc, a, b, y->data); break;
		case K_MUL: mul_i64(&bc, a, b, y->data); break;
		case K_DIV: div_i64(&bc, a, b, y->data); break;
		case K_POW:
			if (tb->dtype == SL_G_F32)
				pow_i64_f32(&bc, a, b, y->data);
			else
				pow_i64(&bc, a, b, y->data);
			break;
		case K_MAX: max_i64(&bc, a, b, y->data); break;
		case K_MIN: min_i64(&bc, a, b, y->data); break;
		case K_EQUAL: eq_i64(&bc, a, b, y->data); break;
		case K_LESS: lt_i64(&bc, a, b, y->data); break;
		case K_GREATER: gt_i64(&bc, a, b, y->data); break;
		case K_LESSEQ: le_i64(&bc, a, b, y->data); break;
		case K_GREATEREQ: ge_i64(&bc, a, b, y->data); break;
		default: break;
		}
	} else {
		switch (kind) {
		case K_EQUAL: eq_b(&bc, a, b, y->data); break;
		case K_AND: and_b(&bc, a, b, y->data); break;
		case K_OR: or_b(&bc, a, b, y->data); break;
		case K_XOR: xor_b(&bc, a, b, y->data); break;
		default: break;
		}
	}
}

/* Elements per block of Add with a fused activation: the sums are still
 * in L1 when the activation reads them back. */
#define ACT_BLOCK 1024

/* Add of two float inputs followed by the activation fold.c fused into it
 * (a residual block's Relu). Inputs of the output's shape: per block, sum
 * then activation; broadcasting ones: the sum, then the activation over
 * y. */
static void
add_act_forward(sl_graph *g, const sl_gnode *n)
{
	const sl_gtensor *ta = sl_g_in(g, n, 0), *tb = sl_g_in(g, n, 1);
	sl_gtensor *y = sl_g_out(g, n, 0);
	const size_t len = sl_g_numel(y);

	if (sl_g_numel(ta) == len && sl_g_numel(tb) == len) {
		const float *a = ta->data, *b = tb->data;
		float *o = y->data;

		for (size_t i0 = 0; i0 < len; i0 += ACT_BLOCK) {
			const size_t m = len - i0 < ACT_BLOCK ? len - i0 : ACT_BLOCK;

			for (size_t i = i0; i < i0 + m; i++)
				o[i] = a[i] + b[i];
			sl_g_act_apply(&n->act, o + i0, m);
		}
		return;
	}
	pair_forward(K_ADD, ta, ta->data, tb, tb->data, y);
	sl_g_act_apply(&n->act, y->data, len);
}

static void
binary_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const elt_attr *at = n->attr;
	const sl_gtensor *a = sl_g_in(g, n, 0);
	sl_gtensor *y = sl_g_out(g, n, 0);

	(void)scratch;
	if (n->act.kind != SL_G_ACT_NONE) {
		add_act_forward(g, n);
		return;
	}
	if (n->nin == 1) {
		/* Sum, Mean, Max, Min of one input: itself. */
		memcpy(y->data, a->data, sl_g_numel(a) * sl_g_dtype_size(a->dtype));
		return;
	}
	pair_forward(at->kind, a, a->data, sl_g_in(g, n, 1),
	    sl_g_in(g, n, 1)->data, y);
	/* More inputs fold into y in place: y has the full shape already. */
	for (int j = 2; j < n->nin; j++)
		pair_forward(at->kind, y, y->data, sl_g_in(g, n, j),
		    sl_g_in(g, n, j)->data, y);
	if (at->kind == K_MEAN) {
		float *p = y->data;
		const size_t len = sl_g_numel(y);
		const float inv = 1.0f / (float)n->nin;

		if (n->nin == 2 || n->nin == 4 || n->nin == 8 || n->nin == 16)
			for (size_t i = 0; i < len; i++)
				p[i] *= inv; /* exact: a power of two */
		else
			for (size_t i = 0; i < len; i++)
				p[i] /= (float)n->nin;
	}
}

/* PRelu: y = x < 0 ? slope * x : x, the slope broadcast to X's shape
 * (unidirectionally: X's shape is the output's). */
static int
prelu_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *x = sl_g_in(g, n, 0), *sl = sl_g_in(g, n, 1);
	sl_gtensor *y = sl_g_out(g, n, 0);
	char sx[96], ss[96];
	int rc;

	if (x->dtype != SL_G_F32 || sl->dtype != SL_G_F32)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "X of type %s and "
		    "slope of type %s: FLOAT only", dtype_name(x->dtype),
		    dtype_name(sl->dtype));
	if ((rc = bcast_infer(g, n, 0, 2, SL_G_F32, y, why)) != 0)
		return rc;
	if (y->rank != x->rank || memcmp(y->dims, x->dims,
	    (size_t)x->rank * sizeof *x->dims) != 0)
		return sl_errmsg_set(why, SL_EMISMATCH, "slope %s does not "
		    "broadcast to X %s without widening it", sl_g_shape_str(sl,
		    ss, sizeof ss), sl_g_shape_str(x, sx, sizeof sx));
	return 0;
}

static int
where_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *c = sl_g_in(g, n, 0), *a = sl_g_in(g, n, 1),
	    *b = sl_g_in(g, n, 2);

	if (c->dtype != SL_G_BOOL)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "condition of type %s "
		    "(BOOL only)", dtype_name(c->dtype));
	if (a->dtype != b->dtype || !dtype_ok(a->dtype))
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "X of type %s and Y "
		    "of type %s: the same type, FLOAT, INT64 or BOOL, expected",
		    dtype_name(a->dtype), dtype_name(b->dtype));
	return bcast_infer(g, n, 0, 3, a->dtype, sl_g_out(g, n, 0), why);
}

static void
where_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const sl_gtensor *x[3] = { sl_g_in(g, n, 0), sl_g_in(g, n, 1),
	    sl_g_in(g, n, 2) };
	sl_gtensor *y = sl_g_out(g, n, 0);
	bcast bc;

	(void)scratch;
	if (sl_g_numel(y) == 0)
		return;
	bcast_make(&bc, y, x, 3);
	switch (y->dtype) {
	case SL_G_F32:
		where_f32(&bc, x[0]->data, x[1]->data, x[2]->data, y->data);
		break;
	case SL_G_I64:
		where_i64(&bc, x[0]->data, x[1]->data, x[2]->data, y->data);
		break;
	default:
		where_b(&bc, x[0]->data, x[1]->data, x[2]->data, y->data);
		break;
	}
}

#define UN(name) { name, 1, 1, 1, 1, elt_init, unary_infer, unary_forward }
#define BIN(name) { name, 2, 2, 1, 1, elt_init, binary_infer, binary_forward }
#define VAR(name) { name, 1, SL_G_MAX_IO, 1, 1, elt_init, binary_infer, \
	binary_forward }

const sl_gop sl_g_ops_eltwise[] = {
	UN("Relu"), UN("LeakyRelu"), UN("Elu"), UN("Selu"), UN("Sigmoid"),
	UN("Tanh"), UN("Exp"), UN("Log"), UN("Abs"), UN("Neg"), UN("Sqrt"),
	UN("Reciprocal"), UN("Erf"), UN("Floor"), UN("Ceil"), UN("Softplus"),
	UN("HardSigmoid"), UN("HardSwish"),
	{ "Clip", 1, 3, 1, 1, elt_init, unary_infer, unary_forward },
	{ "Identity", 1, 1, 1, 1, elt_init, identity_infer, copy_forward },
	{ "Dropout", 1, 3, 1, 2, elt_init, dropout_infer, dropout_forward },
	{ "Cast", 1, 1, 1, 1, elt_init, cast_infer, cast_forward },
	{ "Not", 1, 1, 1, 1, elt_init, not_infer, not_forward },
	BIN("Add"), BIN("Sub"), BIN("Mul"), BIN("Div"), BIN("Pow"),
	VAR("Max"), VAR("Min"), VAR("Mean"), VAR("Sum"),
	BIN("Equal"), BIN("Less"), BIN("Greater"), BIN("LessOrEqual"),
	BIN("GreaterOrEqual"), BIN("And"), BIN("Or"), BIN("Xor"),
	{ "Where", 3, 3, 1, 1, elt_init, where_infer, where_forward },
	UN("ThresholdedRelu"), UN("Celu"), UN("Softsign"), UN("Sign"),
	{ "PRelu", 2, 2, 1, 1, elt_init, prelu_infer, binary_forward },
	{ NULL, 0, 0, 0, 0, NULL, NULL, NULL },
};

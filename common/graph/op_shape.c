/* op_shape.c - ops that move data without arithmetic: Shape, Gather, Concat,
 * Reshape, Flatten, Unsqueeze, Squeeze, Transpose, Slice, Expand, Split,
 * Tile, ConstantOfShape, Range. Every dtype (float32, int64, bool): the
 * shape sub-graphs exporters emit run through these on int64 tensors. */
#include "graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* --- shared ------------------------------------------------------------------- */

/* Per-op state: axis and the lists an op reads; infer fills the rest. */
typedef struct shape_attr {
	int64_t axis;
	int has_axis;
	int64_t ints[SL_G_MAX_RANK * 2]; /* perm, axes, starts/ends (opset < 10) */
	size_t nints;
	int64_t ints2[SL_G_MAX_RANK], ints3[SL_G_MAX_RANK];
	size_t nints2, nints3;
	int64_t start, end;           /* Shape (opset 15) */
	int has_start, has_end;
	int allowzero;
	/* From infer: a strided copy of the input (Transpose, Slice, Expand,
	 * Tile), element strides of the input per output dim. */
	int64_t istride[SL_G_MAX_RANK];
	int64_t ioff;
	int64_t idims[SL_G_MAX_RANK];  /* Tile: input dims (modulo) */
	/* ConstantOfShape's value. */
	int vdtype;
	unsigned char value[8];
} shape_attr;

static int
attr_new(sl_gnode *n, shape_attr **out)
{
	shape_attr *a = calloc(1, sizeof *a);

	if (a == NULL)
		return SL_ENOMEM;
	n->attr = a;
	*out = a;
	return 0;
}

/* Row-major strides of dims, in elements. */
static void
strides_of(const int64_t *dims, int rank, int64_t *st)
{
	int64_t s = 1;

	for (int i = rank - 1; i >= 0; i--) {
		st[i] = s;
		s *= dims[i];
	}
}

/* Write every element of the output (rank, dims) from the input at
 * off + sum(idx[i] * istride[i]); mod (Tile) wraps index i modulo mod[i]
 * first. The last dimension goes as one memcpy when it is contiguous. */
static void
strided_copy(void *dst, const void *src, size_t esize, int rank,
    const int64_t *dims, const int64_t *istride, int64_t off,
    const int64_t *mod)
{
	int64_t idx[SL_G_MAX_RANK] = { 0 };
	size_t total = 1;
	unsigned char *d = dst;
	const unsigned char *s = src;

	for (int i = 0; i < rank; i++)
		total *= (size_t)dims[i];
	if (total == 0)
		return;
	if (rank == 0) {
		memcpy(d, s + (size_t)off * esize, esize);
		return;
	}
	const int64_t last = dims[rank - 1];
	const int contiguous = istride[rank - 1] == 1 && mod == NULL;

	for (size_t done = 0; done < total; done += (size_t)last) {
		int64_t o = off;

		for (int i = 0; i < rank - 1; i++)
			o += (mod ? idx[i] % mod[i] : idx[i]) * istride[i];
		if (contiguous) {
			memcpy(d, s + (size_t)o * esize, (size_t)last * esize);
			d += (size_t)last * esize;
		} else if (esize == 4) {
			for (int64_t j = 0; j < last; j++, d += 4)
				memcpy(d, s + (size_t)(o + (mod ? j % mod[rank - 1] :
				    j) * istride[rank - 1]) * 4, 4);
		} else {
			for (int64_t j = 0; j < last; j++, d += esize)
				memcpy(d, s + (size_t)(o + (mod ? j % mod[rank - 1] :
				    j) * istride[rank - 1]) * esize, esize);
		}
		for (int i = rank - 2; i >= 0; i--) {
			if (++idx[i] < dims[i])
				break;
			idx[i] = 0;
		}
	}
}

static int
norm_axis(int64_t axis, int rank, int64_t *out, sl_errmsg *why)
{
	if (axis < -rank || axis >= rank)
		return sl_errmsg_set(why, SL_EMISMATCH, "axis %lld out of range "
		    "for rank %d", (long long)axis, rank);
	*out = axis < 0 ? axis + rank : axis;
	return 0;
}

/* int64 values of input i, required to be known (a constant or computed
 * from shapes). */
static int
need_i64(sl_graph *g, sl_gnode *n, int i, const int64_t **v, size_t *len,
    sl_errmsg *why)
{
	const sl_gtensor *t = sl_g_in(g, n, i);

	/* Slice's starts and ends are required from opset 10 only, so its
	 * min_in is 1: an input left out ("") is caught here. */
	if (t == NULL)
		return sl_errmsg_set(why, SL_EFORMAT, "input %d is required but "
		    "left out", i);
	if (t->dtype != SL_G_I64)
		return sl_errmsg_set(why, SL_EMISMATCH, "input %d '%s' must be "
		    "int64", i, t->name);
	if ((*v = sl_g_i64(g, t)) == NULL)
		return sl_errmsg_set(why, SL_EINVAL, "input %d '%s' is not known "
		    "before the run (it depends on float values)", i, t->name);
	*len = sl_g_numel(t);
	return 0;
}

static void
copy_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	sl_gtensor *y = sl_g_out(g, n, 0);

	(void)scratch;
	if (y->data != x->data)
		memmove(y->data, x->data, sl_g_numel(x) * sl_g_dtype_size(x->dtype));
}

/* --- Shape ---------------------------------------------------------------------- */

static int
shape_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	shape_attr *s;
	int rc;

	(void)g;
	if ((rc = attr_new(n, &s)) != 0)
		return rc;
	if ((rc = sl_g_attr_int(a, "start", &s->start, why)) < 0)
		return rc;
	s->has_start = rc;
	if ((rc = sl_g_attr_int(a, "end", &s->end, why)) < 0)
		return rc;
	s->has_end = rc;
	return 0;
}

static void
shape_range(const shape_attr *s, int rank, int64_t *b, int64_t *e)
{
	*b = s->has_start ? s->start : 0;
	*e = s->has_end ? s->end : rank;
	if (*b < 0)
		*b += rank;
	if (*e < 0)
		*e += rank;
	*b = *b < 0 ? 0 : *b > rank ? rank : *b;
	*e = *e < 0 ? 0 : *e > rank ? rank : *e;
	if (*e < *b)
		*e = *b;
}

static int
shape_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	int64_t b, e, d;

	shape_range(n->attr, sl_g_in(g, n, 0)->rank, &b, &e);
	d = e - b;
	return sl_g_set_shape(sl_g_out(g, n, 0), SL_G_I64, 1, &d, why);
}

static void
shape_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	int64_t *y = sl_g_out(g, n, 0)->data, b, e;

	(void)scratch;
	shape_range(n->attr, x->rank, &b, &e);
	for (int64_t i = b; i < e; i++)
		y[i - b] = x->dims[i];
}

/* --- Gather ---------------------------------------------------------------------- */

static int
axis_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	shape_attr *s;
	int rc;

	(void)g;
	if ((rc = attr_new(n, &s)) != 0)
		return rc;
	if ((rc = sl_g_attr_int(a, "axis", &s->axis, why)) < 0)
		return rc;
	s->has_axis = rc;
	return 0;
}

static int
gather_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *x = sl_g_in(g, n, 0), *ix = sl_g_in(g, n, 1);
	shape_attr *s = n->attr;
	int64_t axis = 0, od[SL_G_MAX_RANK];
	const int64_t *iv;
	int r = 0, rc;

	if (ix->dtype != SL_G_I64)
		return sl_errmsg_set(why, SL_EMISMATCH, "indices must be integers");
	if ((rc = norm_axis(s->axis, x->rank, &axis, why)) != 0)
		return rc;
	if (x->rank - 1 + ix->rank > SL_G_MAX_RANK)
		return sl_errmsg_set(why, SL_ELIMIT, "output rank over %d",
		    SL_G_MAX_RANK);
	/* Indices are checked whenever their values are known; at run they
	 * always are (int64 tensors are computed before their consumers). */
	if ((iv = sl_g_i64(g, ix)) != NULL) {
		const size_t k = sl_g_numel(ix);

		for (size_t i = 0; i < k; i++)
			if (iv[i] < -x->dims[axis] || iv[i] >= x->dims[axis])
				return sl_errmsg_set(why, SL_EMISMATCH, "index %lld "
				    "out of range for dimension %lld of size %lld",
				    (long long)iv[i], (long long)axis,
				    (long long)x->dims[axis]);
	}
	for (int i = 0; i < axis; i++)
		od[r++] = x->dims[i];
	for (int i = 0; i < ix->rank; i++)
		od[r++] = ix->dims[i];
	for (int i = (int)axis + 1; i < x->rank; i++)
		od[r++] = x->dims[i];
	return sl_g_set_shape(sl_g_out(g, n, 0), x->dtype, r, od, why);
}

static void
gather_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const sl_gtensor *x = sl_g_in(g, n, 0), *ix = sl_g_in(g, n, 1);
	const shape_attr *s = n->attr;
	const int64_t axis = s->axis < 0 ? s->axis + x->rank : s->axis;
	const size_t es = sl_g_dtype_size(x->dtype), k = sl_g_numel(ix);
	const int64_t *iv = ix->data;
	size_t outer = 1, inner = 1;
	unsigned char *y = sl_g_out(g, n, 0)->data;
	const unsigned char *src = x->data;

	(void)scratch;
	for (int i = 0; i < axis; i++)
		outer *= (size_t)x->dims[i];
	for (int i = (int)axis + 1; i < x->rank; i++)
		inner *= (size_t)x->dims[i];
	for (size_t o = 0; o < outer; o++)
		for (size_t j = 0; j < k; j++) {
			const int64_t v = iv[j] < 0 ? iv[j] + x->dims[axis] : iv[j];

			memcpy(y, src + ((o * (size_t)x->dims[axis] + (size_t)v) *
			    inner) * es, inner * es);
			y += inner * es;
		}
}

/* --- Concat ----------------------------------------------------------------------- */

static int
concat_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *x0 = sl_g_in(g, n, 0);
	shape_attr *s = n->attr;
	int64_t axis = 0, od[SL_G_MAX_RANK];
	char s1[96], s2[96];
	int rc;

	if (!s->has_axis)
		return sl_errmsg_set(why, SL_EFORMAT, "Concat without axis");
	if ((rc = norm_axis(s->axis, x0->rank, &axis, why)) != 0)
		return rc;
	memcpy(od, x0->dims, sizeof od);
	od[axis] = 0;
	for (int i = 0; i < n->nin; i++) {
		const sl_gtensor *x = sl_g_in(g, n, i);

		if (x == NULL)
			return sl_errmsg_set(why, SL_EFORMAT, "input %d left out", i);
		if (x->dtype != x0->dtype || x->rank != x0->rank)
			return sl_errmsg_set(why, SL_EMISMATCH, "Concat of %s and %s",
			    sl_g_shape_str(x0, s1, sizeof s1),
			    sl_g_shape_str(x, s2, sizeof s2));
		for (int d = 0; d < x->rank; d++)
			if (d != axis && x->dims[d] != x0->dims[d])
				return sl_errmsg_set(why, SL_EMISMATCH, "Concat on "
				    "axis %lld of %s and %s", (long long)axis,
				    sl_g_shape_str(x0, s1, sizeof s1),
				    sl_g_shape_str(x, s2, sizeof s2));
		od[axis] += x->dims[axis];
	}
	return sl_g_set_shape(sl_g_out(g, n, 0), x0->dtype, x0->rank, od, why);
}

static void
concat_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const sl_gtensor *x0 = sl_g_in(g, n, 0);
	const shape_attr *s = n->attr;
	const int64_t axis = s->axis < 0 ? s->axis + x0->rank : s->axis;
	const size_t es = sl_g_dtype_size(x0->dtype);
	size_t outer = 1, inner = 1, yrow = 0, off = 0;
	unsigned char *y = sl_g_out(g, n, 0)->data;

	(void)scratch;
	for (int i = 0; i < axis; i++)
		outer *= (size_t)x0->dims[i];
	for (int i = (int)axis + 1; i < x0->rank; i++)
		inner *= (size_t)x0->dims[i];
	for (int i = 0; i < n->nin; i++)
		yrow += (size_t)sl_g_in(g, n, i)->dims[axis] * inner;
	for (int i = 0; i < n->nin; i++) {
		const sl_gtensor *x = sl_g_in(g, n, i);
		const size_t row = (size_t)x->dims[axis] * inner;

		for (size_t o = 0; o < outer; o++)
			memcpy(y + (o * yrow + off) * es, (const unsigned char *)x->data +
			    o * row * es, row * es);
		off += row;
	}
}

/* --- Reshape, Flatten, Squeeze, Unsqueeze: new dims, same bytes ---------------------- */

static int
reshape_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	shape_attr *s;
	int64_t az = 0;
	int rc;

	(void)g;
	if ((rc = attr_new(n, &s)) != 0)
		return rc;
	if ((rc = sl_g_attr_int(a, "allowzero", &az, why)) < 0)
		return rc;
	s->allowzero = az != 0;
	return 0;
}

static int
reshape_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	const shape_attr *s = n->attr;
	const int64_t *v;
	int64_t od[SL_G_MAX_RANK], known = 1;
	size_t len;
	int minus = -1, rc;
	char s1[96];

	if ((rc = need_i64(g, n, 1, &v, &len, why)) != 0)
		return rc;
	if (len > SL_G_MAX_RANK)
		return sl_errmsg_set(why, SL_ELIMIT, "shape of rank %zu", len);
	for (size_t i = 0; i < len; i++) {
		if (v[i] == -1) {
			if (minus >= 0)
				return sl_errmsg_set(why, SL_EMISMATCH, "two -1 in the "
				    "shape");
			minus = (int)i;
			od[i] = 1;
			continue;
		}
		if (v[i] < -1)
			return sl_errmsg_set(why, SL_EMISMATCH, "shape value %lld",
			    (long long)v[i]);
		if (v[i] == 0 && !s->allowzero) {
			if ((int)i >= x->rank)
				return sl_errmsg_set(why, SL_EMISMATCH, "shape copies "
				    "dimension %zu of %s", i, sl_g_shape_str(x, s1,
				    sizeof s1));
			od[i] = x->dims[i];
		} else {
			od[i] = v[i];
		}
		/* Any product past the element limit fits no input: stop
		 * before it overflows. */
		if (od[i] > 0 && known > SL_G_MAX_ELEMS / od[i])
			return sl_errmsg_set(why, SL_ELIMIT, "shape of more than "
			    "%lld elements", (long long)SL_G_MAX_ELEMS);
		known *= od[i];
	}
	if (minus >= 0) {
		if (known == 0 || (int64_t)sl_g_numel(x) % known != 0)
			return sl_errmsg_set(why, SL_EMISMATCH, "cannot reshape %s "
			    "with a -1", sl_g_shape_str(x, s1, sizeof s1));
		od[minus] = (int64_t)sl_g_numel(x) / known;
		known *= od[minus];
	}
	if (known != (int64_t)sl_g_numel(x))
		return sl_errmsg_set(why, SL_EMISMATCH, "cannot reshape %s into "
		    "%lld elements", sl_g_shape_str(x, s1, sizeof s1),
		    (long long)known);
	return sl_g_set_shape(sl_g_out(g, n, 0), x->dtype, (int)len, od, why);
}

static int
flatten_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	const shape_attr *s = n->attr;
	int64_t axis = s->has_axis ? s->axis : 1, od[2] = { 1, 1 };

	if (axis < 0)
		axis += x->rank;
	if (axis < 0 || axis > x->rank)
		return sl_errmsg_set(why, SL_EMISMATCH, "axis %lld for rank %d",
		    (long long)s->axis, x->rank);
	for (int i = 0; i < x->rank; i++)
		od[i < axis ? 0 : 1] *= x->dims[i];
	return sl_g_set_shape(sl_g_out(g, n, 0), x->dtype, 2, od, why);
}

/* Axes of Squeeze/Unsqueeze: an attribute before opset 13, an input from
 * 13 on (optional for Squeeze). */
static int
axes_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	shape_attr *s;
	const int64_t *v;
	size_t k;
	int rc;

	(void)g;
	if ((rc = attr_new(n, &s)) != 0)
		return rc;
	if ((rc = sl_g_attr_ints(a, "axes", &v, &k, why)) < 0)
		return rc;
	if (rc == 1) {
		if (k > SL_G_MAX_RANK)
			return sl_errmsg_set(why, SL_ELIMIT, "%zu axes", k);
		memcpy(s->ints, v, k * sizeof *v);
		s->nints = k;
		s->has_axis = 1;
	}
	return 0;
}

static int
get_axes(sl_graph *g, sl_gnode *n, const int64_t **v, size_t *k, int *given,
    sl_errmsg *why)
{
	shape_attr *s = n->attr;

	*given = 0;
	if (sl_g_in(g, n, 1) != NULL) {
		*given = 1;
		return need_i64(g, n, 1, v, k, why);
	}
	if (s->has_axis) {
		*given = 1;
		*v = s->ints;
		*k = s->nints;
	}
	return 0;
}

static int
unsqueeze_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	const int64_t *v = NULL;
	int64_t od[SL_G_MAX_RANK];
	unsigned char mark[SL_G_MAX_RANK] = { 0 };
	size_t k = 0;
	int given, rc, r, j = 0;

	if ((rc = get_axes(g, n, &v, &k, &given, why)) != 0)
		return rc;
	if (!given)
		return sl_errmsg_set(why, SL_EFORMAT, "Unsqueeze without axes");
	r = x->rank + (int)k;
	if (r > SL_G_MAX_RANK)
		return sl_errmsg_set(why, SL_ELIMIT, "rank %d over %d", r,
		    SL_G_MAX_RANK);
	for (size_t i = 0; i < k; i++) {
		int64_t a = 0;

		if ((rc = norm_axis(v[i], r, &a, why)) != 0)
			return rc;
		if (mark[a])
			return sl_errmsg_set(why, SL_EMISMATCH, "axis %lld twice",
			    (long long)v[i]);
		mark[a] = 1;
	}
	for (int i = 0; i < r; i++)
		od[i] = mark[i] ? 1 : x->dims[j++];
	return sl_g_set_shape(sl_g_out(g, n, 0), x->dtype, r, od, why);
}

static int
squeeze_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	const int64_t *v = NULL;
	int64_t od[SL_G_MAX_RANK];
	unsigned char mark[SL_G_MAX_RANK] = { 0 };
	size_t k = 0;
	int given, rc, r = 0;
	char s1[96];

	if ((rc = get_axes(g, n, &v, &k, &given, why)) != 0)
		return rc;
	for (size_t i = 0; i < k; i++) {
		int64_t a = 0;

		if ((rc = norm_axis(v[i], x->rank, &a, why)) != 0)
			return rc;
		if (x->dims[a] != 1)
			return sl_errmsg_set(why, SL_EMISMATCH, "cannot squeeze "
			    "axis %lld of %s", (long long)v[i],
			    sl_g_shape_str(x, s1, sizeof s1));
		mark[a] = 1;
	}
	for (int i = 0; i < x->rank; i++)
		if (!(given ? mark[i] : x->dims[i] == 1))
			od[r++] = x->dims[i];
	return sl_g_set_shape(sl_g_out(g, n, 0), x->dtype, r, od, why);
}

/* --- Transpose ---------------------------------------------------------------------- */

static int
transpose_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	shape_attr *s;
	const int64_t *v;
	size_t k;
	int rc;

	(void)g;
	if ((rc = attr_new(n, &s)) != 0)
		return rc;
	if ((rc = sl_g_attr_ints(a, "perm", &v, &k, why)) < 0)
		return rc;
	if (rc == 1) {
		if (k > SL_G_MAX_RANK)
			return sl_errmsg_set(why, SL_ELIMIT, "perm of %zu", k);
		memcpy(s->ints, v, k * sizeof *v);
		s->nints = k;
		s->has_axis = 1;
	}
	return 0;
}

static int
transpose_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	shape_attr *s = n->attr;
	int64_t od[SL_G_MAX_RANK], st[SL_G_MAX_RANK], perm[SL_G_MAX_RANK];
	unsigned char seen[SL_G_MAX_RANK] = { 0 };

	if (s->has_axis && (int)s->nints != x->rank)
		return sl_errmsg_set(why, SL_EMISMATCH, "perm of %zu for rank %d",
		    s->nints, x->rank);
	for (int i = 0; i < x->rank; i++) {
		perm[i] = s->has_axis ? s->ints[i] : x->rank - 1 - i;
		if (perm[i] < 0 || perm[i] >= x->rank || seen[perm[i]]++)
			return sl_errmsg_set(why, SL_EMISMATCH, "perm is not a "
			    "permutation of 0..%d", x->rank - 1);
	}
	strides_of(x->dims, x->rank, st);
	for (int i = 0; i < x->rank; i++) {
		od[i] = x->dims[perm[i]];
		s->istride[i] = st[perm[i]];
	}
	s->ioff = 0;
	return sl_g_set_shape(sl_g_out(g, n, 0), x->dtype, x->rank, od, why);
}

/* Transpose, Slice, Expand: the strides infer computed. */
static void
strided_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	sl_gtensor *y = sl_g_out(g, n, 0);
	const shape_attr *s = n->attr;

	(void)scratch;
	strided_copy(y->data, x->data, sl_g_dtype_size(x->dtype), y->rank,
	    y->dims, s->istride, s->ioff, NULL);
}

/* --- Slice ---------------------------------------------------------------------------- */

/* Before opset 10 starts, ends and axes are attributes. */
static int
slice_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	shape_attr *s;
	const int64_t *v;
	size_t k;
	int rc;

	if ((rc = attr_new(n, &s)) != 0)
		return rc;
	if (g->opset >= 10) {
		if (n->nin < 3)
			return sl_errmsg_set(why, SL_EFORMAT, "Slice needs data, "
			    "starts and ends");
		return 0;
	}
	if ((rc = sl_g_attr_ints(a, "starts", &v, &k, why)) != 1 ||
	    k > SL_G_MAX_RANK)
		return rc < 0 ? rc : sl_errmsg_set(why, SL_EFORMAT, "starts");
	memcpy(s->ints, v, k * sizeof *v);
	s->nints = k;
	if ((rc = sl_g_attr_ints(a, "ends", &v, &k, why)) != 1 || k != s->nints)
		return rc < 0 ? rc : sl_errmsg_set(why, SL_EFORMAT, "ends");
	memcpy(s->ints2, v, k * sizeof *v);
	s->nints2 = k;
	if ((rc = sl_g_attr_ints(a, "axes", &v, &k, why)) < 0)
		return rc;
	if (rc == 1) {
		if (k != s->nints)
			return sl_errmsg_set(why, SL_EFORMAT, "axes");
		memcpy(s->ints3, v, k * sizeof *v);
		s->nints3 = k;
		s->has_axis = 1;
	}
	return 0;
}

static int64_t
clamp(int64_t v, int64_t lo, int64_t hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static int
slice_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	shape_attr *s = n->attr;
	const int64_t *st = s->ints, *en = s->ints2, *ax = NULL, *sp = NULL;
	size_t k = s->nints, k2 = s->nints2, k3 = 0, k4 = 0;
	int64_t od[SL_G_MAX_RANK], xs[SL_G_MAX_RANK], step[SL_G_MAX_RANK],
	    begin[SL_G_MAX_RANK];
	unsigned char seen[SL_G_MAX_RANK] = { 0 };
	int rc;

	if (g->opset >= 10) {
		if ((rc = need_i64(g, n, 1, &st, &k, why)) != 0 ||
		    (rc = need_i64(g, n, 2, &en, &k2, why)) != 0)
			return rc;
		if (sl_g_in(g, n, 3) != NULL &&
		    (rc = need_i64(g, n, 3, &ax, &k3, why)) != 0)
			return rc;
		if (sl_g_in(g, n, 4) != NULL &&
		    (rc = need_i64(g, n, 4, &sp, &k4, why)) != 0)
			return rc;
	} else if (s->has_axis) {
		ax = s->ints3;
		k3 = s->nints3;
	}
	if (k != k2 || (ax && k3 != k) || (sp && k4 != k) ||
	    k > (size_t)x->rank)
		return sl_errmsg_set(why, SL_EMISMATCH, "starts, ends, axes and "
		    "steps differ in length");
	for (int i = 0; i < x->rank; i++) {
		od[i] = x->dims[i];
		step[i] = 1;
		begin[i] = 0;
	}
	for (size_t i = 0; i < k; i++) {
		int64_t a = ax ? ax[i] : (int64_t)i, d, b, e, p = sp ? sp[i] : 1;

		if ((rc = norm_axis(a, x->rank, &a, why)) != 0)
			return rc;
		if (seen[a]++)
			return sl_errmsg_set(why, SL_EMISMATCH, "axis %lld twice",
			    (long long)a);
		if (p == 0)
			return sl_errmsg_set(why, SL_EMISMATCH, "step 0");
		d = x->dims[a];
		b = st[i] < 0 ? st[i] + d : st[i];
		e = en[i] < 0 ? en[i] + d : en[i];
		/* Large values (INT64_MAX for "to the end") wrap nowhere:
		 * the clamps below hold them. */
		if (st[i] < 0 && b < 0)
			b = 0;
		if (en[i] < 0 && e < 0)
			e = p > 0 ? 0 : -1;
		if (p > 0) {
			b = clamp(b, 0, d);
			e = clamp(e, 0, d);
			od[a] = e > b ? (e - b + p - 1) / p : 0;
		} else {
			b = clamp(b, 0, d - 1);
			e = clamp(e, -1, d - 1);
			od[a] = b > e ? (b - e - p - 1) / -p : 0;
		}
		begin[a] = b;
		step[a] = p;
	}
	strides_of(x->dims, x->rank, xs);
	s->ioff = 0;
	for (int i = 0; i < x->rank; i++) {
		s->istride[i] = xs[i] * step[i];
		s->ioff += begin[i] * xs[i];
	}
	return sl_g_set_shape(sl_g_out(g, n, 0), x->dtype, x->rank, od, why);
}

/* --- Expand, Tile ---------------------------------------------------------------------- */

static int
expand_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	shape_attr *s = n->attr;
	const int64_t *v;
	int64_t od[SL_G_MAX_RANK], xs[SL_G_MAX_RANK];
	size_t k;
	int r, rc;
	char s1[96];

	if ((rc = need_i64(g, n, 1, &v, &k, why)) != 0)
		return rc;
	r = (int)k > x->rank ? (int)k : x->rank;
	if (r > SL_G_MAX_RANK)
		return sl_errmsg_set(why, SL_ELIMIT, "rank %d", r);
	strides_of(x->dims, x->rank, xs);
	for (int i = 0; i < r; i++) {
		const int ix = i - (r - x->rank), iv = i - (r - (int)k);
		const int64_t a = ix >= 0 ? x->dims[ix] : 1, b = iv >= 0 ? v[iv] : 1;

		if (a != b && a != 1 && b != 1)
			return sl_errmsg_set(why, SL_EMISMATCH, "cannot expand %s "
			    "to a shape with %lld at dimension %d",
			    sl_g_shape_str(x, s1, sizeof s1), (long long)b, i);
		od[i] = a == 1 ? b : a;
		s->istride[i] = ix >= 0 && a != 1 ? xs[ix] : 0;
	}
	s->ioff = 0;
	return sl_g_set_shape(sl_g_out(g, n, 0), x->dtype, r, od, why);
}

static int
tile_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	shape_attr *s = n->attr;
	const int64_t *v;
	int64_t od[SL_G_MAX_RANK];
	size_t k;
	int rc;

	if ((rc = need_i64(g, n, 1, &v, &k, why)) != 0)
		return rc;
	if ((int)k != x->rank)
		return sl_errmsg_set(why, SL_EMISMATCH, "%zu repeats for rank %d",
		    k, x->rank);
	strides_of(x->dims, x->rank, s->istride);
	for (int i = 0; i < x->rank; i++) {
		if (v[i] < 0)
			return sl_errmsg_set(why, SL_EMISMATCH, "repeat %lld",
			    (long long)v[i]);
		if (v[i] > 0 && x->dims[i] > SL_G_MAX_ELEMS / v[i])
			return sl_errmsg_set(why, SL_ELIMIT, "repeat %lld of a "
			    "dimension of %lld", (long long)v[i],
			    (long long)x->dims[i]);
		od[i] = x->dims[i] * v[i];
		s->idims[i] = x->dims[i] ? x->dims[i] : 1;
	}
	s->ioff = 0;
	return sl_g_set_shape(sl_g_out(g, n, 0), x->dtype, x->rank, od, why);
}

static void
tile_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	sl_gtensor *y = sl_g_out(g, n, 0);
	const shape_attr *s = n->attr;

	(void)scratch;
	strided_copy(y->data, x->data, sl_g_dtype_size(x->dtype), y->rank,
	    y->dims, s->istride, 0, s->idims);
}

/* --- Split ------------------------------------------------------------------------------ */

static int
split_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	shape_attr *s;
	const int64_t *v;
	size_t k;
	int rc;

	if ((rc = axis_init(g, n, a, why)) != 0)
		return rc;
	s = n->attr;
	if ((rc = sl_g_attr_int(a, "num_outputs", &s->start, why)) < 0)
		return rc;
	if ((rc = sl_g_attr_ints(a, "split", &v, &k, why)) < 0)
		return rc;
	if (rc == 1) {
		if (k != (size_t)n->nout || k > SL_G_MAX_RANK * 2)
			return sl_errmsg_set(why, SL_EFORMAT, "split of %zu for %d "
			    "outputs", k, n->nout);
		memcpy(s->ints, v, k * sizeof *v);
		s->nints = k;
	}
	return 0;
}

static int
split_sizes(sl_graph *g, sl_gnode *n, int64_t *sz, sl_errmsg *why)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	const shape_attr *s = n->attr;
	const int64_t axis = s->axis < 0 ? s->axis + x->rank : s->axis;
	const int64_t d = x->dims[axis];
	const int64_t *v = NULL;
	size_t k = 0;
	int64_t sum = 0;
	int rc;

	if (sl_g_in(g, n, 1) != NULL) {
		if ((rc = need_i64(g, n, 1, &v, &k, why)) != 0)
			return rc;
	} else if (s->nints > 0) {
		v = s->ints;
		k = s->nints;
	}
	if (v != NULL) {
		if (k != (size_t)n->nout)
			return sl_errmsg_set(why, SL_EMISMATCH, "split of %zu for %d "
			    "outputs", k, n->nout);
		for (size_t i = 0; i < k; i++) {
			if (v[i] < 0)
				return sl_errmsg_set(why, SL_EMISMATCH, "split size "
				    "%lld", (long long)v[i]);
			sz[i] = v[i];
			sum += v[i];
		}
		if (sum != d)
			return sl_errmsg_set(why, SL_EMISMATCH, "split sizes add up "
			    "to %lld, dimension is %lld", (long long)sum,
			    (long long)d);
		return 0;
	}
	/* Equal parts, the last one smaller when d does not divide. */
	const int64_t part = (d + n->nout - 1) / n->nout;

	for (int i = 0; i < n->nout; i++) {
		sz[i] = d - sum < part ? d - sum : part;
		sum += sz[i];
	}
	return 0;
}

static int
split_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	shape_attr *s = n->attr;
	int64_t axis = 0, sz[SL_G_MAX_IO], od[SL_G_MAX_RANK];
	int rc;

	if ((rc = norm_axis(s->axis, x->rank, &axis, why)) != 0 ||
	    (rc = split_sizes(g, n, sz, why)) != 0)
		return rc;
	for (int i = 0; i < n->nout; i++) {
		memcpy(od, x->dims, sizeof od);
		od[axis] = sz[i];
		if ((rc = sl_g_set_shape(sl_g_out(g, n, i), x->dtype, x->rank, od,
		    why)) != 0)
			return rc;
	}
	return 0;
}

static void
split_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const sl_gtensor *x = sl_g_in(g, n, 0);
	const shape_attr *s = n->attr;
	const int64_t axis = s->axis < 0 ? s->axis + x->rank : s->axis;
	const size_t es = sl_g_dtype_size(x->dtype);
	size_t outer = 1, inner = 1, off = 0;
	const unsigned char *src = x->data;

	(void)scratch;
	for (int i = 0; i < axis; i++)
		outer *= (size_t)x->dims[i];
	for (int i = (int)axis + 1; i < x->rank; i++)
		inner *= (size_t)x->dims[i];
	for (int i = 0; i < n->nout; i++) {
		sl_gtensor *y = sl_g_out(g, n, i);
		const size_t row = (size_t)y->dims[axis] * inner,
		    xrow = (size_t)x->dims[axis] * inner;

		for (size_t o = 0; o < outer; o++)
			memcpy((unsigned char *)y->data + o * row * es,
			    src + (o * xrow + off) * es, row * es);
		off += row;
	}
}

/* --- ConstantOfShape, Range ---------------------------------------------------------------- */

static int
cos_init(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why)
{
	shape_attr *s;
	int rc, t;

	if ((rc = attr_new(n, &s)) != 0)
		return rc;
	s->vdtype = SL_G_F32;
	if ((rc = sl_g_attr_tensor(a, "value", &t, why)) < 0)
		return rc;
	if (rc == 1) {
		const sl_gtensor *v = &g->t[t];

		if (sl_g_numel(v) != 1 || sl_g_dtype_size(v->dtype) == 0)
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "value must be "
			    "one float32, int64 or bool element");
		s->vdtype = v->dtype;
		memcpy(s->value, v->data, sl_g_dtype_size(v->dtype));
	}
	return 0;
}

static int
cos_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const shape_attr *s = n->attr;
	const int64_t *v;
	size_t k;
	int rc;

	if ((rc = need_i64(g, n, 0, &v, &k, why)) != 0)
		return rc;
	if (k > SL_G_MAX_RANK)
		return sl_errmsg_set(why, SL_ELIMIT, "rank %zu", k);
	return sl_g_set_shape(sl_g_out(g, n, 0), s->vdtype, (int)k, v, why);
}

static void
cos_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	sl_gtensor *y = sl_g_out(g, n, 0);
	const shape_attr *s = n->attr;
	const size_t es = sl_g_dtype_size(y->dtype), m = sl_g_numel(y);

	(void)scratch;
	for (size_t i = 0; i < m; i++)
		memcpy((unsigned char *)y->data + i * es, s->value, es);
}

/* Elements of Range(x, y, z) over floats: ceil((y - x) / z). */
static double
ceil_div_f(float x, float y, float z)
{
	return ceil(((double)y - (double)x) / (double)z);
}

static int
range_infer(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	const sl_gtensor *a = sl_g_in(g, n, 0), *b = sl_g_in(g, n, 1),
	    *d = sl_g_in(g, n, 2);
	int64_t len;

	if (a->dtype != b->dtype || a->dtype != d->dtype ||
	    sl_g_numel(a) != 1 || sl_g_numel(b) != 1 || sl_g_numel(d) != 1)
		return sl_errmsg_set(why, SL_EMISMATCH, "Range of three scalars "
		    "of one type");
	if (a->dtype == SL_G_I64) {
		const int64_t *x = sl_g_i64(g, a), *y = sl_g_i64(g, b),
		    *z = sl_g_i64(g, d);

		if (x == NULL || y == NULL || z == NULL)
			return sl_errmsg_set(why, SL_EINVAL, "Range bounds are not "
			    "known before the run");
		int64_t span, q, r;

		if (*z == 0)
			return sl_errmsg_set(why, SL_EMISMATCH, "Range delta 0");
		/* ceil((y - x) / z) without overflowing int64. */
		if (__builtin_sub_overflow(*y, *x, &span) ||
		    (*z == -1 && span == INT64_MIN))
			return sl_errmsg_set(why, SL_ELIMIT, "Range from %lld to "
			    "%lld", (long long)*x, (long long)*y);
		q = span / *z;
		r = span % *z;
		len = q + (r != 0 && (r > 0) == (*z > 0));
	} else if (a->dtype == SL_G_F32 && (a->flags & SL_GT_CONST) &&
	    (b->flags & SL_GT_CONST) && (d->flags & SL_GT_CONST)) {
		const float x = *(const float *)a->data, y = *(const float *)b->data,
		    z = *(const float *)d->data;

		double nd;

		if (z == 0.0f)
			return sl_errmsg_set(why, SL_EMISMATCH, "Range delta 0");
		/* Only a length in range converts to int64 (NaN, inf, 1e30
		 * would be undefined). */
		nd = ceil_div_f(x, y, z);
		if (!(nd <= (double)SL_G_MAX_ELEMS))
			return sl_errmsg_set(why, SL_ELIMIT, "Range of %g elements",
			    nd);
		len = nd > 0 ? (int64_t)nd : 0;
	} else {
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "Range of float32 "
		    "needs constant bounds");
	}
	if (len < 0)
		len = 0;
	return sl_g_set_shape(sl_g_out(g, n, 0), a->dtype, 1, &len, why);
}

static void
range_forward(sl_graph *g, sl_gnode *n, void *scratch)
{
	const sl_gtensor *a = sl_g_in(g, n, 0), *d = sl_g_in(g, n, 2);
	sl_gtensor *y = sl_g_out(g, n, 0);
	const size_t m = sl_g_numel(y);

	(void)scratch;
	if (y->dtype == SL_G_I64) {
		const int64_t x = *(const int64_t *)a->data,
		    z = *(const int64_t *)d->data;

		for (size_t i = 0; i < m; i++)
			((int64_t *)y->data)[i] = x + (int64_t)i * z;
	} else {
		const float x = *(const float *)a->data, z = *(const float *)d->data;

		for (size_t i = 0; i < m; i++)
			((float *)y->data)[i] = x + (float)i * z;
	}
}

const sl_gop sl_g_ops_shape[] = {
	{ "Shape", 1, 1, 1, 1, shape_init, shape_infer, shape_forward },
	{ "Gather", 2, 2, 1, 1, axis_init, gather_infer, gather_forward },
	{ "Concat", 1, SL_G_MAX_IO, 1, 1, axis_init, concat_infer, concat_forward },
	{ "Reshape", 2, 2, 1, 1, reshape_init, reshape_infer, copy_forward },
	{ "Flatten", 1, 1, 1, 1, axis_init, flatten_infer, copy_forward },
	{ "Unsqueeze", 1, 2, 1, 1, axes_init, unsqueeze_infer, copy_forward },
	{ "Squeeze", 1, 2, 1, 1, axes_init, squeeze_infer, copy_forward },
	{ "Transpose", 1, 1, 1, 1, transpose_init, transpose_infer, strided_forward },
	{ "Slice", 1, 5, 1, 1, slice_init, slice_infer, strided_forward },
	{ "Expand", 2, 2, 1, 1, axis_init, expand_infer, strided_forward },
	{ "Tile", 2, 2, 1, 1, axis_init, tile_infer, tile_forward },
	{ "Split", 1, 2, 1, SL_G_MAX_IO, split_init, split_infer, split_forward },
	{ "ConstantOfShape", 1, 1, 1, 1, cos_init, cos_infer, cos_forward },
	{ "Range", 3, 3, 1, 1, NULL, range_infer, range_forward },
	{ NULL, 0, 0, 0, 0, NULL, NULL, NULL },
};

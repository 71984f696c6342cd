/* graph.c - building, checking, folding, planning and running a graph.
 * The op kernels live in op_*.c; the file formats in onnx.c and mlp.c. */
#include "graph.h"
#include "fold.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t
sl_g_dtype_size(int dtype)
{
	switch (dtype) {
	case SL_G_F32: return 4;
	case SL_G_I64: return 8;
	case SL_G_BOOL: return 1;
	default: return 0;
	}
}

size_t
sl_g_numel(const sl_gtensor *t)
{
	size_t n = 1;

	for (int i = 0; i < t->rank; i++)
		n *= (size_t)t->dims[i];
	return n;
}

const int64_t *
sl_g_i64(const sl_graph *g, const sl_gtensor *t)
{
	(void)g;
	if (t == NULL || t->dtype != SL_G_I64 || !(t->flags & SL_GT_KNOWN) ||
	    t->data == NULL)
		return NULL;
	return t->data;
}

int
sl_g_set_shape(sl_gtensor *t, int dtype, int rank, const int64_t *dims,
    sl_errmsg *why)
{
	int64_t n = 1;

	if (rank < 0 || rank > SL_G_MAX_RANK)
		return sl_errmsg_set(why, SL_ELIMIT, "tensor '%s': rank %d is over "
		    "%d", t->name, rank, SL_G_MAX_RANK);
	for (int i = 0; i < rank; i++) {
		if (dims[i] < 0)
			return sl_errmsg_set(why, SL_EMISMATCH, "tensor '%s': "
			    "dimension %d is %lld", t->name, i, (long long)dims[i]);
		if (dims[i] != 0 && n > SL_G_MAX_ELEMS / dims[i])
			return sl_errmsg_set(why, SL_ELIMIT, "tensor '%s': more "
			    "than %lld elements", t->name,
			    (long long)SL_G_MAX_ELEMS);
		n *= dims[i];
	}
	t->dtype = dtype;
	t->rank = rank;
	for (int i = 0; i < rank; i++)
		t->dims[i] = dims[i];
	return 0;
}

const char *
sl_g_node_label(const sl_gnode *n, char *buf, size_t len)
{
	snprintf(buf, len, "node '%s' (%s)", n->name, n->op->name);
	return buf;
}

const char *
sl_g_shape_str(const sl_gtensor *t, char *buf, size_t len)
{
	size_t off = 0;

	off += (size_t)snprintf(buf, len, "[");
	for (int i = 0; i < t->rank && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%lld",
		    i ? ", " : "", (long long)t->dims[i]);
	if (off < len)
		snprintf(buf + off, len - off, "]");
	return buf;
}

/* --- attributes -------------------------------------------------------------- */

static const sl_gattr *
attr_find(const sl_gattrs *a, const char *name, int type, int *bad,
    sl_errmsg *why)
{
	*bad = 0;
	if (a == NULL)
		return NULL;
	for (int i = 0; i < a->n; i++) {
		if (strcmp(a->a[i].name, name) != 0)
			continue;
		if (a->a[i].type != type) {
			*bad = sl_errmsg_set(why, SL_EFORMAT, "attribute '%s' has "
			    "type %d, expected %d", name, a->a[i].type, type);
			return NULL;
		}
		return &a->a[i];
	}
	return NULL;
}

int
sl_g_attr_int(const sl_gattrs *a, const char *name, int64_t *v,
    sl_errmsg *why)
{
	int bad;
	const sl_gattr *x = attr_find(a, name, SL_GA_INT, &bad, why);

	if (x == NULL)
		return bad;
	*v = x->i;
	return 1;
}

int
sl_g_attr_float(const sl_gattrs *a, const char *name, float *v,
    sl_errmsg *why)
{
	int bad;
	const sl_gattr *x = attr_find(a, name, SL_GA_FLOAT, &bad, why);

	if (x == NULL)
		return bad;
	*v = x->f;
	return 1;
}

int
sl_g_attr_ints(const sl_gattrs *a, const char *name, const int64_t **v,
    size_t *n, sl_errmsg *why)
{
	int bad;
	const sl_gattr *x = attr_find(a, name, SL_GA_INTS, &bad, why);

	if (x == NULL)
		return bad;
	*v = x->ints;
	*n = x->n;
	return 1;
}

int
sl_g_attr_floats(const sl_gattrs *a, const char *name, const float **v,
    size_t *n, sl_errmsg *why)
{
	int bad;
	const sl_gattr *x = attr_find(a, name, SL_GA_FLOATS, &bad, why);

	if (x == NULL)
		return bad;
	*v = x->floats;
	*n = x->n;
	return 1;
}

int
sl_g_attr_string(const sl_gattrs *a, const char *name, const char **s,
    size_t *len, sl_errmsg *why)
{
	int bad;
	const sl_gattr *x = attr_find(a, name, SL_GA_STRING, &bad, why);

	if (x == NULL)
		return bad;
	*s = x->s;
	*len = x->slen;
	return 1;
}

int
sl_g_attr_tensor(const sl_gattrs *a, const char *name, int *tensor,
    sl_errmsg *why)
{
	int bad;
	const sl_gattr *x = attr_find(a, name, SL_GA_TENSOR, &bad, why);

	if (x == NULL)
		return bad;
	*tensor = x->tensor;
	return 1;
}

/* --- building ------------------------------------------------------------------ */

int
sl_g_new(sl_graph **out)
{
	sl_graph *g = calloc(1, sizeof *g);

	if (g == NULL)
		return SL_ENOMEM;
	*out = g;
	return 0;
}

void
sl_g_free(sl_graph **gp)
{
	sl_graph *g;

	if (gp == NULL || (g = *gp) == NULL)
		return;
	for (int i = 0; i < g->nt; i++) {
		free(g->t[i].name);
		if ((g->t[i].flags & SL_GT_CONST) || g->t[i].own)
			free(g->t[i].data);
	}
	for (int i = 0; i < g->nn; i++) {
		free(g->n[i].name);
		free(g->n[i].attr);
	}
	free(g->t);
	free(g->n);
	free(g->order);
	free(g->arena);
	free(g->scratch);
	free(g);
	*gp = NULL;
}

static char *
dupstr(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d = malloc(n);

	if (d != NULL)
		memcpy(d, s, n);
	return d;
}

int
sl_g_tensor_find(const sl_graph *g, const char *name)
{
	/* Linear: graphs have hundreds of tensors and this runs at load. */
	for (int i = g->nt - 1; i >= 0; i--)
		if (strcmp(g->t[i].name, name) == 0)
			return i;
	return -1;
}

int
sl_g_tensor_add(sl_graph *g, const char *name, int *idx, sl_errmsg *why)
{
	sl_gtensor *t;

	if (name[0] != '\0' && sl_g_tensor_find(g, name) >= 0)
		return sl_errmsg_set(why, SL_EFORMAT, "tensor '%s' is defined "
		    "twice", name);
	if (g->nt >= SL_G_MAX_TENSORS)
		return sl_errmsg_set(why, SL_ELIMIT, "more than %d tensors",
		    SL_G_MAX_TENSORS);
	if (g->nt == g->cap_t) {
		int cap = g->cap_t ? 2 * g->cap_t : 64;
		sl_gtensor *nt = realloc(g->t, (size_t)cap * sizeof *nt);

		if (nt == NULL)
			return SL_ENOMEM;
		g->t = nt;
		g->cap_t = cap;
	}
	t = &g->t[g->nt];
	memset(t, 0, sizeof *t);
	if ((t->name = dupstr(name)) == NULL)
		return SL_ENOMEM;
	t->producer = -1;
	t->last_use = -1;
	*idx = g->nt++;
	return 0;
}

int
sl_g_node_add(sl_graph *g, const sl_gop *op, const char *name, const int *in,
    int nin, const int *out, int nout, const sl_gattrs *a, sl_errmsg *why)
{
	sl_gnode *n;
	int rc;

	if (nin < op->min_in || nin > op->max_in || nin > SL_G_MAX_IO)
		return sl_errmsg_set(why, SL_EFORMAT, "node '%s' (%s): %d inputs, "
		    "expected %d to %d", name, op->name, nin, op->min_in,
		    op->max_in);
	if (nout < op->min_out || nout > op->max_out || nout > SL_G_MAX_IO)
		return sl_errmsg_set(why, SL_EFORMAT, "node '%s' (%s): %d outputs, "
		    "expected %d to %d", name, op->name, nout, op->min_out,
		    op->max_out);
	/* ONNX puts required inputs first: the first min_in must be there
	 * (an optional input left out is -1, its name ""). Op kernels read
	 * them without looking. */
	for (int i = 0; i < op->min_in; i++)
		if (in[i] < 0)
			return sl_errmsg_set(why, SL_EFORMAT, "node '%s' (%s): "
			    "input %d is required but left out", name, op->name,
			    i);
	for (int i = 0; i < nout; i++) {
		if (out[i] < 0)
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "node '%s' (%s): "
			    "output %d left out", name, op->name, i);
		if (g->t[out[i]].producer >= 0 || (g->t[out[i]].flags &
		    (SL_GT_CONST | SL_GT_INPUT)))
			return sl_errmsg_set(why, SL_EFORMAT, "node '%s' (%s): "
			    "tensor '%s' is produced twice", name, op->name,
			    g->t[out[i]].name);
	}
	if (g->nn >= SL_G_MAX_NODES)
		return sl_errmsg_set(why, SL_ELIMIT, "more than %d nodes",
		    SL_G_MAX_NODES);
	if (g->nn == g->cap_n) {
		int cap = g->cap_n ? 2 * g->cap_n : 64;
		sl_gnode *nn = realloc(g->n, (size_t)cap * sizeof *nn);

		if (nn == NULL)
			return SL_ENOMEM;
		g->n = nn;
		g->cap_n = cap;
	}
	n = &g->n[g->nn];
	memset(n, 0, sizeof *n);
	n->op = op;
	n->nin = nin;
	n->nout = nout;
	memcpy(n->in, in, (size_t)nin * sizeof *in);
	memcpy(n->out, out, (size_t)nout * sizeof *out);
	if ((n->name = dupstr(name)) == NULL)
		return SL_ENOMEM;
	if (op->init != NULL && (rc = op->init(g, n, a, why)) != 0) {
		char label[160];
		sl_errmsg inner = { "" };

		if (why != NULL)
			inner = *why;
		free(n->name);
		free(n->attr);
		return sl_errmsg_set(why, rc, "%s: %s", sl_g_node_label(&(sl_gnode){
		    .name = (char *)name, .op = op }, label, sizeof label),
		    inner.text);
	}
	for (int i = 0; i < nout; i++)
		g->t[out[i]].producer = g->nn;
	g->nn++;
	return 0;
}

/* --- planning ------------------------------------------------------------------ */

/* Kahn's algorithm over tensor producers. Fills g->order with every node;
 * nodes that stay unordered lie on a cycle. Consumers are found through a
 * per-tensor list (CSR), so ordering is linear in the graph's size. */
static int
toposort(sl_graph *g, sl_errmsg *why)
{
	int *indeg = calloc((size_t)g->nn + 1, sizeof *indeg);
	int *queue = malloc(((size_t)g->nn + 1) * sizeof *queue);
	int *first = calloc((size_t)g->nt + 2, sizeof *first);
	int *cons = malloc(((size_t)g->nn * SL_G_MAX_IO + 1) * sizeof *cons);
	int head = 0, tail = 0, rc = 0;

	free(g->order);
	g->order = malloc(((size_t)g->nn + 1) * sizeof *g->order);
	if (indeg == NULL || queue == NULL || first == NULL || cons == NULL ||
	    g->order == NULL) {
		rc = SL_ENOMEM;
		goto out;
	}
	for (int i = 0; i < g->nn; i++) {
		const sl_gnode *n = &g->n[i];

		for (int j = 0; j < n->nin; j++) {
			const sl_gtensor *t;

			if (n->in[j] < 0)
				continue;
			t = &g->t[n->in[j]];
			if (t->producer < 0 && !(t->flags & (SL_GT_CONST |
			    SL_GT_INPUT))) {
				char label[160];

				rc = sl_errmsg_set(why, SL_EFORMAT, "%s: input '%s' "
				    "is not produced by any node, initializer or "
				    "graph input", sl_g_node_label(n, label,
				    sizeof label), t->name);
				goto out;
			}
			if (t->producer >= 0) {
				indeg[i]++;
				first[n->in[j] + 2]++;
			}
		}
	}
	/* first[t + 1] .. first[t + 2] will index t's consumers in cons. */
	for (int t = 0; t < g->nt; t++)
		first[t + 2] += first[t + 1];
	for (int i = 0; i < g->nn; i++)
		for (int j = 0; j < g->n[i].nin; j++) {
			const int t = g->n[i].in[j];

			if (t >= 0 && g->t[t].producer >= 0)
				cons[first[t + 1]++] = i;
		}
	for (int i = 0; i < g->nn; i++)
		if (indeg[i] == 0)
			queue[tail++] = i;
	g->norder = 0;
	while (head < tail) {
		const int i = queue[head++];
		const sl_gnode *n = &g->n[i];

		g->order[g->norder++] = i;
		for (int j = 0; j < n->nout; j++) {
			const int t = n->out[j];

			for (int k = first[t]; k < first[t + 1]; k++)
				if (--indeg[cons[k]] == 0)
					queue[tail++] = cons[k];
		}
	}
	if (g->norder != g->nn) {
		for (int i = 0; i < g->nn; i++) {
			if (indeg[i] > 0) {
				char label[160];

				rc = sl_errmsg_set(why, SL_EFORMAT, "the graph has a "
				    "cycle through %s", sl_g_node_label(&g->n[i],
				    label, sizeof label));
				break;
			}
		}
	}
out:
	free(indeg);
	free(queue);
	free(first);
	free(cons);
	return rc;
}

static int
all_inputs_const(const sl_graph *g, const sl_gnode *n)
{
	for (int j = 0; j < n->nin; j++)
		if (n->in[j] >= 0 && !(g->t[n->in[j]].flags & SL_GT_CONST))
			return 0;
	return 1;
}

/* A node whose outputs are all int64 or bool runs at plan time when the
 * values it reads are known: Shape reads only its input's dims. */
static int
can_run_early(const sl_graph *g, const sl_gnode *n)
{
	for (int j = 0; j < n->nout; j++)
		if (g->t[n->out[j]].dtype == SL_G_F32)
			return 0;
	if (strcmp(n->op->name, "Shape") == 0)
		return 1;
	for (int j = 0; j < n->nin; j++)
		if (n->in[j] >= 0 && !(g->t[n->in[j]].flags & SL_GT_KNOWN))
			return 0;
	return 1;
}

static void *
alloc64(size_t bytes)
{
	void *p = NULL;

	if (posix_memalign(&p, 64, bytes ? bytes : 64) != 0)
		return NULL;
	return p;
}

static int
infer_node(sl_graph *g, sl_gnode *n, sl_errmsg *why)
{
	sl_errmsg inner = { "" };
	char label[160];
	int rc;

	n->scratch_bytes = 0;
	if ((rc = n->op->infer(g, n, &inner)) != 0)
		return sl_errmsg_set(why, rc, "%s: %s", sl_g_node_label(n, label,
		    sizeof label), inner.text);
	for (int j = 0; j < n->nout; j++)
		if (sl_g_dtype_size(g->t[n->out[j]].dtype) == 0)
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "%s: output "
			    "'%s' has no dtype", sl_g_node_label(n, label,
			    sizeof label), g->t[n->out[j]].name);
	return 0;
}

/* Run n now (at plan time) into own buffers for its outputs; with
 * make_const its outputs become constants (folding). */
static int
run_now(sl_graph *g, sl_gnode *n, int make_const, sl_errmsg *why)
{
	void *scratch = NULL;

	for (int j = 0; j < n->nout; j++) {
		sl_gtensor *o = &g->t[n->out[j]];
		size_t bytes = sl_g_numel(o) * sl_g_dtype_size(o->dtype);

		if (make_const && g->const_bytes + bytes > SL_G_MAX_CONST_BYTES)
			return sl_errmsg_set(why, SL_ELIMIT, "folded constants "
			    "over %zu bytes", SL_G_MAX_CONST_BYTES);
		if (o->own || (o->flags & SL_GT_CONST)) {
			free(o->data);
			o->data = NULL;
		}
		if ((o->data = alloc64(bytes)) == NULL)
			return SL_ENOMEM;
		o->own = !make_const;
		o->cap_bytes = bytes ? bytes : 64;
		if (make_const) {
			o->flags |= SL_GT_CONST;
			g->const_bytes += bytes;
		}
	}
	if (n->scratch_bytes > 0 && (scratch = alloc64(n->scratch_bytes)) == NULL)
		return SL_ENOMEM;
	n->op->forward(g, n, scratch);
	free(scratch);
	for (int j = 0; j < n->nout; j++)
		g->t[n->out[j]].flags |= SL_GT_KNOWN;
	return 0;
}

typedef struct block {
	size_t off, size;
	int last;     /* last use, in run positions */
} block;

static int
cmp_block(const void *a, const void *b)
{
	const block *x = a, *y = b;

	return x->off < y->off ? -1 : x->off > y->off;
}

/* First fit over lifetimes: tensor intervals [produced, last use] that
 * overlap never overlap in the arena. */
static int
plan_arena(sl_graph *g, sl_errmsg *why)
{
	block *live = malloc(((size_t)g->nt + 1) * sizeof *live);
	block *sorted = malloc(((size_t)g->nt + 1) * sizeof *sorted);
	int nlive = 0, rc = 0;
	size_t top = 0;

	if (live == NULL || sorted == NULL) {
		rc = SL_ENOMEM;
		goto out;
	}
	for (int p = 0; p < g->norder; p++) {
		const sl_gnode *n = &g->n[g->order[p]];

		/* Blocks whose last use is before p are free again. */
		for (int i = 0; i < nlive;)
			if (live[i].last < p)
				live[i] = live[--nlive];
			else
				i++;
		for (int j = 0; j < n->nout; j++) {
			sl_gtensor *t = &g->t[n->out[j]];
			size_t size = (sl_g_numel(t) * 4 + 63) & ~(size_t)63;
			size_t off = 0;

			if (t->dtype != SL_G_F32)
				continue;
			if (size == 0)
				size = 64;
			memcpy(sorted, live, (size_t)nlive * sizeof *live);
			qsort(sorted, (size_t)nlive, sizeof *sorted, cmp_block);
			for (int i = 0; i < nlive; i++) {
				if (sorted[i].off >= off + size)
					break;
				if (sorted[i].off + sorted[i].size > off)
					off = sorted[i].off + sorted[i].size;
			}
			t->arena_off = off;
			t->cap_bytes = size;
			live[nlive++] = (block){ off, size,
			    (t->flags & SL_GT_OUTPUT) ? g->norder : t->last_use };
			if (off + size > top)
				top = off + size;
			if (top > SL_G_MAX_ARENA_BYTES) {
				rc = sl_errmsg_set(why, SL_ELIMIT, "activations need "
				    "more than %zu bytes at batch %d",
				    SL_G_MAX_ARENA_BYTES, g->max_batch);
				goto out;
			}
		}
	}
	g->arena_bytes = top;
out:
	free(live);
	free(sorted);
	return rc;
}

int
sl_g_plan(sl_graph *g, int max_batch, sl_errmsg *why)
{
	int rc, w = 0;

	g->max_batch = max_batch;
	if ((rc = toposort(g, why)) != 0)
		return rc;
	for (int i = 0; i < g->nt; i++)
		if (g->t[i].flags & SL_GT_CONST ||
		    ((g->t[i].flags & SL_GT_INPUT) && g->t[i].dtype != SL_G_F32 &&
		    g->t[i].data != NULL))
			g->t[i].flags |= SL_GT_KNOWN;
	/* Rewrites first (BatchNormalization into Conv), then fold and infer
	 * in order; folded nodes leave the run order. */
	if ((rc = sl_g_fold_rewrites(g, why)) != 0)
		return rc;
	for (int p = 0; p < g->norder; p++) {
		sl_gnode *n = &g->n[g->order[p]];

		if (n->folded)
			continue;
		if ((rc = infer_node(g, n, why)) != 0)
			return rc;
		if (all_inputs_const(g, n)) {
			if ((rc = run_now(g, n, 1, why)) != 0)
				return rc;
			n->folded = 1;
		} else if (can_run_early(g, n)) {
			if ((rc = run_now(g, n, 0, why)) != 0)
				return rc;
		}
	}
	for (int p = 0; p < g->norder; p++)
		if (!g->n[g->order[p]].folded)
			g->order[w++] = g->order[p];
	g->norder = w;
	for (int i = 0; i < g->noutputs; i++) {
		sl_gtensor *t = &g->t[g->outputs[i]];

		if (t->flags & (SL_GT_CONST | SL_GT_INPUT))
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "graph output "
			    "'%s' is a constant or an input", t->name);
	}

	/* Lifetimes, then memory: float tensors in the arena, others in
	 * buffers of their own sized now. */
	for (int p = 0; p < g->norder; p++) {
		const sl_gnode *n = &g->n[g->order[p]];

		for (int j = 0; j < n->nin; j++)
			if (n->in[j] >= 0)
				g->t[n->in[j]].last_use = p;
	}
	if ((rc = plan_arena(g, why)) != 0)
		return rc;
	free(g->arena);
	if ((g->arena = alloc64(g->arena_bytes)) == NULL)
		return SL_ENOMEM;
	g->scratch_bytes = 0;
	for (int p = 0; p < g->norder; p++) {
		sl_gnode *n = &g->n[g->order[p]];

		if (n->scratch_bytes > g->scratch_bytes)
			g->scratch_bytes = n->scratch_bytes;
		for (int j = 0; j < n->nout; j++) {
			sl_gtensor *t = &g->t[n->out[j]];

			if (t->dtype == SL_G_F32) {
				t->data = (char *)g->arena + t->arena_off;
			} else if (!t->own) {
				t->cap_bytes = sl_g_numel(t) * sl_g_dtype_size(t->dtype);
				if ((t->data = alloc64(t->cap_bytes)) == NULL)
					return SL_ENOMEM;
				t->own = 1;
			}
		}
	}
	free(g->scratch);
	if ((g->scratch = alloc64(g->scratch_bytes)) == NULL)
		return SL_ENOMEM;
	return 0;
}

int
sl_g_run(sl_graph *g, sl_errmsg *why)
{
	for (int p = 0; p < g->norder; p++) {
		sl_gnode *n = &g->n[g->order[p]];
		char label[160];
		int rc;

		if ((rc = infer_node(g, n, why)) != 0)
			return rc;
		if (n->scratch_bytes > g->scratch_bytes)
			return sl_errmsg_set(why, SL_ELIMIT, "%s needs %zu bytes of "
			    "workspace, %zu planned", sl_g_node_label(n, label,
			    sizeof label), n->scratch_bytes, g->scratch_bytes);
		for (int j = 0; j < n->nout; j++) {
			sl_gtensor *t = &g->t[n->out[j]];
			char shape[96];

			if (sl_g_numel(t) * sl_g_dtype_size(t->dtype) > t->cap_bytes)
				return sl_errmsg_set(why, SL_ELIMIT, "%s: output '%s' "
				    "%s outgrows its plan (%zu bytes)",
				    sl_g_node_label(n, label, sizeof label), t->name,
				    sl_g_shape_str(t, shape, sizeof shape),
				    t->cap_bytes);
		}
		n->op->forward(g, n, g->scratch);
		for (int j = 0; j < n->nout; j++)
			g->t[n->out[j]].flags |= SL_GT_KNOWN;
		__atomic_add_fetch(&g->progress, 1, __ATOMIC_RELAXED);
	}
	return 0;
}

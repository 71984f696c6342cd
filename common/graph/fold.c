/* fold.c - graph rewrites before constant folding: BatchNormalization
 * into Conv, activations into Conv, pass-throughs out of the run. */
#include "fold.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Consumers of tensor t among the nodes still in the run. */
static int
consumers(const sl_graph *g, int t)
{
	int c = 0;

	for (int i = 0; i < g->nn; i++) {
		if (g->n[i].folded)
			continue;
		for (int j = 0; j < g->n[i].nin; j++)
			c += g->n[i].in[j] == t;
	}
	return c;
}

static void
rewire(sl_graph *g, int from, int to)
{
	for (int i = 0; i < g->nn; i++)
		for (int j = 0; j < g->n[i].nin; j++)
			if (g->n[i].in[j] == from)
				g->n[i].in[j] = to;
}

static int
is_const_f32(const sl_graph *g, int t, int rank)
{
	return t >= 0 && (g->t[t].flags & SL_GT_CONST) &&
	    g->t[t].dtype == SL_G_F32 && (rank < 0 || g->t[t].rank == rank);
}

static int
new_const(sl_graph *g, const char *base, const char *suffix, int rank,
    const int64_t *dims, float **data, int *idx, sl_errmsg *why)
{
	char name[512];
	sl_gtensor *t;
	int rc;

	snprintf(name, sizeof name, "%s%s", base, suffix);
	if ((rc = sl_g_tensor_add(g, name, idx, why)) != 0)
		return rc;
	t = &g->t[*idx];
	if ((rc = sl_g_set_shape(t, SL_G_F32, rank, dims, why)) != 0)
		return rc;
	if ((t->data = malloc(sl_g_numel(t) * 4 + 4)) == NULL)
		return SL_ENOMEM;
	t->flags |= SL_GT_CONST | SL_GT_KNOWN;
	t->cap_bytes = sl_g_numel(t) * 4;
	*data = t->data;
	return 0;
}

/* Conv (constant W, B) -> BatchNormalization (constant parameters), the
 * Conv's output read by nothing else: the Conv takes
 *   W'[o] = W[o] * s[o],  B'[o] = (B[o] - mean[o]) * s[o] + beta[o],
 *   s[o] = gamma[o] / sqrt(var[o] + eps),
 * and produces the BatchNormalization's output itself. */
static int
fold_bn(sl_graph *g, sl_gnode *bn, sl_errmsg *why)
{
	const int x = bn->in[0];
	const sl_g_bn_attr *a = bn->attr;
	sl_gnode *conv;
	const sl_gtensor *W, *B, *gam, *bet, *mean, *var;
	int64_t oc, per;
	float *w2, *b2;
	int wi, bi, rc;

	if (bn->nout != 1 || a == NULL || g->t[x].producer < 0 ||
	    (g->t[x].flags & SL_GT_OUTPUT) || consumers(g, x) != 1)
		return 0;
	conv = &g->n[g->t[x].producer];
	if (conv->folded || strcmp(conv->op->name, "Conv") != 0 ||
	    !is_const_f32(g, conv->in[1], -1) || g->t[conv->in[1]].rank < 3 ||
	    (conv->nin > 2 && conv->in[2] >= 0 && !is_const_f32(g, conv->in[2], 1)))
		return 0;
	for (int j = 1; j < 5; j++)
		if (!is_const_f32(g, bn->in[j], 1))
			return 0;
	W = &g->t[conv->in[1]];
	oc = W->dims[0];
	B = conv->nin > 2 && conv->in[2] >= 0 ? &g->t[conv->in[2]] : NULL;
	gam = &g->t[bn->in[1]];
	bet = &g->t[bn->in[2]];
	mean = &g->t[bn->in[3]];
	var = &g->t[bn->in[4]];
	if (gam->dims[0] != oc || bet->dims[0] != oc || mean->dims[0] != oc ||
	    var->dims[0] != oc || (B != NULL && B->dims[0] != oc))
		return 0;
	per = (int64_t)(sl_g_numel(W) / (size_t)oc);
	if ((rc = new_const(g, g->t[conv->in[1]].name, ".bnfold", W->rank, W->dims,
	    &w2, &wi, why)) != 0)
		return rc;
	if ((rc = new_const(g, g->t[conv->in[1]].name, ".bnfold_bias", 1, &oc,
	    &b2, &bi, why)) != 0)
		return rc;
	/* g->t may have moved: take the pointers again. */
	W = &g->t[conv->in[1]];
	B = conv->nin > 2 && conv->in[2] >= 0 ? &g->t[conv->in[2]] : NULL;
	gam = &g->t[bn->in[1]];
	bet = &g->t[bn->in[2]];
	mean = &g->t[bn->in[3]];
	var = &g->t[bn->in[4]];
	for (int64_t o = 0; o < oc; o++) {
		const float *gv = gam->data, *bv = bet->data, *mv = mean->data,
		    *vv = var->data, *wv = W->data;
		const double s = (double)gv[o] / sqrt((double)vv[o] + (double)a->epsilon);
		const double b0 = B ? (double)((const float *)B->data)[o] : 0.0;

		for (int64_t k = 0; k < per; k++)
			w2[o * per + k] = (float)((double)wv[o * per + k] * s);
		b2[o] = (float)((b0 - (double)mv[o]) * s + (double)bv[o]);
	}
	g->const_bytes += sl_g_numel(&g->t[wi]) * 4 + (size_t)oc * 4;
	conv->in[1] = wi;
	conv->in[2] = bi;
	if (conv->nin < 3)
		conv->nin = 3;
	g->t[bn->out[0]].producer = (int)(conv - g->n);
	g->t[x].producer = -1;
	conv->out[0] = bn->out[0];
	bn->folded = 1;
	return 1;
}

/* The activation node n as an sl_g_act, or kind NONE when it is not one
 * a producer can apply: Relu, HardSwish, and Clip with constant scalar
 * bounds given as inputs (opset 11 on; before that they are attributes
 * op_eltwise.c keeps to itself). */
static sl_g_act
act_of(const sl_graph *g, const sl_gnode *n)
{
	sl_g_act a = { SL_G_ACT_NONE, -INFINITY, INFINITY };
	const char *op = n->op->name;

	if (strcmp(op, "Relu") == 0) {
		a.kind = SL_G_ACT_RELU;
	} else if (strcmp(op, "HardSwish") == 0) {
		a.kind = SL_G_ACT_HARDSWISH;
	} else if (strcmp(op, "Clip") == 0 && !(g->opset > 0 && g->opset < 11)) {
		for (int k = 1; k < n->nin; k++) {
			const int t = n->in[k];

			if (t < 0)
				continue;
			if (!is_const_f32(g, t, -1) || sl_g_numel(&g->t[t]) != 1)
				return a;
			if (k == 1)
				a.lo = *(const float *)g->t[t].data;
			else
				a.hi = *(const float *)g->t[t].data;
		}
		a.kind = SL_G_ACT_CLIP;
	}
	return a;
}

/* Conv or Add -> activation, the producer's output read by nothing else
 * and not a graph output: the producer applies the activation as it
 * writes each piece of its output (op_conv.c, op_eltwise.c) and produces
 * the activation's output itself. Saves a pass over one of the largest
 * tensors of the run per activation. */
static int
fuse_act(sl_graph *g, sl_gnode *n)
{
	const sl_g_act a = act_of(g, n);
	const int x = n->in[0];
	sl_gnode *p;

	/* Runs before shape inference: dtypes are not known yet. Conv's output
	 * is float whenever the Conv plans. */
	if (a.kind == SL_G_ACT_NONE || n->nout != 1 || x < 0 ||
	    g->t[x].producer < 0 || (g->t[x].flags & SL_GT_OUTPUT) ||
	    consumers(g, x) != 1)
		return 0;
	p = &g->n[g->t[x].producer];
	if (p->folded || p->nout != 1 || p->act.kind != SL_G_ACT_NONE)
		return 0;
	/* Add of two inputs (op_eltwise.c's add_act_forward), and only the
	 * activations that take floats alone: Clip also takes int64 (shape
	 * arithmetic), Relu and HardSwish refuse it, so the Add's infer
	 * refuses non-float inputs as they would have. */
	if (strcmp(p->op->name, "Add") == 0) {
		if (p->nin != 2 || a.kind == SL_G_ACT_CLIP)
			return 0;
	} else if (strcmp(p->op->name, "Conv") != 0) {
		return 0;
	}
	p->act = a;
	g->t[n->out[0]].producer = (int)(p - g->n);
	g->t[x].producer = -1;
	p->out[0] = n->out[0];
	n->folded = 1;
	return 1;
}

/* Identity, and Dropout whose mask nobody reads (inference), pass their
 * input on: consumers read the input instead. */
static int
skip_passthrough(sl_graph *g, sl_gnode *n)
{
	const int o = n->out[0];

	if (n->in[0] < 0 || (g->t[o].flags & SL_GT_OUTPUT))
		return 0;
	if (strcmp(n->op->name, "Dropout") == 0) {
		if (n->nout > 1 && (consumers(g, n->out[1]) > 0 ||
		    (g->t[n->out[1]].flags & SL_GT_OUTPUT)))
			return 0;
		/* training_mode given and not a constant false: keep it, the
		 * op refuses it. */
		if (n->nin > 2 && n->in[2] >= 0)
			return 0;
	} else if (strcmp(n->op->name, "Identity") != 0) {
		return 0;
	}
	rewire(g, o, n->in[0]);
	n->folded = 1;
	return 1;
}

int
sl_g_fold_rewrites(sl_graph *g, sl_errmsg *why)
{
	for (int p = 0; p < g->norder; p++) {
		sl_gnode *n = &g->n[g->order[p]];
		int rc = 0;

		if (n->folded)
			continue;
		if (strcmp(n->op->name, "BatchNormalization") == 0)
			rc = fold_bn(g, n, why);
		else if ((rc = fuse_act(g, n)) == 0)
			rc = skip_passthrough(g, n);
		if (rc < 0)
			return rc;
	}
	return 0;
}

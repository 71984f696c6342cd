/* mlp.c - a safetensors MLP as a graph: Gemm (transB, as nn.Linear stores
 * its weight) and Relu between, the same ops an ONNX export of the same
 * nn.Sequential runs. */
#include "graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int
add_param(sl_graph *g, const char *name, const float *src, int rank,
    const int64_t *dims, int *idx, sl_errmsg *why)
{
	sl_gtensor *t;
	size_t bytes;
	int rc;

	if ((rc = sl_g_tensor_add(g, name, idx, why)) != 0)
		return rc;
	t = &g->t[*idx];
	if ((rc = sl_g_set_shape(t, SL_G_F32, rank, dims, why)) != 0)
		return rc;
	bytes = sl_g_numel(t) * sizeof(float);
	if ((t->data = malloc(bytes)) == NULL)
		return SL_ENOMEM;
	memcpy(t->data, src, bytes);
	t->flags |= SL_GT_CONST;
	t->cap_bytes = bytes;
	g->const_bytes += bytes;
	return 0;
}

static int
build(sl_graph *g, const sl_mlp *m, sl_errmsg *why)
{
	const sl_gop *gemm = sl_g_op_find("Gemm"), *relu = sl_g_op_find("Relu");
	const sl_gattr transb = { .name = "transB", .type = SL_GA_INT, .i = 1 };
	const sl_gattrs a = { &transb, 1 };
	int x, rc;

	if (gemm == NULL || relu == NULL)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "Gemm or Relu missing "
		    "from the op table");
	if ((rc = sl_g_tensor_add(g, "input", &x, why)) != 0)
		return rc;
	g->t[x].flags |= SL_GT_INPUT;
	g->t[x].dtype = SL_G_F32;
	g->t[x].rank = 2;
	g->t[x].dims[0] = -1;
	g->t[x].dims[1] = m->sizes[0];
	g->inputs[g->ninputs++] = x;
	for (int l = 0; l < m->nlayers; l++) {
		const int64_t wd[2] = { m->sizes[l + 1], m->sizes[l] };
		const int64_t bd[1] = { m->sizes[l + 1] };
		char name[64], node[64];
		int in[3], y;

		in[0] = x;
		/* Named as PyTorch's state_dict names nn.Sequential's Linears. */
		snprintf(name, sizeof name, "%d.weight", 2 * l);
		if ((rc = add_param(g, name, m->W[l], 2, wd, &in[1], why)) != 0)
			return rc;
		snprintf(name, sizeof name, "%d.bias", 2 * l);
		if ((rc = add_param(g, name, m->b[l], 1, bd, &in[2], why)) != 0)
			return rc;
		snprintf(name, sizeof name, l + 1 < m->nlayers ? "linear%d" :
		    "logits", l);
		if ((rc = sl_g_tensor_add(g, name, &y, why)) != 0)
			return rc;
		snprintf(node, sizeof node, "Gemm_%d", l);
		if ((rc = sl_g_node_add(g, gemm, node, in, 3, &y, 1, &a,
		    why)) != 0)
			return rc;
		x = y;
		if (l + 1 < m->nlayers) {
			snprintf(name, sizeof name, "relu%d", l);
			if ((rc = sl_g_tensor_add(g, name, &y, why)) != 0)
				return rc;
			snprintf(node, sizeof node, "Relu_%d", l);
			if ((rc = sl_g_node_add(g, relu, node, &x, 1, &y, 1, NULL,
			    why)) != 0)
				return rc;
			x = y;
		}
	}
	g->t[x].flags |= SL_GT_OUTPUT;
	g->outputs[g->noutputs++] = x;
	return 0;
}


int
sl_graph_from_mlp(const sl_mlp *m, const sl_graph_opts *opts, sl_graph **out,
    sl_errmsg *why)
{
	sl_graph *g = NULL;
	int rc;

	if ((rc = sl_g_new(&g)) != 0)
		return rc;
	g->opset = 13;
	g->format = SL_GRAPH_SAFETENSORS;
	if ((rc = build(g, m, why)) != 0 ||
	    (rc = sl_g_plan_classifier(g, opts, why)) != 0) {
		sl_g_free(&g);
		return rc;
	}
	*out = g;
	return 0;
}

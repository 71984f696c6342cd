/* model.c - the public handle (sl_graph.h): load a file of either format
 * as a classifier graph, check it against the dataset's rows, plan it. */
#include "graph.h"
#include "sl_cnn.h"
#include "onnx.h"
#include "sl_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* safetensors: u64 LE header length, then '{'. */
static int
looks_safetensors(const unsigned char *p, size_t len)
{
	uint64_t n = 0;

	if (len < 9)
		return 0;
	for (int i = 7; i >= 0; i--)
		n = n << 8 | p[i];
	return p[8] == '{' && n <= len - 8;
}

/* Values in dims[from..rank). */
static int64_t
prod(const int64_t *dims, int from, int rank)
{
	int64_t n = 1;

	for (int i = from; i < rank; i++)
		n *= dims[i];
	return n;
}

/* The row shape fits the model's input after the batch when both hold
 * the same sizes once 1s are dropped ([28, 28] feeds [1, 28, 28]); a flat
 * input (batch, D) takes any row of D values, as an MLP does. */
static int
row_fits(const sl_graph_opts *o, const int64_t *dims, int rank)
{
	int i = 0, j = 1;
	int64_t n = 1;

	for (int k = 0; k < o->row_rank; k++)
		n *= (int64_t)o->row_dims[k];
	if (rank == 2)
		return n == dims[1];

	for (;;) {
		while (i < o->row_rank && o->row_dims[i] == 1)
			i++;
		while (j < rank && dims[j] == 1)
			j++;
		if (i == o->row_rank || j == rank)
			return i == o->row_rank && j == rank;
		if ((int64_t)o->row_dims[i] != dims[j])
			return 0;
		i++;
		j++;
	}
}

/* Check that g is a classifier (one float input whose dims after the batch
 * are known; one float output (B, classes)), bind the input at max_batch
 * and plan. */
int
sl_g_plan_classifier(sl_graph *g, const sl_graph_opts *o, sl_errmsg *why)
{
	sl_gtensor *in, *out;
	char shape[128];
	int rc;

	if (o->max_batch < 1)
		return sl_errmsg_set(why, SL_EINVAL, "max batch %d", o->max_batch);
	if (g->ninputs != 1)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "the model has %d "
		    "inputs; a teacher has one (the rows)", g->ninputs);
	in = &g->t[g->inputs[0]];
	if (in->dtype != SL_G_F32)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "input '%s' is not "
		    "float32", in->name);
	if (in->rank < 2)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "input '%s' has rank "
		    "%d; expected (batch, ...)", in->name, in->rank);
	for (int i = 1; i < in->rank; i++)
		if (in->dims[i] <= 0)
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "input '%s' "
			    "dimension %d is not fixed; export with only the "
			    "batch dynamic", in->name, i);
	if (in->dims[0] > 0 && in->dims[0] != o->max_batch)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "input '%s' has a "
		    "fixed batch of %lld; export with a dynamic batch "
		    "(torch.onnx.export(..., dynamic_axes={'%s': {0: 'batch'}}))",
		    in->name, (long long)in->dims[0], in->name);
	g->in_rank = in->rank;
	memcpy(g->in_dims, in->dims, sizeof g->in_dims);
	g->in_dims[0] = -1;
	g->input_dim = (size_t)prod(in->dims, 1, in->rank);
	if (o->row_rank > 0 && !row_fits(o, in->dims, in->rank)) {
		char rows[128];
		size_t off = 0;

		off += (size_t)snprintf(rows, sizeof rows, "[N");
		for (int i = 0; i < o->row_rank && off < sizeof rows; i++)
			off += (size_t)snprintf(rows + off, sizeof rows - off,
			    ", %llu", (unsigned long long)o->row_dims[i]);
		if (off < sizeof rows)
			snprintf(rows + off, sizeof rows - off, "]");
		in->dims[0] = -1;
		(void)sl_g_shape_str(in, shape, sizeof shape);
		return sl_errmsg_set(why, SL_EMISMATCH, "the dataset's rows %s "
		    "do not fit the model's input '%s' %s", rows, in->name,
		    shape);
	}
	in->dims[0] = o->max_batch;
	if ((rc = sl_g_plan(g, o->max_batch, why)) != 0)
		return rc;
	out = &g->t[g->outputs[0]];
	if (out->dtype != SL_G_F32 || out->rank != 2 ||
	    out->dims[0] != o->max_batch)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "output '%s' is %s; a "
		    "teacher's output is float32 (batch, classes)", out->name,
		    sl_g_shape_str(out, shape, sizeof shape));
	g->classes = (int)out->dims[1];
	if (g->classes < 2)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "output '%s' has %d "
		    "class(es)", out->name, g->classes);
	return 0;
}

int
sl_graph_load_onnx(const void *buf, size_t len, const sl_graph_opts *opts,
    sl_graph **out, sl_errmsg *why)
{
	sl_graph *g = NULL;
	int rc;

	if ((rc = sl_onnx_parse(buf, len, &g, why)) != 0)
		return rc;
	g->format = SL_GRAPH_ONNX;
	if ((rc = sl_g_plan_classifier(g, opts, why)) != 0) {
		sl_g_free(&g);
		return rc;
	}
	*out = g;
	return 0;
}

int
sl_graph_load(const char *path, const sl_graph_opts *opts, sl_graph **out,
    sl_model_info *info, sl_errmsg *why)
{
	void *buf = NULL;
	const char *what;
	size_t len;
	int rc;

	if (why != NULL)
		why->text[0] = '\0';
	if ((rc = sl_file_read(path, SL_ONNX_MAX_FILE_BYTES, &buf, &len,
	    why)) != 0)
		return rc;
	if (looks_safetensors(buf, len) && sl_cnn_sniff(buf, len)) {
		/* The engine plans ONNX graphs and MLPs; a convolutional
		 * student travels to it as ONNX. */
		rc = sl_errmsg_set(why, SL_EUNSUPPORTED, "a convolutional "
		    "student's safetensors: the graph engine runs its ONNX "
		    "export (softlabel-student --model %s --onnx-out S.onnx)",
		    path);
	} else if (looks_safetensors(buf, len)) {
		sl_mlp *m = NULL;
		sl_model_info mi;

		if ((rc = sl_model_parse(buf, len, NULL, 0, &m, &mi, why)) == 0) {
			rc = sl_graph_from_mlp(m, opts, out, why);
			if (rc == 0 && info != NULL)
				*info = mi;
		}
		sl_mlp_free(&m);
	} else if ((what = sl_model_sniff(buf, len)) != NULL &&
	    strcmp(what, "an ONNX model") != 0) {
		rc = sl_errmsg_set(why, SL_EFORMAT, "%s, not a model (%s)", what,
		    SL_MODEL_FORMATS);
	} else {
		rc = sl_graph_load_onnx(buf, len, opts, out, why);
		if (rc == 0 && info != NULL)
			memset(info, 0, sizeof *info);
		if (rc == SL_EFORMAT && len > 0 && ((unsigned char *)buf)[0] != 0x08)
			(void)sl_errmsg_set(why, SL_EFORMAT, "not a model: "
			    "neither safetensors nor ONNX (protobuf does not "
			    "parse; %s accepted)", SL_MODEL_FORMATS);
	}
	free(buf);
	return rc;
}

void
sl_graph_free(sl_graph **g)
{
	sl_g_free(g);
}

enum sl_graph_format
sl_graph_format(const sl_graph *g)
{
	return (enum sl_graph_format)g->format;
}

size_t
sl_graph_input_dim(const sl_graph *g)
{
	return g->input_dim;
}

int
sl_graph_input_shape(const sl_graph *g, int64_t dims[8])
{
	memcpy(dims, g->in_dims, (size_t)g->in_rank * sizeof *dims);
	return g->in_rank;
}

int
sl_graph_classes(const sl_graph *g)
{
	return g->classes;
}

int
sl_graph_max_batch(const sl_graph *g)
{
	return g->max_batch;
}

int
sl_graph_nodes(const sl_graph *g)
{
	return g->norder;
}

size_t
sl_graph_param_bytes(const sl_graph *g)
{
	return g->const_bytes;
}

size_t
sl_graph_arena_bytes(const sl_graph *g)
{
	return g->arena_bytes;
}

uint64_t
sl_graph_progress(const sl_graph *g)
{
	return __atomic_load_n(&g->progress, __ATOMIC_RELAXED);
}

const char *const *
sl_graph_op_names(void)
{
	return sl_g_op_names();
}

int
sl_graph_forward(sl_graph *g, const float *x, int B, const float **logits,
    sl_errmsg *why)
{
	sl_gtensor *in = &g->t[g->inputs[0]];
	int rc;

	if (B < 1 || B > g->max_batch)
		return sl_errmsg_set(why, SL_EINVAL, "batch %d, planned for 1 to "
		    "%d", B, g->max_batch);
	in->data = (void *)(uintptr_t)x;
	in->dims[0] = B;
	if ((rc = sl_g_run(g, why)) != 0)
		return rc;
	*logits = g->t[g->outputs[0]].data;
	return 0;
}

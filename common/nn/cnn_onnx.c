/* cnn_onnx.c - a convolutional student as an ONNX model, built with the
 * protobuf-c code generated from Debian's onnx.proto (sl_cnn.h). */
#include "cnn_impl.h"
#include "sl_file.h"

#include "onnx.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every object of the model comes from here and goes at once. */
typedef struct pool {
	void **p;
	size_t n, cap;
	int failed;
} pool;

static void *
pget(pool *pl, size_t bytes)
{
	void *v;

	if (pl->failed)
		return NULL;
	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? 2 * pl->cap : 256;
		void **g = realloc(pl->p, cap * sizeof *g);

		if (g == NULL) {
			pl->failed = 1;
			return NULL;
		}
		pl->p = g;
		pl->cap = cap;
	}
	if ((v = calloc(1, bytes ? bytes : 1)) == NULL) {
		pl->failed = 1;
		return NULL;
	}
	pl->p[pl->n++] = v;
	return v;
}

static void
pfree(pool *pl)
{
	for (size_t i = 0; i < pl->n; i++)
		free(pl->p[i]);
	free(pl->p);
}

static char *
pstr(pool *pl, const char *s)
{
	char *d = pget(pl, strlen(s) + 1);

	if (d != NULL)
		memcpy(d, s, strlen(s) + 1);
	return d;
}

/* The graph under construction: nodes and initializers grow as arrays. */
typedef struct builder {
	pool *pl;
	Onnx__NodeProto **node;
	size_t nnode;
	Onnx__TensorProto **init;
	size_t ninit;
} builder;

static Onnx__AttributeProto *
attr_ints(pool *pl, const char *name, const int64_t *v, size_t n)
{
	Onnx__AttributeProto *a = pget(pl, sizeof *a);
	int64_t *d = pget(pl, n * sizeof *d);

	if (a == NULL || d == NULL)
		return NULL;
	onnx__attribute_proto__init(a);
	a->name = pstr(pl, name);
	a->has_type = 1;
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
	memcpy(d, v, n * sizeof *d);
	a->ints = d;
	a->n_ints = n;
	return a;
}

static Onnx__AttributeProto *
attr_int(pool *pl, const char *name, int64_t v)
{
	Onnx__AttributeProto *a = pget(pl, sizeof *a);

	if (a == NULL)
		return NULL;
	onnx__attribute_proto__init(a);
	a->name = pstr(pl, name);
	a->has_type = 1;
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
	a->has_i = 1;
	a->i = v;
	return a;
}

static Onnx__AttributeProto *
attr_float(pool *pl, const char *name, float v)
{
	Onnx__AttributeProto *a = pget(pl, sizeof *a);

	if (a == NULL)
		return NULL;
	onnx__attribute_proto__init(a);
	a->name = pstr(pl, name);
	a->has_type = 1;
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT;
	a->has_f = 1;
	a->f = v;
	return a;
}

/* A node op(inputs) -> out, with up to 6 attributes. */
static Onnx__NodeProto *
node(builder *b, const char *op, const char *name, const char *const *in,
    size_t nin, const char *out, Onnx__AttributeProto **attrs, size_t na)
{
	pool *pl = b->pl;
	Onnx__NodeProto *n = pget(pl, sizeof *n);
	char **ins = pget(pl, (nin + 1) * sizeof *ins);
	char **outs = pget(pl, sizeof *outs);
	Onnx__AttributeProto **as = pget(pl, (na + 1) * sizeof *as);

	if (n == NULL || ins == NULL || outs == NULL || as == NULL)
		return NULL;
	onnx__node_proto__init(n);
	n->op_type = pstr(pl, op);
	n->name = pstr(pl, name);
	for (size_t i = 0; i < nin; i++)
		ins[i] = pstr(pl, in[i]);
	n->input = ins;
	n->n_input = nin;
	outs[0] = pstr(pl, out);
	n->output = outs;
	n->n_output = 1;
	for (size_t i = 0; i < na; i++)
		as[i] = attrs[i];
	n->attribute = as;
	n->n_attribute = na;
	b->node[b->nnode++] = n;
	return n;
}

/* A float32 initializer named name of shape dims holding v (copied, LE). */
static int
initializer(builder *b, const char *name, const int64_t *dims, int rank,
    const float *v)
{
	pool *pl = b->pl;
	Onnx__TensorProto *t = pget(pl, sizeof *t);
	int64_t *d = pget(pl, (size_t)(rank + 1) * sizeof *d);
	size_t cnt = 1;

	for (int i = 0; i < rank; i++)
		cnt *= (size_t)dims[i];
	unsigned char *raw = pget(pl, 4 * cnt);

	if (t == NULL || d == NULL || raw == NULL)
		return -1;
	onnx__tensor_proto__init(t);
	t->name = pstr(pl, name);
	memcpy(d, dims, (size_t)rank * sizeof *d);
	t->dims = d;
	t->n_dims = (size_t)rank;
	t->has_data_type = 1;
	t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	for (size_t i = 0; i < cnt; i++) {
		uint32_t u;

		memcpy(&u, &v[i], 4);
		for (int k = 0; k < 4; k++)
			raw[4 * i + (size_t)k] = (unsigned char)(u >> (8 * k));
	}
	t->has_raw_data = 1;
	t->raw_data.len = 4 * cnt;
	t->raw_data.data = raw;
	b->init[b->ninit++] = t;
	return 0;
}

static Onnx__ValueInfoProto *
value_info(pool *pl, const char *name, const int64_t *dims, int rank)
{
	Onnx__ValueInfoProto *vi = pget(pl, sizeof *vi);
	Onnx__TypeProto *tp = pget(pl, sizeof *tp);
	Onnx__TypeProto__Tensor *tt = pget(pl, sizeof *tt);
	Onnx__TensorShapeProto *sh = pget(pl, sizeof *sh);
	Onnx__TensorShapeProto__Dimension **dim = pget(pl, (size_t)rank *
	    sizeof *dim);

	if (vi == NULL || tp == NULL || tt == NULL || sh == NULL || dim == NULL)
		return NULL;
	onnx__value_info_proto__init(vi);
	onnx__type_proto__init(tp);
	onnx__type_proto__tensor__init(tt);
	onnx__tensor_shape_proto__init(sh);
	for (int i = 0; i < rank; i++) {
		dim[i] = pget(pl, sizeof **dim);
		if (dim[i] == NULL)
			return NULL;
		onnx__tensor_shape_proto__dimension__init(dim[i]);
		if (dims[i] < 0) {
			dim[i]->value_case =
			    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
			dim[i]->dim_param = pstr(pl, "batch");
		} else {
			dim[i]->value_case =
			    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
			dim[i]->dim_value = dims[i];
		}
	}
	sh->dim = dim;
	sh->n_dim = (size_t)rank;
	tt->has_elem_type = 1;
	tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	tt->shape = sh;
	tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	tp->tensor_type = tt;
	vi->name = pstr(pl, name);
	vi->type = tp;
	return vi;
}

/* The nodes of layer l reading tensor cur; *out names its output. */
static int
layer_nodes(builder *b, const sl_cnn *n, int i, const char *cur,
    const char *skip, char *out, size_t outlen)
{
	const cnn_layer *l = &n->L[i];
	pool *pl = b->pl;
	char w[128], bb[128], m[128], v[128];
	Onnx__AttributeProto *a[6];
	const int64_t k2[2] = { l->k, l->k }, s2[2] = { l->s, l->s };
	const int64_t p4[4] = { l->p, l->p, l->p, l->p }, d2[2] = { 1, 1 };
	const char *in[5];
	Onnx__NodeProto *nd = NULL;

	snprintf(out, outlen, "%s.out", l->name);
	snprintf(w, sizeof w, "%s.weight", l->name);
	snprintf(bb, sizeof bb, "%s.bias", l->name);
	switch (l->kind) {
	case CNN_CONV: {
		const int64_t wd[4] = { l->oc, l->in.C / l->g, l->k, l->k };
		const int64_t bd[1] = { l->oc };

		if (initializer(b, w, wd, 4, n->params + l->w_off) != 0 ||
		    (l->bias && initializer(b, bb, bd, 1, n->params + l->b_off)
		    != 0))
			return -1;
		in[0] = cur, in[1] = w, in[2] = bb;
		a[0] = attr_ints(pl, "kernel_shape", k2, 2);
		a[1] = attr_ints(pl, "strides", s2, 2);
		a[2] = attr_ints(pl, "pads", p4, 4);
		a[3] = attr_ints(pl, "dilations", d2, 2);
		a[4] = attr_int(pl, "group", l->g);
		nd = node(b, "Conv", l->name, in, l->bias ? 3 : 2, out, a, 5);
		break;
	}
	case CNN_BN: {
		const int64_t cd[1] = { l->in.C };

		snprintf(m, sizeof m, "%s.running_mean", l->name);
		snprintf(v, sizeof v, "%s.running_var", l->name);
		if (initializer(b, w, cd, 1, n->params + l->w_off) != 0 ||
		    initializer(b, bb, cd, 1, n->params + l->b_off) != 0 ||
		    initializer(b, m, cd, 1, n->bufs + l->rm_off) != 0 ||
		    initializer(b, v, cd, 1, n->bufs + l->rm_off +
		    (size_t)l->in.C) != 0)
			return -1;
		in[0] = cur, in[1] = w, in[2] = bb, in[3] = m, in[4] = v;
		a[0] = attr_float(pl, "epsilon", l->eps);
		nd = node(b, "BatchNormalization", l->name, in, 5, out, a, 1);
		break;
	}
	case CNN_RELU:
		nd = node(b, "Relu", l->name, &cur, 1, out, a, 0);
		break;
	case CNN_MAXPOOL:
	case CNN_AVGPOOL:
		a[0] = attr_ints(pl, "kernel_shape", k2, 2);
		a[1] = attr_ints(pl, "strides", s2, 2);
		a[2] = attr_ints(pl, "pads", p4, 4);
		if (l->kind == CNN_AVGPOOL) {
			a[3] = attr_int(pl, "count_include_pad", 1);
			nd = node(b, "AveragePool", l->name, &cur, 1, out, a, 4);
		} else {
			nd = node(b, "MaxPool", l->name, &cur, 1, out, a, 3);
		}
		break;
	case CNN_GAP:
		nd = node(b, "GlobalAveragePool", l->name, &cur, 1, out, a, 0);
		break;
	case CNN_FLATTEN:
		a[0] = attr_int(pl, "axis", 1);
		nd = node(b, "Flatten", l->name, &cur, 1, out, a, 1);
		break;
	case CNN_LINEAR: {
		const int64_t wd[2] = { l->oc, l->in.C }, bd[1] = { l->oc };

		if (initializer(b, w, wd, 2, n->params + l->w_off) != 0 ||
		    (l->bias && initializer(b, bb, bd, 1, n->params + l->b_off)
		    != 0))
			return -1;
		in[0] = cur, in[1] = w, in[2] = bb;
		a[0] = attr_int(pl, "transB", 1);
		nd = node(b, "Gemm", l->name, in, l->bias ? 3 : 2, out, a, 1);
		break;
	}
	case CNN_RES_END:
		in[0] = cur, in[1] = skip;
		nd = node(b, "Add", l->name, in, 2, out, a, 0);
		break;
	default: /* dropout (evaluation), res begin: the same tensor */
		snprintf(out, outlen, "%s", cur);
		return 0;
	}
	return nd == NULL || b->pl->failed ? -1 : 0;
}

static Onnx__StringStringEntryProto *
prop(pool *pl, const char *k, const char *v)
{
	Onnx__StringStringEntryProto *e = pget(pl, sizeof *e);

	if (e == NULL)
		return NULL;
	onnx__string_string_entry_proto__init(e);
	e->key = pstr(pl, k);
	e->value = pstr(pl, v);
	return e;
}

int
sl_cnn_save_onnx(const char *path, const sl_cnn *n, const sl_preproc *pre,
    sl_errmsg *why)
{
	pool pl = { NULL, 0, 0, 0 };
	builder b = { &pl, NULL, 0, NULL, 0 };
	Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
	Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
	Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
	Onnx__OperatorSetIdProto *opsets[1] = { &opset };
	Onnx__ValueInfoProto *gin[1], *gout[1];
	Onnx__StringStringEntryProto *props[3];
	char cur[128] = "input", next[128], skips[SL_CNN_MAX_LAYERS][128];
	char buf[16 * SL_PREPROC_MAX_CHANNELS];
	const int64_t idims[4] = { -1, n->in.C, n->in.H, n->in.W };
	const int64_t odims[2] = { -1, n->classes };
	sl_atomic_file f;
	unsigned char *img = NULL;
	size_t len;
	int rc;

	b.node = pget(&pl, ((size_t)n->nl + 1) * sizeof *b.node);
	b.init = pget(&pl, 4 * ((size_t)n->nl + 1) * sizeof *b.init);
	for (int i = 0; b.node != NULL && b.init != NULL && i < n->nl; i++) {
		const cnn_layer *l = &n->L[i];

		if (l->kind == CNN_RES_BEGIN)
			snprintf(skips[i], sizeof skips[i], "%s", cur);
		if (layer_nodes(&b, n, i, cur, l->kind == CNN_RES_END ?
		    skips[l->partner] : NULL, next, sizeof next) != 0) {
			pl.failed = 1;
			break;
		}
		memcpy(cur, next, sizeof cur);
	}
	/* The graph's output: the last node's, renamed, or an Identity when
	 * the network ends in a layer without a node (dropout). */
	if (!pl.failed && b.nnode > 0 &&
	    strcmp(b.node[b.nnode - 1]->output[0], cur) == 0) {
		b.node[b.nnode - 1]->output[0] = pstr(&pl, "logits");
	} else if (!pl.failed) {
		const char *in[1] = { cur };

		(void)node(&b, "Identity", "output", in, 1, "logits", NULL, 0);
	}
	gin[0] = value_info(&pl, "input", idims, 4);
	gout[0] = value_info(&pl, "logits", odims, 2);
	sl_floats_format(buf, sizeof buf, &pre->scale, 1);
	props[0] = prop(&pl, "input_scale", buf);
	sl_floats_format(buf, sizeof buf, pre->mean, pre->channels);
	props[1] = prop(&pl, "input_mean", buf);
	sl_floats_format(buf, sizeof buf, pre->std, pre->channels);
	props[2] = prop(&pl, "input_std", buf);
	if (pl.failed || gin[0] == NULL || gout[0] == NULL) {
		pfree(&pl);
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	}
	opset.domain = "";
	opset.has_version = 1;
	opset.version = 13;
	graph.name = "softlabel_student";
	graph.node = b.node;
	graph.n_node = b.nnode;
	graph.initializer = b.init;
	graph.n_initializer = b.ninit;
	graph.input = gin;
	graph.n_input = 1;
	graph.output = gout;
	graph.n_output = 1;
	model.has_ir_version = 1;
	model.ir_version = 8;
	model.opset_import = opsets;
	model.n_opset_import = 1;
	model.producer_name = "softlabel";
	model.producer_version = SL_VERSION;
	model.doc_string = (char *)n->arch;
	model.graph = &graph;
	model.metadata_props = props;
	model.n_metadata_props = 3;
	len = onnx__model_proto__get_packed_size(&model);
	if ((img = malloc(len + 1)) == NULL) {
		pfree(&pl);
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	}
	(void)onnx__model_proto__pack(&model, img);
	if ((rc = sl_atomic_open(&f, path, why)) == 0 &&
	    (rc = sl_atomic_write(&f, img, len, why)) == 0)
		rc = sl_atomic_commit(&f, why);
	sl_atomic_abort(&f);
	free(img);
	pfree(&pl);
	return rc;
}

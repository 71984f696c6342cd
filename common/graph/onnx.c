/* onnx.c - ONNX ModelProto into a graph (see onnx.h for what is checked). */
#include "onnx.h"
#include "onnx.pb-c.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ATTRS 64

/* Element count of dims, or -1 past SL_G_MAX_ELEMS (or a negative dim). */
static int64_t
count_elems(const int64_t *dims, size_t n)
{
	int64_t c = 1;

	for (size_t i = 0; i < n; i++) {
		if (dims[i] < 0)
			return -1;
		if (dims[i] != 0 && c > SL_G_MAX_ELEMS / dims[i])
			return -1;
		c *= dims[i];
	}
	return c;
}

static const char *
dtype_name(int32_t t)
{
	static const char *const names[] = {
		"undefined", "float32", "uint8", "int8", "uint16", "int16",
		"int32", "int64", "string", "bool", "float16", "float64",
		"uint32", "uint64", "complex64", "complex128", "bfloat16",
	};

	return t >= 0 && t < (int32_t)(sizeof names / sizeof names[0]) ?
	    names[t] : "unknown";
}

/* Our dtype for an ONNX element type: int32 and narrower integers are
 * widened to int64 (they appear in indices and shapes), 0 if none. */
static int
our_dtype(int32_t t)
{
	switch (t) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: return SL_G_F32;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: return SL_G_I64;
	case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: return SL_G_BOOL;
	default: return 0;
	}
}

/* Bytes per element as raw_data stores the ONNX type. */
static size_t
raw_size(int32_t t)
{
	switch (t) {
	case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: return 4;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: return 8;
	case ONNX__TENSOR_PROTO__DATA_TYPE__INT16:
	case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: return 2;
	default: return 1;
	}
}

/* Values of tp converted into a new buffer of our dtype. Checks sizes
 * against the dims before allocating. */
static int
tensor_values(const Onnx__TensorProto *tp, int *dtype, int64_t *nelem,
    void **data, sl_errmsg *why)
{
	const char *name = tp->name && tp->name[0] ? tp->name : "(unnamed)";
	const int32_t t = tp->has_data_type ? tp->data_type : 0;
	const int dt = our_dtype(t);
	int64_t n;
	size_t have;
	void *out;

	if (tp->has_data_location &&
	    tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "tensor '%s' is stored "
		    "as external data, which softlabel does not read: save the "
		    "model as one file (onnx.save_model(m, f, "
		    "save_as_external_data=False))", name);
	if (tp->segment != NULL)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "tensor '%s' is "
		    "segmented", name);
	if (dt == 0)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "tensor '%s' has "
		    "element type %s; softlabel runs float32, int64 and bool",
		    name, dtype_name(t));
	if (tp->n_dims > SL_G_MAX_RANK)
		return sl_errmsg_set(why, SL_ELIMIT, "tensor '%s' has rank %zu, "
		    "over %d", name, tp->n_dims, SL_G_MAX_RANK);
	if ((n = count_elems(tp->dims, tp->n_dims)) < 0)
		return sl_errmsg_set(why, SL_ELIMIT, "tensor '%s': its shape "
		    "claims more than %lld elements (or a negative dimension)",
		    name, (long long)SL_G_MAX_ELEMS);
	if (tp->has_raw_data)
		have = tp->raw_data.len / raw_size(t);
	else if (t == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
		have = tp->n_float_data;
	else if (t == ONNX__TENSOR_PROTO__DATA_TYPE__INT64)
		have = tp->n_int64_data;
	else
		have = tp->n_int32_data;
	if ((tp->has_raw_data && tp->raw_data.len != (size_t)n * raw_size(t)) ||
	    have != (size_t)n)
		return sl_errmsg_set(why, SL_EFORMAT, "tensor '%s': its shape "
		    "holds %lld elements, its data %zu", name, (long long)n, have);
	if ((out = malloc((size_t)n * sl_g_dtype_size(dt) + 8)) == NULL)
		return SL_ENOMEM;
	for (int64_t i = 0; i < n; i++) {
		/* No arithmetic on raw_data.data unless it is there: NULL + 0
		 * is undefined too (clang's UBSan stops on it). */
		const uint8_t *raw = tp->has_raw_data ?
		    tp->raw_data.data + (size_t)i * raw_size(t) : NULL;

		switch (t) {
		case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT:
			if (tp->has_raw_data)
				memcpy((float *)out + i, raw, 4);
			else
				((float *)out)[i] = tp->float_data[i];
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
			if (tp->has_raw_data)
				memcpy((int64_t *)out + i, raw, 8);
			else
				((int64_t *)out)[i] = tp->int64_data[i];
			break;
		case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
			((uint8_t *)out)[i] = (tp->has_raw_data ? raw[0] :
			    tp->int32_data[i]) != 0;
			break;
		default: {
			int64_t v;

			if (!tp->has_raw_data) {
				v = tp->int32_data[i];
			} else if (t == ONNX__TENSOR_PROTO__DATA_TYPE__INT32) {
				int32_t x;

				memcpy(&x, raw, 4);
				v = x;
			} else if (t == ONNX__TENSOR_PROTO__DATA_TYPE__INT16) {
				int16_t x;

				memcpy(&x, raw, 2);
				v = x;
			} else if (t == ONNX__TENSOR_PROTO__DATA_TYPE__UINT16) {
				uint16_t x;

				memcpy(&x, raw, 2);
				v = x;
			} else if (t == ONNX__TENSOR_PROTO__DATA_TYPE__INT8) {
				v = (int8_t)raw[0];
			} else {
				v = raw[0];
			}
			((int64_t *)out)[i] = v;
		}
		}
	}
	*dtype = dt;
	*nelem = n;
	*data = out;
	return 0;
}

/* A constant tensor named name from tp. */
static int
add_const(sl_graph *g, const char *name, const Onnx__TensorProto *tp,
    int *idx, sl_errmsg *why)
{
	sl_gtensor *t;
	int dtype, rc, i;
	int64_t n;
	void *data;

	if ((rc = tensor_values(tp, &dtype, &n, &data, why)) != 0)
		return rc;
	if (g->const_bytes + (size_t)n * sl_g_dtype_size(dtype) >
	    SL_G_MAX_CONST_BYTES) {
		free(data);
		return sl_errmsg_set(why, SL_ELIMIT, "initializers over %zu bytes",
		    SL_G_MAX_CONST_BYTES);
	}
	if ((rc = sl_g_tensor_add(g, name, &i, why)) != 0) {
		free(data);
		return rc;
	}
	t = &g->t[i];
	(void)sl_g_set_shape(t, dtype, (int)tp->n_dims, tp->dims, NULL);
	t->data = data;
	t->flags |= SL_GT_CONST;
	t->cap_bytes = (size_t)n * sl_g_dtype_size(dtype);
	g->const_bytes += t->cap_bytes;
	*idx = i;
	return 0;
}

/* A graph input from its ValueInfo: dtype and dims, -1 where symbolic. */
static int
add_input(sl_graph *g, const Onnx__ValueInfoProto *vi, sl_errmsg *why)
{
	const Onnx__TypeProto__Tensor *tt;
	sl_gtensor *t;
	int i, rc, dt;

	if (vi->type == NULL || vi->type->value_case !=
	    ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || vi->type->tensor_type == NULL)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "graph input '%s' is "
		    "not a tensor", vi->name);
	tt = vi->type->tensor_type;
	if ((dt = our_dtype(tt->elem_type)) == 0)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "graph input '%s' has "
		    "element type %s; softlabel runs float32, int64 and bool",
		    vi->name, dtype_name(tt->elem_type));
	if (g->ninputs >= SL_G_MAX_IO)
		return sl_errmsg_set(why, SL_ELIMIT, "more than %d graph inputs",
		    SL_G_MAX_IO);
	if ((rc = sl_g_tensor_add(g, vi->name, &i, why)) != 0)
		return rc;
	t = &g->t[i];
	t->dtype = dt;
	t->flags |= SL_GT_INPUT;
	if (tt->shape != NULL) {
		if (tt->shape->n_dim > SL_G_MAX_RANK)
			return sl_errmsg_set(why, SL_ELIMIT, "graph input '%s' has "
			    "rank %zu", vi->name, tt->shape->n_dim);
		t->rank = (int)tt->shape->n_dim;
		for (size_t d = 0; d < tt->shape->n_dim; d++) {
			const Onnx__TensorShapeProto__Dimension *dim =
			    tt->shape->dim[d];

			t->dims[d] = dim->value_case ==
			    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE &&
			    dim->dim_value >= 0 ? dim->dim_value : -1;
		}
	} else {
		t->rank = -1; /* unknown: the caller must set it */
	}
	g->inputs[g->ninputs++] = i;
	return 0;
}

/* Empty lists and strings reach the ops as these, never as NULL: ops
 * memcpy n values, and memcpy(d, NULL, 0) is undefined. */
static const int64_t no_ints[1];
static const float no_floats[1];

/* ONNX attributes into ours. Tensor attributes become constants named
 * after the node and the attribute. */
static int
convert_attrs(sl_graph *g, const Onnx__NodeProto *np, sl_gattr *a, int *na,
    sl_errmsg *why)
{
	/* A node may have no name and no outputs (refused later, by its op's
	 * output count): never read output[0] that is not there. */
	const char *node = np->name && np->name[0] ? np->name :
	    np->n_output > 0 ? np->output[0] : "(unnamed)";

	if (np->n_attribute > MAX_ATTRS)
		return sl_errmsg_set(why, SL_ELIMIT, "node '%s' (%s) has %zu "
		    "attributes", node, np->op_type, np->n_attribute);
	*na = 0;
	for (size_t i = 0; i < np->n_attribute; i++) {
		const Onnx__AttributeProto *ap = np->attribute[i];
		sl_gattr *x = &a[(*na)++];

		memset(x, 0, sizeof *x);
		x->name = ap->name ? ap->name : "";
		if (ap->ref_attr_name != NULL && ap->ref_attr_name[0])
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "node '%s' (%s): "
			    "attribute '%s' refers to a function attribute", node,
			    np->op_type, x->name);
		switch (ap->type) {
		case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT:
			x->type = SL_GA_FLOAT;
			x->f = ap->f;
			break;
		case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT:
			x->type = SL_GA_INT;
			x->i = ap->i;
			break;
		case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING:
			x->type = SL_GA_STRING;
			x->s = ap->s.len ? (const char *)ap->s.data : "";
			x->slen = ap->s.len;
			break;
		case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS:
			x->type = SL_GA_FLOATS;
			x->floats = ap->n_floats ? ap->floats : no_floats;
			x->n = ap->n_floats;
			break;
		case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS:
			x->type = SL_GA_INTS;
			x->ints = ap->n_ints ? ap->ints : no_ints;
			x->n = ap->n_ints;
			break;
		case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR: {
			char name[512];
			int rc;

			if (ap->t == NULL)
				return sl_errmsg_set(why, SL_EFORMAT, "node '%s' (%s): "
				    "attribute '%s' has no tensor", node,
				    np->op_type, x->name);
			snprintf(name, sizeof name, "%s/%s", node, x->name);
			x->type = SL_GA_TENSOR;
			if ((rc = add_const(g, name, ap->t, &x->tensor, why)) != 0)
				return rc;
			break;
		}
		default:
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "node '%s' (%s): "
			    "attribute '%s' has a type softlabel does not read "
			    "(graphs, sparse tensors, lists of strings)", node,
			    np->op_type, x->name);
		}
	}
	return 0;
}

/* Constant nodes become constant tensors: value (a tensor), or
 * value_float(s)/value_int(s). */
static int
add_constant_node(sl_graph *g, const Onnx__NodeProto *np, sl_errmsg *why)
{
	const char *out = np->output[0];
	int idx;

	for (size_t i = 0; i < np->n_attribute; i++) {
		const Onnx__AttributeProto *ap = np->attribute[i];
		/* protobuf-c leaves an absent name NULL. */
		const char *an = ap->name != NULL ? ap->name : "";
		Onnx__TensorProto tp = ONNX__TENSOR_PROTO__INIT;
		int64_t n1;

		tp.name = (char *)out;
		tp.has_data_type = 1;
		if (strcmp(an, "value") == 0 && ap->t != NULL) {
			Onnx__TensorProto copy = *ap->t;

			copy.name = (char *)out;
			return add_const(g, out, &copy, &idx, why);
		} else if (strcmp(an, "value_float") == 0) {
			tp.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
			tp.n_float_data = 1;
			tp.float_data = (float *)&ap->f;
		} else if (strcmp(an, "value_floats") == 0) {
			tp.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
			tp.n_float_data = ap->n_floats;
			tp.float_data = ap->floats;
			n1 = (int64_t)ap->n_floats;
			tp.n_dims = 1;
			tp.dims = &n1;
		} else if (strcmp(an, "value_int") == 0) {
			tp.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
			tp.n_int64_data = 1;
			tp.int64_data = (int64_t *)&ap->i;
		} else if (strcmp(an, "value_ints") == 0) {
			tp.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
			tp.n_int64_data = ap->n_ints;
			tp.int64_data = ap->ints;
			n1 = (int64_t)ap->n_ints;
			tp.n_dims = 1;
			tp.dims = &n1;
		} else {
			continue;
		}
		return add_const(g, out, &tp, &idx, why);
	}
	return sl_errmsg_set(why, SL_EUNSUPPORTED, "Constant node '%s': no "
	    "value softlabel reads (value, value_float(s), value_int(s))",
	    np->name ? np->name : out);
}

/* Index of the tensor called name, creating it (no producer yet) when
 * create is set. */
static int
tensor_ref(sl_graph *g, const char *name, int create, int *idx, sl_errmsg *why)
{
	int i = sl_g_tensor_find(g, name);

	if (i >= 0) {
		*idx = i;
		return 0;
	}
	if (!create) {
		*idx = -1;
		return 0;
	}
	return sl_g_tensor_add(g, name, idx, why);
}

static int
add_node(sl_graph *g, const Onnx__NodeProto *np, size_t k, sl_errmsg *why)
{
	sl_gattr attrs[MAX_ATTRS];
	sl_gattrs as = { attrs, 0 };
	int in[SL_G_MAX_IO], out[SL_G_MAX_IO], rc;
	char fallback[64];
	const char *name = np->name && np->name[0] ? np->name : NULL;
	const sl_gop *op;

	if (name == NULL) {
		snprintf(fallback, sizeof fallback, "#%zu", k);
		name = fallback;
	}
	if (np->op_type == NULL)
		return sl_errmsg_set(why, SL_EFORMAT, "node '%s' has no op_type",
		    name);
	if (np->domain != NULL && np->domain[0] &&
	    strcmp(np->domain, "ai.onnx") != 0)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "node '%s' (%s): domain "
		    "'%s' is not supported (only the default ONNX domain)", name,
		    np->op_type, np->domain);
	if (np->n_input > SL_G_MAX_IO || np->n_output > SL_G_MAX_IO)
		return sl_errmsg_set(why, SL_ELIMIT, "node '%s' (%s): more than %d "
		    "inputs or outputs", name, np->op_type, SL_G_MAX_IO);
	if (strcmp(np->op_type, "Constant") == 0) {
		if (np->n_output != 1)
			return sl_errmsg_set(why, SL_EFORMAT, "Constant node '%s' "
			    "has %zu outputs", name, np->n_output);
		return add_constant_node(g, np, why);
	}
	if ((op = sl_g_op_find(np->op_type)) == NULL)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "node '%s': op %s is "
		    "not supported (see the README's supported-op table)", name,
		    np->op_type);
	for (size_t i = 0; i < np->n_input; i++) {
		if (np->input[i] == NULL || np->input[i][0] == '\0') {
			in[i] = -1; /* an optional input left out */
			continue;
		}
		/* Inputs are made on first mention: producers may come later
		 * in a file whose nodes are not sorted (checked at plan). */
		if ((rc = tensor_ref(g, np->input[i], 1, &in[i], why)) != 0)
			return rc;
	}
	/* Trailing optional outputs named "" are left out. */
	size_t nout = np->n_output;

	while (nout > 0 && (np->output[nout - 1] == NULL ||
	    np->output[nout - 1][0] == '\0'))
		nout--;
	for (size_t i = 0; i < nout; i++) {
		if (np->output[i] == NULL || np->output[i][0] == '\0') {
			out[i] = -1;
			continue;
		}
		if ((rc = tensor_ref(g, np->output[i], 1, &out[i], why)) != 0)
			return rc;
	}
	if ((rc = convert_attrs(g, np, attrs, &as.n, why)) != 0)
		return rc;
	return sl_g_node_add(g, op, name, in, (int)np->n_input, out, (int)nout,
	    &as, why);
}

static int
build(sl_graph *g, const Onnx__ModelProto *m, sl_errmsg *why)
{
	const Onnx__GraphProto *gp = m->graph;
	int64_t opset = -1;
	int rc, idx;

	for (size_t i = 0; i < m->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *o = m->opset_import[i];

		if (o->domain == NULL || o->domain[0] == '\0' ||
		    strcmp(o->domain, "ai.onnx") == 0)
			opset = o->has_version ? o->version : -1;
	}
	/* A model of other domains only (ai.onnx.preview.training...) is
	 * well formed, just not ours; one that imports nothing is not. */
	if (opset < 0 && m->n_opset_import > 0 &&
	    m->opset_import[0]->domain != NULL &&
	    m->opset_import[0]->domain[0] != '\0' &&
	    strcmp(m->opset_import[0]->domain, "ai.onnx") != 0)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "the model imports "
		    "opset domain '%s', not the default ONNX domain",
		    m->opset_import[0]->domain);
	if (opset < 0)
		return sl_errmsg_set(why, SL_EFORMAT, "the model imports no "
		    "default-domain opset");
	if (opset < SL_ONNX_MIN_OPSET || opset > SL_ONNX_MAX_OPSET)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "opset %lld: softlabel "
		    "runs opsets %d to %d", (long long)opset, SL_ONNX_MIN_OPSET,
		    SL_ONNX_MAX_OPSET);
	g->opset = opset;
	if (gp == NULL)
		return sl_errmsg_set(why, SL_EFORMAT, "the model has no graph");
	if (gp->n_sparse_initializer > 0)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "sparse initializers "
		    "are not supported");
	if (gp->n_node > SL_G_MAX_NODES)
		return sl_errmsg_set(why, SL_ELIMIT, "%zu nodes, over %d",
		    gp->n_node, SL_G_MAX_NODES);
	for (size_t i = 0; i < gp->n_initializer; i++) {
		const Onnx__TensorProto *tp = gp->initializer[i];

		if (tp->name == NULL || tp->name[0] == '\0')
			return sl_errmsg_set(why, SL_EFORMAT, "initializer %zu has "
			    "no name", i);
		if ((rc = add_const(g, tp->name, tp, &idx, why)) != 0)
			return rc;
	}
	/* Inputs that are also initializers are constants (IR < 4 lists
	 * every initializer as an input too). */
	for (size_t i = 0; i < gp->n_input; i++) {
		if (gp->input[i]->name == NULL)
			return sl_errmsg_set(why, SL_EFORMAT, "graph input %zu has "
			    "no name", i);
		if (sl_g_tensor_find(g, gp->input[i]->name) >= 0)
			continue;
		if ((rc = add_input(g, gp->input[i], why)) != 0)
			return rc;
	}
	for (size_t k = 0; k < gp->n_node; k++)
		if ((rc = add_node(g, gp->node[k], k, why)) != 0)
			return rc;
	if (gp->n_output == 0 || gp->n_output > SL_G_MAX_IO)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "%zu graph outputs",
		    gp->n_output);
	for (size_t i = 0; i < gp->n_output; i++) {
		const char *name = gp->output[i]->name;
		int t = name ? sl_g_tensor_find(g, name) : -1;

		if (t < 0)
			return sl_errmsg_set(why, SL_EFORMAT, "graph output '%s' "
			    "is not produced", name ? name : "");
		g->t[t].flags |= SL_GT_OUTPUT;
		g->outputs[g->noutputs++] = t;
	}
	return 0;
}

int
sl_onnx_parse(const void *buf, size_t len, sl_graph **out, sl_errmsg *why)
{
	Onnx__ModelProto *m;
	sl_graph *g = NULL;
	int rc;

	if (len > SL_ONNX_MAX_FILE_BYTES)
		return sl_errmsg_set(why, SL_ELIMIT, "%zu bytes, over the %zu "
		    "of a protobuf message", len, SL_ONNX_MAX_FILE_BYTES);
	if ((m = onnx__model_proto__unpack(NULL, len, buf)) == NULL)
		return sl_errmsg_set(why, SL_EFORMAT, "not an ONNX model "
		    "(protobuf does not parse: truncated or garbage)");
	if ((rc = sl_g_new(&g)) != 0)
		goto out;
	if ((rc = build(g, m, why)) != 0)
		goto out;
	*out = g;
	g = NULL;
out:
	sl_g_free(&g);
	onnx__model_proto__free_unpacked(m, NULL);
	return rc;
}

int
sl_onnx_tensor_decode(const void *buf, size_t len, int *dtype, int *rank,
    int64_t dims[SL_G_MAX_RANK], void **data, sl_errmsg *why)
{
	Onnx__TensorProto *tp;
	int64_t n;
	int rc;

	if ((tp = onnx__tensor_proto__unpack(NULL, len, buf)) == NULL)
		return sl_errmsg_set(why, SL_EFORMAT, "not a TensorProto");
	if ((rc = tensor_values(tp, dtype, &n, data, why)) == 0) {
		*rank = (int)tp->n_dims;
		for (size_t i = 0; i < tp->n_dims; i++)
			dims[i] = tp->dims[i];
	}
	onnx__tensor_proto__free_unpacked(tp, NULL);
	return rc;
}

/* test_onnx.c - the ONNX loader against hostile files, and one small graph
 * that loads, plans and runs.
 *
 * Every model is built here with the structs protoc-c generates from
 * onnx.proto and packed with onnx__model_proto__pack, so each case shows
 * exactly what is wrong with it. Each hostile case asserts the exact
 * return code and that the one-line message names the culprit (the
 * tensor, the node, the op, the opset).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "onnx.h"
#include "onnx.pb-c.h"

/* --- a model under construction ------------------------------------------ */

#define MB_MAX 8

/* Everything one small ModelProto needs, in one block the test owns: the
 * protobuf-c structs point into it, so nothing is freed but the bytes
 * mb_pack returns. */
typedef struct mb {
	Onnx__ModelProto m;
	Onnx__GraphProto g;
	Onnx__OperatorSetIdProto opset, *opsets[1];
	Onnx__NodeProto node[MB_MAX], *nodes[MB_MAX];
	char *node_in[MB_MAX][4], *node_out[MB_MAX][2];
	Onnx__AttributeProto attr[MB_MAX], *attrs[MB_MAX];
	Onnx__ValueInfoProto vi[MB_MAX], *ins[MB_MAX], *outs[MB_MAX];
	Onnx__TypeProto type[MB_MAX];
	Onnx__TypeProto__Tensor tt[MB_MAX];
	Onnx__TensorShapeProto shape[MB_MAX];
	Onnx__TensorShapeProto__Dimension dim[MB_MAX][4], *dims[MB_MAX][4];
	Onnx__TensorProto init[MB_MAX], *inits[MB_MAX];
	int64_t init_dims[MB_MAX][4];
	Onnx__StringStringEntryProto ext[2], *exts[2];
	int nvi, nattr;
} mb;

/* The strings protobuf-c packs are never written to. */
static char *
S(const char *s)
{
	return (char *)(uintptr_t)s;
}

static void
mb_init(mb *b, int64_t opset)
{
	memset(b, 0, sizeof *b);
	b->m = (Onnx__ModelProto)ONNX__MODEL_PROTO__INIT;
	b->g = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
	b->opset = (Onnx__OperatorSetIdProto)ONNX__OPERATOR_SET_ID_PROTO__INIT;
	b->m.has_ir_version = 1;
	b->m.ir_version = 8;
	b->m.graph = &b->g;
	b->g.name = S("test");
	b->opset.domain = S("");
	b->opset.has_version = 1;
	b->opset.version = opset;
	b->opsets[0] = &b->opset;
	b->m.n_opset_import = 1;
	b->m.opset_import = b->opsets;
	b->g.node = b->nodes;
	b->g.input = b->ins;
	b->g.output = b->outs;
	b->g.initializer = b->inits;
}

/* A float32 ValueInfo of rank dims; -1 is a symbolic dimension "N". */
static Onnx__ValueInfoProto *
mb_vi(mb *b, const char *name, int rank, const int64_t *d)
{
	int k = b->nvi++;

	assert_true(k < MB_MAX && rank <= 4);
	b->vi[k] = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
	b->type[k] = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
	b->tt[k] = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
	b->shape[k] = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
	for (int i = 0; i < rank; i++) {
		Onnx__TensorShapeProto__Dimension *x = &b->dim[k][i];

		*x = (Onnx__TensorShapeProto__Dimension)
		    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
		if (d[i] < 0) {
			x->value_case =
			    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
			x->dim_param = S("N");
		} else {
			x->value_case =
			    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
			x->dim_value = d[i];
		}
		b->dims[k][i] = x;
	}
	b->shape[k].n_dim = (size_t)rank;
	b->shape[k].dim = b->dims[k];
	b->tt[k].has_elem_type = 1;
	b->tt[k].elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	b->tt[k].shape = &b->shape[k];
	b->type[k].value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	b->type[k].tensor_type = &b->tt[k];
	b->vi[k].name = S(name);
	b->vi[k].type = &b->type[k];
	return &b->vi[k];
}

static void
mb_input(mb *b, const char *name, int rank, const int64_t *d)
{
	b->ins[b->g.n_input++] = mb_vi(b, name, rank, d);
}

static void
mb_output(mb *b, const char *name)
{
	b->outs[b->g.n_output++] = mb_vi(b, name, 0, NULL);
	b->tt[b->nvi - 1].shape = NULL; /* outputs: shape left to inference */
}

/* A node with up to 4 inputs and 2 outputs, NULL-terminated lists. */
static Onnx__NodeProto *
mb_node(mb *b, const char *op, const char *name, const char *const *in,
    const char *const *out)
{
	size_t k = b->g.n_node++;
	Onnx__NodeProto *n = &b->node[k];

	assert_true(k < MB_MAX);
	*n = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
	n->op_type = S(op);
	n->name = S(name);
	for (; in[n->n_input] != NULL; n->n_input++)
		b->node_in[k][n->n_input] = S(in[n->n_input]);
	for (; out[n->n_output] != NULL; n->n_output++)
		b->node_out[k][n->n_output] = S(out[n->n_output]);
	n->input = b->node_in[k];
	n->output = b->node_out[k];
	b->nodes[k] = n;
	return n;
}

/* A float32 initializer; values may be NULL (then it holds no data). */
static Onnx__TensorProto *
mb_init_f32(mb *b, const char *name, int rank, const int64_t *d,
    float *values, size_t nvalues)
{
	size_t k = b->g.n_initializer++;
	Onnx__TensorProto *t = &b->init[k];

	assert_true(k < MB_MAX && rank <= 4);
	*t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
	memcpy(b->init_dims[k], d, (size_t)rank * sizeof *d);
	t->name = S(name);
	t->n_dims = (size_t)rank;
	t->dims = b->init_dims[k];
	t->has_data_type = 1;
	t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	t->n_float_data = nvalues;
	t->float_data = values;
	b->inits[k] = t;
	return t;
}

static uint8_t *
mb_pack(const mb *b, size_t *len)
{
	uint8_t *buf;

	*len = onnx__model_proto__get_packed_size(&b->m);
	buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	assert_int_equal(onnx__model_proto__pack(&b->m, buf), *len);
	return buf;
}

/* Parse b; the graph (on success) or NULL. */
static int
parse(const mb *b, sl_graph **g, sl_errmsg *why)
{
	size_t len;
	uint8_t *buf = mb_pack(b, &len);
	int rc;

	*g = NULL;
	memset(why, 0, sizeof *why);
	rc = sl_onnx_parse(buf, len, g, why);
	free(buf);
	if (rc != 0)
		assert_null(*g);
	return rc;
}

#define assert_msg_has(why, s) do { \
	if (strstr((why)->text, (s)) == NULL) \
		fail_msg("message \"%s\" does not name \"%s\"", (why)->text, (s)); \
} while (0)

static const int64_t dims_n4[] = { -1, 4 };

/* y = Relu(x), x [N, 4]: the smallest valid model. */
static void
relu_model(mb *b)
{
	mb_init(b, 13);
	mb_input(b, "x", 2, dims_n4);
	mb_output(b, "y");
	mb_node(b, "Relu", "relu", (const char *[]){ "x", NULL },
	    (const char *[]){ "y", NULL });
}

/* --- malformed bytes -------------------------------------------------------- */

/* Every strict prefix of a valid model is refused as malformed: protobuf
 * packs the graph (field 7) before the opsets (field 8), so a cut either
 * breaks a length-delimited field or loses the opset import. */
static void
test_truncated(void **state)
{
	mb b;
	size_t len;
	uint8_t *buf;
	sl_errmsg why;
	sl_graph *g = NULL;

	(void)state;
	relu_model(&b);
	buf = mb_pack(&b, &len);
	assert_int_equal(sl_onnx_parse(buf, len, &g, &why), 0);
	sl_g_free(&g);
	for (size_t cut = 0; cut < len; cut++) {
		int rc = sl_onnx_parse(buf, cut, &g, &why);

		if (rc != SL_EFORMAT)
			fail_msg("prefix of %zu of %zu bytes: %d (%s)", cut, len, rc,
			    why.text);
		assert_null(g);
	}
	/* A cut through the graph is protobuf's own refusal. */
	assert_int_equal(sl_onnx_parse(buf, len / 2, &g, &why), SL_EFORMAT);
	assert_msg_has(&why, "protobuf");
	free(buf);
}

static void
test_garbage(void **state)
{
	static const char text[] = "this is not an ONNX model, it is text\n";
	uint8_t junk[512];
	uint32_t x = 12345;
	sl_errmsg why;
	sl_graph *g = NULL;

	(void)state;
	memset(junk, 0xff, sizeof junk);
	assert_int_equal(sl_onnx_parse(junk, sizeof junk, &g, &why),
	    SL_EFORMAT);
	assert_msg_has(&why, "protobuf");
	assert_null(g);
	assert_int_equal(sl_onnx_parse(text, sizeof text - 1, &g, &why),
	    SL_EFORMAT);
	assert_null(g);
	for (int round = 0; round < 200; round++) {
		int rc;

		for (size_t i = 0; i < sizeof junk; i++) {
			x = x * 1103515245u + 12345u;
			junk[i] = (uint8_t)(x >> 24);
		}
		rc = sl_onnx_parse(junk, (size_t)(x % sizeof junk), &g, &why);
		assert_true(rc == SL_EFORMAT || rc == SL_EUNSUPPORTED ||
		    rc == SL_ELIMIT);
		assert_null(g);
	}
}

/* --- sizes -------------------------------------------------------------------- */

/* An initializer whose dims claim 2^40 floats and which holds none: refused
 * on its dims, before anything is allocated for it. */
static void
test_tensor_2e40(void **state)
{
	static const int64_t d[] = { (int64_t)1 << 20, (int64_t)1 << 20 };
	mb b;
	sl_errmsg why;
	sl_graph *g;

	(void)state;
	relu_model(&b);
	mb_init_f32(&b, "huge_weight", 2, d, NULL, 0);
	assert_int_equal(parse(&b, &g, &why), SL_ELIMIT);
	assert_msg_has(&why, "huge_weight");
}

/* dims whose product overflows int64 (2^32 cubed); and a negative dim. */
static void
test_shape_overflow(void **state)
{
	static const int64_t d[] = {
		(int64_t)1 << 32, (int64_t)1 << 32, (int64_t)1 << 32,
	};
	static const int64_t neg[] = { -3, 4 };
	float one = 1;
	mb b;
	sl_errmsg why;
	sl_graph *g;

	(void)state;
	relu_model(&b);
	mb_init_f32(&b, "overflowing", 3, d, &one, 1);
	assert_int_equal(parse(&b, &g, &why), SL_ELIMIT);
	assert_msg_has(&why, "overflowing");

	relu_model(&b);
	mb_init_f32(&b, "negative", 2, neg, &one, 1);
	assert_int_equal(parse(&b, &g, &why), SL_ELIMIT);
	assert_msg_has(&why, "negative");
}

/* Data that does not match the dims: 3 floats for a [2, 2]. */
static void
test_data_mismatch(void **state)
{
	static const int64_t d[] = { 2, 2 };
	float v[3] = { 1, 2, 3 };
	mb b;
	sl_errmsg why;
	sl_graph *g;

	(void)state;
	relu_model(&b);
	mb_init_f32(&b, "short_weight", 2, d, v, 3);
	assert_int_equal(parse(&b, &g, &why), SL_EFORMAT);
	assert_msg_has(&why, "short_weight");
}

/* --- graph structure ------------------------------------------------------------ */

/* a = Relu(b), b = Relu(a): parses (nodes may come in any order), and
 * planning finds the cycle and names a node on it. */
static void
test_cycle(void **state)
{
	static const int64_t d[] = { 2, 4 };
	mb b;
	sl_errmsg why;
	sl_graph *g;

	(void)state;
	mb_init(&b, 13);
	mb_input(&b, "x", 2, d);
	mb_output(&b, "y");
	mb_node(&b, "Relu", "first", (const char *[]){ "b", NULL },
	    (const char *[]){ "a", NULL });
	mb_node(&b, "Relu", "second", (const char *[]){ "a", NULL },
	    (const char *[]){ "b", NULL });
	mb_node(&b, "Add", "out", (const char *[]){ "a", "x", NULL },
	    (const char *[]){ "y", NULL });
	assert_int_equal(parse(&b, &g, &why), 0);
	assert_int_equal(sl_g_plan(g, 2, &why), SL_EFORMAT);
	assert_msg_has(&why, "cycle");
	assert_msg_has(&why, "node 'first' (Relu)");
	sl_g_free(&g);

	/* A node that reads its own output. */
	mb_init(&b, 13);
	mb_input(&b, "x", 2, d);
	mb_output(&b, "y");
	mb_node(&b, "Add", "self", (const char *[]){ "x", "y", NULL },
	    (const char *[]){ "y", NULL });
	assert_int_equal(parse(&b, &g, &why), 0);
	assert_int_equal(sl_g_plan(g, 2, &why), SL_EFORMAT);
	assert_msg_has(&why, "cycle");
	assert_msg_has(&why, "'self'");
	sl_g_free(&g);
}

/* An input nothing produces is found at plan (it names the node and the
 * tensor); a node with fewer inputs than its op takes, at parse. */
static void
test_missing_input(void **state)
{
	mb b;
	sl_errmsg why;
	sl_graph *g;

	(void)state;
	mb_init(&b, 13);
	mb_input(&b, "x", 2, dims_n4);
	mb_output(&b, "y");
	mb_node(&b, "Add", "adder", (const char *[]){ "x", "nowhere", NULL },
	    (const char *[]){ "y", NULL });
	assert_int_equal(parse(&b, &g, &why), 0);
	g->t[g->inputs[0]].dims[0] = 2;
	assert_int_equal(sl_g_plan(g, 2, &why), SL_EFORMAT);
	assert_msg_has(&why, "node 'adder' (Add)");
	assert_msg_has(&why, "'nowhere'");
	sl_g_free(&g);

	mb_init(&b, 13);
	mb_input(&b, "x", 2, dims_n4);
	mb_output(&b, "y");
	mb_node(&b, "Add", "lonely", (const char *[]){ "x", NULL },
	    (const char *[]){ "y", NULL });
	assert_int_equal(parse(&b, &g, &why), SL_EFORMAT);
	assert_msg_has(&why, "node 'lonely' (Add)");
	assert_msg_has(&why, "1 inputs");

	/* A required input left out by an empty name. */
	mb_init(&b, 13);
	mb_input(&b, "x", 2, dims_n4);
	mb_output(&b, "y");
	mb_node(&b, "Add", "blank", (const char *[]){ "", "x", NULL },
	    (const char *[]){ "y", NULL });
	assert_int_equal(parse(&b, &g, &why), SL_EFORMAT);
	assert_msg_has(&why, "node 'blank' (Add)");
	assert_msg_has(&why, "input 0");
}

/* A graph output nothing produces. */
static void
test_missing_output(void **state)
{
	mb b;
	sl_errmsg why;
	sl_graph *g;

	(void)state;
	relu_model(&b);
	mb_output(&b, "phantom");
	assert_int_equal(parse(&b, &g, &why), SL_EFORMAT);
	assert_msg_has(&why, "'phantom'");
}

/* --- what we do not run ---------------------------------------------------------- */

static void
test_unsupported_op(void **state)
{
	mb b;
	sl_errmsg why;
	sl_graph *g;
	Onnx__NodeProto *n;

	(void)state;
	relu_model(&b);
	mb_output(&b, "z");
	mb_node(&b, "NonMaxSuppression", "nms_7",
	    (const char *[]){ "y", NULL }, (const char *[]){ "z", NULL });
	assert_int_equal(parse(&b, &g, &why), SL_EUNSUPPORTED);
	assert_msg_has(&why, "'nms_7'");
	assert_msg_has(&why, "NonMaxSuppression");

	/* An op of another domain, even with a name we know. */
	relu_model(&b);
	n = &b.node[0];
	n->domain = S("com.microsoft");
	assert_int_equal(parse(&b, &g, &why), SL_EUNSUPPORTED);
	assert_msg_has(&why, "'relu'");
	assert_msg_has(&why, "com.microsoft");
}

/* Tensors stored outside the file are refused, naming the tensor. */
static void
test_external_data(void **state)
{
	static const int64_t d[] = { 4 };
	mb b;
	sl_errmsg why;
	sl_graph *g;
	Onnx__TensorProto *t;

	(void)state;
	relu_model(&b);
	t = mb_init_f32(&b, "far_away", 1, d, NULL, 0);
	t->has_data_location = 1;
	t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
	b.ext[0] = (Onnx__StringStringEntryProto)
	    ONNX__STRING_STRING_ENTRY_PROTO__INIT;
	b.ext[0].key = S("location");
	b.ext[0].value = S("weights.bin");
	b.exts[0] = &b.ext[0];
	t->n_external_data = 1;
	t->external_data = b.exts;
	assert_int_equal(parse(&b, &g, &why), SL_EUNSUPPORTED);
	assert_msg_has(&why, "'far_away'");
	assert_msg_has(&why, "external");
}

static void
test_opset_range(void **state)
{
	char want[32];
	const int64_t bad[] = { SL_ONNX_MIN_OPSET - 1, SL_ONNX_MAX_OPSET + 1,
	    1, 1000 };
	mb b;
	sl_errmsg why;
	sl_graph *g;

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		relu_model(&b);
		b.opset.version = bad[i];
		assert_int_equal(parse(&b, &g, &why), SL_EUNSUPPORTED);
		snprintf(want, sizeof want, "opset %lld", (long long)bad[i]);
		assert_msg_has(&why, want);
	}
	/* Only another domain imported: well formed, not ours. Nothing
	 * imported at all: malformed. */
	relu_model(&b);
	b.opset.domain = S("ai.onnx.preview.training");
	b.opset.version = 1;
	assert_int_equal(parse(&b, &g, &why), SL_EUNSUPPORTED);
	assert_msg_has(&why, "ai.onnx.preview.training");
	relu_model(&b);
	b.m.n_opset_import = 0;
	assert_int_equal(parse(&b, &g, &why), SL_EFORMAT);
	assert_msg_has(&why, "opset");
	/* Both ends of the range load; "ai.onnx" is the default domain. */
	relu_model(&b);
	b.opset.version = SL_ONNX_MIN_OPSET;
	assert_int_equal(parse(&b, &g, &why), 0);
	sl_g_free(&g);
	relu_model(&b);
	b.opset.version = SL_ONNX_MAX_OPSET;
	b.opset.domain = S("ai.onnx");
	assert_int_equal(parse(&b, &g, &why), 0);
	assert_int_equal(g->opset, SL_ONNX_MAX_OPSET);
	sl_g_free(&g);
}

/* --- one TensorProto (the backend tests' input_K.pb) ------------------------------ */

static void
test_tensor_decode(void **state)
{
	static int64_t d[] = { 2, 3 };
	int32_t iv[6] = { 1, -2, 3, -4, 5, 2147483647 };
	Onnx__TensorProto t = ONNX__TENSOR_PROTO__INIT;
	uint8_t buf[256];
	int64_t dims[SL_G_MAX_RANK];
	int dtype, rank;
	void *data = NULL;
	size_t len;
	sl_errmsg why;

	(void)state;
	t.n_dims = 2;
	t.dims = d;
	t.has_data_type = 1;
	t.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__INT32;
	t.n_int32_data = 6;
	t.int32_data = iv;
	len = onnx__tensor_proto__pack(&t, buf);
	/* int32 is widened to int64. */
	assert_int_equal(sl_onnx_tensor_decode(buf, len, &dtype, &rank, dims,
	    &data, &why), 0);
	assert_int_equal(dtype, SL_G_I64);
	assert_int_equal(rank, 2);
	assert_int_equal(dims[0], 2);
	assert_int_equal(dims[1], 3);
	for (int i = 0; i < 6; i++)
		assert_int_equal(((int64_t *)data)[i], iv[i]);
	free(data);
	data = NULL;

	/* raw_data of the wrong length. */
	t.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	t.n_int32_data = 0;
	t.has_raw_data = 1;
	t.raw_data.len = 20;
	t.raw_data.data = (uint8_t *)iv;
	t.name = S("raw_short");
	len = onnx__tensor_proto__pack(&t, buf);
	assert_int_equal(sl_onnx_tensor_decode(buf, len, &dtype, &rank, dims,
	    &data, &why), SL_EFORMAT);
	assert_msg_has(&why, "raw_short");
	assert_null(data);

	/* A dtype we do not run. */
	t.data_type = ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
	t.raw_data.len = 48;
	t.raw_data.data = (uint8_t *)buf + 128;
	t.name = S("doubles");
	len = onnx__tensor_proto__pack(&t, buf);
	assert_true(len <= 128);
	assert_int_equal(sl_onnx_tensor_decode(buf, len, &dtype, &rank, dims,
	    &data, &why), SL_EUNSUPPORTED);
	assert_msg_has(&why, "doubles");

	/* Garbage. */
	memset(buf, 0xff, 64);
	assert_int_equal(sl_onnx_tensor_decode(buf, 64, &dtype, &rank, dims,
	    &data, &why), SL_EFORMAT);
}

/* --- what fuzz_onnx found ---------------------------------------------------------- */

/* An INTS attribute, in the node's own attribute slot (one per node). */
static void
mb_attr_ints(mb *b, Onnx__NodeProto *n, const char *name, int64_t *v,
    size_t nv)
{
	size_t k = (size_t)(n - b->node);
	Onnx__AttributeProto *a = &b->attr[k];

	*a = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
	a->name = S(name);
	a->has_type = 1;
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
	a->n_ints = nv;
	a->ints = v;
	b->attrs[k] = a;
	n->n_attribute = 1;
	n->attribute = &b->attrs[k];
}

/* Each of these crashed or hit undefined behaviour once. */
static void
test_fuzz_findings(void **state)
{
	static const int64_t d24[] = { 2, 4 };
	int64_t huge[] = { (int64_t)1 << 57, ((int64_t)1 << 32) - 1 };
	static const int64_t d2[] = { 2 };
	Onnx__NodeProto *n;
	mb b;
	sl_errmsg why;
	sl_graph *g;

	(void)state;
	/* A node with neither a name nor outputs. */
	relu_model(&b);
	n = mb_node(&b, "Relu", "", (const char *[]){ "x", NULL },
	    (const char *[]){ NULL });
	n->name = NULL;
	assert_int_equal(parse(&b, &g, &why), SL_EFORMAT);
	assert_msg_has(&why, "0 outputs");

	/* A Constant whose attribute has no name. */
	relu_model(&b);
	mb_output(&b, "c");
	n = mb_node(&b, "Constant", "k", (const char *[]){ NULL },
	    (const char *[]){ "c", NULL });
	mb_attr_ints(&b, n, "value_ints", huge, 2);
	b.attr[1].name = NULL;
	assert_int_equal(parse(&b, &g, &why), SL_EUNSUPPORTED);
	assert_msg_has(&why, "'k'");

	/* Transpose with perm = [] on a rank-2 input: parses (an empty list
	 * is not NULL to the op), refused at plan. */
	mb_init(&b, 13);
	mb_input(&b, "x", 2, d24);
	mb_output(&b, "y");
	n = mb_node(&b, "Transpose", "t", (const char *[]){ "x", NULL },
	    (const char *[]){ "y", NULL });
	mb_attr_ints(&b, n, "perm", NULL, 0);
	assert_int_equal(parse(&b, &g, &why), 0);
	assert_int_equal(sl_g_plan(g, 2, &why), SL_EMISMATCH);
	assert_msg_has(&why, "node 't' (Transpose)");
	sl_g_free(&g);

	/* Flatten of an input left out. */
	mb_init(&b, 13);
	mb_input(&b, "x", 2, d24);
	mb_output(&b, "y");
	mb_node(&b, "Flatten", "f", (const char *[]){ "", NULL },
	    (const char *[]){ "y", NULL });
	assert_int_equal(parse(&b, &g, &why), SL_EFORMAT);
	assert_msg_has(&why, "node 'f' (Flatten)");

	/* Slice (opset 13) with its starts left out. */
	mb_init(&b, 13);
	mb_input(&b, "x", 2, d24);
	mb_output(&b, "y");
	mb_init_f32(&b, "unused", 1, d2, (float[]){ 0, 0 }, 2);
	mb_node(&b, "Slice", "s", (const char *[]){ "x", "", "", NULL },
	    (const char *[]){ "y", NULL });
	assert_int_equal(parse(&b, &g, &why), 0);
	assert_int_equal(sl_g_plan(g, 2, &why), SL_EFORMAT);
	assert_msg_has(&why, "node 's' (Slice)");
	assert_msg_has(&why, "left out");
	sl_g_free(&g);

	/* Reshape to [2^57, 2^32 - 1]: refused before the product
	 * overflows. */
	mb_init(&b, 13);
	mb_input(&b, "x", 2, d24);
	mb_output(&b, "y");
	mb_output(&b, "shp");
	n = mb_node(&b, "Constant", "shape", (const char *[]){ NULL },
	    (const char *[]){ "shp0", NULL });
	mb_attr_ints(&b, n, "value_ints", huge, 2);
	mb_node(&b, "Reshape", "r", (const char *[]){ "x", "shp0", NULL },
	    (const char *[]){ "y", NULL });
	b.g.n_output = 1;
	assert_int_equal(parse(&b, &g, &why), 0);
	assert_int_equal(sl_g_plan(g, 2, &why), SL_ELIMIT);
	assert_msg_has(&why, "node 'r' (Reshape)");
	sl_g_free(&g);
}

/* --- a graph that runs ----------------------------------------------------------- */

/* y = Relu(x) + bias, x [N, 4], bias [4] broadcast: parse, plan at
 * batch 3, run at batches 3 and 1 from the same plan. */
static void
test_relu_add_runs(void **state)
{
	static const int64_t d4[] = { 4 };
	float bias[4] = { 0.5f, -1.0f, 2.0f, 0.0f };
	float x[12] = {
		-1, 2, -3, 4,
		5, -6, 7, -8,
		0, 0.25f, -0.0f, 1e-3f,
	};
	mb b;
	sl_errmsg why;
	sl_graph *g;
	sl_gtensor *in, *out;

	(void)state;
	mb_init(&b, 17);
	mb_input(&b, "x", 2, dims_n4);
	mb_output(&b, "y");
	mb_init_f32(&b, "bias", 1, d4, bias, 4);
	mb_node(&b, "Relu", "relu", (const char *[]){ "x", NULL },
	    (const char *[]){ "r", NULL });
	mb_node(&b, "Add", "add", (const char *[]){ "r", "bias", NULL },
	    (const char *[]){ "y", NULL });
	if (parse(&b, &g, &why) != 0)
		fail_msg("parse: %s", why.text);
	assert_int_equal(g->ninputs, 1);
	assert_int_equal(g->noutputs, 1);
	in = &g->t[g->inputs[0]];
	assert_int_equal(in->dtype, SL_G_F32);
	assert_int_equal(in->rank, 2);
	assert_int_equal(in->dims[0], -1);
	assert_int_equal(in->dims[1], 4);
	in->dims[0] = 3;
	if (sl_g_plan(g, 3, &why) != 0)
		fail_msg("plan: %s", why.text);
	for (int batch = 3; batch >= 1; batch -= 2) {
		in = &g->t[g->inputs[0]];
		in->dims[0] = batch;
		in->data = x;
		if (sl_g_run(g, &why) != 0)
			fail_msg("run at batch %d: %s", batch, why.text);
		out = &g->t[g->outputs[0]];
		assert_int_equal(out->dtype, SL_G_F32);
		assert_int_equal(out->rank, 2);
		assert_int_equal(out->dims[0], batch);
		assert_int_equal(out->dims[1], 4);
		for (int i = 0; i < batch * 4; i++) {
			float want = (x[i] > 0 ? x[i] : 0) + bias[i % 4];

			if (((const float *)out->data)[i] != want)
				fail_msg("batch %d, y[%d] = %g, expected %g", batch, i,
				    (double)((const float *)out->data)[i],
				    (double)want);
		}
	}
	g->t[g->inputs[0]].data = NULL; /* ours */
	sl_g_free(&g);
	assert_null(g);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_tensor_2e40),
		cmocka_unit_test(test_shape_overflow),
		cmocka_unit_test(test_data_mismatch),
		cmocka_unit_test(test_cycle),
		cmocka_unit_test(test_missing_input),
		cmocka_unit_test(test_missing_output),
		cmocka_unit_test(test_unsupported_op),
		cmocka_unit_test(test_external_data),
		cmocka_unit_test(test_opset_range),
		cmocka_unit_test(test_tensor_decode),
		cmocka_unit_test(test_fuzz_findings),
		cmocka_unit_test(test_relu_add_runs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

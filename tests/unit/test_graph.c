/* test_graph.c - the graph core and the public handle: ordering, cycles,
 * missing inputs, arena planning, the MLP as a graph against sl_mlp, the row
 * shape against an ONNX input, batches up to the plan, progress. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "graph.h"
#include "onnx.pb-c.h"
#include "sl_graph.h"
#include "sl_nn.h"

/* --- tiny graphs through the internal API ------------------------------------ */

static int
input(sl_graph *g, const char *name, int rank, const int64_t *dims)
{
	int t;

	assert_int_equal(sl_g_tensor_add(g, name, &t, NULL), 0);
	assert_int_equal(sl_g_set_shape(&g->t[t], SL_G_F32, rank, dims, NULL), 0);
	g->t[t].flags |= SL_GT_INPUT;
	g->inputs[g->ninputs++] = t;
	return t;
}

static int
tensor(sl_graph *g, const char *name)
{
	int t;

	assert_int_equal(sl_g_tensor_add(g, name, &t, NULL), 0);
	return t;
}

static void
node(sl_graph *g, const char *op, const char *name, int a, int b, int y)
{
	int in[2] = { a, b };

	assert_int_equal(sl_g_node_add(g, sl_g_op_find(op), name, in,
	    b >= 0 ? 2 : 1, &y, 1, NULL, NULL), 0);
}

static void
test_cycle_named(void **state)
{
	const int64_t d[2] = { 2, 3 };
	sl_graph *g;
	sl_errmsg why = { "" };
	int x, a, b;

	(void)state;
	assert_int_equal(sl_g_new(&g), 0);
	x = input(g, "x", 2, d);
	a = tensor(g, "a");
	b = tensor(g, "b");
	/* a = x + b, b = relu(a): a loop. */
	node(g, "Add", "add", x, b, a);
	node(g, "Relu", "relu", a, -1, b);
	g->t[b].flags |= SL_GT_OUTPUT;
	g->outputs[g->noutputs++] = b;
	assert_int_equal(sl_g_plan(g, 2, &why), SL_EFORMAT);
	assert_non_null(strstr(why.text, "cycle through node"));
	sl_g_free(&g);
	assert_null(g);
}

static void
test_missing_input_named(void **state)
{
	const int64_t d[2] = { 2, 3 };
	sl_graph *g;
	sl_errmsg why = { "" };
	int x, ghost, y;

	(void)state;
	assert_int_equal(sl_g_new(&g), 0);
	x = input(g, "x", 2, d);
	ghost = tensor(g, "ghost");
	y = tensor(g, "y");
	node(g, "Add", "add", x, ghost, y);
	g->t[y].flags |= SL_GT_OUTPUT;
	g->outputs[g->noutputs++] = y;
	assert_int_equal(sl_g_plan(g, 2, &why), SL_EFORMAT);
	assert_non_null(strstr(why.text, "node 'add' (Add): input 'ghost' is not "
	    "produced"));
	sl_g_free(&g);
}

/* A chain x -> r1 -> r2 -> r3 -> y: live tensors never share bytes, dead
 * ones are reused (the arena holds two, not four). */
static void
test_arena_reuse(void **state)
{
	const int64_t d[2] = { 4, 1000 };
	sl_graph *g;
	sl_errmsg why = { "" };
	int x, t[4];
	float *in = malloc(4000 * sizeof *in);

	(void)state;
	assert_int_equal(sl_g_new(&g), 0);
	x = input(g, "x", 2, d);
	for (int i = 0; i < 4; i++) {
		char name[8];

		snprintf(name, sizeof name, "r%d", i);
		t[i] = tensor(g, name);
		/* relu, neg, neg, relu: y = relu(x) */
		node(g, i == 1 || i == 2 ? "Neg" : "Relu", name,
		    i ? t[i - 1] : x, -1, t[i]);
	}
	g->t[t[3]].flags |= SL_GT_OUTPUT;
	g->outputs[g->noutputs++] = t[3];
	assert_int_equal(sl_g_plan(g, 4, &why), 0);
	for (int i = 0; i + 1 < 4; i++)
		assert_true(g->t[t[i]].arena_off != g->t[t[i + 1]].arena_off);
	assert_int_equal(g->arena_bytes, 2 * 16000);
	for (int i = 0; i < 4000; i++)
		in[i] = (float)(i % 7) - 3.0f;
	/* A smaller batch than planned runs too. */
	g->t[x].data = in;
	g->t[x].dims[0] = 3;
	assert_int_equal(sl_g_run(g, &why), 0);
	assert_int_equal(g->t[t[3]].dims[0], 3);
	for (int i = 0; i < 3000; i++)
		assert_true(((float *)g->t[t[3]].data)[i] ==
		    (in[i] > 0 ? in[i] : 0.0f));
	assert_int_equal(g->progress, 4);
	free(in);
	sl_g_free(&g);
}

/* --- the public handle ---------------------------------------------------------- */

/* The safetensors MLP as a graph computes what sl_mlp computes. */
static void
test_mlp_graph_equals_mlp(void **state)
{
	const int sizes[4] = { 784, 64, 32, 10 };
	const uint64_t row[2] = { 28, 28 };
	const sl_graph_opts o = { .max_batch = 16, .row_rank = 2, .row_dims = row };
	sl_mlp *m;
	sl_mlp_ws *ws;
	sl_graph *g;
	sl_rng rng;
	sl_errmsg why = { "" };
	float *x = malloc(16 * 784 * sizeof *x);
	const float *zg, *zm;
	int64_t dims[8];

	(void)state;
	sl_rng_seed(&rng, 7);
	assert_int_equal(sl_mlp_new(sizes, 3, &m), 0);
	sl_mlp_init_params(m, &rng);
	for (int i = 0; i < 16 * 784; i++)
		x[i] = (float)((i * 37) % 255) / 255.0f;
	assert_int_equal(sl_mlp_ws_new(m, 16, &ws), 0);
	assert_int_equal(sl_graph_from_mlp(m, &o, &g, &why), 0);
	assert_int_equal(sl_graph_format(g), SL_GRAPH_SAFETENSORS);
	assert_int_equal(sl_graph_input_dim(g), 784);
	assert_int_equal(sl_graph_classes(g), 10);
	assert_int_equal(sl_graph_input_shape(g, dims), 2);
	assert_true(dims[0] == -1 && dims[1] == 784);
	assert_int_equal(sl_graph_nodes(g), 5); /* Gemm Relu Gemm Relu Gemm */
	for (int B = 16; B >= 1; B -= 5) {
		const uint64_t before = sl_graph_progress(g);

		assert_int_equal(sl_graph_forward(g, x, B, &zg, &why), 0);
		assert_int_equal(sl_graph_progress(g) - before, 5);
		zm = sl_mlp_forward(m, ws, x, B, 0.0f, NULL);
		for (int i = 0; i < B * 10; i++)
			assert_true(fabsf(zg[i] - zm[i]) <= 1e-5f);
	}
	/* Past the plan: refused, not overrun. */
	assert_int_equal(sl_graph_forward(g, x, 17, &zg, &why), SL_EINVAL);
	assert_non_null(strstr(why.text, "planned for 1 to 16"));
	sl_graph_free(&g);
	assert_null(g);
	sl_mlp_ws_free(&ws);
	sl_mlp_free(&m);
	free(x);
}

/* An ONNX classifier [B, 1, 28, 28] -> Flatten -> Gemm -> [B, 10], packed
 * with protobuf-c. */
static uint8_t *
pack_classifier(size_t *len, int64_t c, int64_t h, int64_t w, float *W)
{
	Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
	Onnx__OperatorSetIdProto op = ONNX__OPERATOR_SET_ID_PROTO__INIT;
	Onnx__OperatorSetIdProto *ops[1] = { &op };
	Onnx__GraphProto gp = ONNX__GRAPH_PROTO__INIT;
	Onnx__NodeProto flat = ONNX__NODE_PROTO__INIT, gemm = ONNX__NODE_PROTO__INIT;
	Onnx__NodeProto *nodes[2] = { &flat, &gemm };
	Onnx__AttributeProto tb = ONNX__ATTRIBUTE_PROTO__INIT;
	Onnx__AttributeProto *tbs[1] = { &tb };
	Onnx__TensorProto wt = ONNX__TENSOR_PROTO__INIT;
	Onnx__TensorProto *inits[1] = { &wt };
	Onnx__ValueInfoProto in = ONNX__VALUE_INFO_PROTO__INIT,
	    out = ONNX__VALUE_INFO_PROTO__INIT;
	Onnx__ValueInfoProto *ins[1] = { &in }, *outs[1] = { &out };
	Onnx__TypeProto ty = ONNX__TYPE_PROTO__INIT;
	Onnx__TypeProto__Tensor tt = ONNX__TYPE_PROTO__TENSOR__INIT;
	Onnx__TensorShapeProto sh = ONNX__TENSOR_SHAPE_PROTO__INIT;
	Onnx__TensorShapeProto__Dimension d[4];
	Onnx__TensorShapeProto__Dimension *dp[4];
	char *flat_in[1] = { "input" }, *flat_out[1] = { "flat" };
	char *gemm_in[2] = { "flat", "W" }, *gemm_out[1] = { "logits" };
	int64_t wdims[2] = { 10, c * h * w };
	const int64_t sizes[4] = { 0, c, h, w };
	uint8_t *buf;

	op.has_version = 1;
	op.version = 13;
	m.has_ir_version = 1;
	m.ir_version = 8;
	m.n_opset_import = 1;
	m.opset_import = ops;
	for (int i = 0; i < 4; i++) {
		onnx__tensor_shape_proto__dimension__init(&d[i]);
		if (i == 0) {
			d[i].value_case =
			    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
			d[i].dim_param = "batch";
		} else {
			d[i].value_case =
			    ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
			d[i].dim_value = sizes[i];
		}
		dp[i] = &d[i];
	}
	sh.n_dim = 4;
	sh.dim = dp;
	tt.has_elem_type = 1;
	tt.elem_type = 1;
	tt.shape = &sh;
	ty.value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	ty.tensor_type = &tt;
	in.name = "input";
	in.type = &ty;
	out.name = "logits";
	flat.op_type = "Flatten";
	flat.name = "flat";
	flat.n_input = 1;
	flat.input = flat_in;
	flat.n_output = 1;
	flat.output = flat_out;
	tb.name = "transB";
	tb.has_type = 1;
	tb.type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
	tb.has_i = 1;
	tb.i = 1;
	gemm.op_type = "Gemm";
	gemm.name = "fc";
	gemm.n_input = 2;
	gemm.input = gemm_in;
	gemm.n_output = 1;
	gemm.output = gemm_out;
	gemm.n_attribute = 1;
	gemm.attribute = tbs;
	wt.name = "W";
	wt.has_data_type = 1;
	wt.data_type = 1;
	wt.n_dims = 2;
	wt.dims = wdims;
	wt.n_float_data = (size_t)(10 * c * h * w);
	wt.float_data = W;
	gp.n_node = 2;
	gp.node = nodes;
	gp.n_initializer = 1;
	gp.initializer = inits;
	gp.n_input = 1;
	gp.input = ins;
	gp.n_output = 1;
	gp.output = outs;
	m.graph = &gp;
	*len = onnx__model_proto__get_packed_size(&m);
	buf = malloc(*len);
	assert_non_null(buf);
	onnx__model_proto__pack(&m, buf);
	return buf;
}

static void
test_onnx_row_shape(void **state)
{
	float *W = malloc(10 * 784 * sizeof *W), x[2 * 784];
	const uint64_t rows_ok[2] = { 28, 28 }, rows_ok4[3] = { 1, 28, 28 },
	    rows_bad[2] = { 14, 56 };
	sl_graph_opts o = { .max_batch = 2, .row_rank = 2, .row_dims = rows_ok };
	sl_errmsg why = { "" };
	sl_graph *g = NULL;
	const float *z;
	size_t len;
	uint8_t *buf;

	(void)state;
	for (int i = 0; i < 10 * 784; i++)
		W[i] = i / 784 == 0 ? 0.01f : 0.0f;
	for (int i = 0; i < 2 * 784; i++)
		x[i] = 1.0f;
	buf = pack_classifier(&len, 1, 28, 28, W);
	assert_int_equal(sl_graph_load_onnx(buf, len, &o, &g, &why), 0);
	assert_int_equal(sl_graph_format(g), SL_GRAPH_ONNX);
	assert_int_equal(sl_graph_classes(g), 10);
	assert_int_equal(sl_graph_input_dim(g), 784);
	assert_int_equal(sl_graph_forward(g, x, 2, &z, &why), 0);
	/* Only row 0 of W is 0.01: class 0 sums the 784 ones. */
	assert_true(fabsf(z[0] - 7.84f) < 1e-4f && z[1] == 0.0f);
	sl_graph_free(&g);

	o.row_rank = 3;
	o.row_dims = rows_ok4;
	assert_int_equal(sl_graph_load_onnx(buf, len, &o, &g, &why), 0);
	sl_graph_free(&g);

	o.row_rank = 2;
	o.row_dims = rows_bad;
	assert_int_equal(sl_graph_load_onnx(buf, len, &o, &g, &why), SL_EMISMATCH);
	assert_string_equal(why.text, "the dataset's rows [N, 14, 56] do not fit "
	    "the model's input 'input' [-1, 1, 28, 28]");
	assert_null(g);

	/* Not a model: a truncated file names no crash, only the reason. */
	assert_int_equal(sl_graph_load_onnx(buf, len / 2, &o, &g, &why),
	    SL_EFORMAT);
	free(buf);
	free(W);
}

static void
test_op_names(void **state)
{
	const char *const *names = sl_graph_op_names();
	int conv = 0, matmul = 0, n = 0;

	(void)state;
	for (; names[n] != NULL; n++) {
		conv |= strcmp(names[n], "Conv") == 0;
		matmul |= strcmp(names[n], "MatMul") == 0;
		assert_non_null(sl_g_op_find(names[n]));
	}
	assert_true(conv && matmul && n > 60);
	assert_null(sl_g_op_find("NonZero"));
}

/* MatMul flat (B 2-D: A's batch folds into the rows), MatMul batched (one
 * product per (b, h), as attention makes) and Gemm (transB, a row of C),
 * each large enough to be split over two threads, against double loops,
 * at two threads and at one. (Not the same bits: OpenBLAS's edge kernels
 * for the rows a part ends on may sum in another order.) */
static void
matmul_case(int kind, int threads, float *y_out, size_t ny)
{
	enum { BH = 6, M = 70, K = 64, N = 96 };
	const int64_t da_flat[3] = { BH, M, K }, db_flat[2] = { K, N };
	const int64_t da_b[4] = { 2, 3, M, K }, db_b[4] = { 2, 3, K, N };
	const int64_t da_g[2] = { BH * M, K }, db_g[2] = { N, K }, dc[1] = { N };
	static float a[BH * M * K], b[BH * K * N], c[N];
	const sl_gattr tb = { .name = "transB", .type = SL_GA_INT, .i = 1 };
	const sl_gattrs ga = { &tb, 1 };
	sl_graph *g;
	sl_errmsg why;
	int ta, tbi, tc, ty, in[3];
	const float *y;

	for (size_t i = 0; i < sizeof a / sizeof a[0]; i++)
		a[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
	for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
		b[i] = (float)((i * 53) % 89) / 44.0f - 1.0f;
	for (int i = 0; i < N; i++)
		c[i] = (float)i / 10.0f;
	openblas_set_num_threads(threads);
	assert_int_equal(sl_g_new(&g), 0);
	ta = input(g, "a", kind == 0 ? 3 : kind == 1 ? 4 : 2,
	    kind == 0 ? da_flat : kind == 1 ? da_b : da_g);
	tbi = input(g, "b", kind == 0 ? 2 : kind == 1 ? 4 : 2,
	    kind == 0 ? db_flat : kind == 1 ? db_b : db_g);
	tc = input(g, "c", 1, dc);
	ty = tensor(g, "y");
	g->t[ty].flags |= SL_GT_OUTPUT;
	g->outputs[g->noutputs++] = ty;
	in[0] = ta;
	in[1] = tbi;
	in[2] = tc;
	assert_int_equal(sl_g_node_add(g, sl_g_op_find(kind == 2 ? "Gemm" :
	    "MatMul"), "mm", in, kind == 2 ? 3 : 2, &ty, 1, kind == 2 ? &ga :
	    NULL, &why), 0);
	if (sl_g_plan(g, kind == 2 ? BH * M : kind == 0 ? BH : 2, &why) != 0)
		fail_msg("plan: %s", why.text);
	g->t[ta].data = a;
	g->t[tbi].data = b;
	g->t[tc].data = c;
	assert_int_equal(sl_g_run(g, &why), 0);
	assert_int_equal(sl_g_numel(&g->t[ty]), ny);
	y = g->t[ty].data;
	for (int p = 0; p < BH; p++)
		for (int i = 0; i < M; i++)
			for (int j = 0; j < N; j++) {
				double sum = kind == 2 ? (double)c[j] : 0.0;
				const size_t o = ((size_t)p * M + (size_t)i) * N +
				    (size_t)j;

				for (int k = 0; k < K; k++) {
					const size_t ai = ((size_t)p * M + (size_t)i) *
					    K + (size_t)k;
					const size_t bi = kind == 0 ? (size_t)k * N +
					    (size_t)j : kind == 1 ? ((size_t)p * K +
					    (size_t)k) * N + (size_t)j : (size_t)j * K +
					    (size_t)k;

					sum += (double)a[ai] * (double)b[bi];
				}
				if (!(fabs((double)y[o] - sum) <= 1e-4))
					fail_msg("kind %d, threads %d, y[%zu] = %.9g, "
					    "expected %.9g", kind, threads, o,
					    (double)y[o], sum);
			}
	memcpy(y_out, y, ny * sizeof *y);
	sl_g_free(&g);
}

static void
test_matmul_split_over_threads(void **state)
{
	enum { NY = 6 * 70 * 96 };
	static float y[NY];
	const int prev = openblas_get_num_threads();

	(void)state;
	for (int kind = 0; kind < 3; kind++) {
		matmul_case(kind, 2, y, NY);
		matmul_case(kind, 1, y, NY);
	}
	openblas_set_num_threads(prev);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cycle_named),
		cmocka_unit_test(test_missing_input_named),
		cmocka_unit_test(test_arena_reuse),
		cmocka_unit_test(test_mlp_graph_equals_mlp),
		cmocka_unit_test(test_onnx_row_shape),
		cmocka_unit_test(test_op_names),
		cmocka_unit_test(test_matmul_split_over_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

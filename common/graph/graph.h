/* graph.h - the graph engine's inside: tensors, nodes, the op table.
 *
 * Programs never include this file: they hold an sl_graph through
 * sl_graph.h. The ONNX loader, the safetensors MLP builder and the op
 * families (op_*.c) share what is here.
 *
 * Life of a graph (plan, then run; nothing is allocated per batch):
 *
 *   1. build   tensors and nodes are added (sl_g_tensor_add, sl_g_node_add);
 *              each node's op->init parses its attributes into n->attr.
 *   2. plan    nodes are put in topological order (a cycle is an error);
 *              nodes whose inputs are all constant run once and their
 *              outputs become constants (constant folding, BatchNorm into
 *              Conv); every other node's op->infer runs with the graph's
 *              inputs at the largest batch, which fixes each tensor's
 *              capacity; float tensors get offsets in one arena (first fit
 *              over their lifetimes), other dtypes (int64 shape tensors,
 *              bool) a small buffer of their own.
 *   3. run     for each node in order: op->infer with the actual inputs
 *              (cheap: shapes only; int64 shape sub-graphs run for real,
 *              since they depend on the batch), then op->forward.
 *
 * Shapes: dims[0..rank) in row-major order; a scalar has rank 0 and one
 * element. Every tensor's dims are the current ones: during planning those
 * of the largest batch, during a run those of that run's batch.
 */
#ifndef SL_GRAPH_INTERNAL_H
#define SL_GRAPH_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "sl_err.h"
#include "sl_graph.h"

/* Element types, numbered as ONNX's TensorProto.DataType. */
enum sl_gdtype {
	SL_G_F32 = 1,
	SL_G_I64 = 7,
	SL_G_BOOL = 9, /* one byte per element, 0 or 1 */
};

#define SL_G_MAX_RANK 8
#define SL_G_MAX_IO 16   /* inputs or outputs of one node */

/* Tensor flags. */
enum {
	SL_GT_CONST = 1 << 0,  /* initializer, Constant or folded: data is set */
	SL_GT_INPUT = 1 << 1,  /* a graph input, bound by the caller per run */
	SL_GT_OUTPUT = 1 << 2, /* a graph output */
	SL_GT_KNOWN = 1 << 8,  /* values exist now: constants, and int64/bool
	                        * tensors computed at plan time or earlier in
	                        * this run */
};

typedef struct sl_gtensor {
	char *name;             /* owned */
	int dtype;              /* enum sl_gdtype */
	int rank;
	int64_t dims[SL_G_MAX_RANK];
	unsigned flags;
	void *data;             /* CONST: owned; otherwise into the arena or an
	                         * own buffer once planned; NULL before */
	size_t cap_bytes;       /* planned capacity of data */
	int producer;           /* node index, -1 for inputs and constants */
	int last_use;           /* last consumer in run order (planning) */
	size_t arena_off;       /* planned offset for arena tensors */
	int own;                /* data is an own buffer (freed with the graph) */
} sl_gtensor;

/* An activation fused into the node that produces its input (fold.c):
 * the producer applies it to each output as it writes it, while the
 * values are in cache, and the activation node leaves the run. The
 * expressions are those of op_eltwise.c, so the result is the same
 * bit for bit. Ops that honour n->act: Conv, Add. */
enum sl_g_act_kind {
	SL_G_ACT_NONE = 0,
	SL_G_ACT_RELU,          /* x > 0 ? x : 0 */
	SL_G_ACT_CLIP,          /* min(max(x, lo), hi); ReLU6 */
	SL_G_ACT_HARDSWISH,     /* x * clip(x / 6 + 1/2, 0, 1) */
};

typedef struct sl_g_act {
	int kind;               /* enum sl_g_act_kind */
	float lo, hi;           /* CLIP's bounds */
} sl_g_act;

static inline float
sl_g_act_clampf(float x, float lo, float hi)
{
	/* As op_eltwise.c's Clip: lo > hi gives hi; NaN stays NaN. */
	x = x < lo ? lo : x;
	return x > hi ? hi : x;
}

/* Four lanes (GCC and clang vector extensions: SSE2 on x86-64, NEON on
 * arm64, no -march flags); loads and stores through memcpy. */
typedef float sl_g_v4f __attribute__((vector_size(16)));
typedef int32_t sl_g_v4i __attribute__((vector_size(16)));

/* (m ? a : b) per lane, m all ones or all zeros per lane. */
static inline sl_g_v4f
sl_g_v4_sel(sl_g_v4i m, sl_g_v4f a, sl_g_v4f b)
{
	return (sl_g_v4f)((m & (sl_g_v4i)a) | (~m & (sl_g_v4i)b));
}

/* sl_g_act_clampf on four lanes: the same comparisons, so the same
 * results (NaN stays NaN: both compares are false). */
static inline sl_g_v4f
sl_g_v4_clamp(sl_g_v4f x, sl_g_v4f lo, sl_g_v4f hi)
{
	x = sl_g_v4_sel(x < lo, lo, x);
	return sl_g_v4_sel(x > hi, hi, x);
}

/* y[i] = act(y[i]) for i < n; four at a time, then the tail. Exactly the
 * scalar expressions (no fused multiply-add without -march flags). */
static inline void
sl_g_act_apply(const sl_g_act *a, float *y, size_t n)
{
	const float lo = a->lo, hi = a->hi;
	const sl_g_v4f z = { 0.0f, 0.0f, 0.0f, 0.0f };
	const sl_g_v4f vlo = { lo, lo, lo, lo }, vhi = { hi, hi, hi, hi };
	const sl_g_v4f one = { 1.0f, 1.0f, 1.0f, 1.0f };
	const sl_g_v4f sixth = { 1.0f / 6.0f, 1.0f / 6.0f, 1.0f / 6.0f,
	    1.0f / 6.0f };
	const sl_g_v4f half = { 0.5f, 0.5f, 0.5f, 0.5f };
	size_t i = 0;

	switch (a->kind) {
	case SL_G_ACT_RELU:
		for (; i + 4 <= n; i += 4) {
			sl_g_v4f v;

			memcpy(&v, y + i, sizeof v);
			v = sl_g_v4_sel(v > z, v, z);
			memcpy(y + i, &v, sizeof v);
		}
		for (; i < n; i++)
			y[i] = y[i] > 0.0f ? y[i] : 0.0f;
		break;
	case SL_G_ACT_CLIP:
		for (; i + 4 <= n; i += 4) {
			sl_g_v4f v;

			memcpy(&v, y + i, sizeof v);
			v = sl_g_v4_clamp(v, vlo, vhi);
			memcpy(y + i, &v, sizeof v);
		}
		for (; i < n; i++)
			y[i] = sl_g_act_clampf(y[i], lo, hi);
		break;
	case SL_G_ACT_HARDSWISH:
		for (; i + 4 <= n; i += 4) {
			sl_g_v4f v;

			memcpy(&v, y + i, sizeof v);
			v = v * sl_g_v4_clamp(v * sixth + half, z, one);
			memcpy(y + i, &v, sizeof v);
		}
		for (; i < n; i++)
			y[i] = y[i] * sl_g_act_clampf(y[i] * (1.0f / 6.0f) + 0.5f,
			    0.0f, 1.0f);
		break;
	default:
		break;
	}
}

struct sl_gop;

typedef struct sl_gnode {
	const struct sl_gop *op;
	char *name;             /* owned; for messages ("node 'conv1' (Conv)") */
	int nin, nout;
	int in[SL_G_MAX_IO];    /* tensor indices; -1: an optional input left out */
	int out[SL_G_MAX_IO];
	void *attr;             /* op-private, from op->init; freed with free() */
	size_t scratch_bytes;   /* workspace op->forward needs, set by op->infer */
	int folded;             /* ran at plan time; not in the run order */
	sl_g_act act;           /* fused activation (fold.c); zero: none */
} sl_gnode;

/* Attributes as the loader hands them to op->init; valid only during init
 * (copy what you keep). A TENSOR attribute (Constant's value) arrives as
 * the index of a constant tensor the loader already made. */
enum sl_gattr_type {
	SL_GA_FLOAT = 1, SL_GA_INT, SL_GA_STRING, SL_GA_TENSOR,
	SL_GA_FLOATS = 6, SL_GA_INTS,
};

typedef struct sl_gattr {
	const char *name;
	int type;               /* enum sl_gattr_type */
	int64_t i;
	float f;
	const char *s;          /* STRING: bytes, not NUL-terminated */
	size_t slen;
	const int64_t *ints;    /* INTS */
	const float *floats;    /* FLOATS */
	size_t n;               /* elements of ints or floats */
	int tensor;             /* TENSOR: constant tensor index */
} sl_gattr;

typedef struct sl_gattrs {
	const sl_gattr *a;
	int n;
} sl_gattrs;

/* One row of the op table (ops.c). Adding an op is one file and one row.
 *
 * init:    check the attributes and the input/output counts (already
 *          checked against the min/max below), store what forward needs in
 *          n->attr (malloc'd). An unknown attribute value is SL_EUNSUPPORTED
 *          with a message naming it. May be NULL (no attributes).
 * infer:   from the inputs' dtypes and dims (and, for int64 inputs that
 *          shape the output, their values: sl_g_i64), set every output's
 *          dtype, rank and dims, and n->scratch_bytes. Runs at plan time and
 *          before every forward; must not allocate. SL_EMISMATCH for inputs
 *          that do not fit (message names the shapes), SL_EUNSUPPORTED for a
 *          dtype the op does not handle, SL_EINVAL when a value needed is
 *          not known at plan time (sl_g_i64 returned NULL).
 * forward: compute the outputs (their data is sized by infer's dims) from
 *          the inputs. scratch has n->scratch_bytes bytes, 64-byte aligned.
 *          Cannot fail: everything was checked by infer.
 * fold:    optional; a rewrite at plan time (BatchNormalization into the
 *          Conv before it). Returns 1 if it changed the graph. */
typedef struct sl_gop {
	const char *name;       /* ONNX op_type */
	int min_in, max_in, min_out, max_out;
	int (*init)(sl_graph *g, sl_gnode *n, const sl_gattrs *a, sl_errmsg *why);
	int (*infer)(sl_graph *g, sl_gnode *n, sl_errmsg *why);
	void (*forward)(sl_graph *g, sl_gnode *n, void *scratch);
} sl_gop;

/* The op table: NULL when op_type is not supported. Each op family file
 * exports one array ending with a row whose name is NULL; ops.c lists the
 * families. */
extern const sl_gop sl_g_ops_conv[], sl_g_ops_pool[], sl_g_ops_eltwise[],
    sl_g_ops_norm[], sl_g_ops_shape[], sl_g_ops_matmul[];

/* NULL when op_type is not supported. */
const sl_gop *sl_g_op_find(const char *op_type);
/* Every supported op type, NULL-terminated, in table order (for --help,
 * the README and the conformance summary). */
const char *const *sl_g_op_names(void);

/* The graph itself. Fields are for graph.c, onnx.c, mlp.c and op files. */
struct sl_graph {
	sl_gtensor *t;
	int nt, cap_t;
	sl_gnode *n;
	int nn, cap_n;
	int *order;             /* run order: node indices, folded ones left out */
	int norder;
	int inputs[SL_G_MAX_IO], ninputs;    /* graph inputs (not initializers) */
	int outputs[SL_G_MAX_IO], noutputs;
	int64_t opset;          /* default-domain opset the model imports */
	int max_batch;
	void *arena;            /* 64-byte aligned, float tensors of the run */
	size_t arena_bytes;
	void *scratch;          /* largest n->scratch_bytes, 64-byte aligned */
	size_t scratch_bytes;
	volatile uint64_t progress; /* +1 after every node run (heartbeats) */
	size_t const_bytes;     /* initializers and folded constants */
	/* Set by the public loaders (model.c) for a classifier graph. */
	int format;             /* enum sl_graph_format */
	int classes;
	size_t input_dim;       /* values per row */
	int in_rank;            /* the model's input shape, batch as -1 */
	int64_t in_dims[SL_G_MAX_RANK];
};

/* BatchNormalization's n->attr, read by the fold into Conv (fold.c). */
typedef struct sl_g_bn_attr {
	float epsilon;
} sl_g_bn_attr;

/* --- helpers for op files ------------------------------------------------ */

static inline sl_gtensor *
sl_g_in(sl_graph *g, const sl_gnode *n, int i)
{
	return i < n->nin && n->in[i] >= 0 ? &g->t[n->in[i]] : NULL;
}

static inline sl_gtensor *
sl_g_out(sl_graph *g, const sl_gnode *n, int i)
{
	return &g->t[n->out[i]];
}

/* Elements of t's current shape (1 for a scalar). */
size_t sl_g_numel(const sl_gtensor *t);
/* Bytes of one element of dtype (4, 8, 1), 0 for an unknown dtype. */
size_t sl_g_dtype_size(int dtype);
/* The values of an int64 tensor when they are known (a constant, or an
 * int64 tensor computed at plan time or in this run), else NULL. */
const int64_t *sl_g_i64(const sl_graph *g, const sl_gtensor *t);
/* Set t's shape; SL_ELIMIT for a rank over SL_G_MAX_RANK or an element
 * count over SL_G_MAX_ELEMS, SL_EMISMATCH for a negative dim. */
int sl_g_set_shape(sl_gtensor *t, int dtype, int rank, const int64_t *dims,
    sl_errmsg *why);
/* "node 'name' (OpType)" for messages, into a static-free caller buffer. */
const char *sl_g_node_label(const sl_gnode *n, char *buf, size_t len);
/* "[B, 1, 28, 28]" */
const char *sl_g_shape_str(const sl_gtensor *t, char *buf, size_t len);

/* Attribute lookup: 1 found (value written), 0 absent, SL_EFORMAT present
 * with another type (message names the attribute). */
int sl_g_attr_int(const sl_gattrs *a, const char *name, int64_t *v,
    sl_errmsg *why);
int sl_g_attr_float(const sl_gattrs *a, const char *name, float *v,
    sl_errmsg *why);
int sl_g_attr_ints(const sl_gattrs *a, const char *name, const int64_t **v,
    size_t *n, sl_errmsg *why);
int sl_g_attr_floats(const sl_gattrs *a, const char *name, const float **v,
    size_t *n, sl_errmsg *why);
int sl_g_attr_string(const sl_gattrs *a, const char *name, const char **s,
    size_t *len, sl_errmsg *why);
int sl_g_attr_tensor(const sl_gattrs *a, const char *name, int *tensor,
    sl_errmsg *why);

/* Limits of what a file may ask for; checked before allocation. */
#define SL_G_MAX_ELEMS ((int64_t)1 << 31)        /* elements in one tensor */
#define SL_G_MAX_CONST_BYTES ((size_t)4 << 30)    /* all initializers */
#define SL_G_MAX_ARENA_BYTES ((size_t)16 << 30)   /* planned activations */
#define SL_G_MAX_NODES 100000
#define SL_G_MAX_TENSORS 200000

/* --- threads (parallel.c) ------------------------------------------------ */

#define SL_G_MAX_THREADS 16

typedef void (*sl_g_part_fn)(void *arg, int t, int nt);

/* fn(arg, t, nt) for every part t < nt (at most SL_G_MAX_THREADS), on nt
 * threads (part 0 on the caller's), joined before returning; nt <= 1
 * calls fn(arg, 0, 1) here. While the parts run, OpenBLAS is set to one
 * thread so each part's GEMMs run on its own thread (parallel.c says why).
 * Caveats: that setting is process-wide; BLAS calls made meanwhile by
 * other threads of the process run on one thread. */
void sl_g_parallel(int nt, sl_g_part_fn fn, void *arg);

/* --- building (graph.c) -------------------------------------------------- */

int sl_g_new(sl_graph **out);
void sl_g_free(sl_graph **g);
/* Add a tensor named name (copied); returns its index via *idx. SL_EFORMAT
 * when the name is taken. */
int sl_g_tensor_add(sl_graph *g, const char *name, int *idx, sl_errmsg *why);
/* Find a tensor by name: its index or -1. */
int sl_g_tensor_find(const sl_graph *g, const char *name);
/* Add a node of op with the given input and output tensor indices; runs
 * op->init. On failure the node is not added. */
int sl_g_node_add(sl_graph *g, const sl_gop *op, const char *name,
    const int *in, int nin, const int *out, int nout, const sl_gattrs *a,
    sl_errmsg *why);

/* Order, fold, infer at max_batch and plan memory (see the top). The graph
 * inputs must have their dtype and dims set, dims[0] = max_batch where the
 * batch is dynamic; non-float inputs must have data (bound values). */
int sl_g_plan(sl_graph *g, int max_batch, sl_errmsg *why);
/* One run: the caller has pointed every float input's data at its values
 * and set its dims (batch <= max_batch). Outputs are in their tensors
 * until the next run. SL_ELIMIT when a tensor outgrows its plan. */
int sl_g_run(sl_graph *g, sl_errmsg *why);

/* Check that g is a classifier (one float input (batch, ...) with the
 * rest of its dims fixed, one float output (batch, classes)), check the
 * row shape of opts against it, bind the input at opts->max_batch and
 * plan (model.c; shared by the ONNX and MLP loaders). */
int sl_g_plan_classifier(sl_graph *g, const sl_graph_opts *o, sl_errmsg *why);

#endif

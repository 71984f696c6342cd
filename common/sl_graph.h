/* sl_graph.h - a teacher model as programs see it: an opaque handle.
 *
 * One graph engine runs every teacher: an ONNX file (what torch.onnx.export
 * writes: CNNs, transformers) or a safetensors MLP both become a graph of
 * typed tensors and nodes, checked, folded and planned once at load (an
 * arena sized for the largest batch), then run batch after batch without
 * allocating. The supported ops are listed by sl_graph_op_names() and in
 * the README.
 *
 * A classifier graph has one float input (batch, row shape...) and one
 * float output (batch, classes). Rows are fed as the dataset stores them,
 * flattened: the row shape (say [28, 28]) must hold the same values as the
 * model's input shape after the batch ([1, 28, 28]), which is checked at
 * load; a mismatch names both shapes.
 *
 * Thread-safety: a graph's run state lives in the handle; one thread runs
 * it at a time. sl_graph_progress may be read from any thread.
 */
#ifndef SL_GRAPH_H
#define SL_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "sl_err.h"
#include "sl_model.h"

typedef struct sl_graph sl_graph;

enum sl_graph_format { SL_GRAPH_SAFETENSORS = 1, SL_GRAPH_ONNX };

typedef struct sl_graph_opts {
	int max_batch;          /* largest batch a run may have (>= 1) */
	int row_rank;           /* the dataset's row shape, without the */
	const uint64_t *row_dims; /* leading sample index; 0: not checked */
} sl_graph_opts;

/* Read PATH, detect its format by content (safetensors: a little-endian
 * u64 header length and '{'; ONNX: a protobuf ModelProto), check it and
 * plan it for opts. *info gets the preprocessing a safetensors file names
 * (ONNX files name none). *out (free with sl_graph_free) is written only on
 * success. Returns 0, an errno value, SL_EFORMAT (not a model, malformed,
 * cyclic), SL_EUNSUPPORTED (an op, dtype, attribute or opset we do not run:
 * named in why), SL_EMISMATCH (the row shape does not fit the input),
 * SL_ELIMIT (a documented limit) or SL_ENOMEM. */
int sl_graph_load(const char *path, const sl_graph_opts *opts,
    sl_graph **out, sl_model_info *info, sl_errmsg *why);

/* The same for an ONNX image buf[0..len) (not kept). */
int sl_graph_load_onnx(const void *buf, size_t len, const sl_graph_opts *opts,
    sl_graph **out, sl_errmsg *why);

/* The same for an MLP (copied: m may be freed afterwards). */
int sl_graph_from_mlp(const sl_mlp *m, const sl_graph_opts *opts,
    sl_graph **out, sl_errmsg *why);

void sl_graph_free(sl_graph **g);

enum sl_graph_format sl_graph_format(const sl_graph *g);
/* Values per row (product of the input shape after the batch). */
size_t sl_graph_input_dim(const sl_graph *g);
/* The input shape with the batch as dims[0] = -1; returns the rank. */
int sl_graph_input_shape(const sl_graph *g, int64_t dims[8]);
/* Classes: the output's last dimension. */
int sl_graph_classes(const sl_graph *g);
int sl_graph_max_batch(const sl_graph *g);
/* Nodes in the run order, and bytes of parameters and of the arena. */
int sl_graph_nodes(const sl_graph *g);
size_t sl_graph_param_bytes(const sl_graph *g);
size_t sl_graph_arena_bytes(const sl_graph *g);

/* Logits of B rows (1 <= B <= max batch): *logits (B, classes) stays
 * valid until the next call on g. Returns 0, or SL_ELIMIT when the model
 * grows a tensor past its plan at this batch (named in why). */
int sl_graph_forward(sl_graph *g, const float *x /* (B, input_dim) */, int B,
    const float **logits, sl_errmsg *why);

/* Nodes run so far over the graph's life; grows while a forward runs, so
 * another thread can tell a long batch from a hung one. */
uint64_t sl_graph_progress(const sl_graph *g);

/* Supported ONNX op types, NULL-terminated. */
const char *const *sl_graph_op_names(void);

#endif

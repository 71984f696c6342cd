/* onnx.h - ONNX ModelProto (protobuf, parsed by protobuf-c from the code
 * protoc-c generates out of Debian's onnx.proto) into a graph.
 *
 * What is checked before anything is planned: the default-domain opset is
 * in [SL_ONNX_MIN_OPSET, SL_ONNX_MAX_OPSET]; every node is in the default
 * domain and its op is in the op table (else SL_EUNSUPPORTED naming the
 * node and the op); every tensor's dtype is float32, int64 or bool (int32
 * and other integer initializers are widened to int64); element counts fit
 * SL_G_MAX_ELEMS and the data present matches them; all initializers
 * together fit SL_G_MAX_CONST_BYTES; tensors stored as external data are
 * refused by name. Cycles and missing inputs are found by sl_g_plan. */
#ifndef SL_ONNX_H
#define SL_ONNX_H

#include "graph.h"

#define SL_ONNX_MIN_OPSET 7
#define SL_ONNX_MAX_OPSET 17
#define SL_ONNX_MAX_FILE_BYTES ((size_t)2 << 30) /* protobuf's own limit */

/* Parse buf[0..len) into a new, unplanned graph: graph inputs (those that
 * are not initializers) carry the dtype and dims their ValueInfo declares,
 * -1 for a symbolic or missing dim. *out (sl_g_free) on success only. */
int sl_onnx_parse(const void *buf, size_t len, sl_graph **out, sl_errmsg *why);

/* Decode one serialized TensorProto (the input_N.pb / output_N.pb files
 * of ONNX's backend tests): dtype, shape and a malloc'd copy of its values
 * (free()). The same conversions and checks as initializers. */
int sl_onnx_tensor_decode(const void *buf, size_t len, int *dtype, int *rank,
    int64_t dims[SL_G_MAX_RANK], void **data, sl_errmsg *why);

#endif

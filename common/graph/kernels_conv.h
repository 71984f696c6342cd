/* kernels_conv.h - convolution and pooling kernels on NCHW float32 tensors,
 * and the window attributes (kernel_shape, strides, dilations, pads,
 * auto_pad, ceil_mode) that Conv and the pools share.
 *
 * The kernels write into caller buffers, never allocate and cannot fail:
 * the geometry was checked when it was built (the ops' infer). A 1-D
 * tensor (B, C, L) is the 2-D case with H = 1. Every kernel is
 * thread-compatible (no shared state). sl_op_conv2d_forward runs its own
 * loops and one-thread cblas_sgemm calls on up to g->threads short-lived
 * threads it joins before returning.
 *
 * Caveats: while a call runs on more than one thread it sets OpenBLAS to
 * one thread (openblas_set_num_threads, process-wide) and restores the
 * previous count before returning; BLAS calls made meanwhile on other
 * threads of the process run on one thread.
 */
#ifndef SL_KERNELS_CONV_H
#define SL_KERNELS_CONV_H

#include <stddef.h>
#include <stdint.h>

#include "graph.h"

/* Geometry of a 2-D convolution. Every field is > 0 except the pads (>= 0)
 * and B (a batch may be empty). Bottom and right padding are implied by
 * OH and OW: the kernel never reads past H + bottom or W + right. */
typedef struct sl_conv2d_geom {
	int B, C, H, W;         /* input */
	int OC, G;              /* output channels, groups: C % G == OC % G == 0 */
	int KH, KW;             /* kernel */
	int SH, SW;             /* strides */
	int DH, DW;             /* dilations */
	int PT, PL;             /* padding before the first row and column */
	int OH, OW;             /* output */
	int threads;            /* threads for the kernel (<= 1: the caller's
	                         * only); the workspace size depends on it.
	                         * The ops take OpenBLAS's. */
	sl_g_act act;           /* applied to every output after the bias;
	                         * zero: none (a Relu fused by fold.c) */
} sl_conv2d_geom;

#define SL_CONV_MAX_THREADS 16

/* Bytes of workspace sl_op_conv2d_forward needs for g: for im2col, per
 * thread, the columns (and, on planes too small to write out directly,
 * the GEMM result) of one chunk of output rows, at most about
 * SL_CONV_CHUNK_BYTES (more only when one output row alone is larger):
 * small enough to stay in one core's L2; for depthwise one zero-padded
 * input plane per thread; 0 for the 1x1 path. */
#define SL_CONV_CHUNK_BYTES ((size_t)256 << 10)
size_t sl_op_conv2d_scratch_bytes(const sl_conv2d_geom *g);

/* out = conv(x, w) + b, ONNX Conv semantics (cross-correlation, zero
 * padding, groups); op_conv.c's head comment describes the paths (direct
 * depthwise, 1x1 GEMM per image, im2col over chunks of output rows that
 * may span images). scratch: sl_op_conv2d_scratch_bytes(g) bytes,
 * float-aligned (unused when that is 0). out must not overlap x, w, b or
 * scratch. */
void sl_op_conv2d_forward(float *out,         /* (B, OC, OH, OW) */
    const float *x,                           /* (B, C, H, W) */
    const float *w,                           /* (OC, C/G, KH, KW) */
    const float *b,                           /* (OC) or NULL */
    const sl_conv2d_geom *g,
    float *scratch);                          /* see above */

/* Geometry of a 2-D pooling window over N = B*C independent planes, or of
 * a 3-D one over N volumes of D planes. For 2-D: D, KD, SD, DD, OD = 1 and
 * PF = PK = 0. */
typedef struct sl_pool2d_geom {
	size_t N;               /* planes (volumes): batch times channels */
	int D, KD, SD, DD;      /* depth: size, kernel, stride, dilation */
	int H, W, KH, KW, SH, SW, DH, DW;
	int PF, PK;             /* depth pads, front and back */
	int PT, PL, PB, PR;     /* pads; the end ones matter for
	                         * count_include_pad */
	int OD, OH, OW;
} sl_pool2d_geom;

/* out = max over each window, taking only positions inside x (padding
 * never wins; a NaN does). A window wholly in the padding gives -inf. */
void sl_op_maxpool2d_forward(float *out,      /* (N, OD, OH, OW) */
    const float *x,                           /* (N, D, H, W) */
    const sl_pool2d_geom *g);

/* out = mean over each window. count_include_pad 0: divide by the positions
 * inside x; 1: by those inside x and its pads (ONNX and PyTorch: a window
 * that ceil_mode lets run past the end pad does not count the overhang). */
void sl_op_avgpool2d_forward(float *out,      /* (N, OD, OH, OW) */
    const float *x,                           /* (N, D, H, W) */
    const sl_pool2d_geom *g,
    int count_include_pad);

/* Mean and max over each plane of S elements (S > 0). */
void sl_op_globalavgpool_forward(float *out,  /* (N) */
    const float *x,                           /* (N, S) */
    size_t N, size_t S);
void sl_op_globalmaxpool_forward(float *out,  /* (N) */
    const float *x,                           /* (N, S) */
    size_t N, size_t S);

/* --- window attributes (op_conv.c) ------------------------------------- */

enum { SL_OP_PAD_NOTSET, SL_OP_PAD_SAME_UPPER, SL_OP_PAD_SAME_LOWER,
    SL_OP_PAD_VALID };

#define SL_OP_MAX_SPATIAL (SL_G_MAX_RANK - 2)

typedef struct sl_op_window {
	int auto_pad;                         /* SL_OP_PAD_* */
	int ceil_mode;
	int nk, ns, nd, np;                   /* values given; 0: absent */
	int64_t kernel[SL_OP_MAX_SPATIAL];
	int64_t strides[SL_OP_MAX_SPATIAL];
	int64_t dilations[SL_OP_MAX_SPATIAL];
	int64_t pads[2 * SL_OP_MAX_SPATIAL];  /* begins, then ends (ONNX order) */
} sl_op_window;

/* Parse kernel_shape, strides, dilations, pads, auto_pad and, with
 * has_ceil, ceil_mode from a; every value in range (kernel, strides,
 * dilations >= 1, pads >= 0, none over 2^24). SL_EFORMAT or SL_EUNSUPPORTED
 * with the attribute named. */
int sl_op_window_init(sl_op_window *w, const sl_gattrs *a, int has_ceil,
    sl_errmsg *why);

/* For nsp spatial axes of sizes in[] and kernel k[] (from W or
 * kernel_shape): the pads before and after and the output sizes, as ONNX
 * defines them for auto_pad and ceil_mode. SL_EMISMATCH when an attribute
 * has the wrong count for nsp or the window does not fit the input. */
int sl_op_window_resolve(const sl_op_window *w, int nsp, const int64_t *in,
    const int64_t *k, int64_t *pad_begin, int64_t *pad_end, int64_t *out,
    sl_errmsg *why);

#endif

/* sl_layers.h - trainable layers for convolutional students: a _forward /
 * _backward pair per layer, llm.c style, on the graph engine's kernels.
 *
 * Forward passes call the engine's kernels (kernels_conv.h, op_norm.c's
 * BatchNormalization), so a student computes what the same network run as
 * an ONNX teacher computes. Backward passes are here; every one writes
 * into caller buffers, allocates nothing and cannot fail (the geometry was
 * checked when the network was built). Tensors are NCHW float32; B is the
 * batch, S = H * W a plane. Parameter gradients accumulate (+=); input
 * gradients are written (=). Thread-compatible: no shared state.
 *
 * Semantics are PyTorch's: Conv2d is a cross-correlation with zero
 * padding and groups; BatchNorm2d normalises with the biased batch
 * variance and moves running_var towards the unbiased one,
 * running = (1 - momentum) * running + momentum * batch; MaxPool2d's
 * gradient goes to the first maximum of a window in row-major order (a
 * NaN wins, as in PyTorch); AvgPool2d counts the padding
 * (count_include_pad=True, ceil_mode=False).
 */
#ifndef SL_LAYERS_H
#define SL_LAYERS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels_conv.h"

/* --- Conv2d ---------------------------------------------------------------- */

/* Floats of the column buffer sl_nn_conv2d_backward needs for g: the
 * columns (C/G * KH * KW, nb * OH * OW) and output gradients (OC/G,
 * nb * OH * OW) of a chunk of nb images (as many as fit about 96 Ki
 * floats of columns, 1 to g->B), or 0 on the direct depthwise path.
 * Never smaller for a larger g->B. */
size_t sl_nn_conv2d_col_floats(const sl_conv2d_geom *g);

/* out = conv(x, w) + b: sl_op_conv2d_forward (g->act must be none). */
void sl_nn_conv2d_forward(float *out,     /* (B, OC, OH, OW) */
    const float *x,                       /* (B, C, H, W) */
    const float *w,                       /* (OC, C/G, KH, KW) */
    const float *b,                       /* (OC) or NULL */
    const sl_conv2d_geom *g,
    float *scratch);                      /* sl_op_conv2d_scratch_bytes */

/* dw += dL/dw, db += dL/db (db may be NULL), dx = dL/dx when dx is not
 * NULL. col: sl_nn_conv2d_col_floats(g) floats. Unfolds a chunk of
 * images at a time (im2col, images side by side) and runs two
 * cblas_sgemm per chunk and group, for dW and for the columns of dx,
 * folded back by col2im; the chunks depend on g alone, so the sums run
 * in the same order every call. Depthwise (G == C == OC) runs direct
 * loops instead. */
void sl_nn_conv2d_backward(float *dx,     /* (B, C, H, W) or NULL */
    float *dw,                            /* (OC, C/G, KH, KW) += */
    float *db,                            /* (OC) += or NULL */
    const float *dout,                    /* (B, OC, OH, OW) */
    const float *x,                       /* (B, C, H, W) */
    const float *w,                       /* (OC, C/G, KH, KW) */
    const sl_conv2d_geom *g,
    float *col);

/* --- BatchNorm2d ----------------------------------------------------------- */

/* Training: normalise with the batch's statistics over (B, S) per channel
 * (a plane in float, planes summed in double), save mean and 1/sqrt(var + eps) for backward, and
 * update the running statistics in place. n = B * S values per channel;
 * with n == 1 the running variance moves towards 0 / 0 in PyTorch (which
 * refuses the batch); here towards the biased variance 0. */
void sl_nn_bn2d_forward_train(float *y,   /* (B, C, S) */
    float *mean, float *invstd,           /* (C) each, written */
    float *run_mean, float *run_var,      /* (C) each, updated */
    const float *x,                       /* (B, C, S) */
    const float *gamma, const float *beta,/* (C) each */
    int B, int C, int S, float eps, float momentum);

/* The same on channels [c0, c1) only (mean, invstd, run_mean, run_var
 * and y written for those): each channel's values do not depend on the
 * split, so parts on several threads give what one call gives, bit for
 * bit. */
void sl_nn_bn2d_forward_train_part(float *y, float *mean, float *invstd,
    float *run_mean, float *run_var, const float *x, const float *gamma,
    const float *beta, int B, int C, int S, float eps, float momentum,
    int c0, int c1);

/* Evaluation: the engine's BatchNormalization kernel on the running
 * statistics. */
void sl_nn_bn2d_forward_eval(float *y,    /* (B, C, S) */
    const float *x,                       /* (B, C, S) */
    const float *gamma, const float *beta,
    const float *run_mean, const float *run_var, /* (C) each */
    int B, int C, int S, float eps);

/* Backward of sl_nn_bn2d_forward_train with its saved mean and invstd. */
void sl_nn_bn2d_backward(float *dx,       /* (B, C, S) or NULL */
    float *dgamma, float *dbeta,          /* (C) each, += */
    const float *dout,                    /* (B, C, S) */
    const float *x,                       /* (B, C, S) */
    const float *gamma,                   /* (C) */
    const float *mean, const float *invstd, /* (C) each, from forward */
    int B, int C, int S);

/* The same on channels [c0, c1) only (dgamma, dbeta and dx for those),
 * with the same split-independence as sl_nn_bn2d_forward_train_part. */
void sl_nn_bn2d_backward_part(float *dx, float *dgamma, float *dbeta,
    const float *dout, const float *x, const float *gamma,
    const float *mean, const float *invstd, int B, int C, int S,
    int c0, int c1);

/* --- pools ------------------------------------------------------------------ */

/* g: a 2-D geometry (D = KD = SD = DD = OD = 1, PF = PK = 0) with PB, PR
 * equal to PT, PL and no window past the end pad (ceil_mode off). */
void sl_nn_maxpool2d_forward(float *out,  /* (N, OH, OW) */
    const float *x, const sl_pool2d_geom *g); /* (N, H, W) */
void sl_nn_maxpool2d_backward(float *dx,  /* (N, H, W) */
    const float *dout,                    /* (N, OH, OW) */
    const float *x, const sl_pool2d_geom *g);

void sl_nn_avgpool2d_forward(float *out,  /* (N, OH, OW) */
    const float *x, const sl_pool2d_geom *g);
void sl_nn_avgpool2d_backward(float *dx,  /* (N, H, W) */
    const float *dout, const sl_pool2d_geom *g);

/* Global average pool (nn.AdaptiveAvgPool2d(1)): out[p] = mean of plane p. */
void sl_nn_gap_forward(float *out,        /* (N) */
    const float *x, size_t N, size_t S);  /* (N, S) */
void sl_nn_gap_backward(float *dx,        /* (N, S) */
    const float *dout, size_t N, size_t S); /* (N) */

/* --- residual add ------------------------------------------------------------ */

/* out = a + b; backward is the identity to both inputs. */
void sl_nn_add_forward(float *out, const float *a, const float *b, size_t n);

#endif

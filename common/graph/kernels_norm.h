/* kernels_norm.h - normalization kernels on caller buffers, shared by the
 * graph engine's ops and the trainable layers (common/nn/). They never
 * allocate and cannot fail; thread-compatible. */
#ifndef SL_KERNELS_NORM_H
#define SL_KERNELS_NORM_H

#include <stdint.h>

/* y = (x - mean) / sqrt(var + eps) * scale + bias, per channel; the
 * factor scale / sqrt(var + eps) is computed in double, once a channel.
 * y may equal x. */
void sl_op_batchnorm_forward(float *y,    /* (N, C, S) */
    const float *x,                       /* (N, C, S) */
    const float *scale, const float *bias,
    const float *mean, const float *var,  /* (C) each */
    int64_t N, int64_t C, int64_t S, float eps);

#endif

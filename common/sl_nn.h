/* sl_nn.h - dense layers on cblas and the multilayer perceptron built from them.
 *
 * Layout follows llm.c: every layer is a _forward/_backward pair writing into
 * caller buffers; shapes are in the comments, B is the batch size. Matrices
 * are row-major; a weight W is (OC, C), as PyTorch's nn.Linear stores it, so
 * y = x W^T + b.
 *
 * An sl_mlp owns one parameter block: for each layer l its weight
 * (sizes[l+1], sizes[l]) followed by its bias (sizes[l+1]). Optimizers and
 * checkpoints treat the block as one flat vector.
 *
 * Thread-safety: an sl_mlp may be read by many threads; forward/backward
 * write only into the workspace they are given.
 */
#ifndef SL_NN_H
#define SL_NN_H

#include <stddef.h>
#include <stdint.h>

#include "sl_rng.h"

#define SL_MLP_MAX_LAYERS 16      /* dense layers */
#define SL_MLP_MAX_WIDTH (1 << 20) /* units in any layer */
#define SL_MLP_MAX_PARAMS ((size_t)1 << 30)

/* --- layers ------------------------------------------------------------- */

/* out = inp W^T + b; b NULL: no bias (nn.Linear(bias=False)). */
void sl_nn_dense_forward(float *out,       /* (B, OC) */
    const float *inp,                       /* (B, C) */
    const float *W,                         /* (OC, C) */
    const float *b,                         /* (OC) */
    int B, int C, int OC);

/* Accumulates into dW and db (db may be NULL: no bias); writes dinp when
 * it is not NULL. */
void sl_nn_dense_backward(float *dinp,    /* (B, C) or NULL */
    float *dW,                              /* (OC, C) += */
    float *db,                              /* (OC) += */
    const float *dout,                      /* (B, OC) */
    const float *inp,                       /* (B, C) */
    const float *W,                         /* (OC, C) */
    int B, int C, int OC);

void sl_nn_relu_forward(float *out, const float *inp, size_t n);
/* dinp = dout where inp > 0 else 0; in place (dinp == dout) is allowed. */
void sl_nn_relu_backward(float *dinp, const float *dout, const float *out,
    size_t n);

/* Inverted dropout: keeps each value with probability 1 - p and scales it by
 * 1 / (1 - p); mask records the scale (0 or 1/(1-p)) for backward. */
void sl_nn_dropout_forward(float *x, float *mask, size_t n, float p,
    sl_rng *rng);
void sl_nn_dropout_backward(float *dx, const float *mask, size_t n);

/* --- the MLP -------------------------------------------------------------- */

typedef struct sl_mlp {
	int nlayers;                      /* dense layers */
	int sizes[SL_MLP_MAX_LAYERS + 1]; /* sizes[0] inputs .. sizes[nlayers] classes */
	size_t nparams;
	float *params;                    /* one block, see above */
	float *W[SL_MLP_MAX_LAYERS];      /* into params */
	float *b[SL_MLP_MAX_LAYERS];      /* into params */
} sl_mlp;

/* Allocate an MLP with layer sizes sizes[0..nlayers], parameters zeroed.
 * Returns 0, SL_EINVAL for sizes out of the limits above, or SL_ENOMEM. */
int sl_mlp_new(const int *sizes, int nlayers, sl_mlp **out);
void sl_mlp_free(sl_mlp **m);

/* PyTorch's default nn.Linear init: W, b ~ U(-1/sqrt(I), 1/sqrt(I)). */
void sl_mlp_init_params(sl_mlp *m, sl_rng *rng);

/* Parse "784-128-10" into sizes; returns nlayers via *nlayers. */
int sl_mlp_parse_arch(const char *s, int sizes[SL_MLP_MAX_LAYERS + 1],
    int *nlayers);
/* Write "784-128-10" into buf. */
void sl_mlp_format_arch(const sl_mlp *m, char *buf, size_t len);

/* Activations and gradients for batches of up to max_batch rows, sized once
 * so that training never allocates per batch. */
typedef struct sl_mlp_ws sl_mlp_ws;

int sl_mlp_ws_new(const sl_mlp *m, int max_batch, sl_mlp_ws **out);
void sl_mlp_ws_free(sl_mlp_ws **ws);

/* Forward B rows. dropout > 0 with rng != NULL applies dropout after each
 * hidden ReLU (training); otherwise evaluation. Returns the logits (B, C),
 * valid until the next call on ws. */
const float *sl_mlp_forward(const sl_mlp *m, sl_mlp_ws *ws,
    const float *x /* (B, sizes[0]) */, int B, float dropout, sl_rng *rng);

/* Backward of the last forward on ws: dlogits (B, C) in, parameter
 * gradients written (not accumulated) into grads (nparams), same layout as
 * m->params. */
void sl_mlp_backward(const sl_mlp *m, sl_mlp_ws *ws,
    const float *dlogits /* (B, sizes[nlayers]) */, int B, float *grads);

#endif

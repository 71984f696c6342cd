/* sl_optim.h - SGD with momentum and Adam over one flat parameter vector.
 *
 * Weight decay is L2 added to the gradient (PyTorch's weight_decay for both
 * optimizers). State (moments and step count) is plain arrays so a checkpoint
 * can save and restore it exactly. Not thread-safe.
 */
#ifndef SL_OPTIM_H
#define SL_OPTIM_H

#include <stddef.h>
#include <stdint.h>

enum sl_optim_kind { SL_OPTIM_SGD = 1, SL_OPTIM_ADAM = 2 };

typedef struct sl_optim {
	enum sl_optim_kind kind;
	float lr;
	float momentum;     /* SGD */
	float beta1, beta2; /* Adam */
	float eps;          /* Adam */
	float weight_decay;
	uint64_t t;         /* steps taken */
	size_t n;           /* parameters */
	float *m;           /* (n) SGD velocity or Adam first moment */
	float *v;           /* (n) Adam second moment; NULL for SGD */
} sl_optim;

/* Parse "sgd" | "adam". Returns 0 or SL_EINVAL. */
int sl_optim_parse_kind(const char *s, enum sl_optim_kind *out);

/* Set defaults (momentum 0.9, betas 0.9/0.999, eps 1e-8, no decay) and
 * allocate zeroed state for n parameters. Returns 0 or SL_ENOMEM. */
int sl_optim_init(sl_optim *o, enum sl_optim_kind kind, size_t n, float lr);
void sl_optim_fini(sl_optim *o);

/* One update: params -= step(grads). Does not allocate. */
void sl_optim_step(sl_optim *o, float *params /* (n) */,
    const float *grads /* (n) */);

#endif

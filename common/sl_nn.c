#include "sl_nn.h"
#include "sl_err.h"

#include <cblas.h>
#if defined(__SSE__)
#include <xmmintrin.h>
#endif
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --- layers ------------------------------------------------------------- */

void
sl_nn_dense_forward(float *out, const float *inp, const float *W,
    const float *b, int B, int C, int OC)
{
	/* Broadcast the bias into out, then out += inp W^T in one sgemm. */
	for (int r = 0; b != NULL && r < B; r++)
		memcpy(out + (size_t)r * OC, b, (size_t)OC * sizeof *b);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, OC, C,
	    1.0f, inp, C, W, C, b != NULL ? 1.0f : 0.0f, out, OC);
}

void
sl_nn_dense_backward(float *dinp, float *dW, float *db, const float *dout,
    const float *inp, const float *W, int B, int C, int OC)
{
	/* dW (OC, C) += dout^T (OC, B) inp (B, C) */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, B,
	    1.0f, dout, OC, inp, C, 1.0f, dW, C);
	for (int r = 0; db != NULL && r < B; r++) {
		const float *d = dout + (size_t)r * OC;

		for (int o = 0; o < OC; o++)
			db[o] += d[o];
	}
	/* dinp (B, C) = dout (B, OC) W (OC, C) */
	if (dinp != NULL)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, C, OC,
		    1.0f, dout, OC, W, C, 0.0f, dinp, C);
}

/* The scalar forms below compile to a data-dependent branch; on
 * activations of random sign it mispredicts half the time, which cost 30%
 * of the 784-1200-1200-10 forward pass (make bench). SSE is part of the
 * x86-64 baseline, so this needs no -march flag; other targets take the
 * scalar loop. maxps(x, 0) is exactly x > 0 ? x : 0, NaN giving 0. */
void
sl_nn_relu_forward(float *out, const float *inp, size_t n)
{
	size_t i = 0;

#if defined(__SSE__)
	const __m128 zero = _mm_setzero_ps();

	for (; i + 4 <= n; i += 4)
		_mm_storeu_ps(out + i, _mm_max_ps(_mm_loadu_ps(inp + i), zero));
#endif
	for (; i < n; i++)
		out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void
sl_nn_relu_backward(float *dinp, const float *dout, const float *out, size_t n)
{
	size_t i = 0;

#if defined(__SSE__)
	const __m128 zero = _mm_setzero_ps();

	for (; i + 4 <= n; i += 4) {
		const __m128 on = _mm_cmpgt_ps(_mm_loadu_ps(out + i), zero);

		_mm_storeu_ps(dinp + i, _mm_and_ps(on, _mm_loadu_ps(dout + i)));
	}
#endif
	for (; i < n; i++)
		dinp[i] = out[i] > 0.0f ? dout[i] : 0.0f;
}

void
sl_nn_dropout_forward(float *x, float *mask, size_t n, float p, sl_rng *rng)
{
	const float keep = 1.0f / (1.0f - p);

	for (size_t i = 0; i < n; i++) {
		mask[i] = sl_rng_float(rng) < p ? 0.0f : keep;
		x[i] *= mask[i];
	}
}

void
sl_nn_dropout_backward(float *dx, const float *mask, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dx[i] *= mask[i];
}

/* --- the MLP -------------------------------------------------------------- */

int
sl_mlp_new(const int *sizes, int nlayers, sl_mlp **out)
{
	sl_mlp *m;
	size_t n = 0;

	if (nlayers < 1 || nlayers > SL_MLP_MAX_LAYERS)
		return SL_EINVAL;
	for (int l = 0; l <= nlayers; l++)
		if (sizes[l] < 1 || sizes[l] > SL_MLP_MAX_WIDTH)
			return SL_EINVAL;
	for (int l = 0; l < nlayers; l++) {
		/* Each factor is below 2^20, so the product fits easily. */
		n += (size_t)sizes[l + 1] * ((size_t)sizes[l] + 1);
		if (n > SL_MLP_MAX_PARAMS)
			return SL_EINVAL;
	}

	m = calloc(1, sizeof *m);
	if (m == NULL)
		return SL_ENOMEM;
	m->params = calloc(n, sizeof *m->params);
	if (m->params == NULL) {
		free(m);
		return SL_ENOMEM;
	}
	m->nlayers = nlayers;
	m->nparams = n;
	memcpy(m->sizes, sizes, (size_t)(nlayers + 1) * sizeof *sizes);

	float *p = m->params;
	for (int l = 0; l < nlayers; l++) {
		m->W[l] = p;
		p += (size_t)sizes[l + 1] * sizes[l];
		m->b[l] = p;
		p += sizes[l + 1];
	}
	*out = m;
	return 0;
}

void
sl_mlp_free(sl_mlp **m)
{
	if (m == NULL || *m == NULL)
		return;
	free((*m)->params);
	free(*m);
	*m = NULL;
}

void
sl_mlp_init_params(sl_mlp *m, sl_rng *rng)
{
	for (int l = 0; l < m->nlayers; l++) {
		const float bound = 1.0f / sqrtf((float)m->sizes[l]);
		const size_t nw = (size_t)m->sizes[l + 1] * m->sizes[l];

		for (size_t i = 0; i < nw; i++)
			m->W[l][i] = (2.0f * sl_rng_float(rng) - 1.0f) * bound;
		for (int i = 0; i < m->sizes[l + 1]; i++)
			m->b[l][i] = (2.0f * sl_rng_float(rng) - 1.0f) * bound;
	}
}

int
sl_mlp_parse_arch(const char *s, int sizes[SL_MLP_MAX_LAYERS + 1], int *nlayers)
{
	int n = 0;
	const char *p = s;

	for (;;) {
		char *end;
		long v;

		if (*p < '0' || *p > '9')
			return SL_EINVAL;
		errno = 0;
		v = strtol(p, &end, 10);
		if (errno != 0 || v < 1 || v > SL_MLP_MAX_WIDTH)
			return SL_EINVAL;
		if (n > SL_MLP_MAX_LAYERS)
			return SL_EINVAL;
		sizes[n++] = (int)v;
		if (*end == '\0')
			break;
		if (*end != '-')
			return SL_EINVAL;
		p = end + 1;
	}
	if (n < 2)
		return SL_EINVAL;
	*nlayers = n - 1;
	return 0;
}

void
sl_mlp_format_arch(const sl_mlp *m, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int l = 0; l <= m->nlayers && off < len; l++) {
		int w = snprintf(buf + off, len - off, l ? "-%d" : "%d", m->sizes[l]);

		if (w < 0)
			break;
		off += (size_t)w;
	}
}

/* Per layer l: the input it saw (act[l], (B, sizes[l])) and the masks of
 * dropout applied to hidden activations. act[0] is a copy of x only in the
 * sense that it points at the caller's x; act[l>0] are ours. */
struct sl_mlp_ws {
	int max_batch;
	int dropout_on;
	const float *act[SL_MLP_MAX_LAYERS + 1]; /* act[nlayers] = logits */
	float *buf[SL_MLP_MAX_LAYERS + 1];       /* owned storage for act[1..] */
	float *mask[SL_MLP_MAX_LAYERS];          /* (B, sizes[l]) for hidden l */
	float *grad[2];                          /* ping-pong (B, max width) */
};

int
sl_mlp_ws_new(const sl_mlp *m, int max_batch, sl_mlp_ws **out)
{
	sl_mlp_ws *ws;
	size_t widest = 0;

	if (max_batch < 1)
		return SL_EINVAL;
	ws = calloc(1, sizeof *ws);
	if (ws == NULL)
		return SL_ENOMEM;
	ws->max_batch = max_batch;
	for (int l = 1; l <= m->nlayers; l++) {
		size_t n = (size_t)max_batch * m->sizes[l];

		ws->buf[l] = malloc(n * sizeof(float));
		if (ws->buf[l] == NULL)
			goto fail;
		if (l < m->nlayers) {
			ws->mask[l] = malloc(n * sizeof(float));
			if (ws->mask[l] == NULL)
				goto fail;
		}
		if ((size_t)m->sizes[l] > widest)
			widest = (size_t)m->sizes[l];
	}
	for (int i = 0; i < 2; i++) {
		ws->grad[i] = malloc((size_t)max_batch * widest * sizeof(float));
		if (ws->grad[i] == NULL)
			goto fail;
	}
	*out = ws;
	return 0;
fail:
	sl_mlp_ws_free(&ws);
	return SL_ENOMEM;
}

void
sl_mlp_ws_free(sl_mlp_ws **ws)
{
	if (ws == NULL || *ws == NULL)
		return;
	for (int l = 0; l <= SL_MLP_MAX_LAYERS; l++)
		free((*ws)->buf[l]);
	for (int l = 0; l < SL_MLP_MAX_LAYERS; l++)
		free((*ws)->mask[l]);
	free((*ws)->grad[0]);
	free((*ws)->grad[1]);
	free(*ws);
	*ws = NULL;
}

const float *
sl_mlp_forward(const sl_mlp *m, sl_mlp_ws *ws, const float *x, int B,
    float dropout, sl_rng *rng)
{
	ws->act[0] = x;
	ws->dropout_on = dropout > 0.0f && rng != NULL;
	for (int l = 0; l < m->nlayers; l++) {
		float *y = ws->buf[l + 1];
		const size_t n = (size_t)B * m->sizes[l + 1];

		sl_nn_dense_forward(y, ws->act[l], m->W[l], m->b[l], B,
		    m->sizes[l], m->sizes[l + 1]);
		if (l + 1 < m->nlayers) {
			sl_nn_relu_forward(y, y, n);
			if (ws->dropout_on)
				sl_nn_dropout_forward(y, ws->mask[l + 1], n,
				    dropout, rng);
		}
		ws->act[l + 1] = y;
	}
	return ws->act[m->nlayers];
}

void
sl_mlp_backward(const sl_mlp *m, sl_mlp_ws *ws, const float *dlogits, int B,
    float *grads)
{
	const float *dout = dlogits;
	int g = 0;

	memset(grads, 0, m->nparams * sizeof *grads);
	for (int l = m->nlayers - 1; l >= 0; l--) {
		const size_t woff = (size_t)(m->W[l] - m->params);
		const size_t boff = (size_t)(m->b[l] - m->params);
		float *dinp = l > 0 ? ws->grad[g] : NULL;

		sl_nn_dense_backward(dinp, grads + woff, grads + boff, dout,
		    ws->act[l], m->W[l], B, m->sizes[l], m->sizes[l + 1]);
		if (l > 0) {
			const size_t n = (size_t)B * m->sizes[l];

			/* act[l] is post-ReLU and post-dropout; a dropped unit
			 * has mask 0, so the mask zeroes it either way. */
			if (ws->dropout_on)
				sl_nn_dropout_backward(dinp, ws->mask[l], n);
			sl_nn_relu_backward(dinp, dinp, ws->act[l], n);
			dout = dinp;
			g ^= 1;
		}
	}
}

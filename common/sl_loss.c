#include "sl_loss.h"

#include <math.h>
#include <stddef.h>

static float
row_max(const float *z, int C)
{
	float m = z[0];

	for (int c = 1; c < C; c++)
		if (z[c] > m)
			m = z[c];
	return m;
}

void
sl_loss_softmax(float *p, const float *z, int B, int C, float T)
{
	const float inv_t = 1.0f / T;

	for (int r = 0; r < B; r++) {
		const float *zr = z + (size_t)r * C;
		float *pr = p + (size_t)r * C;
		const float m = row_max(zr, C);
		float sum = 0.0f;

		for (int c = 0; c < C; c++) {
			pr[c] = expf((zr[c] - m) * inv_t);
			sum += pr[c];
		}
		/* sum >= 1: the max term is exp(0). */
		const float inv = 1.0f / sum;
		for (int c = 0; c < C; c++)
			pr[c] *= inv;
	}
}

void
sl_loss_log_softmax(float *lp, const float *z, int B, int C, float T)
{
	const float inv_t = 1.0f / T;

	for (int r = 0; r < B; r++) {
		const float *zr = z + (size_t)r * C;
		float *lr = lp + (size_t)r * C;
		const float m = row_max(zr, C);
		float sum = 0.0f;

		for (int c = 0; c < C; c++)
			sum += expf((zr[c] - m) * inv_t);
		const float lse = logf(sum);
		for (int c = 0; c < C; c++)
			lr[c] = (zr[c] - m) * inv_t - lse;
	}
}

float
sl_loss_kd(const float *z, const float *pt, const uint8_t *has_t,
    const int32_t *y, int B, int C, float T, float alpha, float *dz,
    int *counted)
{
	const float inv_t = 1.0f / T;
	double total = 0.0;
	int n = 0;

	for (int r = 0; r < B; r++) {
		const float *zr = z + (size_t)r * C;
		float *dr = dz + (size_t)r * C;
		const int soft = pt != NULL && (has_t == NULL || has_t[r]);
		const int hard = y != NULL && y[r] >= 0;
		const float m = row_max(zr, C);
		double li = 0.0;

		for (int c = 0; c < C; c++)
			dr[c] = 0.0f;
		if (!soft && !hard)
			continue;
		n++;

		if (soft && alpha > 0.0f) {
			/* KL(p || q) with q = softmax(z / T):
			 *   sum p (log p - log q);  d/dz = (q - p) / T,
			 * times alpha T^2 gives alpha T (q - p). */
			const float *pr = pt + (size_t)r * C;
			float sum = 0.0f;

			for (int c = 0; c < C; c++)
				sum += expf((zr[c] - m) * inv_t);
			const float lse = logf(sum);
			double kl = 0.0;
			for (int c = 0; c < C; c++) {
				const float lq = (zr[c] - m) * inv_t - lse;

				if (pr[c] > 0.0f)
					kl += (double)pr[c] * (double)(logf(pr[c]) - lq);
				dr[c] += alpha * T * (expf(lq) - pr[c]);
			}
			li += (double)(alpha * T * T) * kl;
		}
		if (hard) {
			const float w = soft ? 1.0f - alpha : 1.0f;
			float sum = 0.0f;

			for (int c = 0; c < C; c++)
				sum += expf(zr[c] - m);
			const float lse = logf(sum);
			for (int c = 0; c < C; c++)
				dr[c] += w * expf(zr[c] - m - lse);
			dr[y[r]] -= w;
			li += (double)w * (double)(lse - (zr[y[r]] - m));
		}
		total += li;
	}

	if (n > 0) {
		const float inv_n = 1.0f / (float)n;

		for (size_t i = 0; i < (size_t)B * C; i++)
			dz[i] *= inv_n;
		total /= n;
	}
	if (counted != NULL)
		*counted = n;
	return (float)total;
}

void
sl_loss_argmax(int32_t *out, const float *z, int B, int C)
{
	for (int r = 0; r < B; r++) {
		const float *zr = z + (size_t)r * C;
		int best = 0;

		for (int c = 1; c < C; c++)
			if (zr[c] > zr[best])
				best = c;
		out[r] = best;
	}
}

/* layers.c - backward passes (and thin forward wrappers over the engine's
 * kernels) of the trainable layers; sl_layers.h states the contracts. */
#include "sl_layers.h"
#include "kernels_norm.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* --- Conv2d ---------------------------------------------------------------- */

static int
is_depthwise(const sl_conv2d_geom *g)
{
	return g->G == g->C && g->OC == g->C;
}

/* Backward unfolds a chunk of images side by side into one column matrix
 * of about this many floats (an L2's worth), so the weight-gradient and
 * input-gradient GEMMs of the chunk are one each, N = images * OH * OW
 * wide, instead of one per image (M = OC, K = C * 9, N = OH * OW: small
 * and slow on 7x7 and 14x14 planes). */
#define BWD_CHUNK_FLOATS ((size_t)96 * 1024)

/* Images per chunk for g: at least 1, at most g->B. */
static int
bwd_chunk_images(const sl_conv2d_geom *g)
{
	const size_t per = (size_t)(g->C / g->G) * (size_t)g->KH *
	    (size_t)g->KW * (size_t)g->OH * (size_t)g->OW;
	size_t nb = per > 0 ? BWD_CHUNK_FLOATS / per : 1;

	if (nb > (size_t)g->B)
		nb = (size_t)g->B;
	return nb < 1 ? 1 : (int)nb;
}

size_t
sl_nn_conv2d_col_floats(const sl_conv2d_geom *g)
{
	const size_t nb = (size_t)bwd_chunk_images(g);
	const size_t OHW = (size_t)g->OH * (size_t)g->OW;

	if (is_depthwise(g))
		return 0;
	/* the chunk's columns, then its output gradients side by side */
	return nb * OHW * ((size_t)(g->C / g->G) * (size_t)g->KH *
	    (size_t)g->KW + (size_t)(g->OC / g->G));
}

void
sl_nn_conv2d_forward(float *out, const float *x, const float *w,
    const float *b, const sl_conv2d_geom *g, float *scratch)
{
	sl_op_conv2d_forward(out, x, w, b, g, scratch);
}

/* The output columns [*lo, *hi) whose input column ow * SW - PL + kw * DW
 * falls inside the row (0 <= iw < W): borders are cut once per row
 * instead of tested per element. */
static void
cols_inside(const sl_conv2d_geom *g, int kw, int *lo, int *hi)
{
	const int off = kw * g->DW - g->PL;
	int a = 0, b = g->OW;

	/* smallest ow with ow * SW + off >= 0 */
	if (off < 0)
		a = (-off + g->SW - 1) / g->SW;
	/* largest ow with ow * SW + off <= W - 1, plus one */
	if (g->W - 1 - off < 0)
		b = 0;
	else if ((g->W - 1 - off) / g->SW + 1 < b)
		b = (g->W - 1 - off) / g->SW + 1;
	*lo = a < b ? a : b;
	*hi = b;
}

/* col (Cg*KH*KW, OH*OW), rows ld floats apart = the windows of one
 * image's group of Cg planes. */
static void
im2col(float *col, size_t ld, const float *x, /* (Cg, H, W) */ int Cg,
    const sl_conv2d_geom *g)
{

	for (int c = 0; c < Cg; c++)
		for (int kh = 0; kh < g->KH; kh++)
			for (int kw = 0; kw < g->KW; kw++) {
				float *dst = col + ((size_t)(c * g->KH + kh) *
				    (size_t)g->KW + (size_t)kw) * ld;
				const float *plane = x + (size_t)c * (size_t)g->H *
				    (size_t)g->W;
				const int off = kw * g->DW - g->PL;
				int lo, hi;

				cols_inside(g, kw, &lo, &hi);
				for (int oh = 0; oh < g->OH; oh++) {
					const int ih = oh * g->SH - g->PT + kh * g->DH;
					float *d = dst + (size_t)oh * (size_t)g->OW;

					if (ih < 0 || ih >= g->H) {
						memset(d, 0, (size_t)g->OW * sizeof *d);
						continue;
					}
					const float *row = plane + (size_t)ih *
					    (size_t)g->W + off;

					for (int ow = 0; ow < lo; ow++)
						d[ow] = 0.0f;
					if (g->SW == 1)
						memcpy(d + lo, row + lo, (size_t)(hi - lo) *
						    sizeof *d);
					else
						for (int ow = lo; ow < hi; ow++)
							d[ow] = row[ow * g->SW];
					for (int ow = hi; ow < g->OW; ow++)
						d[ow] = 0.0f;
				}
			}
}

/* dx (Cg, H, W) += the columns (rows ld floats apart) folded back onto
 * the image. */
static void
col2im(float *dx, const float *col, size_t ld, int Cg,
    const sl_conv2d_geom *g)
{

	for (int c = 0; c < Cg; c++)
		for (int kh = 0; kh < g->KH; kh++)
			for (int kw = 0; kw < g->KW; kw++) {
				const float *src = col + ((size_t)(c * g->KH + kh) *
				    (size_t)g->KW + (size_t)kw) * ld;
				float *plane = dx + (size_t)c * (size_t)g->H *
				    (size_t)g->W;
				const int off = kw * g->DW - g->PL;
				int lo, hi;

				cols_inside(g, kw, &lo, &hi);
				for (int oh = 0; oh < g->OH; oh++) {
					const int ih = oh * g->SH - g->PT + kh * g->DH;
					const float *sv = src + (size_t)oh * (size_t)g->OW;

					if (ih < 0 || ih >= g->H)
						continue;
					float *row = plane + (size_t)ih * (size_t)g->W + off;

					if (g->SW == 1)
						for (int ow = lo; ow < hi; ow++)
							row[ow] += sv[ow];
					else
						for (int ow = lo; ow < hi; ow++)
							row[ow * g->SW] += sv[ow];
				}
			}
}

/* One input plane per output plane: direct loops, no GEMM of one row. */
static void
conv_depthwise_backward(float *dx, float *dw, const float *dout,
    const float *x, const float *w, const sl_conv2d_geom *g)
{
	const size_t HW = (size_t)g->H * (size_t)g->W;
	const size_t OHW = (size_t)g->OH * (size_t)g->OW;
	const size_t KK = (size_t)g->KH * (size_t)g->KW;

	if (dx != NULL)
		memset(dx, 0, (size_t)g->B * (size_t)g->C * HW * sizeof *dx);
	for (int b = 0; b < g->B; b++)
		for (int c = 0; c < g->C; c++) {
			const size_t p = (size_t)b * (size_t)g->C + (size_t)c;
			const float *xp = x + p * HW, *dp = dout + p * OHW;
			const float *wc = w + (size_t)c * KK;
			float *dwc = dw + (size_t)c * KK;
			float *dxp = dx != NULL ? dx + p * HW : NULL;

			for (int kh = 0; kh < g->KH; kh++)
				for (int kw = 0; kw < g->KW; kw++) {
					const float wk = wc[kh * g->KW + kw];
					float acc = 0.0f;

					for (int oh = 0; oh < g->OH; oh++) {
						const int ih = oh * g->SH - g->PT + kh * g->DH;

						if (ih < 0 || ih >= g->H)
							continue;
						for (int ow = 0; ow < g->OW; ow++) {
							const int iw = ow * g->SW - g->PL +
							    kw * g->DW;
							const float d = dp[oh * g->OW + ow];

							if (iw < 0 || iw >= g->W)
								continue;
							acc += d * xp[ih * g->W + iw];
							if (dxp != NULL)
								dxp[ih * g->W + iw] += d * wk;
						}
					}
					dwc[kh * g->KW + kw] += acc;
				}
		}
}

/* One group gr of images [b0, b0 + nb): their columns side by side in
 * col (K, nb * OHW), their output gradients likewise in dcat (OCg,
 * nb * OHW) (or dout itself for one image), then one GEMM for dW and one
 * for the columns of dx. */
static void
conv_chunk_backward(float *dx, float *dw, const float *dout, const float *x,
    const float *w, const sl_conv2d_geom *g, float *col, int b0, int nb,
    int gr)
{
	const int Cg = g->C / g->G, OCg = g->OC / g->G;
	const int K = Cg * g->KH * g->KW;
	const size_t OHW = (size_t)g->OH * (size_t)g->OW;
	const size_t HW = (size_t)g->H * (size_t)g->W;
	const size_t ld = (size_t)nb * OHW;
	const float *wg = w + (size_t)gr * (size_t)OCg * (size_t)K;
	float *dwg = dw + (size_t)gr * (size_t)OCg * (size_t)K;
	float *dcat = col + (size_t)K * ld;
	const float *dg;

	for (int j = 0; j < nb; j++)
		im2col(col + (size_t)j * OHW, ld, x + ((size_t)(b0 + j) *
		    (size_t)g->C + (size_t)gr * (size_t)Cg) * HW, Cg, g);
	if (nb == 1) {
		dg = dout + ((size_t)b0 * (size_t)g->OC + (size_t)gr *
		    (size_t)OCg) * OHW;
	} else {
		for (int j = 0; j < nb; j++)
			for (int oc = 0; oc < OCg; oc++)
				memcpy(dcat + (size_t)oc * ld + (size_t)j * OHW,
				    dout + ((size_t)(b0 + j) * (size_t)g->OC +
				    (size_t)(gr * OCg + oc)) * OHW, OHW *
				    sizeof *dcat);
		dg = dcat;
	}
	/* dW_g (OCg, K) += dout_g (OCg, nb OHW) col^T (nb OHW, K) */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OCg, K, (int)ld,
	    1.0f, dg, (int)ld, col, (int)ld, 1.0f, dwg, K);
	if (dx == NULL)
		return;
	/* dcol (K, nb OHW) = W_g^T (K, OCg) dout_g (OCg, nb OHW) */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, (int)ld, OCg,
	    1.0f, wg, K, dg, (int)ld, 0.0f, col, (int)ld);
	for (int j = 0; j < nb; j++)
		col2im(dx + ((size_t)(b0 + j) * (size_t)g->C + (size_t)gr *
		    (size_t)Cg) * HW, col + (size_t)j * OHW, ld, Cg, g);
}

void
sl_nn_conv2d_backward(float *dx, float *dw, float *db, const float *dout,
    const float *x, const float *w, const sl_conv2d_geom *g, float *col)
{
	const int OHW = g->OH * g->OW;
	const size_t HW = (size_t)g->H * (size_t)g->W;
	const int nbmax = bwd_chunk_images(g);

	if (db != NULL)
		for (int b = 0; b < g->B; b++)
			for (int oc = 0; oc < g->OC; oc++) {
				const float *d = dout + ((size_t)b * (size_t)g->OC +
				    (size_t)oc) * (size_t)OHW;
				float s = 0.0f;

				for (int i = 0; i < OHW; i++)
					s += d[i];
				db[oc] += s;
			}
	if (is_depthwise(g)) {
		conv_depthwise_backward(dx, dw, dout, x, w, g);
		return;
	}
	if (dx != NULL)
		memset(dx, 0, (size_t)g->B * (size_t)g->C * HW * sizeof *dx);
	for (int b0 = 0; b0 < g->B; b0 += nbmax) {
		const int nb = g->B - b0 < nbmax ? g->B - b0 : nbmax;

		for (int gr = 0; gr < g->G; gr++)
			conv_chunk_backward(dx, dw, dout, x, w, g, col, b0, nb, gr);
	}
}

/* --- BatchNorm2d ----------------------------------------------------------- */

/* Sums over a plane in eight float lanes (so the compiler can keep them in
 * one vector register without reassociating anything itself). */
static float
plane_sum(const float *x, int S)
{
	float a[8] = { 0 };
	int i = 0;

	for (; i + 8 <= S; i += 8)
		for (int k = 0; k < 8; k++)
			a[k] += x[i + k];
	for (; i < S; i++)
		a[0] += x[i];
	return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* sum (x - m)^2 over a plane, the same way. */
static float
plane_sqdev(const float *x, int S, float m)
{
	float a[8] = { 0 };
	int i = 0;

	for (; i + 8 <= S; i += 8)
		for (int k = 0; k < 8; k++) {
			const float d = x[i + k] - m;

			a[k] += d * d;
		}
	for (; i < S; i++)
		a[0] += (x[i] - m) * (x[i] - m);
	return ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
}

/* sum dy and sum dy * (x - m) * is over a plane. */
static void
plane_dsums(const float *dy, const float *x, int S, float m, float is,
    float *sd, float *sdx)
{
	float a[8] = { 0 }, b[8] = { 0 };
	int i = 0;

	for (; i + 8 <= S; i += 8)
		for (int k = 0; k < 8; k++) {
			a[k] += dy[i + k];
			b[k] += dy[i + k] * ((x[i + k] - m) * is);
		}
	for (; i < S; i++) {
		a[0] += dy[i];
		b[0] += dy[i] * ((x[i] - m) * is);
	}
	*sd = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
	*sdx = ((b[0] + b[1]) + (b[2] + b[3])) + ((b[4] + b[5]) + (b[6] + b[7]));
}

void
sl_nn_bn2d_forward_train_part(float *y, float *mean, float *invstd,
    float *run_mean, float *run_var, const float *x, const float *gamma,
    const float *beta, int B, int C, int S, float eps, float momentum,
    int c0, int c1)
{
	const size_t n = (size_t)B * (size_t)S;

	for (int c = c0; c < c1; c++) {
		double s = 0.0, ss = 0.0;

		/* A plane's sum in float (vectorised), planes summed in double. */
		for (int b = 0; b < B; b++) {
			const float *px = x + ((size_t)b * (size_t)C + (size_t)c) *
			    (size_t)S;
			s += (double)plane_sum(px, S);
		}
		const double m = s / (double)n;
		const float fm0 = (float)m;

		for (int b = 0; b < B; b++) {
			const float *px = x + ((size_t)b * (size_t)C + (size_t)c) *
			    (size_t)S;
			ss += (double)plane_sqdev(px, S, fm0);
		}
		const double var = ss / (double)n;
		const float is = (float)(1.0 / sqrt(var + (double)eps));
		const float fm = (float)m, sc = gamma[c] * is, t = beta[c];
		const double unbiased = n > 1 ? ss / (double)(n - 1) : var;

		mean[c] = fm;
		invstd[c] = is;
		run_mean[c] = (1.0f - momentum) * run_mean[c] + momentum * fm;
		run_var[c] = (1.0f - momentum) * run_var[c] + momentum *
		    (float)unbiased;
		for (int b = 0; b < B; b++) {
			const size_t o = ((size_t)b * (size_t)C + (size_t)c) *
			    (size_t)S;

			for (int i = 0; i < S; i++)
				y[o + (size_t)i] = (x[o + (size_t)i] - fm) * sc + t;
		}
	}
}

void
sl_nn_bn2d_forward_train(float *y, float *mean, float *invstd,
    float *run_mean, float *run_var, const float *x, const float *gamma,
    const float *beta, int B, int C, int S, float eps, float momentum)
{
	sl_nn_bn2d_forward_train_part(y, mean, invstd, run_mean, run_var, x,
	    gamma, beta, B, C, S, eps, momentum, 0, C);
}

void
sl_nn_bn2d_forward_eval(float *y, const float *x, const float *gamma,
    const float *beta, const float *run_mean, const float *run_var, int B,
    int C, int S, float eps)
{
	sl_op_batchnorm_forward(y, x, gamma, beta, run_mean, run_var, B, C, S,
	    eps);
}

void
sl_nn_bn2d_backward_part(float *dx, float *dgamma, float *dbeta,
    const float *dout, const float *x, const float *gamma, const float *mean,
    const float *invstd, int B, int C, int S, int c0, int c1)
{
	const double n = (double)B * (double)S;

	for (int c = c0; c < c1; c++) {
		double sd = 0.0, sdx = 0.0;
		const float m = mean[c], is = invstd[c];

		for (int b = 0; b < B; b++) {
			const size_t o = ((size_t)b * (size_t)C + (size_t)c) *
			    (size_t)S;
			float pd, pdx;

			plane_dsums(dout + o, x + o, S, m, is, &pd, &pdx);
			sd += (double)pd;
			sdx += (double)pdx;
		}
		dgamma[c] += (float)sdx;
		dbeta[c] += (float)sd;
		if (dx == NULL)
			continue;
		/* dx = gamma * invstd / n * (n * dy - sum dy - xhat * sum dy xhat) */
		const float k = gamma[c] * is;
		const float a = (float)(sd / n), bb = (float)(sdx / n);

		for (int b = 0; b < B; b++) {
			const size_t o = ((size_t)b * (size_t)C + (size_t)c) *
			    (size_t)S;

			for (int i = 0; i < S; i++) {
				const float xh = (x[o + (size_t)i] - m) * is;

				dx[o + (size_t)i] = k * (dout[o + (size_t)i] - a -
				    xh * bb);
			}
		}
	}
}

void
sl_nn_bn2d_backward(float *dx, float *dgamma, float *dbeta,
    const float *dout, const float *x, const float *gamma, const float *mean,
    const float *invstd, int B, int C, int S)
{
	sl_nn_bn2d_backward_part(dx, dgamma, dbeta, dout, x, gamma, mean,
	    invstd, B, C, S, 0, C);
}

/* --- pools ------------------------------------------------------------------ */

void
sl_nn_maxpool2d_forward(float *out, const float *x, const sl_pool2d_geom *g)
{
	sl_op_maxpool2d_forward(out, x, g);
}

/* The common 2x2 stride-2 pool: the windows tile the input, so every
 * element of dx is written once (the window's winner gets its gradient,
 * the three others 0; a last odd row or column, in no window, 0) and dx
 * needs no clearing first. The rule is the general path's: the first
 * strict maximum in row-major order, or a NaN. */
static void
maxpool2x2_backward(float *dx, const float *dout, const float *x,
    const sl_pool2d_geom *g)
{
	const size_t HW = (size_t)g->H * (size_t)g->W;
	const size_t OHW = (size_t)g->OH * (size_t)g->OW;
	const int W = g->W;

	for (size_t p = 0; p < g->N; p++) {
		const float *xp = x + p * HW;
		float *dxp = dx + p * HW;
		const float *dp = dout + p * OHW;

		for (int oh = 0; oh < g->OH; oh++) {
			const float *r0 = xp + (size_t)(2 * oh) * (size_t)W;
			const float *r1 = r0 + W;
			float *d0 = dxp + (size_t)(2 * oh) * (size_t)W;
			float *d1 = d0 + W;

			for (int ow = 0; ow < g->OW; ow++) {
				const float v[4] = { r0[2 * ow], r0[2 * ow + 1],
					r1[2 * ow], r1[2 * ow + 1] };
				const float dv = dp[oh * g->OW + ow];
				float best = v[0];
				int at = 0;

				for (int k = 1; k < 4; k++)
					if (v[k] > best || isnan(v[k])) {
						best = v[k];
						at = k;
					}
				d0[2 * ow] = at == 0 ? dv : 0.0f;
				d0[2 * ow + 1] = at == 1 ? dv : 0.0f;
				d1[2 * ow] = at == 2 ? dv : 0.0f;
				d1[2 * ow + 1] = at == 3 ? dv : 0.0f;
			}
			for (int iw = 2 * g->OW; iw < W; iw++)
				d0[iw] = d1[iw] = 0.0f;
		}
		for (int ih = 2 * g->OH; ih < g->H; ih++)
			memset(dxp + (size_t)ih * (size_t)W, 0, (size_t)W *
			    sizeof *dxp);
	}
}

void
sl_nn_maxpool2d_backward(float *dx, const float *dout, const float *x,
    const sl_pool2d_geom *g)
{
	const size_t HW = (size_t)g->H * (size_t)g->W;
	const size_t OHW = (size_t)g->OH * (size_t)g->OW;

	if (g->KH == 2 && g->KW == 2 && g->SH == 2 && g->SW == 2 &&
	    g->DH == 1 && g->DW == 1 && g->PT == 0 && g->PL == 0) {
		maxpool2x2_backward(dx, dout, x, g);
		return;
	}
	memset(dx, 0, g->N * HW * sizeof *dx);
	for (size_t p = 0; p < g->N; p++) {
		const float *xp = x + p * HW;
		float *dxp = dx + p * HW;

		for (int oh = 0; oh < g->OH; oh++)
			for (int ow = 0; ow < g->OW; ow++) {
				float best = -INFINITY;
				long at = -1;

				/* PyTorch's rule: the first strict maximum, or
				 * any NaN, in row-major order. */
				for (int kh = 0; kh < g->KH; kh++) {
					const int ih = oh * g->SH - g->PT + kh * g->DH;

					if (ih < 0 || ih >= g->H)
						continue;
					for (int kw = 0; kw < g->KW; kw++) {
						const int iw = ow * g->SW - g->PL +
						    kw * g->DW;

						if (iw < 0 || iw >= g->W)
							continue;
						const float v = xp[ih * g->W + iw];

						if (at < 0 || v > best || isnan(v)) {
							best = v;
							at = ih * g->W + iw;
						}
					}
				}
				if (at >= 0)
					dxp[at] += dout[p * OHW + (size_t)(oh * g->OW +
					    ow)];
			}
	}
}

void
sl_nn_avgpool2d_forward(float *out, const float *x, const sl_pool2d_geom *g)
{
	sl_op_avgpool2d_forward(out, x, g, 1);
}

void
sl_nn_avgpool2d_backward(float *dx, const float *dout,
    const sl_pool2d_geom *g)
{
	const size_t HW = (size_t)g->H * (size_t)g->W;
	const size_t OHW = (size_t)g->OH * (size_t)g->OW;

	memset(dx, 0, g->N * HW * sizeof *dx);
	for (int oh = 0; oh < g->OH; oh++) {
		const int h0 = oh * g->SH - g->PT;
		const int h1 = h0 + g->KH < g->H + g->PB ? h0 + g->KH :
		    g->H + g->PB;

		for (int ow = 0; ow < g->OW; ow++) {
			const int w0 = ow * g->SW - g->PL;
			const int w1 = w0 + g->KW < g->W + g->PR ? w0 + g->KW :
			    g->W + g->PR;
			/* The divisor counts the pads (count_include_pad). */
			const float inv = 1.0f / (float)((h1 - h0) * (w1 - w0));
			const int hs = h0 < 0 ? 0 : h0, ws = w0 < 0 ? 0 : w0;
			const int he = h1 > g->H ? g->H : h1;
			const int we = w1 > g->W ? g->W : w1;

			for (size_t p = 0; p < g->N; p++) {
				const float d = dout[p * OHW + (size_t)(oh * g->OW +
				    ow)] * inv;
				float *dxp = dx + p * HW;

				for (int ih = hs; ih < he; ih++)
					for (int iw = ws; iw < we; iw++)
						dxp[ih * g->W + iw] += d;
			}
		}
	}
}

void
sl_nn_gap_forward(float *out, const float *x, size_t N, size_t S)
{
	sl_op_globalavgpool_forward(out, x, N, S);
}

void
sl_nn_gap_backward(float *dx, const float *dout, size_t N, size_t S)
{
	const float inv = 1.0f / (float)S;

	for (size_t p = 0; p < N; p++) {
		const float d = dout[p] * inv;

		for (size_t i = 0; i < S; i++)
			dx[p * S + i] = d;
	}
}

void
sl_nn_add_forward(float *out, const float *a, const float *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = a[i] + b[i];
}

/* bench_nn - figures, not thresholds.
 *
 * 1. Forward samples/s of the 784-1200-1200-10 MLP at batch 256 on 2
 *    threads, against a bare chain of cblas_sgemm calls of the same shapes
 *    (no bias, no ReLU): the ratio is what our layer code costs on top of
 *    OpenBLAS. The two are measured alternately in rounds and the median
 *    round is reported, so both see the same machine load.
 * 2. Training samples/s of 784-128-10 at batch 128 (forward, KD/CE loss,
 *    backward, Adam step) on 2 threads.
 * 3. Training samples/s of the teacher 784-1200-1200-10 at batch 128 with
 *    dropout 0.5 and Adam, and its GFLOP/s against the bare forward chain's
 *    (the same kernels on the same machine): how close training gets to the
 *    GEMM ceiling.
 *
 * 4. One Adam step over the teacher's 2.4M parameters, with every
 *    gradient live, and with a third of them 0 and their moments just
 *    above FLT_MIN, where they decay through the denormals (what a third
 *    of the demo teacher's moments did by epoch 20 before sl_optim flushed
 *    them): the two times should match.
 *
 * It starts as the programs do (sl_blas_start), so it measures the kernel
 * softlabel runs here; tests/bench/bench_nn.sh runs PyTorch on the same
 * networks under that kernel and prints the ratios. BENCH_THREADS sets the
 * thread count (default 2).
 */
#include <cblas.h>
#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_blas.h"
#include "sl_loss.h"
#include "sl_nn.h"
#include "sl_optim.h"
#include "sl_progress.h"

#define ROUNDS 7

static int
cmp_double(const void *a, const void *b)
{
	const double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return v[n / 2];
}

static float *
randoms(size_t n, sl_rng *r)
{
	float *x = malloc(n * sizeof *x);

	if (x == NULL) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < n; i++)
		x[i] = sl_rng_float(r) - 0.5f;
	return x;
}

typedef struct bench_ctx {
	sl_mlp *m;
	sl_mlp_ws *ws;
	sl_optim *o;
	int B;
	float dropout;
	sl_rng *rng;
	float *x, *h1, *h2, *out, *dz, *g;
	int32_t *y;
} bench_ctx;

/* Run fn over and over for about budget_s seconds; samples per second. */
static double
timed(double budget_s, void (*fn)(bench_ctx *), bench_ctx *c)
{
	const double t0 = sl_now_s();
	double el;
	long it = 0;

	do {
		fn(c);
		it++;
	} while ((el = sl_now_s() - t0) < budget_s);
	return (double)it * c->B / el;
}

static void
bare_chain(bench_ctx *c)
{
	const sl_mlp *m = c->m;
	const int B = c->B;

	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, 1200, 784,
	    1.0f, c->x, 784, m->W[0], 784, 0.0f, c->h1, 1200);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, 1200, 1200,
	    1.0f, c->h1, 1200, m->W[1], 1200, 0.0f, c->h2, 1200);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, 10, 1200,
	    1.0f, c->h2, 1200, m->W[2], 1200, 0.0f, c->out, 10);
}

static void
mlp_forward(bench_ctx *c)
{
	(void)sl_mlp_forward(c->m, c->ws, c->x, c->B, 0.0f, NULL);
}

static void
train_step(bench_ctx *c)
{
	const int C = c->m->sizes[c->m->nlayers];
	const float *z = sl_mlp_forward(c->m, c->ws, c->x, c->B, c->dropout,
	    c->rng);

	(void)sl_loss_kd(z, NULL, NULL, c->y, c->B, C, 1.0f, 0.0f, c->dz, NULL);
	sl_mlp_backward(c->m, c->ws, c->dz, c->B, c->g);
	sl_optim_step(c->o, c->m->params, c->g);
}

/* Multiply-adds per sample of one training step: forward, the weight
 * gradient of every layer, the input gradient of all but the first. */
static double
train_macs(const int *sizes, int nlayers)
{
	double fwd = 0, dinp = 0;

	for (int l = 0; l < nlayers; l++) {
		fwd += (double)sizes[l] * sizes[l + 1];
		if (l > 0)
			dinp += (double)sizes[l] * sizes[l + 1];
	}
	return 2 * fwd + dinp;
}

/* A training step of an MLP at batch B: samples/s (median round). */
static double
bench_train(const int *sizes, int nlayers, int B, float dropout, sl_rng *r)
{
	bench_ctx c = { .B = B, .dropout = dropout, .rng = r };
	sl_optim o;
	double rates[ROUNDS];
	int32_t *y = malloc((size_t)B * sizeof *y);

	if (y == NULL || sl_mlp_new(sizes, nlayers, &c.m) != 0 ||
	    sl_mlp_ws_new(c.m, c.B, &c.ws) != 0 ||
	    sl_optim_init(&o, SL_OPTIM_ADAM, c.m->nparams, 1e-3f) != 0) {
		fprintf(stderr, "bench: out of memory\n");
		exit(1);
	}
	sl_mlp_init_params(c.m, r);
	c.o = &o;
	c.x = randoms((size_t)c.B * (size_t)sizes[0], r);
	c.dz = randoms((size_t)c.B * (size_t)sizes[nlayers], r);
	c.g = randoms(c.m->nparams, r);
	for (int i = 0; i < c.B; i++)
		y[i] = i % sizes[nlayers];
	c.y = y;
	train_step(&c); /* warm: first-touch of buffers, OpenBLAS threads */
	for (int k = 0; k < ROUNDS; k++)
		rates[k] = timed(0.5, train_step, &c);
	free(c.x);
	free(c.dz);
	free(c.g);
	free(y);
	sl_optim_fini(&o);
	sl_mlp_ws_free(&c.ws);
	sl_mlp_free(&c.m);
	return median(rates, ROUNDS);
}

/* Milliseconds per Adam step over n parameters; with dead, a third of the
 * gradients are 0 and their moments start at 2 FLT_MIN: unflushed they
 * would spend the timed steps as denormals. */
static double
adam_ms(size_t n, int dead)
{
	enum { STEPS = 200 }; /* unflushed, ~150 of them would be denormal */
	sl_optim o;
	float *p = malloc(n * sizeof *p), *g = malloc(n * sizeof *g);
	double t0, ms;

	if (p == NULL || g == NULL || sl_optim_init(&o, SL_OPTIM_ADAM, n,
	    1e-3f) != 0) {
		fprintf(stderr, "bench_nn: out of memory\n");
		exit(1);
	}
	for (size_t i = 0; i < n; i++) {
		const int off = dead && i % 3 == 0;

		p[i] = 0.01f;
		g[i] = off ? 0.0f : 1e-3f;
		o.m[i] = off ? 2 * FLT_MIN : 1e-3f;
		o.v[i] = 1e-6f;
	}
	t0 = sl_now_s();
	for (int k = 0; k < STEPS; k++)
		sl_optim_step(&o, p, g);
	ms = (sl_now_s() - t0) * 1e3 / STEPS;
	sl_optim_fini(&o);
	free(p);
	free(g);
	return ms;
}

int
main(int argc, char **argv)
{
	const int sizes[] = { 784, 1200, 1200, 10 };
	bench_ctx c = { .B = 256 };
	sl_rng r;
	double ours[ROUNDS], bare[ROUNDS];

	/* As the programs start: the kernel softlabel chooses here (this may
	 * re-execute the benchmark once). */
	sl_blas_start(argv);
	(void)argc;
	const char *env = getenv("BENCH_THREADS");
	const int threads = env && strtol(env, NULL, 10) > 0 ?
	    (int)strtol(env, NULL, 10) : 2;
	char line[900];

	openblas_set_num_threads(threads);
	sl_blas_describe(sl_blas_info_get(), threads, line, sizeof line);
	printf("%s\n", line);
	printf("openblas core: %s, threads: %d\n", openblas_get_corename(),
	    threads);
	sl_rng_seed(&r, 1);
	if (sl_mlp_new(sizes, 3, &c.m) != 0 || sl_mlp_ws_new(c.m, c.B, &c.ws) != 0)
		return 1;
	sl_mlp_init_params(c.m, &r);
	c.x = randoms((size_t)c.B * 784, &r);
	c.h1 = randoms((size_t)c.B * 1200, &r);
	c.h2 = randoms((size_t)c.B * 1200, &r);
	c.out = randoms((size_t)c.B * 10, &r);
	for (int k = 0; k < ROUNDS; k++) {
		bare[k] = timed(0.5, bare_chain, &c);
		ours[k] = timed(0.5, mlp_forward, &c);
	}
	const double mb = median(bare, ROUNDS), mo = median(ours, ROUNDS);
	printf("forward 784-1200-1200-10 batch %d: %.0f samples/s "
	    "(bare sgemm chain %.0f samples/s, ratio %.3f)\n", c.B, mo, mb,
	    mo / mb);
	sl_mlp_ws_free(&c.ws);
	sl_mlp_free(&c.m);
	free(c.x);
	free(c.h1);
	free(c.h2);
	free(c.out);

	/* A training step of the 784-128-10 student, and of the teacher with
	 * dropout 0.5. */
	const int ss[] = { 784, 128, 10 };
	printf("train step 784-128-10 batch 128 (adam): %.0f samples/s\n",
	    bench_train(ss, 2, 128, 0.0f, &r));
	fflush(stdout);
	const double tr = bench_train(sizes, 3, 128, 0.5f, &r);
	const double fwd_gflops = mb * 2 * (784.0 * 1200 + 1200.0 * 1200 +
	    1200.0 * 10) / 1e9;
	const double tr_gflops = tr * 2 * train_macs(sizes, 3) / 1e9;
	printf("train step 784-1200-1200-10 batch 128 (adam, dropout 0.5): "
	    "%.0f samples/s, %.1f GFLOP/s = %.3f of the bare forward chain's "
	    "%.1f GFLOP/s\n", tr, tr_gflops, tr_gflops / fwd_gflops, fwd_gflops);

	double live[3], dead[3];
	size_t n = 0;

	for (int l = 0; l < 3; l++) /* weights and biases */
		n += (size_t)sizes[l] * (size_t)sizes[l + 1] + (size_t)sizes[l + 1];

	for (int k = 0; k < 3; k++) {
		live[k] = adam_ms(n, 0);
		dead[k] = adam_ms(n, 1);
	}
	const double ml = median(live, 3), md = median(dead, 3);
	printf("adam step %zu parameters: %.2f ms; a third of the moments "
	    "decaying from FLT_MIN: %.2f ms (ratio %.2f)\n", n, ml, md, md / ml);
	return 0;
}

/* bench_graph.c - the graph engine's forward throughput on a model file, and
 * the GFLOP/s of its Conv nodes against cblas_sgemm's peak measured in the
 * same run (issue 10's speed figures; no thresholds).
 *
 *   bench_graph MODEL [--batch 256] [--threads 2] [--seconds 3]
 *   bench_graph --sgemm-peak [--threads 2]
 *
 * Prints one parseable line per figure:
 *   softlabel MODEL b256 threads2 samples/s 1234.5 ms/batch 207.4
 *   softlabel MODEL conv GFLOP/s 55.1 of sgemm peak 71.0 = 0.78
 */
#include "graph.h"
#include "sl_graph.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* sgemm of the shape a ResNet 3x3 conv on 14x14 x 256 images makes (64 x
 * 50176 x 576), best of a few runs: the machine's ceiling right now. */
static double
sgemm_peak(void)
{
	const int M = 64, N = 12544, K = 576;
	float *a = calloc((size_t)M * K, 4), *b = calloc((size_t)K * N, 4),
	    *c = calloc((size_t)M * N, 4);
	double best = 0;

	for (int r = 0; r < 8; r++) {
		const double t0 = now_s();

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f,
		    a, K, b, N, 0.0f, c, N);
		const double g = 2.0 * M * N * K / (now_s() - t0) * 1e-9;

		if (g > best)
			best = g;
	}
	free(a);
	free(b);
	free(c);
	return best;
}

/* FLOPs of one Conv node at the current shapes: 2 * out elements * the
 * window (C/group * kh * kw). */
static double
conv_flops(sl_graph *g, const sl_gnode *n)
{
	const sl_gtensor *w = sl_g_in(g, n, 1), *y = sl_g_out(g, n, 0);
	double win = 1;

	for (int i = 1; i < w->rank; i++)
		win *= (double)w->dims[i];
	return 2.0 * (double)sl_g_numel(y) * win;
}

int
main(int argc, char **argv)
{
	const char *path = NULL;
	int batch = 256, threads = 2;
	double seconds = 3, conv_s = 0, conv_fl = 0, peak;
	sl_graph *g = NULL;
	sl_errmsg why = { "" };
	const float *z;
	float *x;
	int runs = 0, rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
			batch = atoi(argv[++i]);
		else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
			threads = atoi(argv[++i]);
		else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (strcmp(argv[i], "--sgemm-peak") == 0)
			path = "";
		else
			path = argv[i];
	}
	if (path == NULL || batch < 1 || threads < 1) {
		fprintf(stderr, "usage: bench_graph MODEL [--batch N] [--threads N] "
		    "[--seconds S] | --sgemm-peak [--threads N]\n");
		return 2;
	}
	openblas_set_num_threads(threads);
	if (path[0] == '\0') {
		printf("sgemm peak threads%d GFLOP/s %.1f\n", threads, sgemm_peak());
		return 0;
	}
	const sl_graph_opts o = { .max_batch = batch };

	if ((rc = sl_graph_load(path, &o, &g, NULL, &why)) != 0) {
		fprintf(stderr, "bench_graph: %s: %s\n", path, why.text[0] ?
		    why.text : sl_strerror(rc));
		return 1;
	}
	x = malloc((size_t)batch * sl_graph_input_dim(g) * sizeof *x);
	for (size_t i = 0; i < (size_t)batch * sl_graph_input_dim(g); i++)
		x[i] = (float)(i % 251) / 251.0f;
	/* Warm-up, then whole-model runs for the time asked. */
	if (sl_graph_forward(g, x, batch, &z, &why) != 0) {
		fprintf(stderr, "bench_graph: %s\n", why.text);
		return 1;
	}
	const double t0 = now_s();

	do {
		(void)sl_graph_forward(g, x, batch, &z, &why);
		runs++;
	} while (now_s() - t0 < seconds);
	const double dt = now_s() - t0;

	printf("softlabel %s b%d threads%d samples/s %.1f ms/batch %.1f\n", path,
	    batch, threads, (double)runs * batch / dt, dt / runs * 1e3);

	/* Conv nodes alone, node by node, as sl_g_run does them. */
	for (int r = 0; r < 3; r++) {
		for (int p = 0; p < g->norder; p++) {
			sl_gnode *n = &g->n[g->order[p]];
			const int conv = strcmp(n->op->name, "Conv") == 0;
			const double c0 = now_s();

			(void)n->op->infer(g, n, &why);
			n->op->forward(g, n, g->scratch);
			if (conv) {
				conv_s += now_s() - c0;
				conv_fl += conv_flops(g, n);
			}
		}
	}
	if (conv_fl > 0) {
		peak = sgemm_peak();
		printf("softlabel %s conv GFLOP/s %.1f of sgemm peak %.1f = %.2f\n",
		    path, conv_fl / conv_s * 1e-9, peak, conv_fl / conv_s * 1e-9 /
		    peak);
	}
	free(x);
	sl_graph_free(&g);
	return 0;
}

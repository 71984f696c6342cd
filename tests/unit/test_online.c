/* test_online: online teaching's targets (student-trainer/online.c) for a
 * safetensors MLP teacher run through the graph engine: softmax(z / T) of
 * every row against a naive double-precision softmax of the MLP's own
 * logits (row by row, within 1e-6), across a forward split in chunks; the
 * raw-rows path equal byte for byte to the dataset path; refusals of a
 * teacher with other classes and of a file that is no model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../student-trainer/online.h"
#include "sl_model.h"
#include "sl_nn.h"
#include "sl_rng.h"

#define N 300 /* rows: more than ONLINE_MAX_CHUNK, so two forwards */
#define D 16
#define K 5

static char dir[] = "/tmp/test_online.XXXXXX";
static unsigned char rows_u8[N * D];

static const char *
tpath(const char *name)
{
	static char p[4][256];
	static int k;

	k = (k + 1) % 4;
	snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
	return p[k];
}

/* A random 16-8-K MLP saved as safetensors; *m keeps it for reference. */
static void
make_teacher(const char *name, int classes, sl_mlp **m)
{
	const int sizes[3] = { D, 8, classes };
	const sl_preproc pre = sl_preproc_default(SL_DTYPE_U8);
	sl_errmsg why = { "" };
	sl_rng rng;

	assert_int_equal(sl_mlp_new(sizes, 2, m), 0);
	sl_rng_seed(&rng, 42);
	sl_mlp_init_params(*m, &rng);
	assert_int_equal(sl_model_save(tpath(name), *m, &pre, SL_DTYPE_U8, &why), 0);
}

static sl_dataset *
make_ds(void)
{
	const uint64_t shape[2] = { N, D };
	sl_errmsg why = { "" };
	sl_dataset *ds = NULL;

	srand(7);
	for (size_t i = 0; i < sizeof rows_u8; i++)
		rows_u8[i] = (unsigned char)(rand() & 0xff);
	assert_int_equal(sl_npy_write(tpath("x.npy"), "|u1", shape, 2, rows_u8,
	    &why), 0);
	assert_int_equal(sl_dataset_open(tpath("x.npy"), &ds, &why), 0);
	return ds;
}

static void
test_targets(void **state)
{
	sl_dataset *ds = make_ds();
	sl_mlp *m = NULL;
	sl_mlp_ws *ws = NULL;
	const sl_preproc pre = sl_preproc_default(SL_DTYPE_U8);
	static size_t idx[N];
	static float p[N * K], q[N * K], x[D];
	static uint8_t has[N], has2[N];
	static unsigned char raw[N * D];
	online o;
	const float T = 3.0f;

	(void)state;
	make_teacher("t.safetensors", K, &m);
	assert_int_equal(sl_mlp_ws_new(m, 1, &ws), 0);
	for (size_t i = 0; i < N; i++)
		idx[i] = (i * 37 + 11) % N; /* a shuffled batch */
	assert_int_equal(online_open(&o, tpath("t.safetensors"), ds, N, K, T), 0);
	assert_int_equal(o.chunk, ONLINE_MAX_CHUNK);
	memset(has, 0, sizeof has);
	assert_int_equal(online_targets(&o, ds, idx, NULL, N, p, has), 0);
	for (size_t j = 0; j < N; j++) {
		const float *z;
		double mx = -INFINITY, sum = 0, e[K];

		assert_int_equal(has[j], 1);
		sl_dataset_rows_f32(ds, idx + j, 0, 1, &pre, x);
		z = sl_mlp_forward(m, ws, x, 1, 0.0f, NULL);
		for (int c = 0; c < K; c++)
			mx = fmax(mx, (double)(z[c] / T));
		for (int c = 0; c < K; c++)
			sum += e[c] = exp((double)(z[c] / T) - mx);
		for (int c = 0; c < K; c++)
			assert_true(fabs((double)p[j * K + c] - e[c] / sum) < 1e-6);
	}
	/* The same rows handed over raw (the views path): the same bytes. */
	for (size_t j = 0; j < N; j++)
		memcpy(raw + j * D, rows_u8 + idx[j] * D, D);
	assert_int_equal(online_targets(&o, ds, idx, raw, N, q, has2), 0);
	assert_memory_equal(p, q, sizeof p);
	assert_memory_equal(has, has2, sizeof has);
	online_close(&o);
	sl_mlp_ws_free(&ws);
	sl_mlp_free(&m);
	sl_dataset_close(&ds);
}

static void
test_refusals(void **state)
{
	sl_dataset *ds = make_ds();
	sl_mlp *m = NULL;
	online o;
	FILE *f;

	(void)state;
	make_teacher("t3.safetensors", 3, &m);
	assert_int_equal(online_open(&o, tpath("t3.safetensors"), ds, 64, K, 4.0f),
	    SL_EINVAL);
	online_close(&o);
	f = fopen(tpath("junk.onnx"), "wb");
	assert_non_null(f);
	fputs("not a model", f);
	fclose(f);
	assert_int_not_equal(online_open(&o, tpath("junk.onnx"), ds, 64, K, 4.0f), 0);
	online_close(&o);
	sl_mlp_free(&m);
	sl_dataset_close(&ds);
}

static int
cleanup(void **state)
{
	const char *names[] = { "x.npy", "t.safetensors", "t3.safetensors",
		"junk.onnx" };

	(void)state;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		unlink(tpath(names[i]));
	return rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_targets),
		cmocka_unit_test(test_refusals),
	};

	if (mkdtemp(dir) == NULL)
		return 1;
	return cmocka_run_group_tests(tests, NULL, cleanup);
}

/* bench_reader - figures, not thresholds; driven by bench_serve.sh (it
 * needs a running `softlabel serve`), not run bare by make bench.
 *
 *   bench_reader make DIR ROWS        a synthetic cache: one teacher "b",
 *                                     10-class f32 records (52 bytes),
 *                                     shards of 10000 rows, all done
 *   bench_reader read DIR EP ROUNDS   samples/s delivered through
 *                                     sl_reader from DIR (local) and from
 *                                     EP (softlabel serve on DIR)
 *
 * Two read patterns, each over every row: "range" walks the teacher's
 * records in order (what sl_target_build does), "batches" asks for lists
 * of 1024 samples in a shuffled order (what a per-batch gather does).
 * Local and remote run alternately for ROUNDS rounds; the median round of
 * each is printed with the ratio remote / local. A read that delivers a
 * wrong count fails (exit 1): the figure is of a correct read. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sl_label.h"
#include "sl_reader.h"
#include "sl_rng.h"
#include "sl_store.h"

#define C 10
#define REC (12 + 4 * C)
#define SHARD 10000
#define BATCH 1024
#define MAX_ROUNDS 15

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int
make(const char *dir, uint64_t rows)
{
	sl_store_opts o = { 0, 1, 0, NULL };
	const sl_label_fmt fmt = { SL_ENC_F32, C, 0 };
	static uint8_t buf[SHARD * REC];
	sl_store_teacher t;
	sl_store_job j;
	sl_store *s = NULL;
	sl_errmsg why = { "" };
	float z[C], scratch[2 * C];
	int rc;

	memset(&j, 0, sizeof j);
	snprintf(j.dataset_path, sizeof j.dataset_path, "synthetic");
	j.dataset.rows = rows;
	j.dataset.ndim = 2;
	j.dataset.shape[0] = rows;
	j.dataset.shape[1] = 1;
	j.dataset.dtype = SL_DTYPE_U8;
	j.shard_rows = SHARD;
	memset(&t, 0, sizeof t);
	strcpy(t.name, "b");
	memset(t.model_sha256, 'e', 64);
	t.temperature = 2.0f;
	t.fmt = fmt;
	if ((rc = sl_store_open(dir, &o, &s, &why)) != 0 ||
	    (rc = sl_store_init_job(s, &j, &why)) != 0 ||
	    (rc = sl_store_register_teacher(s, &t, &why)) != 0)
		goto out;
	for (uint64_t sh = 0; sh * SHARD < rows && rc == 0; sh++) {
		const uint32_t n = (uint32_t)(rows - sh * SHARD < SHARD ?
		    rows - sh * SHARD : SHARD);
		sl_store_txn *txn = NULL;

		for (uint32_t i = 0; i < n; i++) {
			for (int k = 0; k < C; k++)
				z[k] = (float)((sh * SHARD + i + (uint64_t)k) % 7);
			sl_label_encode(&fmt, z, 2.0f, scratch, buf + i * REC);
		}
		if ((rc = sl_store_write_begin(s, &txn, &why)) == 0 &&
		    (rc = sl_store_put_shard(txn, t.index, sh, sh * SHARD, n,
		    buf, REC, "bench", 1, &why)) == 0)
			rc = sl_store_write_commit(&txn, &why);
		sl_store_write_abort(&txn);
	}
out:
	if (rc != 0)
		fprintf(stderr, "bench_reader make: %s\n", why.text);
	sl_store_close(&s);
	return rc != 0;
}

typedef struct sink {
	uint64_t n, sum;
} sink;

static int
count(void *arg, uint64_t sample, const void *rec, size_t len)
{
	sink *k = arg;

	k->n++;
	k->sum += sample + len + ((const uint8_t *)rec)[len - 1];
	return 0;
}

/* One pass of pattern over every row; samples/s, or -1 on a wrong read. */
static double
pass(sl_reader *r, int batches, const uint64_t *order, uint64_t rows)
{
	sink k = { 0, 0 };
	sl_errmsg why = { "" };
	const double t0 = now_s();
	int rc = 0;

	if (!batches)
		rc = sl_reader_each_label(r, 0, 0, rows, count, &k, &why);
	else
		for (uint64_t i = 0; i < rows && rc == 0; i += BATCH)
			rc = sl_reader_get_labels(r, 0, order + i,
			    rows - i < BATCH ? rows - i : BATCH, count, &k, &why);
	const double dt = now_s() - t0;

	if (rc != 0 || k.n != rows) {
		fprintf(stderr, "bench_reader: read %llu of %llu: %s\n",
		    (unsigned long long)k.n, (unsigned long long)rows, why.text);
		return -1;
	}
	return (double)rows / dt;
}

static int
cmp_d(const void *a, const void *b)
{
	const double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int
read_bench(const char *dir, const char *ep, int rounds)
{
	sl_reader *loc = NULL, *rem = NULL;
	sl_errmsg why = { "" };
	sl_store_job j;
	sl_rng g;
	double f[2][2][MAX_ROUNDS];
	uint64_t *order;
	int rc = 1;

	if (sl_reader_open(dir, NULL, &loc, &why) != 0 ||
	    sl_reader_open(ep, NULL, &rem, &why) != 0 ||
	    sl_reader_job(loc, &j, &why) != 0) {
		fprintf(stderr, "bench_reader: %s\n", why.text);
		goto out;
	}
	order = malloc(j.dataset.rows * sizeof *order);
	if (order == NULL)
		goto out;
	for (uint64_t i = 0; i < j.dataset.rows; i++)
		order[i] = i;
	sl_rng_seed(&g, 7);
	for (uint64_t i = j.dataset.rows - 1; i > 0; i--) {
		const uint64_t k = sl_rng_below(&g, i + 1), v = order[i];

		order[i] = order[k];
		order[k] = v;
	}
	for (int rd = 0; rd < rounds; rd++)
		for (int p = 0; p < 2; p++) {
			f[p][0][rd] = pass(loc, p, order, j.dataset.rows);
			f[p][1][rd] = pass(rem, p, order, j.dataset.rows);
			if (f[p][0][rd] < 0 || f[p][1][rd] < 0) {
				free(order);
				goto out;
			}
		}
	for (int p = 0; p < 2; p++) {
		qsort(f[p][0], (size_t)rounds, sizeof(double), cmp_d);
		qsort(f[p][1], (size_t)rounds, sizeof(double), cmp_d);
		const double l = f[p][0][rounds / 2], r = f[p][1][rounds / 2];

		printf("%-8s %llu rows of 10-class f32 records: local %.0f "
		    "samples/s, remote %.0f samples/s, remote/local %.3f%s\n",
		    p ? "batches" : "range", (unsigned long long)j.dataset.rows,
		    l, r, r / l, p ? " (lists of 1024 shuffled samples)" :
		    " (sample order)");
	}
	free(order);
	rc = 0;
out:
	sl_reader_close(&loc);
	sl_reader_close(&rem);
	return rc;
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "make") == 0)
		return make(argv[2], strtoull(argv[3], NULL, 10));
	if (argc == 5 && strcmp(argv[1], "read") == 0) {
		const int rounds = atoi(argv[4]);

		return read_bench(argv[2], argv[3], rounds < 1 ? 1 :
		    rounds > MAX_ROUNDS ? MAX_ROUNDS : rounds);
	}
	fprintf(stderr, "usage: bench_reader make DIR ROWS | read DIR EP ROUNDS\n");
	return 2;
}

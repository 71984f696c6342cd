/* test_target.c - sl_target: distillation targets from the logit cache.
 *
 * Each test that needs a cache gets a fresh mkdtemp directory (removed at
 * teardown) holding a real sl_store; records are made by sl_label_encode
 * from known logits and written with sl_store_put_shard. Every expected
 * value is computed here in double from the logits, never by calling the
 * code under test.
 *
 * Tolerances (stated where asserted):
 *  - dense f32 records: max |p - p_ref| <= 1e-6 at any T;
 *  - dense f16 records: each stored value v = z / T_stored moves by at most
 *    d = |v| * 2^-11 (half keeps 11 significant bits, round to nearest), so
 *    at T each probability moves by a factor within exp(+-2 d T_stored / T)
 *    (the row maximum and the normaliser each move by at most that much):
 *    |p - p_ref| <= p_ref * expm1(2 d_max T_stored / T) + 1e-6;
 *  - top-k at the stored T: kept classes are exp(f16(v) - lse), a factor
 *    within exp(+-d) of p_ref; the others share what the kept ones leave,
 *    so they are within (sum of kept errors) / (classes - k) of the
 *    reference share, plus 1e-6 for float.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sl_label.h"
#include "sl_rng.h"
#include "sl_store.h"
#include "sl_target.h"

#define C 10          /* classes of every test teacher */
#define MAXROWS 64

static char dir[64];

static int
rm_rf(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char sub[512];

	if (d == NULL)
		return unlink(path);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
		rm_rf(sub);
	}
	closedir(d);
	return rmdir(path);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/test_target.XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return rm_rf(dir);
}

/* ---- cache helpers ------------------------------------------------------ */

/* A store in path holding a job of `rows` rows cut in shards of
 * shard_rows, of rows first..end (end 0: all). */
static sl_store *
make_store_part(const char *path, uint64_t rows, uint32_t shard_rows,
    uint64_t first, uint64_t end)
{
	sl_store_opts o = { 0, 1, 0, NULL };
	sl_store *s = NULL;
	sl_store_job j;
	sl_errmsg why = { "" };
	int rc;

	if ((rc = sl_store_open(path, &o, &s, &why)) != 0)
		fail_msg("open %s: %d %s", path, rc, why.text);
	memset(&j, 0, sizeof j);
	snprintf(j.dataset_path, sizeof j.dataset_path, "/data/x.npy");
	j.dataset.rows = rows;
	j.dataset.ndim = 2;
	j.dataset.shape[0] = rows;
	j.dataset.shape[1] = 4;
	j.dataset.dtype = SL_DTYPE_U8;
	for (int i = 0; i < 32; i++)
		j.dataset.sha256[i] = (uint8_t)(i * 5 + 3);
	j.shard_rows = shard_rows;
	j.rows_first = first;
	j.rows_end = end;
	if ((rc = sl_store_init_job(s, &j, &why)) != 0)
		fail_msg("init_job: %d %s", rc, why.text);
	return s;
}

/* A store in dir holding a job of `rows` rows cut in shards of shard_rows. */
static sl_store *
make_store(uint64_t rows, uint32_t shard_rows)
{
	return make_store_part(dir, rows, shard_rows, 0, 0);
}

static sl_store_teacher
add_teacher(sl_store *s, const char *name, float T, enum sl_encoding enc,
    uint16_t k)
{
	sl_store_teacher t;
	sl_errmsg why = { "" };
	int rc;

	memset(&t, 0, sizeof t);
	snprintf(t.name, sizeof t.name, "%s", name);
	memset(t.model_sha256, 'b', 64);
	t.temperature = T;
	t.fmt.encoding = enc;
	t.fmt.classes = C;
	t.fmt.k = k;
	if ((rc = sl_store_register_teacher(s, &t, &why)) != 0)
		fail_msg("register %s: %d %s", name, rc, why.text);
	return t;
}

/* Encode rows first..first+n of z (rows, C) for teacher t and commit them
 * as shard `shard`. bad_row (or UINT64_MAX) gets one payload byte flipped
 * after encoding, so its CRC no longer holds. */
static void
put_shard(sl_store *s, const sl_store_teacher *t, uint64_t shard,
    uint64_t first, uint32_t n, const float *z, uint64_t bad_row)
{
	const size_t sz = sl_label_size(&t->fmt);
	uint8_t *buf = malloc(sz * n);
	float scratch[2 * C];
	sl_store_txn *txn = NULL;
	sl_errmsg why = { "" };
	int rc;

	assert_non_null(buf);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *rec = buf + sz * i;

		assert_int_equal(sl_label_encode(&t->fmt, z + (first + i) * C,
		    t->temperature, scratch, rec), 0);
		assert_int_equal(sl_label_check(rec, sz, &t->fmt, NULL, NULL), 0);
		if (first + i == bad_row) {
			rec[SL_LABEL_HEADER_BYTES + 1] ^= 0x40;
			assert_int_equal(sl_label_check(rec, sz, &t->fmt, NULL,
			    NULL), SL_ECORRUPT);
		}
	}
	if ((rc = sl_store_write_begin(s, &txn, &why)) != 0 ||
	    (rc = sl_store_put_shard(txn, t->index, shard, first, n, buf, sz,
	    "w", 1, &why)) != 0 ||
	    (rc = sl_store_write_commit(&txn, &why)) != 0)
		fail_msg("put shard %llu: %d %s", (unsigned long long)shard, rc,
		    why.text);
	free(buf);
}

/* Every shard of a job of `rows` rows, for teacher t. */
static void
put_all(sl_store *s, const sl_store_teacher *t, uint64_t rows,
    uint32_t shard_rows, const float *z)
{
	for (uint64_t first = 0, sh = 0; first < rows; first += shard_rows, sh++)
		put_shard(s, t, sh, first, (uint32_t)(rows - first < shard_rows ?
		    rows - first : shard_rows), z, UINT64_MAX);
}

static void
quarantine(sl_store *s, const sl_store_teacher *t, uint64_t shard)
{
	sl_store_txn *txn = NULL;
	sl_errmsg why = { "" };
	int rc;

	if ((rc = sl_store_write_begin(s, &txn, &why)) != 0 ||
	    (rc = sl_store_put_quarantine(txn, t->index, shard, 3, "nan",
	    &why)) != 0 ||
	    (rc = sl_store_write_commit(&txn, &why)) != 0)
		fail_msg("quarantine: %d %s", rc, why.text);
}

static sl_reader *
read_txn(sl_store *s)
{
	sl_reader *txn = NULL;
	sl_errmsg why = { "" };
	int rc = sl_reader_from_store(s, &txn, &why);

	if (rc != 0)
		fail_msg("read_begin: %d %s", rc, why.text);
	return txn;
}

/* ---- references (double, independent of the library) -------------------- */

static void
random_logits(uint64_t seed, float *z, size_t n, float scale)
{
	sl_rng r;

	sl_rng_seed(&r, seed);
	for (size_t i = 0; i < n; i++)
		z[i] = (2.0f * sl_rng_float(&r) - 1.0f) * scale;
}

/* softmax(z / T) over C classes. */
static void
ref_softmax(const float *z, double T, double *p)
{
	double m = -(double)INFINITY, s = 0.0;

	for (int i = 0; i < C; i++)
		if ((double)z[i] / T > m)
			m = (double)z[i] / T;
	for (int i = 0; i < C; i++)
		s += (p[i] = exp((double)z[i] / T - m));
	for (int i = 0; i < C; i++)
		p[i] /= s;
}

static int
ref_argmax(const double *p)
{
	int b = 0;

	for (int i = 1; i < C; i++)
		if (p[i] > p[b])
			b = i;
	return b;
}

/* conf and top of a target set row against a reference distribution at
 * T = 1: conf within tol of the max, top a class whose reference is the
 * max (within tol: two classes that close may come out either way). */
static void
check_conf_top(const sl_target_set *t, uint64_t s, const double *ref1,
    double tol)
{
	const int b = ref_argmax(ref1);

	assert_true(fabs((double)t->conf[s] - ref1[b]) <= tol);
	assert_true(t->top[s] >= 0 && t->top[s] < C);
	assert_true(ref1[t->top[s]] >= ref1[b] - tol);
}

static const uint8_t ALL[4 * 16] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
};

static void
build_ok(sl_target_set *t, sl_reader *txn, const sl_store_teacher *tt,
    const float *w, int n, uint32_t shard_rows, uint64_t nshards,
    const uint8_t *mask, float T, int skip)
{
	sl_errmsg why = { "" };
	int rc = sl_target_build(t, txn, tt, w, n, shard_rows, nshards, mask, T,
	    skip, &why);

	if (rc != 0)
		fail_msg("build: %d %s", rc, why.text);
}

/* ---- 1. re-softening ---------------------------------------------------- */

#define RROWS 12 /* three shards of 5: the last one holds 2 rows */
#define RSHARD 5
#define RNSH 3

static const float temps[] = { 1.0f, 2.0f, 4.0f, 8.0f };

static void
test_resoften_f32(void **state)
{
	static float z[RROWS * C];
	sl_store *s;
	sl_store_teacher t;
	sl_reader *txn;
	sl_target_set ts;
	double ref[C], ref1[C];

	(void)state;
	random_logits(1, z, RROWS * C, 12.0f);
	s = make_store(RROWS, RSHARD);
	t = add_teacher(s, "big", 4.0f, SL_ENC_F32, 0);
	put_all(s, &t, RROWS, RSHARD, z);
	txn = read_txn(s);
	assert_int_equal(sl_target_init(&ts, RROWS, C), 0);
	for (size_t ti = 0; ti < sizeof temps / sizeof temps[0]; ti++) {
		double maxerr = 0.0;

		build_ok(&ts, txn, &t, NULL, 1, RSHARD, RNSH, ALL, temps[ti], 0);
		assert_int_equal(ts.nhas, RROWS);
		assert_int_equal(ts.corrupt, 0);
		for (uint64_t r = 0; r < RROWS; r++) {
			assert_int_equal(ts.has[r], 1);
			ref_softmax(z + r * C, (double)temps[ti], ref);
			for (int k = 0; k < C; k++) {
				const double e = fabs((double)ts.p[r * C + k] - ref[k]);

				if (e > maxerr)
					maxerr = e;
			}
			ref_softmax(z + r * C, 1.0, ref1);
			check_conf_top(&ts, r, ref1, 1e-6);
		}
		if (!(maxerr <= 1e-6))
			fail_msg("f32 at T=%g: max error %g > 1e-6",
			    (double)temps[ti], maxerr);
	}
	sl_target_fini(&ts);
	sl_reader_close(&txn);
	sl_store_close(&s);
}

static void
test_resoften_f16(void **state)
{
	static float z[RROWS * C];
	const double Ts = 4.0;
	sl_store *s;
	sl_store_teacher t;
	sl_reader *txn;
	sl_target_set ts;
	double ref[C];

	(void)state;
	random_logits(2, z, RROWS * C, 12.0f);
	s = make_store(RROWS, RSHARD);
	t = add_teacher(s, "half", (float)Ts, SL_ENC_F16, 0);
	put_all(s, &t, RROWS, RSHARD, z);
	txn = read_txn(s);
	assert_int_equal(sl_target_init(&ts, RROWS, C), 0);
	for (size_t ti = 0; ti < sizeof temps / sizeof temps[0]; ti++) {
		const double T = (double)temps[ti];

		build_ok(&ts, txn, &t, NULL, 1, RSHARD, RNSH, ALL, temps[ti], 0);
		assert_int_equal(ts.nhas, RROWS);
		for (uint64_t r = 0; r < RROWS; r++) {
			double dmax = 0.0, sum = 0.0;

			for (int k = 0; k < C; k++) {
				const double d = fabs((double)z[r * C + k] / Ts) *
				    ldexp(1.0, -11);

				if (d > dmax)
					dmax = d;
			}
			ref_softmax(z + r * C, T, ref);
			for (int k = 0; k < C; k++) {
				const double p = (double)ts.p[r * C + k];
				const double tol = ref[k] * expm1(2.0 * dmax * Ts / T) +
				    1e-6;

				sum += p;
				if (!(fabs(p - ref[k]) <= tol))
					fail_msg("f16 T=%g row %llu class %d: %.9g vs "
					    "%.9g (tol %g)", T, (unsigned long long)r, k,
					    p, ref[k], tol);
			}
			assert_true(fabs(sum - 1.0) <= 1e-5);
			/* The tolerance must not be vacuous: half precision on
			 * values up to 3 gives under 1.2% at T = 1. */
			assert_true(expm1(2.0 * dmax * Ts) < 0.012);
		}
	}
	sl_target_fini(&ts);
	sl_reader_close(&txn);
	sl_store_close(&s);
}

static void
test_topk_stored_T(void **state)
{
	static float z[RROWS * C];
	const double Ts = 4.0;
	sl_store *s;
	sl_store_teacher t;
	sl_reader *txn;
	sl_target_set ts;
	double ref[C];

	(void)state;
	random_logits(3, z, RROWS * C, 12.0f);
	s = make_store(RROWS, RSHARD);
	t = add_teacher(s, "topk", (float)Ts, SL_ENC_TOPK, 3);
	put_all(s, &t, RROWS, RSHARD, z);
	txn = read_txn(s);
	assert_int_equal(sl_target_init(&ts, RROWS, C), 0);
	build_ok(&ts, txn, &t, NULL, 1, RSHARD, RNSH, ALL, (float)Ts, 0);
	assert_int_equal(ts.nhas, RROWS);
	for (uint64_t r = 0; r < RROWS; r++) {
		const float *zr = z + r * C;
		int kept[C] = { 0 }, first_rest = -1;
		double kept_ref = 0.0, kept_err = 0.0, sum = 0.0;

		/* The 3 largest logits, ties to the lower class. */
		for (int j = 0; j < 3; j++) {
			int b = -1;

			for (int k = 0; k < C; k++)
				if (!kept[k] && (b < 0 || zr[k] > zr[b]))
					b = k;
			kept[b] = 1;
		}
		ref_softmax(zr, Ts, ref);
		for (int k = 0; k < C; k++) {
			const double p = (double)ts.p[r * C + k];

			sum += p;
			if (!kept[k])
				continue;
			const double d = fabs((double)zr[k] / Ts) * ldexp(1.0, -11);
			const double tol = ref[k] * expm1(d) + 1e-6;

			kept_ref += ref[k];
			kept_err += tol;
			if (!(fabs(p - ref[k]) <= tol))
				fail_msg("topk row %llu kept class %d: %.9g vs %.9g",
				    (unsigned long long)r, k, p, ref[k]);
		}
		const double share = (1.0 - kept_ref) / (C - 3);
		for (int k = 0; k < C; k++) {
			const double p = (double)ts.p[r * C + k];

			if (kept[k])
				continue;
			if (first_rest < 0)
				first_rest = k;
			/* Evenly: the same float for every unkept class. */
			assert_true(ts.p[r * C + k] == ts.p[r * C + first_rest]);
			if (!(fabs(p - share) <= kept_err / (C - 3) + 1e-6))
				fail_msg("topk row %llu class %d: %.9g vs share %.9g",
				    (unsigned long long)r, k, p, share);
		}
		assert_true(fabs(sum - 1.0) <= 1e-5);
		/* At T = 1 the committee class is the top logit. */
		int b = 0;
		for (int k = 1; k < C; k++)
			if (zr[k] > zr[b])
				b = k;
		assert_int_equal(ts.top[r], b);
	}
	sl_target_fini(&ts);
	sl_reader_close(&txn);
	sl_store_close(&s);
}

/* ---- 2. committee means -------------------------------------------------- */

static void
check_committee(const sl_target_set *ts, const float *za, const float *zb,
    double wa, double wb, double T)
{
	double pa[C], pb[C], m[C];

	for (uint64_t r = 0; r < RROWS; r++) {
		ref_softmax(za + r * C, T, pa);
		ref_softmax(zb + r * C, T, pb);
		for (int k = 0; k < C; k++) {
			const double want = (wa * pa[k] + wb * pb[k]) / (wa + wb);

			if (!(fabs((double)ts->p[r * C + k] - want) <= 1e-6))
				fail_msg("committee (%g,%g) T=%g row %llu class %d: "
				    "%.9g vs %.9g", wa, wb, T, (unsigned long long)r, k,
				    (double)ts->p[r * C + k], want);
		}
		ref_softmax(za + r * C, 1.0, pa);
		ref_softmax(zb + r * C, 1.0, pb);
		for (int k = 0; k < C; k++)
			m[k] = (wa * pa[k] + wb * pb[k]) / (wa + wb);
		check_conf_top(ts, r, m, 1e-6);
	}
}

static void
test_committee(void **state)
{
	static float za[RROWS * C], zb[RROWS * C];
	sl_store *s;
	sl_store_teacher tt[2];
	sl_reader *txn;
	sl_target_set ts, ts2;
	const float w13[2] = { 1.0f, 3.0f }, w26[2] = { 2.0f, 6.0f };

	(void)state;
	random_logits(4, za, RROWS * C, 10.0f);
	random_logits(5, zb, RROWS * C, 6.0f);
	s = make_store(RROWS, RSHARD);
	tt[0] = add_teacher(s, "a", 2.0f, SL_ENC_F32, 0);
	tt[1] = add_teacher(s, "b", 5.0f, SL_ENC_F32, 0);
	put_all(s, &tt[0], RROWS, RSHARD, za);
	put_all(s, &tt[1], RROWS, RSHARD, zb);
	txn = read_txn(s);
	assert_int_equal(sl_target_init(&ts, RROWS, C), 0);
	assert_int_equal(sl_target_init(&ts2, RROWS, C), 0);
	for (size_t ti = 0; ti < sizeof temps / sizeof temps[0]; ti++) {
		build_ok(&ts, txn, tt, w13, 2, RSHARD, RNSH, ALL, temps[ti], 0);
		assert_int_equal(ts.nhas, RROWS);
		check_committee(&ts, za, zb, 1.0, 3.0, (double)temps[ti]);
		/* Weights are normalised: (2, 6) is (1, 3). */
		build_ok(&ts2, txn, tt, w26, 2, RSHARD, RNSH, ALL, temps[ti], 0);
		for (size_t i = 0; i < (size_t)RROWS * C; i++)
			assert_true(fabs((double)ts.p[i] - (double)ts2.p[i]) <= 1e-7);
		build_ok(&ts, txn, tt, NULL, 2, RSHARD, RNSH, ALL, temps[ti], 0);
		check_committee(&ts, za, zb, 1.0, 1.0, (double)temps[ti]);
	}
	/* A zero weight (the trainer's --teacher-weights allows it) leaves
	 * that teacher out of the mean: b alone. */
	{
		const float w01[2] = { 0.0f, 1.0f };

		build_ok(&ts, txn, tt, w01, 2, RSHARD, RNSH, ALL, 3.0f, 0);
		assert_int_equal(ts.nhas, RROWS);
		check_committee(&ts, za, zb, 0.0, 1.0, 3.0);
	}
	sl_target_fini(&ts);
	sl_target_fini(&ts2);
	sl_reader_close(&txn);
	sl_store_close(&s);
}

/* ---- 3. coverage --------------------------------------------------------- */

#define VROWS 20
#define VSHARD 5
#define VNSH 4

static void
test_coverage(void **state)
{
	static float za[VROWS * C], zb[VROWS * C];
	sl_store *s;
	sl_store_teacher tt[2];
	sl_reader *txn;
	sl_target_set ts;
	uint8_t mask[2 * VNSH + 8], want_has[VROWS];
	sl_errmsg why = { "" };
	double pa[C], pb[C];

	(void)state;
	random_logits(6, za, VROWS * C, 8.0f);
	random_logits(7, zb, VROWS * C, 8.0f);
	s = make_store(VROWS, VSHARD);
	tt[0] = add_teacher(s, "a", 1.0f, SL_ENC_F32, 0);
	tt[1] = add_teacher(s, "b", 3.0f, SL_ENC_F32, 0);
	put_all(s, &tt[0], VROWS, VSHARD, za);
	/* b: shard 0 done, 1 pending, 2 written then quarantined (its
	 * records stay in the cache), 3 done. */
	put_shard(s, &tt[1], 0, 0, VSHARD, zb, UINT64_MAX);
	put_shard(s, &tt[1], 2, 10, VSHARD, zb, UINT64_MAX);
	quarantine(s, &tt[1], 2);
	put_shard(s, &tt[1], 3, 15, VSHARD, zb, UINT64_MAX);
	txn = read_txn(s);

	memset(mask, 0xee, sizeof mask);
	assert_int_equal(sl_target_mask_done(txn, tt, 2, VNSH, mask, &why), 0);
	{
		const uint8_t want[2 * VNSH] = { 1, 1, 1, 1, 1, 0, 0, 1 };

		assert_memory_equal(mask, want, sizeof want);
		for (size_t i = 2 * VNSH; i < sizeof mask; i++)
			assert_int_equal(mask[i], 0xee); /* no write past */
	}
	/* A smaller nshards ignores the shards past it. */
	memset(mask, 0xee, sizeof mask);
	assert_int_equal(sl_target_mask_done(txn, tt, 2, 2, mask, &why), 0);
	{
		const uint8_t want[4] = { 1, 1, 1, 0 };

		assert_memory_equal(mask, want, sizeof want);
		assert_int_equal(mask[4], 0xee);
	}

	assert_int_equal(sl_target_init(&ts, VROWS, C), 0);
	assert_int_equal(sl_target_mask_done(txn, tt, 2, VNSH, mask, &why), 0);
	build_ok(&ts, txn, tt, NULL, 2, VSHARD, VNSH, mask, 2.0f, 0);
	for (int r = 0; r < VROWS; r++)
		want_has[r] = r < 5 || r >= 15;
	assert_memory_equal(ts.has, want_has, VROWS);
	assert_int_equal(ts.nhas, 10);
	for (int r = 0; r < VROWS; r++) {
		if (!ts.has[r]) {
			assert_true(ts.conf[r] == 0.0f);
			continue;
		}
		ref_softmax(za + r * C, 2.0, pa);
		ref_softmax(zb + r * C, 2.0, pb);
		for (int k = 0; k < C; k++)
			assert_true(fabs((double)ts.p[r * C + k] -
			    0.5 * (pa[k] + pb[k])) <= 1e-6);
	}

	/* Masking out a's shard 3 by hand: rows 15..19 lose their target
	 * although both teachers have records there. */
	mask[3] = 0;
	build_ok(&ts, txn, tt, NULL, 2, VSHARD, VNSH, mask, 2.0f, 0);
	for (int r = 0; r < VROWS; r++)
		want_has[r] = r < 5;
	assert_memory_equal(ts.has, want_has, VROWS);
	assert_int_equal(ts.nhas, 5);

	/* The mask decides, not the state: b's quarantined shard 2 still
	 * holds records, and setting it gives rows 10..14 (b alone). */
	{
		const uint8_t mb[VNSH] = { 0, 0, 1, 0 };

		build_ok(&ts, txn, &tt[1], NULL, 1, VSHARD, VNSH, mb, 1.0f, 0);
		for (int r = 0; r < VROWS; r++)
			want_has[r] = r >= 10 && r < 15;
		assert_memory_equal(ts.has, want_has, VROWS);
		assert_int_equal(ts.nhas, 5);
		for (int r = 10; r < 15; r++) {
			ref_softmax(zb + r * C, 1.0, pb);
			for (int k = 0; k < C; k++)
				assert_true(fabs((double)ts.p[r * C + k] - pb[k]) <=
				    1e-6);
		}
	}
	/* a alone, everything: every row. */
	build_ok(&ts, txn, tt, NULL, 1, VSHARD, VNSH, ALL, 1.0f, 0);
	assert_int_equal(ts.nhas, VROWS);

	/* The mask follows the transaction's snapshot: b's shard 1 committed
	 * now is invisible until the reader refreshes. */
	put_shard(s, &tt[1], 1, 5, VSHARD, zb, UINT64_MAX);
	assert_int_equal(sl_target_mask_done(txn, tt, 2, VNSH, mask, &why), 0);
	assert_int_equal(mask[VNSH + 1], 0);
	assert_int_equal(sl_reader_refresh(txn, &why), 0);
	assert_int_equal(sl_target_mask_done(txn, tt, 2, VNSH, mask, &why), 0);
	{
		const uint8_t want[2 * VNSH] = { 1, 1, 1, 1, 1, 1, 0, 1 };

		assert_memory_equal(mask, want, sizeof want);
	}
	build_ok(&ts, txn, tt, NULL, 2, VSHARD, VNSH, mask, 2.0f, 0);
	assert_int_equal(ts.nhas, 15);
	assert_int_equal(ts.has[7], 1);
	assert_int_equal(ts.has[12], 0);

	sl_target_fini(&ts);
	sl_reader_close(&txn);
	sl_store_close(&s);
}

/* ---- 4. corrupt records --------------------------------------------------- */

static void
test_corrupt(void **state)
{
	static float za[RROWS * C], zb[RROWS * C];
	sl_store *s;
	sl_store_teacher tt[2];
	sl_reader *txn;
	sl_target_set ts;
	sl_errmsg why = { "" };
	uint8_t mask[2 * RNSH];
	double pa[C];

	(void)state;
	random_logits(8, za, RROWS * C, 8.0f);
	random_logits(9, zb, RROWS * C, 8.0f);
	s = make_store(RROWS, RSHARD);
	tt[0] = add_teacher(s, "good", 2.0f, SL_ENC_F32, 0);
	tt[1] = add_teacher(s, "flaky", 2.0f, SL_ENC_F16, 0);
	put_all(s, &tt[0], RROWS, RSHARD, za);
	put_shard(s, &tt[1], 0, 0, RSHARD, zb, UINT64_MAX);
	put_shard(s, &tt[1], 1, 5, RSHARD, zb, 7); /* row 7: bad CRC */
	put_shard(s, &tt[1], 2, 10, 2, zb, UINT64_MAX);
	txn = read_txn(s);
	assert_int_equal(sl_target_init(&ts, RROWS, C), 0);

	/* Skipped: row 7 has no target, the rest are intact. */
	build_ok(&ts, txn, tt, NULL, 2, RSHARD, RNSH, ALL, 1.0f, 1);
	assert_int_equal(ts.corrupt, 1);
	assert_int_equal(ts.nhas, RROWS - 1);
	for (int r = 0; r < RROWS; r++)
		assert_int_equal(ts.has[r], r != 7);
	assert_true(ts.conf[7] == 0.0f);

	/* The good teacher alone still has row 7. */
	build_ok(&ts, txn, tt, NULL, 1, RSHARD, RNSH, ALL, 1.0f, 1);
	assert_int_equal(ts.corrupt, 0);
	assert_int_equal(ts.nhas, RROWS);
	ref_softmax(za + 7 * C, 1.0, pa);
	for (int k = 0; k < C; k++)
		assert_true(fabs((double)ts.p[7 * C + k] - pa[k]) <= 1e-6);

	/* A corrupt record in a masked-out shard is never read. */
	memset(mask, 1, sizeof mask);
	mask[RNSH + 1] = 0;
	build_ok(&ts, txn, tt, NULL, 2, RSHARD, RNSH, mask, 1.0f, 0);
	assert_int_equal(ts.corrupt, 0);
	assert_int_equal(ts.nhas, RROWS - RSHARD);

	/* Not skipped: the build fails naming the teacher and the sample. */
	assert_int_equal(sl_target_build(&ts, txn, tt, NULL, 2, RSHARD, RNSH,
	    ALL, 1.0f, 0, &why), SL_ECORRUPT);
	assert_non_null(strstr(why.text, "flaky"));
	assert_non_null(strstr(why.text, "sample 7"));

	sl_target_fini(&ts);
	sl_reader_close(&txn);
	sl_store_close(&s);
}

/* A top-k record's size does not depend on its classes: a record of 12
 * classes fits a 10-class teacher's shard byte for byte, passes its CRC,
 * and must still be refused (its probabilities would write 12 floats). */
static void
test_foreign_record(void **state)
{
	static float z[RROWS * C];
	float z12[12], scratch[24];
	sl_store *s;
	sl_store_teacher t;
	sl_reader *txn;
	sl_target_set ts;
	sl_label_fmt f12;
	uint8_t buf[RSHARD * 64];
	sl_errmsg why = { "" };
	size_t sz;

	(void)state;
	random_logits(11, z, RROWS * C, 8.0f);
	s = make_store(RROWS, RSHARD);
	t = add_teacher(s, "tk", 2.0f, SL_ENC_TOPK, 3);
	put_all(s, &t, RROWS, RSHARD, z);
	f12 = t.fmt;
	f12.classes = 12;
	sz = sl_label_size(&t.fmt);
	assert_int_equal(sl_label_size(&f12), sz);
	assert_true(sz * RSHARD <= sizeof buf);
	for (uint32_t i = 0; i < RSHARD; i++)
		assert_int_equal(sl_label_encode(&t.fmt, z + (5 + i) * C,
		    t.temperature, scratch, buf + sz * i), 0);
	for (int k = 0; k < 12; k++)
		z12[k] = k < C ? z[6 * C + k] : -20.0f; /* top 3 below 10 */
	assert_int_equal(sl_label_encode(&f12, z12, t.temperature, scratch,
	    buf + sz), 0);
	assert_int_equal(sl_label_check(buf + sz, sz, NULL, NULL, NULL), 0);
	{
		sl_store_txn *w = NULL;

		assert_int_equal(sl_store_write_begin(s, &w, &why), 0);
		assert_int_equal(sl_store_put_shard(w, t.index, 1, 5, RSHARD, buf,
		    sz, "w", 1, &why), 0);
		assert_int_equal(sl_store_write_commit(&w, &why), 0);
	}
	txn = read_txn(s);
	assert_int_equal(sl_target_init(&ts, RROWS, C), 0);
	build_ok(&ts, txn, &t, NULL, 1, RSHARD, RNSH, ALL, 1.0f, 1);
	assert_int_equal(ts.corrupt, 1);
	assert_int_equal(ts.nhas, RROWS - 1);
	assert_int_equal(ts.has[6], 0);
	assert_int_equal(sl_target_build(&ts, txn, &t, NULL, 1, RSHARD, RNSH,
	    ALL, 1.0f, 0, &why), SL_ECORRUPT);
	assert_non_null(strstr(why.text, "sample 6"));
	sl_target_fini(&ts);
	sl_reader_close(&txn);
	sl_store_close(&s);
}

/* ---- 5. selection --------------------------------------------------------- */

static uint64_t
count_keep(const uint8_t *keep, uint64_t n)
{
	uint64_t c = 0;

	for (uint64_t i = 0; i < n; i++)
		c += keep[i] != 0;
	return c;
}

/* Rows: has, conf, top. */
static void
fill_row(sl_target_set *t, uint64_t r, int has, float conf, int32_t top)
{
	t->has[r] = (uint8_t)has;
	t->conf[r] = conf;
	t->top[r] = top;
}

static void
test_select_by_hand(void **state)
{
	enum { N = 12 };
	sl_target_set t;
	uint8_t keep[N];
	uint64_t scratch[2 * N];
	/* rows 0..7 have labels (some -1); 8..11 are past nlabels. */
	const int32_t labels[8] = { 2, -1, 0, -1, -1, 1, -1, -1 };
	uint64_t n;

	(void)state;
	assert_int_equal(sl_target_init(&t, N, 3), 0);
	fill_row(&t, 0, 1, 0.10f, 0);  /* labeled, low conf: kept */
	fill_row(&t, 1, 1, 0.90f, 1);  /* unlabeled */
	fill_row(&t, 2, 0, 0.00f, 0);  /* labeled, no target: dropped */
	fill_row(&t, 3, 1, 0.40f, 1);  /* unlabeled, below 0.5 */
	fill_row(&t, 4, 1, 0.70f, 1);  /* unlabeled */
	fill_row(&t, 5, 1, 0.20f, 2);  /* labeled */
	fill_row(&t, 6, 1, 0.70f, 1);  /* unlabeled, ties row 4 */
	fill_row(&t, 7, 0, 0.00f, 2);  /* unlabeled, no target */
	fill_row(&t, 8, 1, 0.95f, 2);  /* past nlabels */
	fill_row(&t, 9, 1, 0.50f, 1);  /* exactly min_conf: kept */
	fill_row(&t, 10, 1, 0.80f, 2); /* past nlabels */
	fill_row(&t, 11, 1, 0.99f, 0); /* past nlabels */

	/* Threshold only. */
	{
		const uint8_t want[N] = { 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1 };

		n = sl_target_select(&t, labels, 8, 0.5f, 0, keep, scratch);
		assert_memory_equal(keep, want, N);
		assert_int_equal(n, 9);
		assert_int_equal(n, count_keep(keep, N));
	}
	/* No threshold: every row with a target. */
	{
		const uint8_t want[N] = { 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1 };

		n = sl_target_select(&t, labels, 8, 0.0f, 0, keep, scratch);
		assert_memory_equal(keep, want, N);
		assert_int_equal(n, count_keep(keep, N));
	}
	/* Balance 1 at 0.5: class 1 has 1 (0.9), 4, 6 (0.7), 9 (0.5) ->
	 * row 1; class 2 has 8 (0.95), 10 (0.8) -> row 8; class 0 has 11.
	 * Labeled rows 0 and 5 stay whatever their class. */
	{
		const uint8_t want[N] = { 1, 1, 0, 0, 0, 1, 0, 0, 1, 0, 0, 1 };

		n = sl_target_select(&t, labels, 8, 0.5f, 1, keep, scratch);
		assert_memory_equal(keep, want, N);
		assert_int_equal(n, 5);
		assert_int_equal(n, count_keep(keep, N));
	}
	/* Balance 2: class 1 keeps rows 1 and 4 (4 and 6 tie at 0.7: the
	 * lower row wins). */
	{
		const uint8_t want[N] = { 1, 1, 0, 0, 1, 1, 0, 0, 1, 0, 1, 1 };

		n = sl_target_select(&t, labels, 8, 0.5f, 2, keep, scratch);
		assert_memory_equal(keep, want, N);
		assert_int_equal(n, 7);
		assert_int_equal(n, count_keep(keep, N));
	}
	/* nlabels 0: every row is unlabeled; balance 1 per class. Class 0:
	 * 11 (0.99) beats 0 (0.1); class 1: row 1; class 2: row 8. */
	{
		const uint8_t want[N] = { 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1 };

		n = sl_target_select(&t, NULL, 0, 0.0f, 1, keep, scratch);
		assert_memory_equal(keep, want, N);
		assert_int_equal(n, 3);
	}
	/* Confidences closer than 2^-24 still rank: the more confident row
	 * wins over a lower row. A committee mean can also come out a float
	 * step above 1; it ranks first and stays in its class. */
	{
		const uint8_t want[N] = { 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0 };

		memset(t.has, 0, N);
		fill_row(&t, 2, 1, 0.25f, 1);
		fill_row(&t, 3, 1, nextafterf(0.25f, 1.0f), 1);
		fill_row(&t, 7, 1, 0.9f, 2);
		fill_row(&t, 10, 1, nextafterf(1.0f, 2.0f), 2);
		n = sl_target_select(&t, NULL, 0, 0.0f, 1, keep, scratch);
		assert_memory_equal(keep, want, N);
		assert_int_equal(n, 2);
	}
	sl_target_fini(&t);
}

/* Random sets against a brute-force reference: an unlabeled candidate is
 * kept when fewer than `balance` candidates of its class rank before it
 * (higher conf, or equal conf and lower row). */
static void
test_select_random(void **state)
{
	enum { N = 3000, K = 7 };
	sl_target_set t;
	static uint8_t keep[N], want[N];
	static uint64_t scratch[2 * N];
	static int32_t labels[N];
	static const float levels[] = { 0.2f, 0.35f, 0.5f, 0.6f, 0.75f, 0.9f };
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 42);
	assert_int_equal(sl_target_init(&t, N, K), 0);
	for (int round = 0; round < 4; round++) {
		const size_t nlabels = (size_t)sl_rng_below(&r, N);
		const float min_conf = round == 0 ? 0.0f : 0.5f;
		const uint64_t balance = (uint64_t)(round * 40 + 3);
		uint64_t nwant = 0;

		for (uint64_t i = 0; i < N; i++) {
			/* Few levels, so ties are common; some exact floats. */
			const float c = sl_rng_below(&r, 2) ?
			    levels[sl_rng_below(&r, 6)] : sl_rng_float(&r);

			fill_row(&t, i, sl_rng_below(&r, 10) != 0, c,
			    (int32_t)sl_rng_below(&r, K));
			labels[i] = sl_rng_below(&r, 4) == 0 ?
			    (int32_t)sl_rng_below(&r, K) : -1;
		}
		for (uint64_t i = 0; i < N; i++) {
			const int lab = i < nlabels && labels[i] >= 0;
			uint64_t before = 0;

			want[i] = 0;
			if (!t.has[i])
				continue;
			if (lab) {
				want[i] = 1;
				continue;
			}
			if (!((double)t.conf[i] >= (double)min_conf))
				continue;
			for (uint64_t j = 0; j < N; j++) {
				if (j == i || !t.has[j] || t.top[j] != t.top[i] ||
				    (j < nlabels && labels[j] >= 0) ||
				    !((double)t.conf[j] >= (double)min_conf))
					continue;
				if (t.conf[j] > t.conf[i] ||
				    (t.conf[j] == t.conf[i] && j < i))
					before++;
			}
			want[i] = before < balance;
		}
		for (uint64_t i = 0; i < N; i++)
			nwant += want[i];
		const uint64_t n = sl_target_select(&t, labels, nlabels, min_conf,
		    balance, keep, scratch);
		for (uint64_t i = 0; i < N; i++)
			if (keep[i] != want[i])
				fail_msg("round %d row %llu: keep %d want %d (conf %.9g "
				    "class %d)", round, (unsigned long long)i, keep[i],
				    want[i], (double)t.conf[i], t.top[i]);
		assert_int_equal(n, nwant);
		assert_int_equal(n, count_keep(keep, N));
	}
	sl_target_fini(&t);
}

/* ---- 6. error paths ------------------------------------------------------- */

static void
test_errors(void **state)
{
	static float z[RROWS * C];
	sl_store *s;
	sl_store_teacher tt[2];
	sl_reader *txn;
	sl_target_set ts, t5;
	sl_errmsg why = { "" };
	const float wz[2] = { 0.0f, 0.0f }, wneg[2] = { 1.0f, -1.0f },
	    wnan[2] = { NAN, 1.0f },
	    winf[2] = { INFINITY, 1.0f };
	const float badT[] = { 0.0f, -1.0f, -0.0f, NAN };

	(void)state;
	random_logits(10, z, RROWS * C, 5.0f);
	s = make_store(RROWS, RSHARD);
	tt[0] = add_teacher(s, "a", 2.0f, SL_ENC_F32, 0);
	tt[1] = add_teacher(s, "b", 2.0f, SL_ENC_F32, 0);
	put_all(s, &tt[0], RROWS, RSHARD, z);
	put_all(s, &tt[1], RROWS, RSHARD, z);
	txn = read_txn(s);
	assert_int_equal(sl_target_init(&ts, RROWS, C), 0);

	/* A student of 5 classes and teachers of 10. */
	assert_int_equal(sl_target_init(&t5, RROWS, 5), 0);
	assert_int_equal(sl_target_build(&t5, txn, tt, NULL, 2, RSHARD, RNSH,
	    ALL, 1.0f, 0, &why), SL_EMISMATCH);
	assert_non_null(strstr(why.text, "teacher a"));
	sl_target_fini(&t5);

	assert_int_equal(sl_target_build(&ts, txn, tt, wz, 2, RSHARD, RNSH, ALL,
	    1.0f, 0, &why), SL_EINVAL);
	assert_int_equal(sl_target_build(&ts, txn, tt, wneg, 2, RSHARD, RNSH,
	    ALL, 1.0f, 0, &why), SL_EINVAL);
	assert_int_equal(sl_target_build(&ts, txn, tt, wnan, 2, RSHARD, RNSH,
	    ALL, 1.0f, 0, &why), SL_EINVAL);
	assert_int_equal(sl_target_build(&ts, txn, tt, winf, 2, RSHARD, RNSH,
	    ALL, 1.0f, 0, &why), SL_EINVAL);
	for (size_t i = 0; i < sizeof badT / sizeof badT[0]; i++)
		assert_int_equal(sl_target_build(&ts, txn, tt, NULL, 2, RSHARD,
		    RNSH, ALL, badT[i], 0, &why), SL_EINVAL);
	assert_int_equal(sl_target_build(&ts, txn, tt, NULL, 0, RSHARD, RNSH,
	    ALL, 1.0f, 0, &why), SL_EINVAL);
	assert_int_equal(sl_target_build(&ts, txn, tt, NULL,
	    SL_TARGET_MAX_TEACHERS + 1, RSHARD, RNSH, ALL, 1.0f, 0, &why),
	    SL_EINVAL);
	assert_int_equal(sl_target_build(&ts, txn, tt, NULL, 2, 0, RNSH, ALL,
	    1.0f, 0, &why), SL_EINVAL);

	/* Huge finite weights still normalise to (1/2, 1/2). */
	{
		const float wbig[2] = { 3e38f, 3e38f };
		double p[C];

		build_ok(&ts, txn, tt, wbig, 2, RSHARD, RNSH, ALL, 1.0f, 0);
		ref_softmax(z, 1.0, p);
		for (int k = 0; k < C; k++)
			assert_true(fabs((double)ts.p[k] - p[k]) <= 1e-6);
	}

	/* init refuses a degenerate set and leaves it safe to fini. */
	assert_int_equal(sl_target_init(&t5, 0, C), SL_EINVAL);
	sl_target_fini(&t5);
	assert_int_equal(sl_target_init(&t5, 4, 1), SL_EINVAL);
	sl_target_fini(&t5);
	sl_target_fini(NULL);

	sl_target_fini(&ts);
	sl_reader_close(&txn);
	sl_store_close(&s);
}

/* ---- 7. the view against the in-memory set -------------------------------- */

/* The out-of-core view gives bit for bit what the in-memory set gives: a
 * committee of three encodings, a teacher missing shards, a corrupt record
 * skipped, a mask with a hole; logits on a coarse grid so that many rows
 * tie in confidence (the balance query's tie rule is exercised). Gathered
 * in shuffled batches, compared with memcmp; selections for several
 * min_conf and balance settings compared row for row. */
static void
test_view_matches_set(void **state)
{
	enum { N = 2000, SR = 100, NSH = 20 };
	static float za[N * C], zb[N * C], zc[N * C];
	static uint8_t mask[3 * NSH], keep_set[N], keep_view[N], has[64];
	static uint64_t scratch[2 * N];
	static int32_t labels[N];
	static size_t order[N];
	static float p[64 * C];
	static const float w3[3] = { 1.0f, 2.0f, 0.5f };
	static const struct { float min_conf; uint64_t balance; } sel[] = {
		{ 0.0f, 0 }, { 0.3f, 0 }, { 0.0f, 5 }, { 0.4f, 17 },
		{ 0.2f, 100000 }, { 0.95f, 1 },
	};
	sl_store *s;
	sl_store_teacher tt[3];
	sl_reader *txn;
	sl_target_set ts;
	sl_target_view v;
	sl_errmsg why = { "" };
	sl_rng r;

	(void)state;
	random_logits(21, za, N * C, 3.0f);
	random_logits(22, zb, N * C, 3.0f);
	random_logits(23, zc, N * C, 3.0f);
	for (size_t i = 0; i < (size_t)N * C; i++) { /* a coarse grid: ties */
		za[i] = roundf(za[i]);
		zb[i] = roundf(zb[i]);
		zc[i] = roundf(zc[i]);
	}
	s = make_store(N, SR);
	tt[0] = add_teacher(s, "a", 2.0f, SL_ENC_F32, 0);
	tt[1] = add_teacher(s, "b", 3.0f, SL_ENC_F16, 0);
	tt[2] = add_teacher(s, "c", 1.0f, SL_ENC_TOPK, 3);
	put_all(s, &tt[0], N, SR, za);
	put_all(s, &tt[2], N, SR, zc);
	for (uint64_t sh = 0; sh < NSH; sh++)
		if (sh != 3 && sh != 7)
			put_shard(s, &tt[1], sh, sh * SR, SR, zb,
			    sh == 5 ? 555 : UINT64_MAX);
	txn = read_txn(s);
	assert_int_equal(sl_target_mask_done(txn, tt, 3, NSH, mask, &why), 0);
	mask[2 * NSH + 11] = 0; /* a shard of c left out */
	assert_int_equal(sl_target_init(&ts, N, C), 0);
	assert_int_equal(sl_target_view_init(&v, N, C), 0);
	assert_int_equal(sl_target_view_gather(&v, order, 1, p, has, &why),
	    SL_EINVAL); /* nothing built yet */
	sl_rng_seed(&r, 7);
	for (int i = 0; i < N; i++) {
		labels[i] = sl_rng_below(&r, 3) == 0 ? (int32_t)sl_rng_below(&r, C)
		    : -1;
		order[i] = (size_t)i;
	}
	for (int round = 0; round < 4; round++) {
		const float T = round < 2 ? 1.0f : 4.0f;
		const float *w = round % 2 ? w3 : NULL;
		const int n = round == 3 ? 2 : 3;

		build_ok(&ts, txn, tt, w, n, SR, NSH, mask, T, 1);
		assert_int_equal(sl_target_view_build(&v, txn, tt, w, n, SR, NSH,
		    mask, T, 1, &why), 0);
		assert_int_equal(v.nhas, ts.nhas);
		assert_int_equal(v.corrupt, ts.corrupt);
		assert_memory_equal(v.has, ts.has, N);
		assert_true(ts.nhas > 0 && ts.nhas < N); /* holes and targets */
		/* Shuffled batches, as the trainer gathers them. */
		for (size_t i = N - 1; i > 0; i--) {
			size_t j = (size_t)sl_rng_below(&r, (uint32_t)i + 1), t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		for (size_t b = 0; b < N; b += 64) {
			const size_t nb = N - b < 64 ? N - b : 64;

			assert_int_equal(sl_target_view_gather(&v, order + b, nb, p,
			    has, &why), 0);
			for (size_t i = 0; i < nb; i++) {
				assert_int_equal(has[i], ts.has[order[b + i]]);
				if (has[i] && memcmp(p + i * C, ts.p + order[b + i] * C,
				    C * sizeof *p) != 0)
					fail_msg("round %d row %zu: gathered target differs",
					    round, order[b + i]);
			}
		}
		for (size_t k = 0; k < sizeof sel / sizeof sel[0]; k++) {
			const size_t nlabels = k % 2 ? N / 2 : N;
			uint64_t nv = 0;
			const uint64_t ns = sl_target_select(&ts, labels, nlabels,
			    sel[k].min_conf, sel[k].balance, keep_set, scratch);

			assert_int_equal(sl_target_view_select(&v, labels, nlabels,
			    sel[k].min_conf, sel[k].balance, keep_view, &nv, &why), 0);
			assert_int_equal(nv, ns);
			for (size_t i = 0; i < N; i++)
				if (keep_view[i] != keep_set[i])
					fail_msg("round %d selection %zu row %zu: view %d "
					    "set %d", round, k, i, keep_view[i], keep_set[i]);
		}
	}
	order[0] = N;
	assert_int_equal(sl_target_view_gather(&v, order, 1, p, has, &why),
	    SL_EINVAL);
	/* Not skipped, the corrupt record fails the build as in the set. */
	assert_int_equal(sl_target_view_build(&v, txn, tt, NULL, 3, SR, NSH,
	    mask, 1.0f, 0, &why), SL_ECORRUPT);
	assert_non_null(strstr(why.text, "teacher b sample 555"));
	sl_target_view_fini(&v);
	assert_int_equal(sl_target_view_init(&v, 0, C), SL_EINVAL);
	sl_target_view_fini(&v);
	sl_target_view_fini(NULL);
	sl_target_fini(&ts);
	sl_reader_close(&txn);
	sl_store_close(&s);
}

/* A job split in two caches (rows 0:300 and 300:500), read as one through
 * sl_target_view_build_parts, gives what one cache of every record gives;
 * a record planted outside a part's rows is not read. */
static void
test_view_parts(void **state)
{
	enum { N = 500, SR = 100, NSH = 5 };
	static float za[N * C];
	static uint8_t mask[NSH], has_one[N], has_two[N];
	static float p1[N * C], p2[N * C];
	static size_t rows[N];
	char pa[96], pb[96];
	sl_store *full, *a, *b;
	sl_store_teacher tf, ta, tb;
	sl_reader *tx, *txa, *txb;
	sl_target_view v1, v2;
	sl_target_part parts[2];
	sl_errmsg why = { "" };

	(void)state;
	random_logits(31, za, N * C, 5.0f);
	snprintf(pa, sizeof pa, "%s/a", dir);
	snprintf(pb, sizeof pb, "%s/b", dir);
	full = make_store(N, SR);
	a = make_store_part(pa, N, SR, 0, 300);
	b = make_store_part(pb, N, SR, 300, 0);
	tf = add_teacher(full, "t", 2.0f, SL_ENC_F16, 0);
	(void)add_teacher(b, "other", 1.0f, SL_ENC_F32, 0); /* index 0 in b */
	ta = add_teacher(a, "t", 2.0f, SL_ENC_F16, 0);
	tb = add_teacher(b, "t", 2.0f, SL_ENC_F16, 0);
	assert_int_equal(tb.index, 1);
	put_all(full, &tf, N, SR, za);
	for (uint64_t sh = 0; sh < NSH; sh++)
		put_shard(sh < 3 ? a : b, sh < 3 ? &ta : &tb, sh, sh * SR, SR, za,
		    UINT64_MAX);
	/* b also holds rows 0..99 and a rows 300..399, outside their ranges:
	 * they must not count (a row counted twice would lose its target). */
	put_shard(b, &tb, 0, 0, SR, za, UINT64_MAX);
	put_shard(a, &ta, 3, 300, SR, za, UINT64_MAX);
	tx = read_txn(full);
	txa = read_txn(a);
	txb = read_txn(b);
	memset(mask, 1, sizeof mask);
	mask[4] = 0; /* the last shard left out in both */
	assert_int_equal(sl_target_view_init(&v1, N, C), 0);
	assert_int_equal(sl_target_view_init(&v2, N, C), 0);
	assert_int_equal(sl_target_view_build(&v1, tx, &tf, NULL, 1, SR, NSH,
	    mask, 3.0f, 0, &why), 0);
	parts[0] = (sl_target_part){ txb, &tb, 300, N };
	parts[1] = (sl_target_part){ txa, &ta, 0, 300 };
	assert_int_equal(sl_target_view_build_parts(&v2, parts, 2, NULL, 1, SR,
	    NSH, mask, 3.0f, 0, &why), 0);
	assert_int_equal(v1.nhas, 400);
	assert_int_equal(v2.nhas, v1.nhas);
	for (size_t i = 0; i < N; i++)
		rows[i] = N - 1 - i;
	assert_int_equal(sl_target_view_gather(&v1, rows, N, p1, has_one, &why), 0);
	assert_int_equal(sl_target_view_gather(&v2, rows, N, p2, has_two, &why), 0);
	assert_memory_equal(has_one, has_two, N);
	for (size_t i = 0; i < N; i++)
		if (has_one[i])
			assert_memory_equal(p1 + i * C, p2 + i * C, C * sizeof *p1);
	assert_int_equal(sl_target_view_build_parts(&v2, parts, 0, NULL, 1, SR,
	    NSH, mask, 3.0f, 0, &why), SL_EINVAL);
	sl_target_view_fini(&v1);
	sl_target_view_fini(&v2);
	sl_reader_close(&tx);
	sl_reader_close(&txa);
	sl_reader_close(&txb);
	sl_store_close(&full);
	sl_store_close(&a);
	sl_store_close(&b);
}


/* ---- views -------------------------------------------------------------- */

#define VV 3 /* views of the views teacher */

/* Encode view `view` of rows first..first+n (logits zv ((rows * VV), C),
 * row s's view v at s * VV + v) and commit them as unit `unit`; bad_row
 * gets its CRC broken as in put_shard. */
static void
put_unit(sl_store *s, const sl_store_teacher *t, uint64_t unit,
    uint64_t first, uint32_t n, uint32_t view, const float *zv,
    uint64_t bad_row)
{
	const size_t sz = sl_label_size(&t->fmt);
	uint8_t *buf = malloc(sz * n);
	float scratch[2 * C];
	sl_store_txn *txn = NULL;
	sl_errmsg why = { "" };
	int rc;

	assert_non_null(buf);
	for (uint32_t i = 0; i < n; i++) {
		uint8_t *rec = buf + sz * i;

		assert_int_equal(sl_label_encode(&t->fmt,
		    zv + ((first + i) * VV + view) * C, t->temperature, scratch,
		    rec), 0);
		if (first + i == bad_row)
			rec[SL_LABEL_HEADER_BYTES + 1] ^= 0x40;
	}
	if ((rc = sl_store_write_begin(s, &txn, &why)) != 0 ||
	    (rc = sl_store_put_shard_view(txn, t->index, unit, first, n, view,
	    buf, sz, "w", 1, &why)) != 0 ||
	    (rc = sl_store_write_commit(&txn, &why)) != 0)
		fail_msg("put unit %llu: %d %s", (unsigned long long)unit, rc,
		    why.text);
	free(buf);
}

/* A teacher with views: the mask needs all V units of a shard, a row has
 * a target when all its views pass, and a gather returns the record of
 * (row, view) asked; a committee with a plain teacher takes view 0 only. */
static void
test_view_views(void **state)
{
	enum { N = 30, SR = 10, NSH = 3 };
	static float zv[N * VV * C], zp[N * C];
	static uint8_t mask[2 * NSH], has[N];
	static float p[N * C];
	const size_t rows[6] = { 0, 9, 3, 27, 20, 25 };
	const uint32_t views[6] = { 2, 0, 1, 1, 2, 0 };
	const uint32_t too_far[2] = { 0, VV };
	sl_store *s;
	sl_store_teacher tt[2];
	sl_reader *rd;
	sl_target_view v;
	sl_target_set ts;
	sl_errmsg why = { "" };
	double ref[C], ref2[C];

	(void)state;
	random_logits(31, zv, N * VV * C, 4.0f);
	random_logits(32, zp, N * C, 4.0f);
	s = make_store(N, SR);
	memset(&tt[0], 0, sizeof tt[0]);
	snprintf(tt[0].name, sizeof tt[0].name, "aug");
	memset(tt[0].model_sha256, 'c', 64);
	tt[0].temperature = 2.0f;
	tt[0].fmt.encoding = SL_ENC_F32;
	tt[0].fmt.classes = C;
	tt[0].views = VV;
	assert_int_equal(sl_view_recipe_parse("crop=4,flip", &tt[0].view_recipe,
	    &why), 0);
	tt[0].view_seed = 99;
	assert_int_equal(sl_store_register_teacher(s, &tt[0], &why), 0);
	tt[1] = add_teacher(s, "plain", 2.0f, SL_ENC_F32, 0);
	put_all(s, &tt[1], N, SR, zp);
	/* Shard 0: all views; shard 1: views 0 and 2 (view 1 pending);
	 * shard 2: all views, sample 25's view 1 corrupt. */
	for (uint32_t view = 0; view < VV; view++) {
		put_unit(s, &tt[0], 0 * VV + view, 0, SR, view, zv, UINT64_MAX);
		if (view != 1)
			put_unit(s, &tt[0], 1 * VV + view, SR, SR, view, zv,
			    UINT64_MAX);
		put_unit(s, &tt[0], 2 * VV + view, 2 * SR, SR, view, zv,
		    view == 1 ? 25 : UINT64_MAX);
	}
	rd = read_txn(s);
	assert_int_equal(sl_target_mask_done(rd, tt, 2, NSH, mask, &why), 0);
	assert_int_equal(mask[0], 1);
	assert_int_equal(mask[1], 0);
	assert_int_equal(mask[2], 1);
	assert_int_equal(mask[NSH + 1], 1);

	/* The in-memory set holds one record per row: refused. */
	assert_int_equal(sl_target_init(&ts, N, C), 0);
	assert_int_equal(sl_target_build(&ts, rd, tt, NULL, 1, SR, NSH, mask,
	    2.0f, 1, &why), SL_EUNSUPPORTED);
	assert_non_null(strstr(why.text, "teacher aug has 3 views"));
	sl_target_fini(&ts);

	assert_int_equal(sl_target_view_init(&v, N, C), 0);
	assert_int_equal(sl_target_view_build(&v, rd, tt, NULL, 1, SR, NSH,
	    mask, 2.0f, 0, &why), SL_ECORRUPT);
	assert_non_null(strstr(why.text, "sample 25 view 1"));
	assert_int_equal(sl_target_view_build(&v, rd, tt, NULL, 1, SR, NSH,
	    mask, 2.0f, 1, &why), 0);
	assert_int_equal(v.corrupt, 1);
	assert_int_equal(v.nhas, 19);
	for (uint64_t r = 0; r < N; r++)
		assert_int_equal(v.has[r], r < SR || (r >= 2 * SR && r != 25));

	/* At the stored T: each row's p is softmax(z / 2) of its view,
	 * within 1e-6 (dense f32). */
	assert_int_equal(sl_target_view_gather_views(&v, rows, views, 6, p, has,
	    &why), 0);
	for (int i = 0; i < 6; i++) {
		assert_int_equal(has[i], rows[i] != 25);
		if (!has[i])
			continue;
		ref_softmax(zv + (rows[i] * VV + views[i]) * C, 2.0, ref);
		for (int k = 0; k < C; k++)
			assert_true(fabs((double)p[i * C + k] - ref[k]) <= 1e-6);
	}
	/* NULL views: view 0 of every row. */
	assert_int_equal(sl_target_view_gather_views(&v, rows, NULL, 2, p, has,
	    &why), 0);
	ref_softmax(zv + (9 * VV + 0) * C, 2.0, ref);
	for (int k = 0; k < C; k++)
		assert_true(fabs((double)p[1 * C + k] - ref[k]) <= 1e-6);
	assert_int_equal(sl_target_view_gather_views(&v, rows, too_far, 2, p,
	    has, &why), SL_EINVAL);
	assert_non_null(strstr(why.text, "view 3 asked of teacher aug"));

	/* With the plain teacher: view 0 mixes both, another view is refused. */
	assert_int_equal(sl_target_view_build(&v, rd, tt, NULL, 2, SR, NSH,
	    mask, 2.0f, 1, &why), 0);
	assert_int_equal(v.nhas, 19);
	assert_int_equal(sl_target_view_gather_views(&v, rows, views, 6, p, has,
	    &why), SL_EINVAL);
	assert_non_null(strstr(why.text, "teacher plain, which has no views"));
	assert_int_equal(sl_target_view_gather(&v, rows, 6, p, has, &why), 0);
	ref_softmax(zv + (27 * VV + 0) * C, 2.0, ref);
	ref_softmax(zp + 27 * C, 2.0, ref2);
	for (int k = 0; k < C; k++)
		assert_true(fabs((double)p[3 * C + k] -
		    (0.5 * ref[k] + 0.5 * ref2[k])) <= 1e-6);
	sl_target_view_fini(&v);
	sl_reader_close(&rd);
	sl_store_close(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_resoften_f32, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_resoften_f16, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_topk_stored_T, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_committee, setup, teardown),
		cmocka_unit_test_setup_teardown(test_coverage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_record, setup,
		    teardown),
		cmocka_unit_test(test_select_by_hand),
		cmocka_unit_test(test_select_random),
		cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
		cmocka_unit_test_setup_teardown(test_view_matches_set, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_view_parts, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_view_views, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

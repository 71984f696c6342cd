/* test_store.c - sl_store: the logit cache on LMDB.
 *
 * Each test gets a fresh mkdtemp directory, removed at teardown. Corrupt
 * caches are made by writing bytes with raw LMDB calls while the store is
 * closed (one process must not open an environment twice). Stale readers
 * come from forked children that open the store themselves and die holding
 * a read transaction.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#include "sl_store.h"

#define REC 52 /* a 10-class f32 record: 12-byte header + 40 */

static char dir[64];

static const char *
tpath(const char *name)
{
	static char buf[4][256];
	static int next;
	char *p = buf[next++ % 4];

	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

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
	snprintf(dir, sizeof dir, "/tmp/test_store.XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return rm_rf(dir);
}

static sl_store *
open_store(const char *path, int readonly)
{
	sl_store_opts o = { readonly, 0, 0, NULL };
	sl_store *s = NULL;
	sl_errmsg why = { "" };
	int rc = sl_store_open(path, &o, &s, &why);

	if (rc != 0)
		fail_msg("open %s: %d %s", path, rc, why.text);
	return s;
}

static sl_store_job
sample_job(void)
{
	sl_store_job j;

	memset(&j, 0, sizeof j);
	snprintf(j.dataset_path, sizeof j.dataset_path, "/data/fmnist.npy");
	j.dataset.rows = 5000;
	j.dataset.ndim = 3;
	j.dataset.shape[0] = 5000;
	j.dataset.shape[1] = 28;
	j.dataset.shape[2] = 28;
	j.dataset.dtype = SL_DTYPE_U8;
	for (int i = 0; i < 32; i++)
		j.dataset.sha256[i] = (uint8_t)(i * 7 + 1);
	j.shard_rows = 1024;
	return j;
}

static sl_store_teacher
sample_teacher(const char *name)
{
	sl_store_teacher t;

	memset(&t, 0, sizeof t);
	snprintf(t.name, sizeof t.name, "%s", name);
	memset(t.model_sha256, 'a', 64);
	t.temperature = 4.0f;
	t.fmt.encoding = SL_ENC_F32;
	t.fmt.classes = 10;
	t.fmt.k = 0;
	return t;
}

/* n fake records for rows first.., each byte a function of (row, byte). */
static void
make_records(uint8_t *buf, uint64_t first, uint32_t n, uint8_t salt)
{
	for (uint32_t i = 0; i < n; i++)
		for (int b = 0; b < REC; b++)
			buf[(size_t)i * REC + (size_t)b] =
			    (uint8_t)((first + i) * 31u + (unsigned)b * 7u + salt);
}

/* Commit one shard of nrows rows for teacher. */
static int
commit_shard(sl_store *s, uint32_t teacher, uint64_t shard, uint64_t first,
    uint32_t nrows, uint8_t salt, sl_errmsg *why)
{
	static uint8_t recs[1024 * REC];
	sl_store_txn *t = NULL;
	int rc;

	make_records(recs, first, nrows, salt);
	if ((rc = sl_store_write_begin(s, &t, why)) != 0)
		return rc;
	rc = sl_store_put_shard(t, teacher, shard, first, nrows, recs, REC,
	    "w1", 1, why);
	if (rc != 0) {
		sl_store_write_abort(&t);
		return rc;
	}
	return sl_store_write_commit(&t, why);
}

/* Raw LMDB put into db of the cache in dir (the store must be closed). */
static void
raw_put(const char *db, const void *key, size_t klen, const void *val,
    size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_NOTLS, 0644), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* --- job ------------------------------------------------------------------ */

static void
test_job_roundtrip(void **state)
{
	sl_store_job j = sample_job(), got, other;
	sl_store *s = open_store(dir, 0);
	sl_store_txn *t = NULL;
	sl_errmsg why = { "" };

	(void)state;
	assert_int_equal(sl_store_get_job(s, &got, &why), SL_ENOTFOUND);
	assert_int_equal(sl_store_init_job(s, &j, &why), 0);
	sl_store_close(&s);
	assert_null(s);
	sl_store_close(&s); /* NULL is fine */
	sl_store_close(NULL);

	s = open_store(dir, 0);
	memset(&got, 0xee, sizeof got);
	assert_int_equal(sl_store_get_job(s, &got, &why), 0);
	assert_string_equal(got.dataset_path, j.dataset_path);
	assert_int_equal(got.dataset.rows, 5000);
	assert_int_equal(got.dataset.ndim, 3);
	assert_int_equal(got.dataset.shape[0], 5000);
	assert_int_equal(got.dataset.shape[1], 28);
	assert_int_equal(got.dataset.shape[2], 28);
	assert_int_equal(got.dataset.dtype, SL_DTYPE_U8);
	assert_memory_equal(got.dataset.sha256, j.dataset.sha256, 32);
	assert_int_equal(got.shard_rows, 1024);

	/* The same job again is fine; another one is refused. */
	assert_int_equal(sl_store_init_job(s, &j, &why), 0);
	other = j;
	other.dataset.sha256[5] ^= 1;
	assert_int_equal(sl_store_init_job(s, &other, &why), SL_EMISMATCH);
	assert_non_null(strstr(why.text, "already holds a job"));
	other = j;
	other.shard_rows = 512;
	assert_int_equal(sl_store_init_job(s, &other, &why), SL_EMISMATCH);
	other = j;
	other.dataset.shape[0] = 7; /* shape[0] != rows */
	assert_int_equal(sl_store_init_job(s, &other, &why), SL_EINVAL);
	sl_store_close(&s);

	/* Read-only: reads work, writes are refused. */
	s = open_store(dir, 1);
	memset(&got, 0, sizeof got);
	assert_int_equal(sl_store_get_job(s, &got, &why), 0);
	assert_int_equal(got.shard_rows, 1024);
	assert_int_equal(sl_store_write_begin(s, &t, &why), SL_EINVAL);
	assert_null(t);
	assert_int_equal(sl_store_init_job(s, &j, &why), SL_EINVAL);
	sl_store_close(&s);
}

static void
test_readonly_missing(void **state)
{
	sl_store_opts ro = { 1, 0, 0, NULL };
	sl_store *s = NULL;
	sl_errmsg why = { "" };

	(void)state;
	assert_int_equal(sl_store_open(tpath("missing"), &ro, &s, &why), ENOENT);
	assert_null(s);
	assert_non_null(strstr(why.text, "missing"));
	assert_int_equal(access(tpath("missing"), F_OK), -1); /* not created */

	/* An empty directory is no cache either. */
	assert_int_equal(mkdir(tpath("empty"), 0755), 0);
	why.text[0] = '\0';
	assert_int_equal(sl_store_open(tpath("empty"), &ro, &s, &why), ENOENT);
	assert_null(s);
	assert_non_null(strstr(why.text, "no cache"));

	/* Writable open creates the directory. */
	s = open_store(tpath("new"), 0);
	sl_store_close(&s);
	s = open_store(tpath("new"), 1);
	sl_store_close(&s);
}

/* --- teachers ------------------------------------------------------------- */

static void
expect_mismatch(sl_store *s, const sl_store_teacher *t, const char *field)
{
	sl_store_teacher c = *t;
	sl_errmsg why = { "" };

	c.index = 99;
	assert_int_equal(sl_store_register_teacher(s, &c, &why), SL_EMISMATCH);
	assert_int_equal(c.index, 99); /* untouched on failure */
	if (strstr(why.text, field) == NULL)
		fail_msg("why '%s' does not name '%s'", why.text, field);
	assert_non_null(strstr(why.text, "'big'"));
}

static void
test_register_teacher(void **state)
{
	sl_store *s = open_store(dir, 0);
	sl_store_teacher big = sample_teacher("big"), small, c, list[4];
	sl_errmsg why = { "" };
	size_t n = 0;

	(void)state;
	big.fmt.encoding = SL_ENC_TOPK;
	big.fmt.k = 5;
	big.has_pre = 1;
	big.pre = sl_preproc_default(SL_DTYPE_U8);
	big.pre.mean[0] = 0.286f;
	big.pre.std[0] = 0.353f;
	assert_int_equal(sl_store_register_teacher(s, &big, &why), 0);
	assert_int_equal(big.index, 0);
	small = sample_teacher("small");
	memset(small.model_sha256, 'b', 64);
	small.temperature = 2.5f;
	assert_int_equal(sl_store_register_teacher(s, &small, &why), 0);
	assert_int_equal(small.index, 1);

	/* Same name and settings: same index (hex case does not matter). */
	c = big;
	c.index = 77;
	assert_int_equal(sl_store_register_teacher(s, &c, &why), 0);
	assert_int_equal(c.index, 0);
	memset(c.model_sha256, 'A', 64);
	c.index = 77;
	assert_int_equal(sl_store_register_teacher(s, &c, &why), 0);
	assert_int_equal(c.index, 0);

	c = big;
	c.model_sha256[63] = 'c';
	expect_mismatch(s, &c, "model aaaa");
	c = big;
	c.temperature = nextafterf(4.0f, 5.0f); /* one ulp: bit-exact compare */
	expect_mismatch(s, &c, "temperature");
	c = big;
	c.pre.mean[0] = 0.0f;
	expect_mismatch(s, &c, "preprocessing scale 0.00392156886 mean 0.286000013 "
	    "std 0.352999985, this worker has scale 0.00392156886 mean 0 std "
	    "0.352999985");
	/* The same values over three channels are another teacher's. */
	c = big;
	c.pre.channels = 3;
	c.pre.mean[1] = c.pre.mean[2] = c.pre.mean[0];
	c.pre.std[1] = c.pre.std[2] = c.pre.std[0];
	expect_mismatch(s, &c, "this worker has scale 0.00392156886 mean "
	    "0.286000013,0.286000013,0.286000013 std "
	    "0.352999985,0.352999985,0.352999985");
	/* "small" was registered without preprocessing (a cache from before
	 * it was recorded): any preprocessing is taken. */
	c = small;
	c.has_pre = 1;
	c.pre = sl_preproc_default(SL_DTYPE_F32);
	assert_int_equal(sl_store_register_teacher(s, &c, &why), 0);
	assert_int_equal(c.index, 1);
	c = big;
	c.fmt.encoding = SL_ENC_F16;
	c.fmt.k = 0;
	expect_mismatch(s, &c, "encoding topk:5, this worker has f16");
	c = big;
	c.fmt.k = 3;
	expect_mismatch(s, &c, "k of encoding topk:5, this worker has topk:3");
	c = big;
	c.fmt.classes = 11;
	expect_mismatch(s, &c, "classes 10, this worker has 11");

	/* Survives a reopen, listed in index order with all fields. */
	sl_store_close(&s);
	s = open_store(dir, 1);
	assert_int_equal(sl_store_teachers(s, list, 4, &n, &why), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "big");
	assert_int_equal(list[0].index, 0);
	assert_string_equal(list[0].model_sha256,
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
	assert_true(list[0].temperature == 4.0f);
	assert_int_equal(list[0].has_pre, 1);
	assert_true(list[0].pre.scale == 1.0f / 255.0f &&
	    list[0].pre.channels == 1 && list[0].pre.mean[0] == 0.286f &&
	    list[0].pre.std[0] == 0.353f);
	assert_int_equal(list[1].has_pre, 0);
	assert_int_equal(list[0].fmt.encoding, SL_ENC_TOPK);
	assert_int_equal(list[0].fmt.k, 5);
	assert_int_equal(list[0].fmt.classes, 10);
	assert_string_equal(list[1].name, "small");
	assert_int_equal(list[1].index, 1);
	assert_true(list[1].temperature == 2.5f);
	assert_int_equal(list[1].fmt.encoding, SL_ENC_F32);
	assert_int_equal(list[1].model_sha256[0], 'b');
	/* No room: an error, not a silent cut. */
	assert_int_equal(sl_store_teachers(s, list, 1, &n, &why), SL_ELIMIT);
	sl_store_close(&s);
}

/* Per-channel preprocessing is stored whole and read back the same. */
static void
test_teacher_channels(void **state)
{
	const float mean[3] = { 0.485f, 0.456f, 0.406f };
	const float std[3] = { 0.229f, 0.224f, 0.225f };
	sl_store *s = open_store(dir, 0);
	sl_store_teacher t = sample_teacher("big"), list[2];
	sl_errmsg why = { "" };
	size_t n = 0;

	(void)state;
	t.has_pre = 1;
	t.pre = sl_preproc_default(SL_DTYPE_U8);
	assert_int_equal(sl_preproc_set(&t.pre, mean, 3, std, 3, &why), 0);
	assert_int_equal(sl_store_register_teacher(s, &t, &why), 0);
	sl_store_close(&s);
	s = open_store(dir, 1);
	assert_int_equal(sl_store_teachers(s, list, 2, &n, &why), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].has_pre, 1);
	assert_int_equal(list[0].pre.channels, 3);
	for (int c = 0; c < 3; c++)
		assert_true(list[0].pre.mean[c] == mean[c] &&
		    list[0].pre.std[c] == std[c]);
	sl_store_close(&s);
	s = open_store(dir, 0);
	list[0].index = 9;
	assert_int_equal(sl_store_register_teacher(s, &list[0], &why), 0);
	assert_int_equal(list[0].index, 0);
	list[0].pre.std[2] = 0.5f;
	expect_mismatch(s, &list[0], "std 0.229000002,0.224000007,0.224999994, "
	    "this worker has");
	sl_store_close(&s);
}

static void
test_teacher_invalid(void **state)
{
	sl_store *s = open_store(dir, 0);
	sl_store_teacher t = sample_teacher("ok"), list[1];
	sl_errmsg why = { "" };
	size_t n = 9;

	(void)state;
	t.has_pre = 1;
	t.pre = sl_preproc_default(SL_DTYPE_F32);
	t.pre.std[0] = 0.0f; /* divides by zero */
	assert_int_equal(sl_store_register_teacher(s, &t, &why), SL_EINVAL);
	t.pre.std[0] = NAN;
	assert_int_equal(sl_store_register_teacher(s, &t, &why), SL_EINVAL);
	t.has_pre = 0;
	t.name[0] = '\0';
	assert_int_equal(sl_store_register_teacher(s, &t, &why), SL_EINVAL);
	snprintf(t.name, sizeof t.name, "a/b");
	assert_int_equal(sl_store_register_teacher(s, &t, &why), SL_EINVAL);
	memset(t.name, 'x', sizeof t.name); /* 129 bytes, no NUL */
	assert_int_equal(sl_store_register_teacher(s, &t, &why), SL_EINVAL);
	memset(t.name, 'x', SL_STORE_MAX_NAME);
	t.name[SL_STORE_MAX_NAME] = '\0'; /* exactly the limit: fine */
	assert_int_equal(sl_store_register_teacher(s, &t, &why), 0);
	assert_int_equal(t.index, 0);

	t = sample_teacher("t2");
	t.model_sha256[10] = 'z';
	assert_int_equal(sl_store_register_teacher(s, &t, &why), SL_EINVAL);
	t = sample_teacher("t2");
	t.model_sha256[63] = '\0';
	assert_int_equal(sl_store_register_teacher(s, &t, &why), SL_EINVAL);
	t = sample_teacher("t2");
	t.temperature = 0.0f;
	assert_int_equal(sl_store_register_teacher(s, &t, &why), SL_EINVAL);
	t.temperature = NAN;
	assert_int_equal(sl_store_register_teacher(s, &t, &why), SL_EINVAL);
	t = sample_teacher("t2");
	t.fmt.classes = 1;
	assert_int_equal(sl_store_register_teacher(s, &t, &why), SL_EINVAL);
	t = sample_teacher("t2");
	t.fmt.k = 3; /* k with a dense encoding */
	assert_int_equal(sl_store_register_teacher(s, &t, &why), SL_EINVAL);
	t.fmt.encoding = SL_ENC_TOPK;
	t.fmt.k = 10; /* k must be < classes */
	assert_int_equal(sl_store_register_teacher(s, &t, &why), SL_EINVAL);

	/* Nothing invalid was written. */
	assert_int_equal(sl_store_teachers(s, list, 1, &n, &why), 0);
	assert_int_equal(n, 1);
	sl_store_close(&s);
}

static void
test_teacher_limit(void **state)
{
	sl_store_opts o = { 0, 1, 0, NULL }; /* nosync: 257 commits */
	sl_store *s = NULL;
	sl_store_teacher t;
	sl_errmsg why = { "" };
	char name[16];

	(void)state;
	assert_int_equal(sl_store_open(dir, &o, &s, &why), 0);
	for (int i = 0; i < SL_STORE_MAX_TEACHERS; i++) {
		snprintf(name, sizeof name, "t%03d", i);
		t = sample_teacher(name);
		assert_int_equal(sl_store_register_teacher(s, &t, &why), 0);
		assert_int_equal(t.index, i);
	}
	t = sample_teacher("one-too-many");
	assert_int_equal(sl_store_register_teacher(s, &t, &why), SL_ELIMIT);
	t = sample_teacher("t200"); /* existing ones still resolve */
	assert_int_equal(sl_store_register_teacher(s, &t, &why), 0);
	assert_int_equal(t.index, 200);
	sl_store_close(&s);
}

/* --- shards and labels ---------------------------------------------------- */

typedef struct walk {
	uint64_t samples[4096];
	size_t n;
	int bad; /* a record differs from make_records */
	uint8_t salt;
	size_t stop_after; /* 0: never */
} walk;

static int
on_label(void *arg, uint64_t sample, const void *rec, size_t len)
{
	walk *w = arg;
	uint8_t want[REC];

	make_records(want, sample, 1, w->salt);
	if (len != REC || memcmp(rec, want, REC) != 0)
		w->bad++;
	if (w->n < 4096)
		w->samples[w->n] = sample;
	w->n++;
	if (w->stop_after != 0 && w->n == w->stop_after)
		return 42;
	return 0;
}

typedef struct shard_seen {
	uint64_t shard[16];
	sl_shard_info info[16];
	size_t n;
} shard_seen;

static int
on_shard(void *arg, uint64_t shard, const sl_shard_info *info)
{
	shard_seen *s = arg;

	if (s->n < 16) {
		s->shard[s->n] = shard;
		s->info[s->n] = *info;
	}
	s->n++;
	return 0;
}

static void
test_put_shard_roundtrip(void **state)
{
	static uint8_t recs[1024 * REC];
	sl_store *s = open_store(dir, 0);
	sl_store_txn *t = NULL;
	sl_shard_info info;
	sl_store_stat st;
	sl_errmsg why = { "" };
	uint8_t states[5];
	shard_seen seen;
	const void *rec;
	size_t len;
	walk *w = calloc(1, sizeof *w);
	uint64_t before;

	(void)state;
	assert_non_null(w);
	before = (uint64_t)time(NULL) * 1000u;
	/* teacher 0: shards 1 and 3 of 100 rows; teacher 1: shard 1. */
	assert_int_equal(sl_store_write_begin(s, &t, &why), 0);
	make_records(recs, 100, 100, 0);
	assert_int_equal(sl_store_put_shard(t, 0, 1, 100, 100, recs, REC,
	    "worker-a", 2, &why), 0);
	make_records(recs, 300, 100, 0);
	assert_int_equal(sl_store_put_shard(t, 0, 3, 300, 100, recs, REC,
	    "worker-b", 1, &why), 0);
	make_records(recs, 100, 100, 9);
	assert_int_equal(sl_store_put_shard(t, 1, 1, 100, 100, recs, REC,
	    NULL, 1, &why), 0);
	assert_int_equal(sl_store_write_commit(&t, &why), 0);
	assert_null(t);

	assert_int_equal(sl_store_read_begin(s, &t, &why), 0);
	make_records(recs, 100, 1, 0);
	assert_int_equal(sl_store_get_label(t, 0, 100, &rec, &len), 0);
	assert_int_equal(len, REC);
	assert_memory_equal(rec, recs, REC);
	make_records(recs, 399, 1, 0);
	assert_int_equal(sl_store_get_label(t, 0, 399, &rec, &len), 0);
	assert_memory_equal(rec, recs, REC);
	make_records(recs, 150, 1, 9);
	assert_int_equal(sl_store_get_label(t, 1, 150, &rec, &len), 0);
	assert_memory_equal(rec, recs, REC);
	assert_int_equal(sl_store_get_label(t, 0, 99, &rec, &len), SL_ENOTFOUND);
	assert_int_equal(sl_store_get_label(t, 0, 200, &rec, &len), SL_ENOTFOUND);
	assert_int_equal(sl_store_get_label(t, 2, 100, &rec, &len), SL_ENOTFOUND);

	/* Walk teacher 0: 200 records in sample order, teacher 1 not mixed in. */
	assert_int_equal(sl_store_each_label(t, 0, 0, on_label, w), 0);
	assert_int_equal(w->n, 200);
	assert_int_equal(w->bad, 0);
	for (size_t i = 0; i < 200; i++)
		assert_int_equal(w->samples[i], i < 100 ? 100 + i : 200 + i);
	/* From the middle, and a stop code returned as is. */
	memset(w, 0, sizeof *w);
	assert_int_equal(sl_store_each_label(t, 0, 350, on_label, w), 0);
	assert_int_equal(w->n, 50);
	assert_int_equal(w->samples[0], 350);
	memset(w, 0, sizeof *w);
	w->stop_after = 3;
	assert_int_equal(sl_store_each_label(t, 0, 0, on_label, w), 42);
	assert_int_equal(w->n, 3);
	memset(w, 0, sizeof *w);
	w->salt = 9;
	assert_int_equal(sl_store_each_label(t, 1, 0, on_label, w), 0);
	assert_int_equal(w->n, 100);
	assert_int_equal(w->bad, 0);
	memset(w, 0, sizeof *w);
	assert_int_equal(sl_store_each_label(t, 7, 0, on_label, w), 0);
	assert_int_equal(w->n, 0);

	assert_int_equal(sl_store_get_shard(t, 0, 1, &info, &why), 0);
	assert_int_equal(info.state, SL_SHARD_DONE);
	assert_int_equal(info.attempts, 2);
	assert_string_equal(info.worker, "worker-a");
	assert_true(info.committed_ms >= before);
	assert_true(info.committed_ms <= (uint64_t)time(NULL) * 1000u + 1000u);
	assert_string_equal(info.reason, "");
	assert_int_equal(sl_store_get_shard(t, 1, 1, &info, &why), 0);
	assert_string_equal(info.worker, "");
	assert_int_equal(sl_store_get_shard(t, 0, 2, &info, &why), SL_ENOTFOUND);

	memset(&seen, 0, sizeof seen);
	assert_int_equal(sl_store_each_shard(t, 0, on_shard, &seen), 0);
	assert_int_equal(seen.n, 2);
	assert_int_equal(seen.shard[0], 1);
	assert_int_equal(seen.shard[1], 3);
	assert_string_equal(seen.info[1].worker, "worker-b");
	sl_store_read_end(&t);
	assert_null(t);
	sl_store_read_end(&t);

	memset(states, 0xff, sizeof states);
	assert_int_equal(sl_store_shard_states(s, 0, states, 5, &why), 0);
	assert_int_equal(states[0], SL_SHARD_PENDING);
	assert_int_equal(states[1], SL_SHARD_DONE);
	assert_int_equal(states[2], SL_SHARD_PENDING);
	assert_int_equal(states[3], SL_SHARD_DONE);
	assert_int_equal(states[4], SL_SHARD_PENDING);
	/* A shard beyond the dataset: the cache does not match it. */
	assert_int_equal(sl_store_shard_states(s, 0, states, 3, &why),
	    SL_EFORMAT);
	assert_non_null(strstr(why.text, "shard 3"));

	assert_int_equal(sl_store_stat_get(s, &st, &why), 0);
	assert_int_equal(st.labels, 300);
	assert_int_equal(st.shards, 3);
	assert_int_equal(st.inputs, 0);
	assert_true(st.used_bytes > 300 * REC);
	assert_true(st.file_bytes >= st.used_bytes);
	assert_int_equal(st.readers_max, 126);
	assert_int_equal(st.readers_used, 0);
	sl_store_close(&s);
	free(w);
}

/* The audit counters: absent at first, then exactly what was written,
 * replaced by the next write, kept across a reopen, and readable by a
 * read-only opener. */
static void
test_audit_counters(void **state)
{
	sl_store *s = open_store(dir, 0);
	sl_store_txn *t = NULL;
	sl_store_audit a = { 1, 2, 3, 4, 5, UINT64_C(6000000000) }, b;
	sl_errmsg why = { "" };

	(void)state;
	assert_int_equal(sl_store_read_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_get_audit(t, &b, &why), SL_ENOTFOUND);
	assert_true(b.passed == 0 && b.purged_shards == 0);
	sl_store_read_end(&t);
	assert_int_equal(sl_store_write_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_put_audit(t, &a, &why), 0);
	a.passed = 7;
	assert_int_equal(sl_store_put_audit(t, &a, &why), 0);
	assert_int_equal(sl_store_write_commit(&t, &why), 0);
	sl_store_close(&s);
	s = open_store(dir, 1);
	assert_int_equal(sl_store_read_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_get_audit(t, &b, &why), 0);
	assert_memory_equal(&a, &b, sizeof a);
	sl_store_read_end(&t);
	/* read-only: no writes */
	assert_int_not_equal(sl_store_write_begin(s, &t, &why), 0);
	sl_store_close(&s);
}

static void
test_quarantine_reset_inputs(void **state)
{
	static uint8_t recs[64 * REC];
	char reason[600];
	sl_store *s = open_store(dir, 0);
	sl_store_txn *t = NULL;
	sl_shard_info info;
	sl_errmsg why = { "" };
	uint8_t states[4], rows[10 * 3];
	const void *rec;
	size_t len;

	(void)state;
	make_records(recs, 0, 64, 0);
	assert_int_equal(sl_store_write_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_put_shard(t, 0, 0, 0, 64, recs, REC, "w", 1,
	    &why), 0);
	assert_int_equal(sl_store_put_quarantine(t, 0, 2, 5,
	    "NaN logits from worker w9", &why), 0);
	for (int i = 0; i < 30; i++)
		rows[i] = (uint8_t)(i * 3);
	assert_int_equal(sl_store_put_inputs(t, 1000, 10, rows, 3, &why), 0);
	assert_int_equal(sl_store_write_commit(&t, &why), 0);

	assert_int_equal(sl_store_read_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_get_shard(t, 0, 2, &info, &why), 0);
	assert_int_equal(info.state, SL_SHARD_QUARANTINED);
	assert_int_equal(info.attempts, 5);
	assert_string_equal(info.worker, "");
	assert_string_equal(info.reason, "NaN logits from worker w9");
	assert_true(info.committed_ms > 0);
	sl_store_read_end(&t);
	assert_int_equal(sl_store_shard_states(s, 0, states, 4, &why), 0);
	assert_int_equal(states[0], SL_SHARD_DONE);
	assert_int_equal(states[1], SL_SHARD_PENDING);
	assert_int_equal(states[2], SL_SHARD_QUARANTINED);

	/* A long reason is cut to fit sl_shard_info.reason. */
	memset(reason, 'r', sizeof reason - 1);
	reason[sizeof reason - 1] = '\0';
	assert_int_equal(sl_store_write_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_put_quarantine(t, 0, 3, 1, reason, &why), 0);
	/* Reset shard 0: its records and its state go. */
	assert_int_equal(sl_store_reset_shard(t, 0, 0, 0, 64, &why), 0);
	/* Resetting a pending shard is harmless. */
	assert_int_equal(sl_store_reset_shard(t, 0, 1, 64, 64, &why), 0);
	assert_int_equal(sl_store_write_commit(&t, &why), 0);

	assert_int_equal(sl_store_read_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_get_shard(t, 0, 3, &info, &why), 0);
	assert_int_equal(strlen(info.reason), sizeof info.reason - 1);
	assert_int_equal(sl_store_get_shard(t, 0, 0, &info, &why), SL_ENOTFOUND);
	for (uint64_t i = 0; i < 64; i++)
		assert_int_equal(sl_store_get_label(t, 0, i, &rec, &len),
		    SL_ENOTFOUND);
	sl_store_read_end(&t);
	assert_int_equal(sl_store_shard_states(s, 0, states, 4, &why), 0);
	assert_int_equal(states[0], SL_SHARD_PENDING);
	assert_int_equal(states[2], SL_SHARD_QUARANTINED);
	sl_store_close(&s);

	/* Inputs: raw LMDB read back, 8-byte big-endian keys. */
	{
		MDB_env *env;
		MDB_txn *txn;
		MDB_dbi dbi;
		uint8_t kb[8] = { 0, 0, 0, 0, 0, 0, 0x03, 0xe9 }; /* 1001 */
		MDB_val k = { 8, kb }, v;

		assert_int_equal(mdb_env_create(&env), 0);
		assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
		assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0644), 0);
		assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
		assert_int_equal(mdb_dbi_open(txn, "inputs", 0, &dbi), 0);
		assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
		assert_int_equal(v.mv_size, 3);
		assert_memory_equal(v.mv_data, rows + 3, 3);
		mdb_txn_abort(txn);
		mdb_env_close(env);
	}
	/* And the label keys are (u32 BE teacher, u64 BE sample). */
	{
		sl_store_stat st;

		s = open_store(dir, 0);
		assert_int_equal(sl_store_stat_get(s, &st, &why), 0);
		assert_int_equal(st.inputs, 10);
		assert_int_equal(st.labels, 0);
		sl_store_close(&s);
	}
}

static void
test_key_layout(void **state)
{
	static uint8_t recs[2 * REC];
	sl_store *s = open_store(dir, 0);
	sl_errmsg why = { "" };
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k, v;
	const uint8_t want[12] = { 0, 0, 1, 2, 0, 0, 0, 0, 0, 1, 0, 5 };
	sl_store_txn *t = NULL;

	(void)state;
	make_records(recs, 0, 2, 0);
	assert_int_equal(sl_store_write_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_put_shard(t, 0x102, 7, 0x10005, 1, recs,
	    REC, "w", 1, &why), 0);
	assert_int_equal(sl_store_write_commit(&t, &why), 0);
	sl_store_close(&s);

	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 4), 0);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0644), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "labels", 0, &dbi), 0);
	k.mv_size = 12;
	k.mv_data = (void *)want;
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	assert_memory_equal(v.mv_data, recs, REC);
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

/* --- transactions --------------------------------------------------------- */

static void
test_abort_and_mvcc(void **state)
{
	static uint8_t recs[10 * REC];
	sl_store *s = open_store(dir, 0);
	sl_store_txn *t = NULL, *r = NULL;
	sl_store_stat st;
	sl_errmsg why = { "" };
	const void *rec;
	size_t len;

	(void)state;
	make_records(recs, 0, 10, 0);
	/* Abort leaves nothing. */
	assert_int_equal(sl_store_write_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_put_shard(t, 0, 0, 0, 10, recs, REC, "w", 1,
	    &why), 0);
	/* The write txn sees its own writes. */
	assert_int_equal(sl_store_get_label(t, 0, 3, &rec, &len), 0);
	sl_store_write_abort(&t);
	assert_null(t);
	sl_store_write_abort(&t);
	assert_int_equal(sl_store_stat_get(s, &st, &why), 0);
	assert_int_equal(st.labels, 0);
	assert_int_equal(st.shards, 0);

	/* A reader opened before a commit does not block it and does not see
	 * it until refreshed. */
	assert_int_equal(sl_store_read_begin(s, &r, &why), 0);
	assert_int_equal(sl_store_write_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_put_shard(t, 0, 0, 0, 10, recs, REC, "w", 1,
	    &why), 0);
	assert_int_equal(sl_store_write_commit(&t, &why), 0);
	assert_int_equal(sl_store_get_label(r, 0, 3, &rec, &len), SL_ENOTFOUND);
	assert_int_equal(sl_store_stat_get(s, &st, &why), 0);
	assert_int_equal(st.readers_used, 1);
	assert_int_equal(sl_store_read_refresh(r, &why), 0);
	assert_int_equal(sl_store_get_label(r, 0, 3, &rec, &len), 0);
	assert_memory_equal(rec, recs + 3 * REC, REC);

	/* A second write txn sees the first's data; its changes are not seen
	 * by the reader until refresh. */
	assert_int_equal(sl_store_write_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_get_label(t, 0, 9, &rec, &len), 0);
	assert_int_equal(sl_store_reset_shard(t, 0, 0, 0, 10, &why), 0);
	assert_int_equal(sl_store_write_commit(&t, &why), 0);
	assert_int_equal(sl_store_get_label(r, 0, 9, &rec, &len), 0);
	assert_memory_equal(rec, recs + 9 * REC, REC);
	assert_int_equal(sl_store_read_refresh(r, &why), 0);
	assert_int_equal(sl_store_get_label(r, 0, 9, &rec, &len), SL_ENOTFOUND);

	/* Writes through a read txn are refused. */
	assert_int_equal(sl_store_put_shard(r, 0, 0, 0, 10, recs, REC, "w", 1,
	    &why), SL_EINVAL);
	sl_store_read_end(&r);
	assert_int_equal(sl_store_stat_get(s, &st, &why), 0);
	assert_int_equal(st.readers_used, 0);
	sl_store_close(&s);
}


/* --- views ---------------------------------------------------------------- */

static sl_store_teacher
views_teacher(const char *name, uint32_t V)
{
	sl_store_teacher t = sample_teacher(name);
	sl_errmsg why = { "" };

	t.views = V;
	assert_int_equal(sl_view_recipe_parse("crop=4,flip", &t.view_recipe,
	    &why), 0);
	t.view_seed = 0x1234567890abcdefULL;
	return t;
}

typedef struct view_walk {
	uint64_t sample[64];
	uint32_t view[64];
	size_t n;
	int bad;
} view_walk;

static int
on_view(void *arg, uint64_t sample, uint32_t view, const void *rec,
    size_t len)
{
	view_walk *w = arg;
	uint8_t want[REC];

	if (w->n >= 64)
		return 7;
	make_records(want, sample, 1, (uint8_t)(view + 1));
	if (len != REC || memcmp(rec, want, REC) != 0)
		w->bad++;
	w->sample[w->n] = sample;
	w->view[w->n++] = view;
	return 0;
}

static int
count_plain(void *arg, uint64_t sample, const void *rec, size_t len)
{
	(void)sample;
	(void)rec;
	(*(size_t *)arg) += len == REC;
	return 0;
}

/* Registration: the three fields round-trip, a worker with another V,
 * recipe or seed is refused naming the field, V = 0 stays a plain teacher. */
static void
test_views_register(void **state)
{
	sl_store_job j = sample_job(), got;
	sl_store_teacher v = views_teacher("aug", 4), plain = sample_teacher("p");
	sl_store_teacher other, list[4];
	sl_store *s = open_store(dir, 0);
	sl_errmsg why = { "" };
	size_t n;

	(void)state;
	assert_int_equal(sl_store_init_job(s, &j, &why), 0);
	assert_int_equal(sl_store_get_job(s, &got, &why), 0);
	assert_int_equal(got.schema, 2);
	assert_int_equal(sl_store_register_teacher(s, &plain, &why), 0);
	assert_int_equal(sl_store_register_teacher(s, &v, &why), 0);
	assert_int_equal(v.index, 1);
	assert_int_equal(sl_store_register_teacher(s, &v, &why), 0);
	assert_int_equal(v.index, 1);

	other = views_teacher("aug", 8);
	assert_int_equal(sl_store_register_teacher(s, &other, &why),
	    SL_EMISMATCH);
	assert_string_equal(why.text, "teacher 'aug' is registered with 4 "
	    "views, this worker has 8");
	other = views_teacher("aug", 4);
	assert_int_equal(sl_view_recipe_parse("crop=2,flip", &other.view_recipe,
	    &why), 0);
	assert_int_equal(sl_store_register_teacher(s, &other, &why),
	    SL_EMISMATCH);
	assert_string_equal(why.text, "teacher 'aug' is registered with view "
	    "recipe crop=4,flip, this worker has crop=2,flip");
	other = views_teacher("aug", 4);
	other.view_seed = 7;
	assert_int_equal(sl_store_register_teacher(s, &other, &why),
	    SL_EMISMATCH);
	assert_non_null(strstr(why.text, "view seed 1311768467294899695, this "
	    "worker has 7"));
	other = views_teacher("p", 2);
	assert_int_equal(sl_store_register_teacher(s, &other, &why),
	    SL_EMISMATCH);
	assert_string_equal(why.text, "teacher 'p' is registered with 0 "
	    "views, this worker has 2");
	other = views_teacher("big", SL_STORE_MAX_VIEWS + 1);
	assert_int_equal(sl_store_register_teacher(s, &other, &why), SL_EINVAL);
	assert_non_null(strstr(why.text, "views 1025"));
	other = views_teacher("bad", 2);
	other.view_recipe.pad = SL_VIEW_MAX_PAD + 1;
	assert_int_equal(sl_store_register_teacher(s, &other, &why), SL_EINVAL);

	assert_int_equal(sl_store_teachers(s, list, 4, &n, &why), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].views, 0);
	assert_int_equal(list[1].views, 4);
	assert_int_equal(list[1].view_recipe.pad, 4);
	assert_int_equal(list[1].view_recipe.flip, 1);
	assert_true(list[1].view_recipe.rrc_min == 0.0f);
	assert_true(list[1].view_seed == 0x1234567890abcdefULL);
	sl_store_close(&s);
}

/* Records under 16-byte keys: put, get, walk in (sample, view) order,
 * reset of one unit; a plain teacher on either side walks as before. */
static void
test_views_records(void **state)
{
	static uint8_t recs[16 * REC];
	sl_store_job j = sample_job();
	sl_store_teacher p0 = sample_teacher("p0"), v = views_teacher("aug", 3);
	sl_store_teacher p2 = sample_teacher("p2");
	sl_store *s = open_store(dir, 0);
	sl_store_txn *t = NULL;
	sl_errmsg why = { "" };
	view_walk *w = calloc(1, sizeof *w);
	uint8_t states[6];
	const void *rec;
	size_t len, plain = 0;

	(void)state;
	assert_non_null(w);
	assert_int_equal(sl_store_init_job(s, &j, &why), 0);
	assert_int_equal(sl_store_register_teacher(s, &p0, &why), 0);
	assert_int_equal(sl_store_register_teacher(s, &v, &why), 0);
	assert_int_equal(sl_store_register_teacher(s, &p2, &why), 0);
	assert_int_equal(commit_shard(s, p0.index, 0, 0, 4, 0, &why), 0);
	assert_int_equal(commit_shard(s, p2.index, 0, 0, 4, 0, &why), 0);
	/* Shard 1 (rows 4..8) of the views teacher, views 2 then 0: units
	 * 1 * 3 + 2 and 1 * 3 + 0; view v's records salted v + 1. */
	assert_int_equal(sl_store_write_begin(s, &t, &why), 0);
	make_records(recs, 4, 4, 3);
	assert_int_equal(sl_store_put_shard_view(t, v.index, 5, 4, 4, 2, recs,
	    REC, "w", 1, &why), 0);
	make_records(recs, 4, 4, 1);
	assert_int_equal(sl_store_put_shard_view(t, v.index, 3, 4, 4, 0, recs,
	    REC, "w", 1, &why), 0);
	assert_int_equal(sl_store_write_commit(&t, &why), 0);

	assert_int_equal(sl_store_read_begin(s, &t, &why), 0);
	make_records(recs, 6, 1, 3);
	assert_int_equal(sl_store_get_label_view(t, v.index, 6, 2, &rec, &len),
	    0);
	assert_int_equal(len, REC);
	assert_memory_equal(rec, recs, REC);
	assert_int_equal(sl_store_get_label_view(t, v.index, 6, 1, &rec, &len),
	    SL_ENOTFOUND);
	/* A views teacher's record is not under the 12-byte key. */
	assert_int_equal(sl_store_get_label(t, v.index, 6, &rec, &len),
	    SL_ENOTFOUND);
	assert_int_equal(sl_store_get_label_view(t, p0.index, 2,
	    SL_STORE_NO_VIEW, &rec, &len), 0);

	assert_int_equal(sl_store_each_label_view(t, v.index, 0, on_view, w), 0);
	assert_int_equal(w->n, 8);
	assert_int_equal(w->bad, 0);
	for (size_t i = 0; i < 8; i++) {
		assert_int_equal(w->sample[i], 4 + i / 2);
		assert_int_equal(w->view[i], i % 2 ? 2 : 0);
	}
	memset(w, 0, sizeof *w);
	assert_int_equal(sl_store_each_label_view(t, v.index, 7, on_view, w), 0);
	assert_int_equal(w->n, 2);
	assert_int_equal(w->sample[0], 7);
	/* The plain neighbours are untouched by the 16-byte keys between. */
	assert_int_equal(sl_store_each_label(t, p0.index, 0, count_plain,
	    &plain), 0);
	assert_int_equal(sl_store_each_label(t, p2.index, 0, count_plain,
	    &plain), 0);
	assert_int_equal(plain, 8);
	/* Walking one teacher in the other key size is a format error. */
	assert_int_equal(sl_store_each_label(t, v.index, 0, count_plain,
	    &plain), SL_EFORMAT);
	memset(w, 0, sizeof *w);
	assert_int_equal(sl_store_each_label_view(t, p0.index, 0, on_view, w),
	    SL_EFORMAT);
	sl_store_read_end(&t);

	assert_int_equal(sl_store_shard_states(s, v.index, states, 6, &why), 0);
	assert_int_equal(states[3], SL_SHARD_DONE);
	assert_int_equal(states[5], SL_SHARD_DONE);
	assert_int_equal(states[4], SL_SHARD_PENDING);

	/* Reset unit 5 (view 2): view 0 stays. */
	assert_int_equal(sl_store_write_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_reset_shard_view(t, v.index, 5, 4, 4, 2,
	    &why), 0);
	assert_int_equal(sl_store_write_commit(&t, &why), 0);
	assert_int_equal(sl_store_read_begin(s, &t, &why), 0);
	memset(w, 0, sizeof *w);
	assert_int_equal(sl_store_each_label_view(t, v.index, 0, on_view, w), 0);
	assert_int_equal(w->n, 4);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(w->view[i], 0);
	sl_store_read_end(&t);
	assert_int_equal(sl_store_shard_states(s, v.index, states, 6, &why), 0);
	assert_int_equal(states[5], SL_SHARD_PENDING);
	assert_int_equal(states[3], SL_SHARD_DONE);
	sl_store_close(&s);
	free(w);
}

/* A schema-1 cache (written before views) opens and reads as before; a
 * teacher with views raises it to 2; half a views registration is
 * refused as corrupt. */
static void
test_views_schema1(void **state)
{
	const uint8_t schema1[] = { 0x01 };
	sl_store_job j = sample_job(), got;
	sl_store_teacher p = sample_teacher("p"), v = views_teacher("aug", 2);
	sl_store_teacher list[4];
	sl_store *s = open_store(dir, 0);
	sl_store_txn *t = NULL;
	sl_errmsg why = { "" };
	const void *rec;
	size_t len, n;
	/* {"index": 1, "classes": 10, "temperature": 1.0, "encoding": 1,
	 *  "k": 0, "model_sha256": bin 32, "views": 2} (no recipe, no seed) */
	uint8_t half[160];
	size_t hl = 0;

	(void)state;
	assert_int_equal(sl_store_init_job(s, &j, &why), 0);
	assert_int_equal(sl_store_register_teacher(s, &p, &why), 0);
	assert_int_equal(commit_shard(s, p.index, 0, 0, 10, 0, &why), 0);
	sl_store_close(&s);
	raw_put("meta", "schema", 6, schema1, sizeof schema1);

	s = open_store(dir, 1);
	assert_int_equal(sl_store_get_job(s, &got, &why), 0);
	assert_int_equal(got.schema, 1);
	assert_int_equal(sl_store_read_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_get_label(t, p.index, 9, &rec, &len), 0);
	assert_int_equal(len, REC);
	sl_store_read_end(&t);
	sl_store_close(&s);

	s = open_store(dir, 0);
	assert_int_equal(sl_store_register_teacher(s, &p, &why), 0);
	assert_int_equal(sl_store_get_job(s, &got, &why), 0);
	assert_int_equal(got.schema, 1); /* a plain teacher changes nothing */
	assert_int_equal(sl_store_register_teacher(s, &v, &why), 0);
	assert_int_equal(sl_store_get_job(s, &got, &why), 0);
	assert_int_equal(got.schema, 2);
	sl_store_close(&s);

	half[hl++] = 0x87;
#define KEY(str) do { half[hl++] = (uint8_t)(0xa0 | (sizeof str - 1)); \
	memcpy(half + hl, str, sizeof str - 1); hl += sizeof str - 1; } while (0)
	KEY("index"); half[hl++] = 0x01;
	KEY("classes"); half[hl++] = 0x0a;
	KEY("temperature"); half[hl++] = 0xca; half[hl++] = 0x3f;
	half[hl++] = 0x80; half[hl++] = 0; half[hl++] = 0;
	KEY("encoding"); half[hl++] = 0x01;
	KEY("k"); half[hl++] = 0x00;
	KEY("model_sha256"); half[hl++] = 0xc4; half[hl++] = 32;
	memset(half + hl, 0xaa, 32); hl += 32;
	KEY("views"); half[hl++] = 0x02;
#undef KEY
	raw_put("meta", "teacher/aug", 11, half, hl);
	s = open_store(dir, 1);
	assert_int_equal(sl_store_teachers(s, list, 4, &n, &why), SL_EFORMAT);
	assert_non_null(strstr(why.text, "go together"));
	sl_store_close(&s);
}

/* --- corrupt caches ------------------------------------------------------- */

static void
test_corrupt_meta(void **state)
{
	sl_store_job j = sample_job(), got;
	sl_store_teacher t = sample_teacher("x"), list[4];
	sl_store *s = open_store(dir, 0);
	sl_errmsg why = { "" };
	size_t n;
	/* msgpack: map of 5 whose first key is a str claiming 4 GB. */
	const uint8_t huge[] = { 0x85, 0xdb, 0xff, 0xff, 0xff, 0xff, 'p' };
	const uint8_t garbage[] = { 0xc1, 0x00, 0x13, 0x37 };
	const uint8_t schema3[] = { 0x03 };
	const uint8_t not_uint[] = { 0xa3, 'o', 'n', 'e' };
	/* {"index": 0} only */
	const uint8_t partial[] = { 0x81, 0xa5, 'i', 'n', 'd', 'e', 'x', 0x00 };

	(void)state;
	assert_int_equal(sl_store_init_job(s, &j, &why), 0);
	assert_int_equal(sl_store_register_teacher(s, &t, &why), 0);
	sl_store_close(&s);

	raw_put("meta", "dataset", 7, garbage, sizeof garbage);
	s = open_store(dir, 1);
	assert_int_equal(sl_store_get_job(s, &got, &why), SL_EFORMAT);
	assert_non_null(strstr(why.text, "'dataset'"));
	sl_store_close(&s);

	raw_put("meta", "dataset", 7, huge, sizeof huge);
	s = open_store(dir, 1);
	assert_int_equal(sl_store_get_job(s, &got, &why), SL_EFORMAT);
	assert_non_null(strstr(why.text, "'dataset'"));
	sl_store_close(&s);

	raw_put("meta", "shard_rows", 10, not_uint, sizeof not_uint);
	raw_put("meta", "schema", 6, schema3, sizeof schema3);
	s = open_store(dir, 1);
	assert_int_equal(sl_store_get_job(s, &got, &why), SL_EUNSUPPORTED);
	assert_string_equal(why.text, "cache schema 3, this build reads 1 to 2");
	sl_store_close(&s);

	raw_put("meta", "teacher/x", 9, garbage, sizeof garbage);
	s = open_store(dir, 0);
	why.text[0] = '\0';
	assert_int_equal(sl_store_teachers(s, list, 4, &n, &why), SL_EFORMAT);
	assert_non_null(strstr(why.text, "teacher/x"));
	why.text[0] = '\0';
	assert_int_equal(sl_store_register_teacher(s, &t, &why), SL_EFORMAT);
	assert_non_null(strstr(why.text, "teacher/x"));
	sl_store_close(&s);

	raw_put("meta", "teacher/x", 9, partial, sizeof partial);
	s = open_store(dir, 1);
	assert_int_equal(sl_store_teachers(s, list, 4, &n, &why), SL_EFORMAT);
	assert_non_null(strstr(why.text, "missing"));
	sl_store_close(&s);

	raw_put("meta", "teacher/x", 9, huge, sizeof huge);
	s = open_store(dir, 1);
	assert_int_equal(sl_store_teachers(s, list, 4, &n, &why), SL_EFORMAT);
	sl_store_close(&s);
}

static void
test_corrupt_shards_and_keys(void **state)
{
	static uint8_t recs[4 * REC];
	sl_store *s = open_store(dir, 0);
	sl_store_txn *t = NULL;
	sl_shard_info info;
	sl_errmsg why = { "" };
	uint8_t states[4];
	shard_seen seen;
	walk *w = calloc(1, sizeof *w);
	const uint8_t key_shard2[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2 };
	const uint8_t key11[11] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9 };
	const uint8_t garbage[] = { 0x82, 0xa5, 's', 't', 'a', 't', 'e', 0x07 };

	(void)state;
	assert_non_null(w);
	make_records(recs, 0, 4, 0);
	assert_int_equal(sl_store_write_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_put_shard(t, 0, 0, 0, 4, recs, REC, "w", 1,
	    &why), 0);
	assert_int_equal(sl_store_write_commit(&t, &why), 0);
	sl_store_close(&s);

	raw_put("shards", key_shard2, 12, garbage, sizeof garbage);
	s = open_store(dir, 1);
	assert_int_equal(sl_store_shard_states(s, 0, states, 4, &why),
	    SL_EFORMAT);
	assert_non_null(strstr(why.text, "shard 2"));
	assert_int_equal(sl_store_read_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_get_shard(t, 0, 2, &info, &why), SL_EFORMAT);
	assert_non_null(strstr(why.text, "state"));
	assert_int_equal(sl_store_get_shard(t, 0, 0, &info, &why), 0);
	memset(&seen, 0, sizeof seen);
	assert_int_equal(sl_store_each_shard(t, 0, on_shard, &seen),
	    SL_EFORMAT);
	assert_int_equal(seen.n, 1); /* shard 0, then the bad one stops it */
	sl_store_read_end(&t);
	sl_store_close(&s);

	raw_put("labels", key11, 11, recs, REC);
	s = open_store(dir, 1);
	assert_int_equal(sl_store_read_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_each_label(t, 0, 0, on_label, w), SL_EFORMAT);
	/* The 11-byte key sorts after samples 0..3 (byte 10 is 9). */
	assert_int_equal(w->n, 4);
	sl_store_read_end(&t);
	sl_store_close(&s);
	free(w);
}

/* --- processes and limits ------------------------------------------------- */

/* Child: open the store, begin a read txn, then die holding it. */
static void
child_reader(int fd, int kill_me)
{
	sl_store *s = NULL;
	sl_store_txn *t = NULL;
	sl_store_opts o = { 1, 0, 0, NULL };
	char c = 'r';

	if (sl_store_open(dir, &o, &s, NULL) != 0 ||
	    sl_store_read_begin(s, &t, NULL) != 0)
		_exit(3);
	if (write(fd, &c, 1) != 1)
		_exit(4);
	if (kill_me)
		for (;;)
			pause();
	_exit(0); /* no read_end, no close */
}

static void
stale_reader(sl_store *s, int kill_me)
{
	sl_store_stat st;
	sl_errmsg why = { "" };
	int fds[2], status, dead = -1;
	uint32_t before;
	pid_t pid;
	char c;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		child_reader(fds[1], kill_me);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], &c, 1), 1);
	close(fds[0]);
	assert_int_equal(sl_store_stat_get(s, &st, &why), 0);
	assert_int_equal(st.readers_used, 1); /* the child's */
	if (kill_me)
		assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (kill_me)
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	else
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	assert_int_equal(sl_store_stat_get(s, &st, &why), 0);
	before = st.readers_used;
	assert_int_equal(before, 1); /* dead, but its slot still taken */
	assert_int_equal(sl_store_reader_check(s, &dead), 0);
	assert_int_equal(dead, 1);
	assert_int_equal(sl_store_stat_get(s, &st, &why), 0);
	assert_int_equal(st.readers_used, before - 1);
	assert_int_equal(sl_store_reader_check(s, &dead), 0);
	assert_int_equal(dead, 0);
}

static void
test_stale_readers(void **state)
{
	sl_store *s = open_store(dir, 0);

	(void)state;
	stale_reader(s, 0);
	stale_reader(s, 1);
	sl_store_close(&s);
}

static void
test_map_full(void **state)
{
	sl_store_opts o = { 0, 1, 1u << 20, NULL }; /* 1 MiB map */
	sl_store *s = NULL;
	sl_store_stat st;
	sl_store_txn *t = NULL;
	sl_errmsg why = { "" };
	uint64_t shard, done;
	walk *w = calloc(1, sizeof *w);
	int rc = 0;

	(void)state;
	assert_non_null(w);
	assert_int_equal(sl_store_open(dir, &o, &s, &why), 0);
	for (shard = 0; shard < 100; shard++) {
		rc = commit_shard(s, 0, shard, shard * 1024, 1024, 0, &why);
		if (rc != 0)
			break;
	}
	assert_int_equal(rc, SL_ELIMIT);
	assert_non_null(strstr(why.text, "map full"));
	done = shard;
	assert_true(done >= 1);
	/* Still usable after the failed transaction. */
	assert_int_equal(sl_store_read_begin(s, &t, &why), 0);
	sl_store_read_end(&t);
	sl_store_close(&s);

	s = open_store(dir, 1);
	assert_int_equal(sl_store_stat_get(s, &st, &why), 0);
	assert_int_equal(st.labels, done * 1024);
	assert_int_equal(st.shards, done);
	assert_int_equal(sl_store_read_begin(s, &t, &why), 0);
	assert_int_equal(sl_store_each_label(t, 0, 0, on_label, w), 0);
	assert_int_equal(w->n, done * 1024);
	assert_int_equal(w->bad, 0);
	sl_store_read_end(&t);
	sl_store_close(&s);
	free(w);
}

static void
test_failed_txn_refuses_commit(void **state)
{
	sl_store_opts o = { 0, 1, 1u << 20, NULL };
	static uint8_t recs[1024 * REC];
	sl_store *s = NULL;
	sl_store_txn *t = NULL;
	sl_errmsg why = { "" };
	int rc = 0;

	(void)state;
	assert_int_equal(sl_store_open(dir, &o, &s, &why), 0);
	make_records(recs, 0, 1024, 0);
	assert_int_equal(sl_store_write_begin(s, &t, &why), 0);
	for (uint64_t i = 0; i < 100 && rc == 0; i++)
		rc = sl_store_put_shard(t, 0, i, i * 1024, 1024, recs, REC, "w",
		    1, &why);
	assert_int_equal(rc, SL_ELIMIT);
	assert_int_equal(sl_store_put_inputs(t, 0, 1, recs, 4, &why),
	    SL_EINVAL);
	assert_int_equal(sl_store_write_commit(&t, &why), SL_EINVAL);
	assert_null(t);
	sl_store_close(&s);
}

/* A registration that never produced a record can be removed, and its
 * index is given again; one with records cannot. One writer per cache. */
static void
test_remove_teacher_and_one_writer(void **state)
{
	sl_store *s = open_store(dir, 0), *second = NULL;
	sl_store_job job = sample_job();
	sl_store_teacher a = sample_teacher("a"), b = sample_teacher("b");
	sl_store_teacher c = sample_teacher("c"), d = sample_teacher("d");
	sl_store_opts o = { 0, 0, 0, NULL };
	sl_errmsg why = { "" };

	(void)state;
	assert_int_equal(sl_store_init_job(s, &job, &why), 0);
	assert_int_equal(sl_store_open(dir, &o, &second, &why), EBUSY);
	assert_non_null(strstr(why.text, "one writer per cache"));
	assert_int_equal(sl_store_register_teacher(s, &a, &why), 0);
	assert_int_equal(sl_store_register_teacher(s, &b, &why), 0);
	assert_int_equal(sl_store_register_teacher(s, &c, &why), 0);
	assert_int_equal(b.index, 1);
	assert_int_equal(commit_shard(s, a.index, 0, 0, 1024, 1, &why), 0);
	assert_int_equal(sl_store_remove_teacher(s, "a", &why), SL_EINVAL);
	assert_non_null(strstr(why.text, "has records"));
	assert_int_equal(sl_store_remove_teacher(s, "zz", &why), SL_ENOTFOUND);
	assert_int_equal(sl_store_remove_teacher(s, "b", &why), 0);
	assert_int_equal(sl_store_remove_teacher(s, "b", &why), SL_ENOTFOUND);
	assert_int_equal(sl_store_register_teacher(s, &d, &why), 0);
	assert_int_equal(d.index, 1); /* the freed index */
	sl_store_close(&s);
	/* Closed: the lock is free for the next writer. */
	assert_int_equal(sl_store_open(dir, &o, &second, &why), 0);
	sl_store_close(&second);
}

/* The refusal names the holder: its pid and what it said it is, with bytes
 * that are not printable replaced (the file is anyone's to write). */
static void
test_writer_lock_names_owner(void **state)
{
	sl_store_opts o = { 0, 0, 0, "unit test on tcp://127.0.0.1:9\x1b[2J" };
	sl_store_opts plain = { 0, 0, 0, NULL };
	sl_store *s = NULL, *second = NULL;
	sl_errmsg why = { "" };
	char want[128];

	(void)state;
	assert_int_equal(sl_store_open(dir, &o, &s, &why), 0);
	assert_int_equal(sl_store_open(dir, &plain, &second, &why), EBUSY);
	snprintf(want, sizeof want, "is written by pid %ld unit test on "
	    "tcp://127.0.0.1:9?[2J: one writer per cache", (long)getpid());
	if (strstr(why.text, want) == NULL)
		fail_msg("refusal '%s' lacks '%s'", why.text, want);
	sl_store_close(&s);
	/* The next writer's own line replaces the old one. */
	assert_int_equal(sl_store_open(dir, &plain, &s, &why), 0);
	assert_int_equal(sl_store_open(dir, &o, &second, &why), EBUSY);
	snprintf(want, sizeof want, "is written by pid %ld: one writer",
	    (long)getpid());
	if (strstr(why.text, want) == NULL)
		fail_msg("refusal '%s' lacks '%s'", why.text, want);
	sl_store_close(&s);
}

/* Entries of directory path, "." and ".." left out. */
static int
count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) != NULL)
		n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* sl_store_copy: the copy is the last commit's snapshot (a write under way
 * is not in it), equal record for record, refuses an existing destination
 * and leaves nothing behind when it fails. */
static void
test_copy_snapshot(void **state)
{
	char src[128], dst1[128], dst2[128], bad[160];
	sl_store *s, *c;
	sl_store_job job = sample_job(), got;
	sl_store_teacher a = sample_teacher("a");
	sl_store_txn *w = NULL, *r = NULL;
	static uint8_t recs[1024 * REC];
	const void *rec;
	size_t len;
	sl_shard_info info;
	sl_errmsg why = { "" };

	(void)state;
	snprintf(src, sizeof src, "%s/src", dir);
	snprintf(dst1, sizeof dst1, "%s/copy1", dir);
	snprintf(dst2, sizeof dst2, "%s/copy2", dir);
	s = open_store(src, 0);
	assert_int_equal(sl_store_init_job(s, &job, &why), 0);
	assert_int_equal(sl_store_register_teacher(s, &a, &why), 0);
	assert_int_equal(commit_shard(s, a.index, 0, 0, 1024, 3, &why), 0);
	/* Shard 1 written but not committed while the copy is taken. */
	make_records(recs, 1024, 1024, 3);
	assert_int_equal(sl_store_write_begin(s, &w, &why), 0);
	assert_int_equal(sl_store_put_shard(w, a.index, 1, 1024, 1024, recs, REC,
	    "w1", 1, &why), 0);
	assert_int_equal(sl_store_copy(s, dst1, &why), 0);
	assert_int_equal(sl_store_write_commit(&w, &why), 0);
	assert_int_equal(sl_store_copy(s, dst2, &why), 0);
	/* An existing destination, a file or a directory, is refused and
	 * kept as it was; no temporary directory is left. */
	assert_int_equal(sl_store_copy(s, dst1, &why), EEXIST);
	assert_non_null(strstr(why.text, "exists"));
	assert_int_equal(count_entries(dir), 3);
	snprintf(bad, sizeof bad, "%s/no/such/dir", dir);
	assert_int_not_equal(sl_store_copy(s, bad, &why), 0);
	assert_int_equal(count_entries(dir), 3);
	sl_store_close(&s);

	c = open_store(dst1, 1);
	assert_int_equal(sl_store_get_job(c, &got, &why), 0);
	assert_memory_equal(got.dataset.sha256, job.dataset.sha256, 32);
	assert_int_equal(sl_store_read_begin(c, &r, &why), 0);
	assert_int_equal(sl_store_get_shard(r, a.index, 0, &info, &why), 0);
	assert_int_equal(info.state, SL_SHARD_DONE);
	assert_int_equal(sl_store_get_shard(r, a.index, 1, &info, &why),
	    SL_ENOTFOUND);
	assert_int_equal(sl_store_get_label(r, a.index, 1024, &rec, &len),
	    SL_ENOTFOUND);
	make_records(recs, 0, 1024, 3);
	for (uint64_t i = 0; i < 1024; i++) {
		assert_int_equal(sl_store_get_label(r, a.index, i, &rec, &len), 0);
		assert_int_equal(len, REC);
		assert_memory_equal(rec, recs + i * REC, REC);
	}
	sl_store_read_end(&r);
	sl_store_close(&c);

	c = open_store(dst2, 1);
	assert_int_equal(sl_store_read_begin(c, &r, &why), 0);
	assert_int_equal(sl_store_get_shard(r, a.index, 1, &info, &why), 0);
	make_records(recs, 1024, 1024, 3);
	for (uint64_t i = 0; i < 1024; i++) {
		assert_int_equal(sl_store_get_label(r, a.index, 1024 + i, &rec,
		    &len), 0);
		assert_memory_equal(rec, recs + i * REC, REC);
	}
	sl_store_read_end(&r);
	sl_store_close(&c);
}

/* A job of part of the rows (--rows): kept in meta "rows", read back,
 * compared by init_job like the rest of the job; ranges off shard
 * boundaries or outside the rows are refused; a malformed entry is
 * SL_EFORMAT naming it. */
static void
test_job_rows_range(void **state)
{
	sl_store *s = open_store(dir, 0);
	sl_store_job job = sample_job(), got, other;
	sl_errmsg why = { "" };
	static const uint8_t bad[] = { 0x92, 0x01, 0x02 }; /* [1, 2] */

	(void)state;
	/* sample_job: 5000 rows in shards of 1024. */
	job.rows_first = 1024;
	job.rows_end = 3072;
	other = job;
	other.rows_first = 2000;
	assert_int_equal(sl_store_init_job(s, &other, &why), SL_EINVAL);
	other.rows_first = 1024;
	other.rows_end = 3000; /* not a boundary, not the end */
	assert_int_equal(sl_store_init_job(s, &other, &why), SL_EINVAL);
	assert_non_null(strstr(why.text, "rows 1024:3000 is not a range"));
	other.rows_end = 6144; /* past the rows */
	assert_int_equal(sl_store_init_job(s, &other, &why), SL_EINVAL);
	assert_int_equal(sl_store_init_job(s, &job, &why), 0);
	assert_int_equal(sl_store_get_job(s, &got, &why), 0);
	assert_int_equal(got.rows_first, 1024);
	assert_int_equal(got.rows_end, 3072);
	assert_int_equal(sl_store_init_job(s, &job, &why), 0); /* the same */
	other = job;
	other.rows_end = 0; /* the whole dataset: another job */
	assert_int_equal(sl_store_init_job(s, &other, &why), SL_EMISMATCH);
	assert_non_null(strstr(why.text, "rows 1024:3072"));
	other.rows_first = 3072;
	other.rows_end = 5000; /* the end, not a boundary: a valid range */
	assert_int_equal(sl_store_init_job(s, &other, &why), SL_EMISMATCH);
	sl_store_close(&s);

	/* A whole job reads back as 0:rows, with no "rows" entry. */
	rm_rf(dir);
	s = open_store(dir, 0);
	job = sample_job();
	assert_int_equal(sl_store_init_job(s, &job, &why), 0);
	assert_int_equal(sl_store_get_job(s, &got, &why), 0);
	assert_int_equal(got.rows_first, 0);
	assert_int_equal(got.rows_end, 5000);
	sl_store_close(&s);
	raw_put("meta", "rows", 4, bad, sizeof bad); /* 1 is no boundary */
	s = open_store(dir, 1);
	assert_int_equal(sl_store_get_job(s, &got, &why), SL_EFORMAT);
	assert_non_null(strstr(why.text, "rows"));
	sl_store_close(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_job_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_audit_counters, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_teacher_and_one_writer,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_writer_lock_names_owner,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_copy_snapshot, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_job_rows_range, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_readonly_missing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_register_teacher, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_teacher_channels, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_teacher_invalid, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_teacher_limit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_put_shard_roundtrip, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_quarantine_reset_inputs,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_layout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_and_mvcc, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_views_register, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_views_records, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_views_schema1, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_meta, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_shards_and_keys,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_readers, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_map_full, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_txn_refuses_commit,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

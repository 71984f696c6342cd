/* bench_store - figures, not thresholds.
 *
 * LMDB's raw batched put rate for the broker's commit pattern against
 * sl_store_put_shard: 10-class f32 records (52 bytes) under 12-byte keys,
 * 1024 records per shard, SHARDS_PER_TXN shards per durable write
 * transaction, shards in ascending order, each run in a fresh mkdtemp
 * directory ($TMPDIR or /tmp). Three variants:
 *
 *   raw put       mdb_put(key, value) per record
 *   raw reserve   mdb_put(MDB_RESERVE) + memcpy per record
 *   store         sl_store_put_shard per shard (+ its shards entry)
 *
 * The variants run alternately in ROUNDS rounds and the median round of each
 * is reported, so all see the same machine and disk load. The ratio
 * store / raw put is what the store's layer costs on top of LMDB.
 */
#include <lmdb.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sl_store.h"

#define REC 52
#define SHARD_ROWS 1024
#define SHARDS_PER_TXN 64
#define TXNS 8
#define ROUNDS 5

static uint8_t recs[SHARD_ROWS * REC];

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int
cmp_double(const void *a, const void *b)
{
	const double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static void
die(const char *what, int rc, const char *detail)
{
	fprintf(stderr, "bench_store: %s: %d %s\n", what, rc, detail);
	exit(1);
}

static void
rm_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char sub[512];

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
		unlink(sub);
	}
	closedir(d);
	rmdir(path);
}

static void
fresh_dir(char *dir, size_t len)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, len, "%s/bench_store.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL)
		die("mkdtemp", 0, dir);
}

static void
key12(uint8_t k[12], uint32_t teacher, uint64_t n)
{
	for (int i = 3; i >= 0; i--, teacher >>= 8)
		k[i] = (uint8_t)teacher;
	for (int i = 11; i >= 4; i--, n >>= 8)
		k[i] = (uint8_t)n;
}

/* Records per second of raw mdb_put batches; reserve: MDB_RESERVE. */
static double
run_raw(int reserve)
{
	char dir[256];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t kb[12];
	MDB_val k = { sizeof kb, kb }, v;
	double t0, t1;
	int rc;

	fresh_dir(dir, sizeof dir);
	if ((rc = mdb_env_create(&env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(env, 4)) != 0 ||
	    (rc = mdb_env_set_mapsize(env, (size_t)1 << 40)) != 0 ||
	    (rc = mdb_env_open(env, dir, MDB_NOTLS, 0644)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "labels", MDB_CREATE, &dbi)) != 0 ||
	    (rc = mdb_txn_commit(txn)) != 0)
		die("raw open", rc, mdb_strerror(rc));
	t0 = now_s();
	for (uint64_t x = 0; x < TXNS; x++) {
		if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
			die("raw begin", rc, mdb_strerror(rc));
		for (uint64_t sh = 0; sh < SHARDS_PER_TXN; sh++) {
			uint64_t shard = x * SHARDS_PER_TXN + sh;

			for (uint64_t i = 0; i < SHARD_ROWS; i++) {
				key12(kb, 0, shard * SHARD_ROWS + i);
				v.mv_size = REC;
				v.mv_data = recs + i * REC;
				rc = mdb_put(txn, dbi, &k, &v,
				    reserve ? MDB_RESERVE : 0);
				if (rc != 0)
					die("raw put", rc, mdb_strerror(rc));
				if (reserve)
					memcpy(v.mv_data, recs + i * REC, REC);
			}
		}
		if ((rc = mdb_txn_commit(txn)) != 0)
			die("raw commit", rc, mdb_strerror(rc));
	}
	t1 = now_s();
	mdb_env_close(env);
	rm_dir(dir);
	return (double)TXNS * SHARDS_PER_TXN * SHARD_ROWS / (t1 - t0);
}

static double
run_store(void)
{
	char dir[256];
	sl_store *s = NULL;
	sl_store_txn *t = NULL;
	sl_errmsg why = { "" };
	double t0, t1;
	int rc;

	fresh_dir(dir, sizeof dir);
	if ((rc = sl_store_open(dir, NULL, &s, &why)) != 0)
		die("store open", rc, why.text);
	t0 = now_s();
	for (uint64_t x = 0; x < TXNS; x++) {
		if ((rc = sl_store_write_begin(s, &t, &why)) != 0)
			die("store begin", rc, why.text);
		for (uint64_t sh = 0; sh < SHARDS_PER_TXN; sh++) {
			uint64_t shard = x * SHARDS_PER_TXN + sh;

			rc = sl_store_put_shard(t, 0, shard, shard * SHARD_ROWS,
			    SHARD_ROWS, recs, REC, "bench-worker", 1, &why);
			if (rc != 0)
				die("store put", rc, why.text);
		}
		if ((rc = sl_store_write_commit(&t, &why)) != 0)
			die("store commit", rc, why.text);
	}
	t1 = now_s();
	sl_store_close(&s);
	rm_dir(dir);
	return (double)TXNS * SHARDS_PER_TXN * SHARD_ROWS / (t1 - t0);
}

int
main(void)
{
	double put[ROUNDS], res[ROUNDS], st[ROUNDS];

	for (size_t i = 0; i < sizeof recs; i++)
		recs[i] = (uint8_t)(i * 131u + 7u);
	for (int r = 0; r < ROUNDS; r++) {
		put[r] = run_raw(0);
		res[r] = run_raw(1);
		st[r] = run_store();
	}
	qsort(put, ROUNDS, sizeof *put, cmp_double);
	qsort(res, ROUNDS, sizeof *res, cmp_double);
	qsort(st, ROUNDS, sizeof *st, cmp_double);
	printf("store: %d-byte records, 12-byte keys, %d records/shard, "
	    "%d shards/txn, %d durable txns, median of %d rounds\n",
	    REC, SHARD_ROWS, SHARDS_PER_TXN, TXNS, ROUNDS);
	printf("  raw mdb_put            %12.0f records/s\n", put[ROUNDS / 2]);
	printf("  raw mdb_put RESERVE    %12.0f records/s\n", res[ROUNDS / 2]);
	printf("  sl_store_put_shard     %12.0f records/s\n", st[ROUNDS / 2]);
	printf("  ratio store/raw put    %12.3f\n",
	    st[ROUNDS / 2] / put[ROUNDS / 2]);
	printf("  ratio reserve/raw put  %12.3f\n",
	    res[ROUNDS / 2] / put[ROUNDS / 2]);
	return 0;
}

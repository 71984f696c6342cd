/* sl_fingerprint.c - dataset fingerprints, their memo files, row checks.
 * See sl_fingerprint.h for what a fingerprint proves and when the memo is
 * trusted. The memo is outside input (any process of the user may write
 * it): every field is checked, its size must be what the dataset itself
 * implies before anything is read into the chunk table, and a mismatch of
 * any kind falls back to hashing the data.
 */
#include "sl_fingerprint.h"

#include "sl_data_impl.h"
#include "sl_file.h"
#include "sl_log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>
#include <zlib.h>

#define MEMO_MAGIC "SLFPMEM1"
#define MEMO_HEAD_BYTES (8 + 7 * 8 + 8 + 4 + 4 + 8 * SL_DATA_MAX_DIMS + 32 + 16)

const char *
sl_fingerprint_memo_dir(char *buf, size_t cap)
{
	const char *e = getenv("SOFTLABEL_FINGERPRINTS");
	int n;

	if (e != NULL) {
		if (*e == '\0' || strcmp(e, "off") == 0)
			return NULL;
		n = snprintf(buf, cap, "%s", e);
	} else if ((e = getenv("XDG_CACHE_HOME")) != NULL && *e == '/') {
		n = snprintf(buf, cap, "%s/softlabel/fingerprints", e);
	} else if ((e = getenv("HOME")) != NULL && *e == '/') {
		n = snprintf(buf, cap, "%s/.cache/softlabel/fingerprints", e);
	} else {
		return NULL;
	}
	return n > 0 && (size_t)n < cap ? buf : NULL;
}

/* Rows per chunk for rows of row_bytes (sl_fingerprint.h). */
static size_t
chunk_rows_for(size_t row_bytes)
{
	size_t n = row_bytes == 0 ? SL_FP_CHUNK_MAX_ROWS :
	    SL_FP_CHUNK_BYTES / row_bytes;

	return n == 0 ? 1 : n > SL_FP_CHUNK_MAX_ROWS ? SL_FP_CHUNK_MAX_ROWS : n;
}

static void
chunk_hash(const sl_dataset *ds, size_t c, uint8_t out[32])
{
	const size_t first = c * ds->chunk_rows;
	const size_t n = ds->rows - first < ds->chunk_rows ? ds->rows - first :
	    ds->chunk_rows;

	crypto_generichash(out, 32, ds->data + first * ds->row_bytes,
	    (unsigned long long)(n * ds->row_bytes), NULL, 0);
}

/* The shape part of the fingerprint, from the handle. */
static void
fp_head(const sl_dataset *ds, sl_fingerprint *fp)
{
	memset(fp, 0, sizeof *fp);
	fp->rows = ds->rows;
	fp->ndim = ds->ndim;
	memcpy(fp->shape, ds->shape, sizeof fp->shape);
	fp->dtype = ds->dtype;
}

/* One pass: the SHA-256 of all sample bytes and every chunk's hash. */
static int
hash_all(sl_dataset *ds, uint8_t (*chunk)[32])
{
	crypto_hash_sha256_state st;

	fp_head(ds, &ds->fp);
	crypto_hash_sha256_init(&st);
	for (size_t c = 0; c < ds->nchunks; c++) {
		const size_t first = c * ds->chunk_rows;
		const size_t n = ds->rows - first < ds->chunk_rows ?
		    ds->rows - first : ds->chunk_rows;

		crypto_hash_sha256_update(&st, ds->data + first * ds->row_bytes,
		    (unsigned long long)(n * ds->row_bytes));
		chunk_hash(ds, c, chunk[c]);
	}
	crypto_hash_sha256_final(&st, ds->fp.sha256);
	ds->bytes_hashed += (uint64_t)ds->rows * ds->row_bytes;
	return 0;
}

/* --- the memo file ---------------------------------------------------------- */

static size_t
put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8); /* little-endian host (sl_data.c checks) */
	return 8;
}

/* The memo's fixed head for ds (identity, shape, fingerprint, chunking)
 * into h[MEMO_HEAD_BYTES]. */
static void
memo_head(const sl_dataset *ds, const sl_fingerprint *fp, uint8_t *h)
{
	size_t at = 0;
	uint32_t v;

	memcpy(h, MEMO_MAGIC, 8);
	at = 8;
	at += put64(h + at, (uint64_t)ds->st.st_dev);
	at += put64(h + at, (uint64_t)ds->st.st_ino);
	at += put64(h + at, (uint64_t)ds->st.st_size);
	at += put64(h + at, (uint64_t)ds->st.st_mtim.tv_sec);
	at += put64(h + at, (uint64_t)ds->st.st_mtim.tv_nsec);
	at += put64(h + at, (uint64_t)ds->st.st_ctim.tv_sec);
	at += put64(h + at, (uint64_t)ds->st.st_ctim.tv_nsec);
	at += put64(h + at, fp->rows);
	v = fp->ndim;
	memcpy(h + at, &v, 4);
	at += 4;
	v = (uint32_t)fp->dtype;
	memcpy(h + at, &v, 4);
	at += 4;
	for (int i = 0; i < SL_DATA_MAX_DIMS; i++)
		at += put64(h + at, fp->shape[i]);
	memcpy(h + at, fp->sha256, 32);
	at += 32;
	at += put64(h + at, ds->chunk_rows);
	at += put64(h + at, ds->nchunks);
}

static int
memo_path(const sl_dataset *ds, const char *dir, char *out, size_t cap)
{
	int n = snprintf(out, cap, "%s/%" PRIu64 "-%" PRIu64 ".fp", dir,
	    (uint64_t)ds->st.st_dev, (uint64_t)ds->st.st_ino);

	return n > 0 && (size_t)n < cap ? 0 : ENAMETOOLONG;
}

/* Fill ds->fp and chunk from the memo when it describes this very file;
 * 1 found, 0 not (absent, stale, malformed: all the same). */
static int
memo_read(sl_dataset *ds, const char *dir, uint8_t (*chunk)[32])
{
	char path[SL_FILE_PATH_MAX];
	const size_t want = MEMO_HEAD_BYTES + ds->nchunks * 32 + 4;
	uint8_t head[MEMO_HEAD_BYTES];
	sl_fingerprint fp;
	uint8_t *buf = NULL;
	size_t len;
	uint32_t crc;
	int ok = 0;

	if (memo_path(ds, dir, path, sizeof path) != 0 ||
	    sl_file_read(path, want, (void **)&buf, &len, NULL) != 0)
		return 0;
	if (len != want)
		goto out;
	memcpy(&crc, buf + len - 4, 4);
	if (crc != (uint32_t)crc32(0L, buf, (uInt)(len - 4)))
		goto out;
	/* Everything but the hash must be what this open file is: build the
	 * head we would write, with the memo's hash, and compare. */
	fp_head(ds, &fp);
	memcpy(fp.sha256, buf + MEMO_HEAD_BYTES - 16 - 32, 32);
	memo_head(ds, &fp, head);
	if (memcmp(head, buf, MEMO_HEAD_BYTES) != 0)
		goto out;
	ds->fp = fp;
	memcpy(chunk, buf + MEMO_HEAD_BYTES, ds->nchunks * 32);
	ok = 1;
out:
	free(buf);
	return ok;
}

/* mkdir -p dir, mode 0755. */
static int
make_dirs(const char *dir)
{
	char p[SL_FILE_PATH_MAX];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof p)
		return ENAMETOOLONG;
	memcpy(p, dir, n + 1);
	for (size_t i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != '\0')
			continue;
		p[i] = '\0';
		if (mkdir(p, 0755) != 0 && errno != EEXIST)
			return errno;
		p[i] = i == n ? '\0' : '/';
	}
	return 0;
}

static int
memo_write(const sl_dataset *ds, const char *dir, uint8_t (*chunk)[32],
    sl_errmsg *why)
{
	char path[SL_FILE_PATH_MAX];
	uint8_t head[MEMO_HEAD_BYTES];
	sl_atomic_file f;
	uint32_t crc;
	int rc;

	if ((rc = make_dirs(dir)) != 0)
		return sl_errmsg_set(why, rc, "create %s: %s", dir, strerror(rc));
	if ((rc = memo_path(ds, dir, path, sizeof path)) != 0)
		return sl_errmsg_set(why, rc, "memo path in %s too long", dir);
	memo_head(ds, &ds->fp, head);
	crc = (uint32_t)crc32(0L, head, sizeof head);
	crc = (uint32_t)crc32(crc, (const Bytef *)chunk, (uInt)(ds->nchunks * 32));
	rc = sl_atomic_open(&f, path, why);
	if (rc == 0)
		rc = sl_atomic_write(&f, head, sizeof head, why);
	if (rc == 0 && ds->nchunks)
		rc = sl_atomic_write(&f, chunk, ds->nchunks * 32, why);
	if (rc == 0)
		rc = sl_atomic_write(&f, &crc, 4, why);
	if (rc == 0)
		rc = sl_atomic_commit(&f, why);
	sl_atomic_abort(&f);
	return rc;
}

/* --- the public calls --------------------------------------------------------- */

int
sl_dataset_fingerprint_memo(sl_dataset *ds, const char *memo_dir,
    sl_fingerprint *out, int *remembered, sl_errmsg *why)
{
	uint8_t (*chunk)[32] = NULL;
	sl_errmsg mwhy = { "" };
	int rc = 0, found = 0;

	pthread_mutex_lock(&ds->fp_lock);
	if (ds->fp_valid) {
		found = ds->fp_from_memo;
		goto done;
	}
	if (sodium_init() < 0) {
		rc = sl_errmsg_set(why, SL_EUNSUPPORTED, "libsodium failed to "
		    "initialise");
		goto done;
	}
	ds->chunk_rows = chunk_rows_for(ds->row_bytes);
	ds->nchunks = (ds->rows + ds->chunk_rows - 1) / ds->chunk_rows;
	/* 32 bytes per SL_FP_CHUNK_BYTES of data that is there: justified. */
	if ((chunk = malloc(ds->nchunks * 32 + 1)) == NULL) {
		rc = sl_errmsg_set(why, SL_ENOMEM, "out of memory for %zu chunk "
		    "hashes", ds->nchunks);
		goto done;
	}
	found = memo_dir != NULL && memo_read(ds, memo_dir, chunk);
	if (!found) {
		hash_all(ds, chunk);
		if (memo_dir != NULL && memo_write(ds, memo_dir, chunk, &mwhy) != 0)
			sl_info("fingerprint memo not written (the next start "
			    "hashes the dataset again): %s", mwhy.text);
	}
	ds->chunk = chunk;
	ds->fp_valid = 1;
	ds->fp_from_memo = found;
done:
	if (rc == 0) {
		*out = ds->fp;
		if (remembered != NULL)
			*remembered = found;
	}
	pthread_mutex_unlock(&ds->fp_lock);
	return rc;
}

int
sl_dataset_fingerprint(sl_dataset *ds, sl_fingerprint *out)
{
	return sl_dataset_fingerprint_memo(ds, NULL, out, NULL, NULL);
}

int
sl_dataset_verify_rows(sl_dataset *ds, size_t first, size_t n, sl_errmsg *why)
{
	uint8_t h[32];
	size_t c0, c1;
	int rc = 0;

	pthread_mutex_lock(&ds->fp_lock);
	if (!ds->fp_valid || first > ds->rows || n > ds->rows - first) {
		rc = sl_errmsg_set(why, SL_EINVAL, ds->fp_valid ? "rows %zu..%zu "
		    "are past the dataset's %zu" : "no fingerprint taken yet",
		    first, first + n, ds->rows);
		goto out;
	}
	if (n == 0 || ds->heap != NULL || ds->row_bytes == 0)
		goto out; /* in memory since open: nothing can change it */
	c0 = first / ds->chunk_rows;
	c1 = (first + n - 1) / ds->chunk_rows;
	for (size_t c = c0; c <= c1; c++) {
		const size_t a = c * ds->chunk_rows;
		const size_t m = ds->rows - a < ds->chunk_rows ? ds->rows - a :
		    ds->chunk_rows;

		chunk_hash(ds, c, h);
		ds->bytes_hashed += (uint64_t)m * ds->row_bytes;
		if (sodium_memcmp(h, ds->chunk[c], 32) != 0) {
			rc = sl_errmsg_set(why, SL_EMISMATCH, "rows %zu..%zu changed "
			    "since the dataset's fingerprint was taken: its bytes "
			    "are no longer the ones the job was made from", a,
			    a + m - 1);
			goto out;
		}
	}
out:
	pthread_mutex_unlock(&ds->fp_lock);
	return rc;
}

int
sl_dataset_fingerprint_start(sl_dataset *ds, const char *path,
    sl_fingerprint *out, sl_errmsg *why)
{
	char dir[SL_FILE_PATH_MAX];
	const char *memo = sl_fingerprint_memo_dir(dir, sizeof dir);
	const uint64_t before = sl_dataset_bytes_hashed(ds);
	int remembered = 0, known, rc;

	pthread_mutex_lock(&ds->fp_lock);
	known = ds->fp_valid;
	pthread_mutex_unlock(&ds->fp_lock);
	if ((rc = sl_dataset_fingerprint_memo(ds, memo, out, &remembered,
	    why)) != 0 || known)
		return rc;
	sl_info("dataset %s: fingerprint %s (%" PRIu64 " of %" PRIu64 " sample "
	    "bytes read to hash)", path, remembered ? "remembered from its memo"
	    : memo ? "computed and remembered" : "computed (no memo: "
	    "SOFTLABEL_FINGERPRINTS off or no HOME)",
	    sl_dataset_bytes_hashed(ds) - before,
	    (uint64_t)ds->rows * ds->row_bytes);
	return 0;
}

uint64_t
sl_dataset_bytes_hashed(sl_dataset *ds)
{
	uint64_t n;

	pthread_mutex_lock(&ds->fp_lock);
	n = ds->bytes_hashed;
	pthread_mutex_unlock(&ds->fp_lock);
	return n;
}

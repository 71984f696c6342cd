/* test_fingerprint.c - sl_fingerprint: the memo that spares rereading a
 * dataset at start, when it is used and when not, and the row checks that
 * catch bytes changed in place.
 *
 * Bytes read are measured with the handle's counter
 * (sl_dataset_bytes_hashed), never with time.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "sl_data.h"
#include "sl_fingerprint.h"

#define ROWS 3000
#define DIM 784 /* chunks of 1024 rows (1337 would fit 1 MiB): three */
#define CHUNK_ROWS SL_FP_CHUNK_MAX_ROWS

static char dir[64], memo[96], data[96];
static uint8_t rows[ROWS * DIM];

static int
rm_rf(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char p[512];

	if (d == NULL)
		return unlink(path);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", path, e->d_name);
		rm_rf(p);
	}
	closedir(d);
	return rmdir(path);
}

static int
setup(void **state)
{
	const uint64_t shape[2] = { ROWS, DIM };
	sl_errmsg why = { "" };

	(void)state;
	snprintf(dir, sizeof dir, "/tmp/test_fingerprint.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(memo, sizeof memo, "%s/memo/a/b", dir);
	snprintf(data, sizeof data, "%s/x.npy", dir);
	for (size_t i = 0; i < sizeof rows; i++)
		rows[i] = (uint8_t)(i * 2654435761u >> 13);
	return sl_npy_write(data, "|u1", shape, 2, rows, &why);
}

static int
teardown(void **state)
{
	(void)state;
	return rm_rf(dir);
}

/* Open path, take its fingerprint through the memo in mdir; returns the
 * handle, with *remembered and *read (bytes hashed) set. */
static sl_dataset *
open_fp(const char *path, const char *mdir, sl_fingerprint *fp,
    int *remembered, uint64_t *read)
{
	sl_dataset *ds = NULL;
	sl_errmsg why = { "" };

	if (sl_dataset_open(path, &ds, &why) != 0)
		fail_msg("open %s: %s", path, why.text);
	assert_int_equal(sl_dataset_fingerprint_memo(ds, mdir, fp, remembered,
	    &why), 0);
	*read = sl_dataset_bytes_hashed(ds);
	return ds;
}

/* The first open hashes every byte and writes the memo; the second reads
 * none and gets the same fingerprint as a plain, memo-less one. */
static void
test_second_open_reads_nothing(void **state)
{
	sl_fingerprint a, b, plain;
	sl_dataset *ds;
	int rem;
	uint64_t n;

	(void)state;
	ds = open_fp(data, memo, &a, &rem, &n);
	assert_int_equal(rem, 0);
	assert_int_equal(n, (uint64_t)ROWS * DIM);
	sl_dataset_close(&ds);

	ds = open_fp(data, memo, &b, &rem, &n);
	assert_int_equal(rem, 1);
	assert_int_equal(n, 0);
	assert_memory_equal(&a, &b, sizeof a);
	/* Its chunk hashes came from the memo too: the rows verify. */
	assert_int_equal(sl_dataset_verify_rows(ds, 0, ROWS, NULL), 0);
	assert_int_equal(sl_dataset_bytes_hashed(ds), (uint64_t)ROWS * DIM);
	sl_dataset_close(&ds);

	ds = open_fp(data, NULL, &plain, &rem, &n);
	assert_int_equal(rem, 0);
	assert_memory_equal(&a, &plain, sizeof a);
	sl_dataset_close(&ds);
}

/* A file written again, even with the same bytes and its mtime put back,
 * has a new ctime: the memo is not used. */
static void
test_rewritten_file_is_rehashed(void **state)
{
	struct stat st;
	struct timespec ts[2];
	sl_fingerprint a, b;
	sl_dataset *ds;
	int rem, fd;
	uint64_t n;

	(void)state;
	ds = open_fp(data, memo, &a, &rem, &n);
	sl_dataset_close(&ds);
	assert_int_equal(stat(data, &st), 0);
	/* Let the clock move past the ctime's granularity. */
	for (int i = 0; i < 100; i++) {
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		if (now.tv_sec != st.st_ctim.tv_sec || now.tv_nsec !=
		    st.st_ctim.tv_nsec)
			break;
		usleep(1000);
	}
	assert_true((fd = open(data, O_WRONLY)) >= 0);
	assert_int_equal(pwrite(fd, rows + 5, 1, 128 + 5), 1); /* same byte */
	close(fd);
	ts[0] = st.st_atim;
	ts[1] = st.st_mtim;
	assert_int_equal(utimensat(AT_FDCWD, data, ts, 0), 0);
	ds = open_fp(data, memo, &b, &rem, &n);
	assert_int_equal(rem, 0);
	assert_int_equal(n, (uint64_t)ROWS * DIM);
	assert_memory_equal(&a, &b, sizeof a); /* same bytes, same print */
	sl_dataset_close(&ds);
}

/* A memo with a flipped byte, one cut short, one of another file (another
 * inode): each is ignored and the data is hashed. */
static void
test_bad_memo_is_ignored(void **state)
{
	char path[256], other[96];
	struct stat st;
	sl_fingerprint a, b;
	sl_dataset *ds;
	int rem, fd;
	uint64_t n;
	uint8_t byte;

	(void)state;
	ds = open_fp(data, memo, &a, &rem, &n);
	sl_dataset_close(&ds);
	assert_int_equal(stat(data, &st), 0);
	snprintf(path, sizeof path, "%s/%ju-%ju.fp", memo, (uintmax_t)st.st_dev,
	    (uintmax_t)st.st_ino);
	assert_true((fd = open(path, O_RDWR)) >= 0);
	assert_int_equal(pread(fd, &byte, 1, 150), 1); /* inside the sha256 */
	byte ^= 0x10;
	assert_int_equal(pwrite(fd, &byte, 1, 150), 1);
	ds = open_fp(data, memo, &b, &rem, &n);
	assert_int_equal(rem, 0); /* the CRC caught it */
	assert_memory_equal(&a, &b, sizeof a);
	sl_dataset_close(&ds);
	/* That open wrote a good memo again; now cut it short. */
	assert_int_equal(truncate(path, 100), 0);
	ds = open_fp(data, memo, &b, &rem, &n);
	assert_int_equal(rem, 0);
	sl_dataset_close(&ds);
	close(fd);
	/* A copy of the data is another inode: its own memo. */
	snprintf(other, sizeof other, "%s/y.npy", dir);
	{
		const uint64_t shape[2] = { ROWS, DIM };
		sl_errmsg why = { "" };

		assert_int_equal(sl_npy_write(other, "|u1", shape, 2, rows, &why), 0);
	}
	ds = open_fp(other, memo, &b, &rem, &n);
	assert_int_equal(rem, 0);
	assert_int_equal(n, (uint64_t)ROWS * DIM);
	assert_memory_equal(a.sha256, b.sha256, 32);
	sl_dataset_close(&ds);
}

/* Bytes changed in place under an open handle: rows of the changed chunk
 * fail with SL_EMISMATCH naming them, rows of the others pass. */
static void
test_changed_in_place(void **state)
{
	sl_fingerprint a;
	sl_dataset *ds;
	sl_errmsg why = { "" };
	int rem, fd;
	uint64_t n;
	uint8_t byte;
	const size_t row = CHUNK_ROWS + 10; /* in the second chunk */
	char want[96];

	(void)state;
	ds = open_fp(data, memo, &a, &rem, &n);
	assert_int_equal(sl_dataset_verify_rows(ds, 0, ROWS, &why), 0);
	assert_true((fd = open(data, O_WRONLY)) >= 0);
	byte = (uint8_t)(rows[row * DIM + 3] ^ 0x01);
	assert_int_equal(pwrite(fd, &byte, 1, 128 + (off_t)(row * DIM + 3)), 1);
	close(fd);
	n = sl_dataset_bytes_hashed(ds);
	assert_int_equal(sl_dataset_verify_rows(ds, row, 1, &why), SL_EMISMATCH);
	snprintf(want, sizeof want, "rows %zu..%zu changed", (size_t)CHUNK_ROWS,
	    (size_t)(2 * CHUNK_ROWS - 1));
	if (strstr(why.text, want) == NULL)
		fail_msg("'%s' lacks '%s'", why.text, want);
	/* One row costs its chunk. */
	assert_int_equal(sl_dataset_bytes_hashed(ds) - n,
	    (uint64_t)CHUNK_ROWS * DIM);
	assert_int_equal(sl_dataset_verify_rows(ds, 0, CHUNK_ROWS, &why), 0);
	assert_int_equal(sl_dataset_verify_rows(ds, 2 * CHUNK_ROWS,
	    ROWS - 2 * CHUNK_ROWS, &why), 0);
	assert_int_equal(sl_dataset_verify_rows(ds, CHUNK_ROWS - 1, 2, &why),
	    SL_EMISMATCH);
	sl_dataset_close(&ds);
	/* Reopened, the memo is stale (ctime): the new bytes get a new
	 * fingerprint, not the old one. */
	{
		sl_fingerprint b;

		ds = open_fp(data, memo, &b, &rem, &n);
		assert_int_equal(rem, 0);
		assert_memory_not_equal(a.sha256, b.sha256, 32);
		sl_dataset_close(&ds);
	}
}

static void
test_verify_misuse_and_memo_dir(void **state)
{
	sl_dataset *ds = NULL;
	sl_fingerprint fp;
	sl_errmsg why = { "" };
	char buf[256], file[96];
	int rem = -1;

	(void)state;
	assert_int_equal(sl_dataset_open(data, &ds, &why), 0);
	assert_int_equal(sl_dataset_verify_rows(ds, 0, 1, &why), SL_EINVAL);
	assert_non_null(strstr(why.text, "no fingerprint"));
	/* A memo directory that cannot be made (a file is in the way): the
	 * fingerprint is still taken. */
	snprintf(file, sizeof file, "%s/afile", dir);
	fclose(fopen(file, "w"));
	snprintf(buf, sizeof buf, "%s/sub", file);
	assert_int_equal(sl_dataset_fingerprint_memo(ds, buf, &fp, &rem, &why), 0);
	assert_int_equal(rem, 0);
	assert_int_equal(sl_dataset_verify_rows(ds, ROWS - 1, 2, &why), SL_EINVAL);
	assert_int_equal(sl_dataset_verify_rows(ds, ROWS, 0, &why), 0);
	sl_dataset_close(&ds);

	setenv("SOFTLABEL_FINGERPRINTS", "/x/fp", 1);
	assert_string_equal(sl_fingerprint_memo_dir(buf, sizeof buf), "/x/fp");
	setenv("SOFTLABEL_FINGERPRINTS", "off", 1);
	assert_null(sl_fingerprint_memo_dir(buf, sizeof buf));
	unsetenv("SOFTLABEL_FINGERPRINTS");
	setenv("XDG_CACHE_HOME", "/c", 1);
	assert_string_equal(sl_fingerprint_memo_dir(buf, sizeof buf),
	    "/c/softlabel/fingerprints");
	unsetenv("XDG_CACHE_HOME");
	setenv("HOME", "/h", 1);
	assert_string_equal(sl_fingerprint_memo_dir(buf, sizeof buf),
	    "/h/.cache/softlabel/fingerprints");
	unsetenv("HOME");
	assert_null(sl_fingerprint_memo_dir(buf, sizeof buf));
}

/* IDX.gz is inflated into memory at open: its memo spares the hashing,
 * and its rows, which nothing can change, are never hashed again. */
static void
test_gz_in_memory(void **state)
{
	char gz[96];
	uint8_t head[16];
	sl_fingerprint a, b, npy;
	sl_dataset *ds;
	gzFile f;
	int rem;
	uint64_t n;

	(void)state;
	snprintf(gz, sizeof gz, "%s/x.idx.gz", dir);
	head[0] = head[1] = 0;
	head[2] = 0x08;
	head[3] = 2;
	for (int i = 0; i < 4; i++) {
		head[4 + i] = (uint8_t)((uint32_t)ROWS >> (24 - 8 * i));
		head[8 + i] = (uint8_t)((uint32_t)DIM >> (24 - 8 * i));
	}
	assert_non_null(f = gzopen(gz, "wb"));
	assert_int_equal(gzwrite(f, head, 12), 12);
	assert_int_equal(gzwrite(f, rows, sizeof rows), (int)sizeof rows);
	assert_int_equal(gzclose(f), Z_OK);
	ds = open_fp(gz, memo, &a, &rem, &n);
	assert_int_equal(rem, 0);
	assert_int_equal(n, (uint64_t)ROWS * DIM);
	sl_dataset_close(&ds);
	ds = open_fp(gz, memo, &b, &rem, &n);
	assert_int_equal(rem, 1);
	assert_int_equal(n, 0);
	assert_int_equal(sl_dataset_verify_rows(ds, 0, ROWS, NULL), 0);
	assert_int_equal(sl_dataset_bytes_hashed(ds), 0);
	sl_dataset_close(&ds);
	ds = open_fp(data, NULL, &npy, &rem, &n);
	assert_memory_equal(a.sha256, npy.sha256, 32);
	sl_dataset_close(&ds);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_second_open_reads_nothing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_rewritten_file_is_rehashed,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_memo_is_ignored, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_changed_in_place, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_verify_misuse_and_memo_dir,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_gz_in_memory, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

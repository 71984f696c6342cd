/* Return codes: the SL_E* codes are disjoint from every LMDB code and from
 * errno values, and sl_strerror names each kind with its own words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <lmdb.h>
#include <string.h>

#include "sl_err.h"

/* Every code lmdb.h defines, listed by name: a code added to LMDB and
 * missing here still falls in [MDB_KEYEXIST, MDB_LAST_ERRCODE], which the
 * range test covers. */
static const int mdb_codes[] = {
	MDB_SUCCESS, MDB_KEYEXIST, MDB_NOTFOUND, MDB_PAGE_NOTFOUND,
	MDB_CORRUPTED, MDB_PANIC, MDB_VERSION_MISMATCH, MDB_INVALID,
	MDB_MAP_FULL, MDB_DBS_FULL, MDB_READERS_FULL, MDB_TLS_FULL,
	MDB_TXN_FULL, MDB_CURSOR_FULL, MDB_PAGE_FULL, MDB_MAP_RESIZED,
	MDB_INCOMPATIBLE, MDB_BAD_RSLOT, MDB_BAD_TXN, MDB_BAD_VALSIZE,
	MDB_BAD_DBI, MDB_LAST_ERRCODE,
};

static void
test_codes_disjoint_from_lmdb(void **state)
{
	(void)state;
	assert_true(SL_ELAST_ - SL_EFORMAT >= 8);
	for (int e = SL_EFORMAT; e < SL_ELAST_; e++) {
		assert_true(e < 0); /* errno values are positive */
		assert_false(e >= MDB_KEYEXIST && e <= MDB_LAST_ERRCODE);
		for (size_t i = 0; i < sizeof mdb_codes / sizeof *mdb_codes; i++)
			assert_int_not_equal(e, mdb_codes[i]);
	}
	/* The named codes the issue found colliding. */
	assert_int_not_equal(SL_ELIMIT, MDB_KEYEXIST);
	assert_int_not_equal(SL_EMISMATCH, MDB_NOTFOUND);
	assert_int_not_equal(SL_ENOTFOUND, MDB_NOTFOUND);
}

static void
test_strerror_tells_them_apart(void **state)
{
	(void)state;
	/* An untranslated LMDB code reads as LMDB's, not as one of ours. */
	for (int e = MDB_KEYEXIST; e <= MDB_LAST_ERRCODE; e++) {
		assert_string_equal(sl_strerror(e), mdb_strerror(e));
		for (int s = SL_EFORMAT; s < SL_ELAST_; s++)
			assert_string_not_equal(sl_strerror(e), sl_strerror(s));
	}
	assert_string_equal(sl_strerror(ENOSPC), strerror(ENOSPC));
	assert_string_equal(sl_strerror(SL_EFORMAT - 1), "unknown error");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_codes_disjoint_from_lmdb),
		cmocka_unit_test(test_strerror_tells_them_apart),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* sl_err.h - return codes shared by every softlabel module.
 *
 * Fallible functions return int: 0 on success, a positive errno value for an
 * operating-system failure, or one of the negative SL_E* codes below. Results
 * go through out-parameters that are written only on success.
 *
 * Where a caller needs to tell a user *what* was wrong (which field, which
 * byte), a function also takes an optional sl_errmsg: a fixed buffer the
 * callee fills with one line of detail. It may be NULL.
 */
#ifndef SL_ERR_H
#define SL_ERR_H

#include <stddef.h>

/* The SL_E* codes live in a range of their own: below every LMDB code
 * (MDB_KEYEXIST -30799 up to MDB_LAST_ERRCODE -30780, and LMDB adds new
 * ones upward), and negative where errno values are positive, so a code
 * that was not translated at a boundary can never pass for another
 * (tests/unit/test_err.c checks it against every MDB_* code). */
enum {
	SL_EFORMAT = -32000, /* malformed file or message */
	SL_ELIMIT,           /* a documented size limit exceeded */
	SL_EMISMATCH,        /* shape, architecture or fingerprint differs */
	SL_ECORRUPT,         /* checksum does not hold */
	SL_ENOTFOUND,        /* key, tensor or record absent */
	SL_EUNSUPPORTED,     /* well formed, but not something we handle */
	SL_ENOMEM,           /* allocation failed */
	SL_EINVAL,           /* an argument out of range */
	SL_ELAST_
};

/* Text for any return code: SL_E* codes, errno values, LMDB's MDB_*
 * codes, 0. Never NULL; the string is static. Thread-safe. */
const char *sl_strerror(int err);

#define SL_ERRMSG_MAX 256

/* One line of detail about a failure. text is always NUL-terminated. */
typedef struct sl_errmsg {
	char text[SL_ERRMSG_MAX];
} sl_errmsg;

/* Write printf-style detail into e (no-op when e is NULL) and return err,
 * so a failure reads `return sl_errmsg_set(why, SL_EFORMAT, "...", ...);`. */
int sl_errmsg_set(sl_errmsg *e, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif

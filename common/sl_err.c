#include "sl_err.h"

#include <lmdb.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const texts[] = {
	[0] = "malformed input",
	[1] = "size limit exceeded",
	[2] = "mismatch",
	[3] = "checksum mismatch (corrupt data)",
	[4] = "not found",
	[5] = "unsupported",
	[6] = "out of memory",
	[7] = "invalid argument",
};

const char *
sl_strerror(int err)
{
	if (err == 0)
		return "success";
	if (err > 0)
		return strerror(err);
	if (err >= SL_EFORMAT && err < SL_ELAST_)
		return texts[err - SL_EFORMAT];
	/* An LMDB code that reached a caller untranslated: LMDB's words. */
	if (err >= MDB_KEYEXIST && err <= MDB_LAST_ERRCODE)
		return mdb_strerror(err);
	return "unknown error";
}

int
sl_errmsg_set(sl_errmsg *e, int err, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return err;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof e->text, fmt, ap);
	va_end(ap);
	return err;
}

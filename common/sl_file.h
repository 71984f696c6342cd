/* sl_file.h - whole-file reads and atomic writes.
 *
 * An atomic write goes to "<path>.tmp.<pid>" in the same directory, is
 * fsync'ed, renamed over path, and the directory is fsync'ed, so a crash at
 * any point leaves either the old file or the new one, never a mix.
 */
#ifndef SL_FILE_H
#define SL_FILE_H

#include <stddef.h>

#include "sl_err.h"

typedef struct sl_atomic_file {
	int fd;
	char tmp[4096];
	char path[4096];
} sl_atomic_file;

/* Open the temp file. */
int sl_atomic_open(sl_atomic_file *f, const char *path, sl_errmsg *why);
/* Write all of buf; on failure the caller must sl_atomic_abort(). */
int sl_atomic_write(sl_atomic_file *f, const void *buf, size_t len,
    sl_errmsg *why);
/* fsync, rename, fsync the directory. Aborts on failure. */
int sl_atomic_commit(sl_atomic_file *f, sl_errmsg *why);
/* Close and remove the temp file. Safe to call twice. */
void sl_atomic_abort(sl_atomic_file *f);

/* Read a whole regular file of at most max_bytes into a malloc'd buffer. */
int sl_file_read(const char *path, size_t max_bytes, void **buf, size_t *len,
    sl_errmsg *why);

#endif

/* sl_file.h - whole-file reads and atomic writes.
 *
 * An atomic write goes to "<path>.tmp.<pid>" in the same directory, is
 * fsync'ed, renamed over path, and the directory is fsync'ed, so a crash at
 * any point leaves either the old file or the new one, never a mix.
 *
 * Return codes (sl_err.h): 0, a positive errno value from the operating
 * system, or a negative SL_E* code. Each failure also writes one line of
 * detail into why when why is not NULL. Out-parameters are written only on
 * success. Nothing here prints or exits; sl_atomic_open logs (INFO) each
 * stale temp file it removes.
 *
 * Thread-safety: every function is reentrant; an sl_atomic_file belongs to
 * one thread at a time.
 *
 * Caveats:
 *   - The temp name depends only on path and the process id: two threads of
 *     one process must not write the same path at the same time.
 *   - The temp file is created with mode 0644 (less the umask).
 *   - A stale temp file is judged by its pid on this host: do not write
 *     one path from several hosts over a shared file system.
 *   - Paths, and path plus ".tmp.<pid>", must be shorter than
 *     SL_FILE_PATH_MAX bytes (ENAMETOOLONG otherwise).
 */
#ifndef SL_FILE_H
#define SL_FILE_H

#include <stddef.h>

#include "sl_err.h"

#define SL_FILE_PATH_MAX 4096

/* One atomic write in progress. The caller owns the storage (it may live on
 * the stack); the fields are private to sl_file.c. */
typedef struct sl_atomic_file {
	int fd;                      /* the temp file, or -1 */
	char tmp[SL_FILE_PATH_MAX];  /* "" once there is nothing to remove */
	char path[SL_FILE_PATH_MAX];
} sl_atomic_file;

/* Create the temp file for an atomic write of path. First removes the
 * temp files of earlier writers of path that are gone ("<path>.tmp.<pid>"
 * with no process <pid> on this host: killed before their rename).
 * Returns 0, ENAMETOOLONG, or the errno of open() ("cannot create ...").
 * Whatever it returns, f is afterwards safe to pass to sl_atomic_abort(),
 * so a caller can unwind through one fail: label. */
int sl_atomic_open(sl_atomic_file *f, const char *path, sl_errmsg *why);

/* Append len bytes of buf to the temp file (in chunks, retrying EINTR and
 * short writes). Returns 0 or the errno of write(). On failure the temp
 * file is still there: the caller must sl_atomic_abort(). */
int sl_atomic_write(sl_atomic_file *f, const void *buf, size_t len,
    sl_errmsg *why);

/* fsync and close the temp file, rename it over path, fsync the directory.
 * Returns 0 or an errno value. A failure before the rename removes the temp
 * file and leaves path as it was. A failure of the directory fsync comes
 * after the rename: path already holds the new contents but the rename may
 * not survive a crash. EINVAL from that fsync (filesystems that cannot sync
 * a directory) is not a failure. */
int sl_atomic_commit(sl_atomic_file *f, sl_errmsg *why);

/* Close and remove the temp file, if any. Safe after a failed
 * sl_atomic_open(), after sl_atomic_commit() (then a no-op), and twice. */
void sl_atomic_abort(sl_atomic_file *f);

/* Read the regular file at path into a new buffer. *buf is malloc'd and
 * owned by the caller (free()); it is not NUL-terminated. *len is the number
 * of bytes read: the size the file had when opened, or fewer if it shrank
 * while being read (the caller's parser then sees a truncated file, as it
 * would have had it opened later); bytes appended meanwhile are not read.
 * Uses read(), not mmap, so a file truncated under us cannot raise SIGBUS.
 * Returns 0;
 *   the errno of open() ("cannot open: ..."), fstat() or read();
 *   SL_EFORMAT if path is not a regular file (a directory, a FIFO);
 *   SL_ELIMIT if the file is larger than max_bytes;
 *   SL_ENOMEM. */
int sl_file_read(const char *path, size_t max_bytes, void **buf, size_t *len,
    sl_errmsg *why);

#endif

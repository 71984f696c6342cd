/* sl_file.c - whole-file reads and atomic writes (see sl_file.h). */
#include "sl_file.h"
#include "sl_log.h"

#include <dirent.h>
#include <signal.h>

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Largest single write(): some systems refuse counts above INT_MAX. */
#define WRITE_CHUNK ((size_t)1 << 30)

/* Temp files "<base>.tmp.<pid>" beside path whose writer is gone (no
 * process <pid>: killed before its rename) are removed, so kill -9 during
 * an export or a checkpoint leaves no litter past the next write. */
static void
remove_stale_tmp(const char *path)
{
	char dir[SL_FILE_PATH_MAX], base[SL_FILE_PATH_MAX], stale[SL_FILE_PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t blen;
	struct dirent *e;
	DIR *d;

	if (slash == NULL) {
		snprintf(dir, sizeof dir, ".");
		snprintf(base, sizeof base, "%s", path);
	} else {
		snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 :
		    (int)(slash - path), path);
		snprintf(base, sizeof base, "%s", slash + 1);
	}
	blen = strlen(base);
	if (blen == 0 || (d = opendir(dir)) == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		const char *p = e->d_name;
		char *end;
		long pid;

		if (strncmp(p, base, blen) != 0 || strncmp(p + blen, ".tmp.", 5) != 0)
			continue;
		errno = 0;
		pid = strtol(p + blen + 5, &end, 10);
		if (errno != 0 || *end != '\0' || end == p + blen + 5 || pid <= 0 ||
		    pid == (long)getpid())
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue; /* its writer may still be at work */
		if (snprintf(stale, sizeof stale, "%s/%s", dir, p) <
		    (int)sizeof stale && unlink(stale) == 0)
			sl_info("removed %s, left by a writer that died (pid %ld)",
			    stale, pid);
	}
	closedir(d);
}

int
sl_atomic_open(sl_atomic_file *f, const char *path, sl_errmsg *why)
{
	int n;

	/* First, so that sl_atomic_abort() is safe whatever happens below. */
	f->fd = -1;
	f->tmp[0] = '\0';
	f->path[0] = '\0';
	if (strlen(path) >= sizeof f->path)
		return sl_errmsg_set(why, ENAMETOOLONG, "path too long");
	n = snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof f->tmp) {
		f->tmp[0] = '\0';
		return sl_errmsg_set(why, ENAMETOOLONG, "path too long");
	}
	strcpy(f->path, path);
	remove_stale_tmp(path);
	f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (f->fd < 0) {
		int err = errno;

		sl_errmsg_set(why, err, "cannot create %s: %s", f->tmp,
		    strerror(err));
		f->tmp[0] = '\0'; /* not created: nothing to remove */
		return err;
	}
	return 0;
}

int
sl_atomic_write(sl_atomic_file *f, const void *buf, size_t len, sl_errmsg *why)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(f->fd, p, len < WRITE_CHUNK ? len : WRITE_CHUNK);

		if (w < 0) {
			int err = errno;

			if (err == EINTR)
				continue;
			return sl_errmsg_set(why, err, "write %s: %s", f->tmp,
			    strerror(err));
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int
sl_atomic_commit(sl_atomic_file *f, sl_errmsg *why)
{
	char dir[SL_FILE_PATH_MAX];
	int err, dfd;

	if (fsync(f->fd) != 0) {
		err = errno;
		sl_atomic_abort(f);
		return sl_errmsg_set(why, err, "fsync %s: %s", f->path,
		    strerror(err));
	}
	err = close(f->fd) != 0 ? errno : 0;
	f->fd = -1;
	if (err != 0) {
		sl_atomic_abort(f);
		return sl_errmsg_set(why, err, "close %s: %s", f->path,
		    strerror(err));
	}
	if (rename(f->tmp, f->path) != 0) {
		err = errno;
		sl_atomic_abort(f);
		return sl_errmsg_set(why, err, "rename to %s: %s", f->path,
		    strerror(err));
	}
	f->tmp[0] = '\0'; /* renamed: a later abort must not unlink anything */

	/* Make the rename itself durable. */
	strcpy(dir, f->path);
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		err = errno;
		return sl_errmsg_set(why, err, "open the directory of %s: %s",
		    f->path, strerror(err));
	}
	err = (fsync(dfd) != 0 && errno != EINVAL) ? errno : 0;
	close(dfd);
	if (err != 0)
		return sl_errmsg_set(why, err, "fsync the directory of %s: %s",
		    f->path, strerror(err));
	return 0;
}

void
sl_atomic_abort(sl_atomic_file *f)
{
	if (f->fd >= 0) {
		close(f->fd);
		f->fd = -1;
	}
	if (f->tmp[0] != '\0')
		unlink(f->tmp);
	f->tmp[0] = '\0';
}

int
sl_file_read(const char *path, size_t max_bytes, void **buf, size_t *len,
    sl_errmsg *why)
{
	struct stat st;
	char *p = NULL;
	size_t size, got = 0;
	int fd, rc;

	/* O_NONBLOCK: opening a FIFO must not wait for a writer before the
	 * S_ISREG check refuses it. It changes nothing for regular files. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		rc = errno;
		return sl_errmsg_set(why, rc, "cannot open: %s", strerror(rc));
	}
	if (fstat(fd, &st) != 0) {
		rc = errno;
		rc = sl_errmsg_set(why, rc, "cannot stat: %s", strerror(rc));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = sl_errmsg_set(why, SL_EFORMAT, "not a regular file");
		goto fail;
	}
	if (st.st_size < 0 || (uintmax_t)st.st_size > max_bytes) {
		rc = sl_errmsg_set(why, SL_ELIMIT, "%jd bytes, over the limit "
		    "of %zu", (intmax_t)st.st_size, max_bytes);
		goto fail;
	}
	size = (size_t)st.st_size;
	p = malloc(size > 0 ? size : 1);
	if (p == NULL) {
		rc = sl_errmsg_set(why, SL_ENOMEM, "no memory for %zu bytes",
		    size);
		goto fail;
	}
	while (got < size) {
		ssize_t n = read(fd, p + got, size - got);

		if (n < 0) {
			rc = errno;
			if (rc == EINTR)
				continue;
			rc = sl_errmsg_set(why, rc, "read: %s", strerror(rc));
			goto fail;
		}
		if (n == 0)
			break; /* shrank since fstat: hand back what is there */
		got += (size_t)n;
	}
	close(fd);
	*buf = p;
	*len = got;
	return 0;
fail:
	free(p);
	close(fd);
	return rc;
}

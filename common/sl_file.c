#include "sl_file.h"

#include <errno.h>
#include <stdint.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int
sl_atomic_open(sl_atomic_file *f, const char *path, sl_errmsg *why)
{
	int n;

	f->fd = -1;
	if (strlen(path) >= sizeof f->path)
		return sl_errmsg_set(why, ENAMETOOLONG, "path too long");
	strcpy(f->path, path);
	n = snprintf(f->tmp, sizeof f->tmp, "%s.tmp.%d", path, (int)getpid());
	if (n < 0 || (size_t)n >= sizeof f->tmp)
		return sl_errmsg_set(why, ENAMETOOLONG, "path too long");
	f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (f->fd < 0)
		return sl_errmsg_set(why, errno, "cannot create %s: %s", f->tmp,
		    strerror(errno));
	return 0;
}

int
sl_atomic_write(sl_atomic_file *f, const void *buf, size_t len, sl_errmsg *why)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t w = write(f->fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return sl_errmsg_set(why, errno, "write %s: %s", f->tmp,
			    strerror(errno));
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

int
sl_atomic_commit(sl_atomic_file *f, sl_errmsg *why)
{
	char dir[4096];
	int rc, dfd;

	if (fsync(f->fd) != 0 || close(f->fd) != 0) {
		rc = errno;
		f->fd = -1;
		sl_atomic_abort(f);
		return sl_errmsg_set(why, rc, "sync %s: %s", f->tmp, strerror(rc));
	}
	f->fd = -1;
	if (rename(f->tmp, f->path) != 0) {
		rc = errno;
		sl_atomic_abort(f);
		return sl_errmsg_set(why, rc, "rename to %s: %s", f->path,
		    strerror(rc));
	}
	/* Make the rename itself durable. */
	strcpy(dir, f->path);
	dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
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
	size_t n, off = 0;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sl_errmsg_set(why, errno, "%s", strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = sl_errmsg_set(why, errno, "%s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = sl_errmsg_set(why, SL_EFORMAT, "not a regular file");
		goto fail;
	}
	if ((uint64_t)st.st_size > max_bytes) {
		rc = sl_errmsg_set(why, SL_ELIMIT, "%lld bytes exceeds limit %zu",
		    (long long)st.st_size, max_bytes);
		goto fail;
	}
	n = (size_t)st.st_size;
	p = malloc(n ? n : 1);
	if (p == NULL) {
		rc = sl_errmsg_set(why, SL_ENOMEM, "out of memory");
		goto fail;
	}
	while (off < n) {
		ssize_t r = read(fd, p + off, n - off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = sl_errmsg_set(why, r < 0 ? errno : SL_EFORMAT,
			    "read: %s", r < 0 ? strerror(errno) : "file shrank");
			goto fail;
		}
		off += (size_t)r;
	}
	close(fd);
	*buf = p;
	*len = n;
	return 0;
fail:
	free(p);
	close(fd);
	return rc;
}

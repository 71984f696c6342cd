/* sl_store.c - the logit cache on LMDB.
 *
 * Every LMDB return code is translated once, in lmdb_err(); nothing else in
 * this file looks at MDB_* codes except MDB_NOTFOUND where absence is normal.
 *
 * Everything read back from the cache is outside input (another version,
 * another tool, a bad disk may have written it): meta and shards values are
 * walked with the bounds-checked sl_mp reader, key sizes are checked before
 * they are decoded, and a malformed value is SL_EFORMAT naming the key.
 *
 * Values are packed with msgpack-c's packer into a fixed stack buffer (see
 * fixbuf), so no write path allocates, per record or per shard.
 */
#include "sl_store.h"
#include "sl_proto.h"

#include "sl_msgpack.h"

#include <lmdb.h>
#include <msgpack.h>

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/file.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <unistd.h>
#include <time.h>

#define DEFAULT_MAP_BYTES (1ULL << 40) /* address space, not disk */
#define TEACHER_PREFIX "teacher/"
#define TEACHER_PREFIX_LEN (sizeof TEACHER_PREFIX - 1)
#define LABEL_KEY_BYTES 12 /* u32 BE teacher, u64 BE sample or shard */
#define VIEW_KEY_BYTES 16  /* u32 BE teacher, u64 BE sample, u32 BE view */
#define INPUT_KEY_BYTES 8  /* u64 BE sample */
#define VALUE_MAX 2048     /* largest meta or shards value we write */

struct sl_store {
	MDB_env *env;
	MDB_dbi meta, shards, labels, inputs;
	int readonly;
	uint64_t map_size_bytes;
	char *data_path; /* dir/data.mdb, for stat() */
	int lock_fd;     /* dir/writer.lock, held (flock) by a writer; -1 */
};

struct sl_store_txn {
	sl_store *s;
	MDB_txn *txn;
	int write;
	int failed; /* a write failed: LMDB will refuse to commit, so do we */
};

/* --- errors --------------------------------------------------------------- */

/* The one place LMDB codes become softlabel codes. what says what was being
 * done ("open", "put label") and goes into why. */
static int
lmdb_err(sl_errmsg *why, int rc, const sl_store *s, const char *what)
{
	switch (rc) {
	case 0:
		return 0;
	case MDB_NOTFOUND:
		return sl_errmsg_set(why, SL_ENOTFOUND, "%s: not found", what);
	case MDB_MAP_FULL:
		return sl_errmsg_set(why, SL_ELIMIT,
		    "%s: cache map full (map size %" PRIu64 " bytes)", what,
		    s != NULL ? s->map_size_bytes : 0);
	case MDB_READERS_FULL:
	case MDB_TXN_FULL:
	case MDB_DBS_FULL:
		return sl_errmsg_set(why, SL_ELIMIT, "%s: %s (LMDB %d)", what,
		    mdb_strerror(rc), rc);
	default:
		break;
	}
	if (rc > 0) /* LMDB passes OS errors through as errno values */
		return sl_errmsg_set(why, rc, "%s: %s", what, strerror(rc));
	return sl_errmsg_set(why, SL_EFORMAT, "%s: %s (LMDB %d)", what,
	    mdb_strerror(rc), rc);
}

/* --- keys ----------------------------------------------------------------- */

static void
put_be32(uint8_t *p, uint32_t v)
{
	for (int i = 3; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static void
put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

static uint64_t
get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void
key12(uint8_t k[LABEL_KEY_BYTES], uint32_t teacher, uint64_t n)
{
	put_be32(k, teacher);
	put_be64(k + 4, n);
}

/* The label key of (teacher, sample[, view]) into k; its length. */
static size_t
label_key(uint8_t k[VIEW_KEY_BYTES], uint32_t teacher, uint64_t sample,
    uint32_t view)
{
	key12(k, teacher, sample);
	if (view == SL_STORE_NO_VIEW)
		return LABEL_KEY_BYTES;
	put_be32(k + LABEL_KEY_BYTES, view);
	return VIEW_KEY_BYTES;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* --- packing into a fixed buffer ------------------------------------------ */

typedef struct fixbuf {
	uint8_t data[VALUE_MAX];
	size_t len;
	int overflow;
} fixbuf;

static int
fixbuf_write(void *arg, const char *buf, size_t len)
{
	fixbuf *f = arg;

	if (len > sizeof f->data - f->len) {
		f->overflow = 1;
		return -1;
	}
	memcpy(f->data + f->len, buf, len);
	f->len += len;
	return 0;
}

static void
pack_cstr(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

static void
pack_key(msgpack_packer *pk, const char *key)
{
	pack_cstr(pk, key);
}

/* --- validation ----------------------------------------------------------- */

/* Mirrors sl_label_fmt_check (kept local so the store links on its own). */
static int
fmt_valid(const sl_label_fmt *f)
{
	if (f->classes < 2 || f->classes > SL_LABEL_MAX_CLASSES)
		return 0;
	switch (f->encoding) {
	case SL_ENC_F32:
	case SL_ENC_F16:
		return f->k == 0;
	case SL_ENC_TOPK:
		return f->k >= 1 && f->k < f->classes && f->k <= SL_LABEL_MAX_K;
	}
	return 0;
}

static void
fmt_text(const sl_label_fmt *f, char *buf, size_t len)
{
	switch (f->encoding) {
	case SL_ENC_F32:
		snprintf(buf, len, "f32");
		return;
	case SL_ENC_F16:
		snprintf(buf, len, "f16");
		return;
	case SL_ENC_TOPK:
		snprintf(buf, len, "topk:%u", (unsigned)f->k);
		return;
	}
	snprintf(buf, len, "encoding %d", (int)f->encoding);
}

static int
name_valid(const char *name)
{
	size_t n = strnlen(name, SL_STORE_MAX_NAME + 1);

	return n >= 1 && n <= SL_STORE_MAX_NAME && memchr(name, '/', n) == NULL;
}

static int
hex_nibble(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* 64 hex digits (either case) into 32 bytes; 0 on success. */
static int
hex_to_bin(const char *hex, uint8_t out[32])
{
	if (strnlen(hex, 65) != 64)
		return -1;
	for (int i = 0; i < 32; i++) {
		int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static void
bin_to_hex(const uint8_t in[32], char out[65])
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 32; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[64] = '\0';
}

static void
copy_str(char *dst, size_t cap, const uint8_t *s, size_t len)
{
	if (len > cap - 1)
		len = cap - 1;
	memcpy(dst, s, len);
	dst[len] = '\0';
}

/* Longest prefix of s of at most max bytes that does not split a UTF-8
 * sequence. */
static size_t
utf8_prefix(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n <= max)
		return n;
	n = max;
	while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
		n--;
	return n;
}

/* --- open / close --------------------------------------------------------- */

static int
open_dbi(MDB_txn *txn, const char *name, unsigned flags, MDB_dbi *dbi,
    sl_errmsg *why)
{
	int rc = mdb_dbi_open(txn, name, flags, dbi);

	if (rc == MDB_NOTFOUND)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "not a softlabel cache: no '%s' database", name);
	if (rc != 0) {
		char what[64];

		snprintf(what, sizeof what, "open database '%s'", name);
		return lmdb_err(why, rc, NULL, what);
	}
	return 0;
}

/* Who holds the lock, as its holder wrote it ("pid 1234 softlabel-broker
 * on tcp://..."), printable bytes only: the file is anyone's to write. */
static void
lock_owner(int fd, char *out, size_t cap)
{
	char buf[SL_STORE_MAX_OWNER + 32];
	ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
	size_t j = 0;

	for (ssize_t i = 0; i < n && buf[i] != '\n' && j + 1 < cap; i++)
		out[j++] = buf[i] >= 0x20 && buf[i] < 0x7f ? buf[i] : '?';
	out[j] = '\0';
	if (j == 0) /* between its flock and its write, or an old build */
		snprintf(out, cap, "another program (its pid not written yet)");
}

/* Write "pid N OWNER\n" into the held lock file, for the refusal above. A
 * failure is harmless (the lock holds; only the message is poorer). */
static void
lock_claim(int fd, const char *owner)
{
	char buf[SL_STORE_MAX_OWNER + 32];
	int n = snprintf(buf, sizeof buf, "pid %ld%s%.*s\n", (long)getpid(),
	    owner != NULL && *owner ? " " : "", SL_STORE_MAX_OWNER,
	    owner != NULL ? owner : "");

	if (n > 0 && ftruncate(fd, 0) == 0 &&
	    pwrite(fd, buf, (size_t)n, 0) != (ssize_t)n)
		(void)ftruncate(fd, 0);
}

int
sl_store_open(const char *dir, const sl_store_opts *o, sl_store **out,
    sl_errmsg *why)
{
	sl_store_opts def = { 0 };
	sl_store *s = NULL;
	MDB_txn *txn = NULL;
	struct stat st;
	unsigned flags = MDB_NOTLS, dbflags;
	size_t plen;
	int rc, dead;

	if (o == NULL)
		o = &def;
	if (dir == NULL || *dir == '\0')
		return sl_errmsg_set(why, SL_EINVAL, "empty cache directory");
	if (o->readonly) {
		if (stat(dir, &st) != 0)
			return sl_errmsg_set(why, errno,
			    "no cache at %s: %s", dir, strerror(errno));
	} else if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
		return sl_errmsg_set(why, errno, "create %s: %s", dir,
		    strerror(errno));
	}
	if (stat(dir, &st) != 0)
		return sl_errmsg_set(why, errno, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return sl_errmsg_set(why, ENOTDIR, "%s is not a directory", dir);

	s = calloc(1, sizeof *s);
	plen = strlen(dir) + sizeof "/writer.lock";
	if (s == NULL || (s->data_path = malloc(plen)) == NULL) {
		free(s);
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	}
	s->lock_fd = -1;
	if (!o->readonly) {
		/* One writer per cache: two brokers on one store would lease
		 * the same shards twice, and teacher remove must not run under
		 * a broker that holds the teacher in memory. */
		snprintf(s->data_path, plen, "%s/writer.lock", dir);
		s->lock_fd = open(s->data_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		if (s->lock_fd < 0) {
			rc = sl_errmsg_set(why, errno, "%s: %s", s->data_path,
			    strerror(errno));
			goto fail;
		}
		if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
			if (errno == EWOULDBLOCK) {
				char who[SL_STORE_MAX_OWNER + 32];

				lock_owner(s->lock_fd, who, sizeof who);
				rc = sl_errmsg_set(why, EBUSY, "the cache %s is "
				    "written by %s: one writer per cache", dir, who);
			} else {
				rc = sl_errmsg_set(why, errno, "lock %s: %s",
				    s->data_path, strerror(errno));
			}
			goto fail;
		}
		lock_claim(s->lock_fd, o->owner);
	}
	snprintf(s->data_path, plen, "%s/data.mdb", dir);
	if (o->readonly && stat(s->data_path, &st) != 0) {
		rc = sl_errmsg_set(why, errno, "no cache at %s (%s: %s)", dir,
		    s->data_path, strerror(errno));
		goto fail;
	}
	s->readonly = o->readonly != 0;
	s->map_size_bytes = o->map_size_bytes ? o->map_size_bytes
	                                      : DEFAULT_MAP_BYTES;
	if (o->readonly)
		flags |= MDB_RDONLY;
	if (o->nosync)
		flags |= MDB_NOSYNC;

	if ((rc = mdb_env_create(&s->env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(s->env, 4)) != 0 ||
	    (rc = mdb_env_set_mapsize(s->env, (size_t)s->map_size_bytes)) != 0) {
		rc = lmdb_err(why, rc, s, "create environment");
		goto fail;
	}
	if ((rc = mdb_env_open(s->env, dir, flags, 0644)) != 0) {
		char what[64];

		snprintf(what, sizeof what, "open cache %.40s", dir);
		if (rc == ENOMEM) {
			/* mmap of the whole map, under ulimit -v say: name it. */
			rc = sl_errmsg_set(why, ENOMEM, "%s: %s: the map reserves "
			    "%" PRIu64 " bytes of address space (a smaller map "
			    "size, or a higher ulimit -v)", what, strerror(ENOMEM),
			    s->map_size_bytes);
			goto fail;
		}
		rc = lmdb_err(why, rc, s, what);
		goto fail;
	}
	/* A reader slot of a dead process pins old pages forever. */
	if ((rc = mdb_reader_check(s->env, &dead)) != 0) {
		rc = lmdb_err(why, rc, s, "reader check");
		goto fail;
	}

	if ((rc = mdb_txn_begin(s->env, NULL, o->readonly ? MDB_RDONLY : 0,
	    &txn)) != 0) {
		rc = lmdb_err(why, rc, s, "begin transaction");
		goto fail;
	}
	dbflags = o->readonly ? 0 : MDB_CREATE;
	if ((rc = open_dbi(txn, "meta", dbflags, &s->meta, why)) != 0 ||
	    (rc = open_dbi(txn, "shards", dbflags, &s->shards, why)) != 0 ||
	    (rc = open_dbi(txn, "labels", dbflags, &s->labels, why)) != 0 ||
	    (rc = open_dbi(txn, "inputs", dbflags, &s->inputs, why)) != 0)
		goto fail;
	rc = mdb_txn_commit(txn); /* read-only too: keeps the dbi handles */
	txn = NULL;
	if (rc != 0) {
		rc = lmdb_err(why, rc, s, "create databases");
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	sl_store_close(&s);
	return rc;
}

void
sl_store_close(sl_store **sp)
{
	sl_store *s;

	if (sp == NULL || (s = *sp) == NULL)
		return;
	if (s->env != NULL)
		mdb_env_close(s->env);
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* releases the flock */
	free(s->data_path);
	free(s);
	*sp = NULL;
}

/* --- consistent copies ----------------------------------------------------- */

#define SL_STORE_PATH_MAX 4096

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1u << 0) /* <linux/fs.h> */
#endif

/* Rename the directory from to to, failing with EEXIST when to exists
 * (rename(2) alone would replace an empty directory). Filesystems without
 * renameat2 fall back to a check then rename: a race with a directory made
 * at to in between is the one gap left. */
static int
rename_noreplace(const char *from, const char *to)
{
#ifdef SYS_renameat2
	struct stat st;

	if (syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to,
	    RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return errno;
	if (lstat(to, &st) == 0)
		return EEXIST;
#endif
	return rename(from, to) == 0 ? 0 : errno;
}

/* fsync path (a file or a directory); 0 or errno. */
static int
sync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = 0;

	if (fd < 0)
		return errno;
	if (fsync(fd) != 0)
		rc = errno;
	close(fd);
	return rc;
}

/* Remove the temporary directory of a failed copy and what LMDB put in it. */
static void
remove_tmp(const char *tmp)
{
	char p[SL_STORE_PATH_MAX + 16];

	snprintf(p, sizeof p, "%s/data.mdb", tmp);
	unlink(p);
	snprintf(p, sizeof p, "%s/lock.mdb", tmp);
	unlink(p);
	rmdir(tmp);
}

int
sl_store_copy(sl_store *s, const char *dest, sl_errmsg *why)
{
	char tmp[SL_STORE_PATH_MAX], data[SL_STORE_PATH_MAX + 16];
	char parent[SL_STORE_PATH_MAX], *slash;
	struct stat st;
	int rc;

	if (dest == NULL || *dest == '\0')
		return sl_errmsg_set(why, SL_EINVAL, "empty destination");
	if (strlen(dest) + 32 >= sizeof tmp)
		return sl_errmsg_set(why, SL_EINVAL, "destination path too long");
	if (lstat(dest, &st) == 0)
		return sl_errmsg_set(why, EEXIST, "%s exists: a copy goes to a "
		    "new directory, never over anything", dest);
	/* Beside dest, so the final rename stays inside one filesystem. */
	snprintf(tmp, sizeof tmp, "%s.copy-%ld.tmp", dest, (long)getpid());
	if (mkdir(tmp, 0755) != 0)
		return sl_errmsg_set(why, errno, "create %s: %s", tmp,
		    strerror(errno));
	/* One read transaction: the copy is the snapshot of one commit, the
	 * writer is not blocked, freed pages are left out (compact). */
	if ((rc = mdb_env_copy2(s->env, tmp, MDB_CP_COMPACT)) != 0) {
		rc = lmdb_err(why, rc, s, "copy");
		goto fail;
	}
	snprintf(data, sizeof data, "%s/data.mdb", tmp);
	if ((rc = sync_path(data)) != 0 || (rc = sync_path(tmp)) != 0) {
		rc = sl_errmsg_set(why, rc, "sync %s: %s", tmp, strerror(rc));
		goto fail;
	}
	if ((rc = rename_noreplace(tmp, dest)) != 0) {
		rc = rc == EEXIST || rc == ENOTEMPTY ? sl_errmsg_set(why, EEXIST,
		    "%s appeared during the copy: left alone", dest) :
		    sl_errmsg_set(why, rc, "rename %s to %s: %s", tmp, dest,
		    strerror(rc));
		goto fail;
	}
	snprintf(parent, sizeof parent, "%s", dest);
	slash = strrchr(parent, '/');
	if (slash == parent)
		slash[1] = '\0';
	else if (slash != NULL)
		*slash = '\0';
	else
		snprintf(parent, sizeof parent, ".");
	/* The rename made durable; it happened, so a failure here is only
	 * reported in the log's way: the copy is complete either way. */
	if ((rc = sync_path(parent)) != 0)
		return sl_errmsg_set(why, rc, "sync %s (the copy %s is complete, "
		    "its name may not survive a crash): %s", parent, dest,
		    strerror(rc));
	return 0;
fail:
	remove_tmp(tmp);
	return rc;
}

/* --- transactions --------------------------------------------------------- */

static int
txn_begin(sl_store *s, int write, sl_store_txn **out, sl_errmsg *why)
{
	sl_store_txn *t;
	int rc;

	if (write && s->readonly)
		return sl_errmsg_set(why, SL_EINVAL,
		    "cache opened read-only");
	if ((t = calloc(1, sizeof *t)) == NULL)
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
	if (rc != 0) {
		free(t);
		return lmdb_err(why, rc, s, write ? "begin write transaction"
		                                  : "begin read transaction");
	}
	t->s = s;
	t->write = write;
	*out = t;
	return 0;
}

int
sl_store_write_begin(sl_store *s, sl_store_txn **txn, sl_errmsg *why)
{
	return txn_begin(s, 1, txn, why);
}

int
sl_store_read_begin(sl_store *s, sl_store_txn **txn, sl_errmsg *why)
{
	return txn_begin(s, 0, txn, why);
}

/* LMDB reports a short write as EIO (mdb_page_flush), which is what a full
 * disk gives: under DISK_FULL_BYTES free on the cache's file system, say
 * so. */
#define DISK_FULL_BYTES ((uint64_t)64 << 20)

static int
disk_full(const sl_store *s)
{
	struct statvfs v;

	return statvfs(s->data_path, &v) == 0 &&
	    (uint64_t)v.f_bavail * v.f_frsize < DISK_FULL_BYTES;
}

int
sl_store_write_commit(sl_store_txn **tp, sl_errmsg *why)
{
	sl_store_txn *t = *tp;
	int rc;

	*tp = NULL;
	if (t->failed || !t->write) {
		int failed = t->failed;

		mdb_txn_abort(t->txn);
		free(t);
		return sl_errmsg_set(why, SL_EINVAL, failed ?
		    "a write in this transaction failed; it was aborted" :
		    "commit of a read transaction");
	}
	rc = mdb_txn_commit(t->txn); /* frees the MDB_txn, success or not */
	if (rc == EIO && disk_full(t->s))
		rc = ENOSPC;
	rc = lmdb_err(why, rc, t->s, "commit");
	free(t);
	return rc;
}

void
sl_store_write_abort(sl_store_txn **tp)
{
	if (tp == NULL || *tp == NULL)
		return;
	mdb_txn_abort((*tp)->txn);
	free(*tp);
	*tp = NULL;
}

void
sl_store_read_end(sl_store_txn **tp)
{
	sl_store_write_abort(tp);
}

int
sl_store_read_refresh(sl_store_txn *t, sl_errmsg *why)
{
	int rc;

	if (t->write)
		return sl_errmsg_set(why, SL_EINVAL,
		    "refresh of a write transaction");
	mdb_txn_reset(t->txn);
	if ((rc = mdb_txn_renew(t->txn)) != 0) {
		t->failed = 1;
		return lmdb_err(why, rc, t->s, "renew read transaction");
	}
	t->failed = 0;
	return 0;
}

/* A put or delete in a write transaction; marks it failed on error. */
static int
wput(sl_store_txn *t, MDB_dbi dbi, MDB_val *k, MDB_val *v, sl_errmsg *why,
    const char *what)
{
	int rc = mdb_put(t->txn, dbi, k, v, 0);

	if (rc != 0) {
		t->failed = 1;
		return lmdb_err(why, rc, t->s, what);
	}
	return 0;
}

/* Delete; absence is not an error. */
static int
wdel(sl_store_txn *t, MDB_dbi dbi, MDB_val *k, sl_errmsg *why,
    const char *what)
{
	int rc = mdb_del(t->txn, dbi, k, NULL);

	if (rc != 0 && rc != MDB_NOTFOUND) {
		t->failed = 1;
		return lmdb_err(why, rc, t->s, what);
	}
	return 0;
}

static int
check_writable(sl_store_txn *t, sl_errmsg *why)
{
	if (!t->write)
		return sl_errmsg_set(why, SL_EINVAL, "write in a read transaction");
	if (t->failed)
		return sl_errmsg_set(why, SL_EINVAL,
		    "a write in this transaction failed; abort it");
	return 0;
}

/* --- meta: the job -------------------------------------------------------- */

/* Read meta[key] in txn; SL_ENOTFOUND (why untouched) when absent. */
static int
meta_get(sl_store *s, MDB_txn *txn, const char *key, sl_mp *c, sl_errmsg *why)
{
	MDB_val k = { strlen(key), (void *)key }, v;
	int rc = mdb_get(txn, s->meta, &k, &v);

	if (rc == MDB_NOTFOUND)
		return SL_ENOTFOUND;
	if (rc != 0) {
		char what[SL_STORE_MAX_NAME + 32];

		snprintf(what, sizeof what, "read meta '%s'", key);
		return lmdb_err(why, rc, s, what);
	}
	sl_mp_init(c, v.mv_data, v.mv_size);
	return 0;
}

static int
bad_meta(sl_errmsg *why, const char *key, const char *field, const char *what)
{
	if (field != NULL)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "corrupt cache: meta '%s' field '%s': %s", key, field, what);
	return sl_errmsg_set(why, SL_EFORMAT, "corrupt cache: meta '%s': %s",
	    key, what);
}

static int
decode_dataset(sl_mp *c, sl_store_job *job, sl_errmsg *why)
{
	const char *K = "dataset";
	sl_fingerprint *fp = &job->dataset;
	uint32_t n, nf, have = 0;

	if (sl_mp_map(c, &n) != 0)
		return bad_meta(why, K, NULL, "not a map");
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *key, *val;
		size_t klen, vlen;

		if (sl_mp_str(c, &key, &klen) != 0)
			return bad_meta(why, K, NULL, "a key is not a string");
		if (sl_mp_streq(key, klen, "path")) {
			if (sl_mp_str(c, &val, &vlen) != 0 ||
			    vlen >= sizeof job->dataset_path ||
			    memchr(val, '\0', vlen) != NULL)
				return bad_meta(why, K, "path",
				    "not a string of at most 1023 bytes");
			copy_str(job->dataset_path, sizeof job->dataset_path,
			    val, vlen);
			have |= 1;
		} else if (sl_mp_streq(key, klen, "rows")) {
			if (sl_mp_u64(c, &fp->rows) != 0)
				return bad_meta(why, K, "rows",
				    "not an unsigned integer");
			have |= 2;
		} else if (sl_mp_streq(key, klen, "shape")) {
			if (sl_mp_array(c, &nf) != 0 || nf < 1 ||
			    nf > SL_DATA_MAX_DIMS)
				return bad_meta(why, K, "shape",
				    "not an array of 1 to 8 dimensions");
			fp->ndim = nf;
			for (uint32_t d = 0; d < nf; d++)
				if (sl_mp_u64(c, &fp->shape[d]) != 0)
					return bad_meta(why, K, "shape",
					    "a dimension is not an unsigned integer");
			have |= 4;
		} else if (sl_mp_streq(key, klen, "dtype")) {
			uint32_t dt;

			if (sl_mp_u32(c, &dt, UINT32_MAX) != 0 ||
			    (dt != SL_DTYPE_U8 && dt != SL_DTYPE_F32))
				return bad_meta(why, K, "dtype",
				    "not 1 (uint8) or 2 (float32)");
			fp->dtype = (enum sl_dtype)dt;
			have |= 8;
		} else if (sl_mp_streq(key, klen, "sha256")) {
			if (sl_mp_bin(c, &val, &vlen) != 0 || vlen != 32)
				return bad_meta(why, K, "sha256",
				    "not 32 bytes of bin");
			memcpy(fp->sha256, val, 32);
			have |= 16;
		} else if (sl_mp_skip(c) != 0) {
			return bad_meta(why, K, NULL, "truncated value");
		}
	}
	if (have != 31)
		return bad_meta(why, K, NULL,
		    "missing one of path, rows, shape, dtype, sha256");
	if (sl_mp_left(c) != 0)
		return bad_meta(why, K, NULL, "trailing bytes");
	if (fp->shape[0] != fp->rows)
		return bad_meta(why, K, "shape", "shape[0] differs from rows");
	return 0;
}

/* Schema check shared by every reader of meta. */
static int
check_schema(sl_store *s, MDB_txn *txn, uint32_t *schema, sl_errmsg *why)
{
	sl_mp c;
	uint64_t v;
	int rc = meta_get(s, txn, "schema", &c, why);

	if (rc == SL_ENOTFOUND)
		return sl_errmsg_set(why, SL_ENOTFOUND, "cache holds no job yet");
	if (rc != 0)
		return rc;
	if (sl_mp_u64(&c, &v) != 0 || sl_mp_left(&c) != 0)
		return bad_meta(why, "schema", NULL, "not an unsigned integer");
	if (v < SL_STORE_SCHEMA_MIN || v > SL_STORE_SCHEMA)
		return sl_errmsg_set(why, SL_EUNSUPPORTED,
		    "cache schema %" PRIu64 ", this build reads %d to %d", v,
		    SL_STORE_SCHEMA_MIN, SL_STORE_SCHEMA);
	if (schema != NULL)
		*schema = (uint32_t)v;
	return 0;
}

static int
get_job_txn(sl_store *s, MDB_txn *txn, sl_store_job *out, sl_errmsg *why)
{
	sl_store_job job;
	sl_mp c;
	uint32_t sr;
	int rc;

	memset(&job, 0, sizeof job);
	if ((rc = check_schema(s, txn, &job.schema, why)) != 0)
		return rc;
	rc = meta_get(s, txn, "dataset", &c, why);
	if (rc == SL_ENOTFOUND)
		return bad_meta(why, "dataset", NULL, "missing");
	if (rc != 0 || (rc = decode_dataset(&c, &job, why)) != 0)
		return rc;
	rc = meta_get(s, txn, "shard_rows", &c, why);
	if (rc == SL_ENOTFOUND)
		return bad_meta(why, "shard_rows", NULL, "missing");
	if (rc != 0)
		return rc;
	if (sl_mp_u32(&c, &sr, UINT32_MAX) != 0 || sl_mp_left(&c) != 0 ||
	    sr == 0)
		return bad_meta(why, "shard_rows", NULL,
		    "not a positive 32-bit integer");
	job.shard_rows = sr;
	/* "rows": [first, end], only in the cache of part of a job. */
	job.rows_first = 0;
	job.rows_end = job.dataset.rows;
	rc = meta_get(s, txn, "rows", &c, why);
	if (rc == 0) {
		uint32_t n;

		if (sl_mp_array(&c, &n) != 0 || n != 2 ||
		    sl_mp_u64(&c, &job.rows_first) != 0 ||
		    sl_mp_u64(&c, &job.rows_end) != 0 || sl_mp_left(&c) != 0 ||
		    job.rows_first >= job.rows_end ||
		    job.rows_end > job.dataset.rows ||
		    job.rows_first % sr != 0)
			return bad_meta(why, "rows", NULL, "not [first, end] "
			    "within the dataset on a shard boundary");
	} else if (rc != SL_ENOTFOUND) {
		return rc;
	}
	*out = job;
	return 0;
}

int
sl_store_get_job(sl_store *s, sl_store_job *out, sl_errmsg *why)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);

	if (rc != 0)
		return lmdb_err(why, rc, s, "begin read transaction");
	rc = get_job_txn(s, txn, out, why);
	mdb_txn_abort(txn);
	return rc;
}

static int
meta_put(sl_store *s, MDB_txn *txn, const char *key, const fixbuf *f,
    sl_errmsg *why)
{
	MDB_val k = { strlen(key), (void *)key }, v = { f->len, (void *)f->data };
	int rc;

	if (f->overflow)
		return sl_errmsg_set(why, SL_ELIMIT,
		    "meta '%s' value over %d bytes", key, VALUE_MAX);
	if ((rc = mdb_put(txn, s->meta, &k, &v, 0)) != 0) {
		char what[SL_STORE_MAX_NAME + 32];

		snprintf(what, sizeof what, "write meta '%s'", key);
		return lmdb_err(why, rc, s, what);
	}
	return 0;
}

static int
same_job(const sl_store_job *a, const sl_store_job *b)
{
	const sl_fingerprint *x = &a->dataset, *y = &b->dataset;

	const uint64_t be = b->rows_end ? b->rows_end : y->rows;

	return a->shard_rows == b->shard_rows && x->rows == y->rows &&
	    a->rows_first == b->rows_first && a->rows_end == be &&
	    x->ndim == y->ndim && x->dtype == y->dtype &&
	    memcmp(x->shape, y->shape, x->ndim * sizeof x->shape[0]) == 0 &&
	    memcmp(x->sha256, y->sha256, 32) == 0;
}

int
sl_store_init_job(sl_store *s, const sl_store_job *job, sl_errmsg *why)
{
	const sl_fingerprint *fp = &job->dataset;
	sl_store_job old;
	msgpack_packer pk;
	fixbuf f;
	MDB_txn *txn = NULL;
	int rc;

	if (s->readonly)
		return sl_errmsg_set(why, SL_EINVAL, "cache opened read-only");
	if (strnlen(job->dataset_path, sizeof job->dataset_path) ==
	        sizeof job->dataset_path || fp->ndim < 1 ||
	    fp->ndim > SL_DATA_MAX_DIMS || fp->shape[0] != fp->rows ||
	    (fp->dtype != SL_DTYPE_U8 && fp->dtype != SL_DTYPE_F32) ||
	    job->shard_rows == 0)
		return sl_errmsg_set(why, SL_EINVAL,
		    "invalid job (path, shape, dtype or shard_rows)");
	const uint64_t end = job->rows_end ? job->rows_end : fp->rows;
	if (job->rows_first >= end || end > fp->rows ||
	    job->rows_first % job->shard_rows != 0 ||
	    (end != fp->rows && end % job->shard_rows != 0))
		return sl_errmsg_set(why, SL_EINVAL, "rows %" PRIu64 ":%" PRIu64
		    " is not a range of the %" PRIu64 " rows on %u-row shard "
		    "boundaries", job->rows_first, end, fp->rows, job->shard_rows);
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		return lmdb_err(why, rc, s, "begin write transaction");

	/* An existing job is kept: the same one is success, another one is
	 * refused, so labels never end up under a different dataset. */
	rc = get_job_txn(s, txn, &old, why);
	if (rc == 0) {
		if (!same_job(&old, job))
			rc = sl_errmsg_set(why, SL_EMISMATCH,
			    "cache already holds a job for another dataset, "
			    "shard size or row range (%s, rows %" PRIu64 ":%"
			    PRIu64 ")", old.dataset_path, old.rows_first,
			    old.rows_end);
		goto out;
	}
	if (rc != SL_ENOTFOUND)
		goto out;

	f.len = 0;
	f.overflow = 0;
	msgpack_packer_init(&pk, &f, fixbuf_write);
	msgpack_pack_unsigned_int(&pk, SL_STORE_SCHEMA);
	if ((rc = meta_put(s, txn, "schema", &f, why)) != 0)
		goto out;

	f.len = 0;
	msgpack_pack_map(&pk, 5);
	pack_key(&pk, "path");
	pack_cstr(&pk, job->dataset_path);
	pack_key(&pk, "rows");
	msgpack_pack_uint64(&pk, fp->rows);
	pack_key(&pk, "shape");
	msgpack_pack_array(&pk, fp->ndim);
	for (uint32_t d = 0; d < fp->ndim; d++)
		msgpack_pack_uint64(&pk, fp->shape[d]);
	pack_key(&pk, "dtype");
	msgpack_pack_unsigned_int(&pk, (unsigned)fp->dtype);
	pack_key(&pk, "sha256");
	msgpack_pack_bin(&pk, 32);
	msgpack_pack_bin_body(&pk, fp->sha256, 32);
	if ((rc = meta_put(s, txn, "dataset", &f, why)) != 0)
		goto out;

	f.len = 0;
	msgpack_pack_uint32(&pk, job->shard_rows);
	if ((rc = meta_put(s, txn, "shard_rows", &f, why)) != 0)
		goto out;
	if (job->rows_first != 0 || end != fp->rows) {
		f.len = 0;
		msgpack_pack_array(&pk, 2);
		msgpack_pack_uint64(&pk, job->rows_first);
		msgpack_pack_uint64(&pk, end);
		if ((rc = meta_put(s, txn, "rows", &f, why)) != 0)
			goto out;
	}

	rc = mdb_txn_commit(txn);
	txn = NULL;
	rc = lmdb_err(why, rc, s, "commit job");
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	return rc;
}

/* --- meta: teachers ------------------------------------------------------- */

static int
decode_teacher(const char *key, sl_mp *c, sl_store_teacher *t, sl_errmsg *why)
{
	uint32_t n, have = 0, u;
	double temp;

	if (sl_mp_map(c, &n) != 0)
		return bad_meta(why, key, NULL, "not a map");
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *k, *val;
		size_t klen, vlen;

		if (sl_mp_str(c, &k, &klen) != 0)
			return bad_meta(why, key, NULL, "a key is not a string");
		if (sl_mp_streq(k, klen, "index")) {
			if (sl_mp_u32(c, &t->index, SL_STORE_MAX_TEACHERS - 1))
				return bad_meta(why, key, "index",
				    "not an integer below 256");
			have |= 1;
		} else if (sl_mp_streq(k, klen, "classes")) {
			if (sl_mp_u32(c, &t->fmt.classes, UINT32_MAX))
				return bad_meta(why, key, "classes",
				    "not an unsigned integer");
			have |= 2;
		} else if (sl_mp_streq(k, klen, "temperature")) {
			if (sl_mp_f64(c, &temp) != 0 || !isfinite(temp) ||
			    temp <= 0 || temp > (double)FLT_MAX)
				return bad_meta(why, key, "temperature",
				    "not a positive finite number");
			t->temperature = (float)temp;
			have |= 4;
		} else if (sl_mp_streq(k, klen, "encoding")) {
			if (sl_mp_u32(c, &u, 255) != 0)
				return bad_meta(why, key, "encoding",
				    "not a small unsigned integer");
			t->fmt.encoding = (enum sl_encoding)u;
			have |= 8;
		} else if (sl_mp_streq(k, klen, "k")) {
			if (sl_mp_u32(c, &u, UINT16_MAX) != 0)
				return bad_meta(why, key, "k",
				    "not a 16-bit unsigned integer");
			t->fmt.k = (uint16_t)u;
			have |= 16;
		} else if (sl_mp_streq(k, klen, "preproc")) {
			if (sl_mp_bin(c, &val, &vlen) != 0 ||
			    sl_preproc_unpack(val, vlen, &t->pre) != 0)
				return bad_meta(why, key, "preproc",
				    "not 4 * (1 + 2C) bytes of bin");
			t->has_pre = 1;
		} else if (sl_mp_streq(k, klen, "views")) {
			if (sl_mp_u32(c, &t->views, SL_STORE_MAX_VIEWS) != 0 ||
			    t->views == 0)
				return bad_meta(why, key, "views",
				    "not an integer from 1 to 1024");
			have |= 64;
		} else if (sl_mp_streq(k, klen, "view_recipe")) {
			if (sl_mp_bin(c, &val, &vlen) != 0 ||
			    sl_view_recipe_unpack(val, vlen, &t->view_recipe,
			        NULL) != 0)
				return bad_meta(why, key, "view_recipe",
				    "not a packed view recipe");
			have |= 128;
		} else if (sl_mp_streq(k, klen, "view_seed")) {
			if (sl_mp_u64(c, &t->view_seed) != 0)
				return bad_meta(why, key, "view_seed",
				    "not an unsigned integer");
			have |= 256;
		} else if (sl_mp_streq(k, klen, "model_sha256")) {
			if (sl_mp_bin(c, &val, &vlen) != 0 || vlen != 32)
				return bad_meta(why, key, "model_sha256",
				    "not 32 bytes of bin");
			bin_to_hex(val, t->model_sha256);
			have |= 32;
		} else if (sl_mp_skip(c) != 0) {
			return bad_meta(why, key, NULL, "truncated value");
		}
	}
	if ((have & 63) != 63)
		return bad_meta(why, key, NULL, "missing one of index, classes, "
		    "temperature, encoding, k, model_sha256");
	if ((have & 448) != 0 && (have & 448) != 448)
		return bad_meta(why, key, NULL, "views, view_recipe and "
		    "view_seed go together: one is missing");
	if (sl_mp_left(c) != 0)
		return bad_meta(why, key, NULL, "trailing bytes");
	if (!fmt_valid(&t->fmt))
		return bad_meta(why, key, NULL,
		    "encoding, classes and k are not a valid format");
	return 0;
}

/* Which field of b differs from the registered a; 0 when none. */
/* The same preprocessing bit for bit, in its stored form. */
static int
preproc_same(const sl_preproc *a, const sl_preproc *b)
{
	uint8_t pa[SL_PREPROC_MAX_BYTES], pb[SL_PREPROC_MAX_BYTES];
	size_t la = sl_preproc_pack(a, pa), lb = sl_preproc_pack(b, pb);

	return la == lb && memcmp(pa, pb, la) == 0;
}

/* The views of b against the registered a: V, recipe (packed bytes) and
 * seed; 0 when the same (views 0 on both: no views). */
static int
views_diff(const sl_store_teacher *a, const sl_store_teacher *b,
    sl_errmsg *why)
{
	uint8_t ra[SL_VIEW_RECIPE_BYTES], rb[SL_VIEW_RECIPE_BYTES];
	char ta[SL_VIEW_RECIPE_TEXT], tb[SL_VIEW_RECIPE_TEXT];

	if (a->views != b->views)
		return sl_errmsg_set(why, SL_EMISMATCH,
		    "teacher '%s' is registered with %" PRIu32 " views, this "
		    "worker has %" PRIu32, a->name, a->views, b->views);
	if (a->views == 0)
		return 0;
	sl_view_recipe_pack(&a->view_recipe, ra);
	sl_view_recipe_pack(&b->view_recipe, rb);
	if (memcmp(ra, rb, sizeof ra) != 0) {
		sl_view_recipe_format(ta, sizeof ta, &a->view_recipe);
		sl_view_recipe_format(tb, sizeof tb, &b->view_recipe);
		return sl_errmsg_set(why, SL_EMISMATCH,
		    "teacher '%s' is registered with view recipe %s, this "
		    "worker has %s", a->name, ta, tb);
	}
	if (a->view_seed != b->view_seed)
		return sl_errmsg_set(why, SL_EMISMATCH,
		    "teacher '%s' is registered with view seed %" PRIu64
		    ", this worker has %" PRIu64, a->name, a->view_seed,
		    b->view_seed);
	return 0;
}

static int
teacher_diff(const sl_store_teacher *a, const sl_store_teacher *b,
    sl_errmsg *why)
{
	const char *N = a->name;
	uint32_t ta, tb;

	memcpy(&ta, &a->temperature, 4);
	memcpy(&tb, &b->temperature, 4);
	if (strcmp(a->model_sha256, b->model_sha256) != 0)
		return sl_errmsg_set(why, SL_EMISMATCH,
		    "teacher '%s' is registered with model %.12s..., "
		    "this worker has %.12s...", N, a->model_sha256,
		    b->model_sha256);
	if (ta != tb)
		return sl_errmsg_set(why, SL_EMISMATCH,
		    "teacher '%s' is registered with temperature %.9g, "
		    "this worker has %.9g", N, (double)a->temperature,
		    (double)b->temperature);
	if (a->has_pre && b->has_pre && !preproc_same(&a->pre, &b->pre)) {
		char pa[256], pb[256];

		return sl_errmsg_set(why, SL_EMISMATCH,
		    "teacher '%s' is registered with preprocessing %s, this "
		    "worker has %s", N, sl_preproc_format(&a->pre, pa, sizeof pa),
		    sl_preproc_format(&b->pre, pb, sizeof pb));
	}
	if (a->fmt.encoding != b->fmt.encoding || a->fmt.k != b->fmt.k) {
		char ea[32], eb[32];

		fmt_text(&a->fmt, ea, sizeof ea);
		fmt_text(&b->fmt, eb, sizeof eb);
		return sl_errmsg_set(why, SL_EMISMATCH,
		    "teacher '%s' is registered with %s %s, this worker has %s",
		    N, a->fmt.encoding == b->fmt.encoding ? "k of encoding" :
		    "encoding", ea, eb);
	}
	if (a->fmt.classes != b->fmt.classes)
		return sl_errmsg_set(why, SL_EMISMATCH,
		    "teacher '%s' is registered with classes %" PRIu32
		    ", this worker has %" PRIu32, N, a->fmt.classes,
		    b->fmt.classes);
	return views_diff(a, b, why);
}

/* Cursor over meta keys "teacher/...", calling fn for each; counts them. */
typedef int (*teacher_fn)(void *arg, const char *key, const MDB_val *v,
    sl_errmsg *why);

static int
each_teacher_key(sl_store *s, MDB_txn *txn, teacher_fn fn, void *arg,
    size_t *count, sl_errmsg *why)
{
	MDB_cursor *cur;
	MDB_val k = { TEACHER_PREFIX_LEN, (void *)TEACHER_PREFIX }, v;
	char key[TEACHER_PREFIX_LEN + SL_STORE_MAX_NAME + 1];
	size_t n = 0;
	int rc = mdb_cursor_open(txn, s->meta, &cur);

	if (rc != 0)
		return lmdb_err(why, rc, s, "open meta cursor");
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size < TEACHER_PREFIX_LEN ||
		    memcmp(k.mv_data, TEACHER_PREFIX, TEACHER_PREFIX_LEN) != 0)
			break;
		if (k.mv_size >= sizeof key ||
		    k.mv_size == TEACHER_PREFIX_LEN ||
		    memchr(k.mv_data, '\0', k.mv_size) != NULL ||
		    memchr((char *)k.mv_data + TEACHER_PREFIX_LEN, '/',
		        k.mv_size - TEACHER_PREFIX_LEN) != NULL) {
			rc = sl_errmsg_set(why, SL_EFORMAT,
			    "corrupt cache: meta key 'teacher/...' of %zu "
			    "bytes is not a valid teacher name", k.mv_size);
			goto out;
		}
		memcpy(key, k.mv_data, k.mv_size);
		key[k.mv_size] = '\0';
		if (fn != NULL && (rc = fn(arg, key, &v, why)) != 0)
			goto out;
		n++;
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		rc = lmdb_err(why, rc, s, "walk meta");
		goto out;
	}
	rc = 0;
	*count = n;
out:
	mdb_cursor_close(cur);
	return rc;
}

/* each_teacher_key callback: mark the index each teacher holds. */
static int
mark_index(void *arg, const char *key, const MDB_val *v, sl_errmsg *why)
{
	uint8_t *used = arg; /* (SL_STORE_MAX_TEACHERS) */
	sl_store_teacher t;
	sl_mp c;
	int rc;

	memset(&t, 0, sizeof t);
	sl_mp_init(&c, v->mv_data, v->mv_size);
	if ((rc = decode_teacher(key, &c, &t, why)) != 0)
		return rc;
	used[t.index] = 1;
	return 0;
}

/* A schema-1 cache that gets a teacher with views becomes schema 2 (a
 * cache without a job yet has no schema: init_job writes 2). */
static int
raise_schema(sl_store *s, MDB_txn *txn, sl_errmsg *why)
{
	msgpack_packer pk;
	uint32_t schema;
	fixbuf f = { .len = 0, .overflow = 0 };
	int rc = check_schema(s, txn, &schema, why);

	if (rc == SL_ENOTFOUND || (rc == 0 && schema == SL_STORE_SCHEMA))
		return 0;
	if (rc != 0)
		return rc;
	msgpack_packer_init(&pk, &f, fixbuf_write);
	msgpack_pack_unsigned_int(&pk, SL_STORE_SCHEMA);
	return meta_put(s, txn, "schema", &f, why);
}

int
sl_store_register_teacher(sl_store *s, sl_store_teacher *t, sl_errmsg *why)
{
	char key[TEACHER_PREFIX_LEN + SL_STORE_MAX_NAME + 1];
	uint8_t sha[32];
	uint32_t tbits;
	sl_store_teacher have;
	msgpack_packer pk;
	fixbuf f;
	MDB_txn *txn = NULL;
	uint8_t used[SL_STORE_MAX_TEACHERS] = { 0 };
	uint32_t index = 0;
	size_t count;
	sl_mp c;
	int rc;

	if (s->readonly)
		return sl_errmsg_set(why, SL_EINVAL, "cache opened read-only");
	if (!name_valid(t->name) ||
	    !sl_proto_name_valid(t->name, strlen(t->name), NULL))
		return sl_errmsg_set(why, SL_EINVAL, "teacher name must be 1 to "
		    "%d characters from %s", SL_STORE_MAX_NAME,
		    SL_PROTO_NAME_CHARS);
	if (hex_to_bin(t->model_sha256, sha) != 0)
		return sl_errmsg_set(why, SL_EINVAL,
		    "model_sha256 is not 64 hex digits");
	if (!isfinite(t->temperature) || !(t->temperature > 0))
		return sl_errmsg_set(why, SL_EINVAL,
		    "temperature must be positive and finite");
	if (t->has_pre && (rc = sl_preproc_check(&t->pre, NULL, 0, why)) != 0)
		return rc;
	if (!fmt_valid(&t->fmt))
		return sl_errmsg_set(why, SL_EINVAL,
		    "invalid format (encoding, classes %" PRIu32 ", k %u)",
		    t->fmt.classes, (unsigned)t->fmt.k);
	if (t->views > SL_STORE_MAX_VIEWS)
		return sl_errmsg_set(why, SL_EINVAL, "views %" PRIu32 " is over "
		    "%d", t->views, SL_STORE_MAX_VIEWS);
	if (t->views > 0) {
		uint8_t rb[SL_VIEW_RECIPE_BYTES];

		sl_view_recipe_pack(&t->view_recipe, rb);
		if (sl_view_recipe_unpack(rb, sizeof rb, &t->view_recipe,
		    why) != 0)
			return SL_EINVAL;
	}
	snprintf(key, sizeof key, TEACHER_PREFIX "%s", t->name);

	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		return lmdb_err(why, rc, s, "begin write transaction");
	rc = meta_get(s, txn, key, &c, why);
	if (rc == 0) {
		memset(&have, 0, sizeof have);
		if ((rc = decode_teacher(key, &c, &have, why)) != 0)
			goto out;
		memcpy(have.name, t->name, strlen(t->name) + 1);
		{
			sl_store_teacher mine = *t;

			bin_to_hex(sha, mine.model_sha256); /* lowercase */
			if ((rc = teacher_diff(&have, &mine, why)) != 0)
				goto out;
		}
		t->index = have.index;
		goto out; /* nothing written: abort is the cheap end */
	}
	if (rc != SL_ENOTFOUND)
		goto out;

	/* The lowest free index: one freed by sl_store_remove_teacher holds
	 * no record and no shard state, so it can be given again. */
	if ((rc = each_teacher_key(s, txn, mark_index, used, &count, why)) != 0)
		goto out;
	while (index < SL_STORE_MAX_TEACHERS && used[index])
		index++;
	if (index >= SL_STORE_MAX_TEACHERS) {
		rc = sl_errmsg_set(why, SL_ELIMIT,
		    "cache already holds %d teachers", SL_STORE_MAX_TEACHERS);
		goto out;
	}
	memcpy(&tbits, &t->temperature, 4);
	f.len = 0;
	f.overflow = 0;
	msgpack_packer_init(&pk, &f, fixbuf_write);
	msgpack_pack_map(&pk, 6 + (t->has_pre ? 1 : 0) + (t->views ? 3 : 0));
	pack_key(&pk, "index");
	msgpack_pack_uint32(&pk, index);
	pack_key(&pk, "classes");
	msgpack_pack_uint32(&pk, t->fmt.classes);
	pack_key(&pk, "temperature");
	msgpack_pack_float(&pk, t->temperature);
	pack_key(&pk, "encoding");
	msgpack_pack_unsigned_int(&pk, (unsigned)t->fmt.encoding);
	pack_key(&pk, "k");
	msgpack_pack_uint16(&pk, t->fmt.k);
	pack_key(&pk, "model_sha256");
	msgpack_pack_bin(&pk, 32);
	msgpack_pack_bin_body(&pk, sha, 32);
	if (t->has_pre) {
		uint8_t pre[SL_PREPROC_MAX_BYTES];
		size_t plen = sl_preproc_pack(&t->pre, pre);

		pack_key(&pk, "preproc");
		msgpack_pack_bin(&pk, plen);
		msgpack_pack_bin_body(&pk, pre, plen);
	}
	if (t->views > 0) {
		uint8_t rb[SL_VIEW_RECIPE_BYTES];

		sl_view_recipe_pack(&t->view_recipe, rb);
		pack_key(&pk, "views");
		msgpack_pack_uint32(&pk, t->views);
		pack_key(&pk, "view_recipe");
		msgpack_pack_bin(&pk, sizeof rb);
		msgpack_pack_bin_body(&pk, rb, sizeof rb);
		pack_key(&pk, "view_seed");
		msgpack_pack_uint64(&pk, t->view_seed);
	}
	if ((rc = meta_put(s, txn, key, &f, why)) != 0)
		goto out;
	if (t->views > 0 && (rc = raise_schema(s, txn, why)) != 0)
		goto out;
	rc = mdb_txn_commit(txn);
	txn = NULL;
	if ((rc = lmdb_err(why, rc, s, "commit teacher")) == 0)
		t->index = index;
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	return rc;
}

/* 1 if db holds a key that starts with the 4 bytes of prefix. */
static int
has_prefix(MDB_txn *txn, MDB_dbi db, const uint8_t prefix[4], int *yes)
{
	MDB_cursor *cur;
	MDB_val k = { 4, (void *)prefix }, v;
	int rc = mdb_cursor_open(txn, db, &cur);

	if (rc != 0)
		return rc;
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	*yes = rc == 0 && k.mv_size >= 4 && memcmp(k.mv_data, prefix, 4) == 0;
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int
sl_store_remove_teacher(sl_store *s, const char *name, sl_errmsg *why)
{
	char key[TEACHER_PREFIX_LEN + SL_STORE_MAX_NAME + 1];
	sl_store_teacher t;
	uint8_t prefix[4];
	MDB_txn *txn = NULL;
	MDB_val k;
	sl_mp c;
	int rc, shards = 0, labels = 0;

	if (s->readonly)
		return sl_errmsg_set(why, SL_EINVAL, "cache opened read-only");
	if (!name_valid(name))
		return sl_errmsg_set(why, SL_EINVAL, "not a teacher name");
	snprintf(key, sizeof key, TEACHER_PREFIX "%s", name);
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		return lmdb_err(why, rc, s, "begin write transaction");
	if ((rc = meta_get(s, txn, key, &c, why)) == SL_ENOTFOUND)
		rc = sl_errmsg_set(why, SL_ENOTFOUND, "no teacher '%s' in the "
		    "cache", name);
	if (rc != 0)
		goto out;
	memset(&t, 0, sizeof t);
	if ((rc = decode_teacher(key, &c, &t, why)) != 0)
		goto out;
	prefix[0] = (uint8_t)(t.index >> 24);
	prefix[1] = (uint8_t)(t.index >> 16);
	prefix[2] = (uint8_t)(t.index >> 8);
	prefix[3] = (uint8_t)t.index;
	if ((rc = has_prefix(txn, s->shards, prefix, &shards)) != 0 ||
	    (rc = has_prefix(txn, s->labels, prefix, &labels)) != 0) {
		rc = lmdb_err(why, rc, s, "look for the teacher's records");
		goto out;
	}
	if (shards || labels) {
		rc = sl_errmsg_set(why, SL_EINVAL, "teacher '%s' has %s in the "
		    "cache: only a registration that never produced a record "
		    "can be removed", name, labels ? "records" : "shard states");
		goto out;
	}
	k.mv_size = strlen(key);
	k.mv_data = key;
	if ((rc = mdb_del(txn, s->meta, &k, NULL)) != 0) {
		rc = lmdb_err(why, rc, s, "remove teacher");
		goto out;
	}
	rc = mdb_txn_commit(txn);
	txn = NULL;
	rc = lmdb_err(why, rc, s, "commit");
out:
	if (txn != NULL)
		mdb_txn_abort(txn);
	return rc;
}

typedef struct teachers_ctx {
	sl_store_teacher *out;
	size_t cap, n;
} teachers_ctx;

static int
collect_teacher(void *arg, const char *key, const MDB_val *v, sl_errmsg *why)
{
	teachers_ctx *tc = arg;
	sl_store_teacher *t;
	sl_mp c;
	int rc;

	if (tc->n >= tc->cap)
		return sl_errmsg_set(why, SL_ELIMIT,
		    "more teachers than the %zu the caller has room for",
		    tc->cap);
	t = &tc->out[tc->n];
	memset(t, 0, sizeof *t);
	sl_mp_init(&c, v->mv_data, v->mv_size);
	if ((rc = decode_teacher(key, &c, t, why)) != 0)
		return rc;
	snprintf(t->name, sizeof t->name, "%s", key + TEACHER_PREFIX_LEN);
	tc->n++;
	return 0;
}

static int
cmp_index(const void *a, const void *b)
{
	const sl_store_teacher *x = a, *y = b;

	return (x->index > y->index) - (x->index < y->index);
}

int
sl_store_teachers(sl_store *s, sl_store_teacher *out, size_t cap, size_t *n,
    sl_errmsg *why)
{
	teachers_ctx tc = { out, cap, 0 };
	MDB_txn *txn;
	size_t count;
	int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);

	if (rc != 0)
		return lmdb_err(why, rc, s, "begin read transaction");
	rc = each_teacher_key(s, txn, collect_teacher, &tc, &count, why);
	mdb_txn_abort(txn);
	if (rc != 0)
		return rc;
	qsort(out, tc.n, sizeof *out, cmp_index);
	for (size_t i = 1; i < tc.n; i++)
		if (out[i].index == out[i - 1].index)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "corrupt cache: teachers '%s' and '%s' share "
			    "index %" PRIu32, out[i - 1].name, out[i].name,
			    out[i].index);
	*n = tc.n;
	return 0;
}

/* --- shards entries ------------------------------------------------------- */

/* Decode a shards value; why (if any) gets "field: problem". */
static int
decode_shard(const void *buf, size_t len, sl_shard_info *out, sl_errmsg *why)
{
	sl_shard_info info;
	sl_mp c;
	uint32_t n, have = 0;

	memset(&info, 0, sizeof info);
	sl_mp_init(&c, buf, len);
	if (sl_mp_map(&c, &n) != 0)
		return sl_errmsg_set(why, SL_EFORMAT, "not a map");
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *k, *val;
		size_t klen, vlen;

		if (sl_mp_str(&c, &k, &klen) != 0)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "a key is not a string");
		if (sl_mp_streq(k, klen, "state")) {
			if (sl_mp_u32(&c, &info.state, 255) != 0 ||
			    (info.state != SL_SHARD_DONE &&
			        info.state != SL_SHARD_QUARANTINED))
				return sl_errmsg_set(why, SL_EFORMAT,
				    "state: not 1 (done) or 2 (quarantined)");
			have |= 1;
		} else if (sl_mp_streq(k, klen, "attempts")) {
			if (sl_mp_u32(&c, &info.attempts, UINT32_MAX) != 0)
				return sl_errmsg_set(why, SL_EFORMAT,
				    "attempts: not a 32-bit unsigned integer");
			have |= 2;
		} else if (sl_mp_streq(k, klen, "worker")) {
			if (sl_mp_str(&c, &val, &vlen) != 0 ||
			    vlen > SL_STORE_MAX_NAME ||
			    memchr(val, '\0', vlen) != NULL)
				return sl_errmsg_set(why, SL_EFORMAT,
				    "worker: not a string of at most %d bytes",
				    SL_STORE_MAX_NAME);
			copy_str(info.worker, sizeof info.worker, val, vlen);
			have |= 4;
		} else if (sl_mp_streq(k, klen, "committed_ms")) {
			if (sl_mp_u64(&c, &info.committed_ms) != 0)
				return sl_errmsg_set(why, SL_EFORMAT,
				    "committed_ms: not an unsigned integer");
			have |= 8;
		} else if (sl_mp_streq(k, klen, "reason")) {
			if (sl_mp_str(&c, &val, &vlen) != 0)
				return sl_errmsg_set(why, SL_EFORMAT,
				    "reason: not a string");
			/* Text for people: a longer one is cut, not refused. */
			copy_str(info.reason, sizeof info.reason, val, vlen);
		} else if (sl_mp_skip(&c) != 0) {
			return sl_errmsg_set(why, SL_EFORMAT, "truncated value");
		}
	}
	if (have != 15)
		return sl_errmsg_set(why, SL_EFORMAT, "missing one of state, "
		    "attempts, worker, committed_ms");
	if (sl_mp_left(&c) != 0)
		return sl_errmsg_set(why, SL_EFORMAT, "trailing bytes");
	*out = info;
	return 0;
}

static int
bad_shard(sl_errmsg *why, uint32_t teacher, uint64_t shard, const char *what)
{
	char detail[SL_ERRMSG_MAX];

	snprintf(detail, sizeof detail, "%s", what);
	return sl_errmsg_set(why, SL_EFORMAT,
	    "corrupt cache: shards entry (teacher %" PRIu32 ", shard %" PRIu64
	    "): %s", teacher, shard, detail);
}

static int
put_shard_entry(sl_store_txn *t, uint32_t teacher, uint64_t shard,
    uint32_t state, uint32_t attempts, const char *worker,
    const char *reason, sl_errmsg *why)
{
	uint8_t kb[LABEL_KEY_BYTES];
	MDB_val k = { sizeof kb, kb }, v;
	msgpack_packer pk;
	fixbuf f;

	f.len = 0;
	f.overflow = 0;
	msgpack_packer_init(&pk, &f, fixbuf_write);
	msgpack_pack_map(&pk, reason != NULL ? 5 : 4);
	pack_key(&pk, "state");
	msgpack_pack_uint32(&pk, state);
	pack_key(&pk, "attempts");
	msgpack_pack_uint32(&pk, attempts);
	pack_key(&pk, "worker");
	pack_cstr(&pk, worker);
	pack_key(&pk, "committed_ms");
	msgpack_pack_uint64(&pk, now_ms());
	if (reason != NULL) {
		size_t n = utf8_prefix(reason,
		    sizeof ((sl_shard_info *)0)->reason - 1);

		pack_key(&pk, "reason");
		msgpack_pack_str(&pk, n);
		msgpack_pack_str_body(&pk, reason, n);
	}
	if (f.overflow) /* cannot happen with the bounds above */
		return sl_errmsg_set(why, SL_ELIMIT, "shards value too big");
	key12(kb, teacher, shard);
	v.mv_size = f.len;
	v.mv_data = f.data;
	return wput(t, t->s->shards, &k, &v, why, "write shards entry");
}

/* --- writing -------------------------------------------------------------- */

int
sl_store_put_shard(sl_store_txn *t, uint32_t teacher, uint64_t shard,
    uint64_t first_row, uint32_t nrows, const void *records, size_t rec_size,
    const char *worker, uint32_t attempts, sl_errmsg *why)
{
	return sl_store_put_shard_view(t, teacher, shard, first_row, nrows,
	    SL_STORE_NO_VIEW, records, rec_size, worker, attempts, why);
}

int
sl_store_put_shard_view(sl_store_txn *t, uint32_t teacher, uint64_t shard,
    uint64_t first_row, uint32_t nrows, uint32_t view, const void *records,
    size_t rec_size, const char *worker, uint32_t attempts, sl_errmsg *why)
{
	const uint8_t *rec = records;
	uint8_t kb[VIEW_KEY_BYTES];
	MDB_val k = { sizeof kb, kb }, v = { rec_size, NULL };
	int rc;

	if ((rc = check_writable(t, why)) != 0)
		return rc;
	if (worker == NULL)
		worker = "";
	if (strnlen(worker, SL_STORE_MAX_NAME + 1) > SL_STORE_MAX_NAME)
		return sl_errmsg_set(why, SL_EINVAL,
		    "worker name over %d bytes", SL_STORE_MAX_NAME);
	if (rec_size == 0 || (nrows > 0 && records == NULL) ||
	    first_row > UINT64_MAX - nrows)
		return sl_errmsg_set(why, SL_EINVAL,
		    "invalid records (size %zu, rows %" PRIu32 ")", rec_size,
		    nrows);
	/* Plain puts: bench_store measured them against MDB_RESERVE +
	 * memcpy and found no gain from reserving (see the bench). */
	for (uint32_t i = 0; i < nrows; i++) {
		k.mv_size = label_key(kb, teacher, first_row + i, view);
		v.mv_size = rec_size;
		v.mv_data = (void *)(rec + (size_t)i * rec_size);
		if ((rc = wput(t, t->s->labels, &k, &v, why, "write label")) != 0)
			return rc;
	}
	return put_shard_entry(t, teacher, shard, SL_SHARD_DONE, attempts,
	    worker, NULL, why);
}

int
sl_store_put_quarantine(sl_store_txn *t, uint32_t teacher, uint64_t shard,
    uint32_t attempts, const char *reason, sl_errmsg *why)
{
	int rc;

	if ((rc = check_writable(t, why)) != 0)
		return rc;
	return put_shard_entry(t, teacher, shard, SL_SHARD_QUARANTINED,
	    attempts, "", reason != NULL ? reason : "", why);
}

int
sl_store_reset_shard(sl_store_txn *t, uint32_t teacher, uint64_t shard,
    uint64_t first_row, uint32_t nrows, sl_errmsg *why)
{
	return sl_store_reset_shard_view(t, teacher, shard, first_row, nrows,
	    SL_STORE_NO_VIEW, why);
}

int
sl_store_reset_shard_view(sl_store_txn *t, uint32_t teacher, uint64_t shard,
    uint64_t first_row, uint32_t nrows, uint32_t view, sl_errmsg *why)
{
	uint8_t kb[VIEW_KEY_BYTES];
	MDB_val k = { sizeof kb, kb };
	int rc;

	if ((rc = check_writable(t, why)) != 0)
		return rc;
	if (first_row > UINT64_MAX - nrows)
		return sl_errmsg_set(why, SL_EINVAL, "row range overflows");
	for (uint32_t i = 0; i < nrows; i++) {
		k.mv_size = label_key(kb, teacher, first_row + i, view);
		if ((rc = wdel(t, t->s->labels, &k, why, "delete label")) != 0)
			return rc;
	}
	k.mv_size = LABEL_KEY_BYTES;
	key12(kb, teacher, shard);
	return wdel(t, t->s->shards, &k, why, "delete shards entry");
}

int
sl_store_put_inputs(sl_store_txn *t, uint64_t first_row, uint32_t nrows,
    const void *rows, size_t row_bytes, sl_errmsg *why)
{
	const uint8_t *r = rows;
	uint8_t kb[INPUT_KEY_BYTES];
	MDB_val k = { sizeof kb, kb }, v;
	int rc;

	if ((rc = check_writable(t, why)) != 0)
		return rc;
	if (row_bytes == 0 || (nrows > 0 && rows == NULL) ||
	    first_row > UINT64_MAX - nrows)
		return sl_errmsg_set(why, SL_EINVAL, "invalid input rows");
	for (uint32_t i = 0; i < nrows; i++) {
		put_be64(kb, first_row + i);
		v.mv_size = row_bytes;
		v.mv_data = (void *)(r + (size_t)i * row_bytes);
		if ((rc = wput(t, t->s->inputs, &k, &v, why, "write input")) != 0)
			return rc;
	}
	return 0;
}

/* --- reading -------------------------------------------------------------- */

int
sl_store_get_label(sl_store_txn *t, uint32_t teacher, uint64_t sample,
    const void **rec, size_t *len)
{
	return sl_store_get_label_view(t, teacher, sample, SL_STORE_NO_VIEW,
	    rec, len);
}

int
sl_store_get_label_view(sl_store_txn *t, uint32_t teacher, uint64_t sample,
    uint32_t view, const void **rec, size_t *len)
{
	uint8_t kb[VIEW_KEY_BYTES];
	MDB_val k = { 0, kb }, v;
	int rc;

	k.mv_size = label_key(kb, teacher, sample, view);
	if ((rc = mdb_get(t->txn, t->s->labels, &k, &v)) != 0)
		return lmdb_err(NULL, rc, t->s, "");
	*rec = v.mv_data;
	*len = v.mv_size;
	return 0;
}

int
sl_store_get_shard(sl_store_txn *t, uint32_t teacher, uint64_t shard,
    sl_shard_info *out, sl_errmsg *why)
{
	uint8_t kb[LABEL_KEY_BYTES];
	MDB_val k = { sizeof kb, kb }, v;
	sl_errmsg detail;
	int rc;

	key12(kb, teacher, shard);
	rc = mdb_get(t->txn, t->s->shards, &k, &v);
	if (rc == MDB_NOTFOUND)
		return sl_errmsg_set(why, SL_ENOTFOUND,
		    "shard %" PRIu64 " of teacher %" PRIu32 " is pending",
		    shard, teacher);
	if (rc != 0)
		return lmdb_err(why, rc, t->s, "read shards entry");
	if ((rc = decode_shard(v.mv_data, v.mv_size, out, &detail)) != 0)
		return bad_shard(why, teacher, shard, detail.text);
	return 0;
}

/* Cursor from (teacher, from) over the keys of one teacher, each of
 * key_bytes (12, or 16 for the labels of a teacher with views); fn per
 * entry with the u64 after the teacher and (16-byte keys) the u32 view.
 * A key of that teacher of another size is SL_EFORMAT. Keys of other
 * teachers may have either size: the teacher prefix is read first. */
typedef int (*walk_fn)(void *arg, uint64_t n, uint32_t view,
    const MDB_val *v);

static int
walk_keys(sl_store_txn *t, MDB_dbi dbi, uint32_t teacher, uint64_t from,
    size_t key_bytes, walk_fn fn, void *arg, sl_errmsg *why)
{
	uint8_t kb[LABEL_KEY_BYTES];
	MDB_val k = { sizeof kb, kb }, v;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(t->txn, dbi, &cur);

	if (rc != 0)
		return lmdb_err(why, rc, t->s, "open cursor");
	key12(kb, teacher, from);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	    rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *kp = k.mv_data;

		if (k.mv_size >= 4 && get_be32(kp) != teacher)
			break;
		if (k.mv_size != key_bytes) {
			rc = sl_errmsg_set(why, SL_EFORMAT,
			    "corrupt cache: a key of %zu bytes, not %zu",
			    k.mv_size, key_bytes);
			goto out;
		}
		if ((rc = fn(arg, get_be64(kp + 4), key_bytes == VIEW_KEY_BYTES ?
		    get_be32(kp + LABEL_KEY_BYTES) : SL_STORE_NO_VIEW, &v)) != 0)
			goto out;
	}
	if (rc == MDB_NOTFOUND || rc == 0)
		rc = 0;
	else
		rc = lmdb_err(why, rc, t->s, "walk cursor");
out:
	mdb_cursor_close(cur);
	return rc;
}

typedef struct label_walk {
	sl_store_label_fn fn;
	sl_store_view_fn vfn;
	void *arg;
} label_walk;

static int
label_step(void *arg, uint64_t n, uint32_t view, const MDB_val *v)
{
	label_walk *w = arg;

	if (w->vfn != NULL)
		return w->vfn(w->arg, n, view, v->mv_data, v->mv_size);
	return w->fn(w->arg, n, v->mv_data, v->mv_size);
}

int
sl_store_each_label(sl_store_txn *t, uint32_t teacher, uint64_t from,
    sl_store_label_fn fn, void *arg)
{
	label_walk w = { fn, NULL, arg };

	return walk_keys(t, t->s->labels, teacher, from, LABEL_KEY_BYTES,
	    label_step, &w, NULL);
}

int
sl_store_each_label_view(sl_store_txn *t, uint32_t teacher, uint64_t from,
    sl_store_view_fn fn, void *arg)
{
	label_walk w = { NULL, fn, arg };

	return walk_keys(t, t->s->labels, teacher, from, VIEW_KEY_BYTES,
	    label_step, &w, NULL);
}

typedef struct shard_walk {
	sl_store_shard_fn fn;
	void *arg;
	uint8_t *state; /* sl_store_shard_states */
	uint64_t nshards;
	uint32_t teacher;
	sl_errmsg *why;
} shard_walk;

static int
shard_step(void *arg, uint64_t n, uint32_t view, const MDB_val *v)
{
	shard_walk *w = arg;
	sl_shard_info info;
	sl_errmsg detail;

	(void)view;
	if (decode_shard(v->mv_data, v->mv_size, &info, &detail) != 0)
		return bad_shard(w->why, w->teacher, n, detail.text);
	if (w->state == NULL)
		return w->fn(w->arg, n, &info);
	if (n >= w->nshards)
		return sl_errmsg_set(w->why, SL_EFORMAT,
		    "cache does not match the dataset: teacher %" PRIu32
		    " has shard %" PRIu64 ", the dataset only %" PRIu64
		    " shards", w->teacher, n, w->nshards);
	w->state[n] = (uint8_t)info.state;
	return 0;
}

int
sl_store_each_shard(sl_store_txn *t, uint32_t teacher, sl_store_shard_fn fn,
    void *arg)
{
	shard_walk w = { fn, arg, NULL, 0, teacher, NULL };

	return walk_keys(t, t->s->shards, teacher, 0, LABEL_KEY_BYTES,
	    shard_step, &w, NULL);
}

int
sl_store_shard_states(sl_store *s, uint32_t teacher, uint8_t *state,
    uint64_t nshards, sl_errmsg *why)
{
	shard_walk w = { NULL, NULL, state, nshards, teacher, why };
	sl_store_txn *t;
	int rc;

	if (nshards > 0)
		memset(state, SL_SHARD_PENDING, (size_t)nshards);
	if ((rc = sl_store_read_begin(s, &t, why)) != 0)
		return rc;
	rc = walk_keys(t, s->shards, teacher, 0, LABEL_KEY_BYTES, shard_step,
	    &w, why);
	sl_store_read_end(&t);
	return rc;
}

/* --- status --------------------------------------------------------------- */

/* mdb_reader_list prints a header line and one line per occupied slot. */
static int
count_reader_line(const char *msg, void *arg)
{
	int *n = arg;

	if (msg[0] != '(' && strstr(msg, "pid") == NULL)
		(*n)++;
	return 0;
}

int
sl_store_stat_get(sl_store *s, sl_store_stat *out, sl_errmsg *why)
{
	sl_store_stat st;
	MDB_envinfo info;
	MDB_stat ms;
	MDB_txn *txn;
	struct stat fs;
	int rc, used = 0;

	memset(&st, 0, sizeof st);
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
		return lmdb_err(why, rc, s, "begin read transaction");
	if ((rc = mdb_stat(txn, s->labels, &ms)) != 0)
		goto lfail;
	st.labels = ms.ms_entries;
	if ((rc = mdb_stat(txn, s->shards, &ms)) != 0)
		goto lfail;
	st.shards = ms.ms_entries;
	if ((rc = mdb_stat(txn, s->inputs, &ms)) != 0)
		goto lfail;
	st.inputs = ms.ms_entries;
	mdb_txn_abort(txn);
	txn = NULL;
	if ((rc = mdb_env_info(s->env, &info)) != 0 ||
	    (rc = mdb_env_stat(s->env, &ms)) != 0)
		goto lfail;
	st.used_bytes = ((uint64_t)info.me_last_pgno + 1) * ms.ms_psize;
	st.readers_max = info.me_maxreaders;
	/* me_numreaders is a high-water mark that never goes down (not even
	 * when mdb_reader_check frees a slot), so count occupied slots. */
	if ((rc = mdb_reader_list(s->env, count_reader_line, &used)) < 0)
		goto lfail;
	st.readers_used = (uint32_t)used;
	if (stat(s->data_path, &fs) != 0)
		return sl_errmsg_set(why, errno, "%s: %s", s->data_path,
		    strerror(errno));
	st.file_bytes = (uint64_t)fs.st_size;
	*out = st;
	return 0;
lfail:
	if (txn != NULL)
		mdb_txn_abort(txn);
	return lmdb_err(why, rc, s, "cache statistics");
}

int
sl_store_reader_check(sl_store *s, int *dead)
{
	int n = 0, rc = mdb_reader_check(s->env, &n);

	if (rc != 0)
		return lmdb_err(NULL, rc, s, "");
	if (dead != NULL)
		*dead = n;
	return 0;
}

/* --- meta: audit counters ------------------------------------------------- */

#define AUDIT_KEY "audit"

static const char *const audit_fields[6] = {
	"passed", "disputed", "settled", "unsettled", "refused", "purged_shards",
};

int
sl_store_put_audit(sl_store_txn *t, const sl_store_audit *a, sl_errmsg *why)
{
	const uint64_t v[6] = { a->passed, a->disputed, a->settled,
	    a->unsettled, a->refused, a->purged_shards };
	fixbuf f = { .len = 0, .overflow = 0 };
	msgpack_packer pk;
	int rc;

	if ((rc = check_writable(t, why)) != 0)
		return rc;
	msgpack_packer_init(&pk, &f, fixbuf_write);
	msgpack_pack_map(&pk, 6);
	for (int i = 0; i < 6; i++) {
		pack_key(&pk, audit_fields[i]);
		msgpack_pack_uint64(&pk, v[i]);
	}
	if ((rc = meta_put(t->s, t->txn, AUDIT_KEY, &f, why)) != 0)
		t->failed = 1;
	return rc;
}

int
sl_store_get_audit(sl_store_txn *t, sl_store_audit *out, sl_errmsg *why)
{
	uint64_t v[6] = { 0 };
	uint32_t n;
	sl_mp c;
	int rc;

	memset(out, 0, sizeof *out);
	if ((rc = meta_get(t->s, t->txn, AUDIT_KEY, &c, why)) != 0)
		return rc;
	if (sl_mp_map(&c, &n) != 0)
		return bad_meta(why, AUDIT_KEY, NULL, "not a map");
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *k;
		size_t klen;
		int j = 0;

		if (sl_mp_str(&c, &k, &klen) != 0)
			return bad_meta(why, AUDIT_KEY, NULL, "a key is not a string");
		while (j < 6 && !sl_mp_streq(k, klen, audit_fields[j]))
			j++;
		if (j == 6) {
			if (sl_mp_skip(&c) != 0)
				return bad_meta(why, AUDIT_KEY, NULL, "truncated value");
			continue;
		}
		if (sl_mp_u64(&c, &v[j]) != 0)
			return bad_meta(why, AUDIT_KEY, audit_fields[j],
			    "not an unsigned integer");
	}
	*out = (sl_store_audit){ v[0], v[1], v[2], v[3], v[4], v[5] };
	return 0;
}

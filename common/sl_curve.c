#include "sl_curve.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

struct sl_curve_allow {
	sl_curve_key *keys; /* (n), sorted by strcmp */
	size_t n;
};

static const char z85_chars[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    ".-:+=^!/*?&<>()[]{}@%$#";

/* --- key files ---------------------------------------------------------------- */

static int
write_line(const char *path, mode_t mode, const char *text, sl_errmsg *why)
{
	const size_t len = strlen(text);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
	int rc = 0;

	if (fd < 0)
		return sl_errmsg_set(why, errno, "%s: %s", path, strerror(errno));
	if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
	    fsync(fd) != 0)
		rc = errno ? errno : EIO;
	if (close(fd) != 0 && rc == 0)
		rc = errno;
	if (rc != 0) {
		unlink(path);
		return sl_errmsg_set(why, rc, "%s: %s", path, strerror(rc));
	}
	return 0;
}

int
sl_curve_keygen(const char *name, sl_curve_key *pub, sl_errmsg *why)
{
	char key_path[4096], pub_path[4096];
	sl_curve_key p, s;
	int rc;

	if (snprintf(key_path, sizeof key_path, "%s.key", name) >=
	    (int)sizeof key_path ||
	    snprintf(pub_path, sizeof pub_path, "%s.pub", name) >=
	    (int)sizeof pub_path)
		return sl_errmsg_set(why, ENAMETOOLONG, "%s: name too long", name);
	if (zmq_curve_keypair(p.z85, s.z85) != 0)
		return sl_errmsg_set(why, zmq_errno(), "zmq_curve_keypair: %s "
		    "(libzmq without CURVE?)", zmq_strerror(zmq_errno()));
	if ((rc = write_line(key_path, 0600, s.z85, why)) != 0)
		goto out;
	if ((rc = write_line(pub_path, 0644, p.z85, why)) != 0) {
		unlink(key_path);
		goto out;
	}
	if (pub != NULL)
		*pub = p;
out:
	memset(&s, 0, sizeof s);
	return rc;
}

/* Who may own a secret key file, and with which mode: PostgreSQL's rule for
 * its ssl_key_file. Owned by the user running us, the file must have no
 * group or other bits (0600 or less); owned by root, it may also be read by
 * its group (0640 or less: no group write or execute, no other bits). The
 * second form is what Kubernetes gives a non-root pod: Secret volume files
 * are root's, group fsGroup, mode 0440. Any other owner is refused: only
 * root could read someone else's 0600 file, and that file is not ours. */
#define SECRET_RULE "a secret key file must be owned by you with mode " \
	"0600 or less, or by root with mode 0640 or less"

static int
check_secret_owner_mode(const char *path, const struct stat *st,
    sl_errmsg *why)
{
	const uid_t me = geteuid();
	const unsigned mode = (unsigned)(st->st_mode & 07777);

	if (st->st_uid != me && st->st_uid != 0)
		return sl_errmsg_set(why, EACCES, "%s: secret key owned by uid "
		    "%u, neither you (uid %u) nor root: chown it ("
		    SECRET_RULE ")", path, (unsigned)st->st_uid, (unsigned)me);
	if (st->st_uid == me && (st->st_mode & 077) == 0)
		return 0;
	if (st->st_uid == 0 &&
	    (st->st_mode & (S_IWGRP | S_IXGRP | S_IRWXO)) == 0)
		return 0;
	return sl_errmsg_set(why, EACCES, "%s: secret key open to group or "
	    "others (mode %04o, owner uid %u): chmod %s it (" SECRET_RULE ")",
	    path, mode, (unsigned)st->st_uid, st->st_uid == me ? "600" : "640");
}

int
sl_curve_load_key(const char *path, int secret, sl_curve_key *out,
    sl_errmsg *why)
{
	char buf[SL_CURVE_Z85_LEN + 4];
	uint8_t bin[32];
	struct stat st;
	size_t len;
	ssize_t got;
	int fd, rc = 0;

	if ((fd = open(path, O_RDONLY)) < 0)
		return sl_errmsg_set(why, errno, "%s: %s", path, strerror(errno));
	if (fstat(fd, &st) != 0) {
		rc = sl_errmsg_set(why, errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = sl_errmsg_set(why, SL_EFORMAT, "%s: not a regular file", path);
		goto out;
	}
	if (secret && (rc = check_secret_owner_mode(path, &st, why)) != 0)
		goto out;
	/* Read one byte more than a key and its newline can take. */
	len = 0;
	while (len < sizeof buf && (got = read(fd, buf + len,
	    sizeof buf - len)) != 0) {
		if (got < 0) {
			if (errno == EINTR)
				continue;
			rc = sl_errmsg_set(why, errno, "%s: %s", path,
			    strerror(errno));
			goto out;
		}
		len += (size_t)got;
	}
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len != SL_CURVE_Z85_LEN) {
		rc = sl_errmsg_set(why, SL_EFORMAT, "%s: not %d Z85 characters "
		    "(a key file holds one key and at most a newline)", path,
		    SL_CURVE_Z85_LEN);
		goto out;
	}
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '\0' || strchr(z85_chars, buf[i]) == NULL) {
			rc = sl_errmsg_set(why, SL_EFORMAT, "%s: not %d Z85 "
			    "characters (byte %zu is 0x%02x)", path,
			    SL_CURVE_Z85_LEN, i, (unsigned char)buf[i]);
			goto out;
		}
	memcpy(out->z85, buf, SL_CURVE_Z85_LEN);
	out->z85[SL_CURVE_Z85_LEN] = '\0';
	/* Z85 groups whose value passes 2^32 are not a key either. */
	if (zmq_z85_decode(bin, out->z85) == NULL)
		rc = sl_errmsg_set(why, SL_EFORMAT, "%s: not %d Z85 characters "
		    "(a group overflows)", path, SL_CURVE_Z85_LEN);
out:
	memset(buf, 0, sizeof buf);
	memset(bin, 0, sizeof bin);
	close(fd);
	return rc;
}

int
sl_curve_public(const sl_curve_key *secret, sl_curve_key *pub)
{
	sl_curve_key p;

	if (zmq_curve_public(p.z85, secret->z85) != 0)
		return SL_EFORMAT;
	*pub = p;
	return 0;
}

int
sl_curve_load_pair(const char *secret_path, sl_curve_key *secret,
    sl_curve_key *pub, sl_errmsg *why)
{
	const size_t n = strlen(secret_path);
	char pub_path[4096];
	sl_curve_key s, derived, onfile;
	int rc;

	if ((rc = sl_curve_load_key(secret_path, 1, &s, why)) != 0)
		return rc;
	if (sl_curve_public(&s, &derived) != 0) {
		memset(&s, 0, sizeof s);
		return sl_errmsg_set(why, SL_EFORMAT, "%s: not a CURVE secret key",
		    secret_path);
	}
	if (n > 4 && n < sizeof pub_path && strcmp(secret_path + n - 4, ".key") == 0) {
		memcpy(pub_path, secret_path, n - 4);
		memcpy(pub_path + n - 4, ".pub", 5);
		if (access(pub_path, F_OK) == 0) {
			if ((rc = sl_curve_load_key(pub_path, 0, &onfile, why)) != 0) {
				memset(&s, 0, sizeof s);
				return rc;
			}
			if (strcmp(onfile.z85, derived.z85) != 0) {
				memset(&s, 0, sizeof s);
				return sl_errmsg_set(why, SL_EMISMATCH, "%s does not "
				    "match %s: not the two halves of one key pair",
				    pub_path, secret_path);
			}
		}
	}
	*secret = s;
	*pub = derived;
	memset(&s, 0, sizeof s);
	return 0;
}

/* --- allow-list ------------------------------------------------------------------ */

static int
cmp_key(const void *a, const void *b)
{
	return memcmp(((const sl_curve_key *)a)->z85,
	    ((const sl_curve_key *)b)->z85, SL_CURVE_Z85_LEN);
}

int
sl_curve_allow_load(const char *dir, sl_curve_allow **out, sl_errmsg *why)
{
	sl_curve_allow *a = calloc(1, sizeof *a);
	size_t cap = 0;
	struct dirent *e;
	DIR *d;
	int rc = 0;

	if (a == NULL)
		return SL_ENOMEM;
	if ((d = opendir(dir)) == NULL) {
		rc = sl_errmsg_set(why, errno, "%s: %s", dir, strerror(errno));
		free(a);
		return rc;
	}
	while ((e = readdir(d)) != NULL) {
		const size_t n = strlen(e->d_name);
		char path[4096];

		if (n <= 4 || e->d_name[0] == '.' ||
		    strcmp(e->d_name + n - 4, ".pub") != 0)
			continue;
		if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >=
		    (int)sizeof path) {
			rc = sl_errmsg_set(why, ENAMETOOLONG, "%s/%s: name too long",
			    dir, e->d_name);
			goto fail;
		}
		if (a->n == cap) {
			sl_curve_key *k = realloc(a->keys, (cap ? cap * 2 : 16) *
			    sizeof *k);

			if (k == NULL) {
				rc = SL_ENOMEM;
				goto fail;
			}
			a->keys = k;
			cap = cap ? cap * 2 : 16;
		}
		if ((rc = sl_curve_load_key(path, 0, &a->keys[a->n], why)) != 0)
			goto fail;
		a->n++;
	}
	closedir(d);
	if (a->n > 1)
		qsort(a->keys, a->n, sizeof *a->keys, cmp_key);
	*out = a;
	return 0;
fail:
	closedir(d);
	sl_curve_allow_free(&a);
	return rc;
}

void
sl_curve_allow_free(sl_curve_allow **a)
{
	if (a == NULL || *a == NULL)
		return;
	free((*a)->keys);
	free(*a);
	*a = NULL;
}

size_t
sl_curve_allow_count(const sl_curve_allow *a)
{
	return a ? a->n : 0;
}

int
sl_curve_allow_has(const sl_curve_allow *a, const char *z85)
{
	sl_curve_key k;

	if (a == NULL || a->n == 0)
		return 0;
	memcpy(k.z85, z85, SL_CURVE_Z85_LEN);
	k.z85[SL_CURVE_Z85_LEN] = '\0';
	return bsearch(&k, a->keys, a->n, sizeof k, cmp_key) != NULL;
}

/* --- ZAP ----------------------------------------------------------------------------- */

enum sl_curve_verdict
sl_curve_decide(const sl_curve_allow *a, const char *mechanism, size_t mlen,
    const uint8_t *key, size_t keylen, sl_curve_key *user_id)
{
	sl_curve_key k;

	if (mlen != 5 || memcmp(mechanism, "CURVE", 5) != 0)
		return SL_CURVE_PLAINTEXT;
	if (key == NULL || keylen != 32)
		return SL_CURVE_BAD_REQUEST;
	if (zmq_z85_encode(k.z85, key, 32) == NULL)
		return SL_CURVE_BAD_REQUEST;
	if (!sl_curve_allow_has(a, k.z85))
		return SL_CURVE_UNKNOWN_KEY;
	if (user_id != NULL)
		*user_id = k;
	return SL_CURVE_ADMIT;
}

#define ZAP_MAX_FRAMES 8

int
sl_curve_zap_serve(void *zap, const sl_curve_allow *a,
    enum sl_curve_verdict *verdict)
{
	zmq_msg_t f[ZAP_MAX_FRAMES];
	int nf = 0, more = 1, rc = 0;
	size_t more_len = sizeof more;
	enum sl_curve_verdict v = SL_CURVE_BAD_REQUEST;
	sl_curve_key uid = { "" };
	const char *status = "400", *text = "malformed ZAP request";

	/* A request: version, request id, domain, address, identity,
	 * mechanism, then the mechanism's credentials (CURVE: one 32-byte
	 * public key). Frames past the array are read and dropped. */
	while (more) {
		zmq_msg_t extra, *m = nf < ZAP_MAX_FRAMES ? &f[nf] : &extra;

		zmq_msg_init(m);
		if (zmq_msg_recv(m, zap, nf == 0 ? ZMQ_DONTWAIT : 0) < 0) {
			rc = zmq_errno();
			zmq_msg_close(m);
			if (nf == 0)
				return rc;
			break;
		}
		if (m == &extra)
			zmq_msg_close(m);
		else
			nf++;
		zmq_getsockopt(zap, ZMQ_RCVMORE, &more, &more_len);
	}
	if (rc == 0 && nf >= 6 && zmq_msg_size(&f[0]) == 3 &&
	    memcmp(zmq_msg_data(&f[0]), "1.0", 3) == 0) {
		v = sl_curve_decide(a, zmq_msg_data(&f[5]), zmq_msg_size(&f[5]),
		    nf > 6 ? zmq_msg_data(&f[6]) : NULL,
		    nf > 6 ? zmq_msg_size(&f[6]) : 0, &uid);
		switch (v) {
		case SL_CURVE_ADMIT:
			status = "200";
			text = "OK";
			break;
		case SL_CURVE_PLAINTEXT:
			text = "CURVE required";
			break;
		case SL_CURVE_UNKNOWN_KEY:
			text = "public key not on the allow-list";
			break;
		case SL_CURVE_BAD_REQUEST:
			break;
		}
	}
	/* Reply: version, request id, status code, status text, user id,
	 * metadata. A REP socket must answer even a malformed request. */
	if (rc == 0) {
		const int admit = v == SL_CURVE_ADMIT;

		if (zmq_send(zap, "1.0", 3, ZMQ_SNDMORE) < 0 ||
		    zmq_send(zap, nf > 1 ? zmq_msg_data(&f[1]) : "",
		    nf > 1 ? zmq_msg_size(&f[1]) : 0, ZMQ_SNDMORE) < 0 ||
		    zmq_send(zap, status, 3, ZMQ_SNDMORE) < 0 ||
		    zmq_send(zap, text, strlen(text), ZMQ_SNDMORE) < 0 ||
		    zmq_send(zap, uid.z85, admit ? SL_CURVE_Z85_LEN : 0,
		    ZMQ_SNDMORE) < 0 ||
		    zmq_send(zap, "", 0, 0) < 0)
			rc = zmq_errno();
	}
	for (int i = 0; i < nf; i++)
		zmq_msg_close(&f[i]);
	if (rc == 0)
		*verdict = v;
	return rc;
}

int
sl_curve_client_setup(void *sock, const sl_curve_key *secret,
    const sl_curve_key *pub, const sl_curve_key *server)
{
	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server->z85,
	    SL_CURVE_Z85_LEN) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, pub->z85,
	    SL_CURVE_Z85_LEN) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, secret->z85,
	    SL_CURVE_Z85_LEN) != 0)
		return zmq_errno();
	return 0;
}

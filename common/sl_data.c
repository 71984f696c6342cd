/* sl_data.c - .npy and IDX[.gz] datasets and labels.
 *
 * Every decoder here reads bytes that come from outside. The rules:
 *   - a size the input claims is checked (overflow, limits, file length)
 *     before it is used, and never allocated up front when the bytes behind
 *     it are not there yet (gzip output grows as data actually arrives);
 *   - reads go through memcpy, so a misaligned file cannot cause a
 *     misaligned load;
 *   - every failure returns a code and one line in why, nothing is printed.
 *
 * Byte order: the code assumes a little-endian host (checked below), so
 * "<f4" data is used as stored and IDX big-endian floats are swapped once on
 * load.
 */
#define ZLIB_CONST
#include "sl_data.h"

#include "sl_data_impl.h"
#include "sl_file.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "sl_data.c assumes a little-endian host"
#endif

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define SHAPE_TEXT_MAX (SL_DATA_MAX_DIMS * 24 + 8)
#define GZ_FIRST_ALLOC ((size_t)1 << 20) /* first gunzip buffer, bytes */
#define Z_CHUNK ((uInt)1 << 30)          /* zlib counts in uInt */


/* ---- small helpers ------------------------------------------------------ */

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint32_t
le32(const uint8_t *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[1] << 8 | (uint32_t)p[0];
}

/* "(3, 4)", "(5,)", "()" - the way NumPy prints a shape. */
static void
shape_text(const uint64_t *shape, uint32_t ndim, char *buf, size_t cap)
{
	size_t at = 0;
	int n;

	n = snprintf(buf, cap, "(");
	at = n > 0 ? (size_t)n : 0;
	for (uint32_t i = 0; i < ndim && at < cap; i++) {
		n = snprintf(buf + at, cap - at, "%s%llu", i ? ", " : "",
		    (unsigned long long)shape[i]);
		if (n < 0)
			return;
		at += (size_t)n;
	}
	if (at < cap)
		snprintf(buf + at, cap - at, ndim == 1 ? ",)" : ")");
}

/* Element count and value count per row for a shape, checked: the product
 * of the non-zero dimensions times elem_size must fit in size_t, so that
 * both count*elem_size and (values per row)*elem_size are safe even when a
 * zero dimension makes the count 0. */
static int
shape_count(const uint64_t *shape, uint32_t ndim, size_t elem_size,
    size_t *count, sl_errmsg *why)
{
	size_t nz = elem_size, c = 1;
	char text[SHAPE_TEXT_MAX];

	for (uint32_t i = 0; i < ndim; i++) {
		if (shape[i] == 0) {
			c = 0;
			continue;
		}
		if (shape[i] > SIZE_MAX / nz) {
			shape_text(shape, ndim, text, sizeof text);
			return sl_errmsg_set(why, SL_EFORMAT,
			    "shape %s with %zu-byte values overflows the "
			    "address space", text, elem_size);
		}
		nz *= (size_t)shape[i];
		c *= (size_t)shape[i]; /* c <= nz / elem_size */
	}
	*count = c;
	return 0;
}

/* The data described by ai must fill buf[data_offset..len) exactly. */
static int
check_data_len(const sl_array_info *ai, size_t len, sl_errmsg *why)
{
	size_t need = ai->count * ai->elem_size; /* checked by shape_count */
	size_t have = len - ai->data_offset;

	if (need > have)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "truncated: data needs %zu bytes, file has %zu after the "
		    "%zu-byte header", need, have, ai->data_offset);
	if (have > need)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "%zu trailing bytes after the %zu data bytes", have - need,
		    need);
	return 0;
}

/* Map a whole regular file read-only. */
static int
map_file(const char *path, void **map, size_t *len, struct stat *st_out,
    sl_errmsg *why)
{
	struct stat st;
	void *m;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = errno;
		return sl_errmsg_set(why, err, "open: %s", strerror(err));
	}
	if (fstat(fd, &st) != 0) {
		err = errno;
		sl_errmsg_set(why, err, "fstat: %s", strerror(err));
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		err = sl_errmsg_set(why, EISDIR, "is a directory");
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		err = sl_errmsg_set(why, SL_EUNSUPPORTED,
		    "not a regular file");
		goto fail;
	}
	if (st.st_size == 0) {
		err = sl_errmsg_set(why, SL_EFORMAT, "empty file");
		goto fail;
	}
	if ((uintmax_t)st.st_size > SIZE_MAX) {
		err = sl_errmsg_set(why, SL_ELIMIT,
		    "file of %jd bytes does not fit the address space",
		    (intmax_t)st.st_size);
		goto fail;
	}
	m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED) {
		err = errno;
		sl_errmsg_set(why, err, "mmap: %s", strerror(err));
		goto fail;
	}
	close(fd);
	*map = m;
	*len = (size_t)st.st_size;
	if (st_out != NULL)
		*st_out = st;
	return 0;
fail:
	close(fd);
	return err;
}

/* ---- .npy --------------------------------------------------------------- */

/* Normalise a NumPy type string ("<f4", "=u2", "|b1") to byte order + kind
 * + size, with '|' for one-byte types. Returns 0, SL_EUNSUPPORTED for type
 * strings we do not handle, SL_EFORMAT for nonsense. */
static int
descr_norm(const char *s, size_t n, char out[8], size_t *elem_size,
    sl_errmsg *why)
{
	char order, kind, size;

	if (n != 3)
		goto unsupported;
	order = s[0], kind = s[1], size = s[2];
	if (order != '<' && order != '>' && order != '|' && order != '=')
		goto unsupported;
	switch (kind) {
	case 'b':
		if (size != '1')
			goto unsupported;
		break;
	case 'i':
	case 'u':
		if (size != '1' && size != '2' && size != '4' && size != '8')
			goto unsupported;
		break;
	case 'f':
		if (size != '2' && size != '4' && size != '8')
			goto unsupported;
		break;
	default:
		goto unsupported;
	}
	if (size == '1')
		order = '|';
	else if (order == '=')
		order = '<'; /* native, and the host is little-endian */
	else if (order == '|')
		return sl_errmsg_set(why, SL_EFORMAT,
		    "descr '%.3s' has no byte order", s);
	out[0] = order, out[1] = kind, out[2] = size, out[3] = '\0';
	*elem_size = (size_t)(size - '0');
	return 0;
unsupported:
	return sl_errmsg_set(why, SL_EUNSUPPORTED, "descr '%.*s' unsupported",
	    n > 32 ? 32 : (int)n, s);
}

struct cursor {
	const char *p, *end;
};

static void
skip_ws(struct cursor *c)
{
	while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' ||
	    *c->p == '\n' || *c->p == '\r'))
		c->p++;
}

static int
take(struct cursor *c, char ch)
{
	skip_ws(c);
	if (c->p < c->end && *c->p == ch) {
		c->p++;
		return 1;
	}
	return 0;
}

static int
take_word(struct cursor *c, const char *w)
{
	size_t n = strlen(w);

	skip_ws(c);
	if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
		c->p += n;
		return 1;
	}
	return 0;
}

/* A Python string literal in ' or " quotes (no escapes: no key or type
 * string NumPy writes contains one). */
static int
take_str(struct cursor *c, const char **s, size_t *n)
{
	const char *q;
	char quote;

	skip_ws(c);
	if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
		return 0;
	quote = *c->p;
	q = memchr(c->p + 1, quote, (size_t)(c->end - c->p - 1));
	if (q == NULL)
		return 0;
	*s = c->p + 1;
	*n = (size_t)(q - c->p - 1);
	c->p = q + 1;
	return 1;
}

/* A decimal integer, optionally with Python 2's 'L' suffix. Parsed by hand
 * because the header is not NUL-terminated (strtoull could run past it). */
static int
take_uint(struct cursor *c, uint64_t *v)
{
	uint64_t x = 0;
	const char *start;

	skip_ws(c);
	start = c->p;
	while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
		unsigned d = (unsigned)(*c->p - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
		c->p++;
	}
	if (c->p == start)
		return 0;
	if (c->p < c->end && *c->p == 'L')
		c->p++;
	*v = x;
	return 1;
}

static int
parse_shape(struct cursor *c, sl_array_info *ai, sl_errmsg *why)
{
	uint64_t v;
	int rc;

	if (!take(c, '('))
		return sl_errmsg_set(why, SL_EFORMAT,
		    "npy 'shape' is not a tuple");
	ai->ndim = 0;
	for (;;) {
		if (take(c, ')'))
			return 0;
		rc = take_uint(c, &v);
		if (rc < 0)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "npy shape dimension does not fit 64 bits");
		if (rc == 0)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "npy shape holds something other than "
			    "non-negative integers");
		if (ai->ndim == SL_DATA_MAX_DIMS)
			return sl_errmsg_set(why, SL_ELIMIT,
			    "npy shape has more than %d dimensions",
			    SL_DATA_MAX_DIMS);
		ai->shape[ai->ndim++] = v;
		if (take(c, ','))
			continue;
		if (take(c, ')'))
			return 0;
		return sl_errmsg_set(why, SL_EFORMAT,
		    "npy shape tuple is malformed");
	}
}

/* The header dict: {'descr': '<f4', 'fortran_order': False,
 * 'shape': (3, 4), } in any key order, then whitespace padding. */
static int
parse_dict(const char *h, size_t hlen, sl_array_info *ai, sl_errmsg *why)
{
	struct cursor c = { h, h + hlen };
	const char *key, *descr = NULL;
	size_t klen, dlen = 0;
	int fortran = -1, have_shape = 0, rc;
	char text[SHAPE_TEXT_MAX];

	if (!take(&c, '{'))
		return sl_errmsg_set(why, SL_EFORMAT,
		    "npy header is not a dict literal");
	for (;;) {
		if (take(&c, '}'))
			break;
		if (!take_str(&c, &key, &klen))
			return sl_errmsg_set(why, SL_EFORMAT,
			    "npy header dict: expected a quoted key");
		if (!take(&c, ':'))
			return sl_errmsg_set(why, SL_EFORMAT,
			    "npy header dict: expected ':' after '%.*s'",
			    klen > 32 ? 32 : (int)klen, key);
		if (klen == 5 && memcmp(key, "descr", 5) == 0) {
			if (descr != NULL)
				goto duplicate;
			skip_ws(&c);
			if (c.p < c.end && *c.p == '[')
				return sl_errmsg_set(why, SL_EUNSUPPORTED,
				    "structured dtypes are unsupported");
			if (!take_str(&c, &descr, &dlen))
				return sl_errmsg_set(why, SL_EFORMAT,
				    "npy 'descr' is not a string");
		} else if (klen == 13 && memcmp(key, "fortran_order", 13) == 0) {
			if (fortran != -1)
				goto duplicate;
			if (take_word(&c, "True"))
				fortran = 1;
			else if (take_word(&c, "False"))
				fortran = 0;
			else
				return sl_errmsg_set(why, SL_EFORMAT,
				    "npy 'fortran_order' is not True or False");
		} else if (klen == 5 && memcmp(key, "shape", 5) == 0) {
			if (have_shape)
				goto duplicate;
			rc = parse_shape(&c, ai, why);
			if (rc != 0)
				return rc;
			have_shape = 1;
		} else {
			return sl_errmsg_set(why, SL_EFORMAT,
			    "npy header has unknown key '%.*s'",
			    klen > 32 ? 32 : (int)klen, key);
		}
		if (take(&c, ','))
			continue;
		if (take(&c, '}'))
			break;
		return sl_errmsg_set(why, SL_EFORMAT,
		    "npy header dict: expected ',' or '}'");
	}
	skip_ws(&c);
	if (c.p != c.end)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "npy header has bytes other than padding after the dict");
	if (descr == NULL)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "npy header has no 'descr' key");
	if (fortran == -1)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "npy header has no 'fortran_order' key");
	if (!have_shape)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "npy header has no 'shape' key");
	/* With at most one dimension Fortran and C order are the same bytes. */
	if (fortran == 1 && ai->ndim > 1) {
		shape_text(ai->shape, ai->ndim, text, sizeof text);
		return sl_errmsg_set(why, SL_EUNSUPPORTED,
		    "shape %s is in Fortran order; save it C-contiguous "
		    "(numpy.ascontiguousarray)", text);
	}
	rc = descr_norm(descr, dlen, ai->descr, &ai->elem_size, why);
	if (rc != 0)
		return rc;
	return shape_count(ai->shape, ai->ndim, ai->elem_size, &ai->count,
	    why);
duplicate:
	return sl_errmsg_set(why, SL_EFORMAT, "npy header repeats key '%.*s'",
	    (int)klen, key);
}

int
sl_npy_parse(const void *buf, size_t len, sl_array_info *out, sl_errmsg *why)
{
	const uint8_t *b = buf;
	sl_array_info ai;
	size_t pre, hlen;
	int rc;

	memset(&ai, 0, sizeof ai);
	if (len < NPY_MAGIC_LEN || memcmp(b, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
		return sl_errmsg_set(why, SL_EFORMAT, "bad npy magic");
	if (len < 10)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "truncated: npy preamble needs 10 bytes, file has %zu",
		    len);
	if (b[6] < 1 || b[6] > 3 || b[7] != 0)
		return sl_errmsg_set(why, SL_EUNSUPPORTED,
		    "npy version %u.%u unsupported", b[6], b[7]);
	if (b[6] == 1) {
		pre = 10;
		hlen = (size_t)b[8] | (size_t)b[9] << 8;
	} else {
		pre = 12;
		if (len < pre)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "truncated: npy preamble needs 12 bytes, file "
			    "has %zu", len);
		hlen = le32(b + 8);
	}
	if (hlen > SL_DATA_MAX_HEADER_BYTES)
		return sl_errmsg_set(why, SL_ELIMIT,
		    "npy header length %zu exceeds limit %d", hlen,
		    SL_DATA_MAX_HEADER_BYTES);
	if (hlen > len - pre)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "truncated: npy header length %zu, file has %zu bytes "
		    "after the preamble", hlen, len - pre);
	rc = parse_dict((const char *)b + pre, hlen, &ai, why);
	if (rc != 0)
		return rc;
	ai.data_offset = pre + hlen;
	rc = check_data_len(&ai, len, why);
	if (rc != 0)
		return rc;
	*out = ai;
	return 0;
}

/* ---- IDX ---------------------------------------------------------------- */

/* The header alone: magic, type, dims. Data is not checked. A short buffer
 * gives SL_EFORMAT "truncated"; *need says how many bytes the header takes
 * once the first four are known (0 before). */
static int
idx_header(const uint8_t *b, size_t len, sl_array_info *ai, size_t *need,
    sl_errmsg *why)
{
	static const struct {
		uint8_t code;
		char descr[4];
	} types[] = {
		{ 0x08, "|u1" }, { 0x09, "|i1" }, { 0x0B, ">i2" },
		{ 0x0C, ">i4" }, { 0x0D, ">f4" }, { 0x0E, ">f8" },
	};
	size_t i, hdr;
	uint32_t ndim;

	memset(ai, 0, sizeof *ai);
	*need = 0;
	if (len < 4)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "truncated: IDX header needs 4 bytes, have %zu", len);
	if (b[0] != 0 || b[1] != 0)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "bad IDX magic %02x %02x (want 00 00)", b[0], b[1]);
	for (i = 0; i < sizeof types / sizeof types[0]; i++)
		if (types[i].code == b[2])
			break;
	if (i == sizeof types / sizeof types[0])
		return sl_errmsg_set(why, SL_EFORMAT,
		    "IDX type byte 0x%02x is not an IDX type", b[2]);
	memcpy(ai->descr, types[i].descr, 4);
	ai->elem_size = (size_t)(types[i].descr[2] - '0');
	ndim = b[3];
	if (ndim == 0)
		return sl_errmsg_set(why, SL_EFORMAT, "IDX ndim is 0");
	if (ndim > SL_DATA_MAX_DIMS)
		return sl_errmsg_set(why, SL_ELIMIT,
		    "IDX ndim %u exceeds limit %d", ndim, SL_DATA_MAX_DIMS);
	hdr = 4 + 4 * (size_t)ndim;
	*need = hdr;
	if (len < hdr)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "truncated: IDX header needs %zu bytes, have %zu", hdr,
		    len);
	ai->ndim = ndim;
	for (uint32_t d = 0; d < ndim; d++)
		ai->shape[d] = be32(b + 4 + 4 * d);
	ai->data_offset = hdr;
	return shape_count(ai->shape, ai->ndim, ai->elem_size, &ai->count,
	    why);
}

int
sl_idx_parse(const void *buf, size_t len, sl_array_info *out, sl_errmsg *why)
{
	sl_array_info ai;
	size_t need;
	int rc;

	rc = idx_header(buf, len, &ai, &need, why);
	if (rc == 0)
		rc = check_data_len(&ai, len, why);
	if (rc == 0)
		*out = ai;
	return rc;
}

/* ---- gzip --------------------------------------------------------------- */

struct zsrc {
	z_stream zs;
	const uint8_t *src;
	size_t len;
	size_t fed;  /* src[0..fed) has been handed to zlib */
	int ended;   /* every member ended, nothing but end of file follows */
};

static int
zerr(const struct zsrc *z, int zrc, sl_errmsg *why)
{
	const char *msg = z->zs.msg ? z->zs.msg : "error";

	if (zrc == Z_MEM_ERROR)
		return sl_errmsg_set(why, SL_ENOMEM, "gzip: out of memory");
	if (strstr(msg, "check") != NULL) /* "incorrect data check" etc. */
		return sl_errmsg_set(why, SL_ECORRUPT, "gzip: %s", msg);
	return sl_errmsg_set(why, SL_EFORMAT, "gzip: %s", msg);
}

/* Inflate up to want bytes into dst. Fewer only when the gzip data has
 * ended cleanly (all members, checksums verified, no trailing garbage).
 * Concatenated members are one stream, as gunzip treats them. */
static int
zread(struct zsrc *z, uint8_t *dst, size_t want, size_t *got, sl_errmsg *why)
{
	size_t at, rest;
	uInt room;
	int zrc;

	*got = 0;
	while (*got < want && !z->ended) {
		if (z->zs.avail_in == 0 && z->fed < z->len) {
			rest = z->len - z->fed;
			z->zs.next_in = z->src + z->fed;
			z->zs.avail_in = rest > Z_CHUNK ? Z_CHUNK : (uInt)rest;
			z->fed += z->zs.avail_in;
		}
		room = want - *got > Z_CHUNK ? Z_CHUNK : (uInt)(want - *got);
		z->zs.next_out = dst + *got;
		z->zs.avail_out = room;
		zrc = inflate(&z->zs, Z_NO_FLUSH);
		*got += room - z->zs.avail_out;
		if (zrc == Z_STREAM_END) {
			at = z->fed - z->zs.avail_in;
			if (at == z->len) {
				z->ended = 1;
				break;
			}
			if (z->len - at < 2 || z->src[at] != 0x1f ||
			    z->src[at + 1] != 0x8b)
				return sl_errmsg_set(why, SL_EFORMAT,
				    "%zu bytes of garbage after the gzip "
				    "stream", z->len - at);
			zrc = inflateReset(&z->zs);
			if (zrc != Z_OK)
				return zerr(z, zrc, why);
			continue;
		}
		if (zrc == Z_BUF_ERROR && z->zs.avail_in == 0 &&
		    z->fed == z->len)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "truncated: gzip stream ends without its trailer "
			    "after %zu compressed bytes", z->len);
		if (zrc != Z_OK && zrc != Z_BUF_ERROR)
			return zerr(z, zrc, why);
	}
	return 0;
}

/* Gunzip an IDX file held in src[0..len). The IDX header is read first; the
 * output buffer then grows (doubling from GZ_FIRST_ALLOC) only as bytes
 * arrive, so a header that claims gigabytes over a tiny payload fails at
 * "truncated" having allocated little. The stream must end exactly where the
 * header says. */
static int
gunzip_idx(const uint8_t *src, size_t len, uint8_t **out, size_t *out_len,
    sl_array_info *ai, sl_errmsg *why)
{
	struct zsrc z;
	uint8_t hdr[4 + 4 * SL_DATA_MAX_DIMS], extra, *buf = NULL, *nb;
	size_t have = 0, got, need, total, cap;
	int rc, zrc;

	memset(&z, 0, sizeof z);
	z.src = src;
	z.len = len;
	zrc = inflateInit2(&z.zs, 15 + 16); /* gzip wrapper only */
	if (zrc != Z_OK)
		return zerr(&z, zrc, why);

	/* The first four bytes say how long the rest of the header is. */
	rc = zread(&z, hdr, 4, &have, why);
	if (rc != 0)
		goto fail;
	rc = idx_header(hdr, have, ai, &need, why);
	if (rc != 0 && need > have) {
		rc = zread(&z, hdr + have, need - have, &got, why);
		if (rc != 0)
			goto fail;
		have += got;
		rc = idx_header(hdr, have, ai, &need, why);
	}
	if (rc != 0)
		goto fail;

	/* count * elem_size fits size_t (shape_count); the sum may not. */
	if (ai->count * ai->elem_size > SL_DATA_MAX_BYTES - have) {
		rc = sl_errmsg_set(why, SL_ELIMIT,
		    "IDX header claims %zu data bytes, over the limit of "
		    "%llu", ai->count * ai->elem_size,
		    (unsigned long long)SL_DATA_MAX_BYTES);
		goto fail;
	}
	total = have + ai->count * ai->elem_size;
	cap = total < GZ_FIRST_ALLOC ? total : GZ_FIRST_ALLOC;
	buf = malloc(cap);
	if (buf == NULL) {
		rc = sl_errmsg_set(why, SL_ENOMEM,
		    "cannot allocate %zu bytes", cap);
		goto fail;
	}
	memcpy(buf, hdr, have);
	while (have < total) {
		if (have == cap) {
			cap = cap > total / 2 ? total : cap * 2;
			nb = realloc(buf, cap);
			if (nb == NULL) {
				rc = sl_errmsg_set(why, SL_ENOMEM,
				    "cannot allocate %zu bytes", cap);
				goto fail;
			}
			buf = nb;
		}
		rc = zread(&z, buf + have, cap - have, &got, why);
		if (rc != 0)
			goto fail;
		have += got;
		if (z.ended && have < total) {
			rc = sl_errmsg_set(why, SL_EFORMAT,
			    "truncated: gzip data holds %zu bytes, the IDX "
			    "header describes %zu", have, total);
			goto fail;
		}
	}
	/* Nothing may follow, and the stream must end (checksums verified). */
	rc = zread(&z, &extra, 1, &got, why);
	if (rc != 0)
		goto fail;
	if (got != 0) {
		rc = sl_errmsg_set(why, SL_EFORMAT,
		    "gzip data holds more than the %zu bytes the IDX header "
		    "describes", total);
		goto fail;
	}
	inflateEnd(&z.zs);
	*out = buf;
	*out_len = total;
	return 0;
fail:
	inflateEnd(&z.zs);
	free(buf);
	return rc;
}

/* IDX bytes from a file image: plain (points into map) or gunzipped
 * (*heap, malloc'd). */
static int
idx_load(const uint8_t *map, size_t len, const uint8_t **bytes,
    uint8_t **heap, sl_array_info *ai, sl_errmsg *why)
{
	size_t n;
	int rc;

	*heap = NULL;
	if (len >= 2 && map[0] == 0x1f && map[1] == 0x8b) {
		rc = gunzip_idx(map, len, heap, &n, ai, why);
		if (rc != 0)
			return rc;
		*bytes = *heap;
		return 0;
	}
	rc = sl_idx_parse(map, len, ai, why);
	if (rc != 0)
		return rc;
	*bytes = map;
	return 0;
}

/* ---- datasets ----------------------------------------------------------- */

sl_preproc
sl_preproc_default(enum sl_dtype dtype)
{
	sl_preproc p = { .scale = 1.0f, .channels = 1, .std = { 1.0f } };

	if (dtype == SL_DTYPE_U8)
		p.scale = 1.0f / 255.0f;
	return p;
}

void
sl_preproc_fill(sl_preproc *p, enum sl_dtype dtype)
{
	const sl_preproc def = sl_preproc_default(dtype);

	if (isnan(p->scale))
		p->scale = def.scale;
	for (uint32_t c = 0; c < p->channels; c++) {
		if (isnan(p->mean[c]))
			p->mean[c] = def.mean[0];
		if (isnan(p->std[c]))
			p->std[c] = def.std[0];
	}
}

int
sl_preproc_set(sl_preproc *p, const float *mean, uint32_t nmean,
    const float *std, uint32_t nstd, sl_errmsg *why)
{
	uint32_t c = nmean > nstd ? nmean : nstd;

	if (nmean == 0 || nstd == 0 || c > SL_PREPROC_MAX_CHANNELS)
		return sl_errmsg_set(why, SL_EINVAL, "%u means and %u stds: "
		    "1 to %d channels", nmean, nstd, SL_PREPROC_MAX_CHANNELS);
	if (nmean != nstd && nmean != 1 && nstd != 1)
		return sl_errmsg_set(why, SL_EINVAL, "%u means and %u stds do "
		    "not pair: give as many of each, or one for every channel",
		    nmean, nstd);
	p->channels = c;
	memset(p->mean, 0, sizeof p->mean); /* unused channels compare equal */
	memset(p->std, 0, sizeof p->std);
	for (uint32_t i = 0; i < c; i++) {
		p->mean[i] = mean[nmean == 1 ? 0 : i];
		p->std[i] = std[nstd == 1 ? 0 : i];
	}
	return 0;
}

int
sl_floats_parse(const char *s, float *out, uint32_t cap, uint32_t *n,
    sl_errmsg *why)
{
	const char *p = s;
	uint32_t k = 0;

	for (;;) {
		char *end;
		double v;

		errno = 0;
		v = strtod(p, &end);
		if (end == p || errno != 0 || !isfinite(v) || fabs(v) > (double)FLT_MAX ||
		    (*end != ',' && *end != '\0'))
			return sl_errmsg_set(why, SL_EINVAL, "'%s' is not a comma-"
			    "separated list of finite numbers", s);
		if (k == cap)
			return sl_errmsg_set(why, SL_EINVAL, "'%s' has more than "
			    "%u values", s, cap);
		out[k++] = (float)v;
		if (*end == '\0')
			break;
		p = end + 1;
	}
	*n = k;
	return 0;
}

int
sl_preproc_from_options(sl_preproc *out, const sl_preproc *base, float scale,
    const char *mean, const char *std, sl_errmsg *why)
{
	float m[SL_PREPROC_MAX_CHANNELS], sd[SL_PREPROC_MAX_CHANNELS];
	uint32_t nm, ns;
	sl_errmsg e = { "" };
	sl_preproc p = { .scale = NAN, .channels = 1, .mean = { NAN },
	    .std = { NAN } };

	if (base != NULL)
		p = *base;
	if (!isnan(scale))
		p.scale = scale;
	nm = ns = p.channels;
	memcpy(m, p.mean, sizeof m);
	memcpy(sd, p.std, sizeof sd);
	if (mean != NULL && sl_floats_parse(mean, m, SL_PREPROC_MAX_CHANNELS,
	    &nm, &e) != 0)
		return sl_errmsg_set(why, SL_EINVAL, "--input-mean: %s", e.text);
	if (std != NULL && sl_floats_parse(std, sd, SL_PREPROC_MAX_CHANNELS,
	    &ns, &e) != 0)
		return sl_errmsg_set(why, SL_EINVAL, "--input-std: %s", e.text);
	for (uint32_t i = 0; i < ns; i++)
		if (sd[i] == 0.0f)
			return sl_errmsg_set(why, SL_EINVAL, "--input-std: '%s' "
			    "divides by 0", std ? std : "0");
	if (sl_preproc_set(&p, m, nm, sd, ns, &e) != 0)
		return sl_errmsg_set(why, SL_EINVAL, "--input-mean and "
		    "--input-std: %s", e.text);
	*out = p;
	return 0;
}

static void
put_f32le(uint8_t *b, float v)
{
	uint32_t u;

	memcpy(&u, &v, 4);
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(u >> (8 * i));
}

static float
get_f32le(const uint8_t *b)
{
	uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 |
	    (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	float v;

	memcpy(&v, &u, 4);
	return v;
}

size_t
sl_preproc_pack(const sl_preproc *p, uint8_t out[SL_PREPROC_MAX_BYTES])
{
	uint32_t c = p->channels;

	assert(c >= 1 && c <= SL_PREPROC_MAX_CHANNELS);
	put_f32le(out, p->scale);
	for (uint32_t i = 0; i < c; i++) {
		put_f32le(out + 4 + 4 * i, p->mean[i]);
		put_f32le(out + 4 + 4 * (c + i), p->std[i]);
	}
	return 4 * (1 + 2 * (size_t)c);
}

int
sl_preproc_unpack(const void *b, size_t len, sl_preproc *p)
{
	const uint8_t *u = b;
	size_t c;

	if (len < SL_PREPROC_MIN_BYTES || len > SL_PREPROC_MAX_BYTES ||
	    (len - 4) % 8 != 0)
		return SL_EINVAL;
	c = (len - 4) / 8;
	memset(p, 0, sizeof *p);
	p->scale = get_f32le(u);
	p->channels = (uint32_t)c;
	for (size_t i = 0; i < c; i++) {
		p->mean[i] = get_f32le(u + 4 + 4 * i);
		p->std[i] = get_f32le(u + 4 + 4 * (c + i));
	}
	return 0;
}

int
sl_preproc_check(const sl_preproc *p, const uint64_t *shape, uint32_t ndim,
    sl_errmsg *why)
{
	char text[512];

	if (p->channels < 1 || p->channels > SL_PREPROC_MAX_CHANNELS)
		return sl_errmsg_set(why, SL_EINVAL, "preprocessing with %u "
		    "channels: 1 to %d", p->channels, SL_PREPROC_MAX_CHANNELS);
	for (uint32_t i = 0; i < p->channels; i++)
		if (!isfinite(p->scale) || p->scale == 0.0f ||
		    !isfinite(p->mean[i]) || !isfinite(p->std[i]) ||
		    p->std[i] == 0.0f)
			return sl_errmsg_set(why, SL_EINVAL, "preprocessing %s: "
			    "scale and std must be finite and not 0, mean "
			    "finite", sl_preproc_format(p, text, sizeof text));
	if (p->channels == 1 || ndim == 0)
		return 0;
	if (ndim < 2 || shape[1] != p->channels) {
		char dims[128];
		size_t at = 0;

		dims[0] = '\0';
		for (uint32_t d = 1; d < ndim && at < sizeof dims; d++)
			at += (size_t)snprintf(dims + at, sizeof dims - at,
			    "%s%" PRIu64, d > 1 ? ", " : "", shape[d]);
		return sl_errmsg_set(why, SL_EINVAL, "%u channel means and "
		    "stds do not fit rows of shape [%s]: the first dimension "
		    "of a row must be the channel count (NCHW)", p->channels,
		    dims);
	}
	return 0;
}

size_t
sl_floats_format(char *buf, size_t cap, const float *v, uint32_t n)
{
	size_t at = 0;

	if (cap == 0)
		return 0;
	buf[0] = '\0';
	for (uint32_t i = 0; i < n && at < cap; i++)
		at += (size_t)snprintf(buf + at, cap - at, "%s%.9g",
		    i ? "," : "", (double)v[i]);
	return at < cap ? at : cap - 1;
}

const char *
sl_preproc_format(const sl_preproc *p, char *buf, size_t cap)
{
	size_t at;
	uint32_t c = p->channels <= SL_PREPROC_MAX_CHANNELS ? p->channels : 0;

	if (cap == 0)
		return buf;
	at = (size_t)snprintf(buf, cap, "scale %.9g mean ", (double)p->scale);
	if (at < cap)
		at += sl_floats_format(buf + at, cap - at, p->mean, c);
	if (at < cap)
		at += (size_t)snprintf(buf + at, cap - at, " std ");
	if (at < cap)
		sl_floats_format(buf + at, cap - at, p->std, c);
	buf[cap - 1] = '\0';
	return buf;
}

enum fmt { FMT_NPY, FMT_GZIP, FMT_IDX };

static int
detect(const uint8_t *b, size_t len, enum fmt *f, sl_errmsg *why)
{
	if (len >= NPY_MAGIC_LEN && memcmp(b, NPY_MAGIC, NPY_MAGIC_LEN) == 0)
		*f = FMT_NPY;
	else if (len >= 2 && b[0] == 0x1f && b[1] == 0x8b)
		*f = FMT_GZIP;
	else if (len >= 2 && b[0] == 0 && b[1] == 0)
		*f = FMT_IDX;
	else if (len < 4)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "file of %zu bytes is too short for .npy or IDX", len);
	else
		return sl_errmsg_set(why, SL_EFORMAT,
		    "bad magic %02x %02x %02x %02x: not .npy, IDX or gzip",
		    b[0], b[1], b[2], b[3]);
	return 0;
}

int
sl_dataset_open(const char *path, sl_dataset **out, sl_errmsg *why)
{
	sl_dataset *ds;
	sl_array_info ai;
	const uint8_t *bytes;
	char text[SHAPE_TEXT_MAX];
	enum fmt f;
	int rc;

	ds = calloc(1, sizeof *ds);
	if (ds == NULL)
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	rc = pthread_mutex_init(&ds->fp_lock, NULL);
	if (rc != 0) {
		free(ds);
		return sl_errmsg_set(why, rc, "pthread_mutex_init: %s",
		    strerror(rc));
	}
	rc = map_file(path, &ds->map, &ds->map_len, &ds->st, why);
	if (rc != 0)
		goto fail;
	rc = detect(ds->map, ds->map_len, &f, why);
	if (rc != 0)
		goto fail;
	if (f == FMT_NPY) {
		rc = sl_npy_parse(ds->map, ds->map_len, &ai, why);
		bytes = ds->map;
	} else {
		rc = idx_load(ds->map, ds->map_len, &bytes, &ds->heap, &ai,
		    why);
	}
	if (rc != 0)
		goto fail;

	if (strcmp(ai.descr, "|u1") == 0) {
		ds->dtype = SL_DTYPE_U8;
	} else if (strcmp(ai.descr, "<f4") == 0 ||
	    (f != FMT_NPY && strcmp(ai.descr, ">f4") == 0)) {
		ds->dtype = SL_DTYPE_F32;
	} else {
		shape_text(ai.shape, ai.ndim, text, sizeof text);
		rc = sl_errmsg_set(why, SL_EUNSUPPORTED,
		    "shape %s but descr '%s' unsupported (datasets are "
		    "uint8 '|u1' or float32 '<f4')", text, ai.descr);
		goto fail;
	}
	if (ai.ndim == 0) {
		rc = sl_errmsg_set(why, SL_EFORMAT,
		    "a scalar (shape ()) is not a dataset of samples");
		goto fail;
	}
	ds->ndim = ai.ndim;
	memcpy(ds->shape, ai.shape, sizeof ds->shape);
	ds->elem_size = ai.elem_size;
	ds->rows = (size_t)ai.shape[0]; /* fits: checked by shape_count */
	ds->dim = 1;
	for (uint32_t i = 1; i < ai.ndim; i++)
		ds->dim *= (size_t)ai.shape[i];
	ds->row_bytes = ds->dim * ds->elem_size;
	ds->data = bytes + ai.data_offset;

	if (f != FMT_NPY && ds->dtype == SL_DTYPE_F32) {
		/* IDX floats are big-endian: swap once into a heap copy. */
		size_t n = ai.count;
		uint8_t *h = ds->heap;

		if (h == NULL) {
			h = malloc(ai.data_offset + n * 4);
			if (h == NULL) {
				rc = sl_errmsg_set(why, SL_ENOMEM,
				    "cannot allocate %zu bytes",
				    ai.data_offset + n * 4);
				goto fail;
			}
			memcpy(h, bytes, ai.data_offset + n * 4);
			ds->heap = h;
		}
		for (size_t i = 0; i < n; i++) {
			uint8_t *p = h + ai.data_offset + 4 * i;
			uint32_t v = be32(p);
			memcpy(p, &v, 4);
		}
		ds->data = h + ai.data_offset;
	}
	if (ds->heap != NULL) {
		munmap(ds->map, ds->map_len);
		ds->map = NULL;
		ds->map_len = 0;
	}
	*out = ds;
	return 0;
fail:
	sl_dataset_close(&ds);
	return rc;
}

void
sl_dataset_close(sl_dataset **dsp)
{
	sl_dataset *ds;

	if (dsp == NULL || *dsp == NULL)
		return;
	ds = *dsp;
	if (ds->map != NULL)
		munmap(ds->map, ds->map_len);
	free(ds->heap);
	free(ds->chunk);
	pthread_mutex_destroy(&ds->fp_lock);
	free(ds);
	*dsp = NULL;
}

size_t
sl_dataset_rows(const sl_dataset *ds)
{
	return ds->rows;
}

size_t
sl_dataset_dim(const sl_dataset *ds)
{
	return ds->dim;
}

enum sl_dtype
sl_dataset_dtype(const sl_dataset *ds)
{
	return ds->dtype;
}

uint32_t
sl_dataset_shape(const sl_dataset *ds, uint64_t shape[SL_DATA_MAX_DIMS])
{
	memcpy(shape, ds->shape, sizeof ds->shape);
	return ds->ndim;
}

const void *
sl_dataset_row(const sl_dataset *ds, size_t i)
{
	assert(i < ds->rows);
	return ds->data + i * ds->row_bytes;
}

void
sl_dataset_rows_f32(const sl_dataset *ds, const size_t *idx, size_t first,
    size_t n, const sl_preproc *pre, float *out /* (n, D) */)
{
	sl_preproc p = pre ? *pre : sl_preproc_default(ds->dtype);
	size_t d = ds->dim;

	for (size_t k = 0; k < n; k++) {
		size_t r = idx ? idx[k] : first + k;

		assert(r < ds->rows);
		sl_rows_f32(ds->data + r * ds->row_bytes, ds->dtype, 1, d, &p,
		    out + k * d);
	}
}

void
sl_rows_f32(const void *raw, enum sl_dtype dtype, size_t n, size_t d,
    const sl_preproc *p, float *out /* (n, d) */)
{
	const uint8_t *src = raw;
	const size_t plane = d / p->channels; /* values per channel */
	const size_t runs = n * p->channels;  /* one mean and std each */
	const size_t esize = dtype == SL_DTYPE_U8 ? 1 : 4;

	assert(p->channels >= 1 && d % p->channels == 0);
	for (size_t r = 0; r < runs; r++) {
		const uint8_t *s = src + r * plane * esize;
		float *o = out + r * plane;
		const float scale = p->scale;
		const float mean = p->mean[r % p->channels];
		const float std = p->std[r % p->channels];

		if (dtype == SL_DTYPE_U8) {
			for (size_t j = 0; j < plane; j++)
				o[j] = ((float)s[j] * scale - mean) / std;
			continue;
		}
		for (size_t j = 0; j < plane; j++) {
			float x;

			memcpy(&x, s + 4 * j, 4); /* may be unaligned */
			o[j] = (x * scale - mean) / std;
		}
	}
}

/* ---- labels ------------------------------------------------------------- */

/* One integer of type descr ("|u1", "<i8", ">i4", ...) at p, widened. */
static void
read_int(const uint8_t *p, const char *descr, int64_t *sv, uint64_t *uv)
{
	size_t size = (size_t)(descr[2] - '0');
	uint64_t v = 0;

	for (size_t i = 0; i < size; i++) {
		size_t at = descr[0] == '>' ? i : size - 1 - i;
		v = v << 8 | p[at];
	}
	*uv = v;
	if (descr[1] == 'i' && size < 8 && (v >> (8 * size - 1)) & 1)
		v |= ~(uint64_t)0 << (8 * size); /* sign-extend */
	memcpy(sv, &v, sizeof *sv);
}

int
sl_labels_load(const char *path, int32_t **labels, size_t *n, sl_errmsg *why)
{
	void *map = NULL;
	size_t len = 0, count;
	uint8_t *heap = NULL;
	const uint8_t *bytes, *data;
	int32_t *lab = NULL;
	sl_array_info ai;
	char text[SHAPE_TEXT_MAX];
	enum fmt f;
	int rc;

	rc = map_file(path, &map, &len, NULL, why);
	if (rc != 0)
		return rc;
	rc = detect(map, len, &f, why);
	if (rc != 0)
		goto fail;
	if (f == FMT_NPY) {
		rc = sl_npy_parse(map, len, &ai, why);
		bytes = map;
	} else {
		rc = idx_load(map, len, &bytes, &heap, &ai, why);
	}
	if (rc != 0)
		goto fail;
	if (ai.descr[1] != 'i' && ai.descr[1] != 'u') {
		rc = sl_errmsg_set(why, SL_EUNSUPPORTED,
		    "labels descr '%s' is not an integer type", ai.descr);
		goto fail;
	}
	if (ai.ndim < 1 || ai.ndim > 2 || (ai.ndim == 2 && ai.shape[1] != 1)) {
		shape_text(ai.shape, ai.ndim, text, sizeof text);
		rc = sl_errmsg_set(why, SL_EFORMAT,
		    "labels shape %s: want (N,) or (N, 1)", text);
		goto fail;
	}
	count = ai.count;
	data = bytes + ai.data_offset;
	/* count elements of elem_size >= 1 are in the file: justified. */
	lab = malloc(count ? count * sizeof *lab : 1);
	if (lab == NULL) {
		rc = sl_errmsg_set(why, SL_ENOMEM, "cannot allocate %zu labels",
		    count);
		goto fail;
	}
	for (size_t i = 0; i < count; i++) {
		int64_t sv;
		uint64_t uv;

		read_int(data + i * ai.elem_size, ai.descr, &sv, &uv);
		if (ai.descr[1] == 'u' ? uv > INT32_MAX : sv > INT32_MAX) {
			rc = sl_errmsg_set(why, SL_EFORMAT,
			    "label %zu is %llu, larger than %d", i,
			    (unsigned long long)uv, INT32_MAX);
			goto fail;
		}
		if (ai.descr[1] == 'i' && sv < -1) {
			rc = sl_errmsg_set(why, SL_EFORMAT,
			    "label %zu is %lld; the only negative label "
			    "allowed is -1 (unlabeled)", i, (long long)sv);
			goto fail;
		}
		lab[i] = (int32_t)sv;
	}
	free(heap);
	munmap(map, len);
	*labels = lab;
	*n = count;
	return 0;
fail:
	free(lab);
	free(heap);
	munmap(map, len);
	return rc;
}

/* ---- writing .npy ------------------------------------------------------- */

int
sl_npy_begin(sl_npy_writer *w, const char *path, const char *descr,
    const uint64_t *shape, uint32_t ndim, sl_errmsg *why)
{
	char hdr[256 + SHAPE_TEXT_MAX], d[8], text[SHAPE_TEXT_MAX];
	size_t elem_size, count, hlen;
	int n, rc;

	w->f.fd = -1;
	w->f.tmp[0] = '\0';
	w->left = 0;
	if (descr == NULL)
		return sl_errmsg_set(why, SL_EINVAL, "descr is NULL");
	rc = descr_norm(descr, strlen(descr), d, &elem_size, why);
	if (rc != 0)
		return rc;
	if (ndim > SL_DATA_MAX_DIMS)
		return sl_errmsg_set(why, SL_ELIMIT,
		    "ndim %u exceeds limit %d", ndim, SL_DATA_MAX_DIMS);
	rc = shape_count(shape, ndim, elem_size, &count, why);
	if (rc != 0)
		return rc;

	/* NumPy's layout: magic, version 1.0, u16 header length, the dict
	 * padded with spaces and ended by '\n' so that the data starts at a
	 * multiple of 64. */
	shape_text(shape, ndim, text, sizeof text);
	n = snprintf(hdr + 10, sizeof hdr - 10,
	    "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", d, text);
	if (n < 0 || (size_t)n >= sizeof hdr - 10 - 64)
		return sl_errmsg_set(why, SL_EINVAL, "npy header too long");
	hlen = 10 + (size_t)n + 1;
	hlen = (hlen + 63) / 64 * 64;
	memset(hdr + 10 + n, ' ', hlen - 10 - (size_t)n);
	hdr[hlen - 1] = '\n';
	memcpy(hdr, NPY_MAGIC, NPY_MAGIC_LEN);
	hdr[6] = 1;
	hdr[7] = 0;
	hdr[8] = (char)((hlen - 10) & 0xff);
	hdr[9] = (char)((hlen - 10) >> 8);

	rc = sl_atomic_open(&w->f, path, why);
	if (rc == 0)
		rc = sl_atomic_write(&w->f, hdr, hlen, why);
	if (rc != 0) {
		sl_atomic_abort(&w->f);
		return rc;
	}
	w->left = (uint64_t)count * elem_size;
	return 0;
}

int
sl_npy_append(sl_npy_writer *w, const void *data, size_t bytes,
    sl_errmsg *why)
{
	if (bytes > w->left)
		return sl_errmsg_set(why, SL_EINVAL, "%zu bytes more than the "
		    "shape holds", bytes - (size_t)w->left);
	w->left -= bytes;
	return bytes ? sl_atomic_write(&w->f, data, bytes, why) : 0;
}

int
sl_npy_finish(sl_npy_writer *w, sl_errmsg *why)
{
	int rc;

	if (w->left != 0) {
		rc = sl_errmsg_set(why, SL_EINVAL, "%llu bytes of data missing",
		    (unsigned long long)w->left);
		sl_atomic_abort(&w->f);
		return rc;
	}
	rc = sl_atomic_commit(&w->f, why);
	sl_atomic_abort(&w->f); /* no-op after a commit */
	return rc;
}

void
sl_npy_abort(sl_npy_writer *w)
{
	sl_atomic_abort(&w->f);
}

int
sl_npy_write(const char *path, const char *descr, const uint64_t *shape,
    uint32_t ndim, const void *data, sl_errmsg *why)
{
	sl_npy_writer w;
	int rc;

	if ((rc = sl_npy_begin(&w, path, descr, shape, ndim, why)) != 0)
		return rc;
	if (w.left > 0 && data == NULL) {
		sl_npy_abort(&w);
		return sl_errmsg_set(why, SL_EINVAL, "data is NULL");
	}
	if ((rc = sl_npy_append(&w, data, (size_t)w.left, why)) != 0) {
		sl_npy_abort(&w);
		return rc;
	}
	return sl_npy_finish(&w, why);
}

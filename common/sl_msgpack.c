/* sl_msgpack.c - the bounds-checked msgpack cursor (see sl_msgpack.h).
 *
 * Every reader decodes the header of the next value with head() without
 * moving the cursor, checks that the value's type is one it accepts, and only
 * then advances. head() is the one place that turns a claimed length or count
 * into a number, and it compares that number with the bytes that remain
 * before anyone can use it, so no caller ever sees a length that runs past
 * the end of the buffer. Multi-byte fields are big-endian (msgpack spec).
 */
#include "sl_msgpack.h"

#include <string.h>

#include "sl_err.h"

enum kind {
	K_NIL,
	K_BOOL,
	K_UINT,   /* u: the value (positive fixint, uint*, non-negative int*) */
	K_INT,    /* i: a negative value (negative fixint, int*) */
	K_F32,
	K_F64,
	K_STR,    /* n: payload bytes */
	K_BIN,    /* n: payload bytes */
	K_EXT,    /* n: payload bytes (type byte included) */
	K_ARRAY,  /* n: elements */
	K_MAP,    /* n: entries (2n values) */
};

/* The header of one value. hlen bytes of header, then, for str, bin and ext,
 * n bytes of payload (already checked to be there). */
struct head {
	enum kind kind;
	size_t hlen;
	uint64_t u;
	int64_t i;
	double f;
	uint64_t n;
};

static uint64_t
be(const uint8_t *p, size_t w)
{
	uint64_t v = 0;

	for (size_t k = 0; k < w; k++)
		v = v << 8 | p[k];
	return v;
}

/* Sign-extend a w-byte two's-complement big-endian integer. Done through
 * uint64_t arithmetic so no step is implementation-defined. */
static int64_t
be_signed(const uint8_t *p, size_t w)
{
	uint64_t v = be(p, w);
	const uint64_t sign = (uint64_t)1 << (8 * w - 1);

	if (v & sign) {
		/* -(2^(8w) - v) computed without overflow */
		const uint64_t mag = w == 8 ? ~v + 1 : (sign << 1) - v;

		if (mag == (uint64_t)1 << 63)
			return INT64_MIN;
		return -(int64_t)mag;
	}
	return (int64_t)v;
}

/* Decode the header of the value at c->off into h. Every length and count is
 * checked against the bytes left: payload bytes exactly, array elements at
 * one byte each, map entries at two. Returns 0 or SL_EFORMAT. */
static int
head(const sl_mp *c, struct head *h)
{
	const size_t left = c->len - c->off;
	const uint8_t *p = c->p + c->off;
	size_t lw = 0; /* width of a length field that follows the tag */
	uint8_t b;

	if (left == 0)
		return SL_EFORMAT;
	b = p[0];
	memset(h, 0, sizeof *h);
	h->hlen = 1;
	if (b <= 0x7f) {
		h->kind = K_UINT;
		h->u = b;
		return 0;
	}
	if (b >= 0xe0) {
		h->kind = K_INT;
		h->i = (int64_t)b - 256;
		return 0;
	}
	if (b >= 0x80 && b <= 0x8f) {
		h->kind = K_MAP;
		h->n = b & 0x0f;
		goto count;
	}
	if (b >= 0x90 && b <= 0x9f) {
		h->kind = K_ARRAY;
		h->n = b & 0x0f;
		goto count;
	}
	if (b >= 0xa0 && b <= 0xbf) {
		h->kind = K_STR;
		h->n = b & 0x1f;
		goto payload;
	}
	switch (b) {
	case 0xc0:
		h->kind = K_NIL;
		return 0;
	case 0xc2:
	case 0xc3:
		h->kind = K_BOOL;
		h->u = b & 1;
		return 0;
	case 0xc4: case 0xc5: case 0xc6: /* bin 8/16/32 */
		h->kind = K_BIN;
		lw = (size_t)1 << (b - 0xc4);
		break;
	case 0xc7: case 0xc8: case 0xc9: /* ext 8/16/32: length, then type */
		h->kind = K_EXT;
		lw = (size_t)1 << (b - 0xc7);
		if (left < 1 + lw)
			return SL_EFORMAT;
		h->n = be(p + 1, lw) + 1; /* + the type byte */
		h->hlen = 1 + lw;
		goto payload;
	case 0xca: case 0xcb: { /* float 32/64 */
		const size_t w = b == 0xca ? 4 : 8;

		if (left < 1 + w)
			return SL_EFORMAT;
		if (w == 4) {
			const uint32_t bits = (uint32_t)be(p + 1, 4);
			float f;

			memcpy(&f, &bits, sizeof f);
			h->kind = K_F32;
			h->f = (double)f;
		} else {
			const uint64_t bits = be(p + 1, 8);

			memcpy(&h->f, &bits, sizeof h->f);
			h->kind = K_F64;
		}
		h->hlen = 1 + w;
		return 0;
	}
	case 0xcc: case 0xcd: case 0xce: case 0xcf: { /* uint 8..64 */
		const size_t w = (size_t)1 << (b - 0xcc);

		if (left < 1 + w)
			return SL_EFORMAT;
		h->kind = K_UINT;
		h->u = be(p + 1, w);
		h->hlen = 1 + w;
		return 0;
	}
	case 0xd0: case 0xd1: case 0xd2: case 0xd3: { /* int 8..64 */
		const size_t w = (size_t)1 << (b - 0xd0);
		int64_t v;

		if (left < 1 + w)
			return SL_EFORMAT;
		v = be_signed(p + 1, w);
		if (v >= 0) {
			h->kind = K_UINT;
			h->u = (uint64_t)v;
		} else {
			h->kind = K_INT;
			h->i = v;
		}
		h->hlen = 1 + w;
		return 0;
	}
	case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: /* fixext */
		h->kind = K_EXT;
		h->n = ((uint64_t)1 << (b - 0xd4)) + 1;
		goto payload;
	case 0xd9: case 0xda: case 0xdb: /* str 8/16/32 */
		h->kind = K_STR;
		lw = (size_t)1 << (b - 0xd9);
		break;
	case 0xdc: case 0xdd: /* array 16/32 */
	case 0xde: case 0xdf: /* map 16/32 */
		h->kind = b <= 0xdd ? K_ARRAY : K_MAP;
		lw = b == 0xdc || b == 0xde ? 2 : 4;
		if (left < 1 + lw)
			return SL_EFORMAT;
		h->n = be(p + 1, lw);
		h->hlen = 1 + lw;
		goto count;
	default: /* 0xc1: never used */
		return SL_EFORMAT;
	}
	/* str / bin with a length field of lw bytes */
	if (left < 1 + lw)
		return SL_EFORMAT;
	h->n = be(p + 1, lw);
	h->hlen = 1 + lw;
payload:
	if (h->n > left - h->hlen)
		return SL_EFORMAT;
	return 0;
count:
	/* n <= 2^32 - 1, so 2n cannot overflow uint64_t */
	if ((h->kind == K_MAP ? 2 * h->n : h->n) > left - h->hlen)
		return SL_EFORMAT;
	return 0;
}

void
sl_mp_init(sl_mp *c, const void *buf, size_t len)
{
	c->p = buf;
	c->len = buf == NULL ? 0 : len;
	c->off = 0;
}

size_t
sl_mp_left(const sl_mp *c)
{
	return c->len - c->off;
}

static int
container(sl_mp *c, uint32_t *n, enum kind want)
{
	struct head h;

	if (head(c, &h) != 0 || h.kind != want)
		return SL_EFORMAT;
	c->off += h.hlen;
	*n = (uint32_t)h.n;
	return 0;
}

int
sl_mp_map(sl_mp *c, uint32_t *n)
{
	return container(c, n, K_MAP);
}

int
sl_mp_array(sl_mp *c, uint32_t *n)
{
	return container(c, n, K_ARRAY);
}

int
sl_mp_u64(sl_mp *c, uint64_t *v)
{
	struct head h;

	if (head(c, &h) != 0 || h.kind != K_UINT)
		return SL_EFORMAT;
	c->off += h.hlen;
	*v = h.u;
	return 0;
}

int
sl_mp_u32(sl_mp *c, uint32_t *v, uint32_t max)
{
	struct head h;

	if (head(c, &h) != 0 || h.kind != K_UINT || h.u > max)
		return SL_EFORMAT;
	c->off += h.hlen;
	*v = (uint32_t)h.u;
	return 0;
}

int
sl_mp_i64(sl_mp *c, int64_t *v)
{
	struct head h;

	if (head(c, &h) != 0)
		return SL_EFORMAT;
	if (h.kind == K_UINT) {
		if (h.u > (uint64_t)INT64_MAX)
			return SL_EFORMAT;
		*v = (int64_t)h.u;
	} else if (h.kind == K_INT) {
		*v = h.i;
	} else {
		return SL_EFORMAT;
	}
	c->off += h.hlen;
	return 0;
}

int
sl_mp_f64(sl_mp *c, double *v)
{
	struct head h;

	if (head(c, &h) != 0)
		return SL_EFORMAT;
	switch (h.kind) {
	case K_F32:
	case K_F64:
		*v = h.f;
		break;
	case K_UINT:
		*v = (double)h.u;
		break;
	case K_INT:
		*v = (double)h.i;
		break;
	default:
		return SL_EFORMAT;
	}
	c->off += h.hlen;
	return 0;
}

int
sl_mp_bool(sl_mp *c, int *v)
{
	struct head h;

	if (head(c, &h) != 0 || h.kind != K_BOOL)
		return SL_EFORMAT;
	c->off += h.hlen;
	*v = (int)h.u;
	return 0;
}

static int
raw(sl_mp *c, const uint8_t **s, size_t *len, enum kind want)
{
	struct head h;

	if (head(c, &h) != 0 || h.kind != want)
		return SL_EFORMAT;
	*s = c->p + c->off + h.hlen;
	*len = (size_t)h.n;
	c->off += h.hlen + (size_t)h.n;
	return 0;
}

int
sl_mp_str(sl_mp *c, const uint8_t **s, size_t *len)
{
	return raw(c, s, len, K_STR);
}

int
sl_mp_bin(sl_mp *c, const uint8_t **b, size_t *len)
{
	return raw(c, b, len, K_BIN);
}

int
sl_mp_nil(sl_mp *c)
{
	if (c->off < c->len && c->p[c->off] == 0xc0) {
		c->off++;
		return 1;
	}
	return 0;
}

/* Iterative, so hostile nesting costs no stack: remain[d] counts the values
 * still to skip inside the container open at depth d. Every header's count is
 * checked against the bytes left, so the walk is linear in the buffer. */
int
sl_mp_skip(sl_mp *c)
{
	uint64_t remain[SL_MP_MAX_DEPTH];
	size_t depth = 0;
	sl_mp t = *c;

	for (;;) {
		struct head h;

		if (head(&t, &h) != 0)
			return SL_EFORMAT;
		t.off += h.hlen;
		if (h.kind == K_STR || h.kind == K_BIN || h.kind == K_EXT)
			t.off += (size_t)h.n;
		if ((h.kind == K_ARRAY || h.kind == K_MAP) && h.n > 0) {
			if (depth == SL_MP_MAX_DEPTH)
				return SL_EFORMAT;
			remain[depth++] = h.kind == K_MAP ? 2 * h.n : h.n;
			continue;
		}
		/* one value complete: close every container it completes */
		while (depth > 0 && --remain[depth - 1] == 0)
			depth--;
		if (depth == 0)
			break;
	}
	c->off = t.off;
	return 0;
}

const char *
sl_mp_type_name(const sl_mp *c)
{
	struct head h;

	if (c->off >= c->len)
		return "end of input";
	if (head(c, &h) != 0)
		return "malformed";
	switch (h.kind) {
	case K_NIL: return "nil";
	case K_BOOL: return "bool";
	case K_UINT: return "uint";
	case K_INT: return "negative int";
	case K_F32: return "float32";
	case K_F64: return "float64";
	case K_STR: return "str";
	case K_BIN: return "bin";
	case K_EXT: return "ext";
	case K_ARRAY: return "array";
	case K_MAP: return "map";
	}
	return "malformed";
}

int
sl_mp_streq(const uint8_t *s, size_t len, const char *want)
{
	const size_t n = strlen(want);

	return len == n && (n == 0 || memcmp(s, want, n) == 0);
}

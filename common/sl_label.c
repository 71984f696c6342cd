/* sl_label.c - soft-label records: encode, check, decode (see sl_label.h).
 *
 * Every record is outside input once it leaves the encoder (it crosses the
 * wire and sits on disk), so sl_label_check validates each field before the
 * decoders trust it, and the decoders only run on checked records.
 *
 * Bytes are assembled and read one at a time, little-endian, through memcpy
 * for the float bit patterns: the buffer may be unaligned (an LMDB value, a
 * slice of a msgpack blob) and the host's byte order does not matter.
 */
#include "sl_label.h"

#include <zlib.h>

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define F16_MAX 65504.0f /* largest finite half */

/* ---- byte order ------------------------------------------------------- */

static uint16_t
rd16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t
rd32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

static float
rdf32(const unsigned char *p)
{
	uint32_t bits = rd32(p);
	float f;

	memcpy(&f, &bits, sizeof f);
	return f;
}

static void
wr16(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)(v & 0xff);
	p[1] = (unsigned char)(v >> 8);
}

static void
wr32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)(v & 0xff);
	p[1] = (unsigned char)(v >> 8 & 0xff);
	p[2] = (unsigned char)(v >> 16 & 0xff);
	p[3] = (unsigned char)(v >> 24);
}

static void
wrf32(unsigned char *p, float f)
{
	uint32_t bits;

	memcpy(&bits, &f, sizeof bits);
	wr32(p, bits);
}

/* ---- IEEE half ---------------------------------------------------------- */

/* Round to nearest, ties to even, on the bits: a float's 24-bit significand
 * is shifted down to the half's 11 (normals) or fewer (subnormals), and the
 * dropped bits decide the rounding. A carry out of the significand bumps the
 * exponent, which is what rounding up to the next binade (or to inf) means.
 * NaN keeps its sign and top payload bits; a payload that would vanish in
 * the shift becomes the quiet bit so a NaN never turns into inf. */
uint16_t
sl_f32_to_f16(float f)
{
	uint32_t x, ax, mant, rem, halfway;
	uint16_t sign, h;
	int e, shift;

	memcpy(&x, &f, sizeof x);
	sign = (uint16_t)(x >> 16 & 0x8000u);
	ax = x & 0x7fffffffu;
	if (ax > 0x7f800000u) { /* NaN */
		h = (uint16_t)(ax >> 13 & 0x3ffu);
		return (uint16_t)(sign | 0x7c00u | (h ? h : 0x200u));
	}
	if (ax >= 0x477ff000u) /* >= 65520: rounds past 65504, or is inf */
		return (uint16_t)(sign | 0x7c00u);
	if (ax < 0x33000001u) /* <= 2^-25: rounds to zero (tie goes to even 0) */
		return sign;
	e = (int)(ax >> 23);
	mant = (ax & 0x7fffffu) | 0x800000u;
	if (e < 113) {
		/* Below 2^-14: a half subnormal counts units of 2^-24, and
		 * mant * 2^(e - 150) / 2^-24 = mant >> (126 - e). e >= 102 here,
		 * so the shift is 14..24. */
		shift = 126 - e;
		h = (uint16_t)(mant >> shift);
	} else {
		shift = 13;
		h = (uint16_t)((uint32_t)(e - 112) << 10 | (mant >> 13 & 0x3ffu));
	}
	rem = mant & ((1u << shift) - 1);
	halfway = 1u << (shift - 1);
	if (rem > halfway || (rem == halfway && (h & 1u)))
		h++;
	return (uint16_t)(sign | h);
}

/* Normals rebias the exponent; subnormals are mant * 2^-24, exact in float;
 * inf and NaN keep their payload. */
float
sl_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31;
	uint32_t exp = (uint32_t)(h >> 10 & 0x1fu);
	uint32_t mant = h & 0x3ffu;
	uint32_t bits;
	float f;

	if (exp == 0) {
		f = (float)mant * 0x1p-24f;
		return (h >> 15) ? -f : f;
	}
	if (exp == 31)
		bits = sign | 0x7f800000u | mant << 13;
	else
		bits = sign | (exp + 127 - 15) << 23 | mant << 13;
	memcpy(&f, &bits, sizeof f);
	return f;
}

/* ---- formats ------------------------------------------------------------ */

int
sl_label_parse_encoding(const char *s, sl_label_fmt *out)
{
	const char *d;
	char *end;
	long k;

	if (s == NULL)
		return SL_EINVAL;
	if (strcmp(s, "f32") == 0) {
		out->encoding = SL_ENC_F32;
		out->k = 0;
		return 0;
	}
	if (strcmp(s, "f16") == 0) {
		out->encoding = SL_ENC_F16;
		out->k = 0;
		return 0;
	}
	if (strncmp(s, "topk:", 5) != 0)
		return SL_EINVAL;
	d = s + 5;
	/* strtol would take leading blanks and a sign; the format is digits. */
	if (*d < '0' || *d > '9')
		return SL_EINVAL;
	errno = 0;
	k = strtol(d, &end, 10);
	if (errno != 0 || *end != '\0' || k < 1 || k > SL_LABEL_MAX_K)
		return SL_EINVAL;
	out->encoding = SL_ENC_TOPK;
	out->k = (uint16_t)k;
	return 0;
}

void
sl_label_format_encoding(const sl_label_fmt *f, char *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return;
	switch (f->encoding) {
	case SL_ENC_F32:
		snprintf(buf, len, "f32");
		break;
	case SL_ENC_F16:
		snprintf(buf, len, "f16");
		break;
	case SL_ENC_TOPK:
		snprintf(buf, len, "topk:%u", (unsigned)f->k);
		break;
	default:
		snprintf(buf, len, "?");
		break;
	}
}

/* The one rule on (encoding, classes, k), shared by encoder and checker. */
static int
fmt_valid(unsigned encoding, uint32_t classes, uint32_t k)
{
	if (classes < 2 || classes > SL_LABEL_MAX_CLASSES)
		return 0;
	switch (encoding) {
	case SL_ENC_F32:
	case SL_ENC_F16:
		return k == 0;
	case SL_ENC_TOPK:
		return k >= 1 && k < classes && k <= SL_LABEL_MAX_K;
	default:
		return 0;
	}
}

int
sl_label_fmt_check(const sl_label_fmt *fmt)
{
	if (fmt == NULL || !fmt_valid((unsigned)fmt->encoding, fmt->classes,
	    fmt->k))
		return SL_EINVAL;
	return 0;
}

static size_t
size_of(unsigned encoding, uint32_t classes, uint32_t k)
{
	switch (encoding) {
	case SL_ENC_F32:
		return SL_LABEL_HEADER_BYTES + 4 * (size_t)classes;
	case SL_ENC_F16:
		return SL_LABEL_HEADER_BYTES + 2 * (size_t)classes;
	default:
		return SL_LABEL_HEADER_BYTES + 4 + 6 * (size_t)k;
	}
}

size_t
sl_label_size(const sl_label_fmt *fmt)
{
	return size_of((unsigned)fmt->encoding, fmt->classes, fmt->k);
}

static uint32_t
body_crc(const unsigned char *rec, size_t len)
{
	/* len <= 12 + 4 * 65536, well inside uInt. */
	return (uint32_t)crc32(0L, rec + SL_LABEL_HEADER_BYTES,
	    (uInt)(len - SL_LABEL_HEADER_BYTES));
}

/* ---- encode ------------------------------------------------------------- */

/* Top-k selection keeps a min-heap of the k best classes seen so far, worst
 * at the root, so each class costs one comparison and the whole pass is
 * O(classes log k). Entries are class indices stored as floats: classes <=
 * 65536 < 2^24, so every index is exact, and the caller's float scratch is
 * the only memory used. */
static int
better(const float *v, uint32_t a, uint32_t b)
{
	return v[a] > v[b] || (v[a] == v[b] && a < b);
}

static void
sift_down(const float *v, float *heap, uint32_t n, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, w = i;

		if (l < n && better(v, (uint32_t)heap[w], (uint32_t)heap[l]))
			w = l;
		if (r < n && better(v, (uint32_t)heap[w], (uint32_t)heap[r]))
			w = r;
		if (w == i)
			return;
		float t = heap[i];
		heap[i] = heap[w];
		heap[w] = t;
		i = w;
	}
}

/* heap (k) gets the indices of the k largest v, largest first, ties to the
 * lower index. */
static void
select_topk(const float *v /* (classes) */, uint32_t classes, uint32_t k,
    float *heap /* (k) */)
{
	for (uint32_t i = 0; i < k; i++)
		heap[i] = (float)i;
	for (uint32_t i = k / 2; i-- > 0;)
		sift_down(v, heap, k, i);
	for (uint32_t i = k; i < classes; i++) {
		if (better(v, i, (uint32_t)heap[0])) {
			heap[0] = (float)i;
			sift_down(v, heap, k, 0);
		}
	}
	/* Heap sort: moving the worst to the back leaves best first. */
	for (uint32_t end = k - 1; end > 0; end--) {
		float t = heap[0];
		heap[0] = heap[end];
		heap[end] = t;
		sift_down(v, heap, end, 0);
	}
}

int
sl_label_encode(const sl_label_fmt *fmt, const float *logits, float T,
    float *scratch, void *out)
{
	unsigned char *o = out;
	float *v = scratch; /* (classes) z / T */
	uint32_t classes;
	size_t size;

	if (sl_label_fmt_check(fmt) != 0 || !isfinite(T) || !(T > 0.0f))
		return SL_EINVAL;
	classes = fmt->classes;
	for (uint32_t i = 0; i < classes; i++) {
		/* z / T can overflow for a tiny T even when z is finite. */
		v[i] = logits[i] / T;
		if (!isfinite(logits[i]) || !isfinite(v[i]))
			return SL_EINVAL;
	}
	size = sl_label_size(fmt);
	switch (fmt->encoding) {
	case SL_ENC_F32:
		for (uint32_t i = 0; i < classes; i++)
			wrf32(o + SL_LABEL_HEADER_BYTES + 4 * (size_t)i, v[i]);
		break;
	case SL_ENC_F16:
		for (uint32_t i = 0; i < classes; i++)
			if (fabsf(v[i]) > F16_MAX)
				return SL_EINVAL;
		for (uint32_t i = 0; i < classes; i++)
			wr16(o + SL_LABEL_HEADER_BYTES + 2 * (size_t)i,
			    sl_f32_to_f16(v[i]));
		break;
	case SL_ENC_TOPK: {
		float *heap = scratch + classes; /* (k) */
		const uint32_t k = fmt->k;
		unsigned char *idx = o + SL_LABEL_HEADER_BYTES + 4;
		unsigned char *val = idx + 4 * (size_t)k;
		double m, s = 0.0;
		float lse, top;

		select_topk(v, classes, k, heap);
		/* Only the kept values are stored as half; an unkept -1e6 is
		 * harmless. */
		for (uint32_t j = 0; j < k; j++)
			if (fabsf(v[(uint32_t)heap[j]]) > F16_MAX)
				return SL_EINVAL;
		m = (double)v[(uint32_t)heap[0]];
		for (uint32_t i = 0; i < classes; i++)
			s += exp((double)v[i] - m); /* each <= 1, s in [1, C] */
		lse = (float)(m + log(s));
		/* lse >= max(z / T) holds in exact arithmetic; the largest
		 * value rounded to half may land just above it, and the
		 * checker insists on lse >= v[0] (no kept class above
		 * probability 1), so lift lse by that rounding. */
		top = sl_f16_to_f32(sl_f32_to_f16(v[(uint32_t)heap[0]]));
		if (lse < top)
			lse = top;
		if (!isfinite(lse))
			return SL_EINVAL;
		wrf32(o + SL_LABEL_HEADER_BYTES, lse);
		for (uint32_t j = 0; j < k; j++) {
			const uint32_t c = (uint32_t)heap[j];

			wr32(idx + 4 * (size_t)j, c);
			wr16(val + 2 * (size_t)j, sl_f32_to_f16(v[c]));
		}
		break;
	}
	}
	o[0] = (unsigned char)fmt->encoding;
	o[1] = 0;
	wr16(o + 2, fmt->k);
	wr32(o + 4, classes);
	wr32(o + 8, body_crc(o, size));
	return 0;
}

/* ---- check -------------------------------------------------------------- */

static const char *
enc_name(unsigned e)
{
	return e == SL_ENC_F32 ? "f32" : e == SL_ENC_F16 ? "f16" :
	    e == SL_ENC_TOPK ? "topk" : "?";
}

int
sl_label_check(const void *buf, size_t len, const sl_label_fmt *expect,
    sl_label_fmt *fmt, sl_errmsg *why)
{
	const unsigned char *b = buf;
	unsigned enc;
	uint32_t classes, k, crc;
	size_t want;

	if (buf == NULL || len < SL_LABEL_HEADER_BYTES)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "label record of %zu bytes is shorter than its %d-byte "
		    "header", len, SL_LABEL_HEADER_BYTES);
	enc = b[0];
	k = rd16(b + 2);
	classes = rd32(b + 4);
	if (enc != SL_ENC_F32 && enc != SL_ENC_F16 && enc != SL_ENC_TOPK)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "label encoding %u is not 1 (f32), 2 (f16) or 3 (topk)",
		    enc);
	if (b[1] != 0)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "label reserved byte is %u, not 0", (unsigned)b[1]);
	if (classes < 2 || classes > SL_LABEL_MAX_CLASSES)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "label classes %u outside [2, %d]", (unsigned)classes,
		    SL_LABEL_MAX_CLASSES);
	if (!fmt_valid(enc, classes, k)) {
		if (enc != SL_ENC_TOPK)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "label k is %u in a dense %s record, not 0",
			    (unsigned)k, enc_name(enc));
		return sl_errmsg_set(why, SL_EFORMAT,
		    "label k %u outside [1, min(classes - 1 = %u, %d)]",
		    (unsigned)k, (unsigned)classes - 1, SL_LABEL_MAX_K);
	}
	if (expect != NULL) {
		if ((unsigned)expect->encoding != enc)
			return sl_errmsg_set(why, SL_EMISMATCH,
			    "label encoding %s, expected %s", enc_name(enc),
			    enc_name((unsigned)expect->encoding));
		if (expect->classes != classes)
			return sl_errmsg_set(why, SL_EMISMATCH,
			    "label classes %u, expected %u", (unsigned)classes,
			    (unsigned)expect->classes);
		if (expect->k != k)
			return sl_errmsg_set(why, SL_EMISMATCH,
			    "label k %u, expected %u", (unsigned)k,
			    (unsigned)expect->k);
	}
	want = size_of(enc, classes, k);
	if (len != want)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "label record is %zu bytes, its header says %zu", len, want);
	crc = rd32(b + 8);
	if (body_crc(b, len) != crc)
		return sl_errmsg_set(why, SL_ECORRUPT,
		    "label crc32 %08x does not match its bytes (%08x)",
		    (unsigned)crc, (unsigned)body_crc(b, len));

	const unsigned char *p = b + SL_LABEL_HEADER_BYTES;
	if (enc == SL_ENC_F32) {
		for (uint32_t i = 0; i < classes; i++)
			if (!isfinite(rdf32(p + 4 * (size_t)i)))
				return sl_errmsg_set(why, SL_EFORMAT,
				    "label value %u is not finite",
				    (unsigned)i);
	} else if (enc == SL_ENC_F16) {
		for (uint32_t i = 0; i < classes; i++)
			if ((rd16(p + 2 * (size_t)i) & 0x7c00u) == 0x7c00u)
				return sl_errmsg_set(why, SL_EFORMAT,
				    "label value %u is not finite",
				    (unsigned)i);
	} else {
		/* One bit per possible class: 8 KiB, on the stack so a
		 * checker of outside bytes never allocates. */
		unsigned char seen[SL_LABEL_MAX_CLASSES / 8];
		const unsigned char *idx = p + 4, *val = idx + 4 * (size_t)k;
		const float lse = rdf32(p);
		float prev = 0.0f;

		if (!isfinite(lse))
			return sl_errmsg_set(why, SL_EFORMAT,
			    "label lse is not finite");
		memset(seen, 0, (classes + 7) / 8);
		for (uint32_t j = 0; j < k; j++) {
			const uint32_t c = rd32(idx + 4 * (size_t)j);
			const uint16_t h = rd16(val + 2 * (size_t)j);
			float x;

			if (c >= classes)
				return sl_errmsg_set(why, SL_EFORMAT,
				    "label top-k index %u is class %u of %u",
				    (unsigned)j, (unsigned)c,
				    (unsigned)classes);
			if (seen[c / 8] & (1u << (c % 8)))
				return sl_errmsg_set(why, SL_EFORMAT,
				    "label top-k class %u appears twice",
				    (unsigned)c);
			seen[c / 8] |= (unsigned char)(1u << (c % 8));
			if ((h & 0x7c00u) == 0x7c00u)
				return sl_errmsg_set(why, SL_EFORMAT,
				    "label top-k value %u is not finite",
				    (unsigned)j);
			x = sl_f16_to_f32(h);
			if (j > 0 && x > prev)
				return sl_errmsg_set(why, SL_EFORMAT,
				    "label top-k value %u (%g) above value %u "
				    "(%g): not largest first", (unsigned)j,
				    (double)x, (unsigned)j - 1, (double)prev);
			if (j == 0 && lse < x)
				return sl_errmsg_set(why, SL_EFORMAT,
				    "label lse %g below the largest value %g",
				    (double)lse, (double)x);
			prev = x;
		}
	}
	if (fmt != NULL) {
		fmt->encoding = (enum sl_encoding)enc;
		fmt->classes = classes;
		fmt->k = (uint16_t)k;
	}
	return 0;
}

/* ---- decode ------------------------------------------------------------- */

int
sl_label_values(const void *rec, float *v)
{
	const unsigned char *b = rec, *p = b + SL_LABEL_HEADER_BYTES;
	const uint32_t classes = rd32(b + 4);

	switch (b[0]) {
	case SL_ENC_F32:
		for (uint32_t i = 0; i < classes; i++)
			v[i] = rdf32(p + 4 * (size_t)i);
		return 0;
	case SL_ENC_F16:
		for (uint32_t i = 0; i < classes; i++)
			v[i] = sl_f16_to_f32(rd16(p + 2 * (size_t)i));
		return 0;
	default:
		return SL_EUNSUPPORTED;
	}
}

/* ---- agreement (audits) ------------------------------------------------ */

/* Value i of a dense record, or of a top-k record's kept values. */
static double
value_at(const unsigned char *r, const sl_label_fmt *f, uint32_t i)
{
	const unsigned char *p = r + SL_LABEL_HEADER_BYTES;

	if (f->encoding == SL_ENC_F32)
		return (double)rdf32(p + 4 * (size_t)i);
	if (f->encoding == SL_ENC_F16)
		return (double)sl_f16_to_f32(rd16(p + 2 * (size_t)i));
	return (double)sl_f16_to_f32(rd16(p + 4 + 4 * (size_t)f->k +
	    2 * (size_t)i));
}

/* Position of class c among top-k record r's kept classes, or -1. */
static int
topk_find(const unsigned char *r, uint16_t k, uint32_t c)
{
	for (uint16_t j = 0; j < k; j++)
		if (rd32(r + SL_LABEL_HEADER_BYTES + 4 + 4 * (size_t)j) == c)
			return j;
	return -1;
}

/* Every class a keeps is kept by b with a close value, or sits at b's
 * boundary. d: the running worst difference (absolute). */
static void
topk_classes(const unsigned char *a, const unsigned char *b,
    const sl_label_fmt *f, double *d)
{
	const double b_last = value_at(b, f, (uint32_t)f->k - 1);

	for (uint16_t i = 0; i < f->k; i++) {
		const uint32_t c = rd32(a + SL_LABEL_HEADER_BYTES + 4 + 4 * (size_t)i);
		const int j = topk_find(b, f->k, c);
		const double va = value_at(a, f, i);
		const double diff = j >= 0 ? fabs(va - value_at(b, f, (uint32_t)j)) :
		    va - b_last; /* unkept by b: at most b's smallest */

		if (diff > *d)
			*d = diff;
	}
}

int
sl_label_agree(const void *a, const void *b, const sl_label_fmt *fmt,
    double *worst)
{
	const unsigned char *ra = a, *rb = b;
	const int topk = fmt->encoding == SL_ENC_TOPK;
	const uint32_t n = topk ? fmt->k : fmt->classes;
	const double tol = fmt->encoding == SL_ENC_F32 ? SL_LABEL_AGREE_F32 :
	    SL_LABEL_AGREE_F16;
	double scale = 1.0, d = 0.0;

	for (uint32_t i = 0; i < n; i++) {
		const double va = value_at(ra, fmt, i), vb = value_at(rb, fmt, i);

		if (fabs(va) > scale)
			scale = fabs(va);
		if (fabs(vb) > scale)
			scale = fabs(vb);
		if (fabs(va - vb) > d)
			d = fabs(va - vb);
	}
	if (topk) {
		const double la = (double)rdf32(ra + SL_LABEL_HEADER_BYTES);
		const double lb = (double)rdf32(rb + SL_LABEL_HEADER_BYTES);

		if (fabs(la) > scale)
			scale = fabs(la);
		if (fabs(lb) > scale)
			scale = fabs(lb);
		if (fabs(la - lb) > d)
			d = fabs(la - lb);
		topk_classes(ra, rb, fmt, &d);
		topk_classes(rb, ra, fmt, &d);
	}
	if (worst != NULL)
		*worst = d / scale;
	return d <= tol * scale;
}

/* Top-k at temperature T. The record keeps z / T_stored for k classes and
 * lse, the log-sum-exp over all of them; the other classes are gone, only
 * their total mass at T_stored survives: r = 1 - sum_j exp(v_j - lse).
 *
 * Model: every unkept class has the same value u with
 * (classes - k) * exp(u - lse) = r, i.e. u = lse + log(r / (classes - k))
 * (u = -inf when r == 0), and the distribution at T is
 * softmax([v_1..v_k, u x (classes - k)] * T_stored / T).
 *
 * At T == T_stored this is exactly exp(v_j - lse) for the kept classes and
 * r / (classes - k) for each other one, the stored distribution. At another
 * T the only error is the equal-unkept assumption: if the unkept classes
 * really were equal the result is exact; otherwise their spread, which
 * re-softening would amplify (T < T_stored) or shrink (T > T_stored), is lost.
 *
 * Half rounding of the kept values can make sum_j exp(v_j - lse) exceed 1 by
 * a few parts in a thousand; then r = 0 and the kept classes are
 * renormalised (the same formula), so a row always sums to 1. */
static void
probs_topk(const unsigned char *b, double s, float *p)
{
	const uint32_t classes = rd32(b + 4), k = rd16(b + 2);
	const unsigned char *idx = b + SL_LABEL_HEADER_BYTES + 4;
	const unsigned char *val = idx + 4 * (size_t)k;
	const double lse = (double)rdf32(b + SL_LABEL_HEADER_BYTES);
	const double others = (double)(classes - k);
	double kept = 0.0, r, u = 0.0, m, z, q;

	for (uint32_t j = 0; j < k; j++)
		kept += exp((double)sl_f16_to_f32(rd16(val + 2 * (size_t)j)) -
		    lse);
	r = kept < 1.0 ? 1.0 - kept : 0.0;
	m = (double)sl_f16_to_f32(rd16(val)); /* largest kept value */
	if (r > 0.0) {
		u = lse + log(r / others);
		if (u > m)
			m = u;
	}
	z = 0.0;
	for (uint32_t j = 0; j < k; j++)
		z += exp(((double)sl_f16_to_f32(rd16(val + 2 * (size_t)j)) - m) *
		    s);
	q = r > 0.0 ? exp((u - m) * s) : 0.0;
	z += others * q;
	for (uint32_t i = 0; i < classes; i++)
		p[i] = (float)(q / z);
	for (uint32_t j = 0; j < k; j++)
		p[rd32(idx + 4 * (size_t)j)] = (float)(exp(((double)sl_f16_to_f32(
		    rd16(val + 2 * (size_t)j)) - m) * s) / z);
}

void
sl_label_probs(const void *rec, float T_stored, float T, float *p)
{
	const unsigned char *b = rec;
	const uint32_t classes = rd32(b + 4);
	/* Stored values are z / T_stored; at T they are v * T_stored / T. */
	const double s = (double)T_stored / (double)T;
	double m, z = 0.0;

	assert(T_stored > 0.0f && T > 0.0f && isfinite(s));
	if (b[0] == SL_ENC_TOPK) {
		probs_topk(b, s, p);
		return;
	}
	(void)sl_label_values(rec, p);
	m = (double)p[0];
	for (uint32_t i = 1; i < classes; i++)
		if ((double)p[i] > m)
			m = (double)p[i];
	for (uint32_t i = 0; i < classes; i++)
		z += exp(((double)p[i] - m) * s);
	for (uint32_t i = 0; i < classes; i++)
		p[i] = (float)(exp(((double)p[i] - m) * s) / z);
}

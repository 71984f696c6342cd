/* Soft-label records: half conversion, encode/decode round trips against a
 * double-precision softmax, re-softening, and rejection of malformed bytes.
 *
 * Tolerances (all stated where asserted):
 *  - dense f32 at the stored T and re-softened: max |p - p_ref| <= 1e-6;
 *  - half values: rounding moves each stored value by at most
 *    d = max|v| * 2^-11 (+ 2^-25 for subnormals), so each probability moves
 *    by a factor within exp(+-2d): we assert |log(p / p_ref)| <= 2d + 1e-5;
 *  - every row sums to 1 within 1e-5. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "sl_label.h"
#include "sl_rng.h"

#define MAXC 1000

/* ---- helpers ------------------------------------------------------------ */

static sl_label_fmt
mkfmt(enum sl_encoding e, uint32_t classes, uint16_t k)
{
	sl_label_fmt f;

	f.encoding = e;
	f.classes = classes;
	f.k = k;
	return f;
}

static void
random_logits(sl_rng *r, float *z, uint32_t n, float scale)
{
	for (uint32_t i = 0; i < n; i++)
		z[i] = (2.0f * sl_rng_float(r) - 1.0f) * scale;
}

/* softmax(z / T) in double, independent of the library. */
static void
ref_softmax(const float *z, uint32_t n, double T, double *p)
{
	double m = -(double)INFINITY, s = 0.0;

	for (uint32_t i = 0; i < n; i++)
		if ((double)z[i] / T > m)
			m = (double)z[i] / T;
	for (uint32_t i = 0; i < n; i++)
		s += (p[i] = exp((double)z[i] / T - m));
	for (uint32_t i = 0; i < n; i++)
		p[i] /= s;
}

static uint32_t
le32(const unsigned char *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	    (uint32_t)b[3] << 24;
}

static void
put32(unsigned char *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (unsigned char)(v >> (8 * i));
}

static void
put_f32(unsigned char *b, float f)
{
	uint32_t u;

	memcpy(&u, &f, sizeof u);
	put32(b, u);
}

/* Re-stamp the crc so a payload edit reaches the value checks. */
static void
restamp(unsigned char *rec, size_t len)
{
	put32(rec + 8, (uint32_t)crc32(0L, rec + 12, (uInt)(len - 12)));
}

static int
encode(const sl_label_fmt *f, const float *z, float T, unsigned char *out)
{
	float *scratch = malloc(2 * sizeof(float) * f->classes);
	int rc;

	assert_non_null(scratch);
	rc = sl_label_encode(f, z, T, scratch, out);
	free(scratch);
	return rc;
}

static double
max_abs_over_T(const float *z, uint32_t n, float T)
{
	double m = 0.0;

	for (uint32_t i = 0; i < n; i++)
		if (fabs((double)(z[i] / T)) > m)
			m = fabs((double)(z[i] / T));
	return m;
}

static void
assert_row_sums_to_one(const float *p, uint32_t n)
{
	double s = 0.0;

	for (uint32_t i = 0; i < n; i++) {
		assert_true(p[i] >= 0.0f && p[i] <= 1.0f);
		s += (double)p[i];
	}
	assert_true(fabs(s - 1.0) <= 1e-5);
}

/* ---- half --------------------------------------------------------------- */

static void
test_f16_exhaustive(void **state)
{
	(void)state;
	for (uint32_t h = 0; h < 65536; h++) {
		const float f = sl_f16_to_f32((uint16_t)h);
		const uint32_t e = h >> 10 & 0x1f, m = h & 0x3ff;
		const double sign = (h & 0x8000) ? -1.0 : 1.0;

		if (e == 31 && m != 0) {
			assert_true(isnan(f));
			assert_true((sl_f32_to_f16(f) & 0x7fff) > 0x7c00);
			continue;
		}
		if (e == 31)
			assert_true(isinf(f) && (f < 0) == ((h & 0x8000) != 0));
		else if (e == 0)
			assert_true((double)f == sign * ldexp((double)m, -24));
		else
			assert_true((double)f ==
			    sign * ldexp((double)(1024 + m), (int)e - 25));
		assert_int_equal(sl_f32_to_f16(f), h);
		if (e == 0 && m == 0)
			assert_true((signbit(f) != 0) == ((h & 0x8000) != 0));
	}
}

static void
test_f16_known_values(void **state)
{
	(void)state;
	assert_int_equal(sl_f32_to_f16(1.0f), 0x3c00);
	assert_int_equal(sl_f32_to_f16(-2.0f), 0xc000);
	assert_int_equal(sl_f32_to_f16(0.1f), 0x2e66);
	assert_int_equal(sl_f32_to_f16(65504.0f), 0x7bff);
	assert_int_equal(sl_f32_to_f16(0x1p-24f), 0x0001);
	assert_int_equal(sl_f32_to_f16(0x1p-14f), 0x0400);
	assert_int_equal(sl_f32_to_f16(0x1.ff8p-15f), 0x03ff);
	assert_int_equal(sl_f32_to_f16(0.0f), 0x0000);
	assert_int_equal(sl_f32_to_f16(-0.0f), 0x8000);
	assert_int_equal(sl_f32_to_f16(INFINITY), 0x7c00);
	assert_int_equal(sl_f32_to_f16(-INFINITY), 0xfc00);
	assert_true((sl_f32_to_f16(NAN) & 0x7c00) == 0x7c00 &&
	    (sl_f32_to_f16(NAN) & 0x3ff) != 0);
	/* A float NaN whose payload sits below the half's bits stays NaN. */
	{
		const uint32_t bits = 0x7f800001u;
		float f;

		memcpy(&f, &bits, sizeof f);
		assert_int_equal(sl_f32_to_f16(f), 0x7e00);
	}
	assert_true(sl_f16_to_f32(0x3c00) == 1.0f);
	assert_true(sl_f16_to_f32(0x7bff) == 65504.0f);
	assert_true(sl_f16_to_f32(0x0001) == 0x1p-24f);
	assert_true(sl_f16_to_f32(0x8000) == 0.0f && signbit(sl_f16_to_f32(0x8000)));

	/* Ties to even, normals: 1 + 2^-11 is halfway between 0x3c00 and
	 * 0x3c01 (goes down to even), 1 + 3 * 2^-11 between 0x3c01 and
	 * 0x3c02 (goes up to even); just above a tie goes up. */
	assert_int_equal(sl_f32_to_f16(1.0f + 0x1p-11f), 0x3c00);
	assert_int_equal(sl_f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
	assert_int_equal(sl_f32_to_f16(1.0f + 0x1p-11f + 0x1p-20f), 0x3c01);
	assert_int_equal(sl_f32_to_f16(-(1.0f + 0x1p-11f)), 0xbc00);
	/* Subnormals: 2^-25 is halfway between 0 and 2^-24 (to 0);
	 * 3 * 2^-25 between 1 and 2 units (to 2); just above 2^-25 is 1. */
	assert_int_equal(sl_f32_to_f16(0x1p-25f), 0x0000);
	assert_int_equal(sl_f32_to_f16(-0x1p-25f), 0x8000);
	assert_int_equal(sl_f32_to_f16(3 * 0x1p-25f), 0x0002);
	assert_int_equal(sl_f32_to_f16(0x1.000002p-25f), 0x0001);
	assert_int_equal(sl_f32_to_f16(1e-10f), 0x0000);
	/* Subnormal rounding up into the smallest normal. */
	assert_int_equal(sl_f32_to_f16(0x1.fff8p-15f), 0x0400);
	/* Overflow: below 65520 rounds to 65504, from the tie on it is inf. */
	assert_int_equal(sl_f32_to_f16(65519.0f), 0x7bff);
	assert_int_equal(sl_f32_to_f16(65520.0f), 0x7c00);
	assert_int_equal(sl_f32_to_f16(-65520.0f), 0xfc00);
	assert_int_equal(sl_f32_to_f16(1e6f), 0x7c00);
	assert_int_equal(sl_f32_to_f16(3e38f), 0x7c00);
}

/* ---- formats ---------------------------------------------------------- */

static void
test_parse_and_format(void **state)
{
	static const char *bad[] = {
		"", "F32", "f32 ", "f64", "topk", "topk:", "topk:0", "topk:1025",
		"topk:5x", "topk: 5", "topk:+5", "topk:-1", "topk:0x10",
		"topk:99999999999999999999", "top-k:5",
	};
	sl_label_fmt f = mkfmt(SL_ENC_F32, 77, 9);
	char buf[32];

	(void)state;
	assert_int_equal(sl_label_parse_encoding("f16", &f), 0);
	assert_int_equal(f.encoding, SL_ENC_F16);
	assert_int_equal(f.k, 0);
	assert_int_equal(f.classes, 77); /* left for the caller */
	assert_int_equal(sl_label_parse_encoding("f32", &f), 0);
	assert_int_equal(f.encoding, SL_ENC_F32);
	assert_int_equal(sl_label_parse_encoding("topk:1024", &f), 0);
	assert_int_equal(f.encoding, SL_ENC_TOPK);
	assert_int_equal(f.k, 1024);
	assert_int_equal(sl_label_parse_encoding("topk:1", &f), 0);
	assert_int_equal(f.k, 1);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		sl_label_fmt g = mkfmt(SL_ENC_F16, 5, 3);

		assert_int_equal(sl_label_parse_encoding(bad[i], &g),
		    SL_EINVAL);
		assert_int_equal(g.encoding, SL_ENC_F16); /* untouched */
		assert_int_equal(g.k, 3);
	}

	f = mkfmt(SL_ENC_TOPK, 10, 5);
	sl_label_format_encoding(&f, buf, sizeof buf);
	assert_string_equal(buf, "topk:5");
	f = mkfmt(SL_ENC_F16, 10, 0);
	sl_label_format_encoding(&f, buf, sizeof buf);
	assert_string_equal(buf, "f16");
	f = mkfmt(SL_ENC_F32, 10, 0);
	sl_label_format_encoding(&f, buf, sizeof buf);
	assert_string_equal(buf, "f32");
	f = mkfmt(SL_ENC_TOPK, 2000, 1024);
	sl_label_format_encoding(&f, buf, 5);
	assert_string_equal(buf, "topk"); /* truncated, still terminated */
	{
		sl_label_fmt g;

		sl_label_format_encoding(&f, buf, sizeof buf);
		assert_int_equal(sl_label_parse_encoding(buf, &g), 0);
		assert_int_equal(g.encoding, SL_ENC_TOPK);
		assert_int_equal(g.k, 1024);
	}
}

static void
test_fmt_check_and_size(void **state)
{
	sl_label_fmt f;

	(void)state;
	f = mkfmt(SL_ENC_F32, 10, 0);
	assert_int_equal(sl_label_fmt_check(&f), 0);
	assert_int_equal(sl_label_size(&f), 12 + 40);
	f = mkfmt(SL_ENC_F16, 10, 0);
	assert_int_equal(sl_label_fmt_check(&f), 0);
	assert_int_equal(sl_label_size(&f), 12 + 20);
	f = mkfmt(SL_ENC_TOPK, 10, 5);
	assert_int_equal(sl_label_fmt_check(&f), 0);
	assert_int_equal(sl_label_size(&f), 12 + 4 + 20 + 10);
	f = mkfmt(SL_ENC_F32, SL_LABEL_MAX_CLASSES, 0);
	assert_int_equal(sl_label_fmt_check(&f), 0);
	assert_int_equal(sl_label_size(&f), 12 + 4 * 65536);
	f = mkfmt(SL_ENC_TOPK, 2, 1);
	assert_int_equal(sl_label_fmt_check(&f), 0);

	f = mkfmt(SL_ENC_F32, 1, 0);
	assert_int_equal(sl_label_fmt_check(&f), SL_EINVAL);
	f = mkfmt(SL_ENC_F32, 0, 0);
	assert_int_equal(sl_label_fmt_check(&f), SL_EINVAL);
	f = mkfmt(SL_ENC_F16, SL_LABEL_MAX_CLASSES + 1, 0);
	assert_int_equal(sl_label_fmt_check(&f), SL_EINVAL);
	f = mkfmt(SL_ENC_F32, 10, 1);
	assert_int_equal(sl_label_fmt_check(&f), SL_EINVAL);
	f = mkfmt(SL_ENC_TOPK, 10, 0);
	assert_int_equal(sl_label_fmt_check(&f), SL_EINVAL);
	f = mkfmt(SL_ENC_TOPK, 10, 10);
	assert_int_equal(sl_label_fmt_check(&f), SL_EINVAL);
	f = mkfmt(SL_ENC_TOPK, 5000, SL_LABEL_MAX_K + 1);
	assert_int_equal(sl_label_fmt_check(&f), SL_EINVAL);
	f = mkfmt((enum sl_encoding)4, 10, 0);
	assert_int_equal(sl_label_fmt_check(&f), SL_EINVAL);
	f = mkfmt((enum sl_encoding)0, 10, 0);
	assert_int_equal(sl_label_fmt_check(&f), SL_EINVAL);
}

/* ---- round trips ------------------------------------------------------ */

/* Rank of class c among z / T, largest first, ties to the lower index. */
static uint32_t
rank_of(const float *v, uint32_t n, uint32_t c)
{
	uint32_t r = 0;

	for (uint32_t i = 0; i < n; i++)
		r += v[i] > v[c] || (v[i] == v[c] && i < c);
	return r;
}

static void
round_trip(enum sl_encoding enc, uint32_t classes, float T, uint64_t seed)
{
	const uint16_t k = enc != SL_ENC_TOPK ? 0 :
	    (uint16_t)(classes <= 2 ? 1 : classes <= 10 ? 5 : 20);
	const sl_label_fmt f = mkfmt(enc, classes, k);
	const size_t len = sl_label_size(&f);
	unsigned char rec[12 + 4 * MAXC];
	float z[MAXC], v[MAXC], p[MAXC];
	double ref[MAXC];
	sl_label_fmt got;
	sl_errmsg why;
	sl_rng r;

	sl_rng_seed(&r, seed);
	random_logits(&r, z, classes, 8.0f);
	for (uint32_t i = 0; i < classes; i++)
		v[i] = z[i] / T;
	assert_int_equal(encode(&f, z, T, rec), 0);

	/* Layout, read independently. */
	assert_int_equal(rec[0], enc);
	assert_int_equal(rec[1], 0);
	assert_int_equal(rec[2] | rec[3] << 8, k);
	assert_int_equal(le32(rec + 4), classes);
	assert_int_equal(le32(rec + 8),
	    (uint32_t)crc32(0L, rec + 12, (uInt)(len - 12)));
	memset(&got, 0, sizeof got);
	assert_int_equal(sl_label_check(rec, len, &f, &got, &why), 0);
	assert_int_equal(got.encoding, enc);
	assert_int_equal(got.classes, classes);
	assert_int_equal(got.k, k);

	ref_softmax(z, classes, (double)T, ref);
	sl_label_probs(rec, T, T, p);
	assert_row_sums_to_one(p, classes);

	if (enc == SL_ENC_F32) {
		for (uint32_t i = 0; i < classes; i++) {
			const uint32_t bits = le32(rec + 12 + 4 * i);
			float s;

			memcpy(&s, &bits, sizeof s);
			assert_true(s == v[i]);
			assert_true(fabs((double)p[i] - ref[i]) <= 1e-6);
		}
		return;
	}
	const double d = max_abs_over_T(z, classes, T) * 0x1p-11 + 0x1p-25;
	if (enc == SL_ENC_F16) {
		for (uint32_t i = 0; i < classes; i++) {
			const uint16_t h = (uint16_t)(rec[12 + 2 * i] |
			    rec[13 + 2 * i] << 8);

			assert_int_equal(h, sl_f32_to_f16(v[i]));
			assert_true(fabs(log((double)p[i] / ref[i])) <=
			    2 * d + 1e-5);
		}
		return;
	}

	/* Top-k: lse, the right classes in order, kept values to half
	 * precision, the rest of the mass spread evenly. */
	double lse_ref, kept_ref = 0.0, m = -(double)INFINITY, s = 0.0;
	float lse;
	int kept[MAXC] = { 0 };

	for (uint32_t i = 0; i < classes; i++)
		if ((double)v[i] > m)
			m = (double)v[i];
	for (uint32_t i = 0; i < classes; i++)
		s += exp((double)v[i] - m);
	lse_ref = m + log(s);
	/* The encoder lifts lse to the largest stored half when that rounded
	 * up past it (a class cannot have probability above 1). */
	{
		const double top = (double)sl_f16_to_f32(sl_f32_to_f16((float)m));

		if (top > lse_ref)
			lse_ref = top;
	}
	{
		const uint32_t bits = le32(rec + 12);

		memcpy(&lse, &bits, sizeof lse);
	}
	assert_true(fabs((double)lse - lse_ref) <= 1e-6 * (1.0 + fabs(lse_ref)));
	for (uint32_t j = 0; j < k; j++) {
		const uint32_t c = le32(rec + 16 + 4 * j);
		const unsigned char *hv = rec + 16 + 4 * k + 2 * j;

		assert_true(c < classes);
		assert_int_equal(rank_of(v, classes, c), j);
		assert_int_equal(hv[0] | hv[1] << 8, sl_f32_to_f16(v[c]));
		kept[c] = 1;
		kept_ref += ref[c];
		assert_true(fabs(log((double)p[c] / ref[c])) <= 2 * d + 1e-5);
	}
	const double other = (1.0 - kept_ref) / (double)(classes - k);
	const double tol = kept_ref * expm1(2 * d) / (double)(classes - k) + 1e-7;
	float first = -1.0f;

	for (uint32_t i = 0; i < classes; i++) {
		if (kept[i])
			continue;
		if (first < 0.0f)
			first = p[i];
		assert_true(p[i] == first); /* evenly spread */
		assert_true(fabs((double)p[i] - other) <= tol);
	}
}

static void
test_round_trips(void **state)
{
	static const uint32_t classes[] = { 2, 10, 1000 };
	static const float temps[] = { 1.0f, 4.0f, 20.0f };
	static const enum sl_encoding encs[] = {
		SL_ENC_F32, SL_ENC_F16, SL_ENC_TOPK,
	};
	uint64_t seed = 1;

	(void)state;
	for (int e = 0; e < 3; e++)
		for (int c = 0; c < 3; c++)
			for (int t = 0; t < 3; t++)
				for (int rep = 0; rep < 4; rep++)
					round_trip(encs[e], classes[c], temps[t],
					    seed++);
}

/* The buffer may sit at any address: encode, check and decode at odd ones. */
static void
test_unaligned_buffers(void **state)
{
	static const enum sl_encoding encs[] = {
		SL_ENC_F32, SL_ENC_F16, SL_ENC_TOPK,
	};
	unsigned char raw[1 + 12 + 4 * 100 + 8];
	float z[100], p[100], q[100];
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 5);
	random_logits(&r, z, 100, 5.0f);
	for (int e = 0; e < 3; e++) {
		const sl_label_fmt f = mkfmt(encs[e], 100,
		    encs[e] == SL_ENC_TOPK ? 7 : 0);

		assert_int_equal(encode(&f, z, 2.0f, raw), 0);
		sl_label_probs(raw, 2.0f, 3.0f, q);
		for (int off = 1; off < 4; off++) {
			assert_int_equal(encode(&f, z, 2.0f, raw + off), 0);
			assert_int_equal(sl_label_check(raw + off,
			    sl_label_size(&f), &f, NULL, NULL), 0);
			sl_label_probs(raw + off, 2.0f, 3.0f, p);
			assert_memory_equal(p, q, sizeof p);
		}
	}
}

static void
test_topk_ties_lower_index_first(void **state)
{
	const float z[6] = { 1.0f, 3.0f, 3.0f, 2.0f, 3.0f, 2.0f };
	static const uint32_t want[5] = { 1, 2, 4, 3, 5 };
	unsigned char rec[12 + 4 + 6 * 5];
	const sl_label_fmt f = mkfmt(SL_ENC_TOPK, 6, 5);

	(void)state;
	assert_int_equal(encode(&f, z, 1.0f, rec), 0);
	assert_int_equal(sl_label_check(rec, sizeof rec, &f, NULL, NULL), 0);
	for (uint32_t j = 0; j < 5; j++)
		assert_int_equal(le32(rec + 16 + 4 * j), want[j]);
}

/* All-equal logits: the uniform distribution, in every encoding. */
static void
test_uniform_logits(void **state)
{
	float z[50], p[50];
	unsigned char rec[12 + 4 * 50];
	static const enum sl_encoding encs[] = {
		SL_ENC_F32, SL_ENC_F16, SL_ENC_TOPK,
	};

	(void)state;
	for (int i = 0; i < 50; i++)
		z[i] = 7.0f;
	for (int e = 0; e < 3; e++) {
		const sl_label_fmt f = mkfmt(encs[e], 50,
		    encs[e] == SL_ENC_TOPK ? 10 : 0);

		assert_int_equal(encode(&f, z, 1.0f, rec), 0);
		assert_int_equal(sl_label_check(rec, sl_label_size(&f), &f,
		    NULL, NULL), 0);
		sl_label_probs(rec, 1.0f, 1.0f, p);
		for (int i = 0; i < 50; i++)
			assert_true(fabs((double)p[i] - 0.02) <= 1e-6);
		sl_label_probs(rec, 1.0f, 0.25f, p);
		for (int i = 0; i < 50; i++)
			assert_true(fabs((double)p[i] - 0.02) <= 1e-6);
	}
}

/* ---- re-softening ------------------------------------------------------- */

static void
test_resoften_dense(void **state)
{
	static const float t2s[] = { 0.5f, 1.0f, 2.0f, 10.0f, 100.0f };
	const float T1 = 4.0f;
	unsigned char rec[12 + 4 * MAXC];
	float z[MAXC], p[MAXC];
	double ref[MAXC];
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 11);
	for (int rep = 0; rep < 5; rep++) {
		const uint32_t n = rep == 0 ? 2 : rep == 1 ? 10 : 1000;
		sl_label_fmt f = mkfmt(SL_ENC_F32, n, 0);

		random_logits(&r, z, n, 8.0f);
		assert_int_equal(encode(&f, z, T1, rec), 0);
		for (size_t t = 0; t < sizeof t2s / sizeof t2s[0]; t++) {
			ref_softmax(z, n, (double)t2s[t], ref);
			sl_label_probs(rec, T1, t2s[t], p);
			assert_row_sums_to_one(p, n);
			for (uint32_t i = 0; i < n; i++)
				assert_true(fabs((double)p[i] - ref[i]) <= 1e-6);
		}

		/* f16: each value moves by <= d at T1, so by d * T1 / T2 at T2. */
		f = mkfmt(SL_ENC_F16, n, 0);
		assert_int_equal(encode(&f, z, T1, rec), 0);
		const double d = max_abs_over_T(z, n, T1) * 0x1p-11 + 0x1p-25;
		for (size_t t = 0; t < sizeof t2s / sizeof t2s[0]; t++) {
			const double dd = d * (double)T1 / (double)t2s[t];

			ref_softmax(z, n, (double)t2s[t], ref);
			sl_label_probs(rec, T1, t2s[t], p);
			assert_row_sums_to_one(p, n);
			for (uint32_t i = 0; i < n; i++)
				assert_true(fabs(log((double)p[i] / ref[i])) <=
				    2 * dd + 1e-5);
		}
	}
	/* T -> infinity: uniform. */
	{
		sl_label_fmt f = mkfmt(SL_ENC_F32, 10, 0);

		random_logits(&r, z, 10, 8.0f);
		assert_int_equal(encode(&f, z, 1.0f, rec), 0);
		sl_label_probs(rec, 1.0f, 1e7f, p);
		for (int i = 0; i < 10; i++)
			assert_true(fabs((double)p[i] - 0.1) <= 1e-6);
	}
}

/* When the unkept classes really are equal, top-k re-softening is exact up
 * to the half rounding of the kept values; chosen here to be exact in half,
 * so only float rounding of lse remains: 1e-6. */
static void
test_topk_resoften_exact_when_rest_equal(void **state)
{
	static const float t2s[] = { 0.5f, 1.0f, 2.0f, 4.0f, 8.0f, 50.0f };
	const float T1 = 4.0f;
	float z[300], p[300];
	double ref[300];
	unsigned char rec[12 + 4 + 6 * 8];
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 21);
	for (int rep = 0; rep < 20; rep++) {
		const uint32_t n = rep % 2 ? 10 : 300;
		const uint16_t k = rep % 2 ? 3 : 8;
		const sl_label_fmt f = mkfmt(SL_ENC_TOPK, n, k);
		/* Kept: multiples of 1/16 (exact in half after / 4) above the
		 * common rest value. */
		const float rest = -2.0f + 0.0625f * (float)sl_rng_below(&r, 32);

		for (uint32_t i = 0; i < n; i++)
			z[i] = rest;
		for (uint32_t j = 0; j < k; j++)
			z[sl_rng_below(&r, n)] = rest + 0.25f +
			    0.0625f * (float)sl_rng_below(&r, 96);
		/* Some draws may collide: fill up k distinct kept classes. */
		uint32_t have = 0;
		for (uint32_t i = 0; i < n; i++)
			have += z[i] != rest;
		for (uint32_t i = 0; have < k; i++)
			if (z[i] == rest) {
				z[i] = rest + 1.0f;
				have++;
			}
		assert_int_equal(encode(&f, z, T1, rec), 0);
		assert_int_equal(sl_label_check(rec, sizeof rec - 6 * (8 - k),
		    &f, NULL, NULL), 0);
		for (size_t t = 0; t < sizeof t2s / sizeof t2s[0]; t++) {
			ref_softmax(z, n, (double)t2s[t], ref);
			sl_label_probs(rec, T1, t2s[t], p);
			assert_row_sums_to_one(p, n);
			for (uint32_t i = 0; i < n; i++)
				assert_true(fabs((double)p[i] - ref[i]) <=
				    1e-6);
		}
	}
}

/* Random logits uniform in [-8, 8], k = 5 of 10, T 4 -> 2: the unkept
 * classes differ, so this is an approximation. Over 100000 draws the total
 * variation from the exact softmax(z / 2) averaged 0.018 (worst 0.17, 6.7%
 * of draws above 0.05); returning the T = 4 distribution instead averages
 * 0.22. Asserted over 1000 draws: mean < 0.03, worst < 0.25. */
static void
test_topk_resoften_random_bound(void **state)
{
	const sl_label_fmt f = mkfmt(SL_ENC_TOPK, 10, 5);
	unsigned char rec[12 + 4 + 6 * 5];
	float z[10], p[10];
	double ref[10], worst = 0.0, mean = 0.0;
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 31);
	for (int rep = 0; rep < 1000; rep++) {
		double tv = 0.0;

		random_logits(&r, z, 10, 8.0f);
		assert_int_equal(encode(&f, z, 4.0f, rec), 0);
		ref_softmax(z, 10, 2.0, ref);
		sl_label_probs(rec, 4.0f, 2.0f, p);
		assert_row_sums_to_one(p, 10);
		for (int i = 0; i < 10; i++)
			tv += fabs((double)p[i] - ref[i]);
		tv *= 0.5;
		mean += tv / 1000.0;
		if (tv > worst)
			worst = tv;
	}
	assert_true(mean < 0.03);
	assert_true(worst < 0.25);
	assert_true(worst > 0.0); /* it is an approximation */
}

/* ---- malformed records -------------------------------------------------- */

/* Every byte XORed with every nonzero mask must be rejected. The one hole is
 * the classes field of a top-k record: its size does not depend on classes
 * and the crc covers only the bytes after the header, so a flip to another
 * valid count (> every stored index) passes on its own; with the expected
 * format (which every reader has, from the teacher's meta) it is
 * SL_EMISMATCH. */
static void
flip_all(const sl_label_fmt *f, const unsigned char *good)
{
	const size_t len = sl_label_size(f);
	unsigned char rec[12 + 4 * MAXC];
	int holes = 0;

	for (size_t i = 0; i < len; i++) {
		for (int mask = 1; mask < 256; mask++) {
			sl_label_fmt out = mkfmt(SL_ENC_F16, 3, 3);
			int rc;

			memcpy(rec, good, len);
			rec[i] ^= (unsigned char)mask;
			rc = sl_label_check(rec, len, NULL, &out, NULL);
			if (rc == 0) {
				assert_int_equal(f->encoding, SL_ENC_TOPK);
				assert_true(i >= 4 && i < 8);
				assert_int_equal(sl_label_check(rec, len, f,
				    NULL, NULL), SL_EMISMATCH);
				holes++;
				continue;
			}
			assert_true(rc == SL_EFORMAT || rc == SL_ECORRUPT);
			/* out is written only on success */
			assert_int_equal(out.encoding, SL_ENC_F16);
			assert_int_equal(out.classes, 3);
			assert_true(sl_label_check(rec, len, f, NULL, NULL) !=
			    0);
			if (i >= 8)
				assert_int_equal(rc, SL_ECORRUPT);
		}
	}
	if (f->encoding != SL_ENC_TOPK)
		assert_int_equal(holes, 0);
}

static void
test_every_byte_flip_rejected(void **state)
{
	static const sl_label_fmt fmts[] = {
		{ SL_ENC_F32, 10, 0 }, { SL_ENC_F16, 10, 0 },
		{ SL_ENC_TOPK, 10, 5 }, { SL_ENC_F16, 300, 0 },
		{ SL_ENC_TOPK, 1000, 20 }, { SL_ENC_TOPK, 2, 1 },
	};
	unsigned char good[12 + 4 * MAXC];
	float z[MAXC];
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 41);
	for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
		random_logits(&r, z, fmts[i].classes, 6.0f);
		assert_int_equal(encode(&fmts[i], z, 2.0f, good), 0);
		assert_int_equal(sl_label_check(good, sl_label_size(&fmts[i]),
		    &fmts[i], NULL, NULL), 0);
		flip_all(&fmts[i], good);
	}
}

static void
test_truncation_and_extension(void **state)
{
	static const sl_label_fmt fmts[] = {
		{ SL_ENC_F32, 10, 0 }, { SL_ENC_F16, 10, 0 },
		{ SL_ENC_TOPK, 10, 5 },
	};
	unsigned char rec[12 + 4 * 10 + 1];
	float z[10];
	sl_errmsg why;
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 51);
	random_logits(&r, z, 10, 6.0f);
	for (size_t i = 0; i < 3; i++) {
		const size_t len = sl_label_size(&fmts[i]);

		memset(rec, 0, sizeof rec);
		assert_int_equal(encode(&fmts[i], z, 1.0f, rec), 0);
		for (size_t l = 0; l < len; l++)
			assert_int_equal(sl_label_check(rec, l, NULL, NULL,
			    NULL), SL_EFORMAT);
		assert_int_equal(sl_label_check(rec, len - 1, NULL, NULL,
		    &why), SL_EFORMAT);
		assert_non_null(strstr(why.text, "bytes"));
		assert_int_equal(sl_label_check(rec, len + 1, NULL, NULL,
		    &why), SL_EFORMAT);
		assert_non_null(strstr(why.text, "bytes"));
		assert_int_equal(sl_label_check(rec, len, NULL, NULL, NULL), 0);
	}
	assert_int_equal(sl_label_check(NULL, 0, NULL, NULL, NULL),
	    SL_EFORMAT);
}

/* Header fields: each bad value with the reason named. */
static void
test_bad_header_fields(void **state)
{
	const sl_label_fmt fd = mkfmt(SL_ENC_F32, 10, 0);
	const sl_label_fmt ft = mkfmt(SL_ENC_TOPK, 10, 5);
	unsigned char good_d[12 + 40], good_t[12 + 4 + 30], rec[64];
	float z[10];
	sl_errmsg why;
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 61);
	random_logits(&r, z, 10, 6.0f);
	assert_int_equal(encode(&fd, z, 1.0f, good_d), 0);
	assert_int_equal(encode(&ft, z, 1.0f, good_t), 0);

#define BAD(good, byte, value, word)                                          \
	do {                                                                  \
		memcpy(rec, good, sizeof good);                               \
		rec[byte] = (unsigned char)(value);                           \
		assert_int_equal(sl_label_check(rec, sizeof good, NULL, NULL, \
		    &why), SL_EFORMAT);                                       \
		assert_non_null(strstr(why.text, word));                      \
	} while (0)

	BAD(good_d, 0, 0, "encoding");
	BAD(good_d, 0, 4, "encoding");
	BAD(good_d, 0, 255, "encoding");
	BAD(good_d, 1, 1, "reserved");
	BAD(good_t, 1, 0x80, "reserved");
	BAD(good_d, 2, 1, "label k");           /* dense k != 0 */
	BAD(good_t, 2, 0, "label k");           /* top-k k = 0 */
	BAD(good_t, 2, 10, "label k");          /* k == classes */
	BAD(good_t, 2, 11, "label k");          /* k > classes */
	BAD(good_t, 4, 5, "label k");           /* classes 5 == k */
	BAD(good_d, 4, 0, "classes");
	BAD(good_d, 4, 1, "classes");
	BAD(good_t, 4, 1, "classes");
	BAD(good_d, 6, 1, "classes");     /* 65546 > SL_LABEL_MAX_CLASSES */
	BAD(good_t, 7, 1, "classes");
	BAD(good_d, 0, SL_ENC_TOPK, "label k"); /* dense bytes as top-k: k = 0 */
	BAD(good_t, 0, SL_ENC_F32, "label k");  /* top-k bytes as dense: k != 0 */
#undef BAD

	/* classes 65537 exactly, k over SL_LABEL_MAX_K with enough classes. */
	memcpy(rec, good_d, sizeof good_d);
	put32(rec + 4, SL_LABEL_MAX_CLASSES + 1);
	assert_int_equal(sl_label_check(rec, sizeof good_d, NULL, NULL, &why),
	    SL_EFORMAT);
	assert_non_null(strstr(why.text, "classes"));
	memcpy(rec, good_t, sizeof good_t);
	put32(rec + 4, 5000);
	rec[2] = (SL_LABEL_MAX_K + 1) & 0xff;
	rec[3] = (SL_LABEL_MAX_K + 1) >> 8;
	assert_int_equal(sl_label_check(rec, sizeof good_t, NULL, NULL, &why),
	    SL_EFORMAT);
	assert_non_null(strstr(why.text, "label k"));
	/* The same header with the largest k passes the header and fails on
	 * length only. */
	rec[2] = SL_LABEL_MAX_K & 0xff;
	rec[3] = SL_LABEL_MAX_K >> 8;
	assert_int_equal(sl_label_check(rec, sizeof good_t, NULL, NULL, &why),
	    SL_EFORMAT);
	assert_non_null(strstr(why.text, "bytes"));
	/* A bad crc field is SL_ECORRUPT. */
	memcpy(rec, good_d, sizeof good_d);
	rec[9] ^= 1;
	assert_int_equal(sl_label_check(rec, sizeof good_d, NULL, NULL, &why),
	    SL_ECORRUPT);
	assert_non_null(strstr(why.text, "crc"));
}

/* Payload values with a correct crc, so the value checks are what fire. */
static void
test_bad_values_with_valid_crc(void **state)
{
	const sl_label_fmt f32 = mkfmt(SL_ENC_F32, 10, 0);
	const sl_label_fmt f16 = mkfmt(SL_ENC_F16, 10, 0);
	const sl_label_fmt tk = mkfmt(SL_ENC_TOPK, 10, 5);
	unsigned char g32[12 + 40], g16[12 + 20], gtk[12 + 4 + 30], rec[64];
	unsigned char *const idx = rec + 16, *const val = rec + 16 + 20;
	static const uint16_t bad_halves[] = { 0x7c00, 0xfc00, 0x7e00, 0x7c01,
		0xffff };
	float z[10];
	sl_errmsg why;
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 71);
	random_logits(&r, z, 10, 6.0f);
	assert_int_equal(encode(&f32, z, 1.0f, g32), 0);
	assert_int_equal(encode(&f16, z, 1.0f, g16), 0);
	assert_int_equal(encode(&tk, z, 1.0f, gtk), 0);

#define EXPECT_BAD(good, word)                                                \
	do {                                                                  \
		restamp(rec, sizeof good);                                    \
		assert_int_equal(sl_label_check(rec, sizeof good, NULL, NULL, \
		    &why), SL_EFORMAT);                                       \
		assert_non_null(strstr(why.text, word));                      \
	} while (0)

	/* dense f32 */
	static const float bad_floats[] = { NAN, INFINITY, -INFINITY };
	for (int b = 0; b < 3; b++)
		for (int i = 0; i < 10; i += 9) {
			memcpy(rec, g32, sizeof g32);
			put_f32(rec + 12 + 4 * i, bad_floats[b]);
			EXPECT_BAD(g32, "finite");
		}
	/* dense f16 */
	for (int b = 0; b < 5; b++)
		for (int i = 0; i < 10; i += 3) {
			memcpy(rec, g16, sizeof g16);
			rec[12 + 2 * i] = (unsigned char)(bad_halves[b] & 0xff);
			rec[13 + 2 * i] = (unsigned char)(bad_halves[b] >> 8);
			EXPECT_BAD(g16, "finite");
		}
	/* top-k: lse */
	for (int b = 0; b < 3; b++) {
		memcpy(rec, gtk, sizeof gtk);
		put_f32(rec + 12, bad_floats[b]);
		EXPECT_BAD(gtk, "lse");
	}
	/* top-k: half values */
	for (int b = 0; b < 5; b++)
		for (int j = 0; j < 5; j += 4) {
			memcpy(rec, gtk, sizeof gtk);
			val[2 * j] = (unsigned char)(bad_halves[b] & 0xff);
			val[2 * j + 1] = (unsigned char)(bad_halves[b] >> 8);
			EXPECT_BAD(gtk, "finite");
		}
	/* duplicate index */
	memcpy(rec, gtk, sizeof gtk);
	memcpy(idx + 4 * 3, idx + 4 * 1, 4);
	EXPECT_BAD(gtk, "twice");
	/* index out of range: == classes, huge */
	memcpy(rec, gtk, sizeof gtk);
	put32(idx + 4 * 2, 10);
	EXPECT_BAD(gtk, "class 10");
	memcpy(rec, gtk, sizeof gtk);
	put32(idx, 0xffffffffu);
	EXPECT_BAD(gtk, "class");
	/* values out of order: swap the first two (distinct random values) */
	memcpy(rec, gtk, sizeof gtk);
	assert_true(memcmp(val, val + 2, 2) != 0);
	memcpy(val, gtk + 36 + 2, 2);
	memcpy(val + 2, gtk + 36, 2);
	EXPECT_BAD(gtk, "largest first");
	/* last value raised above its predecessor */
	memcpy(rec, gtk, sizeof gtk);
	{
		const float prev = sl_f16_to_f32((uint16_t)(val[6] | val[7] << 8));
		const uint16_t up = sl_f32_to_f16(prev + 0.5f);

		val[8] = (unsigned char)(up & 0xff);
		val[9] = (unsigned char)(up >> 8);
	}
	EXPECT_BAD(gtk, "largest first");
	/* lse below the largest value */
	memcpy(rec, gtk, sizeof gtk);
	put_f32(rec + 12, sl_f16_to_f32((uint16_t)(val[0] | val[1] << 8)) -
	    0.01f);
	EXPECT_BAD(gtk, "lse");
	/* ...while lse equal to it is fine (all mass in one class). */
	memcpy(rec, gtk, sizeof gtk);
	put_f32(rec + 12, sl_f16_to_f32((uint16_t)(val[0] | val[1] << 8)));
	restamp(rec, sizeof gtk);
	assert_int_equal(sl_label_check(rec, sizeof gtk, NULL, NULL, NULL), 0);
	/* Equal neighbouring values are allowed (ties). */
	memcpy(rec, gtk, sizeof gtk);
	memcpy(val + 2, val, 2);
	restamp(rec, sizeof gtk);
	assert_int_equal(sl_label_check(rec, sizeof gtk, NULL, NULL, NULL), 0);
#undef EXPECT_BAD
}

static void
test_expect_mismatch(void **state)
{
	const sl_label_fmt f = mkfmt(SL_ENC_TOPK, 10, 5);
	unsigned char rec[12 + 4 + 30];
	sl_label_fmt e, out = mkfmt(SL_ENC_F32, 99, 0);
	float z[10];
	sl_errmsg why;
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 81);
	random_logits(&r, z, 10, 6.0f);
	assert_int_equal(encode(&f, z, 1.0f, rec), 0);
	e = mkfmt(SL_ENC_F16, 10, 0);
	assert_int_equal(sl_label_check(rec, sizeof rec, &e, &out, &why),
	    SL_EMISMATCH);
	assert_non_null(strstr(why.text, "encoding"));
	e = mkfmt(SL_ENC_TOPK, 11, 5);
	assert_int_equal(sl_label_check(rec, sizeof rec, &e, &out, &why),
	    SL_EMISMATCH);
	assert_non_null(strstr(why.text, "classes"));
	e = mkfmt(SL_ENC_TOPK, 10, 4);
	assert_int_equal(sl_label_check(rec, sizeof rec, &e, &out, &why),
	    SL_EMISMATCH);
	assert_non_null(strstr(why.text, "k 5, expected 4"));
	assert_int_equal(out.classes, 99); /* untouched on failure */
	assert_int_equal(sl_label_check(rec, sizeof rec, &f, &out, &why), 0);
	assert_int_equal(out.classes, 10);
	assert_int_equal(out.encoding, SL_ENC_TOPK);
	assert_int_equal(out.k, 5);
}

/* ---- encode rejects ---------------------------------------------------- */

static void
test_encode_rejects(void **state)
{
	const sl_label_fmt f32 = mkfmt(SL_ENC_F32, 4, 0);
	const sl_label_fmt f16 = mkfmt(SL_ENC_F16, 4, 0);
	const sl_label_fmt tk = mkfmt(SL_ENC_TOPK, 4, 2);
	const sl_label_fmt *all[3] = { &f32, &f16, &tk };
	static const float bad[] = { NAN, INFINITY, -INFINITY };
	unsigned char rec[12 + 16];
	float z[4] = { 1.0f, -2.0f, 0.5f, 3.0f };
	float big[4] = { 70000.0f, 1.0f, 2.0f, 3.0f };
	float lowtail[4] = { 1.0f, -70000.0f, 2.0f, -1e30f };
	sl_label_fmt badfmt;

	(void)state;
	for (int e = 0; e < 3; e++) {
		for (int b = 0; b < 3; b++)
			for (int i = 0; i < 4; i++) {
				float w[4];

				memcpy(w, z, sizeof w);
				w[i] = bad[b];
				assert_int_equal(encode(all[e], w, 1.0f, rec),
				    SL_EINVAL);
			}
		assert_int_equal(encode(all[e], z, 0.0f, rec), SL_EINVAL);
		assert_int_equal(encode(all[e], z, -0.0f, rec), SL_EINVAL);
		assert_int_equal(encode(all[e], z, -1.0f, rec), SL_EINVAL);
		assert_int_equal(encode(all[e], z, NAN, rec), SL_EINVAL);
		assert_int_equal(encode(all[e], z, INFINITY, rec), SL_EINVAL);
		/* z / T overflows float for a tiny T */
		assert_int_equal(encode(all[e], big, 1e-36f, rec), SL_EINVAL);
		assert_int_equal(encode(all[e], z, 1.0f, rec), 0);
	}
	/* Half cannot hold |z / T| > 65504: f16 and (for kept classes)
	 * top-k refuse; a larger T brings it in range. */
	assert_int_equal(encode(&f32, big, 1.0f, rec), 0);
	assert_int_equal(encode(&f16, big, 1.0f, rec), SL_EINVAL);
	assert_int_equal(encode(&tk, big, 1.0f, rec), SL_EINVAL);
	assert_int_equal(encode(&f16, big, 2.0f, rec), 0);
	assert_int_equal(encode(&tk, big, 2.0f, rec), 0);
	big[0] = -65505.0f;
	assert_int_equal(encode(&f16, big, 1.0f, rec), SL_EINVAL);
	big[0] = 65504.0f;
	assert_int_equal(encode(&f16, big, 1.0f, rec), 0);
	/* An unkept class far below is no problem for top-k. */
	assert_int_equal(encode(&tk, lowtail, 1.0f, rec), 0);
	assert_int_equal(sl_label_check(rec, sl_label_size(&tk), &tk, NULL,
	    NULL), 0);
	assert_int_equal(encode(&f16, lowtail, 1.0f, rec), SL_EINVAL);
	/* Bad formats. */
	badfmt = mkfmt(SL_ENC_TOPK, 4, 4);
	assert_int_equal(encode(&badfmt, z, 1.0f, rec), SL_EINVAL);
	badfmt = mkfmt(SL_ENC_F32, 1, 0);
	assert_int_equal(encode(&badfmt, z, 1.0f, rec), SL_EINVAL);
}

static void
test_values(void **state)
{
	const sl_label_fmt fd = mkfmt(SL_ENC_F32, 6, 0);
	const sl_label_fmt fh = mkfmt(SL_ENC_F16, 6, 0);
	const sl_label_fmt tk = mkfmt(SL_ENC_TOPK, 6, 2);
	const float z[6] = { 1.0f, -2.0f, 0.5f, 3.0f, 0.1f, -7.25f };
	unsigned char rec[12 + 24];
	float v[6] = { 0 };

	(void)state;
	assert_int_equal(encode(&fd, z, 2.0f, rec), 0);
	assert_int_equal(sl_label_values(rec, v), 0);
	for (int i = 0; i < 6; i++)
		assert_true(v[i] == z[i] / 2.0f);
	assert_int_equal(encode(&fh, z, 2.0f, rec), 0);
	assert_int_equal(sl_label_values(rec, v), 0);
	for (int i = 0; i < 6; i++)
		assert_true(v[i] == sl_f16_to_f32(sl_f32_to_f16(z[i] / 2.0f)));
	assert_int_equal(encode(&tk, z, 2.0f, rec), 0);
	v[0] = 42.0f;
	assert_int_equal(sl_label_values(rec, v), SL_EUNSUPPORTED);
	assert_true(v[0] == 42.0f);
}

/* The largest format: 65536 classes, k = 1024, and dense f32. */
static void
test_largest_records(void **state)
{
	const uint32_t n = SL_LABEL_MAX_CLASSES;
	const sl_label_fmt tk = mkfmt(SL_ENC_TOPK, n, SL_LABEL_MAX_K);
	const sl_label_fmt fd = mkfmt(SL_ENC_F32, n, 0);
	float *z = malloc(sizeof(float) * n), *p = malloc(sizeof(float) * n);
	unsigned char *rec = malloc(sl_label_size(&fd));
	sl_rng r;

	(void)state;
	assert_non_null(z);
	assert_non_null(p);
	assert_non_null(rec);
	sl_rng_seed(&r, 91);
	random_logits(&r, z, n, 10.0f);
	assert_int_equal(encode(&tk, z, 1.0f, rec), 0);
	assert_int_equal(sl_label_check(rec, sl_label_size(&tk), &tk, NULL,
	    NULL), 0);
	/* Ranks: the kept classes are the 1024 largest, in order. */
	for (uint32_t j = 0; j < SL_LABEL_MAX_K; j += 97)
		assert_int_equal(rank_of(z, n, le32(rec + 16 + 4 * j)), j);
	sl_label_probs(rec, 1.0f, 1.0f, p);
	assert_row_sums_to_one(p, n);
	sl_label_probs(rec, 1.0f, 3.0f, p);
	assert_row_sums_to_one(p, n);
	assert_int_equal(encode(&fd, z, 1.0f, rec), 0);
	assert_int_equal(sl_label_check(rec, sl_label_size(&fd), &fd, NULL,
	    NULL), 0);
	sl_label_probs(rec, 1.0f, 0.5f, p);
	assert_row_sums_to_one(p, n);
	free(z);
	free(p);
	free(rec);
}

/* ---- agreement (audits) ------------------------------------------------ */

/* Encode z at T into rec under f; asserts success. */
static void
enc(const sl_label_fmt *f, const float *z, float T, unsigned char *rec)
{
	float scratch[2 * MAXC];

	assert_int_equal(sl_label_encode(f, z, T, scratch, rec), 0);
	assert_int_equal(sl_label_check(rec, sl_label_size(f), f, NULL, NULL), 0);
}

/* Re-summing in another order moves logits by ~1e-6 of their scale: every
 * encoding agrees; a shift of 1% of the scale, or another argmax, does not. */
static void
test_agree_tolerance(void **state)
{
	const sl_label_fmt fmts[3] = { mkfmt(SL_ENC_F32, 100, 0),
	    mkfmt(SL_ENC_F16, 100, 0), mkfmt(SL_ENC_TOPK, 100, 5) };
	static unsigned char ra[8192], rb[8192];
	float z[MAXC], y[MAXC];
	sl_rng r;
	double worst;

	(void)state;
	sl_rng_seed(&r, 15);
	for (int f = 0; f < 3; f++) {
		for (int trial = 0; trial < 50; trial++) {
			random_logits(&r, z, 100, 8.0f);
			enc(&fmts[f], z, 2.0f, ra);
			enc(&fmts[f], z, 2.0f, rb);
			assert_true(sl_label_agree(ra, rb, &fmts[f], &worst));
			assert_true(worst == 0.0);
			for (int i = 0; i < 100; i++)
				y[i] = z[i] * (1.0f + 2e-6f * (sl_rng_float(&r) - 0.5f));
			enc(&fmts[f], y, 2.0f, rb);
			assert_true(sl_label_agree(ra, rb, &fmts[f], &worst));
			/* f32: the perturbation itself (1e-6 of the scale);
			 * a half may round to its neighbour: one ulp, 2^-10 */
			assert_true(worst <= (fmts[f].encoding == SL_ENC_F32 ?
			    1e-5 : 1.0 / 1024 + 1e-5));
			/* 1% of the scale on one class */
			memcpy(y, z, sizeof y);
			y[trial] += 0.08f;
			enc(&fmts[f], y, 2.0f, rb);
			if (fmts[f].encoding != SL_ENC_TOPK)
				assert_false(sl_label_agree(ra, rb, &fmts[f], NULL));
			/* confident garbage: another class far on top */
			memcpy(y, z, sizeof y);
			y[(trial * 7) % 100] = 40.0f;
			enc(&fmts[f], y, 2.0f, rb);
			assert_false(sl_label_agree(ra, rb, &fmts[f], &worst));
			assert_true(worst > 0.1);
			assert_false(sl_label_agree(rb, ra, &fmts[f], NULL));
		}
	}
}

/* Top-k: a near tie at the boundary may swap (the records keep different
 * last classes), a class only one record keeps above the other's smallest
 * kept value may not. */
static void
test_agree_topk_boundary(void **state)
{
	const sl_label_fmt f = mkfmt(SL_ENC_TOPK, 10, 3);
	unsigned char ra[256], rb[256];
	float z[10] = { 9, 8, 5, 4.999999f, 1, 0, 0, 0, 0, 0 };
	float y[10];

	(void)state;
	enc(&f, z, 1.0f, ra);
	memcpy(y, z, sizeof y);
	y[2] = 4.999998f; /* classes 2 and 3 swap at the boundary */
	enc(&f, y, 1.0f, rb);
	assert_true(sl_label_agree(ra, rb, &f, NULL));
	assert_true(sl_label_agree(rb, ra, &f, NULL));
	memcpy(y, z, sizeof y);
	y[4] = 8.5f; /* class 4 enters in second place */
	enc(&f, y, 1.0f, rb);
	assert_false(sl_label_agree(ra, rb, &f, NULL));
	assert_false(sl_label_agree(rb, ra, &f, NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_f16_exhaustive),
		cmocka_unit_test(test_f16_known_values),
		cmocka_unit_test(test_parse_and_format),
		cmocka_unit_test(test_fmt_check_and_size),
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_unaligned_buffers),
		cmocka_unit_test(test_topk_ties_lower_index_first),
		cmocka_unit_test(test_uniform_logits),
		cmocka_unit_test(test_resoften_dense),
		cmocka_unit_test(test_topk_resoften_exact_when_rest_equal),
		cmocka_unit_test(test_topk_resoften_random_bound),
		cmocka_unit_test(test_every_byte_flip_rejected),
		cmocka_unit_test(test_truncation_and_extension),
		cmocka_unit_test(test_bad_header_fields),
		cmocka_unit_test(test_bad_values_with_valid_crc),
		cmocka_unit_test(test_expect_mismatch),
		cmocka_unit_test(test_encode_rejects),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_largest_records),
		cmocka_unit_test(test_agree_tolerance),
		cmocka_unit_test(test_agree_topk_boundary),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

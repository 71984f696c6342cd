/* The msgpack cursor: every format read back from msgpack-c's packer, the
 * boundaries between formats, truncation, hostile headers, nesting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <string.h>

#include "sl_err.h"
#include "sl_msgpack.h"

static msgpack_sbuffer sb;
static msgpack_packer pk;

static int
setup(void **state)
{
	(void)state;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	msgpack_sbuffer_destroy(&sb);
	return 0;
}

static void
reset(void)
{
	msgpack_sbuffer_clear(&sb);
}

static void
test_unsigned_boundaries(void **state)
{
	/* value, encoded size (tag + payload) */
	static const struct { uint64_t v; size_t bytes; uint8_t tag; } cases[] = {
		{ 0, 1, 0x00 }, { 127, 1, 0x7f }, { 128, 2, 0xcc },
		{ 255, 2, 0xcc }, { 256, 3, 0xcd }, { 65535, 3, 0xcd },
		{ 65536, 5, 0xce }, { UINT32_MAX, 5, 0xce },
		{ (uint64_t)UINT32_MAX + 1, 9, 0xcf }, { INT64_MAX, 9, 0xcf },
		{ (uint64_t)INT64_MAX + 1, 9, 0xcf }, { UINT64_MAX, 9, 0xcf },
	};

	(void)state;
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		sl_mp c;
		uint64_t u = 12345;
		int64_t i = 0;
		uint32_t u32 = 0;
		double d = 0;

		reset();
		assert_int_equal(msgpack_pack_uint64(&pk, cases[k].v), 0);
		assert_int_equal(sb.size, cases[k].bytes);
		assert_int_equal((uint8_t)sb.data[0], cases[k].tag);

		sl_mp_init(&c, sb.data, sb.size);
		assert_int_equal(sl_mp_u64(&c, &u), 0);
		assert_true(u == cases[k].v);
		assert_int_equal(sl_mp_left(&c), 0);

		sl_mp_init(&c, sb.data, sb.size);
		if (cases[k].v <= (uint64_t)INT64_MAX) {
			assert_int_equal(sl_mp_i64(&c, &i), 0);
			assert_true((uint64_t)i == cases[k].v);
		} else {
			/* i64 overflow: refused, cursor and out-param untouched */
			i = 77;
			assert_int_equal(sl_mp_i64(&c, &i), SL_EFORMAT);
			assert_int_equal(c.off, 0);
			assert_true(i == 77);
		}

		sl_mp_init(&c, sb.data, sb.size);
		if (cases[k].v <= UINT32_MAX) {
			assert_int_equal(sl_mp_u32(&c, &u32, UINT32_MAX), 0);
			assert_true(u32 == cases[k].v);
		} else {
			assert_int_equal(sl_mp_u32(&c, &u32, UINT32_MAX),
			    SL_EFORMAT);
			assert_int_equal(c.off, 0);
		}

		sl_mp_init(&c, sb.data, sb.size);
		assert_int_equal(sl_mp_f64(&c, &d), 0);
		assert_true(d == (double)cases[k].v);
	}
}

static void
test_u32_max_argument(void **state)
{
	sl_mp c;
	uint32_t v = 0;

	(void)state;
	reset();
	msgpack_pack_uint32(&pk, 64);
	sl_mp_init(&c, sb.data, sb.size);
	assert_int_equal(sl_mp_u32(&c, &v, 63), SL_EFORMAT);
	assert_int_equal(c.off, 0);
	assert_int_equal(sl_mp_u32(&c, &v, 64), 0);
	assert_int_equal(v, 64);
}

static void
test_signed_boundaries(void **state)
{
	static const struct { int64_t v; size_t bytes; uint8_t tag; } cases[] = {
		{ -1, 1, 0xff }, { -32, 1, 0xe0 }, { -33, 2, 0xd0 },
		{ -128, 2, 0xd0 }, { -129, 3, 0xd1 }, { -32768, 3, 0xd1 },
		{ -32769, 5, 0xd2 }, { INT32_MIN, 5, 0xd2 },
		{ (int64_t)INT32_MIN - 1, 9, 0xd3 }, { INT64_MIN, 9, 0xd3 },
	};

	(void)state;
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		sl_mp c;
		int64_t i = 0;
		uint64_t u = 99;
		double d = 0;

		reset();
		assert_int_equal(msgpack_pack_int64(&pk, cases[k].v), 0);
		assert_int_equal(sb.size, cases[k].bytes);
		assert_int_equal((uint8_t)sb.data[0], cases[k].tag);

		sl_mp_init(&c, sb.data, sb.size);
		assert_int_equal(sl_mp_i64(&c, &i), 0);
		assert_true(i == cases[k].v);
		assert_int_equal(sl_mp_left(&c), 0);

		/* negative where unsigned is wanted: refused, nothing moves */
		sl_mp_init(&c, sb.data, sb.size);
		assert_int_equal(sl_mp_u64(&c, &u), SL_EFORMAT);
		assert_true(u == 99);
		assert_int_equal(c.off, 0);

		assert_int_equal(sl_mp_f64(&c, &d), 0);
		assert_true(d == (double)cases[k].v);
	}
}

/* Signed formats holding non-negative values (other packers write them) are
 * unsigned integers to the cursor. */
static void
test_signed_formats_with_positive_values(void **state)
{
	static const uint8_t bytes[] = {
		0xd0, 0x7f,                                     /* int8 127 */
		0xd1, 0x01, 0x00,                               /* int16 256 */
		0xd2, 0x7f, 0xff, 0xff, 0xff,                   /* int32 max */
		0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	};
	sl_mp c;
	uint64_t u;

	(void)state;
	sl_mp_init(&c, bytes, sizeof bytes);
	assert_int_equal(sl_mp_u64(&c, &u), 0);
	assert_true(u == 127);
	assert_int_equal(sl_mp_u64(&c, &u), 0);
	assert_true(u == 256);
	assert_int_equal(sl_mp_u64(&c, &u), 0);
	assert_true(u == INT32_MAX);
	assert_int_equal(sl_mp_u64(&c, &u), 0);
	assert_true(u == INT64_MAX);
	assert_int_equal(sl_mp_left(&c), 0);
}

static void
test_floats_bool_nil(void **state)
{
	sl_mp c;
	double d = 0;
	int b = -1;
	uint64_t u;

	(void)state;
	reset();
	msgpack_pack_float(&pk, 0.1f);
	msgpack_pack_double(&pk, -2.5e300);
	msgpack_pack_double(&pk, (double)NAN);
	msgpack_pack_float(&pk, -INFINITY);
	msgpack_pack_true(&pk);
	msgpack_pack_false(&pk);
	msgpack_pack_nil(&pk);
	assert_int_equal((uint8_t)sb.data[0], 0xca);
	assert_int_equal((uint8_t)sb.data[5], 0xcb);

	sl_mp_init(&c, sb.data, sb.size);
	assert_int_equal(sl_mp_u64(&c, &u), SL_EFORMAT); /* float is no int */
	assert_int_equal(sl_mp_f64(&c, &d), 0);
	assert_true(d == (double)0.1f);
	assert_int_equal(sl_mp_f64(&c, &d), 0);
	assert_true(d == -2.5e300);
	assert_int_equal(sl_mp_f64(&c, &d), 0);
	assert_true(isnan(d));
	assert_int_equal(sl_mp_f64(&c, &d), 0);
	assert_true(isinf(d) && d < 0);
	assert_int_equal(sl_mp_nil(&c), 0); /* true is not nil */
	assert_int_equal(sl_mp_f64(&c, &d), SL_EFORMAT);
	assert_int_equal(sl_mp_bool(&c, &b), 0);
	assert_int_equal(b, 1);
	assert_int_equal(sl_mp_bool(&c, &b), 0);
	assert_int_equal(b, 0);
	assert_int_equal(sl_mp_bool(&c, &b), SL_EFORMAT); /* nil */
	assert_int_equal(sl_mp_nil(&c), 1);
	assert_int_equal(sl_mp_left(&c), 0);
	assert_int_equal(sl_mp_nil(&c), 0); /* at the end */
}

static void
check_raw(int bin, size_t n, uint8_t tag, size_t hlen)
{
	static uint8_t body[70000];
	const uint8_t *p = NULL;
	size_t len = 0;
	sl_mp c;

	for (size_t k = 0; k < n; k++)
		body[k] = (uint8_t)(k * 7 + 3);
	reset();
	if (bin) {
		msgpack_pack_bin(&pk, n);
		msgpack_pack_bin_body(&pk, body, n);
	} else {
		msgpack_pack_str(&pk, n);
		msgpack_pack_str_body(&pk, body, n);
	}
	assert_int_equal((uint8_t)sb.data[0], tag);
	assert_int_equal(sb.size, hlen + n);

	sl_mp_init(&c, sb.data, sb.size);
	/* the other raw type is refused without moving */
	if (bin)
		assert_int_equal(sl_mp_str(&c, &p, &len), SL_EFORMAT);
	else
		assert_int_equal(sl_mp_bin(&c, &p, &len), SL_EFORMAT);
	assert_int_equal(c.off, 0);
	assert_int_equal(bin ? sl_mp_bin(&c, &p, &len) : sl_mp_str(&c, &p, &len),
	    0);
	assert_int_equal(len, n);
	assert_ptr_equal(p, (const uint8_t *)sb.data + hlen);
	assert_memory_equal(p, body, n);
	assert_int_equal(sl_mp_left(&c), 0);

	/* one byte short of the payload */
	sl_mp_init(&c, sb.data, sb.size - 1);
	if (n > 0) {
		assert_int_equal(bin ? sl_mp_bin(&c, &p, &len)
		    : sl_mp_str(&c, &p, &len), SL_EFORMAT);
		assert_int_equal(c.off, 0);
	}
}

static void
test_str_bin_boundaries(void **state)
{
	(void)state;
	check_raw(0, 0, 0xa0, 1);
	check_raw(0, 31, 0xbf, 1);
	check_raw(0, 32, 0xd9, 2);
	check_raw(0, 255, 0xd9, 2);
	check_raw(0, 256, 0xda, 3);
	check_raw(0, 65535, 0xda, 3);
	check_raw(0, 65536, 0xdb, 5);
	check_raw(1, 0, 0xc4, 2);
	check_raw(1, 255, 0xc4, 2);
	check_raw(1, 256, 0xc5, 3);
	check_raw(1, 65535, 0xc5, 3);
	check_raw(1, 65536, 0xc6, 5);
}

static void
test_containers_boundaries(void **state)
{
	static const struct {
		uint32_t n;
		uint8_t array_tag, map_tag;
		size_t hlen;
	} cases[] = {
		{ 0, 0x90, 0x80, 1 }, { 15, 0x9f, 0x8f, 1 },
		{ 16, 0xdc, 0xde, 3 }, { 65535, 0xdc, 0xde, 3 },
		{ 65536, 0xdd, 0xdf, 5 },
	};

	(void)state;
	for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
		for (int map = 0; map <= 1; map++) {
			const uint32_t n = cases[k].n;
			uint32_t got = 0;
			uint64_t u;
			sl_mp c;

			reset();
			if (map)
				msgpack_pack_map(&pk, n);
			else
				msgpack_pack_array(&pk, n);
			for (uint32_t i = 0; i < n * (map ? 2u : 1u); i++)
				msgpack_pack_uint32(&pk, i & 0x7f);
			assert_int_equal((uint8_t)sb.data[0],
			    map ? cases[k].map_tag : cases[k].array_tag);

			sl_mp_init(&c, sb.data, sb.size);
			if (map) {
				assert_int_equal(sl_mp_array(&c, &got),
				    SL_EFORMAT);
				assert_int_equal(sl_mp_map(&c, &got), 0);
			} else {
				assert_int_equal(sl_mp_map(&c, &got),
				    SL_EFORMAT);
				assert_int_equal(sl_mp_array(&c, &got), 0);
			}
			assert_int_equal(got, n);
			assert_int_equal(c.off, cases[k].hlen);
			for (uint32_t i = 0; i < n * (map ? 2u : 1u); i++) {
				assert_int_equal(sl_mp_u64(&c, &u), 0);
				assert_true(u == (i & 0x7f));
			}
			assert_int_equal(sl_mp_left(&c), 0);

			/* the whole thing in one skip */
			sl_mp_init(&c, sb.data, sb.size);
			assert_int_equal(sl_mp_skip(&c), 0);
			assert_int_equal(sl_mp_left(&c), 0);
		}
	}
}

/* A composite message as the protocol writes them. */
static void
pack_composite(void)
{
	static const uint8_t blob[300] = { 1, 2, 3 };

	reset();
	msgpack_pack_map(&pk, 5);
	msgpack_pack_str(&pk, 1);
	msgpack_pack_str_body(&pk, "v", 1);
	msgpack_pack_uint32(&pk, 1);
	msgpack_pack_str(&pk, 4);
	msgpack_pack_str_body(&pk, "held", 4);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_uint64(&pk, 5);
	msgpack_pack_uint64(&pk, 1ull << 40);
	msgpack_pack_int64(&pk, -7);
	msgpack_pack_str(&pk, 1);
	msgpack_pack_str_body(&pk, "b", 1);
	msgpack_pack_bin(&pk, sizeof blob);
	msgpack_pack_bin_body(&pk, blob, sizeof blob);
	msgpack_pack_str(&pk, 1);
	msgpack_pack_str_body(&pk, "f", 1);
	msgpack_pack_float(&pk, 2.0f);
	msgpack_pack_str(&pk, 1);
	msgpack_pack_str_body(&pk, "m", 1);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_nil(&pk);
	msgpack_pack_ext(&pk, 2, 7);
	msgpack_pack_ext_body(&pk, "xy", 2);
}

/* Walk the composite with typed readers; 0 when all of it reads. The first
 * failure must leave the cursor where it was. */
static int
walk_composite(sl_mp *c)
{
	const uint8_t *s;
	size_t len, before;
	uint32_t n;
	uint64_t u;
	int64_t i;
	double d;
	int rc;

#define STEP(call) do { before = c->off; rc = (call); \
	if (rc != 0) { assert_int_equal(c->off, before); return rc; } } while (0)
	STEP(sl_mp_map(c, &n));
	assert_int_equal(n, 5);
	STEP(sl_mp_str(c, &s, &len));
	STEP(sl_mp_u64(c, &u));
	STEP(sl_mp_str(c, &s, &len));
	STEP(sl_mp_array(c, &n));
	assert_int_equal(n, 3);
	STEP(sl_mp_u64(c, &u));
	STEP(sl_mp_u64(c, &u));
	assert_true(u == 1ull << 40);
	STEP(sl_mp_i64(c, &i));
	assert_true(i == -7);
	STEP(sl_mp_str(c, &s, &len));
	STEP(sl_mp_bin(c, &s, &len));
	assert_int_equal(len, 300);
	STEP(sl_mp_str(c, &s, &len));
	STEP(sl_mp_f64(c, &d));
	assert_true(d == 2.0);
	STEP(sl_mp_str(c, &s, &len));
	assert_true(sl_mp_streq(s, len, "m"));
	/* an ext inside: typed readers refuse it, skip passes it */
	STEP(sl_mp_skip(c));
#undef STEP
	return 0;
}

static void
test_truncation_of_every_prefix(void **state)
{
	sl_mp c;

	(void)state;
	pack_composite();
	sl_mp_init(&c, sb.data, sb.size);
	assert_int_equal(walk_composite(&c), 0);
	assert_int_equal(sl_mp_left(&c), 0);
	sl_mp_init(&c, sb.data, sb.size);
	assert_int_equal(sl_mp_skip(&c), 0);
	assert_int_equal(sl_mp_left(&c), 0);

	for (size_t cut = 0; cut < sb.size; cut++) {
		sl_mp_init(&c, sb.data, cut);
		assert_int_equal(walk_composite(&c), SL_EFORMAT);
		sl_mp_init(&c, sb.data, cut);
		assert_int_equal(sl_mp_skip(&c), SL_EFORMAT);
		assert_int_equal(c.off, 0);
	}
}

static void
test_ext_refused_by_typed_readers(void **state)
{
	static const size_t sizes[] = { 1, 2, 4, 8, 16, 0, 3, 255, 256, 70000 };
	static uint8_t body[70000];

	(void)state;
	for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
		const uint8_t *p;
		size_t len;
		uint64_t u;
		int64_t i;
		double d;
		uint32_t n;
		int b;
		sl_mp c;

		reset();
		msgpack_pack_ext(&pk, sizes[k], 5);
		msgpack_pack_ext_body(&pk, body, sizes[k]);
		msgpack_pack_uint8(&pk, 9);
		sl_mp_init(&c, sb.data, sb.size);
		assert_int_equal(sl_mp_u64(&c, &u), SL_EFORMAT);
		assert_int_equal(sl_mp_i64(&c, &i), SL_EFORMAT);
		assert_int_equal(sl_mp_f64(&c, &d), SL_EFORMAT);
		assert_int_equal(sl_mp_bool(&c, &b), SL_EFORMAT);
		assert_int_equal(sl_mp_str(&c, &p, &len), SL_EFORMAT);
		assert_int_equal(sl_mp_bin(&c, &p, &len), SL_EFORMAT);
		assert_int_equal(sl_mp_map(&c, &n), SL_EFORMAT);
		assert_int_equal(sl_mp_array(&c, &n), SL_EFORMAT);
		assert_string_equal(sl_mp_type_name(&c), "ext");
		assert_int_equal(c.off, 0);
		assert_int_equal(sl_mp_skip(&c), 0);
		assert_int_equal(sl_mp_u64(&c, &u), 0);
		assert_true(u == 9);
		assert_int_equal(sl_mp_left(&c), 0);
		/* truncated ext */
		sl_mp_init(&c, sb.data, sb.size - 2);
		assert_int_equal(sl_mp_skip(&c), SL_EFORMAT);
	}
}

/* 5-byte headers that claim 4 billion of something, with almost nothing
 * behind them: refused at the header, before any element is looked at. */
static void
test_huge_claims_fail_fast(void **state)
{
	static const uint8_t tags[] = { 0xdd, 0xdf, 0xdb, 0xc6, 0xc9 };

	(void)state;
	for (size_t k = 0; k < sizeof tags; k++) {
		uint8_t buf[16] = { tags[k], 0xff, 0xff, 0xff, 0xff };
		const uint8_t *p = NULL;
		size_t len = 0;
		uint32_t n = 0;
		sl_mp c;

		sl_mp_init(&c, buf, sizeof buf);
		assert_int_equal(sl_mp_array(&c, &n), SL_EFORMAT);
		assert_int_equal(sl_mp_map(&c, &n), SL_EFORMAT);
		assert_int_equal(sl_mp_str(&c, &p, &len), SL_EFORMAT);
		assert_int_equal(sl_mp_bin(&c, &p, &len), SL_EFORMAT);
		assert_int_equal(sl_mp_skip(&c), SL_EFORMAT);
		assert_string_equal(sl_mp_type_name(&c), "malformed");
		assert_int_equal(c.off, 0);
		assert_int_equal(n, 0);
		assert_null(p);
	}
}

/* A count is checked against the bytes left: n elements need n bytes, a map
 * of n entries 2n. Exactly enough passes; one short fails. */
static void
test_counts_against_bytes_left(void **state)
{
	uint8_t buf[5 + 40];
	uint32_t n;
	sl_mp c;

	(void)state;
	memset(buf, 0x01, sizeof buf);
	buf[0] = 0xdd; /* array32 of 40 */
	buf[1] = 0; buf[2] = 0; buf[3] = 0; buf[4] = 40;
	sl_mp_init(&c, buf, sizeof buf);
	assert_int_equal(sl_mp_array(&c, &n), 0);
	assert_int_equal(n, 40);
	sl_mp_init(&c, buf, sizeof buf - 1);
	assert_int_equal(sl_mp_array(&c, &n), SL_EFORMAT);

	buf[0] = 0xdf; /* map32 of 20 entries = 40 values */
	buf[4] = 20;
	sl_mp_init(&c, buf, sizeof buf);
	assert_int_equal(sl_mp_map(&c, &n), 0);
	assert_int_equal(n, 20);
	buf[4] = 21;
	sl_mp_init(&c, buf, sizeof buf);
	assert_int_equal(sl_mp_map(&c, &n), SL_EFORMAT);
	assert_int_equal(c.off, 0);
}

static size_t
nest(uint8_t *buf, int depth, int map)
{
	size_t n = 0;

	for (int d = 0; d < depth; d++) {
		buf[n++] = map ? 0x81 : 0x91; /* one element/entry */
		if (map)
			buf[n++] = 0x00; /* key */
	}
	buf[n++] = 0x2a; /* innermost value */
	return n;
}

static void
test_skip_depth_limit(void **state)
{
	uint8_t buf[64];
	sl_mp c;

	(void)state;
	for (int map = 0; map <= 1; map++) {
		size_t n = nest(buf, SL_MP_MAX_DEPTH, map);

		sl_mp_init(&c, buf, n);
		assert_int_equal(sl_mp_skip(&c), 0);
		assert_int_equal(sl_mp_left(&c), 0);

		n = nest(buf, SL_MP_MAX_DEPTH + 1, map);
		sl_mp_init(&c, buf, n);
		assert_int_equal(sl_mp_skip(&c), SL_EFORMAT);
		assert_int_equal(c.off, 0);
	}
	/* empty containers at the limit do not open a level */
	{
		size_t n = nest(buf, SL_MP_MAX_DEPTH, 0);

		buf[n - 1] = 0x90; /* innermost is [] */
		sl_mp_init(&c, buf, n);
		assert_int_equal(sl_mp_skip(&c), 0);
		assert_int_equal(sl_mp_left(&c), 0);
	}
	/* siblings after a nested container are skipped too: [[1],[2],3] */
	{
		static const uint8_t b[] = { 0x93, 0x91, 1, 0x91, 2, 3, 0x7f };

		sl_mp_init(&c, b, sizeof b);
		assert_int_equal(sl_mp_skip(&c), 0);
		assert_int_equal(c.off, 6);
	}
}

static void
test_reserved_byte_and_empty(void **state)
{
	static const uint8_t c1[] = { 0xc1 };
	uint64_t u = 3;
	sl_mp c;

	(void)state;
	sl_mp_init(&c, c1, sizeof c1);
	assert_int_equal(sl_mp_skip(&c), SL_EFORMAT);
	assert_int_equal(sl_mp_u64(&c, &u), SL_EFORMAT);
	assert_int_equal(sl_mp_nil(&c), 0);
	sl_mp_init(&c, NULL, 0);
	assert_int_equal(sl_mp_left(&c), 0);
	assert_int_equal(sl_mp_u64(&c, &u), SL_EFORMAT);
	assert_int_equal(sl_mp_skip(&c), SL_EFORMAT);
	assert_string_equal(sl_mp_type_name(&c), "end of input");
	assert_true(u == 3);
}

static void
test_streq(void **state)
{
	(void)state;
	assert_true(sl_mp_streq((const uint8_t *)"blob", 4, "blob"));
	assert_false(sl_mp_streq((const uint8_t *)"blob", 3, "blob"));
	assert_false(sl_mp_streq((const uint8_t *)"blobs", 5, "blob"));
	assert_false(sl_mp_streq((const uint8_t *)"blub", 4, "blob"));
	assert_true(sl_mp_streq(NULL, 0, ""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unsigned_boundaries),
		cmocka_unit_test(test_u32_max_argument),
		cmocka_unit_test(test_signed_boundaries),
		cmocka_unit_test(test_signed_formats_with_positive_values),
		cmocka_unit_test(test_floats_bool_nil),
		cmocka_unit_test(test_str_bin_boundaries),
		cmocka_unit_test(test_containers_boundaries),
		cmocka_unit_test(test_truncation_of_every_prefix),
		cmocka_unit_test(test_ext_refused_by_typed_readers),
		cmocka_unit_test(test_huge_claims_fail_fast),
		cmocka_unit_test(test_counts_against_bytes_left),
		cmocka_unit_test(test_skip_depth_limit),
		cmocka_unit_test(test_reserved_byte_and_empty),
		cmocka_unit_test(test_streq),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

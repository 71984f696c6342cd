/* fuzz_msgpack.c - the sl_mp cursor on arbitrary bytes.
 *
 * Two walks over each input:
 *   - sl_mp_skip value after value until it fails or the input ends;
 *   - a typed walk: at each position try every typed reader in turn and
 *     take the first that succeeds (containers are entered by reading their
 *     header and then their elements), falling back to sl_mp_skip.
 * Properties: a reader that fails leaves the cursor where it was; one that
 * succeeds moves it forward and never past the end; str and bin results
 * point inside the input; the skip walk and the typed walk agree on where
 * the top-level values end. */
#include "fuzz.h"

#include "sl_msgpack.h"

#include <string.h>

#define STEP(call) do { \
	size_t before_ = c->off; \
	int rc_ = (call); \
	if (rc_ != 0) { \
		FUZZ_CHECK(c->off == before_); \
	} else { \
		FUZZ_CHECK(c->off > before_ && c->off <= c->len); \
		return 0; \
	} \
} while (0)

/* Read one value (any type) with the typed readers; returns 0 or -1 when
 * nothing reads it. Containers recurse, at most depth deep. */
static int
value(sl_mp *c, int depth)
{
	uint32_t n, u32;
	uint64_t u;
	int64_t i;
	double d;
	int b;
	const uint8_t *s;
	size_t len, before = c->off;

	(void)sl_mp_type_name(c);
	if (depth < SL_MP_MAX_DEPTH && sl_mp_map(c, &n) == 0) {
		FUZZ_CHECK(n <= sl_mp_left(c) / 2);
		for (uint32_t k = 0; k < 2 * n; k++)
			if (value(c, depth + 1) != 0)
				return -1;
		return 0;
	}
	FUZZ_CHECK(c->off == before);
	if (depth < SL_MP_MAX_DEPTH && sl_mp_array(c, &n) == 0) {
		FUZZ_CHECK(n <= sl_mp_left(c));
		for (uint32_t k = 0; k < n; k++)
			if (value(c, depth + 1) != 0)
				return -1;
		return 0;
	}
	FUZZ_CHECK(c->off == before);
	STEP(sl_mp_u32(c, &u32, 1000));
	STEP(sl_mp_u64(c, &u));
	STEP(sl_mp_i64(c, &i));
	STEP(sl_mp_f64(c, &d));
	STEP(sl_mp_bool(c, &b));
	if (sl_mp_str(c, &s, &len) == 0) {
		FUZZ_CHECK(s >= c->p && len <= c->len && s + len <= c->p + c->off);
		(void)sl_mp_streq(s, len, "teacher");
		return 0;
	}
	FUZZ_CHECK(c->off == before);
	if (sl_mp_bin(c, &s, &len) == 0) {
		FUZZ_CHECK(s >= c->p && len <= c->len && s + len <= c->p + c->off);
		return 0;
	}
	FUZZ_CHECK(c->off == before);
	if (sl_mp_nil(c) == 1)
		return 0;
	FUZZ_CHECK(c->off == before);
	STEP(sl_mp_skip(c));
	return -1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sl_mp a, t;
	size_t ends[64];
	size_t nends = 0;

	sl_mp_init(&a, data, size);
	while (sl_mp_left(&a) > 0) {
		size_t before = a.off;

		if (sl_mp_skip(&a) != 0) {
			FUZZ_CHECK(a.off == before);
			break;
		}
		FUZZ_CHECK(a.off > before && a.off <= size);
		if (nends < sizeof ends / sizeof ends[0])
			ends[nends++] = a.off;
	}

	/* Where skip and the typed walk both read a whole top-level value,
	 * they must end it at the same byte. */
	sl_mp_init(&t, data, size);
	for (size_t k = 0; sl_mp_left(&t) > 0; k++) {
		size_t before = t.off;

		if (value(&t, 1) != 0)
			break;
		FUZZ_CHECK(t.off > before && t.off <= size);
		if (k < nends)
			FUZZ_CHECK(t.off == ends[k]);
	}
	return 0;
}

/* The RNG: a saved state replays the stream exactly; ranges and shuffles. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "sl_rng.h"

static void
test_saved_state_replays_stream(void **state)
{
	sl_rng a, b;
	uint64_t first[16];

	(void)state;
	sl_rng_seed(&a, 42);
	for (int i = 0; i < 100; i++)
		(void)sl_rng_u64(&a);
	b = a; /* the checkpoint: four words */
	for (int i = 0; i < 16; i++)
		first[i] = sl_rng_u64(&a);
	for (int i = 0; i < 16; i++)
		assert_true(sl_rng_u64(&b) == first[i]);
	sl_rng_seed(&a, 42);
	sl_rng_seed(&b, 43);
	assert_true(sl_rng_u64(&a) != sl_rng_u64(&b));
}

static void
test_float_and_below_ranges(void **state)
{
	sl_rng r;
	int hist[7] = { 0 };

	(void)state;
	sl_rng_seed(&r, 7);
	for (int i = 0; i < 70000; i++) {
		const float f = sl_rng_float(&r);

		assert_true(f >= 0.0f && f < 1.0f);
		hist[sl_rng_below(&r, 7)]++;
	}
	/* 10000 expected per bucket; sd 93. */
	for (int k = 0; k < 7; k++)
		assert_true(hist[k] > 9500 && hist[k] < 10500);
}

static void
test_shuffle_is_a_permutation(void **state)
{
	size_t idx[1000];
	int seen[1000] = { 0 }, moved = 0;
	sl_rng r;

	(void)state;
	for (size_t i = 0; i < 1000; i++)
		idx[i] = i;
	sl_rng_seed(&r, 9);
	sl_rng_shuffle(&r, idx, 1000);
	for (size_t i = 0; i < 1000; i++) {
		assert_true(idx[i] < 1000);
		seen[idx[i]]++;
		moved += idx[i] != i;
	}
	for (int i = 0; i < 1000; i++)
		assert_int_equal(seen[i], 1);
	assert_true(moved > 900);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_saved_state_replays_stream),
		cmocka_unit_test(test_float_and_below_ranges),
		cmocka_unit_test(test_shuffle_is_a_permutation),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The per-address table (broker/peer.c) alone: the token bucket (burst,
 * refill at the rate, capped at the burst), the session bound and what
 * frees it, the bound on pending connections, eviction of the entry idle
 * longest, a table full of live entries, and a seeded random run checking that every entry stays
 * findable through insertions and evictions (the hash's backward-shift
 * deletion). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../../broker/peer.h"
#include "sl_rng.h"

/* HELLOs from addr at now_ms until the first refusal (at most max):
 * how many were let through. */
static int
hellos_until_refused(peer_table *t, const char *addr, uint64_t now_ms, int max)
{
	uint32_t idx;
	int n = 0;

	while (n < max && peer_hello(t, addr, 0, now_ms, &idx) == PEER_OK)
		n++;
	return n;
}

static void
test_peer_init_invalid(void **state)
{
	peer_table t;

	(void)state;
	assert_int_equal(peer_table_init(&t, 0, 1, 0, 1, 1), EINVAL);
	assert_int_equal(peer_table_init(&t, 4, 1, 0, -1, 1), EINVAL);
	assert_int_equal(peer_table_init(&t, 4, 1, 0, 2, 0.5), EINVAL);
	assert_int_equal(peer_table_init(&t, 4, 1, 0, 0, 0), 0); /* no rate */
	peer_table_fini(&t);
	peer_table_fini(&t); /* twice is harmless */
}

static void
test_peer_bucket_burst_and_refill(void **state)
{
	peer_table t;
	uint32_t idx;

	(void)state;
	assert_int_equal(peer_table_init(&t, 8, 0, 0, 10, 5), 0);
	/* A new address starts with a full bucket: the burst, then RATE. */
	assert_int_equal(hellos_until_refused(&t, "10.0.0.1", 1000, 100), 5);
	assert_int_equal(peer_hello(&t, "10.0.0.1", 0, 1000, &idx), PEER_RATE);
	/* 10 per second: one token per 100 ms, none after 99 ms. */
	assert_int_equal(peer_hello(&t, "10.0.0.1", 0, 1099, &idx), PEER_RATE);
	assert_int_equal(peer_hello(&t, "10.0.0.1", 0, 1100, &idx), PEER_OK);
	assert_int_equal(peer_hello(&t, "10.0.0.1", 0, 1100, &idx), PEER_RATE);
	/* 350 ms: 3.5 tokens, so 3 now and the half is kept. */
	assert_int_equal(hellos_until_refused(&t, "10.0.0.1", 1450, 100), 3);
	assert_int_equal(peer_hello(&t, "10.0.0.1", 0, 1500, &idx), PEER_OK);
	/* A long silence refills to the burst, not past it. */
	assert_int_equal(hellos_until_refused(&t, "10.0.0.1", 100000, 100), 5);
	/* Another address has a bucket of its own. */
	assert_int_equal(hellos_until_refused(&t, "10.0.0.2", 100000, 100), 5);
	/* A clock that goes back adds nothing and takes nothing. */
	assert_int_equal(peer_hello(&t, "10.0.0.1", 0, 50000, &idx), PEER_RATE);
	peer_table_fini(&t);
}

static void
test_peer_rate_off(void **state)
{
	peer_table t;

	(void)state;
	assert_int_equal(peer_table_init(&t, 8, 0, 0, 0, 0), 0);
	assert_int_equal(hellos_until_refused(&t, "::1", 0, 10000), 10000);
	peer_table_fini(&t);
}

static void
test_peer_session_bound(void **state)
{
	peer_table t;
	uint32_t idx, first = 99;

	(void)state;
	assert_int_equal(peer_table_init(&t, 8, 3, 0, 0, 0), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(peer_hello(&t, "127.0.0.2", 1, 10, &idx), PEER_OK);
		if (i == 0)
			first = idx;
		assert_int_equal(idx, first);
		peer_session_add(&t, idx);
	}
	assert_int_equal(peer_find(&t, "127.0.0.2")->sessions, 3);
	/* The fourth new session is refused, and idx still names the entry. */
	idx = 99;
	assert_int_equal(peer_hello(&t, "127.0.0.2", 1, 11, &idx), PEER_SESSIONS);
	assert_int_equal(idx, first);
	/* A HELLO replacing a session on its connection is not a new one. */
	assert_int_equal(peer_hello(&t, "127.0.0.2", 0, 12, &idx), PEER_OK);
	/* Other addresses are not held back by this one. */
	assert_int_equal(peer_hello(&t, "127.0.0.1", 1, 12, &idx), PEER_OK);
	assert_int_not_equal(idx, first);
	/* A session that ends makes room for one more. */
	peer_session_drop(&t, first, 20);
	assert_int_equal(peer_find(&t, "127.0.0.2")->sessions, 2);
	assert_int_equal(peer_hello(&t, "127.0.0.2", 1, 21, &idx), PEER_OK);
	peer_session_add(&t, idx);
	assert_int_equal(peer_hello(&t, "127.0.0.2", 1, 22, &idx), PEER_SESSIONS);
	peer_table_fini(&t);
}

static void
test_peer_session_refusal_takes_a_token(void **state)
{
	peer_table t;
	uint32_t idx;

	(void)state;
	assert_int_equal(peer_table_init(&t, 4, 1, 0, 1, 3), 0);
	assert_int_equal(peer_hello(&t, "a", 1, 0, &idx), PEER_OK);
	peer_session_add(&t, idx);
	assert_int_equal(peer_hello(&t, "a", 1, 0, &idx), PEER_SESSIONS);
	assert_int_equal(peer_hello(&t, "a", 1, 0, &idx), PEER_SESSIONS);
	/* Three tokens spent: the next is refused for the rate first. */
	assert_int_equal(peer_hello(&t, "a", 1, 0, &idx), PEER_RATE);
	peer_table_fini(&t);
}

static void
test_peer_eviction_oldest_idle(void **state)
{
	peer_table t;
	uint32_t idx;

	(void)state;
	assert_int_equal(peer_table_init(&t, 3, 0, 0, 1, 2), 0);
	assert_int_equal(peer_hello(&t, "a", 1, 100, &idx), PEER_OK);
	peer_session_add(&t, idx); /* a is live: never evicted */
	assert_int_equal(peer_hello(&t, "b", 1, 200, &idx), PEER_OK);
	assert_int_equal(peer_hello(&t, "c", 1, 300, &idx), PEER_OK);
	assert_int_equal(peer_hello(&t, "b", 1, 400, &idx), PEER_OK);
	/* b used at 400, c at 300: a new address takes c's entry. */
	assert_int_equal(peer_hello(&t, "d", 1, 500, &idx), PEER_OK);
	assert_int_equal(t.evicted, 1);
	assert_int_equal(t.n, 3);
	assert_null(peer_find(&t, "c"));
	assert_non_null(peer_find(&t, "a"));
	assert_non_null(peer_find(&t, "b"));
	assert_non_null(peer_find(&t, "d"));
	/* An evicted address comes back with a fresh bucket (its history is
	 * gone: the table bounds memory, not the number of addresses). */
	assert_int_equal(hellos_until_refused(&t, "c", 600, 100), 2);
	assert_int_equal(t.evicted, 2);
	assert_null(peer_find(&t, "b")); /* b at 400 was the oldest idle */
	assert_non_null(peer_find(&t, "a"));
	peer_table_fini(&t);
}

static void
test_peer_full_of_live_entries(void **state)
{
	peer_table t;
	uint32_t idx;
	const char *addrs[] = { "a", "b" };

	(void)state;
	assert_int_equal(peer_table_init(&t, 2, 0, 0, 0, 0), 0);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(peer_hello(&t, addrs[i], 1, 1, &idx), PEER_OK);
		peer_session_add(&t, idx);
	}
	assert_int_equal(peer_hello(&t, "c", 1, 2, &idx), PEER_FULL);
	assert_int_equal(t.evicted, 0);
	assert_null(peer_find(&t, "c"));
	/* Known addresses still get through. */
	assert_int_equal(peer_hello(&t, "a", 1, 3, &idx), PEER_OK);
	/* Once b's last session ends, c takes its entry. */
	peer_session_drop(&t, peer_find(&t, "b") - t.e, 4);
	assert_int_equal(peer_hello(&t, "c", 1, 5, &idx), PEER_OK);
	assert_null(peer_find(&t, "b"));
	assert_int_equal(t.evicted, 1);
	peer_table_fini(&t);
}

/* Pending connections: bounded per address, freed one by one, taking no
 * HELLO token; an address with a pending connection is live (never
 * evicted), and a HELLO of a known address still gets through. */
static void
test_peer_pending_bound(void **state)
{
	peer_table t;
	uint32_t idx, a_idx;

	(void)state;
	assert_int_equal(peer_table_init(&t, 2, 0, 3, 1, 1), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(peer_connect(&t, "a", 1, &a_idx), PEER_OK);
	assert_int_equal(peer_connect(&t, "a", 2, &idx), PEER_PENDING);
	assert_int_equal(t.e[a_idx].pending, 3);
	assert_int_equal(peer_hello(&t, "a", 1, 2, &idx), PEER_OK); /* its token */
	assert_int_equal(idx, a_idx);
	peer_pending_drop(&t, a_idx, 3);
	assert_int_equal(peer_connect(&t, "a", 3, &idx), PEER_OK);
	assert_int_equal(peer_connect(&t, "a", 3, &idx), PEER_PENDING);
	/* b is idle once its one connection is gone: c evicts it, not a. */
	assert_int_equal(peer_connect(&t, "b", 4, &idx), PEER_OK);
	assert_int_equal(peer_connect(&t, "c", 5, &idx), PEER_FULL);
	peer_pending_drop(&t, peer_find(&t, "b") - t.e, 6);
	assert_int_equal(peer_connect(&t, "c", 7, &idx), PEER_OK);
	assert_null(peer_find(&t, "b"));
	assert_non_null(peer_find(&t, "a"));
	assert_int_equal(t.evicted, 1);
	/* Unbounded with max_pending 0. */
	peer_table_fini(&t);
	assert_int_equal(peer_table_init(&t, 2, 0, 0, 0, 0), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(peer_connect(&t, "a", 1, &idx), PEER_OK);
	peer_table_fini(&t);
}

static void
test_peer_long_address_cut(void **state)
{
	peer_table t;
	uint32_t idx, idx2;
	char lng[200];

	(void)state;
	memset(lng, '7', sizeof lng - 1);
	lng[sizeof lng - 1] = '\0';
	assert_int_equal(peer_table_init(&t, 2, 0, 0, 0, 0), 0);
	assert_int_equal(peer_hello(&t, lng, 1, 1, &idx), PEER_OK);
	assert_int_equal(strlen(t.e[idx].addr), PEER_ADDR_MAX - 1);
	assert_int_equal(peer_hello(&t, lng, 1, 2, &idx2), PEER_OK);
	assert_int_equal(idx, idx2);
	assert_int_equal(t.n, 1);
	peer_table_fini(&t);
}

/* Random HELLOs, session starts and ends over 64 addresses in a table of
 * 16, against a reference of live sessions per address: the table never
 * holds more than cap entries, never evicts an address with a live
 * session, finds every entry it holds through the hash, and counts
 * sessions as the reference does. */
static void
test_peer_random_against_reference(void **state)
{
	enum { NADDR = 64, CAP = 16, STEPS = 200000 };
	uint32_t live[NADDR] = { 0 }, idx_of[NADDR];
	peer_table t;
	sl_rng rng;
	char name[NADDR][32];
	uint64_t now = 1;
	uint32_t nlive_addrs = 0;

	(void)state;
	sl_rng_seed(&rng, 1515);
	for (unsigned a = 0; a < NADDR; a++)
		snprintf(name[a], sizeof name[a], "10.1.%u.%u", a / 8, a % 8);
	assert_int_equal(peer_table_init(&t, CAP, 4, 0, 0, 0), 0);
	for (int step = 0; step < STEPS; step++) {
		const int a = (int)(sl_rng_below(&rng, NADDR));
		uint32_t idx = 0;

		now += sl_rng_below(&rng, 3);
		if (live[a] > 0 && sl_rng_below(&rng, 2) == 0) {
			peer_session_drop(&t, idx_of[a], now);
			if (--live[a] == 0)
				nlive_addrs--;
		} else {
			enum peer_verdict v = peer_hello(&t, name[a], 1, now, &idx);

			if (live[a] > 0)
				assert_int_equal(idx, idx_of[a]);
			if (live[a] >= 4)
				assert_int_equal(v, PEER_SESSIONS);
			else if (live[a] == 0 && nlive_addrs == CAP &&
			    peer_find(&t, name[a]) == NULL)
				assert_int_equal(v, PEER_FULL);
			else
				assert_int_equal(v, PEER_OK);
			if (v == PEER_OK) {
				peer_session_add(&t, idx);
				idx_of[a] = idx;
				if (live[a]++ == 0)
					nlive_addrs++;
			}
		}
		assert_true(t.n <= CAP);
		for (int b = 0; b < NADDR; b++) {
			const peer_entry *p = peer_find(&t, name[b]);

			if (live[b] > 0) {
				assert_non_null(p);
				assert_ptr_equal(p, &t.e[idx_of[b]]);
				assert_int_equal(p->sessions, live[b]);
			} else if (p != NULL) {
				assert_int_equal(p->sessions, 0);
			}
		}
		{
			uint32_t used = 0;

			for (uint32_t i = 0; i < t.cap; i++)
				if (t.e[i].used) {
					used++;
					assert_ptr_equal(peer_find(&t, t.e[i].addr),
					    &t.e[i]);
				}
			assert_int_equal(used, t.n);
		}
	}
	assert_true(t.evicted > 0);
	peer_table_fini(&t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_peer_init_invalid),
		cmocka_unit_test(test_peer_bucket_burst_and_refill),
		cmocka_unit_test(test_peer_rate_off),
		cmocka_unit_test(test_peer_session_bound),
		cmocka_unit_test(test_peer_session_refusal_takes_a_token),
		cmocka_unit_test(test_peer_eviction_oldest_idle),
		cmocka_unit_test(test_peer_full_of_live_entries),
		cmocka_unit_test(test_peer_pending_bound),
		cmocka_unit_test(test_peer_long_address_cut),
		cmocka_unit_test(test_peer_random_against_reference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

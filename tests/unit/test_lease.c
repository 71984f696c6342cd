/* The lease core (broker/lease.c) alone: directed cases for each transition,
 * then a seeded randomized run against a reference model that knows only
 * the rules (which shard may be leased, when it expires, what a result may
 * do, what a commit and a restart keep), not the implementation's search
 * order. After every step the table must equal the model slot for slot,
 * and its counters must count its slots. Across the whole run no shard is
 * stored twice, and driving the table to the end loses none. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../../broker/lease.h"
#include "sl_rng.h"

/* --- directed cases -------------------------------------------------------- */

static void
test_lease_commit_done(void **state)
{
	lease_table t;
	uint32_t prev = 99;

	(void)state;
	assert_int_equal(lease_init(&t, 3, 5), 0);
	assert_int_equal(lease_take(&t, 7, 1000), 0);
	assert_int_equal(lease_take(&t, 8, 1000), 1);
	assert_int_equal(t.nleased, 2);
	assert_int_equal(lease_holder(&t, 0), 7);
	assert_int_equal(lease_holder(&t, 2), 0);
	assert_int_equal(lease_check(&t, 0, 7, 0), LEASE_ACCEPT);
	assert_int_equal(lease_check(&t, 0, 8, 0), LEASE_NOT_LEASED);
	assert_int_equal(lease_check(&t, 0, 8, 1), LEASE_ACCEPT);
	assert_int_equal(lease_check(&t, 3, 7, 1), LEASE_UNKNOWN_SHARD);
	lease_begin_commit(&t, 0, &prev);
	assert_int_equal(prev, 7);
	assert_int_equal(t.nleased, 1);
	assert_int_equal(lease_check(&t, 0, 7, 0), LEASE_DUP_COMMITTING);
	lease_committed(&t, 0, 1);
	assert_int_equal(t.ndone, 1);
	assert_int_equal(lease_check(&t, 0, 7, 0), LEASE_DUP_DONE);
	assert_false(lease_finished(&t));
	lease_fini(&t);
	assert_null(t.slots);
}

static void
test_expiry_requeues_then_quarantines(void **state)
{
	lease_table t;
	uint32_t prev = 0;

	(void)state;
	assert_int_equal(lease_init(&t, 2, 2), 0);
	assert_int_equal(lease_take(&t, 1, 100), 0);
	assert_int_equal(lease_next_expired(&t, 0, 99), -1);
	assert_int_equal(lease_next_expired(&t, 0, 100), 0);
	assert_int_equal(lease_return(&t, 0, 1, &prev), SHARD_PENDING);
	assert_int_equal(prev, 1);
	assert_int_equal(lease_return(&t, 0, 1, &prev), -1); /* not leased */
	/* A returned shard is leased again before one never leased. */
	assert_int_equal(lease_take(&t, 2, 200), 0);
	assert_int_equal(t.slots[0].attempts, 2);
	/* Second attempt of two: no room for the quarantine record yet. */
	assert_int_equal(lease_return(&t, 0, 0, &prev), SHARD_PENDING);
	assert_int_equal(lease_take(&t, 2, 300), 0);
	assert_int_equal(lease_return(&t, 0, 1, &prev), SHARD_QUARANTINED);
	assert_int_equal(t.nquarantined, 1);
	assert_int_equal(lease_check(&t, 0, 2, 1), LEASE_IS_QUARANTINED);
	assert_int_equal(lease_take(&t, 2, 300), 1);
	assert_int_equal(lease_take(&t, 2, 300), -1);
	lease_begin_commit(&t, 1, &prev);
	lease_committed(&t, 1, 1);
	assert_true(lease_finished(&t));
	lease_fini(&t);
}

static void
test_failed_commit_and_granted_result(void **state)
{
	lease_table t;
	uint32_t prev = 5;

	(void)state;
	assert_int_equal(lease_init(&t, 4, 5), 0);
	/* A result held across a reconnect for a shard back in the queue. */
	assert_int_equal(lease_check(&t, 2, 9, 1), LEASE_ACCEPT);
	lease_begin_commit(&t, 2, &prev);
	assert_int_equal(prev, 0);
	lease_committed(&t, 2, 0);            /* the transaction failed */
	assert_int_equal(t.slots[2].state, SHARD_PENDING);
	/* A failed store gives the shard back to its sender, leased. */
	assert_int_equal(lease_check(&t, 2, 9, 1), LEASE_ACCEPT);
	lease_begin_commit(&t, 2, &prev);
	lease_commit_retry(&t, 2, 9, 700);
	assert_int_equal(lease_holder(&t, 2), 9);
	assert_int_equal(t.nleased, 1);
	assert_int_equal(lease_next_expired(&t, 0, 700), 2);
	lease_begin_commit(&t, 2, &prev);
	assert_int_equal(prev, 9);
	lease_commit_retry(&t, 2, 0, 700);    /* its session is gone */
	assert_int_equal(t.slots[2].state, SHARD_PENDING);
	assert_int_equal(t.nleased, 0);
	assert_int_equal(t.ndone, 0);
	lease_committed(&t, 2, 1);            /* not committing: no-op */
	assert_int_equal(t.ndone, 0);
	lease_fini(&t);
}

static void
test_handover_and_renewal(void **state)
{
	lease_table t;

	(void)state;
	assert_int_equal(lease_init(&t, 3, 5), 0);
	assert_int_equal(lease_take(&t, 1, 100), 0);
	assert_int_equal(lease_take(&t, 1, 100), 1);
	assert_int_equal(lease_renew(&t, 0, 2, 500), 0);  /* not its lease */
	assert_int_equal(lease_renew(&t, 0, 1, 500), 1);
	assert_int_equal(lease_renew(&t, 7, 1, 500), 0);  /* no such shard */
	assert_int_equal(lease_move(&t, 1, 1, 3, 600), 1);
	assert_int_equal(lease_move(&t, 1, 1, 3, 600), 0);
	assert_int_equal(lease_holder(&t, 1), 3);
	assert_int_equal(lease_next_owned(&t, 0, 1), 0);
	assert_int_equal(lease_next_owned(&t, 1, 1), -1);
	assert_int_equal(lease_next_expired(&t, 0, 499), -1);
	assert_int_equal(lease_next_expired(&t, 0, 500), 0);  /* renewed */
	assert_int_equal(lease_next_expired(&t, 1, 599), -1); /* moved */
	assert_int_equal(lease_next_expired(&t, 1, 600), 1);
	lease_fini(&t);
}

static void
test_restore_after_restart(void **state)
{
	lease_table t;

	(void)state;
	assert_int_equal(lease_init(&t, 3, 5), 0);
	lease_restore(&t, 0, SHARD_DONE);
	lease_restore(&t, 1, SHARD_QUARANTINED);
	lease_restore(&t, 1, SHARD_DONE);       /* once only */
	lease_restore(&t, 9, SHARD_DONE);       /* out of range: ignored */
	assert_int_equal(t.ndone, 1);
	assert_int_equal(t.nquarantined, 1);
	assert_int_equal(lease_take(&t, 1, 10), 2);
	assert_int_equal(lease_take(&t, 1, 10), -1);
	lease_fini(&t);
}

/* An audit: the second opinion goes to another identity only; agreement
 * ends it; a dispute withholds the shard until a third identity settles it;
 * the identity proven wrong is purged. */
static void
test_audit_dispute_and_purge(void **state)
{
	lease_table t;
	uint32_t prev = 0;

	(void)state;
	assert_int_equal(lease_init(&t, 3, 5), 0);
	for (uint64_t s = 0; s < 3; s++) {
		assert_int_equal(lease_take(&t, 1, 100), (int64_t)s);
		lease_begin_commit(&t, s, &prev);
		lease_committed(&t, s, 1);
		lease_done_by(&t, s, 10, s < 2); /* identity 10; audit 0, 1 */
	}
	assert_int_equal(t.naudits, 2);
	assert_true(lease_finished(&t));
	assert_int_equal(lease_take_audit(&t, 1, 10, 100), -1); /* its own */
	assert_false(lease_audit_available(&t, 10));
	assert_true(lease_audit_available(&t, 20));
	assert_int_equal(lease_take_audit(&t, 2, 20, 100), 0);
	assert_int_equal(lease_check(&t, 0, 2, 0), LEASE_AUDIT);
	assert_int_equal(lease_check(&t, 0, 1, 0), LEASE_DUP_DONE);
	assert_int_equal(lease_renew(&t, 0, 2, 150), 1);
	lease_audit_pass(&t, 0);
	assert_int_equal(t.naudits, 1);
	assert_int_equal(lease_check(&t, 0, 2, 0), LEASE_DUP_DONE);
	/* shard 1: leased, expired, leased again, disputed */
	assert_int_equal(lease_take_audit(&t, 2, 20, 100), 1);
	assert_int_equal(lease_audit_next(&t, 0, 0, 99), -1);
	assert_int_equal(lease_audit_next(&t, 0, 2, 0), 1);
	assert_int_equal(lease_audit_next(&t, 0, 0, 150), 1);
	assert_int_equal(lease_audit_return(&t, 1, &prev), 1);
	assert_int_equal(prev, 2);
	assert_int_equal(lease_take_audit(&t, 3, 20, 200), 1);
	lease_audit_dispute(&t, 1, 20);
	assert_int_equal(t.slots[1].state, SHARD_DISPUTED);
	assert_int_equal(t.ndone, 2);
	assert_false(lease_finished(&t));
	assert_int_equal(lease_check(&t, 1, 1, 1), LEASE_NOT_LEASED);
	assert_int_equal(lease_take(&t, 4, 300), -1); /* not pending */
	assert_int_equal(lease_take_audit(&t, 4, 10, 300), -1);
	assert_int_equal(lease_take_audit(&t, 4, 20, 300), -1);
	assert_int_equal(lease_take_audit(&t, 4, 30, 300), 1);
	assert_int_equal(lease_check(&t, 1, 4, 0), LEASE_THIRD);
	lease_audit_settle(&t, 1, 1, &prev);
	assert_int_equal(prev, 4);
	assert_int_equal(t.slots[1].state, SHARD_COMMITTING);
	lease_committed(&t, 1, 1);
	lease_done_by(&t, 1, 30, 0);
	assert_int_equal(t.naudits, 0);
	assert_int_equal(t.ndisputed, 0);
	/* identity 10 proven wrong: its shards 0 and 2 go back */
	assert_int_equal(lease_next_by(&t, 0, 10), 0);
	assert_int_equal(lease_purge(&t, 0), 1);
	assert_int_equal(lease_next_by(&t, 1, 10), 2);
	assert_int_equal(lease_purge(&t, 2), 1);
	assert_int_equal(lease_next_by(&t, 0, 10), -1);
	assert_int_equal(lease_purge(&t, 1 + 1), 0);
	assert_int_equal(t.ndone, 1);
	assert_int_equal(lease_take(&t, 5, 400), 0);
	assert_int_equal(lease_take(&t, 5, 400), 2);
	lease_fini(&t);
}

/* A third opinion that agrees with neither quarantines the shard. */
static void
test_audit_third_agrees_with_neither(void **state)
{
	lease_table t;
	uint32_t prev = 0;

	(void)state;
	assert_int_equal(lease_init(&t, 1, 5), 0);
	assert_int_equal(lease_take(&t, 1, 100), 0);
	lease_begin_commit(&t, 0, &prev);
	lease_committed(&t, 0, 1);
	lease_done_by(&t, 0, 10, 1);
	assert_int_equal(lease_take_audit(&t, 2, 20, 100), 0);
	lease_audit_dispute(&t, 0, 20);
	assert_int_equal(lease_take_audit(&t, 3, 30, 100), 0);
	lease_audit_settle(&t, 0, 0, &prev);
	assert_int_equal(t.slots[0].state, SHARD_QUARANTINED);
	assert_int_equal(t.nquarantined, 1);
	assert_int_equal(t.naudits, 0);
	assert_true(lease_finished(&t));
	lease_fini(&t);
}

/* --- randomized, against a reference model ---------------------------------- */

#define NSHARDS 24
#define NOWNERS 4         /* tokens 1..NOWNERS */
#define MAX_ATTEMPTS 3
#define STEPS 4000
#define NSEEDS 25

typedef struct model {
	uint8_t state[NSHARDS];
	uint8_t attempts[NSHARDS];
	uint32_t owner[NSHARDS];
	uint64_t deadline[NSHARDS];
	uint8_t durable[NSHARDS];     /* what the cache holds: DONE, QUARANTINED
	                                 or PENDING (absent) */
	uint8_t quarantine_pending[NSHARDS]; /* decided, not yet committed */
	uint8_t in_group[NSHARDS];    /* COMMITTING: in the commit group */
	unsigned stored[NSHARDS];     /* times a commit stored the shard */
	uint32_t sender[NSHARDS];     /* in_group: whose result (identity) */
	uint8_t audit[NSHARDS];       /* enum audit_stage */
	uint32_t by[NSHARDS], by2[NSHARDS];
	uint64_t now;
} model;

typedef struct run {
	uint64_t seed;
	int step;
	const char *op;
} run;

/* Fail with the seed, the step and the operation: enough to replay it. */
#define CHECK(r, cond)                                                         \
	do {                                                                   \
		if (!(cond)) {                                                 \
			print_error("seed %" PRIu64 " step %d op %s: %s\n",    \
			    (r)->seed, (r)->step, (r)->op, #cond);             \
			fail();                                                \
		}                                                              \
	} while (0)

static void
check_equal(const run *r, const lease_table *t, const model *m)
{
	uint64_t done = 0, leased = 0, quarantined = 0, disputed = 0, audits = 0;

	for (int s = 0; s < NSHARDS; s++) {
		const shard_slot *slot = &t->slots[s];

		CHECK(r, slot->state == m->state[s]);
		CHECK(r, slot->attempts == m->attempts[s]);
		CHECK(r, slot->audit == m->audit[s]);
		if (m->state[s] == SHARD_DONE || m->state[s] == SHARD_DISPUTED)
			CHECK(r, slot->by == m->by[s]);
		if (m->state[s] == SHARD_DISPUTED)
			CHECK(r, slot->by2 == m->by2[s]);
		if (m->audit[s] == AUDIT_LEASED || m->audit[s] == AUDIT_THIRD_LEASED) {
			CHECK(r, slot->owner == m->owner[s]);
			CHECK(r, slot->deadline_ms == m->deadline[s]);
			CHECK(r, lease_holder(t, (uint64_t)s) == 0);
		} else if (m->state[s] == SHARD_LEASED) {
			CHECK(r, slot->owner == m->owner[s]);
			CHECK(r, slot->deadline_ms == m->deadline[s]);
			CHECK(r, lease_holder(t, (uint64_t)s) == m->owner[s]);
		} else {
			CHECK(r, lease_holder(t, (uint64_t)s) == 0);
		}
		done += m->state[s] == SHARD_DONE;
		leased += m->state[s] == SHARD_LEASED;
		quarantined += m->state[s] == SHARD_QUARANTINED;
		disputed += m->state[s] == SHARD_DISPUTED;
		audits += m->audit[s] != AUDIT_NONE;
		CHECK(r, m->stored[s] <= 1);  /* nothing twice */
		/* a disputed shard is not in the cache */
		CHECK(r, m->state[s] != SHARD_DISPUTED || m->durable[s] ==
		    SHARD_PENDING);
	}
	CHECK(r, t->ndisputed == disputed);
	CHECK(r, t->naudits == audits);
	CHECK(r, t->ndone == done);
	CHECK(r, t->nleased == leased);
	CHECK(r, t->nquarantined == quarantined);
	CHECK(r, lease_finished(t) == (done + quarantined == NSHARDS));
}

static int
model_pending(const model *m)
{
	for (int s = 0; s < NSHARDS; s++)
		if (m->state[s] == SHARD_PENDING)
			return 1;
	return 0;
}

static void
op_take(run *r, lease_table *t, model *m, uint32_t owner)
{
	const uint64_t deadline = m->now + 1 + (uint64_t)(owner * 37 % 200);
	const int any = model_pending(m);
	const int64_t s = lease_take(t, owner, deadline);

	r->op = "take";
	CHECK(r, (s >= 0) == any);
	if (s < 0)
		return;
	CHECK(r, s < NSHARDS && m->state[s] == SHARD_PENDING);
	m->state[s] = SHARD_LEASED;
	m->owner[s] = owner;
	m->deadline[s] = deadline;
	if (m->attempts[s] < 255)
		m->attempts[s]++;
}

/* The model's rule for a lease that ends without a result. */
static void
model_return(model *m, int s, int may_quarantine)
{
	m->owner[s] = 0;
	if (m->attempts[s] >= MAX_ATTEMPTS && may_quarantine) {
		m->state[s] = SHARD_QUARANTINED;
		m->quarantine_pending[s] = 1;
	} else {
		m->state[s] = SHARD_PENDING;
	}
}

static void
op_expire(run *r, lease_table *t, model *m, sl_rng *rng)
{
	uint8_t seen[NSHARDS] = { 0 };
	int64_t s = 0;
	int bound = 0;

	r->op = "expire";
	while ((s = lease_next_expired(t, (uint64_t)s, m->now)) >= 0 &&
	    bound++ < NSHARDS) {
		const int room = sl_rng_below(rng, 4) != 0;
		uint32_t prev = 0;
		int st;

		CHECK(r, m->state[s] == SHARD_LEASED && m->deadline[s] <= m->now);
		seen[s] = 1;
		st = lease_return(t, (uint64_t)s, room, &prev);
		CHECK(r, prev == m->owner[s]);
		model_return(m, (int)s, room);
		CHECK(r, st == m->state[s]);
	}
	/* Every expired lease was found. */
	for (int i = 0; i < NSHARDS; i++)
		CHECK(r, seen[i] || !(m->state[i] == SHARD_LEASED &&
		    m->deadline[i] <= m->now));
}

static void
op_renew(run *r, lease_table *t, model *m, uint32_t owner, int s)
{
	const int want = (m->state[s] == SHARD_LEASED ||
	    m->audit[s] == AUDIT_LEASED || m->audit[s] == AUDIT_THIRD_LEASED) &&
	    m->owner[s] == owner;

	r->op = "renew";
	CHECK(r, lease_renew(t, (uint64_t)s, owner, m->now + 150) == want);
	if (want)
		m->deadline[s] = m->now + 150;
}

/* A worker reconnects as a new session: the leases it still holds move,
 * the others it lost go back (as session.c's take_over does). */
static void
op_handover(run *r, lease_table *t, model *m, uint32_t from, uint32_t to,
    sl_rng *rng)
{
	int64_t s = 0;
	int bound = 0;

	r->op = "handover";
	while ((s = lease_next_owned(t, (uint64_t)s, from)) >= 0 &&
	    bound++ < NSHARDS) {
		CHECK(r, m->state[s] == SHARD_LEASED && m->owner[s] == from);
		if (sl_rng_below(rng, 3) != 0) {
			CHECK(r, lease_move(t, (uint64_t)s, from, to,
			    m->now + 100) == 1);
			m->owner[s] = to;
			m->deadline[s] = m->now + 100;
		} else {
			uint32_t prev = 0;

			CHECK(r, lease_return(t, (uint64_t)s, 1, &prev) >= 0);
			CHECK(r, prev == from);
			model_return(m, (int)s, 1);
		}
	}
	for (int i = 0; i < NSHARDS; i++)
		CHECK(r, !(m->state[i] == SHARD_LEASED && m->owner[i] == from));
}

static enum lease_verdict
model_verdict(const model *m, int s, uint32_t owner, int granted)
{
	if (m->audit[s] == AUDIT_LEASED && m->owner[s] == owner)
		return LEASE_AUDIT;
	if (m->audit[s] == AUDIT_THIRD_LEASED && m->owner[s] == owner)
		return LEASE_THIRD;
	switch (m->state[s]) {
	case SHARD_DISPUTED:
		return LEASE_NOT_LEASED;
	case SHARD_DONE:
		return LEASE_DUP_DONE;
	case SHARD_COMMITTING:
		return LEASE_DUP_COMMITTING;
	case SHARD_QUARANTINED:
		return LEASE_IS_QUARANTINED;
	default:
		return (m->state[s] == SHARD_LEASED && m->owner[s] == owner) ||
		    granted ? LEASE_ACCEPT : LEASE_NOT_LEASED;
	}
}

/* A result arrives (possibly a duplicate, possibly from a worker that held
 * it across a reconnect); an accepted one joins the commit group, a
 * refused one ends the sender's lease (a rejected record, in the broker). */
static void
op_result(run *r, lease_table *t, model *m, uint32_t owner, int s,
    int granted, int bad)
{
	const enum lease_verdict want = model_verdict(m, s, owner, granted);
	uint32_t prev = 0;

	r->op = "result";
	CHECK(r, lease_check(t, (uint64_t)s, owner, granted) == want);
	if (want == LEASE_AUDIT) {
		m->owner[s] = 0;
		if (bad) { /* disagrees: both withheld, the cache's deleted */
			lease_audit_dispute(t, (uint64_t)s, owner);
			m->state[s] = SHARD_DISPUTED;
			m->audit[s] = AUDIT_THIRD;
			m->by2[s] = owner;
			m->durable[s] = SHARD_PENDING;
			m->stored[s]--;
		} else {
			lease_audit_pass(t, (uint64_t)s);
			m->audit[s] = AUDIT_NONE;
		}
		return;
	}
	if (want == LEASE_THIRD) {
		lease_audit_settle(t, (uint64_t)s, !bad, &prev);
		CHECK(r, prev == owner);
		m->owner[s] = 0;
		m->audit[s] = AUDIT_NONE;
		m->by[s] = m->by2[s] = 0;
		if (bad) { /* agrees with neither */
			m->state[s] = SHARD_QUARANTINED;
			m->quarantine_pending[s] = 1;
		} else {
			m->state[s] = SHARD_COMMITTING;
			m->in_group[s] = 1;
			m->sender[s] = owner;
		}
		return;
	}
	if (want != LEASE_ACCEPT)
		return;
	if (bad) {
		if (lease_holder(t, (uint64_t)s) == owner) {
			CHECK(r, lease_return(t, (uint64_t)s, 1, &prev) >= 0);
			model_return(m, s, 1);
		}
		return;
	}
	lease_begin_commit(t, (uint64_t)s, &prev);
	CHECK(r, prev == (m->state[s] == SHARD_LEASED ? m->owner[s] : 0));
	m->state[s] = SHARD_COMMITTING;
	m->owner[s] = 0;
	m->in_group[s] = 1;
	m->sender[s] = owner;
}

/* One transaction: the group and the quarantines decided since the last
 * one, all or nothing (commit.c). A failed one gives each shard back to
 * the worker that sent it (it resends; owner 0: its session is gone). */
static void
op_commit(run *r, lease_table *t, model *m, int ok, sl_rng *rng)
{
	r->op = "commit";
	for (int s = 0; s < NSHARDS; s++) {
		if (m->quarantine_pending[s] && ok)
			m->durable[s] = SHARD_QUARANTINED;
		m->quarantine_pending[s] = 0;
		if (!m->in_group[s])
			continue;
		m->in_group[s] = 0;
		if (ok) {
			const int audit = sl_rng_below(rng, 2) == 0;

			lease_committed(t, (uint64_t)s, 1);
			lease_done_by(t, (uint64_t)s, m->sender[s], audit);
			m->state[s] = SHARD_DONE;
			m->durable[s] = SHARD_DONE;
			m->stored[s]++;
			m->by[s] = m->sender[s];
			m->by2[s] = 0;
			m->audit[s] = audit ? AUDIT_WANTED : AUDIT_NONE;
		} else {
			const uint32_t owner = (uint32_t)sl_rng_below(rng,
			    NOWNERS + 1);

			lease_commit_retry(t, (uint64_t)s, owner, m->now + 50);
			m->state[s] = owner ? SHARD_LEASED : SHARD_PENDING;
			m->owner[s] = owner;
			m->deadline[s] = m->now + 50;
		}
	}
}

/* The broker restarts: leases, attempts and the uncommitted group are
 * gone; what the cache holds comes back. */
static void
op_restart(run *r, lease_table *t, model *m)
{
	r->op = "restart";
	lease_fini(t);
	CHECK(r, lease_init(t, NSHARDS, MAX_ATTEMPTS) == 0);
	for (int s = 0; s < NSHARDS; s++) {
		lease_restore(t, (uint64_t)s, (enum shard_state)m->durable[s]);
		m->state[s] = m->durable[s];
		m->attempts[s] = 0;
		m->owner[s] = 0;
		m->in_group[s] = 0;
		m->quarantine_pending[s] = 0;
		m->audit[s] = AUDIT_NONE;
		m->by[s] = m->by2[s] = 0;
	}
}

/* May identity ident give the opinion shard s wants (the model's rule)? */
static int
model_audit_eligible(const model *m, int s, uint32_t ident)
{
	if (m->state[s] == SHARD_DISPUTED && m->audit[s] == AUDIT_THIRD)
		return ident != m->by[s] && ident != m->by2[s];
	return m->state[s] == SHARD_DONE && m->audit[s] == AUDIT_WANTED &&
	    ident != m->by[s];
}

/* A worker with credit left asks for an audit (identity = its token). */
static void
op_take_audit(run *r, lease_table *t, model *m, uint32_t owner)
{
	const uint64_t deadline = m->now + 1 + (uint64_t)(owner * 53 % 200);
	int any = 0, dispute = 0;
	int64_t s;

	r->op = "take_audit";
	for (int i = 0; i < NSHARDS; i++)
		if (model_audit_eligible(m, i, owner)) {
			any = 1;
			dispute |= m->state[i] == SHARD_DISPUTED;
		}
	CHECK(r, lease_audit_available(t, owner) == any);
	s = lease_take_audit(t, owner, owner, deadline);
	CHECK(r, (s >= 0) == any);
	if (s < 0)
		return;
	CHECK(r, s < NSHARDS && model_audit_eligible(m, (int)s, owner));
	/* disputes first: a withheld shard waits the least */
	CHECK(r, !dispute || m->state[s] == SHARD_DISPUTED);
	m->audit[s] = m->audit[s] == AUDIT_THIRD ? AUDIT_THIRD_LEASED :
	    AUDIT_LEASED;
	m->owner[s] = owner;
	m->deadline[s] = deadline;
}

static void
model_audit_return(model *m, int s)
{
	m->owner[s] = 0;
	m->audit[s] = m->audit[s] == AUDIT_LEASED ? AUDIT_WANTED : AUDIT_THIRD;
}

/* Audit leases past their deadline, or of a session that went away. */
static void
op_audit_expire(run *r, lease_table *t, model *m, uint32_t owner)
{
	int64_t s = 0;
	int bound = 0;
	uint32_t prev = 0;

	r->op = owner ? "audit_drop" : "audit_expire";
	while ((s = lease_audit_next(t, (uint64_t)s, owner, m->now)) >= 0 &&
	    bound++ < NSHARDS) {
		CHECK(r, m->audit[s] == AUDIT_LEASED ||
		    m->audit[s] == AUDIT_THIRD_LEASED);
		CHECK(r, owner ? m->owner[s] == owner : m->deadline[s] <= m->now);
		CHECK(r, lease_audit_return(t, (uint64_t)s, &prev) == 1);
		CHECK(r, prev == m->owner[s]);
		model_audit_return(m, (int)s);
	}
	for (int i = 0; i < NSHARDS; i++)
		CHECK(r, !((m->audit[i] == AUDIT_LEASED ||
		    m->audit[i] == AUDIT_THIRD_LEASED) && (owner ?
		    m->owner[i] == owner : m->deadline[i] <= m->now)));
}

/* Identity ident is proven wrong: every shard it stored goes back. */
static void
op_purge(run *r, lease_table *t, model *m, uint32_t ident)
{
	int64_t s = 0;
	int bound = 0;
	uint32_t prev = 0;

	r->op = "purge";
	while ((s = lease_next_by(t, (uint64_t)s, ident)) >= 0 &&
	    bound++ < NSHARDS) {
		CHECK(r, m->state[s] == SHARD_DONE && m->by[s] == ident);
		if (m->audit[s] == AUDIT_LEASED) {
			CHECK(r, lease_audit_return(t, (uint64_t)s, &prev) == 1);
			model_audit_return(m, (int)s);
		}
		CHECK(r, lease_purge(t, (uint64_t)s) == 1);
		m->state[s] = SHARD_PENDING;
		m->audit[s] = AUDIT_NONE;
		m->by[s] = m->by2[s] = 0;
		m->durable[s] = SHARD_PENDING;
		m->stored[s]--;
	}
	for (int i = 0; i < NSHARDS; i++)
		CHECK(r, !(m->state[i] == SHARD_DONE && m->by[i] == ident));
}

/* Honest workers finish the job: every shard ends DONE or QUARANTINED,
 * each DONE one stored exactly once. */
static void
drive_to_end(run *r, lease_table *t, model *m, sl_rng *rng)
{
	for (int round = 0; round < 4 * NSHARDS * MAX_ATTEMPTS &&
	    !lease_finished(t); round++) {
		const uint32_t owner = 1 + (uint32_t)sl_rng_below(rng, NOWNERS);
		int64_t s;

		r->step++;
		op_take(r, t, m, owner);
		op_take_audit(r, t, m, owner);
		while ((s = lease_next_owned(t, 0, owner)) >= 0)
			op_result(r, t, m, owner, (int)s, 0, 0);
		while ((s = lease_audit_next(t, 0, owner, 0)) >= 0)
			op_result(r, t, m, owner, (int)s, 0, 0);
		op_commit(r, t, m, 1, rng);
		check_equal(r, t, m);
	}
	/* Then the audits left (agreeing), one identity after another. */
	for (int round = 0; round < 8 * NSHARDS && t->naudits > 0; round++) {
		const uint32_t owner = 1 + (uint32_t)(round % NOWNERS);
		int64_t s;

		r->step++;
		op_take_audit(r, t, m, owner);
		while ((s = lease_audit_next(t, 0, owner, 0)) >= 0)
			op_result(r, t, m, owner, (int)s, 0, 0);
		op_commit(r, t, m, 1, rng);
		check_equal(r, t, m);
	}
	r->op = "end";
	CHECK(r, lease_finished(t));
	CHECK(r, t->naudits == 0);
	for (int s = 0; s < NSHARDS; s++)
		CHECK(r, m->state[s] == SHARD_QUARANTINED || m->stored[s] == 1);
}

static void
random_run(uint64_t seed)
{
	lease_table t;
	model m;
	sl_rng rng;
	run r = { seed, 0, "init" };

	memset(&m, 0, sizeof m);
	sl_rng_seed(&rng, seed);
	CHECK(&r, lease_init(&t, NSHARDS, MAX_ATTEMPTS) == 0);
	for (r.step = 0; r.step < STEPS; r.step++) {
		const uint32_t owner = 1 + (uint32_t)sl_rng_below(&rng, NOWNERS);
		const int s = (int)sl_rng_below(&rng, NSHARDS);
		const uint64_t op = sl_rng_below(&rng, 100);

		if (op < 25) {
			if (sl_rng_below(&rng, 2) == 0)
				op_take_audit(&r, &t, &m, owner);
			else
				op_take(&r, &t, &m, owner);
		} else if (op < 35) {
			m.now += sl_rng_below(&rng, 120);
			op_expire(&r, &t, &m, &rng);
			op_audit_expire(&r, &t, &m, 0);
		} else if (op < 50) {
			op_renew(&r, &t, &m, owner, s);
		} else if (op < 52) {
			op_handover(&r, &t, &m, owner,
			    owner % NOWNERS + 1, &rng);
			op_audit_expire(&r, &t, &m, owner);
		} else if (op < 53) {
			op_purge(&r, &t, &m, owner);
		} else if (op < 80) {
			int64_t a = lease_audit_next(&t, 0, owner, 0);

			/* half the time, the answer to an audit it holds */
			if (a >= 0 && sl_rng_below(&rng, 3) != 0)
				op_result(&r, &t, &m, owner, (int)a, 0,
				    sl_rng_below(&rng, 2) == 0);
			else
				op_result(&r, &t, &m, owner, s,
				    sl_rng_below(&rng, 8) == 0,
				    sl_rng_below(&rng, 10) == 0);
		} else if (op < 97) {
			op_commit(&r, &t, &m, sl_rng_below(&rng, 6) != 0, &rng);
		} else {
			op_restart(&r, &t, &m);
		}
		check_equal(&r, &t, &m);
	}
	/* What is still committing goes in (or the broker restarts). */
	op_commit(&r, &t, &m, 1, &rng);
	drive_to_end(&r, &t, &m, &rng);
	lease_fini(&t);
}

static void
test_random_against_model(void **state)
{
	(void)state;
	for (uint64_t seed = 1; seed <= NSEEDS; seed++)
		random_run(seed);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lease_commit_done),
		cmocka_unit_test(test_expiry_requeues_then_quarantines),
		cmocka_unit_test(test_failed_commit_and_granted_result),
		cmocka_unit_test(test_handover_and_renewal),
		cmocka_unit_test(test_restore_after_restart),
		cmocka_unit_test(test_audit_dispute_and_purge),
		cmocka_unit_test(test_audit_third_agrees_with_neither),
		cmocka_unit_test(test_random_against_model),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

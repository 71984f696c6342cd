#include "lease.h"
#include "sl_err.h"

#include <stdlib.h>

int
lease_init(lease_table *t, uint64_t nshards, uint32_t max_attempts)
{
	shard_slot *slots = calloc(nshards ? nshards : 1, sizeof *slots);

	if (slots == NULL)
		return SL_ENOMEM;
	*t = (lease_table){ .slots = slots, .nshards = nshards,
	    .max_attempts = max_attempts };
	return 0;
}

void
lease_fini(lease_table *t)
{
	free(t->slots);
	t->slots = NULL;
}

void
lease_restore(lease_table *t, uint64_t s, enum shard_state state)
{
	if (s >= t->nshards || t->slots[s].state != SHARD_PENDING)
		return;
	if (state == SHARD_DONE) {
		t->slots[s].state = SHARD_DONE;
		t->ndone++;
	} else if (state == SHARD_QUARANTINED) {
		t->slots[s].state = SHARD_QUARANTINED;
		t->nquarantined++;
	}
}

int64_t
lease_take(lease_table *t, uint32_t owner, uint64_t deadline_ms)
{
	for (uint64_t i = 0; i < t->nshards; i++) {
		const uint64_t s = (t->scan + i) % t->nshards;
		shard_slot *slot = &t->slots[s];

		if (slot->state != SHARD_PENDING)
			continue;
		t->scan = s + 1;
		slot->state = SHARD_LEASED;
		slot->owner = owner;
		slot->deadline_ms = deadline_ms;
		if (slot->attempts < 255)
			slot->attempts++;
		t->nleased++;
		return (int64_t)s;
	}
	return -1;
}

/* s is back in the queue: the next search starts no later than s, so a
 * returned shard is leased again before those never leased. */
static void
requeue(lease_table *t, uint64_t s)
{
	t->slots[s].state = SHARD_PENDING;
	if (s < t->scan)
		t->scan = s;
}

int
lease_return(lease_table *t, uint64_t s, int may_quarantine,
    uint32_t *prev_owner)
{
	shard_slot *slot;

	if (s >= t->nshards || t->slots[s].state != SHARD_LEASED)
		return -1;
	slot = &t->slots[s];
	*prev_owner = slot->owner;
	slot->owner = 0;
	t->nleased--;
	if (slot->attempts >= t->max_attempts && may_quarantine) {
		slot->state = SHARD_QUARANTINED;
		t->nquarantined++;
		return SHARD_QUARANTINED;
	}
	requeue(t, s);
	return SHARD_PENDING;
}

/* s has an audit lease (second or third opinion). */
static int
audit_leased(const shard_slot *slot)
{
	return slot->audit == AUDIT_LEASED || slot->audit == AUDIT_THIRD_LEASED;
}

int
lease_renew(lease_table *t, uint64_t s, uint32_t owner, uint64_t deadline_ms)
{
	if (s >= t->nshards || t->slots[s].owner != owner || owner == 0 ||
	    (t->slots[s].state != SHARD_LEASED && !audit_leased(&t->slots[s])))
		return 0;
	t->slots[s].deadline_ms = deadline_ms;
	return 1;
}

int
lease_move(lease_table *t, uint64_t s, uint32_t from, uint32_t to,
    uint64_t deadline_ms)
{
	if (s >= t->nshards || t->slots[s].state != SHARD_LEASED ||
	    !lease_renew(t, s, from, deadline_ms))
		return 0;
	t->slots[s].owner = to;
	return 1;
}

uint32_t
lease_holder(const lease_table *t, uint64_t s)
{
	if (s >= t->nshards || t->slots[s].state != SHARD_LEASED)
		return 0;
	return t->slots[s].owner;
}

int64_t
lease_next_owned(const lease_table *t, uint64_t from, uint32_t owner)
{
	for (uint64_t s = from; t->nleased > 0 && s < t->nshards; s++)
		if (t->slots[s].state == SHARD_LEASED && t->slots[s].owner == owner)
			return (int64_t)s;
	return -1;
}

int64_t
lease_next_expired(const lease_table *t, uint64_t from, uint64_t now_ms)
{
	for (uint64_t s = from; t->nleased > 0 && s < t->nshards; s++)
		if (t->slots[s].state == SHARD_LEASED &&
		    t->slots[s].deadline_ms <= now_ms)
			return (int64_t)s;
	return -1;
}

enum lease_verdict
lease_check(const lease_table *t, uint64_t s, uint32_t owner, int granted)
{
	const shard_slot *slot;

	if (s >= t->nshards)
		return LEASE_UNKNOWN_SHARD;
	slot = &t->slots[s];
	if (audit_leased(slot) && slot->owner == owner)
		return slot->audit == AUDIT_LEASED ? LEASE_AUDIT : LEASE_THIRD;
	if (slot->state == SHARD_DISPUTED)
		return LEASE_NOT_LEASED;
	if (slot->state == SHARD_DONE)
		return LEASE_DUP_DONE;
	if (slot->state == SHARD_COMMITTING)
		return LEASE_DUP_COMMITTING;
	if (slot->state == SHARD_QUARANTINED)
		return LEASE_IS_QUARANTINED;
	if ((slot->state == SHARD_LEASED && slot->owner == owner) || granted)
		return LEASE_ACCEPT;
	return LEASE_NOT_LEASED;
}

void
lease_begin_commit(lease_table *t, uint64_t s, uint32_t *prev_owner)
{
	shard_slot *slot = &t->slots[s];

	*prev_owner = 0;
	if (slot->state == SHARD_LEASED) {
		*prev_owner = slot->owner;
		t->nleased--;
	}
	slot->owner = 0;
	slot->state = SHARD_COMMITTING;
}

void
lease_committed(lease_table *t, uint64_t s, int stored)
{
	if (s >= t->nshards || t->slots[s].state != SHARD_COMMITTING)
		return;
	if (stored) {
		t->slots[s].state = SHARD_DONE;
		t->ndone++;
	} else {
		requeue(t, s);
	}
}

void
lease_commit_retry(lease_table *t, uint64_t s, uint32_t owner,
    uint64_t deadline_ms)
{
	if (s >= t->nshards || t->slots[s].state != SHARD_COMMITTING)
		return;
	if (owner == 0) {
		requeue(t, s);
		return;
	}
	t->slots[s].state = SHARD_LEASED;
	t->slots[s].owner = owner;
	t->slots[s].deadline_ms = deadline_ms;
	t->nleased++;
}

int
lease_finished(const lease_table *t)
{
	return t->ndone + t->nquarantined == t->nshards;
}

/* --- audits ------------------------------------------------------------------ */

void
lease_done_by(lease_table *t, uint64_t s, uint32_t by, int audit)
{
	shard_slot *slot;

	if (s >= t->nshards || t->slots[s].state != SHARD_DONE)
		return;
	slot = &t->slots[s];
	slot->by = by;
	slot->by2 = 0;
	if (slot->audit != AUDIT_NONE)
		t->naudits--;
	slot->audit = AUDIT_NONE;
	if (audit && by != 0) {
		slot->audit = AUDIT_WANTED;
		t->naudits++;
	}
}

/* May identity ident give the opinion slot wants? */
static int
audit_eligible(const shard_slot *slot, uint32_t ident)
{
	if (slot->state == SHARD_DISPUTED && slot->audit == AUDIT_THIRD)
		return ident != slot->by && ident != slot->by2;
	return slot->state == SHARD_DONE && slot->audit == AUDIT_WANTED &&
	    ident != slot->by;
}

/* The first shard whose audit ident may give, disputes first; -1. */
static int64_t
find_audit(const lease_table *t, uint32_t ident)
{
	int64_t second = -1;

	for (uint64_t s = 0; t->naudits > 0 && s < t->nshards; s++) {
		if (!audit_eligible(&t->slots[s], ident))
			continue;
		if (t->slots[s].state == SHARD_DISPUTED)
			return (int64_t)s;
		if (second < 0)
			second = (int64_t)s;
	}
	return second;
}

int64_t
lease_take_audit(lease_table *t, uint32_t owner, uint32_t ident,
    uint64_t deadline_ms)
{
	const int64_t s = ident != 0 ? find_audit(t, ident) : -1;
	shard_slot *slot;

	if (s < 0)
		return -1;
	slot = &t->slots[s];
	slot->audit = slot->audit == AUDIT_THIRD ? AUDIT_THIRD_LEASED :
	    AUDIT_LEASED;
	slot->owner = owner;
	slot->deadline_ms = deadline_ms;
	return s;
}

int
lease_audit_available(const lease_table *t, uint32_t ident)
{
	return ident != 0 && find_audit(t, ident) >= 0;
}

int
lease_audit_return(lease_table *t, uint64_t s, uint32_t *prev_owner)
{
	shard_slot *slot;

	if (s >= t->nshards || !audit_leased(&t->slots[s]))
		return 0;
	slot = &t->slots[s];
	*prev_owner = slot->owner;
	slot->owner = 0;
	slot->audit = slot->audit == AUDIT_LEASED ? AUDIT_WANTED : AUDIT_THIRD;
	return 1;
}

int64_t
lease_audit_next(const lease_table *t, uint64_t from, uint32_t owner,
    uint64_t now_ms)
{
	for (uint64_t s = from; t->naudits > 0 && s < t->nshards; s++) {
		const shard_slot *slot = &t->slots[s];

		if (!audit_leased(slot))
			continue;
		if (owner != 0 ? slot->owner == owner : slot->deadline_ms <= now_ms)
			return (int64_t)s;
	}
	return -1;
}

void
lease_audit_pass(lease_table *t, uint64_t s)
{
	if (s >= t->nshards || t->slots[s].audit != AUDIT_LEASED)
		return;
	t->slots[s].audit = AUDIT_NONE;
	t->slots[s].owner = 0;
	t->naudits--;
}

void
lease_audit_dispute(lease_table *t, uint64_t s, uint32_t ident2)
{
	shard_slot *slot;

	if (s >= t->nshards || t->slots[s].audit != AUDIT_LEASED)
		return;
	slot = &t->slots[s];
	slot->state = SHARD_DISPUTED;
	slot->audit = AUDIT_THIRD;
	slot->owner = 0;
	slot->by2 = ident2;
	t->ndone--;
	t->ndisputed++;
}

void
lease_audit_settle(lease_table *t, uint64_t s, int store, uint32_t *prev_owner)
{
	shard_slot *slot;

	*prev_owner = 0;
	if (s >= t->nshards || t->slots[s].audit != AUDIT_THIRD_LEASED)
		return;
	slot = &t->slots[s];
	*prev_owner = slot->owner;
	slot->owner = 0;
	slot->audit = AUDIT_NONE;
	slot->by = slot->by2 = 0;
	t->naudits--;
	t->ndisputed--;
	if (store) {
		slot->state = SHARD_COMMITTING;
	} else {
		slot->state = SHARD_QUARANTINED;
		t->nquarantined++;
	}
}

int64_t
lease_next_by(const lease_table *t, uint64_t from, uint32_t by)
{
	for (uint64_t s = from; by != 0 && s < t->nshards; s++)
		if (t->slots[s].state == SHARD_DONE && t->slots[s].by == by)
			return (int64_t)s;
	return -1;
}

int
lease_purge(lease_table *t, uint64_t s)
{
	shard_slot *slot;

	if (s >= t->nshards || t->slots[s].state != SHARD_DONE)
		return 0;
	slot = &t->slots[s];
	if (slot->audit != AUDIT_NONE)
		t->naudits--;
	slot->audit = AUDIT_NONE;
	slot->owner = 0;
	slot->by = slot->by2 = 0;
	t->ndone--;
	requeue(t, s);
	return 1;
}

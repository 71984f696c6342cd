/* lease.h - the shards of one teacher and their leases: a pure state
 * machine, without ZeroMQ, LMDB or a clock. Time comes in as arguments
 * (monotonic ms), owners are the broker's session tokens (never 0), and the
 * broker does the talking, the storing and the per-worker accounting from
 * what these functions return. A shard moves
 *
 *   PENDING -> LEASED -> COMMITTING -> DONE
 *                |  ^        |
 *                v  |        +-> PENDING (commit failed)
 *             (lease expired, result rejected) -> QUARANTINED after
 *                                                 max_attempts leases
 *
 * Audits (--audit) run beside that, on shards already DONE:
 *
 *   DONE, audit WANTED -> LEASED to another identity -> agree: audit NONE
 *                                  |
 *                                  v disagree
 *   DISPUTED (records withheld), THIRD wanted -> THIRD_LEASED to a third
 *                                  identity -> COMMITTING (its result is
 *                                  stored) or QUARANTINED (it agrees with
 *                                  neither)
 *
 * An identity (a CURVE key, or a worker name in plaintext: the broker maps
 * it to a number, never 0) is who computed a result; by is the one whose
 * result a DONE slot holds, by2 the one that disputed it. An audit is never
 * leased to an identity whose result it judges. A purge (the identity was
 * proven wrong) sends every DONE slot it computed back to PENDING.
 *
 * Invariants (tests/unit/test_lease.c checks them after every step):
 * ndone, nleased, nquarantined and ndisputed count the slots in those
 * states; naudits counts the slots whose audit is not NONE; a LEASED slot,
 * or a slot with an audit lease (AUDIT_LEASED, AUDIT_THIRD_LEASED), has an
 * owner, no other slot has one; attempts never decrease except by a
 * restart (lease_init again, then lease_restore from the cache: audits and
 * by are lost, a restored DONE slot has by 0 and is never audited).
 *
 * Not thread-safe: one table belongs to one thread.
 */
#ifndef LEASE_H
#define LEASE_H

#include <stdint.h>

enum shard_state {
	SHARD_PENDING,
	SHARD_LEASED,
	SHARD_COMMITTING,
	SHARD_DONE,
	SHARD_QUARANTINED,
	SHARD_DISPUTED,       /* two results disagree; neither is stored */
};

enum audit_stage {
	AUDIT_NONE,           /* not sampled, agreed, or by unknown */
	AUDIT_WANTED,         /* DONE: a second opinion is wanted */
	AUDIT_LEASED,         /* DONE: leased to owner for a second opinion */
	AUDIT_THIRD,          /* DISPUTED: a third opinion is wanted */
	AUDIT_THIRD_LEASED,   /* DISPUTED: leased to owner for it */
};

typedef struct shard_slot {
	uint8_t state;        /* enum shard_state */
	uint8_t attempts;     /* leases handed out, saturating at 255 */
	uint8_t audit;        /* enum audit_stage */
	uint32_t owner;       /* token of the session holding the lease */
	uint32_t by, by2;     /* identities: the stored (or first) result's,
	                         the disputing one's (DISPUTED) */
	uint64_t deadline_ms; /* lease expiry, monotonic */
} shard_slot;

typedef struct lease_table {
	shard_slot *slots;    /* (nshards) */
	uint64_t nshards;
	uint64_t scan;        /* where the search for a pending shard resumes */
	uint64_t ndone, nleased, nquarantined, ndisputed;
	uint64_t naudits;     /* slots with an audit under way */
	uint32_t max_attempts; /* leases before a returned shard is quarantined */
} lease_table;

/* What a result for shard s may do (lease_check). */
enum lease_verdict {
	LEASE_ACCEPT,         /* leased to this owner, or granted to it */
	LEASE_DUP_DONE,       /* already stored: acknowledge and drop */
	LEASE_DUP_COMMITTING, /* in the commit under way: acknowledge, drop */
	LEASE_IS_QUARANTINED,
	LEASE_NOT_LEASED,     /* neither leased nor granted to this owner */
	LEASE_UNKNOWN_SHARD,  /* s >= nshards */
	LEASE_AUDIT,          /* the second opinion of an audit leased to it */
	LEASE_THIRD,          /* the third opinion of a dispute leased to it */
};

/* Every shard PENDING with no attempts. Returns 0 or SL_ENOMEM. */
int lease_init(lease_table *t, uint64_t nshards, uint32_t max_attempts);
/* Frees the slots; t may be zeroed or already finished. */
void lease_fini(lease_table *t);

/* At start: shard s is DONE or QUARANTINED in the cache (any other state
 * is ignored). Call on a fresh table only. */
void lease_restore(lease_table *t, uint64_t s, enum shard_state state);

/* Lease the next pending shard (round robin from where the last search
 * stopped) to owner until deadline_ms. Returns the shard or -1 when none
 * is pending. */
int64_t lease_take(lease_table *t, uint32_t owner, uint64_t deadline_ms);

/* A LEASED shard goes back: PENDING, or QUARANTINED once it has had
 * max_attempts leases and may_quarantine (the broker has room to record
 * the quarantine in its next commit). *prev_owner gets the owner that lost
 * the lease. Returns the new state, or -1 (nothing changed) when s is not
 * LEASED. */
int lease_return(lease_table *t, uint64_t s, int may_quarantine,
    uint32_t *prev_owner);

/* Extend owner's lease of s (or its audit lease) to deadline_ms. Returns
 * 1 if renewed, 0 when s is not leased to owner (or does not exist). */
int lease_renew(lease_table *t, uint64_t s, uint32_t owner,
    uint64_t deadline_ms);

/* Handover: the lease of s moves from one session to another (the same
 * worker reconnected) with a new deadline. Returns 1 if moved, 0 when s
 * is not leased to from. */
int lease_move(lease_table *t, uint64_t s, uint32_t from, uint32_t to,
    uint64_t deadline_ms);

/* The owner of s's lease; 0 when s is not LEASED (or does not exist). */
uint32_t lease_holder(const lease_table *t, uint64_t s);
/* The first shard >= from leased to owner, or -1. */
int64_t lease_next_owned(const lease_table *t, uint64_t from, uint32_t owner);
/* The first shard >= from whose lease is past its deadline at now_ms, or
 * -1. */
int64_t lease_next_expired(const lease_table *t, uint64_t from,
    uint64_t now_ms);

/* May owner's result for s be stored? granted: the owner's session was
 * told it may answer for s (a result it held across a reconnect). Changes
 * nothing. */
enum lease_verdict lease_check(const lease_table *t, uint64_t s,
    uint32_t owner, int granted);
/* A result for s passed every check (LEASE_ACCEPT): COMMITTING until
 * lease_committed. *prev_owner gets the owner whose lease ends (0 when s
 * was not LEASED: a granted result for a shard back in the queue). */
void lease_begin_commit(lease_table *t, uint64_t s, uint32_t *prev_owner);
/* The commit of s ended: DONE when stored, else PENDING again. */
void lease_committed(lease_table *t, uint64_t s, int stored);
/* The commit of s failed (the store, not the result): s is LEASED again
 * to owner until deadline_ms, who keeps the result and resends it, so it
 * is not computed again; PENDING when owner is 0 (its session is gone). */
void lease_commit_retry(lease_table *t, uint64_t s, uint32_t owner,
    uint64_t deadline_ms);

/* Every shard DONE or QUARANTINED (a DISPUTED one is neither; audits
 * still WANTED on DONE shards do not count). */
int lease_finished(const lease_table *t);

/* --- audits ---------------------------------------------------------------- */

/* s was just stored (DONE) with the result of identity by; audit: a second
 * opinion is wanted (ignored when by is 0). Nothing happens unless s is
 * DONE. */
void lease_done_by(lease_table *t, uint64_t s, uint32_t by, int audit);

/* Lease an audit that identity ident may give (it computed neither result
 * under judgement) to owner until deadline_ms: a third opinion of a dispute
 * before a second opinion. Returns the shard or -1. */
int64_t lease_take_audit(lease_table *t, uint32_t owner, uint32_t ident,
    uint64_t deadline_ms);
/* Would lease_take_audit find one for ident? */
int lease_audit_available(const lease_table *t, uint32_t ident);

/* An audit lease of s ended without an opinion: wanted again. Returns 1,
 * or 0 when s has no audit lease. *prev_owner gets its owner. */
int lease_audit_return(lease_table *t, uint64_t s, uint32_t *prev_owner);
/* The first shard >= from whose audit lease owner holds, or whose audit
 * lease is past its deadline at now_ms (owner 0), or -1. */
int64_t lease_audit_next(const lease_table *t, uint64_t from, uint32_t owner,
    uint64_t now_ms);

/* The second opinion (LEASE_AUDIT) agreed: the audit is over. */
void lease_audit_pass(lease_table *t, uint64_t s);
/* It disagreed: s is DISPUTED between by and ident2 (whose result the
 * broker holds beside by's, out of the cache), a third opinion wanted. */
void lease_audit_dispute(lease_table *t, uint64_t s, uint32_t ident2);
/* The third opinion (LEASE_THIRD) came. store: it agrees with one of the
 * two and goes into the commit group (COMMITTING, then lease_committed);
 * else s is QUARANTINED. *prev_owner gets the audit lease's owner. */
void lease_audit_settle(lease_table *t, uint64_t s, int store,
    uint32_t *prev_owner);

/* The first DONE shard >= from holding a result of identity by, or -1. */
int64_t lease_next_by(const lease_table *t, uint64_t from, uint32_t by);
/* A DONE shard goes back to PENDING (its result was proven untrustworthy
 * and is deleted from the cache by the caller); any audit on it ends.
 * Returns 1, or 0 when s is not DONE. */
int lease_purge(lease_table *t, uint64_t s);

#endif

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
 * Invariants (tests/unit/test_lease.c checks them after every step):
 * ndone, nleased and nquarantined count the slots in those states; a LEASED
 * slot has an owner, no other slot has one; attempts never decrease except
 * by a restart (lease_init again, then lease_restore from the cache).
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
};

typedef struct shard_slot {
	uint8_t state;        /* enum shard_state */
	uint8_t attempts;     /* leases handed out, saturating at 255 */
	uint32_t owner;       /* token of the session holding the lease */
	uint64_t deadline_ms; /* lease expiry, monotonic */
} shard_slot;

typedef struct lease_table {
	shard_slot *slots;    /* (nshards) */
	uint64_t nshards;
	uint64_t scan;        /* where the search for a pending shard resumes */
	uint64_t ndone, nleased, nquarantined;
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

/* Extend owner's lease of s to deadline_ms. Returns 1 if renewed, 0 when
 * s is not leased to owner (or does not exist). */
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

/* Every shard DONE or QUARANTINED. */
int lease_finished(const lease_table *t);

#endif

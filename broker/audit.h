/* audit.h - checking the workers' numbers (--audit RATE).
 *
 * A seeded sample of shards (RATE of them, plus the first result of every
 * identity in a run) is computed a second time by a worker of another
 * identity, and the two are compared record by record (sl_label_agree).
 * They agree: the audit is over. They disagree: both results are withheld
 * (the stored one is deleted from the cache, both are held in memory) and
 * a worker of a third identity decides; the identity it contradicts is
 * refused from then on and every shard it computed is deleted and computed
 * again. A third opinion that agrees with neither quarantines the shard.
 *
 * Identity: under CURVE the session's public key (a worker cannot claim
 * another's); in plaintext the worker's name, which anyone can claim, so a
 * refused liar comes back under a new name (and is audited again: the
 * first result of each identity always is). Keys in --trusted-keys are
 * never audited (they still audit others).
 *
 * Audits live in memory, as leases do: a broker restart forgets the audits
 * under way (a disputed shard is pending in the cache, so it is computed
 * again) and the refusals (a refused key should leave --allow-keys; the
 * log line names it); the shards the cache holds are audited again by the
 * name stored with each (audit_restore).
 *
 * All on the broker's thread. */
#ifndef AUDIT_H
#define AUDIT_H

#include "broker.h"

/* Once the store is open: the counters of earlier runs, and the start-up
 * line. Returns an exit status. */
int audit_start(broker *b);

/* This run's counters added to the earlier runs' (meta "audit"). */
void audit_total(const broker *b, sl_store_audit *out);
/* Store the counters if they changed (their own transaction); logs a
 * failure (retried at the next call). */
void audit_save(broker *b);

/* Load --trusted-keys and pick the seed. Logs; returns an exit status. */
int audit_open(broker *b);
void audit_close(broker *b);

/* The identity of a HELLO (key: Z85 or NULL in plaintext), numbered from
 * 1; 0 after a REFUSE was sent (a refused identity, or the table full). */
uint32_t audit_identify(broker *b, const uint8_t *id, size_t idlen,
    const char *name, const char *key);

/* At start: the DONE shards of ts the cache holds are audited as if just
 * stored by the worker name each shard entry keeps (identity "name N"):
 * the first of each name, and the seeded sample. So a liar's records from
 * before a restart are checked too. Returns 0 or the store's error. */
int audit_restore(broker *b, teacher_sched *ts);

/* May shard s of teacher, just stored from ident, have an audit? */
int audit_wanted(const broker *b, uint32_t ident, uint32_t teacher,
    uint64_t s);

/* Lease w the audits it may give while it has credit (disputes first). */
void audit_dispatch(broker *b, worker *w, uint64_t deadline_ms);

/* An opinion (verdict LEASE_AUDIT or LEASE_THIRD) whose records passed
 * every check: compared, and settled as described above. frame is moved
 * into the commit group when the result is to be stored. */
void audit_opinion(broker *b, worker *w, teacher_sched *ts, uint64_t s,
    enum lease_verdict v, zmq_msg_t *frame, const sl_msg *m);

/* The audit lease of s goes back (its owner's credit with it). */
void audit_return(broker *b, teacher_sched *ts, uint64_t s);
/* Every audit lease of w goes back. */
void audit_drop(broker *b, worker *w);
/* Audit leases past their deadline go back. Returns how many. */
int audit_expire(broker *b, uint64_t now_ms);

/* Delete from the cache (and requeue) every shard of the identities
 * refused since the last call. Call between commit groups. */
void audit_purge(broker *b);

/* Teacher t has an audit leased or disputed (its outcome may send shards
 * back to the queue), or one a connected worker that is not stopping (READY
 * with credit 0) could take: its workers are not told DONE, and the job is
 * not over. */
int audit_waiting(const broker *b, uint32_t t);

#endif

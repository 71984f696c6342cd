/* session.h - the workers the broker knows: one session per HELLO, found by
 * ZeroMQ routing id or by token, the shards each may answer for, and the
 * handover of leases from a worker's previous session. All on the broker's
 * thread. */
#ifndef SESSION_H
#define SESSION_H

#include "broker.h"

/* The session of a routing id, or by token; NULL if none. */
worker *session_find(broker *b, const void *id, size_t idlen);
worker *session_by_token(broker *b, uint32_t token);

/* Let w answer for shard (a ring of the last BROKER_GRANTS). */
void session_grant(worker *w, uint64_t shard);
int session_was_granted(const worker *w, uint64_t shard);

/* Every lease of w goes back to the queue. */
void session_drop_leases(broker *b, worker *w, const char *why_back);

/* A HELLO from id: checks, teacher registration, a new session (which
 * takes over its previous session's leases), WELCOME or REFUSE. key: the
 * peer's CURVE key (Z85), or NULL without CURVE. */
void session_hello(broker *b, const uint8_t *id, size_t idlen,
    const sl_msg *m, const char *key);

#endif

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

/* w's session ends for its address's count (peer.c): call it once its
 * connection closed or before it is forgotten; again is harmless. */
void session_end_peer(broker *b, worker *w);

/* Every lease of w goes back to the queue. */
void session_drop_leases(broker *b, worker *w, const char *why_back);

/* A HELLO from id: checks, teacher registration, a new session (which
 * takes over its previous session's leases), WELCOME or REFUSE; BUSY past
 * the limits per address or the free slots. key: the peer's CURVE key
 * (Z85), or NULL without CURVE; addr: its source address (libzmq's
 * "Peer-Address": the IP over TCP, localhost:UID:GID:PID over ipc://),
 * or NULL. */
void session_hello(broker *b, const uint8_t *id, size_t idlen,
    const sl_msg *m, const char *key, const char *addr);

#endif

/* peer.h - the broker's limits per source address: for each address a
 * connection or a HELLO came from (the peer's IP, as libzmq reports it in
 * a message's "Peer-Address" property), its live sessions, its pending
 * connections (open, no session on them yet: in the ZMTP handshake, or
 * idle before HELLO) and a token bucket of HELLOs. A pure module: no
 * ZeroMQ, no clock (time comes in as monotonic ms), no allocation after
 * peer_table_init.
 *
 * The table has a fixed number of entries. An address not in it takes a
 * free entry; when none is free, the entry idle longest (no live session,
 * no pending connection, oldest last use) is evicted and counted; when
 * every entry is live, the HELLO or connection is refused (PEER_FULL). A
 * live entry is never evicted, so the index a session or a pending
 * connection keeps stays valid until its peer_session_drop or
 * peer_pending_drop.
 *
 * What it holds against: one host flooding HELLOs or taking sessions.
 * Not against many hosts, nor against addresses spoofed on a shared
 * network; and NAT puts many honest workers behind one address, so the
 * bounds must leave room for them.
 *
 * Caveats: the caller must drop each session it added exactly once; a
 * token is taken by every HELLO let through the rate check, even one the
 * session bound then refuses (it cost the broker as much). Not
 * thread-safe: one table, one thread. */
#ifndef PEER_H
#define PEER_H

#include <stdint.h>

#define PEER_ADDR_MAX 64 /* an IPv6 text address is at most 45 bytes */

typedef struct peer_entry {
	char addr[PEER_ADDR_MAX];
	uint32_t sessions;    /* live sessions from addr */
	uint32_t pending;     /* open connections from addr without one */
	double tokens;        /* HELLOs it may say now, <= burst */
	uint64_t refill_ms;   /* when tokens was last brought up to date */
	uint64_t last_ms;     /* last HELLO or session end: eviction order */
	uint8_t used;
} peer_entry;

typedef struct peer_table {
	peer_entry *e;        /* (cap) */
	uint32_t *hash;       /* (nhash) entry index + 1 by address hash, 0
	                         empty; linear probing */
	uint32_t cap, nhash, n;
	uint32_t max_sessions; /* per address; 0: unbounded */
	uint32_t max_pending;  /* per address; 0: unbounded */
	double rate_per_s;    /* HELLO tokens per second; 0: unbounded */
	double burst;         /* bucket size, >= 1 when rate_per_s > 0 */
	uint64_t evicted;     /* entries evicted for a new address */
} peer_table;

enum peer_verdict {
	PEER_OK = 0,
	PEER_RATE,            /* no token left: HELLOs too fast */
	PEER_SESSIONS,        /* max_sessions live sessions already */
	PEER_FULL,            /* a new address, and every entry is live */
	PEER_PENDING,         /* max_pending pending connections already */
	PEER_VERDICT_COUNT_
};

/* A table of cap entries (>= 1). max_sessions, max_pending or rate_per_s
 * 0 turn that bound off; with a rate, burst (>= 1) is the bucket's size
 * and a new address starts with it full. Returns 0, EINVAL, or ENOMEM. */
int peer_table_init(peer_table *t, uint32_t cap, uint32_t max_sessions,
    uint32_t max_pending, double rate_per_s, double burst);
/* Frees the entries; t may be zeroed or already finished. */
void peer_table_fini(peer_table *t);

/* A HELLO from addr (a NUL-terminated text, cut to PEER_ADDR_MAX - 1
 * bytes) at now_ms. It takes a token, then, if new_session (the HELLO
 * would add a session rather than replace one on the same connection),
 * checks the session bound. On PEER_OK or PEER_SESSIONS *idx is the
 * address's entry; the caller that starts the session calls
 * peer_session_add(t, *idx) before any other call on t. */
enum peer_verdict peer_hello(peer_table *t, const char *addr, int new_session,
    uint64_t now_ms, uint32_t *idx);

/* A session of entry idx starts / ends (at now_ms: the entry's last use). */
void peer_session_add(peer_table *t, uint32_t idx);
void peer_session_drop(peer_table *t, uint32_t idx, uint64_t now_ms);

/* A connection from addr was accepted at now_ms: PEER_OK with *idx its
 * address's entry, counted pending until peer_pending_drop(t, *idx) (a
 * session on it, or its end); PEER_PENDING when addr has max_pending
 * already, PEER_FULL when addr is new and every entry is live (neither
 * is counted). */
enum peer_verdict peer_connect(peer_table *t, const char *addr,
    uint64_t now_ms, uint32_t *idx);
void peer_pending_drop(peer_table *t, uint32_t idx, uint64_t now_ms);

/* The entry of addr, or NULL: for status and tests; valid until the next
 * peer_hello. */
const peer_entry *peer_find(const peer_table *t, const char *addr);

#endif

#include "peer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int
peer_table_init(peer_table *t, uint32_t cap, uint32_t max_sessions,
    uint32_t max_pending, double rate_per_s, double burst)
{
	uint32_t nhash = 2;

	memset(t, 0, sizeof *t);
	if (cap == 0 || cap > (UINT32_MAX >> 2) || !(rate_per_s >= 0) ||
	    (rate_per_s > 0 && !(burst >= 1)))
		return EINVAL;
	while (nhash < 2 * cap)
		nhash <<= 1;
	t->e = calloc(cap, sizeof *t->e);
	t->hash = calloc(nhash, sizeof *t->hash);
	if (t->e == NULL || t->hash == NULL) {
		peer_table_fini(t);
		return ENOMEM;
	}
	t->cap = cap;
	t->nhash = nhash;
	t->max_sessions = max_sessions;
	t->max_pending = max_pending;
	t->rate_per_s = rate_per_s;
	t->burst = burst;
	return 0;
}

void
peer_table_fini(peer_table *t)
{
	free(t->e);
	free(t->hash);
	memset(t, 0, sizeof *t);
}

/* FNV-1a of the address text. */
static uint32_t
hash_addr(const char *a)
{
	uint32_t h = 2166136261u;

	while (*a != '\0')
		h = (h ^ (uint8_t)*a++) * 16777619u;
	return h;
}

/* The hash slot holding addr's entry, or the empty slot where it would
 * go. The table is never more than half full, so the probe ends. */
static uint32_t
probe(const peer_table *t, const char *addr)
{
	uint32_t h = hash_addr(addr) & (t->nhash - 1);

	while (t->hash[h] != 0 &&
	    strcmp(t->e[t->hash[h] - 1].addr, addr) != 0)
		h = (h + 1) & (t->nhash - 1);
	return h;
}

/* Take entry i out of the hash, shifting the rest of its cluster back so
 * that every probe still finds its entry (no tombstones). */
static void
unhash(peer_table *t, uint32_t i)
{
	const uint32_t mask = t->nhash - 1;
	uint32_t hole = probe(t, t->e[i].addr), j = hole;

	t->hash[hole] = 0;
	for (;;) {
		uint32_t home;

		j = (j + 1) & mask;
		if (t->hash[j] == 0)
			return;
		home = hash_addr(t->e[t->hash[j] - 1].addr) & mask;
		/* The entry at j may move to hole unless its home lies
		 * cyclically in (hole, j]. */
		if (((j - home) & mask) >= ((j - hole) & mask)) {
			t->hash[hole] = t->hash[j];
			t->hash[j] = 0;
			hole = j;
		}
	}
}

/* A free entry, or the idle one used longest ago (evicted); cap if every
 * entry is live (sessions or pending connections). */
static uint32_t
take_entry(peer_table *t)
{
	uint64_t oldest = UINT64_MAX;
	uint32_t best = t->cap;

	if (t->n < t->cap) {
		for (uint32_t i = 0; i < t->cap; i++)
			if (!t->e[i].used)
				return i;
	}
	for (uint32_t i = 0; i < t->cap; i++) {
		const peer_entry *p = &t->e[i];

		if (p->sessions == 0 && p->pending == 0 && p->last_ms < oldest) {
			oldest = p->last_ms;
			best = i;
		}
	}
	if (best < t->cap) {
		unhash(t, best);
		t->e[best].used = 0;
		t->n--;
		t->evicted++;
	}
	return best;
}

/* Tokens accrued since the last refill, up to the burst. */
static void
refill(const peer_table *t, peer_entry *p, uint64_t now_ms)
{
	if (now_ms > p->refill_ms) {
		p->tokens += (double)(now_ms - p->refill_ms) * t->rate_per_s /
		    1000.0;
		if (p->tokens > t->burst)
			p->tokens = t->burst;
	}
	p->refill_ms = now_ms;
}

/* addr's entry into *i, a new one if need be (t->cap: every entry live,
 * nothing taken). Its last use is now_ms. */
static uint32_t
entry_of(peer_table *t, const char *addr, uint64_t now_ms)
{
	char key[PEER_ADDR_MAX];
	uint32_t h, i;
	peer_entry *p;

	strncpy(key, addr, sizeof key - 1);
	key[sizeof key - 1] = '\0';
	h = probe(t, key);
	if (t->hash[h] != 0) {
		i = t->hash[h] - 1;
	} else {
		if ((i = take_entry(t)) == t->cap)
			return t->cap;
		h = probe(t, key); /* an eviction may have moved the slot */
		p = &t->e[i];
		memset(p, 0, sizeof *p);
		memcpy(p->addr, key, sizeof key);
		p->used = 1;
		p->tokens = t->burst;
		p->refill_ms = now_ms;
		t->hash[h] = i + 1;
		t->n++;
	}
	t->e[i].last_ms = now_ms;
	return i;
}

enum peer_verdict
peer_hello(peer_table *t, const char *addr, int new_session, uint64_t now_ms,
    uint32_t *idx)
{
	const uint32_t i = entry_of(t, addr, now_ms);
	peer_entry *p;

	if (i == t->cap)
		return PEER_FULL;
	p = &t->e[i];
	if (t->rate_per_s > 0) {
		refill(t, p, now_ms);
		if (p->tokens < 1)
			return PEER_RATE;
		p->tokens -= 1;
	}
	*idx = i;
	if (new_session && t->max_sessions > 0 &&
	    p->sessions >= t->max_sessions)
		return PEER_SESSIONS;
	return PEER_OK;
}

void
peer_session_add(peer_table *t, uint32_t idx)
{
	t->e[idx].sessions++;
}

void
peer_session_drop(peer_table *t, uint32_t idx, uint64_t now_ms)
{
	peer_entry *p = &t->e[idx];

	if (p->sessions > 0)
		p->sessions--;
	if (now_ms > p->last_ms)
		p->last_ms = now_ms;
}

enum peer_verdict
peer_connect(peer_table *t, const char *addr, uint64_t now_ms, uint32_t *idx)
{
	const uint32_t i = entry_of(t, addr, now_ms);

	if (i == t->cap)
		return PEER_FULL;
	if (t->max_pending > 0 && t->e[i].pending >= t->max_pending)
		return PEER_PENDING;
	t->e[i].pending++;
	*idx = i;
	return PEER_OK;
}

void
peer_pending_drop(peer_table *t, uint32_t idx, uint64_t now_ms)
{
	peer_entry *p = &t->e[idx];

	if (p->pending > 0)
		p->pending--;
	if (now_ms > p->last_ms)
		p->last_ms = now_ms;
}

const peer_entry *
peer_find(const peer_table *t, const char *addr)
{
	uint32_t h;

	if (t->nhash == 0)
		return NULL;
	h = probe(t, addr);
	return t->hash[h] != 0 ? &t->e[t->hash[h] - 1] : NULL;
}

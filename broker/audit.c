#include "audit.h"
#include "session.h"
#include "sl_label.h"
#include "sl_log.h"
#include "sl_net.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
audit_open(broker *b)
{
	const broker_cfg *c = b->cfg;
	sl_errmsg why = { "" };

	/* Sized once: a HELLO finds its identity in O(1), whatever the
	 * number of names peers have used. */
	b->ident_hash = calloc(BROKER_IDENT_HASH, sizeof *b->ident_hash);
	if (b->ident_hash == NULL) {
		sl_error("out of memory");
		return 1;
	}
	if (c->trusted_keys != NULL &&
	    sl_curve_allow_load(c->trusted_keys, &b->trusted, &why) != 0) {
		sl_error("--trusted-keys %s: %s", c->trusted_keys, why.text);
		return 2;
	}
	if (c->audit_seed >= 0) {
		b->audit_seed = (uint64_t)c->audit_seed;
	} else {
		if (sodium_init() < 0) {
			sl_error("libsodium failed to start");
			return 1;
		}
		/* Unpredictable: a worker must not know which shards are
		 * checked. */
		randombytes_buf(&b->audit_seed, sizeof b->audit_seed);
	}
	return 0;
}

/* The counters of earlier runs: read once the store is open. */
static int
load_base(broker *b)
{
	sl_store_txn *txn = NULL;
	sl_errmsg why = { "" };
	int rc = sl_store_read_begin(b->store, &txn, &why);

	if (rc == 0)
		rc = sl_store_get_audit(txn, &b->audit_base, &why);
	sl_store_read_end(&txn);
	if (rc != 0 && rc != SL_ENOTFOUND) {
		sl_error("%s: %s", b->cfg->store, why.text);
		return 1;
	}
	return 0;
}

void
audit_total(const broker *b, sl_store_audit *out)
{
	const sl_store_audit *a = &b->audit_base;

	*out = (sl_store_audit){ a->passed + b->audits_passed,
	    a->disputed + b->audits_disputed, a->settled + b->audits_settled,
	    a->unsettled + b->audits_unsettled, a->refused + b->idents_refused,
	    a->purged_shards + b->purged_shards };
}

void
audit_save(broker *b)
{
	sl_store_audit a;
	sl_store_txn *txn = NULL;
	sl_errmsg why = { "" };
	int rc;

	if (!b->audit_dirty)
		return;
	audit_total(b, &a);
	if ((rc = sl_store_write_begin(b->store, &txn, &why)) == 0 &&
	    (rc = sl_store_put_audit(txn, &a, &why)) == 0)
		rc = sl_store_write_commit(&txn, &why);
	sl_store_write_abort(&txn);
	if (rc == 0)
		b->audit_dirty = 0;
	else if (sl_log_limit_allow(&b->store_log, sl_net_now_ms()))
		sl_error("audit counters not stored: %s; retried", why.text);
}

int
audit_start(broker *b)
{
	const broker_cfg *c = b->cfg;

	if (load_base(b) != 0)
		return 1;
	if (c->audit_rate > 0)
		sl_info("audits: %g of the shards and each worker's first result "
		    "get a second opinion%s", (double)c->audit_rate,
		    b->trusted ? " (trusted keys excepted)" : "");
	return 0;
}

void
audit_close(broker *b)
{
	for (int i = 0; i < BROKER_MAX_DISPUTES; i++) {
		free(b->disputes[i].first);
		free(b->disputes[i].second);
		b->disputes[i].first = b->disputes[i].second = NULL;
	}
	free(b->idents);
	b->idents = NULL;
	free(b->ident_hash);
	b->ident_hash = NULL;
	sl_curve_allow_free(&b->trusted);
}

/* FNV-1a of an identity's text. */
static uint32_t
ident_hash(const char *text)
{
	uint32_t h = 2166136261u;

	for (; *text != '\0'; text++)
		h = (h ^ (uint8_t)*text) * 16777619u;
	return h;
}

/* The slot of text in b->ident_hash: its identity's, or the empty one
 * where it would go (the table never fills: it has twice the room). */
static uint32_t *
ident_slot(broker *b, const char *text)
{
	uint32_t i = ident_hash(text) & (BROKER_IDENT_HASH - 1);

	while (b->ident_hash[i] != 0 &&
	    strcmp(b->idents[b->ident_hash[i] - 1].id, text) != 0)
		i = (i + 1) & (BROKER_IDENT_HASH - 1);
	return &b->ident_hash[i];
}

/* The table is full (a peer said HELLO under 65,536 names): reuse the
 * first identity that nothing refers to (no session, no stored result,
 * no dispute, not refused) and rebuild the hash without it. Returns its
 * index, or -1. */
static int64_t
recycle_identity(broker *b)
{
	uint8_t *live = calloc(b->nidents, 1);
	int64_t found = -1;

	if (live == NULL)
		return -1;
	for (int i = 0; i < b->nslots; i++)
		if (b->workers[i].used && b->workers[i].ident > 0 &&
		    b->workers[i].ident <= b->nidents)
			live[b->workers[i].ident - 1] = 1;
	for (uint32_t i = 0; i < b->nidents && found < 0; i++) {
		const identity *x = &b->idents[i];

		if (!live[i] && x->results == 0 && x->failed == 0 && !x->refused)
			found = i;
	}
	free(live);
	if (found < 0)
		return -1;
	b->idents[found].id[0] = '\0';
	memset(b->ident_hash, 0, BROKER_IDENT_HASH * sizeof *b->ident_hash);
	for (uint32_t i = 0; i < b->nidents; i++)
		if (b->idents[i].id[0] != '\0')
			*ident_slot(b, b->idents[i].id) = i + 1;
	return found;
}

/* The identity of text (index + 1), added when new: 0 when the table is
 * full and nothing can be recycled. */
static uint32_t
ident_get(broker *b, const char *text, const char *name, const char *key)
{
	uint32_t *slot = ident_slot(b, text);
	int64_t i = -1;
	identity *x;

	if (*slot != 0)
		return *slot;
	if (b->nidents == BROKER_MAX_IDENTS) {
		if ((i = recycle_identity(b)) < 0)
			return 0;
		slot = ident_slot(b, text); /* the hash was rebuilt */
	} else {
		if (b->nidents == b->cap_idents) {
			const uint32_t cap = b->cap_idents ? 2 * b->cap_idents : 64;
			identity *n = realloc(b->idents, cap * sizeof *n);

			if (n == NULL)
				return 0;
			b->idents = n;
			b->cap_idents = cap;
		}
		i = b->nidents++;
	}
	x = &b->idents[i];
	memset(x, 0, sizeof *x);
	snprintf(x->id, sizeof x->id, "%s", text);
	snprintf(x->name, sizeof x->name, "%s", name);
	x->trusted = key != NULL && b->trusted != NULL &&
	    sl_curve_allow_has(b->trusted, key);
	*slot = (uint32_t)i + 1;
	return *slot;
}

uint32_t
audit_identify(broker *b, const uint8_t *id, size_t idlen, const char *name,
    const char *key)
{
	char text[BROKER_IDENT_BYTES + 1], why_text[SL_PROTO_MAX_REASON];
	uint32_t ident;
	identity *x;

	snprintf(text, sizeof text, "%s %s", key ? "key" : "name",
	    key ? key : name);
	if ((ident = ident_get(b, text, name, key)) == 0) {
		snprintf(why_text, sizeof why_text, "the broker holds %u worker "
		    "identities, each with a session or a result: no new one",
		    b->nidents);
		broker_reject(b, REJ_BAD_HELLO, name, "%s", why_text);
		broker_reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why_text);
		return 0;
	}
	x = &b->idents[ident - 1];
	if (x->refused) {
		snprintf(why_text, sizeof why_text, "refused: an audit proved the "
		    "results of %s wrong", text);
		broker_reject(b, REJ_REFUSED, name, "%s", why_text);
		broker_reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why_text);
		return 0;
	}
	snprintf(x->name, sizeof x->name, "%s", name);
	return ident;
}

typedef struct restore_arg {
	broker *b;
	teacher_sched *ts;
} restore_arg;

static int
restore_one(void *arg, uint64_t s, const sl_shard_info *info)
{
	restore_arg *r = arg;
	char text[BROKER_IDENT_BYTES + 1];
	uint32_t ident;

	if (info->state != SL_SHARD_DONE || info->worker[0] == '\0' ||
	    s >= r->ts->lease.nshards)
		return 0;
	snprintf(text, sizeof text, "name %s", info->worker);
	if ((ident = ident_get(r->b, text, info->worker, NULL)) == 0)
		return 0;
	lease_done_by(&r->ts->lease, s, ident,
	    audit_wanted(r->b, ident, r->ts->info.index, s));
	r->b->idents[ident - 1].results++;
	return 0;
}

int
audit_restore(broker *b, teacher_sched *ts)
{
	restore_arg r = { b, ts };
	sl_store_txn *txn = NULL;
	sl_errmsg why = { "" };
	int rc;

	if (b->cfg->audit_rate <= 0)
		return 0;
	if ((rc = sl_store_read_begin(b->store, &txn, &why)) == 0)
		rc = sl_store_each_shard(txn, ts->info.index, restore_one, &r);
	sl_store_read_end(&txn);
	if (rc != 0)
		sl_error("%s: teacher %s: shard entries: %s", b->cfg->store,
		    ts->info.name, why.text[0] ? why.text : sl_strerror(rc));
	return rc;
}

/* splitmix64: the sample is a pure function of (seed, teacher, shard). */
static uint64_t
mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15u;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
	return x ^ (x >> 31);
}

int
audit_wanted(const broker *b, uint32_t ident, uint32_t teacher, uint64_t s)
{
	const identity *x;

	if (b->cfg->audit_rate <= 0 || ident == 0 || ident > b->nidents)
		return 0;
	x = &b->idents[ident - 1];
	if (x->trusted)
		return 0;
	if (x->results == 0)
		return 1; /* on probation: every identity's first result */
	return (double)(mix(b->audit_seed ^ mix((uint64_t)teacher << 48 ^ s)) >>
	    11) * 0x1p-53 < (double)b->cfg->audit_rate;
}

void
audit_dispatch(broker *b, worker *w, uint64_t deadline_ms)
{
	teacher_sched *ts = &b->teachers[w->teacher];
	int64_t s;

	while (ts->lease.naudits > 0 && w->nleases < w->credit &&
	    (s = lease_take_audit(&ts->lease, w->token, w->ident,
	    deadline_ms)) >= 0) {
		w->nleases++;
		broker_send_task(b, w, (uint64_t)s);
	}
}

void
audit_return(broker *b, teacher_sched *ts, uint64_t s)
{
	uint32_t prev = 0;
	worker *owner;

	if (lease_audit_return(&ts->lease, s, &prev) &&
	    (owner = session_by_token(b, prev)) != NULL && owner->nleases > 0)
		owner->nleases--;
}

void
audit_drop(broker *b, worker *w)
{
	teacher_sched *ts = &b->teachers[w->teacher];
	int64_t s = 0;

	while (ts->lease.slots != NULL &&
	    (s = lease_audit_next(&ts->lease, (uint64_t)s, w->token, 0)) >= 0)
		audit_return(b, ts, (uint64_t)s);
}

int
audit_expire(broker *b, uint64_t now_ms)
{
	int n = 0;

	for (uint32_t t = 0; t < b->nteachers; t++) {
		teacher_sched *ts = &b->teachers[t];
		int64_t s = 0;

		while (ts->lease.slots != NULL && (s = lease_audit_next(&ts->lease,
		    (uint64_t)s, 0, now_ms)) >= 0) {
			worker *w = session_by_token(b, ts->lease.slots[s].owner);
			char un[BROKER_UNIT_NAME];

			sl_warn("audit lease expired: teacher %s %s worker %s",
			    ts->info.name, broker_unit_name(ts, (uint64_t)s, un),
			    w ? w->name : "(gone)");
			/* As for a lease (broker.c, expire): heard from since
			 * the last renewal, yet no renewal: its teacher is
			 * stuck; no audit or lease for it until it renews. */
			if (w != NULL && !w->stalled && w->last_seen_ms +
			    (uint64_t)b->cfg->lease_timeout_s * 1000 >
			    ts->lease.slots[s].deadline_ms)
				w->stalled = 1;
			audit_return(b, ts, (uint64_t)s);
			n++;
		}
	}
	return n;
}

/* The first row where records a and b (nrows of ts's format, back to back)
 * disagree, or -1; *worst gets that row's difference. */
static int64_t
disagree(const teacher_sched *ts, const uint8_t *a, const uint8_t *b,
    uint32_t nrows, double *worst)
{
	for (uint32_t i = 0; i < nrows; i++)
		if (!sl_label_agree(a + (size_t)i * ts->rec_size,
		    b + (size_t)i * ts->rec_size, &ts->info.fmt, worst))
			return i;
	return -1;
}

/* The stored records of shard s copied into out (nrows * rec_size). */
static int
read_stored(broker *b, const teacher_sched *ts, uint64_t s, uint32_t nrows,
    uint8_t *out, sl_errmsg *why)
{
	sl_store_txn *txn = NULL;
	int rc = sl_store_read_begin(b->store, &txn, why);

	for (uint32_t i = 0; rc == 0 && i < nrows; i++) {
		const void *rec;
		size_t len;

		rc = sl_store_get_label_view(txn, ts->info.index,
		    broker_unit_first(b, ts, s) + i, broker_unit_view(ts, s),
		    &rec, &len);
		if (rc == 0 && len != ts->rec_size)
			rc = SL_EFORMAT;
		if (rc == 0)
			memcpy(out + (size_t)i * ts->rec_size, rec, len);
		else
			sl_errmsg_set(why, rc, "record %" PRIu64 ": %s",
			    broker_unit_first(b, ts, s) + i, sl_strerror(rc));
	}
	sl_store_read_end(&txn);
	return rc;
}

static dispute *
dispute_of(broker *b, uint32_t teacher, uint64_t s)
{
	for (int i = 0; i < BROKER_MAX_DISPUTES; i++)
		if (b->disputes[i].used && b->disputes[i].teacher == teacher &&
		    b->disputes[i].shard == s)
			return &b->disputes[i];
	return NULL;
}

static void
dispute_free(dispute *d)
{
	free(d->first);
	free(d->second);
	memset(d, 0, sizeof *d);
}

/* The second opinion disagrees: hold both results, delete the stored one.
 * Returns 0, or non-zero (nothing changed) with the reason in why. */
static int
open_dispute(broker *b, teacher_sched *ts, uint64_t s, const uint8_t *stored,
    const uint8_t *blob, uint32_t nrows, sl_errmsg *why)
{
	const size_t bytes = (size_t)nrows * ts->rec_size;
	sl_store_txn *txn = NULL;
	dispute *d = NULL;
	int rc;

	for (int i = 0; i < BROKER_MAX_DISPUTES && d == NULL; i++)
		if (!b->disputes[i].used)
			d = &b->disputes[i];
	if (d == NULL)
		return sl_errmsg_set(why, SL_ELIMIT, "%d disputes already wait "
		    "for a third opinion", BROKER_MAX_DISPUTES);
	d->first = malloc(bytes);
	d->second = malloc(bytes);
	if (d->first == NULL || d->second == NULL) {
		dispute_free(d);
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	}
	memcpy(d->first, stored, bytes);
	memcpy(d->second, blob, bytes);
	if ((rc = sl_store_write_begin(b->store, &txn, why)) == 0 &&
	    (rc = sl_store_reset_shard_view(txn, ts->info.index, s,
	    broker_unit_first(b, ts, s), nrows, broker_unit_view(ts, s),
	    why)) == 0)
		rc = sl_store_write_commit(&txn, why);
	sl_store_write_abort(&txn);
	if (rc != 0) {
		dispute_free(d);
		return rc;
	}
	d->used = 1;
	d->teacher = ts->info.index;
	d->shard = s;
	d->nrows = nrows;
	return 0;
}

static void
second_opinion(broker *b, worker *w, teacher_sched *ts, uint64_t s,
    const sl_msg *m)
{
	const uint32_t nrows = m->u.result.nrows, by = ts->lease.slots[s].by;
	identity *first = &b->idents[by - 1];
	uint8_t *stored = malloc((size_t)nrows * ts->rec_size);
	sl_errmsg why = { "" };
	double worst = 0;
	int64_t row;

	if (stored == NULL || read_stored(b, ts, s, nrows, stored, &why) != 0) {
		/* The stored result cannot be read back (no memory, a record
		 * gone): nothing to compare; the audit is given up. */
		char un[BROKER_UNIT_NAME];

		sl_error("audit: teacher %s %s: %s; audit given up",
		    ts->info.name, broker_unit_name(ts, s, un),
		    stored ? why.text : "out of memory");
		free(stored);
		lease_audit_pass(&ts->lease, s);
		broker_ack(b, w->id, w->idlen, s, SL_ACK_DUPLICATE,
		    "audit given up");
		return;
	}
	row = disagree(ts, stored, m->u.result.blob.p, nrows, &worst);
	if (row < 0) {
		lease_audit_pass(&ts->lease, s);
		b->audits_passed++;
		b->audit_dirty = 1;
		first->passed++;
		free(stored);
		/* Not "stored": STORED means in the cache, from this worker. */
		broker_ack(b, w->id, w->idlen, s, SL_ACK_DUPLICATE,
		    "audit: agrees with the stored result");
		return;
	}
	if (open_dispute(b, ts, s, stored, m->u.result.blob.p, nrows, &why) != 0) {
		/* Try again later: the opinion comes back with the lease. */
		char un[BROKER_UNIT_NAME];

		sl_warn("audit: teacher %s %s: %s and %s disagree but the "
		    "dispute cannot be opened (%s); the audit is retried",
		    ts->info.name, broker_unit_name(ts, s, un), first->name,
		    w->name, why.text);
		free(stored);
		lease_audit_return(&ts->lease, s, &(uint32_t){ 0 });
		broker_ack(b, w->id, w->idlen, s, SL_ACK_REJECTED,
		    "audit retried later");
		return;
	}
	free(stored);
	lease_audit_dispute(&ts->lease, s, w->ident);
	b->audits_disputed++;
	b->audit_dirty = 1;
	first->failed++;
	b->idents[w->ident - 1].failed++;
	char un[BROKER_UNIT_NAME];

	sl_warn("audit: teacher %s %s: workers %s (%s) and %s (%s) disagree at "
	    "row %" PRId64 " (by %.3g of the row's scale): both results withheld "
	    "from the cache until a third worker decides", ts->info.name,
	    broker_unit_name(ts, s, un), first->name, first->id, w->name,
	    b->idents[w->ident - 1].id, row, worst);
	broker_ack(b, w->id, w->idlen, s, SL_ACK_DUPLICATE,
	    "audit: disagrees with the stored result; held for a third opinion");
}

/* Identity ident (index + 1) is proven wrong by judge: refused now, its
 * sessions ended, its shards purged after the next commit. */
static void
refuse_identity(broker *b, uint32_t ident, const teacher_sched *ts,
    uint64_t s, const worker *judge)
{
	identity *x = &b->idents[ident - 1];
	char un[BROKER_UNIT_NAME];

	if (x->refused)
		return;
	x->refused = x->purge = 1;
	b->purge_pending = 1;
	b->idents_refused++;
	b->audit_dirty = 1;
	sl_warn("audit: worker %s (%s) proven wrong by a third opinion (worker "
	    "%s) on teacher %s %s: refused from now on; every shard it computed "
	    "is deleted and computed again", x->name, x->id, judge->name,
	    ts->info.name, broker_unit_name(ts, s, un));
	for (int i = 0; i < b->nslots; i++) {
		worker *o = &b->workers[i];

		if (!o->used || o->ident != ident)
			continue;
		session_drop_leases(b, o, "its worker was refused by an audit");
		audit_drop(b, o);
		broker_reply_reason(b, b->sock, o->id, o->idlen, SL_MSG_REFUSE,
		    "refused: an audit proved this worker's results wrong");
		o->used = 0;
	}
}

static void
third_opinion(broker *b, worker *w, teacher_sched *ts, uint64_t s,
    zmq_msg_t *frame, const sl_msg *m)
{
	const uint32_t by = ts->lease.slots[s].by, by2 = ts->lease.slots[s].by2;
	const uint32_t nrows = m->u.result.nrows;
	dispute *d = dispute_of(b, ts->info.index, s);
	int agree1 = 1, agree2 = 1;
	uint32_t prev = 0;
	worker *owner;
	double worst;

	if (d != NULL) {
		agree1 = disagree(ts, d->first, m->u.result.blob.p, nrows,
		    &worst) < 0;
		agree2 = disagree(ts, d->second, m->u.result.blob.p, nrows,
		    &worst) < 0;
		dispute_free(d);
	}
	lease_audit_settle(&ts->lease, s, agree1 || agree2, &prev);
	if ((owner = session_by_token(b, prev)) != NULL && owner->nleases > 0)
		owner->nleases--;
	if (!agree1 && !agree2) {
		b->audits_unsettled++;
		b->audit_dirty = 1;
		char un[BROKER_UNIT_NAME];

		sl_warn("audit: teacher %s %s: a third worker %s agrees with "
		    "neither %s nor %s: quarantined", ts->info.name,
		    broker_unit_name(ts, s, un), w->name,
		    b->idents[by - 1].name, b->idents[by2 - 1].name);
		if (b->nquarantine < BROKER_MAX_GROUP) {
			quarantine *q = &b->quarantined[b->nquarantine++];

			q->teacher = ts->info.index;
			q->shard = s;
			q->attempts = ts->lease.slots[s].attempts;
			snprintf(q->reason, sizeof q->reason, "audit: three "
			    "workers disagree");
		}
		broker_ack(b, w->id, w->idlen, s, SL_ACK_REJECTED,
		    "audit: three workers disagree");
		return;
	}
	b->audits_settled++;
	b->audit_dirty = 1;
	if (!agree1)
		refuse_identity(b, by, ts, s, w);
	if (!agree2)
		refuse_identity(b, by2, ts, s, w);
	broker_group_add(b, w, frame, m, s);
}

void
audit_opinion(broker *b, worker *w, teacher_sched *ts, uint64_t s,
    enum lease_verdict v, zmq_msg_t *frame, const sl_msg *m)
{
	if (v == LEASE_AUDIT) {
		if (w->nleases > 0)
			w->nleases--;
		second_opinion(b, w, ts, s, m);
	} else {
		third_opinion(b, w, ts, s, frame, m);
	}
}

typedef struct by_name {
	const char *name;
	uint64_t *shards;
	size_t n, cap;
} by_name;

static int
push_shard(by_name *c, uint64_t shard)
{
	if (c->n == c->cap) {
		const size_t cap = c->cap ? 2 * c->cap : 64;
		uint64_t *n = realloc(c->shards, cap * sizeof *n);

		if (n == NULL)
			return SL_ENOMEM;
		c->shards = n;
		c->cap = cap;
	}
	c->shards[c->n++] = shard;
	return 0;
}

static int
collect_by_name(void *arg, uint64_t shard, const sl_shard_info *info)
{
	by_name *c = arg;

	if (info->state != SL_SHARD_DONE || strcmp(info->worker, c->name) != 0)
		return 0;
	return push_shard(c, shard);
}

/* Every DONE shard of ts computed by x: this run's (by) and, by the name
 * the cache keeps for each shard, earlier runs' (a name is claimed, not
 * proven: an honest worker of the same name loses its shards too, which
 * costs only their recomputation). */
static int
purge_teacher(broker *b, teacher_sched *ts, uint32_t ident, const identity *x,
    uint64_t *npurged, sl_errmsg *why)
{
	by_name c = { x->name, NULL, 0, 0 };
	sl_store_txn *txn = NULL;
	int64_t s = 0;
	int rc;

	if ((rc = sl_store_read_begin(b->store, &txn, why)) == 0)
		rc = sl_store_each_shard(txn, ts->info.index, collect_by_name, &c);
	sl_store_read_end(&txn);
	if (rc != 0) {
		free(c.shards);
		return sl_errmsg_set(why, rc, "%s", sl_strerror(rc));
	}
	while ((s = lease_next_by(&ts->lease, (uint64_t)s, ident)) >= 0) {
		if (push_shard(&c, (uint64_t)s) != 0) {
			free(c.shards);
			return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
		}
		s++;
	}
	rc = sl_store_write_begin(b->store, &txn, why);
	for (size_t i = 0; rc == 0 && i < c.n; i++) {
		const uint64_t sh = c.shards[i];

		if (sh < ts->lease.nshards &&
		    ts->lease.slots[sh].state == SHARD_DONE)
			rc = sl_store_reset_shard_view(txn, ts->info.index, sh,
			    broker_unit_first(b, ts, sh),
			    broker_unit_nrows(b, ts, sh),
			    broker_unit_view(ts, sh), why);
	}
	if (rc == 0)
		rc = sl_store_write_commit(&txn, why);
	sl_store_write_abort(&txn);
	for (size_t i = 0; rc == 0 && i < c.n; i++) {
		const uint64_t sh = c.shards[i];

		if (sh >= ts->lease.nshards ||
		    ts->lease.slots[sh].state != SHARD_DONE)
			continue;
		audit_return(b, ts, sh);
		if (lease_purge(&ts->lease, sh))
			(*npurged)++;
	}
	free(c.shards);
	return rc;
}

void
audit_purge(broker *b)
{
	if (!b->purge_pending)
		return;
	b->purge_pending = 0;
	for (uint32_t i = 0; i < b->nidents; i++) {
		identity *x = &b->idents[i];
		uint64_t n = 0;
		sl_errmsg why = { "" };
		int rc = 0;

		if (!x->purge)
			continue;
		for (uint32_t t = 0; rc == 0 && t < b->nteachers; t++)
			if (b->teachers[t].lease.slots != NULL)
				rc = purge_teacher(b, &b->teachers[t], i + 1, x, &n,
				    &why);
		if (rc != 0) {
			/* Kept for the next pass (a full disk, say). */
			if (sl_log_limit_allow(&b->store_log, sl_net_now_ms()))
				sl_error("audit: purge of %s's shards failed: %s; "
				    "retried", x->name, why.text);
			b->purge_pending = 1;
			continue;
		}
		x->purge = 0;
		b->purged_shards += n;
		b->audit_dirty = 1;
		sl_info("audit: %" PRIu64 " shards of %s (%s) deleted from the "
		    "cache; they are computed again", n, x->name, x->id);
	}
	broker_dispatch_all(b);
}

int
audit_waiting(const broker *b, uint32_t t)
{
	const teacher_sched *ts = &b->teachers[t];

	if (ts->lease.slots == NULL || ts->lease.naudits == 0)
		return 0;
	if (ts->lease.ndisputed > 0 ||
	    lease_audit_next(&ts->lease, 0, 0, UINT64_MAX) >= 0)
		return 1;
	for (int i = 0; i < b->nslots; i++)
		if (b->workers[i].used && !b->workers[i].revoked &&
		    !b->workers[i].stopping && b->workers[i].teacher == t &&
		    lease_audit_available(&ts->lease, b->workers[i].ident))
			return 1;
	return 0;
}

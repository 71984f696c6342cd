#include "session.h"
#include "audit.h"
#include "sl_label.h"
#include "sl_log.h"
#include "sl_net.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

worker *
session_find(broker *b, const void *id, size_t idlen)
{
	for (int i = 0; i < b->nslots; i++) {
		worker *w = &b->workers[i];

		if (w->used && w->idlen == idlen && memcmp(w->id, id, idlen) == 0)
			return w;
	}
	return NULL;
}

worker *
session_by_token(broker *b, uint32_t token)
{
	for (int i = 0; i < b->nslots; i++)
		if (b->workers[i].used && b->workers[i].token == token)
			return &b->workers[i];
	return NULL;
}

void
session_grant(worker *w, uint64_t shard)
{
	w->granted[w->ngranted++ % BROKER_GRANTS] = shard;
}

int
session_was_granted(const worker *w, uint64_t shard)
{
	const uint32_t n = w->ngranted < BROKER_GRANTS ? w->ngranted : BROKER_GRANTS;

	for (uint32_t i = 0; i < n; i++)
		if (w->granted[i] == shard)
			return 1;
	return 0;
}

void
session_end_peer(broker *b, worker *w)
{
	if (w->used && w->peer >= 0) {
		peer_session_drop(&b->peers, (uint32_t)w->peer, sl_net_now_ms());
		w->peer = -1;
	}
}

/* Every lease of w goes back to the queue. */
void
session_drop_leases(broker *b, worker *w, const char *why_back)
{
	teacher_sched *ts = &b->teachers[w->teacher];
	int64_t s = 0;

	while (ts->lease.slots != NULL && w->nleases > 0 &&
	    (s = lease_next_owned(&ts->lease, (uint64_t)s, w->token)) >= 0)
		broker_return_shard(b, ts, (uint64_t)s, why_back);
	audit_drop(b, w);
	w->nleases = 0;
	w->ngranted = 0;
}

typedef struct handover {
	uint32_t resumed, returned;
} handover;

/* A worker's new session w takes over the leases of its previous one
 * (token): those the worker lists in its HELLO move to w, so its
 * heartbeats renew them; the others it never received (a TASK lost in a
 * network cut) go back to the queue now instead of at their expiry. */
static void
take_over(broker *b, teacher_sched *ts, worker *w, uint32_t token,
    const uint64_t *held, uint32_t nheld, handover *h)
{
	const uint64_t deadline = sl_net_now_ms() +
	    (uint64_t)b->cfg->lease_timeout_s * 1000;
	worker *prev = session_by_token(b, token);
	int64_t s = 0;

	while ((s = lease_next_owned(&ts->lease, (uint64_t)s, token)) >= 0) {
		uint32_t i = 0;

		while (i < nheld && held[i] != (uint64_t)s)
			i++;
		if (i == nheld) {
			broker_return_shard(b, ts, (uint64_t)s,
			    "its worker reconnected without it");
			h->returned++;
			continue;
		}
		if (prev != NULL && prev->nleases > 0)
			prev->nleases--;
		w->nleases++;
		lease_move(&ts->lease, (uint64_t)s, token, w->token, deadline);
		h->resumed++;
	}
}

/* The limits per source address (peer.c): a HELLO past its address's
 * rate, a new session past its address's share, or a new address when
 * every tracked one holds sessions, gets BUSY (the worker says HELLO
 * again after a back-off, as when every slot is taken). addr: the IP
 * over TCP, "localhost:UID:GID:PID" over ipc:// (libzmq's SO_PEERCRED);
 * NULL or "": no limit. Returns 1 if admitted, with *peer the address's
 * entry (-1: none). */
static int
peer_admitted(broker *b, const uint8_t *id, size_t idlen, const char *addr,
    int32_t *peer)
{
	static const enum remote_event ev[PEER_VERDICT_COUNT_] = {
		[PEER_RATE] = EV_PEER_RATE, [PEER_SESSIONS] = EV_PEER_SESSIONS,
		[PEER_FULL] = EV_PEER_FULL,
	};
	const broker_cfg *c = b->cfg;
	char why_text[SL_PROTO_MAX_REASON];
	enum peer_verdict v;
	uint32_t idx = 0;

	*peer = -1;
	if (addr == NULL || addr[0] == '\0')
		return 1;
	v = peer_hello(&b->peers, addr, session_find(b, id, idlen) == NULL,
	    sl_net_now_ms(), &idx);
	if (v == PEER_OK) {
		*peer = (int32_t)idx;
		return 1;
	}
	if (v == PEER_RATE)
		snprintf(why_text, sizeof why_text, "more than %g HELLOs a second "
		    "(burst %d) from %.64s (--hello-rate-per-peer)",
		    (double)c->hello_rate_per_peer, c->hello_burst_per_peer, addr);
	else if (v == PEER_SESSIONS)
		snprintf(why_text, sizeof why_text, "%.64s holds %d sessions "
		    "(--max-sessions-per-peer)", addr, c->max_sessions_per_peer);
	else
		snprintf(why_text, sizeof why_text, "all %d source addresses the "
		    "broker tracks hold sessions", BROKER_MAX_PEERS);
	b->peer_refused[v]++;
	b->busy++;
	if (broker_log_allow(b, ev[v]))
		sl_warn("refused (busy) HELLO from %.64s: %s", addr, why_text);
	broker_reply_reason(b, b->sock, id, idlen, SL_MSG_BUSY, why_text);
	return 0;
}

/* Names reach logs, status, the cache and terminals: the HELLO of a name
 * outside SL_PROTO_NAME_CHARS is refused, saying which byte. Returns 1 if
 * both names are valid. */
static int
hello_names_valid(broker *b, const uint8_t *id, size_t idlen, const sl_msg *m)
{
	const sl_bytes names[2] = { m->u.hello.worker, m->u.hello.teacher };
	const char *const what[2] = { "worker", "teacher" };
	char why_text[SL_PROTO_MAX_REASON], shown[64];
	size_t bad;

	for (int i = 0; i < 2; i++) {
		if (sl_proto_name_valid(names[i].p, names[i].len, &bad))
			continue;
		sl_log_escape(shown, sizeof shown, names[i].p,
		    names[i].len < 32 ? names[i].len : 32);
		if (bad == names[i].len)
			snprintf(why_text, sizeof why_text, "%s name of %zu bytes: "
			    "names are 1 to %d characters from %s", what[i],
			    names[i].len, SL_PROTO_MAX_NAME, SL_PROTO_NAME_CHARS);
		else
			snprintf(why_text, sizeof why_text, "%s name '%s': byte %zu "
			    "(0x%02x) is not allowed; names are 1 to %d characters "
			    "from %s", what[i], shown, bad,
			    (unsigned)((const uint8_t *)names[i].p)[bad],
			    SL_PROTO_MAX_NAME, SL_PROTO_NAME_CHARS);
		broker_reject(b, REJ_BAD_NAME, "peer", "%s", why_text);
		broker_reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why_text);
		return 0;
	}
	return 1;
}

/* The preprocessing a HELLO asks for, as the worker will run it: NaN takes
 * the default for this dataset's dtype (as the worker does on WELCOME), and
 * several channels must match the rows' first dimension. Non-zero with the
 * reason in text. */
static int
hello_preproc(const broker *b, const sl_bytes *wire, sl_preproc *out,
    char *text, size_t cap)
{
	const sl_fingerprint *fp = &b->job.dataset;
	sl_errmsg why = { "" };

	if (sl_preproc_unpack(wire->p, wire->len, out) != 0) {
		snprintf(text, cap, "preprocessing of %zu bytes: not "
		    "4 * (1 + 2 * channels)", wire->len);
		return -1;
	}
	sl_preproc_fill(out, fp->dtype);
	if (sl_preproc_check(out, fp->shape, fp->ndim, &why) != 0) {
		snprintf(text, cap, "%s", why.text);
		return -1;
	}
	return 0;
}

/* The row shape (the dataset's shape past its first dimension) as the
 * uint32 array sl_view_check_shape takes. */
static const uint32_t *
row_shape(const broker *b, uint32_t shape[SL_DATA_MAX_DIMS])
{
	for (uint32_t d = 1; d < b->job.dataset.ndim; d++)
		shape[d - 1] = (uint32_t)b->job.dataset.shape[d];
	return shape;
}

/* Who may register a teacher: with --teacher, the operator's names only
 * (and their model, when pinned); without, new names while the cache holds
 * fewer than --max-teachers. Returns 1 if t may go on to registration,
 * else refuses (REFUSE with the reason) and returns 0. */
static int
teacher_admitted(broker *b, const uint8_t *id, size_t idlen,
    const sl_store_teacher *t, const char *who)
{
	char why_text[SL_PROTO_MAX_REASON];
	uint32_t n = 0;

	if (b->nop > 0) {
		for (uint32_t i = 0; i < b->nop; i++) {
			const operator_teacher *o = &b->op[i];

			if (strcmp(o->name, t->name) != 0)
				continue;
			if (o->sha256[0] == '\0' ||
			    strcasecmp(o->sha256, t->model_sha256) == 0)
				return 1;
			snprintf(why_text, sizeof why_text, "teacher '%s' is "
			    "registered by the operator with model %.12s...; this "
			    "worker's model is %.12s...", t->name, o->sha256,
			    t->model_sha256);
			broker_reject(b, REJ_PROVENANCE, who, "%s", why_text);
			broker_reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE,
			    why_text);
			return 0;
		}
		snprintf(why_text, sizeof why_text, "teacher '%s' is not one the "
		    "operator registered (softlabel-broker --teacher)", t->name);
		broker_reject(b, REJ_UNREGISTERED, who, "%s", why_text);
		broker_reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why_text);
		return 0;
	}
	for (uint32_t i = 0; i < b->nteachers; i++) {
		if (b->teachers[i].lease.slots == NULL)
			continue;
		if (strcmp(b->teachers[i].info.name, t->name) == 0)
			return 1; /* registered: provenance is checked next */
		n++;
	}
	if (n < (uint32_t)b->cfg->max_teachers)
		return 1;
	snprintf(why_text, sizeof why_text, "the cache holds %u teachers "
	    "(--max-teachers %d): no new teacher '%s'; the operator names "
	    "teachers with --teacher", n, b->cfg->max_teachers, t->name);
	broker_reject(b, REJ_UNREGISTERED, who, "%s", why_text);
	broker_reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why_text);
	return 0;
}

/* The views t registers with: those of the cache's registration when the
 * teacher is there and the broker was given no --views (a restart without
 * the options resumes the job as it is), else the broker's (views 0 when
 * none: the store then refuses a registration with views, naming both). */
static void
views_of(const broker *b, sl_store_teacher *t)
{
	const broker_cfg *c = b->cfg;

	if (c->views == 0)
		for (uint32_t i = 0; i < b->nteachers; i++) {
			const teacher_sched *ts = &b->teachers[i];

			if (ts->lease.slots != NULL &&
			    strcmp(ts->info.name, t->name) == 0) {
				t->views = ts->info.views;
				t->view_recipe = ts->info.view_recipe;
				t->view_seed = ts->info.view_seed;
				return;
			}
		}
	t->views = (uint32_t)c->views;
	t->view_recipe = c->recipe;
	t->view_seed = c->views ? (uint64_t)c->view_seed : 0;
}

/* A worker started with views (HELLO's views > 0) must have the
 * registration's: V, recipe bytes and seed. 0 when it has them or took
 * none (it learns them from WELCOME); else the reason in text. */
static int
hello_views_differ(const sl_msg *m, const sl_store_teacher *t, char *text,
    size_t cap)
{
	uint8_t rb[SL_VIEW_RECIPE_BYTES];
	char ra[SL_VIEW_RECIPE_TEXT], rw[SL_VIEW_RECIPE_TEXT];
	sl_view_recipe wr;

	if (m->u.hello.views == 0)
		return 0;
	if (m->u.hello.views != t->views) {
		snprintf(text, cap, "teacher '%s' is registered with %u views, "
		    "this worker has %u", t->name, t->views, m->u.hello.views);
		return 1;
	}
	sl_view_recipe_pack(&t->view_recipe, rb);
	if (m->u.hello.view_recipe.len != sizeof rb ||
	    memcmp(m->u.hello.view_recipe.p, rb, sizeof rb) != 0) {
		sl_view_recipe_format(ra, sizeof ra, &t->view_recipe);
		if (sl_view_recipe_unpack(m->u.hello.view_recipe.p,
		    m->u.hello.view_recipe.len, &wr, NULL) == 0)
			sl_view_recipe_format(rw, sizeof rw, &wr);
		else
			snprintf(rw, sizeof rw, "(unreadable)");
		snprintf(text, cap, "teacher '%s' is registered with view recipe "
		    "%s, this worker has %s", t->name, ra, rw);
		return 1;
	}
	if (m->u.hello.view_seed != t->view_seed) {
		snprintf(text, cap, "teacher '%s' is registered with view seed "
		    "%" PRIu64 ", this worker has %" PRIu64, t->name,
		    t->view_seed, m->u.hello.view_seed);
		return 1;
	}
	return 0;
}

void
session_hello(broker *b, const uint8_t *id, size_t idlen, const sl_msg *m,
    const char *key, const char *addr)
{
	char name[SL_PROTO_MAX_NAME + 1], why_text[SL_ERRMSG_MAX + 64];
	sl_store_teacher t;
	sl_errmsg why = { "" };
	worker *w;
	const size_t dim = sl_dataset_dim(b->ds);
	uint32_t shape[SL_DATA_MAX_DIMS];
	int rc;

	uint32_t ident;
	int32_t peer;

	if (!peer_admitted(b, id, idlen, addr, &peer))
		return;
	if (!hello_names_valid(b, id, idlen, m))
		return;
	snprintf(name, sizeof name, "%.*s", (int)m->u.hello.worker.len,
	    (const char *)m->u.hello.worker.p);
	if ((ident = audit_identify(b, id, idlen, name, key)) == 0)
		return;
	memset(&t, 0, sizeof t);
	snprintf(t.name, sizeof t.name, "%.*s", (int)m->u.hello.teacher.len,
	    (const char *)m->u.hello.teacher.p);
	snprintf(t.model_sha256, sizeof t.model_sha256, "%.*s",
	    (int)m->u.hello.model_sha256.len,
	    (const char *)m->u.hello.model_sha256.p);
	t.temperature = m->u.hello.temperature;
	t.fmt = m->u.hello.fmt;
	if (hello_preproc(b, &m->u.hello.preproc, &t.pre, why_text,
	    sizeof why_text) != 0) {
		broker_reject(b, REJ_BAD_HELLO, name, "%s", why_text);
		broker_reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why_text);
		return;
	}
	t.has_pre = 1;

	if (m->u.hello.input_dim != dim) {
		snprintf(why_text, sizeof why_text, "model takes %u inputs, the "
		    "dataset's rows have %zu values", m->u.hello.input_dim, dim);
		broker_reject(b, REJ_BAD_HELLO, name, "%s", why_text);
		broker_reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why_text);
		return;
	}
	if (m->u.hello.dataset_sha256.len == 32 &&
	    memcmp(m->u.hello.dataset_sha256.p, b->job.dataset.sha256, 32) != 0) {
		snprintf(why_text, sizeof why_text, "the worker's --dataset has "
		    "another fingerprint than the job's %.200s", b->job.dataset_path);
		broker_reject(b, REJ_DATASET, name, "%s", why_text);
		broker_reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why_text);
		return;
	}
	if ((uint64_t)sl_label_size(&t.fmt) * b->job.shard_rows + 4096 >
	    (uint64_t)b->cfg->max_msg_bytes) {
		snprintf(why_text, sizeof why_text, "a shard of %u records of "
		    "%zu bytes exceeds the message limit of %" PRId64 " bytes",
		    b->job.shard_rows, sl_label_size(&t.fmt),
		    b->cfg->max_msg_bytes);
		broker_reject(b, REJ_BAD_HELLO, name, "%s", why_text);
		broker_reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why_text);
		return;
	}
	if (!teacher_admitted(b, id, idlen, &t, name))
		return;
	views_of(b, &t);
	if (t.views > 0 && (rc = sl_view_check_shape(&t.view_recipe,
	    (int)b->job.dataset.ndim - 1, row_shape(b, shape), &why)) != 0) {
		broker_reject(b, REJ_BAD_HELLO, name, "%s", why.text);
		broker_reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why.text);
		return;
	}
	rc = sl_store_register_teacher(b->store, &t, &why);
	if (rc == SL_EMISMATCH) {
		broker_reject(b, REJ_PROVENANCE, name, "%s", why.text);
		broker_reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why.text);
		return;
	}
	if (rc != 0) {
		if (broker_log_allow(b, EV_REGISTER_FAILED))
			sl_error("register teacher %s: %s", t.name, why.text);
		broker_reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why.text);
		return;
	}
	if (hello_views_differ(m, &t, why_text, sizeof why_text)) {
		broker_reject(b, REJ_PROVENANCE, name, "%s", why_text);
		broker_reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why_text);
		return;
	}
	if (b->teachers[t.index].lease.slots == NULL) {
		if (broker_load_teacher(b, &t) != 0) {
			broker_reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE,
			    "broker could not load the teacher's shards");
			return;
		}
		if (t.views > 0) {
			char rt[SL_VIEW_RECIPE_TEXT];

			sl_view_recipe_format(rt, sizeof rt, &t.view_recipe);
			sl_info("teacher %s registered as index %u: model "
			    "%.12s..., T=%g, %u classes, %u views (recipe %s, "
			    "seed %" PRIu64 ")", t.name, t.index, t.model_sha256,
			    (double)t.temperature, t.fmt.classes, t.views, rt,
			    t.view_seed);
		} else {
			sl_info("teacher %s registered as index %u: model "
			    "%.12s..., T=%g, %u classes", t.name, t.index,
			    t.model_sha256, (double)t.temperature,
			    t.fmt.classes);
		}
	}

	int same_connection = 1;

	if ((w = session_find(b, id, idlen)) == NULL) {
		same_connection = 0;
		/* Reuse a forgotten slot before growing the scanned range. */
		for (int i = 0; i < b->nslots && w == NULL; i++)
			if (!b->workers[i].used)
				w = &b->workers[i];
		if (w == NULL && b->nslots < b->cfg->max_workers)
			w = &b->workers[b->nslots++];
		/* Then one whose connection is gone and that holds nothing. */
		for (int i = 0; i < b->nslots && w == NULL; i++)
			if (b->workers[i].disconnected &&
			    b->workers[i].nleases == 0)
				w = &b->workers[i];
		if (w == NULL) {
			/* Not the worker's fault: BUSY, and it says HELLO again
			 * after a back-off (a session whose connection closed
			 * gives up its slot, a silent one is forgotten after a
			 * lease period). */
			b->busy++;
			if (broker_log_allow(b, EV_BUSY))
				sl_warn("refused (busy) HELLO of %s: all %d worker "
				    "slots taken", name, b->cfg->max_workers);
			broker_reply_reason(b, b->sock, id, idlen, SL_MSG_BUSY,
			    "every worker slot of the broker is taken");
			return;
		}
	}
	/* A repeated HELLO on the same connection starts a new session too. */
	const uint32_t old_token = same_connection && w->used ? w->token : 0;
	session_end_peer(b, w);
	memset(w, 0, sizeof *w);
	w->used = 1;
	w->peer = peer;
	if (peer >= 0)
		peer_session_add(&b->peers, (uint32_t)peer);
	memcpy(w->id, id, idlen);
	w->idlen = idlen;
	w->token = b->next_token++;
	w->fd = -1;
	w->ident = ident;
	snprintf(w->name, sizeof w->name, "%s", name);
	w->teacher = t.index;
	w->ship_rows = m->u.hello.dataset_sha256.len == 0;
	w->last_seen_ms = w->hello_ms = sl_net_now_ms();
	if (key != NULL)
		memcpy(w->key.z85, key, SL_CURVE_Z85_LEN);

	/* Results and tasks the worker still holds from before a reconnect or
	 * a broker restart: it may answer for them. */
	teacher_sched *ts = &b->teachers[t.index];
	for (uint32_t i = 0; i < m->u.hello.nheld; i++)
		if (m->u.hello.held[i] < ts->lease.nshards)
			session_grant(w, m->u.hello.held[i]);
	/* Its previous session, if the broker still has it (the same slot
	 * after a repeated HELLO, or the same name and key on an earlier
	 * connection), ends here: see take_over. */
	handover h = { 0, 0 };
	if (old_token != 0)
		take_over(b, ts, w, old_token, m->u.hello.held,
		    m->u.hello.nheld, &h);
	for (int i = 0; i < b->nslots; i++) {
		worker *prev = &b->workers[i];

		if (prev->used && prev != w && prev->teacher == w->teacher &&
		    strcmp(prev->name, w->name) == 0 &&
		    strcmp(prev->key.z85, w->key.z85) == 0) {
			take_over(b, ts, w, prev->token, m->u.hello.held,
			    m->u.hello.nheld, &h);
			session_end_peer(b, prev);
			prev->used = 0;
		}
	}

	sl_msg r;
	memset(&r, 0, sizeof r);
	r.type = SL_MSG_WELCOME;
	r.u.welcome.teacher_index = t.index;
	r.u.welcome.heartbeat_ms = SL_NET_HEARTBEAT_MS;
	r.u.welcome.lease_timeout_ms = (uint32_t)b->cfg->lease_timeout_s * 1000;
	r.u.welcome.rows = sl_dataset_rows(b->ds);
	r.u.welcome.shard_rows = b->job.shard_rows;
	r.u.welcome.row_bytes = (uint32_t)b->row_bytes;
	r.u.welcome.dtype = sl_dataset_dtype(b->ds);
	r.u.welcome.max_msg_bytes = (uint64_t)b->cfg->max_msg_bytes;
	uint8_t rb[SL_VIEW_RECIPE_BYTES];
	if (t.views > 0) {
		sl_view_recipe_pack(&t.view_recipe, rb);
		r.u.welcome.views = t.views;
		r.u.welcome.view_recipe.p = rb;
		r.u.welcome.view_recipe.len = sizeof rb;
		r.u.welcome.view_seed = t.view_seed;
		r.u.welcome.view_h = shape[b->job.dataset.ndim - 3];
		r.u.welcome.view_w = shape[b->job.dataset.ndim - 2];
	}
	broker_reply(b, b->sock, id, idlen, &r);
	b->hellos++;
	if (broker_log_allow(b, EV_JOINED))
		sl_info("worker %s joined for teacher %s (%s, %u held shards; "
		    "from its previous session %u leases resumed, %u returned)",
		    w->name, t.name, w->ship_rows ? "rows shipped" :
		    "local dataset", m->u.hello.nheld, h.resumed, h.returned);
	if (h.returned > 0)
		broker_dispatch_all(b);
	(void)ts;
}

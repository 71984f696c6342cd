#include "broker.h"
#include "repair.h"
#include "sl_label.h"
#include "sl_log.h"
#include "sl_net.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const broker_reject_names[REJ_COUNT_] = {
	[REJ_MALFORMED] = "malformed",
	[REJ_OVERSIZE] = "oversize",
	[REJ_BAD_HELLO] = "bad_hello",
	[REJ_PROVENANCE] = "provenance",
	[REJ_DATASET] = "dataset_mismatch",
	[REJ_WRONG_TEACHER] = "wrong_teacher",
	[REJ_UNKNOWN_SHARD] = "unknown_shard",
	[REJ_NOT_LEASED] = "not_leased",
	[REJ_QUARANTINED] = "quarantined",
	[REJ_WRONG_ROWS] = "wrong_rows",
	[REJ_WRONG_SIZE] = "wrong_size",
	[REJ_BAD_RECORD] = "bad_record",
	[REJ_STORE] = "store_error",
};

const char *const broker_auth_names[AUTH_COUNT_] = {
	[AUTH_PLAINTEXT] = "plaintext",
	[AUTH_UNKNOWN_KEY] = "unknown_key",
	[AUTH_HANDSHAKE] = "handshake_failed",
	[AUTH_REVOKED] = "revoked",
};

#define MONITOR_ENDPOINT "inproc://softlabel-broker-monitor"

/* --- job ------------------------------------------------------------------ */

static uint32_t
shard_nrows(const broker *b, uint64_t shard)
{
	const uint64_t rows = sl_dataset_rows(b->ds);
	const uint64_t first = shard * b->job.shard_rows;

	return (uint32_t)(rows - first < b->job.shard_rows ? rows - first :
	    b->job.shard_rows);
}

static int
open_job(broker *b)
{
	const broker_cfg *c = b->cfg;
	sl_store_opts so = { 0, c->nosync, 0 };
	sl_fingerprint fp;
	sl_errmsg why = { "" };
	int rc;

	if ((rc = sl_dataset_open(c->dataset, &b->ds, &why)) != 0) {
		sl_error("%s: %s", c->dataset, why.text);
		return 1;
	}
	if ((rc = sl_dataset_fingerprint(b->ds, &fp)) != 0) {
		sl_error("%s: fingerprint: %s", c->dataset, sl_strerror(rc));
		return 1;
	}
	if ((rc = sl_store_open(c->store, &so, &b->store, &why)) != 0) {
		sl_error("%s: %s", c->store, why.text);
		return 1;
	}
	rc = sl_store_get_job(b->store, &b->job, &why);
	if (rc == SL_ENOTFOUND) {
		memset(&b->job, 0, sizeof b->job);
		snprintf(b->job.dataset_path, sizeof b->job.dataset_path, "%s",
		    c->dataset);
		b->job.dataset = fp;
		b->job.shard_rows = (uint32_t)c->shard_rows;
		if ((rc = sl_store_init_job(b->store, &b->job, &why)) != 0) {
			sl_error("%s: %s", c->store, why.text);
			return 1;
		}
		sl_info("new job in %s: %" PRIu64 " rows of %s, %u rows per shard",
		    c->store, fp.rows, c->dataset, b->job.shard_rows);
	} else if (rc != 0) {
		sl_error("%s: %s", c->store, why.text);
		return 1;
	} else if (memcmp(b->job.dataset.sha256, fp.sha256, 32) != 0 ||
	    b->job.dataset.rows != fp.rows) {
		sl_error("%s: the cache was made from a different dataset "
		    "(%s, %" PRIu64 " rows); %s has %" PRIu64 " rows and another "
		    "fingerprint: refusing to mix them", c->store,
		    b->job.dataset_path, b->job.dataset.rows, c->dataset, fp.rows);
		return 2;
	} else {
		if ((uint32_t)c->shard_rows != b->job.shard_rows)
			sl_warn("--shard-rows %d ignored: the job uses %u",
			    c->shard_rows, b->job.shard_rows);
		sl_info("resuming job in %s", c->store);
	}
	b->row_bytes = sl_dataset_dim(b->ds) *
	    (sl_dataset_dtype(b->ds) == SL_DTYPE_U8 ? 1 : 4);
	b->nshards = (fp.rows + b->job.shard_rows - 1) / b->job.shard_rows;
	return 0;
}

/* Load a teacher's shard states from the cache into a scheduler. */
static int
load_teacher(broker *b, const sl_store_teacher *t)
{
	teacher_sched *ts = &b->teachers[t->index];
	uint8_t *state;
	sl_errmsg why = { "" };
	int rc;

	memset(ts, 0, sizeof *ts);
	ts->info = *t;
	ts->rec_size = sl_label_size(&t->fmt);
	ts->slots = calloc(b->nshards ? b->nshards : 1, sizeof *ts->slots);
	state = calloc(b->nshards ? b->nshards : 1, 1);
	if (ts->slots == NULL || state == NULL) {
		free(state);
		return SL_ENOMEM;
	}
	rc = sl_store_shard_states(b->store, t->index, state, b->nshards, &why);
	if (rc != 0) {
		sl_error("%s: teacher %s: %s", b->cfg->store, t->name, why.text);
		free(state);
		return rc;
	}
	for (uint64_t s = 0; s < b->nshards; s++) {
		if (state[s] == SL_SHARD_DONE) {
			ts->slots[s].state = SHARD_DONE;
			ts->ndone++;
		} else if (state[s] == SL_SHARD_QUARANTINED) {
			ts->slots[s].state = SHARD_QUARANTINED;
			ts->nquarantined++;
		}
	}
	free(state);
	ts->done_at_start = ts->ndone;
	ts->rate_t_ms = sl_net_now_ms();
	if (t->index >= b->nteachers)
		b->nteachers = t->index + 1;
	return 0;
}

/* --- CURVE ------------------------------------------------------------------- */

/* Keys and allow-list, before anything else is opened: a bad key file is a
 * usage error (exit 2) naming the file. */
static int
curve_load(broker *b)
{
	const broker_cfg *c = b->cfg;
	sl_errmsg why = { "" };

	if (!zmq_has("curve")) {
		sl_error("--curve-secret: this libzmq was built without CURVE");
		return 2;
	}
	if (sl_curve_load_pair(c->curve_secret, &b->secret, &b->pub, &why) != 0) {
		sl_error("--curve-secret: %s", why.text);
		return 2;
	}
	if (sl_curve_allow_load(c->allow_keys, &b->allow, &why) != 0) {
		sl_error("--allow-keys: %s", why.text);
		return 2;
	}
	if (sl_curve_allow_count(b->allow) == 0)
		sl_warn("--allow-keys %s holds no *.pub file: no worker can "
		    "connect until keys are added and the broker gets SIGHUP",
		    c->allow_keys);
	return 0;
}

/* The ZAP handler goes up before any CURVE socket binds: libzmq admits
 * every key when no handler answers. Then it must refuse a key nobody
 * put on the list, and plaintext, or the broker does not start. */
static int
zap_open(broker *b)
{
	sl_curve_key p, s;
	uint8_t bin[32];

	if ((b->zap = zmq_socket(b->zctx, ZMQ_REP)) == NULL ||
	    zmq_bind(b->zap, SL_CURVE_ZAP_ENDPOINT) != 0) {
		sl_error("ZAP handler %s: %s", SL_CURVE_ZAP_ENDPOINT,
		    zmq_strerror(zmq_errno()));
		return 1;
	}
	if (zmq_curve_keypair(p.z85, s.z85) != 0 ||
	    zmq_z85_decode(bin, p.z85) == NULL) {
		sl_error("self-check: zmq_curve_keypair: %s",
		    zmq_strerror(zmq_errno()));
		return 1;
	}
	memset(&s, 0, sizeof s);
	if (sl_curve_decide(b->allow, "CURVE", 5, bin, sizeof bin, NULL) ==
	    SL_CURVE_ADMIT || sl_curve_decide(b->allow, "NULL", 4, NULL, 0,
	    NULL) == SL_CURVE_ADMIT) {
		sl_error("self-check failed: the ZAP handler admits a random "
		    "key or plaintext; refusing to start");
		return 1;
	}
	sl_info("ZAP self-check passed: a random key and plaintext are refused");
	return 0;
}

/* Make a ROUTER a CURVE server under our ZAP domain; before its bind. */
static int
curve_server(broker *b, void *sock)
{
	const int one = 1;

	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, b->secret.z85,
	    SL_CURVE_Z85_LEN) != 0 ||
	    zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, SL_CURVE_ZAP_DOMAIN,
	    strlen(SL_CURVE_ZAP_DOMAIN)) != 0) {
		sl_error("CURVE server options: %s", zmq_strerror(zmq_errno()));
		return 1;
	}
	return 0;
}

/* Handshake failures never reach ZAP (a wrong server key fails in the
 * crypto box, plaintext at the mechanism check): the socket monitor sees
 * them. */
static int
monitor_open(broker *b)
{
	const int events = ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
	    ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;

	if (zmq_socket_monitor(b->sock, MONITOR_ENDPOINT, events) != 0 ||
	    (b->monitor = zmq_socket(b->zctx, ZMQ_PAIR)) == NULL ||
	    zmq_connect(b->monitor, MONITOR_ENDPOINT) != 0) {
		sl_error("socket monitor: %s", zmq_strerror(zmq_errno()));
		return 1;
	}
	return 0;
}

/* Count a refused connection. A refused client reconnects every few
 * hundred ms, so the log gets the first of a reason and then one line per
 * 10 s with the total; status has every count. */
static void
auth_refuse(broker *b, enum auth_reason r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
auth_refuse(broker *b, enum auth_reason r, const char *fmt, ...)
{
	const uint64_t now = sl_net_now_ms();
	char text[256];
	va_list ap;

	b->auth_refused[r]++;
	if (b->auth_logged_ms[r] != 0 && now - b->auth_logged_ms[r] < 10000)
		return;
	b->auth_logged_ms[r] = now;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	sl_warn("refused connection (%s): %s (%" PRIu64 " so far)",
	    broker_auth_names[r], text, b->auth_refused[r]);
}

static void
zap_poll(broker *b)
{
	enum sl_curve_verdict v;

	while (sl_curve_zap_serve(b->zap, b->allow, &v) == 0) {
		if (v == SL_CURVE_PLAINTEXT)
			auth_refuse(b, AUTH_PLAINTEXT, "CURVE required");
		else if (v == SL_CURVE_UNKNOWN_KEY || v == SL_CURVE_BAD_REQUEST)
			auth_refuse(b, AUTH_UNKNOWN_KEY, "public key not on the "
			    "allow-list");
	}
}

static void
monitor_poll(broker *b)
{
	for (;;) {
		zmq_msg_t ev, addr;
		uint16_t event;
		uint32_t value;

		zmq_msg_init(&ev);
		if (zmq_msg_recv(&ev, b->monitor, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&ev);
			return;
		}
		zmq_msg_init(&addr);
		zmq_msg_recv(&addr, b->monitor, 0);
		if (zmq_msg_size(&ev) >= 6) {
			memcpy(&event, zmq_msg_data(&ev), 2);
			memcpy(&value, (const uint8_t *)zmq_msg_data(&ev) + 2, 4);
			/* A ZAP refusal also shows here as FAILED_AUTH: counted
			 * once, by the handler, which knows why. */
			if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
			    value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
				auth_refuse(b, AUTH_PLAINTEXT, "CURVE required");
			else if (event != ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
				auth_refuse(b, AUTH_HANDSHAKE, "event 0x%x, value "
				    "0x%x (0x%x: the client has another server "
				    "key)", event, value,
				    ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC);
		}
		zmq_msg_close(&ev);
		zmq_msg_close(&addr);
	}
}

static void drop_leases(broker *b, worker *w, const char *why_back);

/* SIGHUP: a new list replaces the old one whole, or not at all. Sessions
 * whose key left it are revoked: their leases go back now, and their next
 * message is refused. */
static void
reload_allow(broker *b)
{
	sl_curve_allow *a = NULL;
	sl_errmsg why = { "" };

	if (b->allow == NULL) {
		sl_info("SIGHUP ignored: no --allow-keys");
		return;
	}
	if (sl_curve_allow_load(b->cfg->allow_keys, &a, &why) != 0) {
		sl_error("allow-list not reloaded, the old one stays: %s",
		    why.text);
		return;
	}
	sl_curve_allow_free(&b->allow);
	b->allow = a;
	sl_info("allow-list reloaded: %zu keys", sl_curve_allow_count(a));
	for (int i = 0; i < b->nslots; i++) {
		worker *w = &b->workers[i];

		if (!w->used || w->revoked || w->key.z85[0] == '\0' ||
		    sl_curve_allow_has(a, w->key.z85))
			continue;
		w->revoked = 1;
		drop_leases(b, w, "key revoked");
		sl_warn("worker %s revoked: key %.8s... left the allow-list",
		    w->name, w->key.z85);
	}
}

int
broker_open(broker *b, const broker_cfg *cfg, volatile sig_atomic_t *stop)
{
	sl_store_teacher ts[SL_STORE_MAX_TEACHERS];
	sl_errmsg why = { "" };
	size_t n;
	int rc;

	memset(b, 0, sizeof *b);
	b->cfg = cfg;
	b->stop = stop;
	b->start_ms = sl_net_now_ms();
	b->next_token = 1;
	if (cfg->curve_secret != NULL && (rc = curve_load(b)) != 0)
		return rc;
	if ((rc = open_job(b)) != 0)
		return rc;
	if (cfg->recompute_corrupt &&
	    broker_recompute_corrupt(b->store, &b->job, b->nshards) != 0)
		return 1;
	if (sl_store_teachers(b->store, ts, SL_STORE_MAX_TEACHERS, &n, &why) != 0) {
		sl_error("%s: %s", cfg->store, why.text);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (load_teacher(b, &ts[i]) != 0)
			return 1;
		sl_info("teacher %s (index %u): %" PRIu64 "/%" PRIu64 " shards "
		    "done, %" PRIu64 " quarantined", ts[i].name, ts[i].index,
		    b->teachers[ts[i].index].ndone, b->nshards,
		    b->teachers[ts[i].index].nquarantined);
	}
	b->workers = calloc(BROKER_MAX_WORKERS, sizeof *b->workers);
	b->zctx = zmq_ctx_new();
	if (b->workers == NULL || b->zctx == NULL) {
		sl_error("out of memory");
		return 1;
	}
	if (b->allow != NULL && (rc = zap_open(b)) != 0)
		return rc;
	/* libzmq drops a connection whose message exceeds its limit; twice
	 * ours lets a message just over it through to be refused and counted. */
	if (sl_net_socket(b->zctx, ZMQ_ROUTER, cfg->max_msg_bytes * 2, &b->sock,
	    &why) != 0) {
		sl_error("%s", why.text);
		return 1;
	}
	if (b->allow != NULL && ((rc = curve_server(b, b->sock)) != 0 ||
	    (rc = monitor_open(b)) != 0))
		return rc;
	if (zmq_bind(b->sock, cfg->bind) != 0) {
		sl_error("--bind %s: %s", cfg->bind, zmq_strerror(zmq_errno()));
		return zmq_errno() == EINVAL || zmq_errno() == EPROTONOSUPPORT ? 2 : 1;
	}
	if (cfg->status_bind != NULL) {
		if (sl_net_socket(b->zctx, ZMQ_ROUTER, 65536, &b->status_sock,
		    &why) != 0 || (b->allow != NULL &&
		    curve_server(b, b->status_sock) != 0) ||
		    zmq_bind(b->status_sock, cfg->status_bind) != 0) {
			sl_error("--status-bind %s: %s", cfg->status_bind,
			    why.text[0] ? why.text : zmq_strerror(zmq_errno()));
			return 1;
		}
	}
	return 0;
}

void
broker_close(broker *b)
{
	/* Let the last DONE and ACK frames leave before the socket goes. */
	if (b->sock != NULL) {
		int linger = 1000;

		zmq_setsockopt(b->sock, ZMQ_LINGER, &linger, sizeof linger);
	}
	for (uint32_t i = 0; i < b->ngroup; i++)
		zmq_msg_close(&b->group[i].frame);
	for (uint32_t t = 0; t < b->nteachers; t++)
		free(b->teachers[t].slots);
	if (b->sock != NULL && b->monitor != NULL)
		zmq_socket_monitor(b->sock, NULL, 0);
	sl_net_close(&b->sock);
	sl_net_close(&b->status_sock);
	sl_net_close(&b->monitor);
	sl_net_close(&b->zap);
	sl_curve_allow_free(&b->allow);
	memset(&b->secret, 0, sizeof b->secret);
	if (b->zctx != NULL)
		zmq_ctx_term(b->zctx);
	free(b->workers);
	sl_proto_buf_fini(&b->out);
	sl_store_close(&b->store);
	sl_dataset_close(&b->ds);
}

/* --- workers ---------------------------------------------------------------- */

static worker *
find_worker(broker *b, const void *id, size_t idlen)
{
	for (int i = 0; i < b->nslots; i++) {
		worker *w = &b->workers[i];

		if (w->used && w->idlen == idlen && memcmp(w->id, id, idlen) == 0)
			return w;
	}
	return NULL;
}

static worker *
worker_by_token(broker *b, uint32_t token)
{
	for (int i = 0; i < b->nslots; i++)
		if (b->workers[i].used && b->workers[i].token == token)
			return &b->workers[i];
	return NULL;
}

static void
grant(worker *w, uint64_t shard)
{
	w->granted[w->ngranted++ % BROKER_GRANTS] = shard;
}

static int
was_granted(const worker *w, uint64_t shard)
{
	const uint32_t n = w->ngranted < BROKER_GRANTS ? w->ngranted : BROKER_GRANTS;

	for (uint32_t i = 0; i < n; i++)
		if (w->granted[i] == shard)
			return 1;
	return 0;
}

/* --- replies ---------------------------------------------------------------- */

static void
reply(broker *b, void *sock, const void *id, size_t idlen, const sl_msg *m)
{
	int rc = sl_net_send_to(sock, id, idlen, m, &b->out);

	/* EHOSTUNREACH: the peer went away; its results, if any, are kept
	 * by the worker and come back after its reconnect. */
	if (rc != 0 && rc != EHOSTUNREACH && rc != EAGAIN)
		sl_warn("send %s: %s", sl_proto_type_name(m->type),
		    zmq_strerror(rc));
}

/* A reason as the protocol carries it: at most SL_PROTO_MAX_REASON bytes. */
static sl_bytes
reason_bytes(const char *reason)
{
	sl_bytes r = sl_bytes_str(reason ? reason : "");

	if (r.len > SL_PROTO_MAX_REASON)
		r.len = SL_PROTO_MAX_REASON;
	return r;
}

static void
reply_reason(broker *b, void *sock, const void *id, size_t idlen,
    enum sl_msg_type type, const char *reason)
{
	sl_msg m;

	memset(&m, 0, sizeof m);
	m.type = type;
	m.u.refuse.reason = reason_bytes(reason);
	reply(b, sock, id, idlen, &m);
}

static void
ack(broker *b, const void *id, size_t idlen, uint64_t shard,
    enum sl_ack_status status, const char *reason)
{
	sl_msg m;

	memset(&m, 0, sizeof m);
	m.type = SL_MSG_ACK;
	m.u.ack.shard = shard;
	m.u.ack.status = status;
	m.u.ack.reason = reason_bytes(reason);
	reply(b, b->sock, id, idlen, &m);
}

/* --- scheduling ------------------------------------------------------------- */

static void
return_shard(broker *b, teacher_sched *ts, uint64_t s, const char *why_back)
{
	shard_slot *slot = &ts->slots[s];
	worker *owner;

	if (slot->state == SHARD_LEASED) {
		ts->nleased--;
		if ((owner = worker_by_token(b, slot->owner)) != NULL &&
		    owner->nleases > 0)
			owner->nleases--;
	}
	slot->owner = 0;
	if (slot->attempts >= b->cfg->max_attempts &&
	    b->nquarantine < BROKER_MAX_GROUP) {
		quarantine *q = &b->quarantined[b->nquarantine++];

		slot->state = SHARD_QUARANTINED;
		ts->nquarantined++;
		q->teacher = ts->info.index;
		q->shard = s;
		q->attempts = slot->attempts;
		snprintf(q->reason, sizeof q->reason, "%u attempts, last: %s",
		    slot->attempts, why_back);
		sl_warn("teacher %s shard %" PRIu64 " quarantined after %u "
		    "attempts (last: %s)", ts->info.name, s, slot->attempts,
		    why_back);
		return;
	}
	slot->state = SHARD_PENDING;
	if (s < ts->scan)
		ts->scan = s;
}

/* Every lease of w goes back to the queue. */
static void
drop_leases(broker *b, worker *w, const char *why_back)
{
	teacher_sched *ts = &b->teachers[w->teacher];

	for (uint64_t s = 0; ts->slots != NULL && s < b->nshards &&
	    w->nleases > 0; s++)
		if (ts->slots[s].state == SHARD_LEASED &&
		    ts->slots[s].owner == w->token)
			return_shard(b, ts, s, why_back);
	w->nleases = 0;
	w->ngranted = 0;
}

static int64_t
next_pending(broker *b, teacher_sched *ts)
{
	for (uint64_t i = 0; i < b->nshards; i++) {
		uint64_t s = (ts->scan + i) % b->nshards;

		if (ts->slots[s].state == SHARD_PENDING) {
			ts->scan = s + 1;
			return (int64_t)s;
		}
	}
	return -1;
}

static int
teacher_finished(const broker *b, const teacher_sched *ts)
{
	return ts->ndone + ts->nquarantined == b->nshards;
}

static void
send_task(broker *b, worker *w, uint64_t s)
{
	sl_msg m;
	const uint32_t n = shard_nrows(b, s);

	memset(&m, 0, sizeof m);
	m.type = SL_MSG_TASK;
	m.u.task.shard = s;
	m.u.task.first_row = s * b->job.shard_rows;
	m.u.task.nrows = n;
	if (w->ship_rows) {
		m.u.task.data.p = sl_dataset_row(b->ds, m.u.task.first_row);
		m.u.task.data.len = (size_t)n * b->row_bytes;
	}
	reply(b, b->sock, w->id, w->idlen, &m);
}

/* Lease shards to w until its credit is used or nothing is pending. */
static void
dispatch(broker *b, worker *w)
{
	teacher_sched *ts = &b->teachers[w->teacher];
	const uint64_t now = sl_net_now_ms();
	int64_t s;

	if (*b->stop || w->revoked)
		return;
	/* Lease only to a worker heard from lately: one that stopped talking
	 * (hung, stopped, cut off) would otherwise get back the very shards
	 * whose leases it just let expire. */
	if (now - w->last_seen_ms > 2 * (uint64_t)SL_NET_HEARTBEAT_MS)
		return;
	/* Nor to a stalled one: its heartbeats would let them expire too,
	 * attempt after attempt, until the shards are quarantined. */
	while (!w->stalled && w->nleases < w->credit &&
	    (s = next_pending(b, ts)) >= 0) {
		shard_slot *slot = &ts->slots[s];

		slot->state = SHARD_LEASED;
		slot->owner = w->token;
		slot->deadline_ms = now + (uint64_t)b->cfg->lease_timeout_s * 1000;
		if (slot->attempts < 255)
			slot->attempts++;
		ts->nleased++;
		w->nleases++;
		grant(w, (uint64_t)s);
		send_task(b, w, (uint64_t)s);
	}
	if (w->nleases == 0 && teacher_finished(b, ts))
		reply_reason(b, b->sock, w->id, w->idlen, SL_MSG_DONE,
		    "every shard of this teacher is done");
}

static void
dispatch_all(broker *b)
{
	for (int i = 0; i < b->nslots; i++)
		if (b->workers[i].used &&
		    b->workers[i].nleases < b->workers[i].credit)
			dispatch(b, &b->workers[i]);
}

/* Leases past their deadline go back to the queue; workers silent for a
 * whole lease period are forgotten (they come back with HELLO). */
static void
expire(broker *b)
{
	const uint64_t now = sl_net_now_ms();
	int returned = 0;

	for (uint32_t t = 0; t < b->nteachers; t++) {
		teacher_sched *ts = &b->teachers[t];

		if (ts->slots == NULL || ts->nleased == 0)
			continue;
		for (uint64_t s = 0; s < b->nshards; s++) {
			shard_slot *slot = &ts->slots[s];

			if (slot->state != SHARD_LEASED || slot->deadline_ms > now)
				continue;
			worker *w = worker_by_token(b, slot->owner);
			sl_warn("lease expired: teacher %s shard %" PRIu64
			    " worker %s (attempt %u)", ts->info.name, s,
			    w ? w->name : "(gone)", slot->attempts);
			/* Heard from since the lease's last renewal, yet no
			 * renewal: alive, but its teacher is stuck. (A worker
			 * that died or was cut off is silent, and gets no
			 * leases anyway until it is heard from again.) */
			if (w != NULL && !w->stalled && w->last_seen_ms +
			    (uint64_t)b->cfg->lease_timeout_s * 1000 >
			    slot->deadline_ms) {
				w->stalled = 1;
				sl_warn("worker %s is heard from but did not renew "
				    "its lease: its teacher is stalled; no new "
				    "leases until it renews one, sends a result "
				    "or says READY", w->name);
			}
			return_shard(b, ts, s, "lease expired");
			returned = 1;
		}
	}
	for (int i = 0; i < b->nslots; i++) {
		worker *w = &b->workers[i];

		if (w->used && now - w->last_seen_ms >
		    (uint64_t)b->cfg->lease_timeout_s * 1000 + 1000 &&
		    w->nleases == 0) {
			sl_info("worker %s silent for %" PRIu64 " ms: forgotten",
			    w->name, now - w->last_seen_ms);
			w->used = 0;
		}
	}
	if (returned)
		dispatch_all(b);
}

/* --- messages ---------------------------------------------------------------- */

static void
reject(broker *b, enum reject_reason r, const char *who, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
reject(broker *b, enum reject_reason r, const char *who, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	b->rejected[r]++;
	sl_warn("rejected (%s) from %s: %s", broker_reject_names[r], who, text);
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
	worker *prev = worker_by_token(b, token);

	for (uint64_t s = 0; s < b->nshards; s++) {
		shard_slot *slot = &ts->slots[s];
		uint32_t i = 0;

		if (slot->state != SHARD_LEASED || slot->owner != token)
			continue;
		while (i < nheld && held[i] != s)
			i++;
		if (i == nheld) {
			return_shard(b, ts, s, "its worker reconnected without it");
			h->returned++;
			continue;
		}
		if (prev != NULL && prev->nleases > 0)
			prev->nleases--;
		w->nleases++;
		slot->owner = w->token;
		slot->deadline_ms = deadline;
		h->resumed++;
	}
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

static void
on_hello(broker *b, const uint8_t *id, size_t idlen, const sl_msg *m,
    const char *key)
{
	char name[SL_PROTO_MAX_NAME + 1], why_text[SL_ERRMSG_MAX + 64];
	sl_store_teacher t;
	sl_errmsg why = { "" };
	worker *w;
	const size_t dim = sl_dataset_dim(b->ds);
	int rc;

	snprintf(name, sizeof name, "%.*s", (int)m->u.hello.worker.len,
	    (const char *)m->u.hello.worker.p);
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
		reject(b, REJ_BAD_HELLO, name, "%s", why_text);
		reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why_text);
		return;
	}
	t.has_pre = 1;

	if (m->u.hello.input_dim != dim) {
		snprintf(why_text, sizeof why_text, "model takes %u inputs, the "
		    "dataset's rows have %zu values", m->u.hello.input_dim, dim);
		reject(b, REJ_BAD_HELLO, name, "%s", why_text);
		reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why_text);
		return;
	}
	if (m->u.hello.dataset_sha256.len == 32 &&
	    memcmp(m->u.hello.dataset_sha256.p, b->job.dataset.sha256, 32) != 0) {
		snprintf(why_text, sizeof why_text, "the worker's --dataset has "
		    "another fingerprint than the job's %.200s", b->job.dataset_path);
		reject(b, REJ_DATASET, name, "%s", why_text);
		reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why_text);
		return;
	}
	if ((uint64_t)sl_label_size(&t.fmt) * b->job.shard_rows + 4096 >
	    (uint64_t)b->cfg->max_msg_bytes) {
		snprintf(why_text, sizeof why_text, "a shard of %u records of "
		    "%zu bytes exceeds the message limit of %" PRId64 " bytes",
		    b->job.shard_rows, sl_label_size(&t.fmt),
		    b->cfg->max_msg_bytes);
		reject(b, REJ_BAD_HELLO, name, "%s", why_text);
		reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why_text);
		return;
	}
	rc = sl_store_register_teacher(b->store, &t, &why);
	if (rc == SL_EMISMATCH) {
		reject(b, REJ_PROVENANCE, name, "%s", why.text);
		reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why.text);
		return;
	}
	if (rc != 0) {
		sl_error("register teacher %s: %s", t.name, why.text);
		reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE, why.text);
		return;
	}
	if (b->teachers[t.index].slots == NULL) {
		if (load_teacher(b, &t) != 0) {
			reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE,
			    "broker could not load the teacher's shards");
			return;
		}
		sl_info("teacher %s registered as index %u: model %.12s..., "
		    "T=%g, %u classes", t.name, t.index, t.model_sha256,
		    (double)t.temperature, t.fmt.classes);
	}

	if ((w = find_worker(b, id, idlen)) == NULL) {
		/* Reuse a forgotten slot before growing the scanned range. */
		for (int i = 0; i < b->nslots && w == NULL; i++)
			if (!b->workers[i].used)
				w = &b->workers[i];
		if (w == NULL && b->nslots < BROKER_MAX_WORKERS)
			w = &b->workers[b->nslots++];
		if (w == NULL) {
			reply_reason(b, b->sock, id, idlen, SL_MSG_REFUSE,
			    "broker has too many workers");
			return;
		}
	}
	/* A repeated HELLO on the same connection starts a new session too. */
	const uint32_t old_token = w->used ? w->token : 0;
	memset(w, 0, sizeof *w);
	w->used = 1;
	memcpy(w->id, id, idlen);
	w->idlen = idlen;
	w->token = b->next_token++;
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
		if (m->u.hello.held[i] < b->nshards)
			grant(w, m->u.hello.held[i]);
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
	reply(b, b->sock, id, idlen, &r);
	b->hellos++;
	sl_info("worker %s joined for teacher %s (%s, %u held shards; from its "
	    "previous session %u leases resumed, %u returned)", w->name, t.name,
	    w->ship_rows ? "rows shipped" : "local dataset", m->u.hello.nheld,
	    h.resumed, h.returned);
	if (h.returned > 0)
		dispatch_all(b);
	(void)ts;
}

static void
on_heartbeat(broker *b, worker *w, const sl_msg *m)
{
	teacher_sched *ts = &b->teachers[w->teacher];
	const uint64_t deadline = sl_net_now_ms() +
	    (uint64_t)b->cfg->lease_timeout_s * 1000;
	sl_msg r;

	/* Renewal comes from the worker's computing thread, so a worker that
	 * hangs stops renewing even if libzmq still answers ZMTP pings. */
	for (uint32_t i = 0; i < m->u.heartbeat.nheld; i++) {
		const uint64_t s = m->u.heartbeat.held[i];

		if (s < b->nshards && ts->slots[s].state == SHARD_LEASED &&
		    ts->slots[s].owner == w->token) {
			ts->slots[s].deadline_ms = deadline;
			w->stalled = 0;
		}
	}
	memset(&r, 0, sizeof r);
	r.type = SL_MSG_HEARTBEAT;
	reply(b, b->sock, w->id, w->idlen, &r);
	/* A worker back from silence (its leases expired meanwhile) gets work
	 * again, or DONE, without asking. */
	if (w->nleases < w->credit)
		dispatch(b, w);
}

static void
on_result(broker *b, worker *w, zmq_msg_t *frame, const sl_msg *m)
{
	teacher_sched *ts = &b->teachers[w->teacher];
	const uint64_t s = m->u.result.shard;
	char why_text[SL_ERRMSG_MAX + 64];
	enum reject_reason rr;
	shard_slot *slot;

	if (m->u.result.teacher_index != w->teacher) {
		rr = REJ_WRONG_TEACHER;
		snprintf(why_text, sizeof why_text, "result for teacher %u, "
		    "worker registered as %u", m->u.result.teacher_index,
		    w->teacher);
		goto refuse;
	}
	if (s >= b->nshards) {
		rr = REJ_UNKNOWN_SHARD;
		snprintf(why_text, sizeof why_text, "shard %" PRIu64 " does not "
		    "exist (the job has %" PRIu64 ")", s, b->nshards);
		goto refuse;
	}
	slot = &ts->slots[s];
	if (slot->state == SHARD_DONE || slot->state == SHARD_COMMITTING) {
		/* At-least-once delivery: a late or resent result for a
		 * shard already stored is acknowledged and dropped. */
		b->duplicates++;
		sl_info("duplicate result for teacher %s shard %" PRIu64 " from "
		    "%s: acknowledged and dropped", ts->info.name, s, w->name);
		if (slot->state == SHARD_DONE)
			ack(b, w->id, w->idlen, s, SL_ACK_DUPLICATE, NULL);
		else
			ack(b, w->id, w->idlen, s, SL_ACK_DUPLICATE,
			    "being committed");
		return;
	}
	if (slot->state == SHARD_QUARANTINED) {
		rr = REJ_QUARANTINED;
		snprintf(why_text, sizeof why_text, "shard %" PRIu64 " is "
		    "quarantined", s);
		goto refuse;
	}
	if (!(slot->state == SHARD_LEASED && slot->owner == w->token) &&
	    !was_granted(w, s)) {
		rr = REJ_NOT_LEASED;
		snprintf(why_text, sizeof why_text, "shard %" PRIu64 " was not "
		    "leased to this worker", s);
		goto refuse;
	}
	const uint32_t want = shard_nrows(b, s);
	if (m->u.result.nrows != want) {
		rr = REJ_WRONG_ROWS;
		snprintf(why_text, sizeof why_text, "shard %" PRIu64 " has %u "
		    "rows, result has %u", s, want, m->u.result.nrows);
		goto refuse;
	}
	if (m->u.result.blob.len != (size_t)want * ts->rec_size) {
		rr = REJ_WRONG_SIZE;
		snprintf(why_text, sizeof why_text, "blob of %zu bytes, %u "
		    "records of %zu bytes need %zu", m->u.result.blob.len, want,
		    ts->rec_size, (size_t)want * ts->rec_size);
		goto refuse;
	}
	for (uint32_t i = 0; i < want; i++) {
		sl_errmsg why = { "" };

		if (sl_label_check(m->u.result.blob.p + (size_t)i * ts->rec_size,
		    ts->rec_size, &ts->info.fmt, NULL, &why) != 0) {
			rr = REJ_BAD_RECORD;
			snprintf(why_text, sizeof why_text, "shard %" PRIu64
			    " row %u: %s", s, i, why.text);
			goto refuse;
		}
	}

	/* Valid: it joins the commit group and is acknowledged after the
	 * transaction that stores it. */
	if (slot->state == SHARD_LEASED) {
		worker *owner = worker_by_token(b, slot->owner);

		ts->nleased--;
		if (owner != NULL && owner->nleases > 0)
			owner->nleases--;
	}
	slot->state = SHARD_COMMITTING;
	pending_result *p = &b->group[b->ngroup++];
	const size_t blob_off = (size_t)(m->u.result.blob.p -
	    (const uint8_t *)zmq_msg_data(frame));
	zmq_msg_init(&p->frame);
	zmq_msg_move(&p->frame, frame);
	memcpy(p->id, w->id, w->idlen);
	p->idlen = w->idlen;
	p->token = w->token;
	p->teacher = w->teacher;
	p->shard = s;
	p->nrows = want;
	/* The frame moved without copying its payload, but libzmq keeps small
	 * messages inside zmq_msg_t itself: rebase on the moved message. */
	p->blob = (const uint8_t *)zmq_msg_data(&p->frame) + blob_off;
	return;

refuse:
	reject(b, rr, w->name, "%s", why_text);
	if (s < b->nshards && ts->slots[s].state == SHARD_LEASED &&
	    ts->slots[s].owner == w->token)
		return_shard(b, ts, s, why_text);
	ack(b, w->id, w->idlen, s, SL_ACK_REJECTED, why_text);
}

static void
on_status(broker *b, void *sock, const uint8_t *id, size_t idlen)
{
	char *json = broker_status_json(b);
	sl_msg m;

	memset(&m, 0, sizeof m);
	m.type = SL_MSG_STATUS_REPLY;
	m.u.status.json = sl_bytes_str(json ? json : "{}");
	reply(b, sock, id, idlen, &m);
	free(json);
}

/* One message from a peer: [routing id][frame]. */
static void
handle(broker *b, void *sock, zmq_msg_t *idm, zmq_msg_t *frame)
{
	const uint8_t *id = zmq_msg_data(idm);
	const size_t idlen = zmq_msg_size(idm);
	const size_t len = zmq_msg_size(frame);
	const char *key = NULL;
	sl_errmsg why = { "" };
	worker *w;
	sl_msg m;

	/* Under CURVE every session was admitted by ZAP, which made the
	 * client's key its User-Id. A key removed since (SIGHUP) gets its
	 * session refused here, before any of its messages is looked at. */
	if (b->allow != NULL && sock == b->sock) {
		key = zmq_msg_gets(frame, "User-Id");
		w = find_worker(b, id, idlen);
		if (key == NULL || strlen(key) != SL_CURVE_Z85_LEN ||
		    !sl_curve_allow_has(b->allow, key) || (w && w->revoked)) {
			b->auth_refused[AUTH_REVOKED]++;
			sl_warn("refused (revoked) message from %s, key %.8s...: "
			    "no longer on the allow-list", w ? w->name : "peer",
			    key ? key : "(none)");
			if (w != NULL) {
				drop_leases(b, w, "key revoked");
				w->used = 0;
			}
			reply_reason(b, sock, id, idlen, SL_MSG_REFUSE,
			    "key revoked");
			return;
		}
	}
	if (len > (size_t)b->cfg->max_msg_bytes) {
		reject(b, REJ_OVERSIZE, "peer", "message of %zu bytes exceeds "
		    "the limit of %" PRId64, len, b->cfg->max_msg_bytes);
		return;
	}
	if (sl_proto_decode(zmq_msg_data(frame), len, &m, &why) != 0) {
		w = find_worker(b, id, idlen);
		reject(b, REJ_MALFORMED, w ? w->name : "peer", "%s", why.text);
		return;
	}
	if (m.type == SL_MSG_STATUS) {
		on_status(b, sock, id, idlen);
		return;
	}
	if (sock != b->sock)
		return; /* the status endpoint answers STATUS only */
	if (m.type == SL_MSG_HELLO) {
		on_hello(b, id, idlen, &m, key);
		return;
	}
	if ((w = find_worker(b, id, idlen)) == NULL) {
		/* A broker restart or a reconnect under a new identity: the
		 * worker says HELLO again and resends what it holds. */
		b->resets++;
		reply_reason(b, sock, id, idlen, SL_MSG_RESET,
		    "unknown session: say HELLO");
		return;
	}
	w->last_seen_ms = sl_net_now_ms();
	switch (m.type) {
	case SL_MSG_READY:
		/* An idle worker repeats READY: one flagged stalled because a
		 * TASK never reached it gets work again. */
		w->stalled = 0;
		w->credit = m.u.ready.credit;
		dispatch(b, w);
		break;
	case SL_MSG_HEARTBEAT:
		on_heartbeat(b, w, &m);
		break;
	case SL_MSG_RESULT:
		w->stalled = 0; /* its teacher got through */
		on_result(b, w, frame, &m);
		break;
	default:
		reject(b, REJ_MALFORMED, w->name, "unexpected %s from a worker",
		    sl_proto_type_name(m.type));
	}
}

/* --- commits ----------------------------------------------------------------- */

static void
update_rate(teacher_sched *ts, uint64_t samples)
{
	const uint64_t now = sl_net_now_ms();

	ts->rate_samples += samples;
	if (now - ts->rate_t_ms >= 1000) {
		const double r = (double)ts->rate_samples * 1000.0 /
		    (double)(now - ts->rate_t_ms);

		ts->rate = ts->rate == 0 ? r : 0.7 * ts->rate + 0.3 * r;
		ts->rate_t_ms = now;
		ts->rate_samples = 0;
	}
}

/* Commit the group and the quarantines in one transaction, then ACK. */
static void
commit_group(broker *b)
{
	sl_store_txn *txn = NULL;
	sl_errmsg why = { "" };
	int rc;

	if (b->ngroup == 0 && b->nquarantine == 0)
		return;
	rc = sl_store_write_begin(b->store, &txn, &why);
	for (uint32_t i = 0; rc == 0 && i < b->ngroup; i++) {
		pending_result *p = &b->group[i];
		teacher_sched *ts = &b->teachers[p->teacher];
		worker *w = worker_by_token(b, p->token);

		rc = sl_store_put_shard(txn, p->teacher, p->shard,
		    p->shard * b->job.shard_rows, p->nrows, p->blob, ts->rec_size,
		    w ? w->name : "", ts->slots[p->shard].attempts, &why);
	}
	for (uint32_t i = 0; rc == 0 && i < b->nquarantine; i++) {
		quarantine *q = &b->quarantined[i];

		rc = sl_store_put_quarantine(txn, q->teacher, q->shard,
		    q->attempts, q->reason, &why);
	}
	if (rc == 0)
		rc = sl_store_write_commit(&txn, &why);
	else
		sl_store_write_abort(&txn);

	if (rc != 0) {
		sl_error("commit of %u results failed: %s", b->ngroup, why.text);
		b->rejected[REJ_STORE] += b->ngroup;
	} else {
		b->commits++;
		b->committed_results += b->ngroup;
	}
	for (uint32_t i = 0; i < b->ngroup; i++) {
		pending_result *p = &b->group[i];
		teacher_sched *ts = &b->teachers[p->teacher];
		worker *w = worker_by_token(b, p->token);

		if (rc == 0) {
			ts->slots[p->shard].state = SHARD_DONE;
			ts->ndone++;
			update_rate(ts, p->nrows);
			if (w != NULL) {
				w->results++;
				w->samples += p->nrows;
			}
			ack(b, p->id, p->idlen, p->shard, SL_ACK_STORED, NULL);
		} else {
			ts->slots[p->shard].state = SHARD_PENDING;
			if (p->shard < ts->scan)
				ts->scan = p->shard;
			ack(b, p->id, p->idlen, p->shard, SL_ACK_REJECTED,
			    "the broker could not store it");
		}
		zmq_msg_close(&p->frame);
	}
	b->ngroup = 0;
	b->nquarantine = 0;
	if (rc == 0)
		dispatch_all(b);
}

/* Every registered teacher finished, and some worker joined in this run:
 * a broker restarted on a finished cache waits for the teacher it was
 * started for instead of leaving before it can register. */
static int
all_finished(const broker *b)
{
	if (b->nteachers == 0 || b->hellos == 0)
		return 0;
	for (uint32_t t = 0; t < b->nteachers; t++)
		if (b->teachers[t].slots == NULL ||
		    !teacher_finished(b, &b->teachers[t]))
			return 0;
	return 1;
}

/* Receive up to max messages from sock without blocking. */
static void
drain(broker *b, void *sock, int max)
{
	zmq_msg_t idm, frame;

	for (int i = 0; i < max && b->ngroup < BROKER_MAX_GROUP; i++) {
		int more;
		size_t more_len = sizeof more;

		zmq_msg_init(&idm);
		if (zmq_msg_recv(&idm, sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&idm);
			return;
		}
		zmq_msg_init(&frame);
		if (zmq_msg_recv(&frame, sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&idm);
			zmq_msg_close(&frame);
			return;
		}
		/* One frame per message; extra frames are a malformed peer. */
		zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &more_len);
		if (more) {
			while (more) {
				zmq_msg_t x;

				zmq_msg_init(&x);
				zmq_msg_recv(&x, sock, 0);
				zmq_msg_close(&x);
				zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &more_len);
			}
			reject(b, REJ_MALFORMED, "peer", "multi-frame message");
		} else {
			handle(b, sock, &idm, &frame);
		}
		zmq_msg_close(&idm);
		zmq_msg_close(&frame);
	}
}

int
broker_run(broker *b)
{
	/* The ZAP handler and the monitor share this thread with the
	 * protocol: the allow-list needs no lock. A NULL socket is never
	 * readable: zmq_poll skips items with neither socket nor fd. */
	zmq_pollitem_t items[4] = {
		{ b->sock, 0, ZMQ_POLLIN, 0 },
		{ b->status_sock, -1, ZMQ_POLLIN, 0 },
		{ b->zap, -1, ZMQ_POLLIN, 0 },
		{ b->monitor, -1, ZMQ_POLLIN, 0 },
	};
	int nitems = 0;
	zmq_pollitem_t live[4];
	uint64_t last_expire = sl_net_now_ms();

	for (int i = 0; i < 4; i++)
		if (items[i].socket != NULL)
			live[nitems++] = items[i];

	sl_info("ready bind=%s store=%s rows=%" PRIu64 " shards=%" PRIu64
	    " shard_rows=%u lease=%ds%s", b->cfg->bind, b->cfg->store,
	    sl_dataset_rows(b->ds), b->nshards, b->job.shard_rows,
	    b->cfg->lease_timeout_s, b->cfg->nosync ? " nosync" : "");
	while (!*b->stop) {
		if (zmq_poll(live, nitems, 100) < 0 && zmq_errno() != EINTR) {
			sl_error("zmq_poll: %s", zmq_strerror(zmq_errno()));
			return 1;
		}
		if (b->reload != NULL && *b->reload) {
			*b->reload = 0;
			reload_allow(b);
		}
		for (int i = 0; i < nitems; i++) {
			if (!(live[i].revents & ZMQ_POLLIN))
				continue;
			if (live[i].socket == b->sock)
				drain(b, b->sock, 1024);
			else if (live[i].socket == b->status_sock)
				drain(b, b->status_sock, 64);
			else if (live[i].socket == b->zap)
				zap_poll(b);
			else if (live[i].socket == b->monitor)
				monitor_poll(b);
		}
		commit_group(b);
		if (sl_net_now_ms() - last_expire >= 100) {
			expire(b);
			commit_group(b); /* quarantines */
			last_expire = sl_net_now_ms();
		}
		if (b->cfg->exit_when_done && all_finished(b)) {
			uint64_t q = 0;

			for (uint32_t t = 0; t < b->nteachers; t++)
				q += b->teachers[t].nquarantined;
			sl_info("all shards of %u teacher(s) finished%s", b->nteachers,
			    q ? " (some quarantined)" : "");
			/* Workers between two heartbeats would only hear it on
			 * the next one, from a broker already gone: tell every
			 * one now (closing lingers to deliver it). */
			for (int i = 0; i < b->nslots; i++)
				if (b->workers[i].used)
					reply_reason(b, b->sock, b->workers[i].id,
					    b->workers[i].idlen, SL_MSG_DONE,
					    "every shard of this teacher is done");
			return q ? 1 : 0;
		}
	}
	sl_info("stopping: committing %u held results", b->ngroup);
	commit_group(b);
	return 0;
}

#include "broker.h"
#include "audit.h"
#include "auth.h"
#include "commit.h"
#include "metrics.h"
#include "conn.h"
#include "repair.h"
#include "session.h"
#include "sl_fingerprint.h"
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
	[REJ_BAD_NAME] = "bad_name",
	[REJ_UNREGISTERED] = "unregistered_teacher",
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
	[REJ_REFUSED] = "audit_refused",
};

/* What the log's "suppressed N more '...' lines" summaries call them. */
static const char *const reject_lines[REJ_COUNT_] = {
	[REJ_MALFORMED] = "rejected (malformed)",
	[REJ_OVERSIZE] = "rejected (oversize)",
	[REJ_BAD_HELLO] = "rejected (bad_hello)",
	[REJ_BAD_NAME] = "rejected (bad_name)",
	[REJ_UNREGISTERED] = "rejected (unregistered_teacher)",
	[REJ_PROVENANCE] = "rejected (provenance)",
	[REJ_DATASET] = "rejected (dataset_mismatch)",
	[REJ_WRONG_TEACHER] = "rejected (wrong_teacher)",
	[REJ_UNKNOWN_SHARD] = "rejected (unknown_shard)",
	[REJ_NOT_LEASED] = "rejected (not_leased)",
	[REJ_QUARANTINED] = "rejected (quarantined)",
	[REJ_WRONG_ROWS] = "rejected (wrong_rows)",
	[REJ_WRONG_SIZE] = "rejected (wrong_size)",
	[REJ_BAD_RECORD] = "rejected (bad_record)",
	[REJ_STORE] = "rejected (store_error)",
	[REJ_REFUSED] = "rejected (audit_refused)",
};

static const char *const event_lines[EV_COUNT_] = {
	[EV_DUPLICATE] = "duplicate result",
	[EV_JOINED] = "worker joined",
	[EV_FORGOTTEN] = "worker forgotten",
	[EV_REVOKED] = "refused (revoked)",
	[EV_SEND_FAILED] = "send failed",
	[EV_REGISTER_FAILED] = "register teacher failed",
	[EV_SIGHUP] = "SIGHUP",
	[EV_CONN_CLOSED] = "closed connections",
	[EV_BUSY] = "refused (busy)",
	[EV_PEER_RATE] = "refused (busy: HELLO rate per address)",
	[EV_PEER_SESSIONS] = "refused (busy: sessions per address)",
	[EV_PEER_FULL] = "refused (busy: table of addresses full)",
	[EV_PEER_PENDING] = "closed connections (pending per address)",
};

const char *const broker_auth_names[AUTH_COUNT_] = {
	[AUTH_PLAINTEXT] = "plaintext",
	[AUTH_UNKNOWN_KEY] = "unknown_key",
	[AUTH_HANDSHAKE] = "handshake_failed",
	[AUTH_REVOKED] = "revoked",
};

/* --- job ------------------------------------------------------------------ */

uint32_t
broker_shard_nrows(const broker *b, uint64_t shard)
{
	const uint64_t rows = sl_dataset_rows(b->ds);
	const uint64_t first = shard * b->job.shard_rows;

	return (uint32_t)(rows - first < b->job.shard_rows ? rows - first :
	    b->job.shard_rows);
}

uint64_t
broker_unit_shard(const teacher_sched *ts, uint64_t unit)
{
	return ts->info.views ? unit / ts->info.views : unit;
}

uint32_t
broker_unit_view(const teacher_sched *ts, uint64_t unit)
{
	return ts->info.views ? (uint32_t)(unit % ts->info.views) :
	    SL_STORE_NO_VIEW;
}

const char *
broker_unit_name(const teacher_sched *ts, uint64_t unit,
    char buf[BROKER_UNIT_NAME])
{
	if (ts->info.views == 0)
		snprintf(buf, BROKER_UNIT_NAME, "shard %" PRIu64, unit);
	else
		snprintf(buf, BROKER_UNIT_NAME, "unit %" PRIu64 " (shard %"
		    PRIu64 ", view %u)", unit, broker_unit_shard(ts, unit),
		    broker_unit_view(ts, unit));
	return buf;
}

uint32_t
broker_unit_nrows(const broker *b, const teacher_sched *ts, uint64_t unit)
{
	return broker_shard_nrows(b, broker_unit_shard(ts, unit));
}

uint64_t
broker_unit_first(const broker *b, const teacher_sched *ts, uint64_t unit)
{
	return broker_unit_shard(ts, unit) * b->job.shard_rows;
}

/* --rows A:B into first and end (end 0 when B is empty: "A:"). Exit code
 * 2 with the value named when it is not two numbers. */
static int
parse_rows(const char *arg, uint64_t *first, uint64_t *end)
{
	char *e1, *e2;
	unsigned long long a, z = 0;

	errno = 0;
	a = strtoull(arg, &e1, 10);
	if (e1 == arg || *e1 != ':' || arg[0] == '-' || errno != 0)
		goto bad;
	if (e1[1] != '\0') {
		z = strtoull(e1 + 1, &e2, 10);
		if (*e2 != '\0' || e1[1] == '-' || errno != 0 || z <= a)
			goto bad;
	}
	*first = a;
	*end = z;
	return 0;
bad:
	sl_error("--rows: '%s' is not A:B with A < B (rows A..B-1) or A:", arg);
	return 2;
}

static int
open_job(broker *b)
{
	const broker_cfg *c = b->cfg;
	char owner[SL_STORE_MAX_OWNER];
	sl_store_opts so = { 0, c->nosync, (uint64_t)c->map_size_bytes, owner };
	sl_fingerprint fp;
	sl_errmsg why = { "" };
	int rc;

	if ((rc = sl_dataset_open(c->dataset, &b->ds, &why)) != 0) {
		sl_error("%s: %s", c->dataset, why.text);
		return 1;
	}
	if ((rc = sl_dataset_fingerprint_start(b->ds, c->dataset, &fp,
	    &why)) != 0) {
		sl_error("%s: fingerprint: %s", c->dataset, why.text);
		return 1;
	}
	uint64_t rfirst = 0, rend = 0;

	if (c->rows != NULL && (rc = parse_rows(c->rows, &rfirst, &rend)) != 0)
		return rc;
	snprintf(owner, sizeof owner, "softlabel-broker on %s", c->bind);
	if ((rc = sl_store_open(c->store, &so, &b->store, &why)) != 0) {
		sl_error("%s: %s%s", c->store, why.text, rc == ENOMEM ?
		    " (--map-size sets it)" : "");
		return 1;
	}
	rc = sl_store_get_job(b->store, &b->job, &why);
	if (rc == SL_ENOTFOUND) {
		memset(&b->job, 0, sizeof b->job);
		snprintf(b->job.dataset_path, sizeof b->job.dataset_path, "%s",
		    c->dataset);
		b->job.dataset = fp;
		b->job.shard_rows = (uint32_t)c->shard_rows;
		b->job.rows_first = rfirst;
		b->job.rows_end = rend;
		if ((rc = sl_store_init_job(b->store, &b->job, &why)) != 0) {
			sl_error("%s: %s%s", c->store, why.text, rc == SL_EINVAL &&
			    c->rows ? " (--rows)" : "");
			return rc == SL_EINVAL && c->rows ? 2 : 1;
		}
		if ((rc = sl_store_get_job(b->store, &b->job, &why)) != 0) {
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
		if (c->rows != NULL && (rfirst != b->job.rows_first ||
		    (rend ? rend : fp.rows) != b->job.rows_end)) {
			sl_error("%s: the cache labels rows %" PRIu64 ":%" PRIu64
			    ", not --rows %s: one range per cache", c->store,
			    b->job.rows_first, b->job.rows_end, c->rows);
			return 2;
		}
		sl_info("resuming job in %s", c->store);
	}
	b->row_bytes = sl_dataset_dim(b->ds) *
	    (sl_dataset_dtype(b->ds) == SL_DTYPE_U8 ? 1 : 4);
	b->nshards = (fp.rows + b->job.shard_rows - 1) / b->job.shard_rows;
	b->shard_first = b->job.rows_first / b->job.shard_rows;
	b->shard_end = (b->job.rows_end + b->job.shard_rows - 1) /
	    b->job.shard_rows;
	b->nskip = b->nshards - (b->shard_end - b->shard_first);
	if (b->nskip > 0)
		sl_info("this cache labels rows %" PRIu64 ":%" PRIu64 " (shards %"
		    PRIu64 "..%" PRIu64 " of %" PRIu64 ")", b->job.rows_first,
		    b->job.rows_end, b->shard_first, b->shard_end - 1, b->nshards);
	return 0;
}

int
broker_load_teacher(broker *b, const sl_store_teacher *t)
{
	teacher_sched *ts = &b->teachers[t->index];
	const uint64_t nunits = b->nshards * (t->views ? t->views : 1);
	uint8_t *state;
	sl_errmsg why = { "" };
	int rc;

	memset(ts, 0, sizeof *ts);
	ts->info = *t;
	ts->rec_size = sl_label_size(&t->fmt);
	state = calloc(nunits ? nunits : 1, 1);
	if (state == NULL || lease_init(&ts->lease, nunits,
	    (uint32_t)b->cfg->max_attempts) != 0) {
		free(state);
		return SL_ENOMEM;
	}
	rc = sl_store_shard_states(b->store, t->index, state, nunits, &why);
	if (rc != 0) {
		sl_error("%s: teacher %s: %s", b->cfg->store, t->name, why.text);
		free(state);
		return rc;
	}
	for (uint64_t s = 0; s < nunits; s++) {
		const uint64_t sh = broker_unit_shard(ts, s);

		if (sh < b->shard_first || sh >= b->shard_end)
			lease_restore(&ts->lease, s, SHARD_DONE); /* not ours */
		else if (state[s] == SL_SHARD_DONE)
			lease_restore(&ts->lease, s, SHARD_DONE);
		else if (state[s] == SL_SHARD_QUARANTINED)
			lease_restore(&ts->lease, s, SHARD_QUARANTINED);
	}
	free(state);
	if ((rc = audit_restore(b, ts)) != 0)
		return rc;
	ts->done_at_start = ts->lease.ndone;
	ts->rate_t_ms = sl_net_now_ms();
	if (t->index >= b->nteachers)
		b->nteachers = t->index + 1;
	return 0;
}

/* --teacher NAME[=SHA256][,NAME[=SHA256]...]: usage errors (exit 2)
 * name the bad entry. */
static int
parse_operator_teachers(broker *b, const char *list)
{
	char buf[BROKER_MAX_OPERATOR_TEACHERS * 200], *save = NULL, *item;

	if (strlen(list) >= sizeof buf) {
		sl_error("--teacher: list too long");
		return 2;
	}
	snprintf(buf, sizeof buf, "%s", list);
	for (item = strtok_r(buf, ",", &save); item != NULL;
	    item = strtok_r(NULL, ",", &save)) {
		operator_teacher *o = &b->op[b->nop];
		char *eq = strchr(item, '=');
		const char *sha = eq ? eq + 1 : "";

		if (eq != NULL)
			*eq = '\0';
		if (b->nop == BROKER_MAX_OPERATOR_TEACHERS) {
			sl_error("--teacher: more than %d teachers",
			    BROKER_MAX_OPERATOR_TEACHERS);
			return 2;
		}
		if (!sl_proto_name_valid(item, strlen(item), NULL)) {
			sl_error("--teacher: '%s' is not a name (1 to %d characters "
			    "from %s)", item, SL_PROTO_MAX_NAME, SL_PROTO_NAME_CHARS);
			return 2;
		}
		if (*sha != '\0' && (strlen(sha) != 64 ||
		    strspn(sha, "0123456789abcdefABCDEF") != 64)) {
			sl_error("--teacher %s=%s: the model's SHA-256 is 64 hex "
			    "digits (sha256sum MODEL)", item, sha);
			return 2;
		}
		for (uint32_t i = 0; i < b->nop; i++)
			if (strcmp(b->op[i].name, item) == 0) {
				sl_error("--teacher: '%s' named twice", item);
				return 2;
			}
		snprintf(o->name, sizeof o->name, "%s", item);
		for (int i = 0; sha[i] != '\0'; i++)
			o->sha256[i] = (char)(sha[i] >= 'A' && sha[i] <= 'F' ?
			    sha[i] - 'A' + 'a' : sha[i]);
		b->nop++;
	}
	if (b->nop == 0) {
		sl_error("--teacher: no teacher named");
		return 2;
	}
	return 0;
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
	for (int r = 0; r < REJ_COUNT_; r++)
		b->reject_log[r].what = reject_lines[r];
	for (int e = 0; e < EV_COUNT_; e++)
		b->event_log[e].what = event_lines[e];
	b->store_log.what = "commit failed";
	b->store_log.burst = 1;
	if (cfg->curve_secret != NULL && (rc = auth_load(b)) != 0)
		return rc;
	if (cfg->teachers != NULL &&
	    (rc = parse_operator_teachers(b, cfg->teachers)) != 0)
		return rc;
	if ((rc = audit_open(b)) != 0)
		return rc;
	if ((rc = open_job(b)) != 0 || (rc = audit_start(b)) != 0)
		return rc;
	if (cfg->views > 0) {
		uint32_t shape[SL_DATA_MAX_DIMS];

		for (uint32_t d = 1; d < b->job.dataset.ndim; d++)
			shape[d - 1] = (uint32_t)b->job.dataset.shape[d];
		if (sl_view_check_shape(&cfg->recipe, (int)b->job.dataset.ndim - 1,
		    shape, &why) != 0) {
			sl_error("--views: %s", why.text);
			return 2;
		}
	}
	if (cfg->recompute_corrupt &&
	    broker_recompute_corrupt(b->store, &b->job, b->nshards) != 0)
		return 1;
	if (sl_store_teachers(b->store, ts, SL_STORE_MAX_TEACHERS, &n, &why) != 0) {
		sl_error("%s: %s", cfg->store, why.text);
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		if (broker_load_teacher(b, &ts[i]) != 0)
			return 1;
		sl_info("teacher %s (index %u): %" PRIu64 "/%" PRIu64 " shards "
		    "done, %" PRIu64 " quarantined", ts[i].name, ts[i].index,
		    b->teachers[ts[i].index].lease.ndone - b->nskip,
		    b->nshards - b->nskip,
		    b->teachers[ts[i].index].lease.nquarantined);
	}
	b->workers = calloc(BROKER_MAX_WORKERS, sizeof *b->workers);
	b->zctx = zmq_ctx_new();
	if (b->workers == NULL || b->zctx == NULL ||
	    peer_table_init(&b->peers, BROKER_MAX_PEERS,
	    (uint32_t)cfg->max_sessions_per_peer,
	    (uint32_t)cfg->max_pending_per_peer,
	    (double)cfg->hello_rate_per_peer,
	    (double)cfg->hello_burst_per_peer) != 0) {
		sl_error("out of memory");
		return 1;
	}
	if (b->allow != NULL && (rc = auth_zap_open(b)) != 0)
		return rc;
	/* libzmq drops a connection whose message exceeds its limit; twice
	 * ours lets a message just over it through to be refused and counted. */
	if (sl_net_socket(b->zctx, ZMQ_ROUTER, cfg->max_msg_bytes * 2, &b->sock,
	    &why) != 0) {
		sl_error("%s", why.text);
		return 1;
	}
	if ((b->allow != NULL && (rc = auth_curve_server(b, b->sock)) != 0) ||
	    (rc = conn_open(b)) != 0)
		return rc;
	if (zmq_bind(b->sock, cfg->bind) != 0) {
		sl_error("--bind %s: %s", cfg->bind, zmq_strerror(zmq_errno()));
		return zmq_errno() == EINVAL || zmq_errno() == EPROTONOSUPPORT ? 2 : 1;
	}
	if (cfg->status_bind != NULL) {
		if (sl_net_socket(b->zctx, ZMQ_ROUTER, 65536, &b->status_sock,
		    &why) != 0 || (b->allow != NULL &&
		    auth_curve_server(b, b->status_sock) != 0) ||
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
		lease_fini(&b->teachers[t].lease);
	audit_close(b);
	conn_close(b);
	sl_net_close(&b->sock);
	sl_net_close(&b->status_sock);
	sl_net_close(&b->zap);
	sl_curve_allow_free(&b->allow);
	memset(&b->secret, 0, sizeof b->secret);
	if (b->zctx != NULL)
		zmq_ctx_term(b->zctx);
	free(b->workers);
	peer_table_fini(&b->peers);
	sl_proto_buf_fini(&b->out);
	sl_metrics_text_fini(&b->mtext);
	sl_store_close(&b->store);
	sl_dataset_close(&b->ds);
}

/* --- replies ---------------------------------------------------------------- */

void
broker_reply(broker *b, void *sock, const void *id, size_t idlen, const sl_msg *m)
{
	int rc = sl_net_send_to(sock, id, idlen, m, &b->out);

	/* EHOSTUNREACH: the peer went away; its results, if any, are kept
	 * by the worker and come back after its reconnect. */
	if (rc != 0 && rc != EHOSTUNREACH && rc != EAGAIN &&
	    broker_log_allow(b, EV_SEND_FAILED))
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

void
broker_reply_reason(broker *b, void *sock, const void *id, size_t idlen,
    enum sl_msg_type type, const char *reason)
{
	sl_msg m;

	memset(&m, 0, sizeof m);
	m.type = type;
	m.u.refuse.reason = reason_bytes(reason);
	broker_reply(b, sock, id, idlen, &m);
}

void
broker_ack(broker *b, const void *id, size_t idlen, uint64_t shard,
    enum sl_ack_status status, const char *reason)
{
	sl_msg m;

	memset(&m, 0, sizeof m);
	m.type = SL_MSG_ACK;
	m.u.ack.shard = shard;
	m.u.ack.status = status;
	m.u.ack.reason = reason_bytes(reason);
	broker_reply(b, b->sock, id, idlen, &m);
}

/* --- scheduling ------------------------------------------------------------- */

void
broker_return_shard(broker *b, teacher_sched *ts, uint64_t s,
    const char *why_back)
{
	const int room = b->nquarantine < BROKER_MAX_GROUP;
	uint32_t prev = 0;
	worker *owner;

	if (lease_return(&ts->lease, s, room, &prev) < 0)
		return;
	if ((owner = session_by_token(b, prev)) != NULL && owner->nleases > 0)
		owner->nleases--;
	if (ts->lease.slots[s].state == SHARD_QUARANTINED) {
		quarantine *q = &b->quarantined[b->nquarantine++];
		const unsigned attempts = ts->lease.slots[s].attempts;

		q->teacher = ts->info.index;
		q->shard = s;
		q->attempts = attempts;
		snprintf(q->reason, sizeof q->reason, "%u attempts, last: %s",
		    attempts, why_back);
		char un[BROKER_UNIT_NAME];

		sl_warn("teacher %s %s quarantined after %u attempts (last: %s)",
		    ts->info.name, broker_unit_name(ts, s, un), attempts,
		    why_back);
	}
}

void
broker_send_task(broker *b, worker *w, uint64_t s)
{
	const teacher_sched *ts = &b->teachers[w->teacher];
	sl_msg m;
	const uint32_t n = broker_unit_nrows(b, ts, s);

	memset(&m, 0, sizeof m);
	m.type = SL_MSG_TASK;
	m.u.task.shard = s;
	m.u.task.first_row = broker_unit_first(b, ts, s);
	m.u.task.nrows = n;
	if (w->ship_rows) {
		sl_errmsg why = { "" };

		/* Rows leave only while they are the fingerprinted bytes: a
		 * dataset changed in place stops the broker (its lease stays
		 * for a restart on a dataset that is right). */
		if (sl_dataset_verify_rows(b->ds, (size_t)m.u.task.first_row, n,
		    &why) != 0) {
			sl_error("%s: %s; stopping (the cache keeps what was "
			    "labeled before)", b->cfg->dataset, why.text);
			b->failed = 1;
			return;
		}
		m.u.task.data.p = sl_dataset_row(b->ds, m.u.task.first_row);
		m.u.task.data.len = (size_t)n * b->row_bytes;
	}
	broker_reply(b, b->sock, w->id, w->idlen, &m);
}

/* Lease shards to w until its credit is used or nothing is pending. */
static void
dispatch(broker *b, worker *w)
{
	teacher_sched *ts = &b->teachers[w->teacher];
	const uint64_t now = sl_net_now_ms();
	const uint64_t deadline = now + (uint64_t)b->cfg->lease_timeout_s * 1000;
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
	if (!w->stalled)
		audit_dispatch(b, w, deadline);
	while (!w->stalled && w->nleases < w->credit &&
	    (s = lease_take(&ts->lease, w->token, deadline)) >= 0) {
		w->nleases++;
		session_grant(w, (uint64_t)s);
		broker_send_task(b, w, (uint64_t)s);
	}
	if (w->nleases == 0 && lease_finished(&ts->lease) &&
	    !audit_waiting(b, w->teacher))
		broker_reply_reason(b, b->sock, w->id, w->idlen, SL_MSG_DONE,
		    "every shard of this teacher is done");
}

void
broker_dispatch_all(broker *b)
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

		int64_t s = 0;

		if (ts->lease.slots == NULL)
			continue;
		while ((s = lease_next_expired(&ts->lease, (uint64_t)s, now)) >= 0) {
			const shard_slot *slot = &ts->lease.slots[s];
			worker *w = session_by_token(b, slot->owner);
			char un[BROKER_UNIT_NAME];

			sl_warn("lease expired: teacher %s %s worker %s "
			    "(attempt %u)", ts->info.name,
			    broker_unit_name(ts, (uint64_t)s, un),
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
			broker_return_shard(b, ts, (uint64_t)s, "lease expired");
			returned = 1;
		}
	}
	if (audit_expire(b, now) > 0)
		returned = 1;
	for (int i = 0; i < b->nslots; i++) {
		worker *w = &b->workers[i];

		if (w->used && now - w->last_seen_ms >
		    (uint64_t)b->cfg->lease_timeout_s * 1000 + 1000 &&
		    w->nleases == 0) {
			if (broker_log_allow(b, EV_FORGOTTEN))
				sl_info("worker %s silent for %" PRIu64 " ms: "
				    "forgotten", w->name, now - w->last_seen_ms);
			session_end_peer(b, w);
			w->used = 0;
		}
	}
	if (returned)
		broker_dispatch_all(b);
}

/* --- messages ---------------------------------------------------------------- */

int
broker_log_allow(broker *b, enum remote_event e)
{
	return sl_log_limit_allow(&b->event_log[e], sl_net_now_ms());
}

/* The "suppressed N" line of each limit whose window is over. */
static void
flush_log_limits(broker *b)
{
	const uint64_t now = sl_net_now_ms();

	for (int r = 0; r < REJ_COUNT_; r++)
		sl_log_limit_flush(&b->reject_log[r], now);
	for (int e = 0; e < EV_COUNT_; e++)
		sl_log_limit_flush(&b->event_log[e], now);
	sl_log_limit_flush(&b->store_log, now);
}

void
broker_reject(broker *b, enum reject_reason r, const char *who, const char *fmt, ...)
{
	char text[512];
	va_list ap;

	b->rejected[r]++;
	if (!sl_log_limit_allow(&b->reject_log[r], sl_net_now_ms()))
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	sl_warn("rejected (%s) from %s: %s", broker_reject_names[r], who, text);
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
		if (lease_renew(&ts->lease, m->u.heartbeat.held[i], w->token,
		    deadline))
			w->stalled = 0;
	}
	memset(&r, 0, sizeof r);
	r.type = SL_MSG_HEARTBEAT;
	broker_reply(b, b->sock, w->id, w->idlen, &r);
	/* A worker back from silence (its leases expired meanwhile) gets work
	 * again, or DONE, without asking. */
	if (w->nleases < w->credit)
		dispatch(b, w);
}

void
broker_group_add(broker *b, const worker *w, zmq_msg_t *frame,
    const sl_msg *m, uint64_t s)
{
	pending_result *p = &b->group[b->ngroup++];
	const size_t blob_off = (size_t)(m->u.result.blob.p -
	    (const uint8_t *)zmq_msg_data(frame));

	zmq_msg_init(&p->frame);
	zmq_msg_move(&p->frame, frame);
	memcpy(p->id, w->id, w->idlen);
	p->idlen = w->idlen;
	p->token = w->token;
	p->ident = w->ident;
	p->teacher = w->teacher;
	p->shard = s;
	p->nrows = m->u.result.nrows;
	/* The frame moved without copying its payload, but libzmq keeps small
	 * messages inside zmq_msg_t itself: rebase on the moved message. */
	p->blob = (const uint8_t *)zmq_msg_data(&p->frame) + blob_off;
}

static void
on_result(broker *b, worker *w, zmq_msg_t *frame, const sl_msg *m)
{
	teacher_sched *ts = &b->teachers[w->teacher];
	const uint64_t s = m->u.result.shard;
	char why_text[SL_ERRMSG_MAX + 64];
	enum lease_verdict v = LEASE_NOT_LEASED;
	enum reject_reason rr;
	uint32_t prev = 0;
	worker *owner;

	if (m->u.result.teacher_index != w->teacher) {
		rr = REJ_WRONG_TEACHER;
		snprintf(why_text, sizeof why_text, "result for teacher %u, "
		    "worker registered as %u", m->u.result.teacher_index,
		    w->teacher);
		goto refuse;
	}
	v = lease_check(&ts->lease, s, w->token, session_was_granted(w, s));

	switch (v) {
	case LEASE_ACCEPT:
	case LEASE_AUDIT:
	case LEASE_THIRD:
		break;
	case LEASE_UNKNOWN_SHARD:
		rr = REJ_UNKNOWN_SHARD;
		snprintf(why_text, sizeof why_text, "shard %" PRIu64 " does not "
		    "exist (the job has %" PRIu64 "%s)", s, ts->lease.nshards,
		    ts->info.views ? " units of (shard, view)" : "");
		goto refuse;
	case LEASE_DUP_DONE:
	case LEASE_DUP_COMMITTING:
		/* At-least-once delivery: a late or resent result for a
		 * shard already stored is acknowledged and dropped. */
		b->duplicates++;
		if (broker_log_allow(b, EV_DUPLICATE))
			sl_info("duplicate result for teacher %s shard %"
			    PRIu64 " from %s: acknowledged and dropped",
			    ts->info.name, s, w->name);
		broker_ack(b, w->id, w->idlen, s, SL_ACK_DUPLICATE,
		    ts->lease.slots[s].state == SHARD_DONE ? NULL :
		    "being committed");
		return;
	case LEASE_IS_QUARANTINED:
		rr = REJ_QUARANTINED;
		snprintf(why_text, sizeof why_text, "shard %" PRIu64 " is "
		    "quarantined", s);
		goto refuse;
	case LEASE_NOT_LEASED:
	default:
		rr = REJ_NOT_LEASED;
		snprintf(why_text, sizeof why_text, "shard %" PRIu64 " was not "
		    "leased to this worker", s);
		goto refuse;
	}
	const uint32_t want = broker_unit_nrows(b, ts, s);
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

	if (v != LEASE_ACCEPT) {
		audit_opinion(b, w, ts, s, v, frame, m);
		return;
	}
	/* Valid: it joins the commit group and is acknowledged after the
	 * transaction that stores it. */
	lease_begin_commit(&ts->lease, s, &prev);
	if ((owner = session_by_token(b, prev)) != NULL && owner->nleases > 0)
		owner->nleases--;
	broker_group_add(b, w, frame, m, s);
	return;

refuse:
	broker_reject(b, rr, w->name, "%s", why_text);
	if (lease_holder(&ts->lease, s) == w->token)
		broker_return_shard(b, ts, s, why_text);
	else if (v == LEASE_AUDIT || v == LEASE_THIRD)
		audit_return(b, ts, s);
	broker_ack(b, w->id, w->idlen, s, SL_ACK_REJECTED, why_text);
}

static void
on_status(broker *b, void *sock, const uint8_t *id, size_t idlen)
{
	char *json = broker_status_json(b);
	sl_msg m;

	memset(&m, 0, sizeof m);
	m.type = SL_MSG_STATUS_REPLY;
	m.u.status.json = sl_bytes_str(json ? json : "{}");
	broker_reply(b, sock, id, idlen, &m);
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
		w = session_find(b, id, idlen);
		if (key == NULL || strlen(key) != SL_CURVE_Z85_LEN ||
		    !sl_curve_allow_has(b->allow, key) || (w && w->revoked)) {
			b->auth_refused[AUTH_REVOKED]++;
			if (broker_log_allow(b, EV_REVOKED))
				sl_warn("refused (revoked) message from %s, key "
				    "%.8s...: no longer on the allow-list",
				    w ? w->name : "peer", key ? key : "(none)");
			if (w != NULL) {
				session_drop_leases(b, w, "key revoked");
				session_end_peer(b, w);
				w->used = 0;
			}
			broker_reply_reason(b, sock, id, idlen, SL_MSG_REFUSE,
			    "key revoked");
			return;
		}
	}
	if (len > (size_t)b->cfg->max_msg_bytes) {
		broker_reject(b, REJ_OVERSIZE, "peer", "message of %zu bytes exceeds "
		    "the limit of %" PRId64, len, b->cfg->max_msg_bytes);
		return;
	}
	if (sl_proto_decode(zmq_msg_data(frame), len, &m, &why) != 0) {
		w = session_find(b, id, idlen);
		broker_reject(b, REJ_MALFORMED, w ? w->name : "peer", "%s", why.text);
		return;
	}
	if (sock == b->sock)
		conn_heard(b, frame, NULL);
	if (m.type == SL_MSG_STATUS) {
		on_status(b, sock, id, idlen);
		return;
	}
	if (sock != b->sock)
		return; /* the status endpoint answers STATUS only */
	if (m.type == SL_MSG_HELLO) {
		session_hello(b, id, idlen, &m, key,
		    zmq_msg_gets(frame, "Peer-Address"));
		if ((w = session_find(b, id, idlen)) != NULL)
			conn_heard(b, frame, w);
		return;
	}
	if ((w = session_find(b, id, idlen)) == NULL) {
		/* A broker restart or a reconnect under a new identity: the
		 * worker says HELLO again and resends what it holds. */
		b->resets++;
		broker_reply_reason(b, sock, id, idlen, SL_MSG_RESET,
		    "unknown session: say HELLO");
		return;
	}
	w->last_seen_ms = sl_net_now_ms();
	switch (m.type) {
	case SL_MSG_READY:
		/* An idle worker repeats READY: one flagged stalled because a
		 * TASK never reached it gets work again. */
		w->stalled = 0;
		/* Credit 0: the worker is stopping and finishes what it holds. */
		if (m.u.ready.credit == 0 && w->credit != 0)
			sl_info("worker %s is stopping: leasing it nothing more "
			    "(%u shard(s) still leased to it)", w->name, w->nleases);
		w->stopping = m.u.ready.credit == 0;
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
		broker_reject(b, REJ_MALFORMED, w->name, "unexpected %s from a worker",
		    sl_proto_type_name(m.type));
	}
}

/* The scheduler of the teacher called name, or NULL (not registered). */
static const teacher_sched *
teacher_named(const broker *b, const char *name)
{
	for (uint32_t t = 0; t < b->nteachers; t++)
		if (b->teachers[t].lease.slots != NULL &&
		    strcmp(b->teachers[t].info.name, name) == 0)
			return &b->teachers[t];
	return NULL;
}

/* Every registered teacher finished, and some worker joined in this run:
 * a broker restarted on a finished cache waits for the teacher it was
 * started for instead of leaving before it can register. With --teacher,
 * only the operator's teachers count: a stray registration (a typo in a
 * worker's --name, an old experiment) cannot keep the broker running. */
static int
all_finished(const broker *b)
{
	if (b->nteachers == 0 || b->hellos == 0)
		return 0;
	for (uint32_t t = 0; t < b->nteachers; t++)
		if (audit_waiting(b, t))
			return 0;
	for (uint32_t i = 0; i < b->nop; i++) {
		const teacher_sched *ts = teacher_named(b, b->op[i].name);

		if (ts == NULL || !lease_finished(&ts->lease))
			return 0;
	}
	if (b->nop > 0)
		return 1;
	for (uint32_t t = 0; t < b->nteachers; t++)
		if (b->teachers[t].lease.slots == NULL ||
		    !lease_finished(&b->teachers[t].lease))
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
			broker_reject(b, REJ_MALFORMED, "peer", "multi-frame message");
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
	zmq_pollitem_t items[5] = {
		{ b->sock, 0, ZMQ_POLLIN, 0 },
		{ b->status_sock, -1, ZMQ_POLLIN, 0 },
		{ b->zap, -1, ZMQ_POLLIN, 0 },
		{ b->monitor, -1, ZMQ_POLLIN, 0 },
		{ NULL, b->metrics ? sl_metrics_fd(b->metrics) : -1, ZMQ_POLLIN, 0 },
	};
	int nitems = 0;
	zmq_pollitem_t live[5];
	uint64_t last_expire = sl_net_now_ms();

	for (int i = 0; i < 5; i++)
		if (items[i].socket != NULL || items[i].fd >= 0)
			live[nitems++] = items[i];

	sl_info("ready bind=%s store=%s rows=%" PRIu64 " shards=%" PRIu64
	    " shard_rows=%u lease=%ds%s", b->cfg->bind, b->cfg->store,
	    sl_dataset_rows(b->ds), b->nshards, b->job.shard_rows,
	    b->cfg->lease_timeout_s, b->cfg->nosync ? " nosync" : "");
	while (!*b->stop && !b->failed) {
		if (zmq_poll(live, nitems, 100) < 0 && zmq_errno() != EINTR) {
			sl_error("zmq_poll: %s", zmq_strerror(zmq_errno()));
			return 1;
		}
		if (b->reload != NULL && *b->reload) {
			*b->reload = 0;
			auth_reload(b);
		}
		for (int i = 0; i < nitems; i++) {
			if (!(live[i].revents & ZMQ_POLLIN))
				continue;
			if (live[i].socket == NULL) /* the only fd item */
				metrics_serve(b);
			else if (live[i].socket == b->sock) {
				/* A connection's events before its messages
				 * (accepted before heard). */
				conn_poll(b);
				drain(b, b->sock, 1024);
			}
			else if (live[i].socket == b->status_sock)
				drain(b, b->status_sock, 64);
			else if (live[i].socket == b->zap)
				auth_zap_poll(b);
			else if (live[i].socket == b->monitor)
				conn_poll(b);
		}
		commit_group(b);
		audit_purge(b);
		if (sl_net_now_ms() - last_expire >= 100) {
			expire(b);
			commit_group(b); /* quarantines */
			flush_log_limits(b);
			conn_tick(b);
			audit_save(b); /* counters of audits that stored nothing */
			last_expire = sl_net_now_ms();
		}
		if (b->cfg->exit_when_done && all_finished(b)) {
			uint64_t q = 0;

			for (uint32_t t = 0; t < b->nteachers; t++)
				q += b->teachers[t].lease.nquarantined;
			sl_info("all shards of %u teacher(s) finished%s", b->nteachers,
			    q ? " (some quarantined)" : "");
			for (uint32_t t = 0; t < b->nteachers; t++)
				if (b->teachers[t].lease.naudits > 0)
					sl_warn("teacher %s: %" PRIu64 " audits not done: "
					    "no worker of another identity connected to "
					    "give a second opinion",
					    b->teachers[t].info.name,
					    b->teachers[t].lease.naudits);
			/* Workers between two heartbeats would only hear it on
			 * the next one, from a broker already gone: tell every
			 * one now (closing lingers to deliver it). */
			for (int i = 0; i < b->nslots; i++)
				if (b->workers[i].used)
					broker_reply_reason(b, b->sock, b->workers[i].id,
					    b->workers[i].idlen, SL_MSG_DONE,
					    "every shard of this teacher is done");
			audit_save(b);
			return q ? 1 : 0;
		}
	}
	sl_info("stopping: committing %u held results", b->ngroup);
	commit_group(b);
	audit_save(b);
	return b->failed ? 1 : 0;
}

/* serve.c - the read service (see serve.h). */
#include "serve.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "sl_curve.h"
#include "sl_log.h"
#include "sl_meta.h"
#include "sl_metrics.h"
#include "sl_net.h"
#include "sl_opt.h"
#include "sl_proto.h"
#include "sl_reader.h"
#include "sl_store.h"

#define POLL_MS 200
#define MAX_RECORD_BYTES (12 + 4 * (size_t)SL_LABEL_MAX_CLASSES)

typedef struct serve_cfg {
	const char *store, *bind, *curve_secret, *allow_keys, *log_level;
	const char *metrics_bind;
	int64_t max_reply_bytes, max_request_bytes;
	int help, version;
} serve_cfg;

static serve_cfg cfg;

static sl_opt opts[] = {
	{ "bind", SL_OPT_STR, &cfg.bind, "tcp://127.0.0.1:5575", 0, 0, "EP", "where readers connect (tcp://HOST:PORT; loopback by default)", 0 },
	{ "curve-secret", SL_OPT_STR, &cfg.curve_secret, NULL, 0, 0, "FILE", "speak CURVE with this secret key (softlabel keygen); needs --allow-keys", 0 },
	{ "allow-keys", SL_OPT_STR, &cfg.allow_keys, NULL, 0, 0, "DIR", "admit only readers whose public key is a *.pub file here", 0 },
	{ "max-reply-bytes", SL_OPT_I64, &cfg.max_reply_bytes, "8388608", 1048576, 67108864, "N", "records per reply at most N bytes (1 MiB..64 MiB); the reader asks again for the rest", 0 },
	{ "max-request-bytes", SL_OPT_I64, &cfg.max_request_bytes, "16777216", 4096, 268435456, "N", "a larger request drops its connection (ZMQ_MAXMSGSIZE)", 0 },
	{ "metrics-bind", SL_OPT_STR, &cfg.metrics_bind, NULL, 0, 0, "HOST:PORT", "serve Prometheus metrics over HTTP at http://HOST:PORT/metrics (0 as PORT: any free one, logged); off by default", 0 },
	{ "log-level", SL_OPT_STR, &cfg.log_level, "info", 0, 0, "debug|info|warn|error", "log threshold", 0 },
	{ "help", SL_OPT_FLAG, &cfg.help, NULL, 0, 0, NULL, "this help", 0 },
	{ "version", SL_OPT_FLAG, &cfg.version, NULL, 0, 0, NULL, "print the version", 0 },
	SL_OPT_END
};

static volatile sig_atomic_t stop_requested, reload_requested;

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_requested = 1;
	else
		stop_requested = 1;
}

typedef struct serve {
	sl_reader *rd;   /* the cache, or the parts of a split job as one */
	void *ctx, *sock, *zap;
	sl_curve_key secret, pub;
	sl_curve_allow *allow;
	sl_proto_buf out, meta;
	size_t max_blob;
	uint8_t *state;  /* (SL_PROTO_MAX_ROWS) */
	uint64_t *samples; /* (SL_PROTO_MAX_ROWS) a list request's, aligned */
	uint32_t *views; /* (SL_PROTO_MAX_ROWS) its views, aligned */
	uint8_t *blob;   /* (max_blob) */
	uint8_t *runs;   /* (16 * SL_PROTO_MAX_RUNS) */
	sl_store_teacher *teachers; /* (SL_STORE_MAX_TEACHERS) */
	uint64_t requests, errors, refused, revoked;
	/* Per request type (META, SHARDS, RECORDS) answered, and what
	 * RECORDS replies carried: for --metrics-bind. */
	uint64_t answered[3], records_sent, record_bytes_sent;
	sl_log_limit bad_log, auth_log;
	sl_metrics *metrics;
	sl_metrics_text mtext;
} serve;

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: softlabel serve STORE[,STORE...] [--bind EP] [--curve-secret F "
	    "--allow-keys DIR]\n\n"
	    "Answer reads of the logit cache STORE for students on other hosts\n"
	    "(softlabel-student --store tcp://HOST:PORT): the job, the teachers,\n"
	    "the done shards and raw records of samples. Each request is answered\n"
	    "from a fresh read snapshot, so the broker may keep writing the cache.\n"
	    "A comma list A,B names the caches of one job split over brokers\n"
	    "(softlabel-broker --rows), served as one cache, as the student's\n"
	    "--store A,B reads them: refused (exit 2) when their row ranges\n"
	    "overlap, their dataset fingerprints or shard sizes differ, or a\n"
	    "teacher of the first is missing or registered otherwise in another;\n"
	    "the teachers served are those of the first when serve starts.\n"
	    "Without --curve-secret/--allow-keys traffic is unauthenticated: bind\n"
	    "to loopback or a trusted network only. SIGTERM or SIGINT stops it;\n"
	    "SIGHUP reads --allow-keys again (a removed key is refused from its\n"
	    "next request on, also on a connection made before).\n\n"
	    "Exit: 0 stopped by a signal, 1 runtime failure, 2 bad usage.\n\n"
	    "options:\n");
	sl_opt_help(opts, out);
	sl_opt_env_help(opts, "SOFTLABEL_SERVE", out);
}

/* ---- replies ------------------------------------------------------------ */

static int
send_reply(serve *s, const zmq_msg_t *id, const sl_msg *m)
{
	int rc = sl_proto_encode(m, &s->out);

	if (rc != 0)
		return rc;
	if (zmq_send(s->sock, zmq_msg_data((zmq_msg_t *)id),
	    zmq_msg_size((zmq_msg_t *)id), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0 ||
	    zmq_send(s->sock, s->out.p, s->out.len, ZMQ_DONTWAIT) < 0)
		return zmq_errno(); /* the peer is gone or not reading */
	return 0;
}

/* An ERROR reply: code is rc as sl_proto.h puts it on the wire. */
static void
send_error(serve *s, const zmq_msg_t *id, int rc, const char *reason)
{
	sl_msg m;

	memset(&m, 0, sizeof m);
	m.type = SL_MSG_ERROR;
	m.u.error.code = rc < 0 ? (uint32_t)-rc : (uint32_t)rc;
	m.u.error.reason.p = (const uint8_t *)reason;
	m.u.error.reason.len = strnlen(reason, SL_PROTO_MAX_REASON);
	s->errors++;
	(void)send_reply(s, id, &m);
}

/* ---- META ------------------------------------------------------------- */

static int
do_meta(serve *s, const zmq_msg_t *id, sl_errmsg *why)
{
	sl_store_job job;
	size_t n;
	sl_msg m;
	int rc;

	if ((rc = sl_reader_refresh(s->rd, why)) != 0 ||
	    (rc = sl_reader_job(s->rd, &job, why)) != 0 ||
	    (rc = sl_reader_teachers(s->rd, s->teachers,
	    SL_STORE_MAX_TEACHERS, &n, why)) != 0)
		return rc;
	if ((rc = sl_meta_encode(&job, s->teachers, n, &s->meta)) != 0)
		return sl_errmsg_set(why, rc, "meta: %s", sl_strerror(rc));
	memset(&m, 0, sizeof m);
	m.type = SL_MSG_META_REPLY;
	m.u.meta.meta.p = s->meta.p;
	m.u.meta.meta.len = s->meta.len;
	if (m.u.meta.meta.len > SL_PROTO_MAX_META)
		return sl_errmsg_set(why, SL_ELIMIT, "meta has %zu bytes",
		    s->meta.len);
	(void)send_reply(s, id, &m);
	return 0;
}

/* ---- SHARDS ----------------------------------------------------------- */

typedef struct shard_walk {
	uint8_t *runs;
	uint64_t from, next;
	uint32_t nruns;
	int full;
} shard_walk;

/* A run of done shards (sl_reader_each_done), from `from` on: into the
 * reply while it has room (SL_PROTO_MAX_RUNS), else the reply is full and
 * the reader asks again from this run. */
static int
shard_run(void *arg, uint64_t first, uint64_t count)
{
	shard_walk *w = arg;

	if (first + count <= w->from)
		return 0;
	if (first < w->from) {
		count -= w->from - first;
		first = w->from;
	}
	if (w->nruns == SL_PROTO_MAX_RUNS) {
		w->next = first;
		w->full = 1;
		return 1;
	}
	memcpy(w->runs + 16 * (size_t)w->nruns, &first, 8);
	memcpy(w->runs + 16 * (size_t)w->nruns + 8, &count, 8);
	w->nruns++;
	w->next = first + count;
	return 0;
}

static int
do_shards(serve *s, const zmq_msg_t *id, const sl_msg *q, sl_errmsg *why)
{
	shard_walk w = { s->runs, q->u.shards.from, q->u.shards.from, 0, 0 };
	sl_msg m;
	int rc;

	if ((rc = sl_reader_refresh(s->rd, why)) != 0)
		return rc;
	rc = sl_reader_each_done(s->rd, q->u.shards.teacher, shard_run, &w,
	    why);
	if (rc != 0 && !w.full)
		return sl_errmsg_set(why, rc, "teacher %u: shards: %s",
		    q->u.shards.teacher, why->text[0] ? why->text :
		    sl_strerror(rc));
	memset(&m, 0, sizeof m);
	m.type = SL_MSG_SHARDS_REPLY;
	m.u.shards.teacher = q->u.shards.teacher;
	m.u.shards.from = q->u.shards.from;
	m.u.shards.next = w.next;
	m.u.shards.last = !w.full;
	m.u.shards.runs.p = s->runs;
	m.u.shards.runs.len = 16 * (size_t)w.nruns;
	(void)send_reply(s, id, &m);
	return 0;
}

/* ---- RECORDS ---------------------------------------------------------- */

typedef struct rec_walk {
	serve *s;
	uint64_t first;
	uint32_t n, answered;
	size_t size, off;
	int full;
	const uint8_t *samples; /* (n) u64, unaligned: a list request's */
	uint32_t at;            /* rec_listed: the next list place */
} rec_walk;

/* Sample i of the request has record rec (len bytes): 0 to go on, 1 when
 * the reply is full (i is then not answered). */
static int
rec_put(rec_walk *w, uint32_t i, const void *rec, size_t len)
{
	if (len != w->size) {
		w->s->state[i] = SL_REC_BADSIZE;
		return 0;
	}
	if (w->s->max_blob - w->off < len) {
		w->full = 1;
		return 1;
	}
	memcpy(w->s->blob + w->off, rec, len);
	w->off += len;
	w->s->state[i] = SL_REC_PRESENT;
	return 0;
}

static int
rec_range(void *arg, uint64_t sample, const void *rec, size_t len)
{
	rec_walk *w = arg;
	const uint64_t i = sample - w->first;

	if (sample < w->first || i >= w->n)
		return 1;
	if (rec_put(w, (uint32_t)i, rec, len) != 0) {
		w->answered = (uint32_t)i;
		return 1;
	}
	return 0;
}

/* A listed sample's record: the reader passes present ones in list
 * order, so its place is the next one of that sample from `at` on. */
static int
rec_listed(void *arg, uint64_t sample, const void *rec, size_t len)
{
	rec_walk *w = arg;
	uint64_t v;

	for (; w->at < w->n; w->at++) {
		memcpy(&v, w->samples + 8 * (size_t)w->at, 8);
		if (v == sample)
			break;
	}
	if (w->at == w->n)
		return 1; /* not asked: cannot happen */
	if (rec_put(w, w->at, rec, len) != 0) {
		w->answered = w->at;
		return 1;
	}
	w->at++;
	return 0;
}

/* The listed (sample, view) pairs, one at a time: a sample listed with
 * several views has records rec_listed's search by sample cannot tell
 * apart. 1 when the reply is full. */
static int
rec_views(serve *s, uint32_t t, rec_walk *w, sl_errmsg *why)
{
	for (uint32_t i = 0; i < w->n; i++) {
		int rc;

		w->at = i;
		if ((rc = sl_reader_get_labels_view(s->rd, t, s->samples + i,
		    s->views + i, 1, rec_listed, w, why)) != 0)
			return rc;
	}
	return 0;
}

static int
teacher_size(serve *s, uint32_t index, size_t *size, sl_errmsg *why)
{
	size_t n;
	int rc = sl_reader_teachers(s->rd, s->teachers, SL_STORE_MAX_TEACHERS,
	    &n, why);

	if (rc != 0)
		return rc;
	for (size_t i = 0; i < n; i++)
		if (s->teachers[i].index == index) {
			*size = sl_label_size(&s->teachers[i].fmt);
			return 0;
		}
	return sl_errmsg_set(why, SL_ENOTFOUND, "no teacher of index %u",
	    index);
}

static int
do_records(serve *s, const zmq_msg_t *id, const sl_msg *q, sl_errmsg *why)
{
	rec_walk w = { s, q->u.records.first, q->u.records.n, q->u.records.n,
	    0, 0, 0, q->u.records.samples.p, 0 };
	const uint32_t t = q->u.records.teacher;
	sl_msg m;
	int rc;

	if ((rc = sl_reader_refresh(s->rd, why)) != 0 ||
	    (rc = teacher_size(s, t, &w.size, why)) != 0)
		return rc;
	memset(s->state, SL_REC_ABSENT, w.n);
	if (q->u.records.samples.len == 0) {
		rc = sl_reader_each_label(s->rd, t, w.first, w.first + w.n,
		    rec_range, &w, why);
	} else {
		/* The lists go to the reader as u64s and u32s: copied aligned. */
		memcpy(s->samples, w.samples, 8 * (size_t)w.n);
		if (q->u.records.views.len == 0) {
			rc = sl_reader_get_labels(s->rd, t, s->samples, w.n,
			    rec_listed, &w, why);
		} else {
			memcpy(s->views, q->u.records.views.p, 4 * (size_t)w.n);
			rc = rec_views(s, t, &w, why);
		}
	}
	rc = rc == 1 ? 0 : rc;
	if (rc != 0)
		return sl_errmsg_set(why, rc, "teacher %u: records: %s", t,
		    why->text[0] ? why->text : sl_strerror(rc));
	memset(&m, 0, sizeof m);
	m.type = SL_MSG_RECORDS_REPLY;
	m.u.records.teacher = t;
	m.u.records.first = q->u.records.first;
	m.u.records.n = w.answered;
	m.u.records.state.p = s->state;
	m.u.records.state.len = w.answered;
	m.u.records.blob.p = s->blob;
	m.u.records.blob.len = w.off;
	if (send_reply(s, id, &m) == 0) {
		for (uint32_t i = 0; i < w.answered; i++)
			s->records_sent += s->state[i] != SL_REC_ABSENT;
		s->record_bytes_sent += w.off;
	}
	return 0;
}

/* ---- the loop --------------------------------------------------------- */

static void
bad_request(serve *s, const zmq_msg_t *id, int rc, const char *text)
{
	if (sl_log_limit_allow(&s->bad_log, sl_net_now_ms()))
		sl_warn("bad request: %s", text);
	send_error(s, id, rc, text);
}

static void
handle(serve *s, const zmq_msg_t *id, const zmq_msg_t *body)
{
	sl_errmsg why = { "" };
	sl_msg q;
	int rc;

	s->requests++;
	/* Under CURVE, ZAP made the client's key the User-Id of its
	 * messages; a key removed from the list since (SIGHUP) is refused
	 * here, on a connection made before. */
	if (s->allow != NULL) {
		const char *key = zmq_msg_gets((zmq_msg_t *)body, "User-Id");

		if (key == NULL || strlen(key) != SL_CURVE_Z85_LEN ||
		    !sl_curve_allow_has(s->allow, key)) {
			s->revoked++;
			if (sl_log_limit_allow(&s->auth_log, sl_net_now_ms()))
				sl_warn("refused request: key %.8s... is no longer "
				    "on --allow-keys (%" PRIu64 " so far)",
				    key ? key : "(none)", s->revoked);
			send_error(s, id, EACCES, "key not on the allow-list");
			return;
		}
	}
	rc = sl_proto_decode(zmq_msg_data((zmq_msg_t *)body),
	    zmq_msg_size((zmq_msg_t *)body), &q, &why);
	if (rc != 0) {
		bad_request(s, id, rc, why.text);
		return;
	}
	switch (q.type) {
	case SL_MSG_META:
		rc = do_meta(s, id, &why);
		s->answered[0] += rc == 0;
		break;
	case SL_MSG_SHARDS:
		rc = do_shards(s, id, &q, &why);
		s->answered[1] += rc == 0;
		break;
	case SL_MSG_RECORDS:
		rc = do_records(s, id, &q, &why);
		s->answered[2] += rc == 0;
		break;
	default:
		snprintf(why.text, sizeof why.text, "serve answers META, SHARDS "
		    "and RECORDS, not %s", sl_proto_type_name(q.type));
		bad_request(s, id, SL_EUNSUPPORTED, why.text);
		return;
	}
	if (rc != 0) {
		/* No job or no such teacher yet is an answer, not an event. */
		if (rc != SL_ENOTFOUND &&
		    sl_log_limit_allow(&s->bad_log, sl_net_now_ms()))
			sl_warn("%s: %s", sl_proto_type_name(q.type), why.text);
		send_error(s, id, rc, why.text[0] ? why.text : sl_strerror(rc));
	}
}

/* One message from the ROUTER: identity, then exactly one body frame. */
static void
receive(serve *s)
{
	zmq_msg_t id, body;
	int more;
	size_t ml = sizeof more;

	zmq_msg_init(&id);
	zmq_msg_init(&body);
	if (zmq_msg_recv(&id, s->sock, ZMQ_DONTWAIT) < 0)
		goto out;
	if (!zmq_msg_more(&id) || zmq_msg_recv(&body, s->sock, 0) < 0)
		goto out;
	if (zmq_msg_more(&body)) {
		/* Drain the rest: one frame per request. */
		zmq_msg_t extra;

		zmq_msg_init(&extra);
		do {
			if (zmq_msg_recv(&extra, s->sock, 0) < 0)
				break;
		} while (zmq_getsockopt(s->sock, ZMQ_RCVMORE, &more, &ml) == 0 &&
		    more);
		zmq_msg_close(&extra);
		bad_request(s, &id, SL_EFORMAT, "a request is one frame");
		goto out;
	}
	handle(s, &id, &body);
out:
	zmq_msg_close(&id);
	zmq_msg_close(&body);
}

static void
zap_poll(serve *s)
{
	enum sl_curve_verdict v;

	while (sl_curve_zap_serve(s->zap, s->allow, &v) == 0) {
		if (v == SL_CURVE_ADMIT)
			continue;
		s->refused++;
		if (sl_log_limit_allow(&s->auth_log, sl_net_now_ms()))
			sl_warn("refused connection (%s) (%" PRIu64 " so far)",
			    v == SL_CURVE_PLAINTEXT ? "CURVE required" :
			    v == SL_CURVE_UNKNOWN_KEY ? "key not on --allow-keys" :
			    "bad ZAP request", s->refused);
	}
}

static int
open_curve(serve *s)
{
	const int one = 1;
	sl_errmsg why = { "" };

	if (!zmq_has("curve")) {
		sl_error("--curve-secret: this libzmq was built without CURVE");
		return 2;
	}
	if (sl_curve_load_pair(cfg.curve_secret, &s->secret, &s->pub, &why) != 0) {
		sl_error("--curve-secret: %s", why.text);
		return 2;
	}
	if (sl_curve_allow_load(cfg.allow_keys, &s->allow, &why) != 0) {
		sl_error("--allow-keys: %s", why.text);
		return 2;
	}
	/* The ZAP handler before the CURVE socket binds: libzmq admits
	 * every key when no handler answers. */
	if ((s->zap = zmq_socket(s->ctx, ZMQ_REP)) == NULL ||
	    zmq_bind(s->zap, SL_CURVE_ZAP_ENDPOINT) != 0 ||
	    zmq_setsockopt(s->sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
	    zmq_setsockopt(s->sock, ZMQ_CURVE_SECRETKEY, s->secret.z85,
	    SL_CURVE_Z85_LEN) != 0 ||
	    zmq_setsockopt(s->sock, ZMQ_ZAP_DOMAIN, SL_CURVE_ZAP_DOMAIN,
	    strlen(SL_CURVE_ZAP_DOMAIN)) != 0) {
		sl_error("CURVE set-up: %s", zmq_strerror(zmq_errno()));
		return 1;
	}
	return 0;
}

static int
serve_open(serve *s)
{
	sl_errmsg why = { "" };
	int rc;

	s->max_blob = (size_t)cfg.max_reply_bytes;
	s->state = malloc(SL_PROTO_MAX_ROWS);
	s->samples = malloc(SL_PROTO_MAX_ROWS * sizeof *s->samples);
	s->views = malloc(SL_PROTO_MAX_ROWS * sizeof *s->views);
	s->blob = malloc(s->max_blob);
	s->runs = malloc(16 * (size_t)SL_PROTO_MAX_RUNS);
	s->teachers = malloc(SL_STORE_MAX_TEACHERS * sizeof *s->teachers);
	s->bad_log.what = "bad request lines";
	s->auth_log.what = "refused connection lines";
	if (!s->state || !s->samples || !s->views || !s->blob || !s->runs ||
	    !s->teachers) {
		sl_error("out of memory");
		return 1;
	}
	/* A list "a,b" is the parts of a split job, answered as one cache
	 * (sl_reader_union_open); refused (exit 2) when not one job. */
	if ((rc = sl_reader_open(cfg.store, NULL, &s->rd, &why)) != 0) {
		if (strchr(cfg.store, ',') != NULL)
			sl_error("%s", why.text); /* why names the part */
		else
			sl_error("%s: %s", cfg.store, why.text);
		return strchr(cfg.store, ',') && rc == SL_EINVAL ? 2 : 1;
	}
	if ((s->ctx = zmq_ctx_new()) == NULL ||
	    sl_net_socket(s->ctx, ZMQ_ROUTER, cfg.max_request_bytes, &s->sock,
	    &why) != 0) {
		sl_error("socket: %s", why.text[0] ? why.text :
		    zmq_strerror(zmq_errno()));
		return 1;
	}
	if (cfg.curve_secret != NULL && (rc = open_curve(s)) != 0)
		return rc;
	if (zmq_bind(s->sock, cfg.bind) != 0) {
		sl_error("--bind %s: %s", cfg.bind, zmq_strerror(zmq_errno()));
		return 1;
	}
	if (cfg.metrics_bind != NULL) {
		if ((rc = sl_metrics_open(cfg.metrics_bind, &s->metrics,
		    &why)) != 0) {
			sl_error("--metrics-bind %s", why.text);
			return 1;
		}
		sl_info("metrics on http://%.*s:%d/metrics",
		    (int)(strrchr(cfg.metrics_bind, ':') - cfg.metrics_bind),
		    cfg.metrics_bind, sl_metrics_port(s->metrics));
	}
	return 0;
}

static void
serve_close(serve *s)
{
	sl_metrics_close(&s->metrics);
	sl_metrics_text_fini(&s->mtext);
	sl_net_close(&s->sock);
	sl_net_close(&s->zap);
	if (s->ctx != NULL)
		zmq_ctx_term(s->ctx);
	sl_reader_close(&s->rd);
	sl_curve_allow_free(&s->allow);
	sl_proto_buf_fini(&s->out);
	sl_proto_buf_fini(&s->meta);
	free(s->state);
	free(s->samples);
	free(s->views);
	free(s->blob);
	free(s->runs);
	free(s->teachers);
}

/* SIGHUP: a new allow-list replaces the old one whole, or not at all. */
static void
reload_keys(serve *s)
{
	sl_curve_allow *a = NULL;
	sl_errmsg why = { "" };

	if (s->allow == NULL) {
		sl_info("SIGHUP ignored: no --allow-keys");
		return;
	}
	if (sl_curve_allow_load(cfg.allow_keys, &a, &why) != 0) {
		sl_error("allow-list not reloaded, the old one stays: %s",
		    why.text);
		return;
	}
	sl_curve_allow_free(&s->allow);
	s->allow = a;
	sl_info("allow-list reloaded: %zu keys", sl_curve_allow_count(a));
}

/* A scrape waits: render the counters on this thread and hand them over
 * (sl_metrics.h). */
static void
publish_metrics(serve *s)
{
	static const char *const types[3] = { "META", "SHARDS", "RECORDS" };
	const uint64_t gen = sl_metrics_begin(s->metrics);
	sl_metrics_text *t = &s->mtext;

	if (gen == 0)
		return;
	sl_metrics_text_reset(t);
	sl_metrics_family(t, "softlabel_serve_requests_total", "counter",
	    "Requests received (every frame from a reader).");
	sl_metrics_sample(t, "softlabel_serve_requests_total", NULL,
	    (double)s->requests);
	sl_metrics_family(t, "softlabel_serve_answered_total", "counter",
	    "Requests answered with a reply, by type.");
	for (int i = 0; i < 3; i++)
		sl_metrics_sample(t, "softlabel_serve_answered_total",
		    (const char *[]){ "type", types[i], NULL },
		    (double)s->answered[i]);
	sl_metrics_family(t, "softlabel_serve_errors_total", "counter",
	    "ERROR replies (bad requests, unknown teachers, no job yet).");
	sl_metrics_sample(t, "softlabel_serve_errors_total", NULL,
	    (double)s->errors);
	sl_metrics_family(t, "softlabel_serve_refused_total", "counter",
	    "Readers refused: connections ZAP refused, requests of keys no "
	    "longer on --allow-keys.");
	sl_metrics_sample(t, "softlabel_serve_refused_total",
	    (const char *[]){ "reason", "connection", NULL }, (double)s->refused);
	sl_metrics_sample(t, "softlabel_serve_refused_total",
	    (const char *[]){ "reason", "revoked_key", NULL }, (double)s->revoked);
	sl_metrics_family(t, "softlabel_serve_records_total", "counter",
	    "Records sent in RECORDS replies.");
	sl_metrics_sample(t, "softlabel_serve_records_total", NULL,
	    (double)s->records_sent);
	sl_metrics_family(t, "softlabel_serve_record_bytes_total", "counter",
	    "Bytes of records sent in RECORDS replies.");
	sl_metrics_sample(t, "softlabel_serve_record_bytes_total", NULL,
	    (double)s->record_bytes_sent);
	if (!t->oom)
		(void)sl_metrics_publish(s->metrics, gen, t->p, t->len);
}

static int
serve_loop(serve *s)
{
	while (!stop_requested) {
		if (reload_requested) {
			reload_requested = 0;
			reload_keys(s);
		}
		zmq_pollitem_t it[3] = { { s->sock, 0, ZMQ_POLLIN, 0 } };
		int nit = 1, izap = -1, imet = -1;

		if (s->zap != NULL) {
			izap = nit;
			it[nit++] = (zmq_pollitem_t){ s->zap, 0, ZMQ_POLLIN, 0 };
		}
		if (s->metrics != NULL) {
			imet = nit;
			it[nit++] = (zmq_pollitem_t){ NULL,
			    sl_metrics_fd(s->metrics), ZMQ_POLLIN, 0 };
		}
		const int n = zmq_poll(it, nit, POLL_MS);
		const uint64_t now = sl_net_now_ms();

		sl_log_limit_flush(&s->bad_log, now);
		sl_log_limit_flush(&s->auth_log, now);
		if (n < 0) {
			if (zmq_errno() == EINTR)
				continue;
			sl_error("zmq_poll: %s", zmq_strerror(zmq_errno()));
			return 1;
		}
		if (izap >= 0 && (it[izap].revents & ZMQ_POLLIN))
			zap_poll(s);
		if (imet >= 0 && (it[imet].revents & ZMQ_POLLIN))
			publish_metrics(s);
		if (it[0].revents & ZMQ_POLLIN)
			for (int k = 0; k < 64 && !stop_requested; k++) {
				int ev = 0;
				size_t el = sizeof ev;

				if (zmq_getsockopt(s->sock, ZMQ_EVENTS, &ev, &el) != 0 ||
				    !(ev & ZMQ_POLLIN))
					break;
				receive(s);
			}
	}
	return 0;
}

int
serve_main(int argc, char **argv)
{
	enum sl_log_level level;
	struct sigaction sa;
	sl_errmsg why = { "" };
	serve s;
	int pos[2], npos, rc;

	if (sl_opt_parse(opts, argc, argv, pos, 2, &npos, &why) != 0 ||
	    sl_opt_env(opts, "SOFTLABEL_SERVE", &why) != 0) {
		fprintf(stderr, "softlabel serve: %s\n", why.text);
		return 2;
	}
	if (cfg.help) {
		usage(stdout);
		return 0;
	}
	if (cfg.version) {
		printf("softlabel %s\n", SL_VERSION);
		return 0;
	}
	if (npos != 1) {
		fprintf(stderr, "softlabel serve: want one STORE (see --help)\n");
		return 2;
	}
	cfg.store = argv[pos[0]];
	for (const char *p = cfg.store; *p; p += strcspn(p, ",") +
	    (p[strcspn(p, ",")] == ','))
		if (sl_reader_is_remote(p)) {
			fprintf(stderr, "softlabel serve: '%s': serve reads cache "
			    "directories, not endpoints\n", cfg.store);
			return 2;
		}
	if ((cfg.curve_secret == NULL) != (cfg.allow_keys == NULL)) {
		fprintf(stderr, "softlabel serve: --curve-secret and --allow-keys "
		    "go together (see --help)\n");
		return 2;
	}
	if (sl_net_check_endpoint(cfg.bind, 1, &why) != 0) {
		fprintf(stderr, "softlabel serve: --bind: %s\n", why.text);
		return 2;
	}
	if (cfg.metrics_bind != NULL &&
	    sl_metrics_check_addr(cfg.metrics_bind, &why) != 0) {
		fprintf(stderr, "softlabel serve: --metrics-bind: %s\n", why.text);
		return 2;
	}
	if (sl_log_parse_level(cfg.log_level, &level) != 0) {
		fprintf(stderr, "softlabel serve: --log-level '%s': want debug, "
		    "info, warn or error\n", cfg.log_level);
		return 2;
	}
	sl_log_init("softlabel-serve", level);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	memset(&s, 0, sizeof s);
	if ((rc = serve_open(&s)) == 0) {
		if (s.allow == NULL)
			sl_warn("no --curve-secret: readers are not authenticated "
			    "and traffic is plaintext");
		else
			sl_info("CURVE on: %zu allowed keys from %s",
			    sl_curve_allow_count(s.allow), cfg.allow_keys);
		sl_info("ready bind=%s store=%s max_reply_bytes=%" PRId64,
		    cfg.bind, cfg.store, cfg.max_reply_bytes);
		rc = serve_loop(&s);
		sl_info("stopped after %" PRIu64 " requests (%" PRIu64 " errors, "
		    "%" PRIu64 " refused connections, %" PRIu64 " revoked "
		    "requests)", s.requests, s.errors, s.refused, s.revoked);
	}
	serve_close(&s);
	return rc;
}

/* sl_reader_remote.c - the reader over `softlabel serve`: one DEALER,
 * one request in flight, answers decoded with sl_proto and sl_meta.
 *
 * A request that gets no reply within timeout_ms is sent again on a new
 * socket (the old one and any late reply on it are dropped: a reply
 * always answers the request just sent), after a back-off. Replies are
 * prefixes when the server bounds their size; the walks ask again for the
 * rest. */
#include "sl_reader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "sl_curve.h"
#include "sl_log.h"
#include "sl_meta.h"
#include "sl_net.h"
#include "sl_proto.h"

#define DEFAULT_TIMEOUT_MS 5000
#define WAIT_LOG_MS 5000
#define MAX_REPLY_BYTES (256u << 20) /* ZMQ_MAXMSGSIZE of our socket */
#define RANGE_CHUNK (1u << 16)       /* samples asked per RECORDS */

typedef struct remote {
	struct sl_reader base;
	char ep[512];
	void *ctx, *sock;
	int curve;
	sl_curve_key secret, pub, server;
	int connect_timeout_s;
	uint32_t timeout_ms;
	volatile sig_atomic_t *stop;
	uint64_t open_ms;
	int answered;          /* a server has answered once */
	uint32_t backoff_ms;
	uint64_t rng;
	sl_proto_buf out;
	zmq_msg_t reply;       /* the last reply; m borrows from it */
	int have_reply;
	sl_msg m;
	/* Record sizes and views per teacher index, and the job's last row,
	 * from the last META. */
	size_t rec_size[SL_STORE_MAX_TEACHERS];
	uint32_t views[SL_STORE_MAX_TEACHERS];
	uint64_t rows_end;
	int have_meta;
	/* each_label_view's (sample, view) lists, RANGE_CHUNK long. */
	uint64_t *vsamples;
	uint32_t *vviews;
} remote;

/* Where a reply's records go: fn gets (sample, record); vfn, when set,
 * gets the view asked at the record's place in the list too. */
typedef struct sink {
	sl_store_label_fn fn;
	sl_store_view_fn vfn;
	void *arg;
} sink;

static void
drop_socket(remote *r)
{
	sl_net_close(&r->sock);
}

static int
make_socket(remote *r, sl_errmsg *why)
{
	int rc = sl_net_socket(r->ctx, ZMQ_DEALER, MAX_REPLY_BYTES, &r->sock,
	    why);

	if (rc != 0)
		return rc;
	if (r->curve && (rc = sl_curve_client_setup(r->sock, &r->secret,
	    &r->pub, &r->server)) != 0) {
		drop_socket(r);
		return sl_errmsg_set(why, rc, "CURVE client options: %s",
		    zmq_strerror(rc));
	}
	if (zmq_connect(r->sock, r->ep) != 0) {
		rc = zmq_errno();
		drop_socket(r);
		return sl_errmsg_set(why, rc, "%s: %s", r->ep, zmq_strerror(rc));
	}
	return 0;
}

static void
sleep_ms(uint32_t ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int
stopped(const remote *r)
{
	return r->stop != NULL && *r->stop;
}

/* Poll for the reply up to timeout_ms, in slices of at most 100 ms so a
 * stop request is seen: 1 readable, 0 not (timed out or stopped). */
static int
wait_reply(remote *r)
{
	const uint64_t end = sl_net_now_ms() + r->timeout_ms;

	for (;;) {
		zmq_pollitem_t it = { r->sock, 0, ZMQ_POLLIN, 0 };
		const uint64_t now = sl_net_now_ms();
		const long slice = end - now > 100 ? 100 : (long)(end - now);

		if (now >= end || stopped(r))
			return 0;
		const int n = zmq_poll(&it, 1, slice);
		if (n > 0)
			return 1;
		if (n < 0 && zmq_errno() != EINTR)
			return 0;
	}
}

/* Send r->out and wait for the reply of type want into r->m, resending
 * on a new socket until one comes (or, before any first answer, until
 * connect_timeout_s). An ERROR reply is returned as its code. */
static int
exchange(remote *r, enum sl_msg_type want, sl_errmsg *why)
{
	const uint64_t t0 = sl_net_now_ms();
	uint64_t logged = 0;
	int rc;

	for (;;) {
		if (r->have_reply) {
			zmq_msg_close(&r->reply);
			r->have_reply = 0;
		}
		if (r->sock == NULL && (rc = make_socket(r, why)) != 0)
			return rc;
		if (zmq_send(r->sock, r->out.p, r->out.len, 0) < 0)
			rc = zmq_errno();
		else {
			int n = wait_reply(r);

			if (n > 0) {
				zmq_msg_init(&r->reply);
				r->have_reply = 1;
				if (zmq_msg_recv(&r->reply, r->sock, 0) >= 0)
					break;
			}
			rc = ETIMEDOUT;
		}
		/* No answer: a new connection, after a back-off. */
		drop_socket(r);
		if (stopped(r))
			return sl_errmsg_set(why, EINTR, "%s: interrupted while "
			    "waiting for a server", r->ep);
		const uint64_t now = sl_net_now_ms();
		if (!r->answered && r->connect_timeout_s > 0 &&
		    now - r->open_ms >= (uint64_t)r->connect_timeout_s * 1000)
			return sl_errmsg_set(why, ETIMEDOUT, "%s: no server "
			    "answered within %d s (--connect-timeout)", r->ep,
			    r->connect_timeout_s);
		if (now - t0 >= r->timeout_ms && (logged == 0 ||
		    now - logged >= WAIT_LOG_MS)) {
			sl_warn("store %s: no answer for %.1f s; waiting for a "
			    "server (the request is sent again)", r->ep,
			    (double)(now - t0) / 1000.0);
			logged = now;
		}
		for (uint32_t ms = sl_net_backoff_ms(&r->backoff_ms, &r->rng);
		    ms > 0 && !stopped(r); ms -= ms < 100 ? ms : 100)
			sleep_ms(ms < 100 ? ms : 100);
		(void)rc;
	}
	r->backoff_ms = 0;
	if (logged != 0)
		sl_info("store %s: a server answers again after %.1f s", r->ep,
		    (double)(sl_net_now_ms() - t0) / 1000.0);
	r->answered = 1;
	if ((rc = sl_proto_decode(zmq_msg_data(&r->reply),
	    zmq_msg_size(&r->reply), &r->m, why)) != 0)
		return sl_errmsg_set(why, EPROTO, "%s: bad reply: %s", r->ep,
		    why->text);
	if (r->m.type == SL_MSG_ERROR) {
		/* On the wire: an errno value as is, a negative code (SL_E*,
		 * LMDB's) negated; errno values stay below 4096. */
		const uint32_t c = r->m.u.error.code;
		const int code = c == 0 || c > (uint32_t)INT32_MAX ? EPROTO :
		    c >= 4096 ? -(int)c : (int)c;

		return sl_errmsg_set(why, code, "%.*s",
		    (int)r->m.u.error.reason.len,
		    (const char *)r->m.u.error.reason.p);
	}
	if (r->m.type != want)
		return sl_errmsg_set(why, EPROTO, "%s: a %s reply to a %s "
		    "request", r->ep, sl_proto_type_name(r->m.type),
		    sl_proto_type_name(want == SL_MSG_META_REPLY ? SL_MSG_META :
		    want - 1));
	return 0;
}

static int
request(remote *r, const sl_msg *q, enum sl_msg_type want, sl_errmsg *why)
{
	int rc = sl_proto_encode(q, &r->out);

	if (rc != 0)
		return sl_errmsg_set(why, rc, "encode %s: %s",
		    sl_proto_type_name(q->type), sl_strerror(rc));
	return exchange(r, want, why);
}

/* META, decoded into job and teachers; remembers the record sizes. */
static int
get_meta(remote *r, sl_store_job *job, sl_store_teacher *t, size_t cap,
    size_t *n, sl_errmsg *why)
{
	sl_msg q;
	int rc;

	memset(&q, 0, sizeof q);
	q.type = SL_MSG_META;
	if ((rc = request(r, &q, SL_MSG_META_REPLY, why)) != 0)
		return rc;
	if ((rc = sl_meta_decode(r->m.u.meta.meta.p, r->m.u.meta.meta.len, job,
	    t, cap, n, why)) != 0)
		return rc;
	memset(r->rec_size, 0, sizeof r->rec_size);
	memset(r->views, 0, sizeof r->views);
	for (size_t i = 0; i < *n; i++) {
		r->rec_size[t[i].index] = sl_label_size(&t[i].fmt);
		r->views[t[i].index] = t[i].views;
	}
	r->rows_end = job->rows_end;
	r->have_meta = 1;
	return 0;
}

static int
remote_job(sl_reader *rd, sl_store_job *out, sl_errmsg *why)
{
	sl_store_teacher *t = malloc(SL_STORE_MAX_TEACHERS * sizeof *t);
	size_t n;
	int rc;

	if (t == NULL)
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	rc = get_meta((remote *)rd, out, t, SL_STORE_MAX_TEACHERS, &n, why);
	free(t);
	return rc;
}

static int
remote_teachers(sl_reader *rd, sl_store_teacher *out, size_t cap, size_t *n,
    sl_errmsg *why)
{
	sl_store_job job;

	return get_meta((remote *)rd, &job, out, cap, n, why);
}

static int
remote_refresh(sl_reader *rd, sl_errmsg *why)
{
	(void)rd;
	(void)why;
	return 0; /* every request is answered from a fresh snapshot */
}

static int
remote_each_done(sl_reader *rd, uint32_t teacher, sl_reader_run_fn fn,
    void *arg, sl_errmsg *why)
{
	remote *r = (remote *)rd;
	uint64_t from = 0;
	sl_msg q;
	int rc;

	for (;;) {
		memset(&q, 0, sizeof q);
		q.type = SL_MSG_SHARDS;
		q.u.shards.teacher = teacher;
		q.u.shards.from = from;
		if ((rc = request(r, &q, SL_MSG_SHARDS_REPLY, why)) != 0)
			return rc;
		const sl_msg *m = &r->m;
		if (m->u.shards.teacher != teacher || m->u.shards.from != from ||
		    (!m->u.shards.last && m->u.shards.next == from))
			return sl_errmsg_set(why, EPROTO, "%s: SHARDS_REPLY does "
			    "not answer teacher %u from %llu", r->ep, teacher,
			    (unsigned long long)from);
		for (size_t i = 0; i < m->u.shards.runs.len; i += 16) {
			uint64_t first, count;

			memcpy(&first, m->u.shards.runs.p + i, 8);
			memcpy(&count, m->u.shards.runs.p + i + 8, 8);
			if ((rc = fn(arg, first, count)) != 0)
				return rc;
		}
		if (m->u.shards.last)
			return 0;
		from = m->u.shards.next;
	}
}

/* The record size of teacher, from META (asked once if not known). */
static int
rec_size(remote *r, uint32_t teacher, size_t *size, sl_errmsg *why)
{
	if (teacher >= SL_STORE_MAX_TEACHERS)
		return sl_errmsg_set(why, SL_EINVAL, "teacher index %u", teacher);
	if (!r->have_meta || r->rec_size[teacher] == 0) {
		sl_store_job job;
		int rc = remote_job(&r->base, &job, why);

		if (rc != 0)
			return rc;
	}
	if (r->rec_size[teacher] == 0)
		return sl_errmsg_set(why, SL_ENOTFOUND, "%s: no teacher of index "
		    "%u", r->ep, teacher);
	*size = r->rec_size[teacher];
	return 0;
}

static int
sink_put(const sink *k, uint64_t sample, const uint32_t *views, uint32_t i,
    const void *rec, size_t len)
{
	if (k->vfn != NULL)
		return k->vfn(k->arg, sample, views[i], rec, len);
	return k->fn(k->arg, sample, rec, len);
}

/* Hand the answered prefix of a RECORDS_REPLY to the sink; samples[i]
 * (and views[i]) is the i-th asked (NULL: the range from first). */
static int
deliver(remote *r, size_t size, const uint64_t *samples,
    const uint32_t *views, uint64_t first, const sink *k, sl_errmsg *why)
{
	static const uint8_t empty[16];
	const sl_msg *m = &r->m;
	size_t off = 0;
	int rc;

	for (uint32_t i = 0; i < m->u.records.n; i++) {
		const uint64_t s = samples ? samples[i] : first + i;
		const uint8_t st = m->u.records.state.p[i];

		if (st == SL_REC_ABSENT)
			continue;
		if (st == SL_REC_BADSIZE) {
			if ((rc = sink_put(k, s, views, i, empty, 0)) != 0)
				return rc;
			continue;
		}
		if (m->u.records.blob.len - off < size)
			return sl_errmsg_set(why, EPROTO, "%s: RECORDS_REPLY blob "
			    "is short", r->ep);
		if ((rc = sink_put(k, s, views, i, m->u.records.blob.p + off,
		    size)) != 0)
			return rc;
		off += size;
	}
	if (off != m->u.records.blob.len)
		return sl_errmsg_set(why, EPROTO, "%s: RECORDS_REPLY blob has %zu "
		    "extra bytes", r->ep, m->u.records.blob.len - off);
	return 0;
}

/* One RECORDS request (range when samples is NULL; with views, of the
 * (samples[i], views[i]) pairs); *answered gets the length of the prefix
 * the server answered (>= 1). */
static int
records(remote *r, uint32_t teacher, uint64_t first, const uint64_t *samples,
    const uint32_t *views, uint32_t n, const sink *k, uint32_t *answered,
    sl_errmsg *why)
{
	size_t size = 0;
	sl_msg q;
	int rc;

	if ((rc = rec_size(r, teacher, &size, why)) != 0)
		return rc;
	memset(&q, 0, sizeof q);
	q.type = SL_MSG_RECORDS;
	q.u.records.teacher = teacher;
	q.u.records.first = samples ? 0 : first;
	q.u.records.n = n;
	if (samples != NULL) {
		/* The list travels as u64 LE (this build is little-endian
		 * only: sl_data.h). */
		q.u.records.samples.p = (const uint8_t *)samples;
		q.u.records.samples.len = 8 * (size_t)n;
	}
	if (views != NULL) {
		q.u.records.views.p = (const uint8_t *)views;
		q.u.records.views.len = 4 * (size_t)n;
	}
	if ((rc = request(r, &q, SL_MSG_RECORDS_REPLY, why)) != 0)
		return rc;
	if (r->m.u.records.teacher != teacher || r->m.u.records.n == 0 ||
	    r->m.u.records.n > n || r->m.u.records.first != q.u.records.first)
		return sl_errmsg_set(why, EPROTO, "%s: RECORDS_REPLY does not "
		    "answer the request", r->ep);
	*answered = r->m.u.records.n;
	return deliver(r, size, samples, views, first, k, why);
}

static int
remote_each_label(sl_reader *rd, uint32_t teacher, uint64_t from, uint64_t to,
    sl_store_label_fn fn, void *arg, sl_errmsg *why)
{
	remote *r = (remote *)rd;
	const sink k = { fn, NULL, arg };

	while (from < to) {
		const uint32_t n = to - from > RANGE_CHUNK ? RANGE_CHUNK :
		    (uint32_t)(to - from);
		uint32_t got;
		int rc = records(r, teacher, from, NULL, NULL, n, &k, &got, why);

		if (rc != 0)
			return rc;
		from += got;
	}
	return 0;
}

/* The listed samples (with views: the (sample, view) pairs), in requests
 * of RANGE_CHUNK at most. */
static int
get_list(remote *r, uint32_t teacher, const uint64_t *samples,
    const uint32_t *views, size_t n, const sink *k, sl_errmsg *why)
{
	size_t done = 0;

	while (done < n) {
		const uint32_t m = n - done > RANGE_CHUNK ? RANGE_CHUNK :
		    (uint32_t)(n - done);
		uint32_t got;
		int rc = records(r, teacher, 0, samples + done,
		    views ? views + done : NULL, m, k, &got, why);

		if (rc != 0)
			return rc;
		done += got;
	}
	return 0;
}

static int
remote_get_labels(sl_reader *rd, uint32_t teacher, const uint64_t *samples,
    size_t n, sl_store_label_fn fn, void *arg, sl_errmsg *why)
{
	const sink k = { fn, NULL, arg };

	return get_list((remote *)rd, teacher, samples, NULL, n, &k, why);
}

static int
remote_get_labels_view(sl_reader *rd, uint32_t teacher,
    const uint64_t *samples, const uint32_t *views, size_t n,
    sl_store_label_fn fn, void *arg, sl_errmsg *why)
{
	const sink k = { fn, NULL, arg };

	return get_list((remote *)rd, teacher, samples, views, n, &k, why);
}

/* Every (sample, view) of [from, to) asked as lists, V views per sample,
 * within the job's rows: the present records come in (sample, view)
 * order, as a local cursor gives them. */
static int
remote_each_label_view(sl_reader *rd, uint32_t teacher, uint64_t from,
    uint64_t to, sl_store_view_fn fn, void *arg, sl_errmsg *why)
{
	remote *r = (remote *)rd;
	const sink k = { NULL, fn, arg };
	size_t size;
	uint32_t V;
	int rc;

	if ((rc = rec_size(r, teacher, &size, why)) != 0)
		return rc;
	if ((V = r->views[teacher]) == 0)
		return sl_errmsg_set(why, SL_EFORMAT, "%s: teacher %u has no "
		    "views (its records have 12-byte keys)", r->ep, teacher);
	if (r->vsamples == NULL) {
		r->vsamples = malloc(RANGE_CHUNK * sizeof *r->vsamples);
		r->vviews = malloc(RANGE_CHUNK * sizeof *r->vviews);
		if (r->vsamples == NULL || r->vviews == NULL)
			return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	}
	if (to > r->rows_end)
		to = r->rows_end;
	while (from < to) {
		const uint64_t per = RANGE_CHUNK / V;
		const uint64_t ns = to - from < per ? to - from : per;
		size_t n = 0;

		for (uint64_t s = from; s < from + ns; s++)
			for (uint32_t v = 0; v < V; v++, n++) {
				r->vsamples[n] = s;
				r->vviews[n] = v;
			}
		if ((rc = get_list(r, teacher, r->vsamples, r->vviews, n, &k,
		    why)) != 0)
			return rc;
		from += ns;
	}
	return 0;
}

static void
remote_close(sl_reader *rd)
{
	remote *r = (remote *)rd;

	if (r->have_reply)
		zmq_msg_close(&r->reply);
	drop_socket(r);
	if (r->ctx != NULL)
		zmq_ctx_term(r->ctx);
	sl_proto_buf_fini(&r->out);
	free(r->vsamples);
	free(r->vviews);
	free(r);
}

static const struct sl_reader_ops remote_ops = {
	remote_job, remote_teachers, remote_refresh, remote_each_done,
	remote_each_label, remote_get_labels, remote_close,
	remote_get_labels_view, remote_each_label_view,
};

int
sl_reader_remote_open(const char *ep, const sl_reader_opts *o,
    sl_reader **out, sl_errmsg *why)
{
	const sl_reader_opts def = { NULL, NULL, 0, 0, NULL };
	remote *r;
	int rc;

	if (o == NULL)
		o = &def;
	if ((rc = sl_net_check_endpoint(ep, 0, why)) != 0)
		return rc;
	if (strlen(ep) >= sizeof r->ep)
		return sl_errmsg_set(why, SL_EINVAL, "endpoint too long");
	if ((o->curve_secret == NULL) != (o->curve_server == NULL))
		return sl_errmsg_set(why, SL_EINVAL, "CURVE needs both our secret "
		    "key and the server's public key");
	if ((r = calloc(1, sizeof *r)) == NULL)
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	r->base.ops = &remote_ops;
	snprintf(r->ep, sizeof r->ep, "%s", ep);
	r->connect_timeout_s = o->connect_timeout_s;
	r->timeout_ms = o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
	r->stop = o->stop;
	r->open_ms = sl_net_now_ms();
	r->rng = r->open_ms ^ (uint64_t)(uintptr_t)r;
	if (o->curve_secret != NULL) {
		if ((rc = sl_curve_load_pair(o->curve_secret, &r->secret, &r->pub,
		    why)) != 0 || (rc = sl_curve_load_key(o->curve_server, 0,
		    &r->server, why)) != 0) {
			remote_close(&r->base);
			return rc;
		}
		r->curve = 1;
	}
	if ((r->ctx = zmq_ctx_new()) == NULL) {
		rc = zmq_errno();
		remote_close(&r->base);
		return sl_errmsg_set(why, rc, "zmq_ctx_new: %s", zmq_strerror(rc));
	}
	*out = &r->base;
	return 0;
}

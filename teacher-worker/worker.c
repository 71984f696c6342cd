#include "worker.h"
#include "progress.h"
#include "sl_curve.h"
#include "sl_data.h"
#include "sl_fingerprint.h"
#include "sl_graph.h"
#include "sl_label.h"
#include "sl_log.h"
#include "sl_model.h"
#include "sl_net.h"
#include "sl_proto.h"
#include "sl_view.h"

#include <limits.h>

#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_TASKS 8
#define MAX_HELD 16

typedef struct task {
	int used;
	uint64_t shard, first_row;
	uint32_t nrows;
	uint32_t done_rows;   /* computed so far */
	zmq_msg_t frame;      /* keeps shipped rows alive */
	const uint8_t *data;  /* shipped rows, or NULL: local dataset */
} task;

typedef struct held {
	int used;
	uint64_t shard;
	sl_proto_buf msg;     /* the encoded RESULT, resent until acknowledged */
	uint64_t resend_at_ms; /* ACK "retry": resend then (0: not due) */
} held;

/* One batch handed to the compute thread. Main fills it while the thread
 * is idle; the thread reads it and fills the results; the mutex's hand-over
 * orders the two. The rows and out stay alive until main collects it. */
typedef struct batch_job {
	const uint8_t *rows;    /* shipped rows, or NULL: local dataset */
	uint64_t first_row;     /* dataset row of the batch's first row */
	uint32_t b;             /* rows in the batch */
	enum sl_dtype dtype;
	sl_preproc pre;
	uint32_t view;          /* the view to apply; UINT32_MAX: none */
	uint8_t *out;           /* (b * rec_size) records */
	int rc;                 /* result: 0, or fatal (why says it) */
	char why[SL_ERRMSG_MAX + 64];
} batch_job;

enum compute_state { COMPUTE_IDLE, COMPUTE_BUSY, COMPUTE_DONE };

/* The compute thread runs the forward passes so that the main thread,
 * which alone touches the socket, keeps heartbeating through a long batch.
 * state and quit are guarded by mu; IDLE -> BUSY by main (job filled),
 * BUSY -> DONE by the thread (a byte on wake[1] tells main's zmq_poll),
 * DONE -> IDLE by main once it has collected the job. */
typedef struct compute {
	pthread_t thread;
	int started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	enum compute_state state;
	int quit;
	int wake[2];            /* pipe: read end polled by main */
	batch_job job;
	int discard;            /* main: the blob moved under the job */
	uint8_t *retired_blob;  /* main: freed once the job is collected */
} compute;

typedef struct wstate {
	const worker_cfg *cfg;
	volatile sig_atomic_t *stop;
	sl_graph *g;            /* the teacher, planned for cfg->batch rows */
	size_t dim;             /* values per row */
	sl_model_info info;
	sl_preproc pre_req;     /* asked for; NaN: the dtype's default */
	uint8_t pre_wire[SL_PREPROC_MAX_BYTES]; /* pre_req packed for HELLO */
	size_t pre_wire_len;
	sl_preproc pre;         /* what runs: pre_req over the dtype's default */
	char sha[65];
	sl_label_fmt fmt;
	size_t rec_size;
	sl_dataset *ds;         /* optional local copy */
	sl_fingerprint fp;

	void *zctx, *sock;
	int curve;              /* keys below set on every new socket */
	sl_curve_key secret, pub, server;
	sl_proto_buf out;
	int welcomed, done;
	int ever_welcomed;      /* a broker has answered since the start */
	int ever_busy;          /* a broker said BUSY: it is there, only full
	                           for now (no --connect-timeout then) */
	uint32_t teacher_index, heartbeat_ms, row_bytes, shard_rows;
	enum sl_dtype dtype;
	uint64_t last_heard_ms, last_hb_ms;
	uint32_t backoff_ms;
	uint64_t hello_at_ms;   /* BUSY: say HELLO again then (0: no) */
	uint32_t store_backoff_ms; /* ACK "retry" (the broker's disk full) */
	uint64_t rng;

	task tasks[MAX_TASKS];
	task *active;           /* the task being computed into blob */
	held helds[MAX_HELD];
	compute c;
	/* The renewal rule: a heartbeat renews the task leases only if the
	 * compute thread is idle or has finished a graph node or a batch
	 * since the previous renewal (these are that renewal's readings). */
	uint64_t renew_progress, renew_batches, batches;
	uint64_t stalled_since_ms;  /* first renewal withheld, 0: none */
	int stall_logged;
	uint32_t lease_ms;      /* the broker's lease timeout (WELCOME) */
	/* Views (WELCOME): V, the recipe, the seed, the rows' image (C planes
	 * of H x W); vrows (batch * row_bytes) holds a batch's views and
	 * vscratch one plane, both sized at WELCOME. */
	uint32_t views;
	sl_view_recipe recipe;
	uint64_t view_seed;
	int view_c, view_h, view_w;
	uint8_t *vrows, *vscratch;
	size_t vrows_cap;
	sl_view_recipe want_recipe; /* --view-recipe, for HELLO */
	uint8_t want_wire[SL_VIEW_RECIPE_BYTES];
	float *x;               /* (batch, D) */
	float *scratch;         /* (2 * classes) for sl_label_encode */
	uint8_t *blob;          /* (shard_rows * rec_size) */
	size_t blob_cap;
	uint64_t shards_done, samples_done;
	worker_progress progress; /* the line on a terminal (progress.h) */
} wstate;

/* --- setup ----------------------------------------------------------------- */

/* Preprocessing: the options, else the model's metadata, else (NaN) the
 * default for the broker's dtype, which HELLO leaves to the broker. */
static int
preproc_request(wstate *w, const worker_cfg *c, sl_errmsg *why)
{
	int rc = sl_preproc_from_options(&w->pre_req,
	    w->info.has_preproc ? &w->info.pre : NULL, c->input_scale,
	    c->input_mean, c->input_std, why);

	if (rc != 0)
		return rc;
	if (w->ds != NULL) { /* the broker checks it too: fail before */
		sl_preproc run = w->pre_req;

		sl_preproc_fill(&run, sl_dataset_dtype(w->ds));
		if ((rc = sl_preproc_check(&run, w->fp.shape, w->fp.ndim,
		    why)) != 0)
			return rc;
	}
	w->pre_wire_len = sl_preproc_pack(&w->pre_req, w->pre_wire);
	return 0;
}

static int
load(wstate *w)
{
	const worker_cfg *c = w->cfg;
	sl_errmsg why = { "" };
	int rc;

	if (c->dataset != NULL) {
		if ((rc = sl_dataset_open(c->dataset, &w->ds, &why)) != 0) {
			sl_error("%s: %s", c->dataset, why.text);
			return 1;
		}
		if ((rc = sl_dataset_fingerprint_start(w->ds, c->dataset, &w->fp,
		    &why)) != 0) {
			sl_error("%s: %s", c->dataset, why.text);
			return 1;
		}
	}
	/* Before the plan: Conv sizes its workspace for this thread count. */
	if (c->threads > 0)
		openblas_set_num_threads(c->threads);
	/* With a local dataset its row shape is checked against the model's
	 * input; without one the broker checks the row size on HELLO. */
	sl_graph_opts go = { .max_batch = c->batch };

	if (w->ds != NULL) {
		go.row_rank = (int)w->fp.ndim - 1;
		go.row_dims = w->fp.shape + 1;
	}
	if ((rc = sl_graph_load(c->model, &go, &w->g, &w->info, &why)) != 0 ||
	    (rc = sl_model_sha256(c->model, w->sha, &why)) != 0) {
		sl_error("%s: %s", c->model, why.text[0] ? why.text : sl_strerror(rc));
		return rc == SL_EMISMATCH ? 2 : 1;
	}
	w->dim = sl_graph_input_dim(w->g);
	if ((rc = preproc_request(w, c, &why)) != 0) {
		sl_error("%s", why.text);
		return 2;
	}
	if (c->views > 0) {
		if (c->view_recipe == NULL) {
			sl_error("--views needs --view-recipe");
			return 2;
		}
		if (sl_view_recipe_parse(c->view_recipe, &w->want_recipe,
		    &why) != 0) {
			sl_error("--view-recipe: %s", why.text);
			return 2;
		}
		sl_view_recipe_pack(&w->want_recipe, w->want_wire);
	}
	sl_info("model %s: %s, %d nodes, %zu parameter bytes, %zu activation "
	    "bytes at batch %d", c->model, sl_graph_format(w->g) == SL_GRAPH_ONNX ?
	    "ONNX" : "safetensors MLP", sl_graph_nodes(w->g),
	    sl_graph_param_bytes(w->g), sl_graph_arena_bytes(w->g), c->batch);
	if (sl_label_parse_encoding(c->encoding, &w->fmt) != 0) {
		sl_error("--encoding: '%s' is not f32, f16 or topk:K", c->encoding);
		return 2;
	}
	w->fmt.classes = (uint32_t)sl_graph_classes(w->g);
	if (sl_label_fmt_check(&w->fmt) != 0) {
		sl_error("--encoding %s does not fit a model with %u classes",
		    c->encoding, w->fmt.classes);
		return 2;
	}
	w->rec_size = sl_label_size(&w->fmt);
	if ((w->x = malloc((size_t)c->batch * w->dim * sizeof *w->x)) == NULL ||
	    (w->scratch = malloc(2 * (size_t)w->fmt.classes * sizeof(float))) == NULL) {
		sl_error("out of memory");
		return 1;
	}
	if (c->curve_secret != NULL) {
		if ((rc = sl_curve_load_pair(c->curve_secret, &w->secret, &w->pub,
		    &why)) != 0) {
			sl_error("--curve-secret: %s", why.text);
			return 2;
		}
		if ((rc = sl_curve_load_key(c->curve_server, 0, &w->server,
		    &why)) != 0) {
			sl_error("--curve-server: %s", why.text);
			return 2;
		}
		w->curve = 1;
	}
	w->zctx = zmq_ctx_new();
	w->rng = (uint64_t)getpid() * 0x9e3779b97f4a7c15ULL | 1;
	return w->zctx ? 0 : 1;
}

/* --- messages ---------------------------------------------------------------- */

/* Returns 0 when the message went to a connection, EAGAIN when none is up. */
static int
send_msg(wstate *w, const sl_msg *m)
{
	int rc = sl_net_send(w->sock, m, &w->out);

	if (rc != 0 && rc != EAGAIN)
		sl_warn("send %s: %s", sl_proto_type_name(m->type),
		    zmq_strerror(rc));
	return rc;
}

/* The renewal rule (worker.h): may this message renew the task leases?
 * Yes when the compute thread is not inside a batch, or has finished a
 * graph node or a batch since the last renewal; then the readings are
 * taken for the next one. Otherwise the teacher is stalled: logged once it
 * has been for half a lease (a node of a second is no news). */
static int
may_renew(wstate *w, uint64_t now)
{
	const uint64_t progress = sl_graph_progress(w->g);
	int busy;

	pthread_mutex_lock(&w->c.mu);
	busy = w->c.state == COMPUTE_BUSY;
	pthread_mutex_unlock(&w->c.mu);
	if (!busy || progress != w->renew_progress ||
	    w->batches != w->renew_batches) {
		if (w->stall_logged)
			sl_info("the teacher is progressing again after %" PRIu64
			    " ms: heartbeats renew the leases", now -
			    w->stalled_since_ms);
		w->renew_progress = progress;
		w->renew_batches = w->batches;
		w->stalled_since_ms = 0;
		w->stall_logged = 0;
		return 1;
	}
	if (w->stalled_since_ms == 0)
		w->stalled_since_ms = now;
	if (!w->stall_logged && now - w->stalled_since_ms >= w->lease_ms / 2) {
		w->stall_logged = 1;
		sl_warn("the teacher has finished no graph node for %" PRIu64
		    " ms or more (%" PRIu64 " nodes run): heartbeats stop "
		    "renewing the leases until it does", now -
		    w->stalled_since_ms + (w->heartbeat_ms ? w->heartbeat_ms :
		    SL_NET_HEARTBEAT_MS), progress);
	}
	return 0;
}

/* Shards this worker answers for: results held and, unless the last
 * heartbeat found the teacher stalled (HELLO moves their leases to the new
 * session, renewing them), tasks queued. The last heartbeat's verdict, not
 * a new reading: a reconnect right after a renewal would see no node
 * finished in between and give up leases a working teacher needs. */
static uint32_t
held_shards(const wstate *w, uint64_t *out)
{
	const int tasks = w->stalled_since_ms == 0;
	uint32_t n = 0;

	for (int i = 0; i < MAX_HELD && n < SL_PROTO_MAX_HELD; i++)
		if (w->helds[i].used)
			out[n++] = w->helds[i].shard;
	for (int i = 0; i < MAX_TASKS && n < SL_PROTO_MAX_HELD && tasks; i++)
		if (w->tasks[i].used)
			out[n++] = w->tasks[i].shard;
	return n;
}

/* One HELLO per socket: it waits in the socket until the connection is up,
 * and one that gets no answer is followed, after the liveness period, by a
 * new socket and a new HELLO. Repeated on one socket, HELLOs would pile up
 * during a network cut and each start a session when it heals. */
static void
send_hello(wstate *w)
{
	sl_msg m;

	memset(&m, 0, sizeof m);
	m.type = SL_MSG_HELLO;
	m.u.hello.worker = sl_bytes_str(w->cfg->worker_name);
	m.u.hello.teacher = sl_bytes_str(w->cfg->name);
	m.u.hello.model_sha256 = sl_bytes_str(w->sha);
	m.u.hello.temperature = w->cfg->temperature;
	m.u.hello.fmt = w->fmt;
	m.u.hello.input_dim = (uint32_t)w->dim;
	if (w->ds != NULL) {
		m.u.hello.dataset_sha256.p = w->fp.sha256;
		m.u.hello.dataset_sha256.len = 32;
	}
	/* The host is little-endian (as the record format assumes). */
	m.u.hello.preproc.p = w->pre_wire;
	m.u.hello.preproc.len = w->pre_wire_len;
	m.u.hello.nheld = held_shards(w, m.u.hello.held);
	if (w->cfg->views > 0) {
		m.u.hello.views = (uint32_t)w->cfg->views;
		m.u.hello.view_recipe.p = w->want_wire;
		m.u.hello.view_recipe.len = sizeof w->want_wire;
		m.u.hello.view_seed = (uint64_t)w->cfg->view_seed;
	}
	send_msg(w, &m);
	w->welcomed = 0;
}

static void
send_heartbeat(wstate *w)
{
	sl_msg m;

	memset(&m, 0, sizeof m);
	m.type = SL_MSG_HEARTBEAT;
	w->last_hb_ms = sl_net_now_ms();
	/* Only tasks: these are the leases to renew. A stalled teacher's
	 * heartbeat lists none: the session lives, the leases run out. */
	const int renew = may_renew(w, w->last_hb_ms);

	for (int i = 0; i < MAX_TASKS && renew; i++)
		if (w->tasks[i].used && m.u.heartbeat.nheld < SL_PROTO_MAX_HELD)
			m.u.heartbeat.held[m.u.heartbeat.nheld++] = w->tasks[i].shard;
	send_msg(w, &m);
}

/* Ask for up to credit shards at once; 0 says we are stopping. */
static void
send_ready_credit(wstate *w, uint32_t credit)
{
	sl_msg m;

	memset(&m, 0, sizeof m);
	m.type = SL_MSG_READY;
	m.u.ready.credit = credit;
	send_msg(w, &m);
}

static void
send_ready(wstate *w)
{
	send_ready_credit(w, (uint32_t)w->cfg->credit);
}

static int
connect_broker(wstate *w)
{
	sl_errmsg why = { "" };

	sl_net_close(&w->sock);
	if (sl_net_socket(w->zctx, ZMQ_DEALER, SL_NET_DEFAULT_MAX_MSG * 2,
	    &w->sock, &why) != 0) {
		sl_error("%s", why.text);
		return 1;
	}
	/* No send ever waits (send timeout 0: EAGAIN at the high-water mark);
	 * what matters is kept and sent again on WELCOME. */
	const int zero = 0;
	if (zmq_setsockopt(w->sock, ZMQ_SNDTIMEO, &zero, sizeof zero) != 0) {
		sl_error("zmq_setsockopt: %s", zmq_strerror(zmq_errno()));
		return 1;
	}
	if (w->curve) {
		int rc = sl_curve_client_setup(w->sock, &w->secret, &w->pub,
		    &w->server);

		if (rc != 0) {
			sl_error("CURVE client options: %s", zmq_strerror(rc));
			return 1;
		}
	}
	if (zmq_connect(w->sock, w->cfg->connect) != 0) {
		sl_error("--connect %s: %s", w->cfg->connect,
		    zmq_strerror(zmq_errno()));
		return 2;
	}
	w->last_heard_ms = sl_net_now_ms();
	send_hello(w);
	return 0;
}

/* The views of WELCOME: V, recipe, seed and the rows' image, checked
 * against the rows the model takes; the buffers for a batch of views.
 * A change of views while a batch computes cannot happen (a teacher's
 * registration never changes), so the buffers only grow. Non-zero (logged)
 * when the views cannot be applied. */
static int
welcome_views(wstate *w, const sl_msg *m)
{
	const size_t elem = w->dtype == SL_DTYPE_U8 ? 1 : 4;
	const uint64_t plane = (uint64_t)m->u.welcome.view_h *
	    m->u.welcome.view_w;
	sl_errmsg why = { "" };
	size_t need;

	w->views = m->u.welcome.views;
	if (w->views == 0)
		return 0;
	if (sl_view_recipe_unpack(m->u.welcome.view_recipe.p,
	    m->u.welcome.view_recipe.len, &w->recipe, &why) != 0) {
		sl_error("the broker's view recipe: %s", why.text);
		return -1;
	}
	if (plane == 0 || w->dim % plane != 0 || m->u.welcome.view_h > INT_MAX ||
	    m->u.welcome.view_w > INT_MAX) {
		sl_error("views of %u x %u images do not divide rows of %zu "
		    "values", m->u.welcome.view_h, m->u.welcome.view_w, w->dim);
		return -1;
	}
	w->view_seed = m->u.welcome.view_seed;
	w->view_h = (int)m->u.welcome.view_h;
	w->view_w = (int)m->u.welcome.view_w;
	w->view_c = (int)(w->dim / plane);
	need = (size_t)w->cfg->batch * w->row_bytes;
	if (need > w->vrows_cap) {
		uint8_t *v = realloc(w->vrows, need);

		if (v == NULL) {
			sl_error("out of memory for a batch of views");
			return -1;
		}
		w->vrows = v;
		w->vrows_cap = need;
		free(w->vscratch);
		if ((w->vscratch = malloc((size_t)plane * elem)) == NULL) {
			sl_error("out of memory for a batch of views");
			return -1;
		}
	}
	{
		char rt[SL_VIEW_RECIPE_TEXT];

		sl_view_recipe_format(rt, sizeof rt, &w->recipe);
		sl_info("views: %u per row, recipe %s, seed %" PRIu64 ", rows of "
		    "%d x %d x %d", w->views, rt, w->view_seed, w->view_c,
		    w->view_h, w->view_w);
	}
	return 0;
}

static void
on_welcome(wstate *w, const sl_msg *m)
{
	const size_t elem = m->u.welcome.dtype == SL_DTYPE_U8 ? 1 : 4;

	w->teacher_index = m->u.welcome.teacher_index;
	w->heartbeat_ms = m->u.welcome.heartbeat_ms ? m->u.welcome.heartbeat_ms :
	    SL_NET_HEARTBEAT_MS;
	w->lease_ms = m->u.welcome.lease_timeout_ms;
	w->row_bytes = m->u.welcome.row_bytes;
	w->shard_rows = m->u.welcome.shard_rows;
	w->dtype = (enum sl_dtype)m->u.welcome.dtype;
	if (w->row_bytes != w->dim * elem) {
		sl_error("broker rows have %u bytes; the model takes %zu values",
		    w->row_bytes, w->dim);
		w->done = -1;
		return;
	}
	w->pre = w->pre_req;
	sl_preproc_fill(&w->pre, w->dtype);
	if (w->dim % w->pre.channels != 0) {
		sl_error("%u preprocessing channels do not divide rows of %zu "
		    "values", w->pre.channels, w->dim);
		w->done = -1;
		return;
	}
	if ((size_t)w->shard_rows * w->rec_size > w->blob_cap) {
		/* A batch in flight writes into the old blob: it is freed when
		 * that batch is collected, and the batch is discarded. */
		pthread_mutex_lock(&w->c.mu);
		if (w->c.state == COMPUTE_IDLE) {
			free(w->blob);
		} else {
			free(w->c.retired_blob);
			w->c.retired_blob = w->blob;
			w->c.discard = 1;
		}
		pthread_mutex_unlock(&w->c.mu);
		if (w->active != NULL)
			w->active->done_rows = 0; /* its records were in the old blob */
		w->blob_cap = (size_t)w->shard_rows * w->rec_size;
		w->blob = malloc(w->blob_cap);
		if (w->blob == NULL) {
			sl_error("out of memory for a shard of %u rows", w->shard_rows);
			w->done = -1;
			return;
		}
	}
	if (welcome_views(w, m) != 0) {
		w->done = -1;
		return;
	}
	w->welcomed = 1;
	w->ever_welcomed = 1;
	w->backoff_ms = 0;
	/* Results the broker has not acknowledged go out again. */
	int resent = 0;
	for (int i = 0; i < MAX_HELD; i++)
		if (w->helds[i].used) {
			sl_net_send_raw(w->sock, w->helds[i].msg.p,
			    w->helds[i].msg.len);
			resent++;
		}
	sl_info("ready connected=%s teacher=%s index=%u model=%.12s... "
	    "encoding=%s T=%g resent=%d", w->cfg->connect, w->cfg->name,
	    w->teacher_index, w->sha, w->cfg->encoding,
	    (double)w->cfg->temperature, resent);
	if (!*w->stop)
		send_ready(w);
}

static void
on_task(wstate *w, zmq_msg_t *frame, const sl_msg *m)
{
	task *t = NULL;

	for (int i = 0; i < MAX_TASKS && t == NULL; i++)
		if (!w->tasks[i].used)
			t = &w->tasks[i];
	for (int i = 0; i < MAX_TASKS; i++)
		if (w->tasks[i].used && w->tasks[i].shard == m->u.task.shard) {
			/* Leased to us again (ours had expired): the task here
			 * goes on, and its heartbeats renew the new lease. */
			sl_info("task for shard %" PRIu64 " is already here",
			    m->u.task.shard);
			return;
		}
	if (t == NULL || m->u.task.nrows > w->shard_rows) {
		sl_warn("task for shard %" PRIu64 " dropped (%s)", m->u.task.shard,
		    t == NULL ? "queue full" : "more rows than a shard");
		return;
	}
	if (m->u.task.data.len == 0 && w->ds == NULL) {
		sl_error("task for shard %" PRIu64 " came without rows and there "
		    "is no --dataset", m->u.task.shard);
		return;
	}
	if (m->u.task.data.len != 0 &&
	    m->u.task.data.len != (size_t)m->u.task.nrows * w->row_bytes) {
		sl_error("task for shard %" PRIu64 ": %zu bytes of rows, want %zu",
		    m->u.task.shard, m->u.task.data.len,
		    (size_t)m->u.task.nrows * w->row_bytes);
		return;
	}
	if (w->ds != NULL && m->u.task.first_row + m->u.task.nrows >
	    sl_dataset_rows(w->ds)) {
		sl_error("task for shard %" PRIu64 " is past the local dataset",
		    m->u.task.shard);
		return;
	}
	memset(t, 0, sizeof *t);
	t->used = 1;
	t->shard = m->u.task.shard;
	t->first_row = m->u.task.first_row;
	t->nrows = m->u.task.nrows;
	zmq_msg_init(&t->frame);
	if (m->u.task.data.len != 0) {
		const size_t off = (size_t)(m->u.task.data.p -
		    (const uint8_t *)zmq_msg_data(frame));

		zmq_msg_move(&t->frame, frame);
		t->data = (const uint8_t *)zmq_msg_data(&t->frame) + off;
	}
}

static void
on_ack(wstate *w, const sl_msg *m)
{
	for (int i = 0; i < MAX_HELD; i++) {
		held *h = &w->helds[i];

		if (!h->used || h->shard != m->u.ack.shard)
			continue;
		if (m->u.ack.status == SL_ACK_RETRY) {
			/* The broker could not store it (a full disk): keep
			 * it, resend later; never compute it again. */
			const uint32_t d = sl_net_backoff_ms(&w->store_backoff_ms,
			    &w->rng);

			h->resend_at_ms = sl_net_now_ms() + d;
			sl_warn("broker could not store shard %" PRIu64 " (%.*s): "
			    "kept, resent in %u ms", h->shard,
			    (int)m->u.ack.reason.len,
			    (const char *)m->u.ack.reason.p, d);
			return;
		}
		h->used = 0;
		h->resend_at_ms = 0;
		if (m->u.ack.status == SL_ACK_STORED)
			w->store_backoff_ms = 0;
		if (m->u.ack.status == SL_ACK_REJECTED)
			sl_error("broker rejected shard %" PRIu64 ": %.*s",
			    h->shard, (int)m->u.ack.reason.len,
			    (const char *)m->u.ack.reason.p);
		else if (m->u.ack.status == SL_ACK_STORED)
			sl_debug("shard %" PRIu64 " stored", h->shard);
		else if (m->u.ack.status == SL_ACK_DUPLICATE)
			sl_info("shard %" PRIu64 " was already stored by another "
			    "worker%s%.*s", h->shard, m->u.ack.reason.len ? ": " : "",
			    (int)m->u.ack.reason.len,
			    (const char *)m->u.ack.reason.p);
		return;
	}
}

static void
receive(wstate *w)
{
	zmq_msg_t frame;
	sl_errmsg why = { "" };
	sl_msg m;

	for (;;) {
		zmq_msg_init(&frame);
		if (zmq_msg_recv(&frame, w->sock, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&frame);
			return;
		}
		w->last_heard_ms = sl_net_now_ms();
		if (sl_proto_decode(zmq_msg_data(&frame), zmq_msg_size(&frame),
		    &m, &why) != 0) {
			sl_warn("malformed message from the broker: %s", why.text);
			zmq_msg_close(&frame);
			continue;
		}
		switch (m.type) {
		case SL_MSG_WELCOME:
			on_welcome(w, &m);
			break;
		case SL_MSG_REFUSE:
			sl_error("broker refused this worker: %.*s",
			    (int)m.u.refuse.reason.len,
			    (const char *)m.u.refuse.reason.p);
			w->done = -1;
			break;
		case SL_MSG_TASK:
			on_task(w, &frame, &m);
			break;
		case SL_MSG_ACK:
			on_ack(w, &m);
			break;
		case SL_MSG_RESET:
			sl_info("broker does not know this session: saying HELLO");
			send_hello(w);
			break;
		case SL_MSG_DONE:
			w->done = 1;
			break;
		case SL_MSG_BUSY: {
			/* Not a refusal of this worker: the broker is full
			 * for now (a flood of sessions, say). Back off. */
			const uint32_t d = sl_net_backoff_ms(&w->backoff_ms, &w->rng);

			w->ever_busy = 1;
			sl_warn("broker busy: %.*s; saying HELLO again in %u ms",
			    (int)m.u.reset.reason.len,
			    (const char *)m.u.reset.reason.p, d);
			w->hello_at_ms = sl_net_now_ms() + d;
			break;
		}
		case SL_MSG_HEARTBEAT:
			break;
		case SL_MSG_STATUS_REPLY: /* asked for the progress line */
			worker_progress_status(&w->progress,
			    m.u.status.json.p, m.u.status.json.len,
			    w->teacher_index, w->shards_done);
			break;
		default:
			sl_warn("unexpected %s from the broker",
			    sl_proto_type_name(m.type));
		}
		zmq_msg_close(&frame);
	}
}

/* --- computing ---------------------------------------------------------------- */

/* The task being computed, or the next one: the oldest lease (lowest
 * shard) first. Sticky: blob holds the active task's records until its
 * result is encoded, so a task that arrives meanwhile, even for a lower
 * shard, waits its turn. */
static task *
current_task(wstate *w)
{
	task *best = NULL;

	if (w->active != NULL)
		return w->active;
	for (int i = 0; i < MAX_TASKS; i++)
		if (w->tasks[i].used && (best == NULL || w->tasks[i].shard < best->shard))
			best = &w->tasks[i];
	w->active = best;
	return best;
}

static held *
free_held(wstate *w)
{
	for (int i = 0; i < MAX_HELD; i++)
		if (!w->helds[i].used)
			return &w->helds[i];
	return NULL;
}

/* Compute thread: the view j->view of each raw row of the batch into
 * w->vrows (the rows shipped, or the local dataset's). Does not allocate. */
static void
apply_views(wstate *w, const batch_job *j)
{
	sl_view_params p;

	for (uint32_t i = 0; i < j->b; i++) {
		const uint64_t sample = j->first_row + i;
		const void *src = j->rows != NULL ?
		    (const void *)(j->rows + (size_t)i * w->row_bytes) :
		    sl_dataset_row(w->ds, (size_t)sample);

		sl_view_draw(&w->recipe, w->view_seed, sample, j->view,
		    w->view_h, w->view_w, &p);
		sl_view_apply(&p, j->dtype, src, w->vrows + (size_t)i * w->row_bytes,
		    w->vscratch, w->view_c, w->view_h, w->view_w);
	}
}

/* Compute thread: rows -> x -> logits -> records, for one batch. Reads only
 * the job, the graph and buffers no one else touches while it is BUSY. */
static void
run_batch(wstate *w, batch_job *j)
{
	const size_t D = w->dim, C = w->fmt.classes;
	const float *z;
	sl_errmsg why = { "" };
	int rc;

	if (j->view != UINT32_MAX) {
		apply_views(w, j);
		sl_rows_f32(w->vrows, j->dtype, j->b, D, &j->pre, w->x);
	} else if (j->rows != NULL) {
		sl_rows_f32(j->rows, j->dtype, j->b, D, &j->pre, w->x);
	} else {
		sl_dataset_rows_f32(w->ds, NULL, j->first_row, j->b, &j->pre, w->x);
	}
	if ((rc = sl_graph_forward(w->g, w->x, (int)j->b, &z, &why)) != 0) {
		snprintf(j->why, sizeof j->why, "the teacher failed: %s",
		    why.text[0] ? why.text : sl_strerror(rc));
		j->rc = 1;
		return;
	}
	for (uint32_t i = 0; i < j->b; i++)
		if (sl_label_encode(&w->fmt, z + (size_t)i * C,
		    w->cfg->temperature, w->scratch,
		    j->out + (size_t)i * w->rec_size) != 0) {
			snprintf(j->why, sizeof j->why, "row %" PRIu64 ": the "
			    "teacher's logits are not finite or do not fit the "
			    "encoding", j->first_row + i);
			j->rc = 1;
			return;
		}
	j->rc = 0;
}

static void *
compute_main(void *arg)
{
	wstate *w = arg;
	compute *c = &w->c;
	const char one = 1;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (c->state != COMPUTE_BUSY && !c->quit)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->quit)
			break;
		pthread_mutex_unlock(&c->mu);
		run_batch(w, &c->job);
		pthread_mutex_lock(&c->mu);
		c->state = COMPUTE_DONE;
		pthread_cond_broadcast(&c->cv);
		/* A full pipe already holds a wake-up: nothing is lost. */
		if (write(c->wake[1], &one, 1) < 0 && errno != EAGAIN)
			sl_warn("compute thread: write: %s", strerror(errno));
	}
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

static int
compute_start(wstate *w)
{
	compute *c = &w->c;
	sigset_t all, old;
	int rc;

	if (pipe(c->wake) != 0) {
		sl_error("pipe: %s", strerror(errno));
		c->wake[0] = c->wake[1] = -1;
		return 1;
	}
	for (int i = 0; i < 2; i++)
		if (fcntl(c->wake[i], F_SETFL, O_NONBLOCK) != 0 ||
		    fcntl(c->wake[i], F_SETFD, FD_CLOEXEC) != 0) {
			sl_error("fcntl: %s", strerror(errno));
			return 1;
		}
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	/* SIGINT and SIGTERM go to the main thread, whose loop reads *stop. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&c->thread, NULL, compute_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		sl_error("pthread_create: %s", strerror(rc));
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		return 1;
	}
	c->started = 1;
	return 0;
}

static enum compute_state
compute_state(wstate *w)
{
	enum compute_state s;

	pthread_mutex_lock(&w->c.mu);
	s = w->c.state;
	pthread_mutex_unlock(&w->c.mu);
	return s;
}

/* Stop the compute thread. A batch in progress is waited for at most
 * wait_ms; returns 0 when the thread is joined, 1 when it is still inside
 * a batch (then what it uses must not be freed: the process is exiting). */
static int
compute_stop(wstate *w, uint32_t wait_ms)
{
	compute *c = &w->c;
	struct timespec until;
	int busy;

	if (!c->started)
		return 0;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += wait_ms / 1000;
	until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->mu);
	c->quit = 1;
	pthread_cond_broadcast(&c->cv);
	if (c->state == COMPUTE_BUSY)
		sl_info("waiting up to %u ms for the batch in progress", wait_ms);
	while (c->state == COMPUTE_BUSY &&
	    pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0)
		;
	busy = c->state == COMPUTE_BUSY;
	pthread_mutex_unlock(&c->mu);
	if (busy) {
		sl_warn("the batch in progress did not finish; exiting without it");
		return 1;
	}
	pthread_join(c->thread, NULL);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	c->started = 0;
	return 0;
}

/* Hand the next batch of t to the idle compute thread. */
static void
hand_batch(wstate *w, task *t)
{
	compute *c = &w->c;
	batch_job *j = &c->job;
	const uint32_t left = t->nrows - t->done_rows;

	memset(j, 0, offsetof(batch_job, why));
	j->why[0] = '\0';
	j->b = left < (uint32_t)w->cfg->batch ? left : (uint32_t)w->cfg->batch;
	j->first_row = t->first_row + t->done_rows;
	j->rows = t->data != NULL ?
	    t->data + (size_t)t->done_rows * w->row_bytes : NULL;
	j->dtype = w->dtype;
	j->pre = w->pre;
	j->view = w->views ? (uint32_t)(t->shard % w->views) : UINT32_MAX;
	j->out = w->blob + (size_t)t->done_rows * w->rec_size;
	c->discard = 0;
	pthread_mutex_lock(&c->mu);
	c->state = COMPUTE_BUSY;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* Collect a finished batch: count its rows into the active task and, when
 * the task is complete, encode its result, hold it and send it. Returns 0,
 * or 1 on a fatal error (the model failed or produced non-finite logits). */
static int
collect_batch(wstate *w)
{
	compute *c = &w->c;
	task *t = w->active;
	held *h;
	sl_msg m;

	if (compute_state(w) != COMPUTE_DONE)
		return 0;
	pthread_mutex_lock(&c->mu);
	c->state = COMPUTE_IDLE;
	pthread_mutex_unlock(&c->mu);
	w->batches++;
	if (w->stall_logged) {
		/* The renewal readings are left to the next heartbeat, which
		 * sees this batch and renews. */
		sl_info("the teacher is progressing again after %" PRIu64 " ms: "
		    "heartbeats renew the leases", sl_net_now_ms() -
		    w->stalled_since_ms);
		w->stall_logged = 0;
	}
	free(c->retired_blob);
	c->retired_blob = NULL;
	if (c->job.rc != 0) {
		sl_error("shard %" PRIu64 ": %s; stopping", t ? t->shard : 0,
		    c->job.why);
		return 1;
	}
	if (c->discard || t == NULL)
		return 0; /* its records went to a blob since replaced */
	t->done_rows += c->job.b;
	if (t->done_rows < t->nrows)
		return 0;
	/* The rows just labeled must still be the fingerprinted ones: checked
	 * after they were read, so a change before or while they were read is
	 * caught, and no result of changed bytes leaves under the job's
	 * fingerprint. */
	if (t->data == NULL && w->ds != NULL) {
		sl_errmsg why = { "" };

		if (sl_dataset_verify_rows(w->ds, (size_t)t->first_row, t->nrows,
		    &why) != 0) {
			sl_error("shard %" PRIu64 ": %s: %s; stopping", t->shard,
			    w->cfg->dataset, why.text);
			return 1;
		}
	}

	h = free_held(w);
	memset(&m, 0, sizeof m);
	m.type = SL_MSG_RESULT;
	m.u.result.shard = t->shard;
	m.u.result.teacher_index = w->teacher_index;
	m.u.result.nrows = t->nrows;
	m.u.result.blob.p = w->blob;
	m.u.result.blob.len = (size_t)t->nrows * w->rec_size;
	/* free_held cannot fail: a batch is only handed with a free slot, and
	 * only ACKs free slots (this thread). */
	if (sl_proto_encode(&m, &h->msg) != 0) {
		sl_error("out of memory encoding a result");
		return 1;
	}
	h->used = 1;
	h->shard = t->shard;
	h->resend_at_ms = 0;
	/* Reconnecting: it goes out with the others on WELCOME. */
	if (w->welcomed)
		sl_net_send_raw(w->sock, h->msg.p, h->msg.len);
	w->shards_done++;
	w->samples_done += t->nrows;
	sl_debug("shard %" PRIu64 " sent (%u rows)", t->shard, t->nrows);
	zmq_msg_close(&t->frame);
	t->used = 0;
	w->active = NULL;
	return 0;
}

static void
drain_wake(wstate *w)
{
	char buf[64];

	while (read(w->c.wake[0], buf, sizeof buf) > 0)
		;
}

static int
nheld(const wstate *w)
{
	int n = 0;

	for (int i = 0; i < MAX_HELD; i++)
		n += w->helds[i].used;
	return n;
}

static int
ntasks(const wstate *w)
{
	int n = 0;

	for (int i = 0; i < MAX_TASKS; i++)
		n += w->tasks[i].used;
	return n;
}

int
worker_run(const worker_cfg *cfg, volatile sig_atomic_t *stop)
{
	wstate w;
	int status = 1, rc, orphaned = 0;
	uint64_t stop_at = 0, reconnect_at = 0;
	const double t0 = (double)sl_net_now_ms();

	memset(&w, 0, sizeof w);
	worker_progress_init(&w.progress);
	w.cfg = cfg;
	w.stop = stop;
	w.c.wake[0] = w.c.wake[1] = -1;
	if ((rc = load(&w)) != 0) {
		status = rc;
		goto out;
	}
	if (compute_start(&w) != 0)
		goto out;
	if (cfg->connect_timeout_s > 0)
		sl_info("connecting to %s as %s (teacher %s); giving up if no "
		    "broker answers within %d s (--connect-timeout)", cfg->connect,
		    cfg->worker_name, cfg->name, cfg->connect_timeout_s);
	else
		sl_info("connecting to %s as %s (teacher %s); waiting for a "
		    "broker without limit (--connect-timeout 0)", cfg->connect,
		    cfg->worker_name, cfg->name);
	const uint64_t connect_ms = sl_net_now_ms();
	if ((rc = connect_broker(&w)) != 0) {
		status = rc;
		goto out;
	}
	for (;;) {
		const uint32_t hb = w.heartbeat_ms ? w.heartbeat_ms : SL_NET_HEARTBEAT_MS;
		/* Tasks keep being computed while reconnecting: the results
		 * are held until acknowledged, and leases outlive a short
		 * network cut (only a welcome ever brings tasks). */
		zmq_pollitem_t items[2] = {
			{ w.sock, 0, ZMQ_POLLIN, 0 },
			{ NULL, w.c.wake[0], ZMQ_POLLIN, 0 },
		};
		uint64_t now = sl_net_now_ms();
		long wait_ms = (long)hb / 2;

		/* Wake for the next heartbeat on time; a finished batch or a
		 * message wakes us earlier. */
		if (w.welcomed && w.last_hb_ms + hb > now &&
		    (long)(w.last_hb_ms + hb - now) < wait_ms)
			wait_ms = (long)(w.last_hb_ms + hb - now);
		if (zmq_poll(items, 2, wait_ms) < 0 && zmq_errno() != EINTR) {
			sl_error("zmq_poll: %s", zmq_strerror(zmq_errno()));
			goto out;
		}
		drain_wake(&w);
		receive(&w);
		if (w.done < 0)
			goto out;
		if (collect_batch(&w) != 0)
			goto out;
		now = sl_net_now_ms();

		if (*stop && stop_at == 0) {
			stop_at = now;
			sl_info("stopping: finishing %d queued shard(s), waiting "
			    "for %d acknowledgement(s); %" PRIu64 " shards done",
			    ntasks(&w), nheld(&w), w.shards_done);
			/* READY with no credit: the broker leases us nothing more
			 * (a broker that has not welcomed us leases nothing). */
			if (w.welcomed)
				send_ready_credit(&w, 0);
		}
		if (stop_at != 0 && ((ntasks(&w) == 0 && nheld(&w) == 0) ||
		    now - stop_at > 10000)) {
			status = ntasks(&w) + nheld(&w) == 0 ? 0 : 1;
			break;
		}
		if (w.done > 0 && ntasks(&w) == 0 && nheld(&w) == 0) {
			sl_info("every shard is done; %" PRIu64 " shards, %" PRIu64
			    " samples from this worker", w.shards_done,
			    w.samples_done);
			status = 0;
			break;
		}
		/* A broker silent for the liveness period is presumed gone:
		 * new socket, HELLO, resend what is held (Paranoid Pirate).
		 * The back-off wait does not block computing. */
		if (!w.ever_welcomed && !w.ever_busy && cfg->connect_timeout_s > 0 &&
		    now - connect_ms >= (uint64_t)cfg->connect_timeout_s * 1000u) {
			sl_error("no broker answered at %s within %d s "
			    "(--connect-timeout; 0 waits forever): is it running, "
			    "and is this its endpoint?", cfg->connect,
			    cfg->connect_timeout_s);
			goto out;
		}
		if (now - w.last_heard_ms <= (uint64_t)hb * SL_NET_LIVENESS) {
			reconnect_at = 0;
		} else if (reconnect_at == 0) {
			uint32_t d = sl_net_backoff_ms(&w.backoff_ms, &w.rng);

			if (w.ever_welcomed)
				sl_warn("broker silent for %" PRIu64 " ms; "
				    "reconnecting in %u ms", now - w.last_heard_ms, d);
			else
				sl_info("no broker answers at %s yet (%" PRIu64
				    " s); trying again in %u ms", cfg->connect,
				    (now - connect_ms) / 1000, d);
			reconnect_at = now + d;
		} else if (now >= reconnect_at) {
			reconnect_at = 0;
			if ((rc = connect_broker(&w)) != 0) {
				status = rc;
				goto out;
			}
			continue;
		}
		for (int i = 0; w.welcomed && i < MAX_HELD; i++) {
			held *h = &w.helds[i];

			if (h->used && h->resend_at_ms != 0 && now >= h->resend_at_ms) {
				h->resend_at_ms = 0;
				sl_net_send_raw(w.sock, h->msg.p, h->msg.len);
			}
		}
		if (w.hello_at_ms != 0 && now >= w.hello_at_ms && !w.welcomed) {
			w.hello_at_ms = 0;
			send_hello(&w);
		}
		if (w.welcomed && worker_progress_due(&w.progress, now)) {
			sl_msg sm;

			memset(&sm, 0, sizeof sm);
			sm.type = SL_MSG_STATUS;
			send_msg(&w, &sm);
		}
		if (now - w.last_hb_ms >= hb && w.welcomed) {
			send_heartbeat(&w);
			/* Idle: say so. A broker that leased us a shard whose
			 * TASK was lost, let it expire and took us for stalled
			 * gives us work again. */
			if (ntasks(&w) == 0 && !*stop)
				send_ready(&w);
		}
		task *t = current_task(&w);

		if (t != NULL && nheld(&w) < cfg->max_held &&
		    compute_state(&w) == COMPUTE_IDLE)
			hand_batch(&w, t);
	}
	worker_progress_end(&w.progress);
	sl_info("exiting: %" PRIu64 " shards, %" PRIu64 " samples, %.0f "
	    "samples/s", w.shards_done, w.samples_done,
	    (double)w.samples_done * 1000.0 / ((double)sl_net_now_ms() - t0 + 1));
out:
	/* A compute thread stuck inside a batch still reads the graph, the
	 * buffers and a task's rows: those are left to the process's exit. */
	orphaned = compute_stop(&w, 10000);
	for (int i = 0; i < MAX_TASKS && !orphaned; i++)
		if (w.tasks[i].used)
			zmq_msg_close(&w.tasks[i].frame);
	for (int i = 0; i < MAX_HELD; i++)
		sl_proto_buf_fini(&w.helds[i].msg);
	sl_net_close(&w.sock);
	if (w.zctx != NULL)
		zmq_ctx_term(w.zctx);
	if (!orphaned) {
		sl_graph_free(&w.g);
		sl_dataset_close(&w.ds);
		free(w.x);
		free(w.scratch);
		free(w.vrows);
		free(w.vscratch);
		free(w.blob);
		free(w.c.retired_blob);
	}
	for (int i = 0; i < 2; i++)
		if (w.c.wake[i] >= 0 && !orphaned)
			close(w.c.wake[i]);
	sl_proto_buf_fini(&w.out);
	memset(&w.secret, 0, sizeof w.secret);
	if (orphaned) {
		/* The compute thread is still inside the graph (and OpenBLAS):
		 * exit() would run the libraries' destructors under it, and the
		 * leak checker would count what it still uses. */
		sl_warn("exiting with the batch thread still running");
		_exit(status);
	}
	return status;
}

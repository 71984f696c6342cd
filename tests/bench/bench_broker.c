/* bench_broker - the broker's ceiling: figures, not thresholds.
 *
 *   bench_broker --make-dataset OUT.npy ROWS
 *       write a .npy of ROWS rows of one uint8 value each (the load below
 *       needs rows, not pixels: the teacher is skipped)
 *   bench_broker EP DATASET [--connections 4] [--credit 16] [--rounds 3]
 *       drive a running softlabel-broker (started on DATASET, durable
 *       commits) at EP as fast as it acknowledges
 *
 * The load speaks the real protocol over real DEALER sockets: each of
 * --connections says HELLO (a fake model SHA-256, 10-class f32 records, the
 * dataset's fingerprint so TASKs carry row ranges only), READY --credit,
 * and answers every TASK at once with a RESULT whose blob was encoded once
 * (sl_label_encode) and is reused for every shard. A round ends when every
 * shard is acknowledged as stored. Round r labels the whole dataset for a
 * new teacher "bench-r<r>", so one broker process serves every round.
 *
 * Between rounds, LMDB's raw batched put rate for the same records runs in
 * a fresh directory under $TMPDIR (mdb_put per record, 1024 records per
 * shard, RAW_SHARDS_PER_TXN shards per durable transaction, as
 * bench_store's "raw mdb_put"), so both see the same disk and machine. The
 * median round of each is printed, and their ratio.
 *
 * Exit 0, or 1 when the broker refuses, rejects a result or a round does
 * not finish within ROUND_TIMEOUT_S.
 */
#include <lmdb.h>
#include <zmq.h>
#include <cjson/cJSON.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sl_data.h"
#include "sl_label.h"
#include "sl_net.h"
#include "sl_progress.h"
#include "sl_proto.h"

#define MAX_CONNS 64
#define MAX_ROUNDS 15
#define CLASSES 10
#define ROUND_TIMEOUT_S 120
#define HEARTBEAT_EVERY_MS 250
#define RAW_SHARDS_PER_TXN 64
#define RAW_TXNS 16
#define FAKE_SHA "0123456789abcdef0123456789abcdef" \
	"0123456789abcdef0123456789abcdef"

typedef struct conn {
	void *sock;
	sl_proto_buf out;
	int done;
	uint64_t last_hb_ms;
} conn;

typedef struct load {
	void *zctx;
	const char *ep;
	sl_fingerprint fp;
	uint32_t dim;
	int nconns, credit;
	conn c[MAX_CONNS];
	uint8_t *blob;         /* (shard_rows, rec) records, encoded once */
	size_t rec;
	uint32_t shard_rows, teacher_index;
	uint64_t rows, nshards;
	float pre[3];          /* NaN: the dataset's default preprocessing */
} load;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2),
    noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "bench_broker: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static int
cmp_double(const void *a, const void *b)
{
	const double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof *v, cmp_double);
	return v[n / 2];
}

static long
parse_long(const char *s, long lo, long hi, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		die("%s: '%s' is not a number in range", what, s);
	return v;
}

static int
make_dataset(const char *path, const char *rows_s)
{
	const uint64_t rows = (uint64_t)parse_long(rows_s, 1, 1L << 30, "ROWS");
	uint8_t *x = malloc(rows);
	uint64_t shape[2] = { rows, 1 };
	sl_errmsg why = { "" };

	if (x == NULL)
		die("out of memory");
	for (uint64_t i = 0; i < rows; i++)
		x[i] = (uint8_t)(i * 131u);
	if (sl_npy_write(path, "|u1", shape, 2, x, &why) != 0)
		die("%s: %s", path, why.text);
	free(x);
	return 0;
}

/* Receive one frame from s; 1 with m decoded (borrowing f), 0 when none is
 * waiting. */
static int
recv_msg(void *s, zmq_msg_t *f, sl_msg *m)
{
	sl_errmsg why = { "" };

	if (zmq_msg_recv(f, s, ZMQ_DONTWAIT) < 0) {
		if (zmq_errno() == EAGAIN)
			return 0;
		die("recv: %s", zmq_strerror(zmq_errno()));
	}
	if (sl_proto_decode(zmq_msg_data(f), zmq_msg_size(f), m, &why) != 0)
		die("undecodable message from the broker: %s", why.text);
	return 1;
}

/* Wait up to timeout_ms for one message on s. */
static int
wait_msg(void *s, zmq_msg_t *f, sl_msg *m, long timeout_ms)
{
	zmq_pollitem_t it = { s, 0, ZMQ_POLLIN, 0 };

	if (zmq_poll(&it, 1, timeout_ms) < 0)
		die("zmq_poll: %s", zmq_strerror(zmq_errno()));
	return (it.revents & ZMQ_POLLIN) && recv_msg(s, f, m);
}

static void
send_msg(conn *c, const sl_msg *m)
{
	int rc = sl_net_send(c->sock, m, &c->out);

	if (rc != 0)
		die("send %s: %s", sl_proto_type_name(m->type), zmq_strerror(rc));
}

/* Open the connections and say HELLO for teacher; returns after every
 * WELCOME (the first one sizes the blob). */
static void
connect_all(load *L, const char *teacher)
{
	char wname[32];
	sl_errmsg why = { "" };

	for (int i = 0; i < L->nconns; i++) {
		conn *c = &L->c[i];
		zmq_msg_t f;
		sl_msg m;

		c->done = 0;
		c->last_hb_ms = sl_net_now_ms();
		if (sl_net_socket(L->zctx, ZMQ_DEALER, SL_NET_DEFAULT_MAX_MSG * 2,
		    &c->sock, &why) != 0)
			die("%s", why.text);
		if (zmq_connect(c->sock, L->ep) != 0)
			die("connect %s: %s", L->ep, zmq_strerror(zmq_errno()));
		snprintf(wname, sizeof wname, "bench-c%d", i);
		memset(&m, 0, sizeof m);
		m.type = SL_MSG_HELLO;
		m.u.hello.worker = sl_bytes_str(wname);
		m.u.hello.teacher = sl_bytes_str(teacher);
		m.u.hello.model_sha256 = sl_bytes_str(FAKE_SHA);
		m.u.hello.temperature = 1.0f;
		m.u.hello.fmt.encoding = SL_ENC_F32;
		m.u.hello.fmt.classes = CLASSES;
		m.u.hello.input_dim = L->dim;
		m.u.hello.dataset_sha256.p = L->fp.sha256;
		m.u.hello.dataset_sha256.len = 32;
		m.u.hello.preproc.p = (const uint8_t *)L->pre;
		m.u.hello.preproc.len = sizeof L->pre;
		send_msg(c, &m);

		zmq_msg_init(&f);
		if (!wait_msg(c->sock, &f, &m, 10000))
			die("no answer to HELLO from %s", L->ep);
		if (m.type != SL_MSG_WELCOME)
			die("HELLO answered with %s: %.*s", sl_proto_type_name(m.type),
			    m.type == SL_MSG_REFUSE ? (int)m.u.refuse.reason.len : 0,
			    m.type == SL_MSG_REFUSE ?
			    (const char *)m.u.refuse.reason.p : "");
		L->teacher_index = m.u.welcome.teacher_index;
		L->rows = m.u.welcome.rows;
		L->shard_rows = m.u.welcome.shard_rows;
		zmq_msg_close(&f);
	}
	L->nshards = (L->rows + L->shard_rows - 1) / L->shard_rows;
}

static void
close_all(load *L)
{
	for (int i = 0; i < L->nconns; i++) {
		sl_net_close(&L->c[i].sock);
		sl_proto_buf_fini(&L->c[i].out);
	}
}

/* Encode shard_rows records once; every RESULT carries a prefix of them. */
static void
make_blob(load *L)
{
	const sl_label_fmt fmt = { SL_ENC_F32, CLASSES, 0 };
	float z[CLASSES], scratch[2 * CLASSES];

	L->rec = sl_label_size(&fmt);
	free(L->blob);
	L->blob = malloc((size_t)L->shard_rows * L->rec);
	if (L->blob == NULL)
		die("out of memory");
	for (uint32_t i = 0; i < L->shard_rows; i++) {
		for (int k = 0; k < CLASSES; k++)
			z[k] = (float)((i * 7u + (uint32_t)k * 13u) % 17u) * 0.25f;
		if (sl_label_encode(&fmt, z, 1.0f, scratch,
		    L->blob + (size_t)i * L->rec) != 0)
			die("sl_label_encode failed");
	}
}

/* The broker's commit count and committed results, from STATUS. */
static void
broker_commits(load *L, double *commits, double *results)
{
	void *s = NULL;
	sl_proto_buf out = { 0 };
	sl_errmsg why = { "" };
	zmq_msg_t f;
	sl_msg m;
	cJSON *j;

	if (sl_net_socket(L->zctx, ZMQ_DEALER, SL_PROTO_MAX_JSON * 2, &s, &why) != 0 ||
	    zmq_connect(s, L->ep) != 0)
		die("status socket: %s", why.text);
	memset(&m, 0, sizeof m);
	m.type = SL_MSG_STATUS;
	if (sl_net_send(s, &m, &out) != 0)
		die("send STATUS failed");
	zmq_msg_init(&f);
	if (!wait_msg(s, &f, &m, 10000) || m.type != SL_MSG_STATUS_REPLY)
		die("no STATUS_REPLY");
	j = cJSON_ParseWithLength((const char *)m.u.status.json.p,
	    m.u.status.json.len);
	if (j == NULL)
		die("STATUS_REPLY is not JSON");
	*commits = cJSON_GetNumberValue(cJSON_GetObjectItem(j, "commits"));
	*results = cJSON_GetNumberValue(cJSON_GetObjectItem(j,
	    "committed_results"));
	cJSON_Delete(j);
	zmq_msg_close(&f);
	sl_net_close(&s);
	sl_proto_buf_fini(&out);
}

/* One round: label every shard for a new teacher; committed samples/s. */
static double
run_round(load *L, int r)
{
	char teacher[32];
	zmq_pollitem_t items[MAX_CONNS];
	uint64_t acked = 0, samples = 0, dups = 0;
	double t0, t1 = 0;
	sl_msg m;

	snprintf(teacher, sizeof teacher, "bench-r%d", r);
	connect_all(L, teacher);
	if (L->blob == NULL)
		make_blob(L);

	t0 = sl_now_s();
	for (int i = 0; i < L->nconns; i++) {
		memset(&m, 0, sizeof m);
		m.type = SL_MSG_READY;
		m.u.ready.credit = (uint32_t)L->credit;
		send_msg(&L->c[i], &m);
		items[i] = (zmq_pollitem_t){ L->c[i].sock, 0, ZMQ_POLLIN, 0 };
	}
	while (acked < L->nshards) {
		const uint64_t now = sl_net_now_ms();

		if (sl_now_s() - t0 > ROUND_TIMEOUT_S)
			die("round %d: not finished after %d s", r,
			    ROUND_TIMEOUT_S);
		if (zmq_poll(items, L->nconns, 100) < 0 && zmq_errno() != EINTR)
			die("zmq_poll: %s", zmq_strerror(zmq_errno()));
		for (int i = 0; i < L->nconns; i++) {
			conn *c = &L->c[i];
			zmq_msg_t f;

			/* Heartbeats keep a connection that waits for work
			 * "heard from lately", so it still gets leases. */
			if (now - c->last_hb_ms >= HEARTBEAT_EVERY_MS) {
				memset(&m, 0, sizeof m);
				m.type = SL_MSG_HEARTBEAT;
				send_msg(c, &m);
				c->last_hb_ms = now;
			}
			zmq_msg_init(&f);
			while (recv_msg(c->sock, &f, &m)) {
				if (m.type == SL_MSG_TASK) {
					const uint64_t shard = m.u.task.shard;
					const uint32_t n = m.u.task.nrows;

					memset(&m, 0, sizeof m);
					m.type = SL_MSG_RESULT;
					m.u.result.shard = shard;
					m.u.result.teacher_index = L->teacher_index;
					m.u.result.nrows = n;
					m.u.result.blob.p = L->blob;
					m.u.result.blob.len = (size_t)n * L->rec;
					send_msg(c, &m);
				} else if (m.type == SL_MSG_ACK) {
					if (m.u.ack.status == SL_ACK_REJECTED)
						die("result rejected: %.*s",
						    (int)m.u.ack.reason.len,
						    (const char *)m.u.ack.reason.p);
					if (m.u.ack.status == SL_ACK_DUPLICATE) {
						dups++;
					} else {
						const uint64_t s = m.u.ack.shard;

						acked++;
						samples += s + 1 < L->nshards ?
						    L->shard_rows :
						    L->rows - s * L->shard_rows;
						t1 = sl_now_s();
					}
				} else if (m.type == SL_MSG_DONE) {
					c->done = 1;
				} else if (m.type != SL_MSG_HEARTBEAT) {
					die("unexpected %s from the broker",
					    sl_proto_type_name(m.type));
				}
				zmq_msg_close(&f);
				zmq_msg_init(&f);
			}
			zmq_msg_close(&f);
		}
	}
	if (dups != 0)
		fprintf(stderr, "bench_broker: round %d: %" PRIu64
		    " duplicate acks\n", r, dups);
	close_all(L);
	return (double)samples / (t1 - t0);
}

static void
rm_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char sub[512];

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
		unlink(sub);
	}
	closedir(d);
	rmdir(path);
}

/* Records per second of raw mdb_put, the broker's records and keys
 * (u32 BE teacher, u64 BE sample), durable transactions. */
static double
raw_put(const load *L)
{
	const char *tmp = getenv("TMPDIR");
	char dir[256];
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t kb[12] = { 0 };
	MDB_val k = { sizeof kb, kb }, v;
	double t0, t1;
	int rc;

	snprintf(dir, sizeof dir, "%s/bench_broker.XXXXXX",
	    tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL)
		die("mkdtemp %s: %s", dir, strerror(errno));
	if ((rc = mdb_env_create(&env)) != 0 ||
	    (rc = mdb_env_set_maxdbs(env, 4)) != 0 ||
	    (rc = mdb_env_set_mapsize(env, (size_t)1 << 40)) != 0 ||
	    (rc = mdb_env_open(env, dir, MDB_NOTLS, 0644)) != 0 ||
	    (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
	    (rc = mdb_dbi_open(txn, "labels", MDB_CREATE, &dbi)) != 0 ||
	    (rc = mdb_txn_commit(txn)) != 0)
		die("raw open: %s", mdb_strerror(rc));
	t0 = sl_now_s();
	for (uint64_t x = 0; x < RAW_TXNS; x++) {
		if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
			die("raw begin: %s", mdb_strerror(rc));
		for (uint64_t sh = 0; sh < RAW_SHARDS_PER_TXN; sh++) {
			for (uint64_t i = 0; i < L->shard_rows; i++) {
				uint64_t n = (x * RAW_SHARDS_PER_TXN + sh) *
				    L->shard_rows + i;

				for (int b = 11; b >= 4; b--, n >>= 8)
					kb[b] = (uint8_t)n;
				v.mv_size = L->rec;
				v.mv_data = L->blob + i * L->rec;
				if ((rc = mdb_put(txn, dbi, &k, &v, 0)) != 0)
					die("raw put: %s", mdb_strerror(rc));
			}
		}
		if ((rc = mdb_txn_commit(txn)) != 0)
			die("raw commit: %s", mdb_strerror(rc));
	}
	t1 = sl_now_s();
	mdb_env_close(env);
	rm_dir(dir);
	return (double)RAW_TXNS * RAW_SHARDS_PER_TXN * L->shard_rows / (t1 - t0);
}

int
main(int argc, char **argv)
{
	static load L;
	sl_dataset *ds = NULL;
	sl_errmsg why = { "" };
	double rate[MAX_ROUNDS], raw[MAX_ROUNDS], per_commit[MAX_ROUNDS];
	int rounds = 3;

	if (argc == 4 && strcmp(argv[1], "--make-dataset") == 0)
		return make_dataset(argv[2], argv[3]);
	L.pre[0] = L.pre[1] = L.pre[2] = NAN;
	if (argc < 3 || argv[1][0] == '-') {
		fprintf(stderr, "usage: bench_broker EP DATASET [--connections N] "
		    "[--credit N] [--rounds N]\n"
		    "       bench_broker --make-dataset OUT.npy ROWS\n");
		return 2;
	}
	L.ep = argv[1];
	L.nconns = 4;
	L.credit = 16;
	for (int i = 3; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--connections") == 0)
			L.nconns = (int)parse_long(argv[i + 1], 1, MAX_CONNS, argv[i]);
		else if (strcmp(argv[i], "--credit") == 0)
			L.credit = (int)parse_long(argv[i + 1], 1, SL_PROTO_MAX_HELD,
			    argv[i]);
		else if (strcmp(argv[i], "--rounds") == 0)
			rounds = (int)parse_long(argv[i + 1], 1, MAX_ROUNDS, argv[i]);
		else
			die("unknown option %s", argv[i]);
	}
	if ((argc - 3) % 2 != 0)
		die("option %s needs a value", argv[argc - 1]);
	if (sl_dataset_open(argv[2], &ds, &why) != 0 ||
	    sl_dataset_fingerprint(ds, &L.fp) != 0)
		die("%s: %s", argv[2], why.text);
	L.dim = (uint32_t)sl_dataset_dim(ds);
	sl_dataset_close(&ds);
	if ((L.zctx = zmq_ctx_new()) == NULL)
		die("zmq_ctx_new failed");

	for (int r = 0; r < rounds; r++) {
		double c0, r0, c1, r1;

		broker_commits(&L, &c0, &r0);
		rate[r] = run_round(&L, r);
		broker_commits(&L, &c1, &r1);
		per_commit[r] = c1 > c0 ? (r1 - r0) / (c1 - c0) : 0;
		raw[r] = raw_put(&L);
	}
	const double mr = median(rate, rounds), mw = median(raw, rounds);
	printf("broker ceiling: %" PRIu64 " rows in %" PRIu64 " shards of %u, "
	    "%d connections, credit %d, %zu-byte f32 records of %d classes, "
	    "durable commits, median of %d rounds\n", L.rows, L.nshards,
	    L.shard_rows, L.nconns, L.credit, L.rec, CLASSES, rounds);
	printf("  broker committed        %12.0f samples/s %10.1f shards/s "
	    "(%.1f shards per commit)\n", mr, mr / L.shard_rows,
	    median(per_commit, rounds));
	printf("  raw mdb_put             %12.0f records/s (%d shards per "
	    "durable txn)\n", mw, RAW_SHARDS_PER_TXN);
	printf("  ratio broker/raw put    %12.3f\n", mr / mw);
	printf("  target                  %12.0f samples/s (%s)\n", 1e6,
	    mr >= 1e6 ? "met" : "not met");
	free(L.blob);
	zmq_ctx_term(L.zctx);
	return 0;
}

/* test_reader.c - sl_reader: the local reader over a real LMDB store, and
 * the remote reader against a scripted server on a real ZeroMQ ROUTER on
 * 127.0.0.1 (a thread of this test) that answers in prefixes, with errors,
 * with replies that do not answer, or not at all.
 *
 * The local tests compare with what was written (known records, known
 * shard states); the remote tests with what the script sent. The
 * byte-identity of the two against the real `softlabel serve` is
 * tests/integration/serve_basic.sh. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "sl_label.h"
#include "sl_meta.h"
#include "sl_net.h"
#include "sl_proto.h"
#include "sl_reader.h"
#include "sl_store.h"

#define C 10
#define ROWS 200
#define SHARD 10
#define REC (12 + 4 * C)

static char dir[64];

static int
rm_rf(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	char sub[512];

	if (d == NULL)
		return unlink(path);
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
		rm_rf(sub);
	}
	closedir(d);
	return rmdir(path);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/test_reader.XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	return rm_rf(dir);
}

static sl_store_job
job(void)
{
	sl_store_job j;

	memset(&j, 0, sizeof j);
	snprintf(j.dataset_path, sizeof j.dataset_path, "/data/x.npy");
	j.dataset.rows = ROWS;
	j.dataset.ndim = 2;
	j.dataset.shape[0] = ROWS;
	j.dataset.shape[1] = 4;
	j.dataset.dtype = SL_DTYPE_U8;
	for (int i = 0; i < 32; i++)
		j.dataset.sha256[i] = (uint8_t)(i * 5 + 3);
	j.shard_rows = SHARD;
	return j;
}

/* The record of sample s: logits from s, so each is distinct. */
static void
record_of(uint64_t s, uint8_t out[REC])
{
	const sl_label_fmt fmt = { SL_ENC_F32, C, 0 };
	float z[C], scratch[2 * C];

	for (int k = 0; k < C; k++)
		z[k] = (float)((s * 7 + (uint64_t)k * 3) % 11) - 5.0f;
	assert_int_equal(sl_label_encode(&fmt, z, 2.0f, scratch, out), 0);
}

static void
put_shard(sl_store *s, uint32_t teacher, uint64_t shard)
{
	uint8_t buf[SHARD * REC];
	sl_store_txn *txn = NULL;
	sl_errmsg why = { "" };

	for (int i = 0; i < SHARD; i++)
		record_of(shard * SHARD + (uint64_t)i, buf + i * REC);
	assert_int_equal(sl_store_write_begin(s, &txn, &why), 0);
	assert_int_equal(sl_store_put_shard(txn, teacher, shard, shard * SHARD,
	    SHARD, buf, REC, "w", 1, &why), 0);
	assert_int_equal(sl_store_write_commit(&txn, &why), 0);
}

/* A store with teacher "t" (index 0): shards 0-2, 5, 7-8 done, 4
 * quarantined (its records kept), the rest pending. */
static sl_store *
make_store(sl_store_teacher *t)
{
	sl_store_opts o = { 0, 1, 0, NULL };
	const sl_store_job j = job();
	sl_store *s = NULL;
	sl_store_txn *txn = NULL;
	sl_errmsg why = { "" };
	static const int done[] = { 0, 1, 2, 5, 7, 8, 4 };

	assert_int_equal(sl_store_open(dir, &o, &s, &why), 0);
	assert_int_equal(sl_store_init_job(s, &j, &why), 0);
	memset(t, 0, sizeof *t);
	strcpy(t->name, "t");
	memset(t->model_sha256, 'b', 64);
	t->temperature = 2.0f;
	t->fmt.encoding = SL_ENC_F32;
	t->fmt.classes = C;
	assert_int_equal(sl_store_register_teacher(s, t, &why), 0);
	for (size_t i = 0; i < sizeof done / sizeof done[0]; i++)
		put_shard(s, t->index, (uint64_t)done[i]);
	assert_int_equal(sl_store_write_begin(s, &txn, &why), 0);
	assert_int_equal(sl_store_put_quarantine(txn, t->index, 4, 3, "nan",
	    &why), 0);
	assert_int_equal(sl_store_write_commit(&txn, &why), 0);
	return s;
}

/* ---- collectors -------------------------------------------------------- */

typedef struct got {
	uint64_t runs[32][2];
	int nruns;
	uint64_t samples[4 * ROWS];
	size_t nsamples;
	int bad;        /* a record that is not record_of(sample) */
	int stop_after; /* stop the walk after this many (0: never) */
} got;

static int
on_run(void *arg, uint64_t first, uint64_t count)
{
	got *g = arg;

	assert_true(g->nruns < 32);
	g->runs[g->nruns][0] = first;
	g->runs[g->nruns][1] = count;
	g->nruns++;
	return 0;
}

static int
on_label(void *arg, uint64_t sample, const void *rec, size_t len)
{
	got *g = arg;
	uint8_t want[REC];

	record_of(sample, want);
	if (len != REC || memcmp(rec, want, REC) != 0)
		g->bad++;
	assert_true(g->nsamples < sizeof g->samples / sizeof g->samples[0]);
	g->samples[g->nsamples++] = sample;
	if (g->stop_after && g->nsamples == (size_t)g->stop_after)
		return 42;
	return 0;
}

/* ---- local ------------------------------------------------------------- */

static void
test_local(void **state)
{
	sl_store_teacher t, tt[4];
	sl_store *s = make_store(&t);
	sl_reader *r = NULL;
	sl_errmsg why = { "" };
	sl_store_job j;
	size_t n;
	got g;

	(void)state;
	assert_int_equal(sl_reader_from_store(s, &r, &why), 0);
	assert_int_equal(sl_reader_job(r, &j, &why), 0);
	assert_true(j.dataset.rows == ROWS && j.shard_rows == SHARD);
	assert_int_equal(sl_reader_teachers(r, tt, 4, &n, &why), 0);
	assert_int_equal(n, 1);
	assert_string_equal(tt[0].name, "t");

	/* Done runs: quarantined 4 and pending shards are not done. */
	memset(&g, 0, sizeof g);
	assert_int_equal(sl_reader_each_done(r, t.index, on_run, &g, &why), 0);
	assert_int_equal(g.nruns, 3);
	assert_true(g.runs[0][0] == 0 && g.runs[0][1] == 3);
	assert_true(g.runs[1][0] == 5 && g.runs[1][1] == 1);
	assert_true(g.runs[2][0] == 7 && g.runs[2][1] == 2);

	/* A range: present samples in order, up to (not including) to. */
	memset(&g, 0, sizeof g);
	assert_int_equal(sl_reader_each_label(r, t.index, 25, 52, on_label, &g,
	    &why), 0);
	assert_int_equal(g.bad, 0);
	assert_int_equal(g.nsamples, 5 + 10 + 2); /* 25-29, 40-49, 50-51 */
	assert_true(g.samples[0] == 25 && g.samples[4] == 29 &&
	    g.samples[5] == 40 && g.samples[16] == 51);
	memset(&g, 0, sizeof g);
	g.stop_after = 3;
	assert_int_equal(sl_reader_each_label(r, t.index, 0, ROWS, on_label, &g,
	    &why), 42);
	assert_int_equal(g.nsamples, 3);

	/* A list: in list order, absent ones skipped, repeats repeated. */
	const uint64_t list[] = { 89, 3, 30, 3, 199, 0 };
	memset(&g, 0, sizeof g);
	assert_int_equal(sl_reader_get_labels(r, t.index, list, 6, on_label, &g,
	    &why), 0);
	assert_int_equal(g.bad, 0);
	assert_int_equal(g.nsamples, 4);
	assert_true(g.samples[0] == 89 && g.samples[1] == 3 &&
	    g.samples[2] == 3 && g.samples[3] == 0);

	/* The snapshot: shard 3 committed now is seen after refresh only. */
	put_shard(s, t.index, 3);
	memset(&g, 0, sizeof g);
	assert_int_equal(sl_reader_each_done(r, t.index, on_run, &g, &why), 0);
	assert_int_equal(g.nruns, 3);
	assert_int_equal(sl_reader_refresh(r, &why), 0);
	memset(&g, 0, sizeof g);
	assert_int_equal(sl_reader_each_done(r, t.index, on_run, &g, &why), 0);
	assert_int_equal(g.nruns, 3); /* (0, 4) (5, 1) (7, 2): 4 quarantined */
	assert_true(g.runs[0][0] == 0 && g.runs[0][1] == 4);
	assert_true(g.runs[1][0] == 5 && g.runs[1][1] == 1);
	sl_reader_close(&r);
	assert_null(r);
	sl_reader_close(&r);
	sl_store_close(&s);

	/* Opened by path: the same answers; a directory without a cache. */
	assert_int_equal(sl_reader_open(dir, NULL, &r, &why), 0);
	memset(&g, 0, sizeof g);
	assert_int_equal(sl_reader_each_done(r, 0, on_run, &g, &why), 0);
	assert_int_equal(g.nruns, 3);
	sl_reader_close(&r);
	assert_int_equal(sl_reader_open("/nonexistent/cache", NULL, &r, &why),
	    ENOENT);
	assert_int_equal(sl_reader_is_remote("tcp://h:1"), 1);
	assert_int_equal(sl_reader_is_remote("/data/tcp://x"), 0);
}

/* ---- several caches of one job read as one ------------------------------ */

/* A part at dir/name labeling rows [first, end) of job(): teachers
 * registered in the order names lists them (so their indices differ
 * between parts), temperature T for "t", and done[0..ndone) shards of
 * "t" stored. */
static void
make_part(const char *name, uint64_t first, uint64_t end, uint8_t fp,
    const char *const *names, int nnames, float T, const int *done,
    int ndone)
{
	sl_store_opts o = { 0, 1, 0, NULL };
	sl_store_job j = job();
	sl_store *s = NULL;
	sl_errmsg why = { "" };
	char path[128];
	uint32_t ti = 0;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	j.rows_first = first;
	j.rows_end = end;
	j.dataset.sha256[0] = fp;
	assert_int_equal(sl_store_open(path, &o, &s, &why), 0);
	assert_int_equal(sl_store_init_job(s, &j, &why), 0);
	for (int i = 0; i < nnames; i++) {
		sl_store_teacher t;

		memset(&t, 0, sizeof t);
		snprintf(t.name, sizeof t.name, "%s", names[i]);
		memset(t.model_sha256, 'b', 64);
		t.temperature = strcmp(names[i], "t") == 0 ? T : 1.0f;
		t.fmt.encoding = SL_ENC_F32;
		t.fmt.classes = C;
		assert_int_equal(sl_store_register_teacher(s, &t, &why), 0);
		if (strcmp(names[i], "t") == 0)
			ti = t.index;
	}
	for (int i = 0; i < ndone; i++)
		put_shard(s, ti, (uint64_t)done[i]);
	sl_store_close(&s);
}

/* Union open of list (paths under dir) must fail with code and a message
 * holding want, where each "@" stands for dir. */
static void
union_refused(const char *list, const char *committee, int code,
    const char *want)
{
	char spec[512], full[512], *w = spec;
	sl_reader *r = NULL;
	sl_errmsg why = { "" };

	/* "a,b" -> "DIR/a,DIR/b" */
	for (const char *p = list; *p; ) {
		size_t n = strcspn(p, ",");

		w += snprintf(w, sizeof spec - (size_t)(w - spec), "%s%s/%.*s",
		    w == spec ? "" : ",", dir, (int)n, p);
		p += n + (p[n] == ',');
	}
	assert_int_equal(sl_reader_union_open(spec, committee, NULL, &r, &why),
	    code);
	assert_null(r);
	/* want's "@" stand for dir */
	w = full;
	for (const char *p = want; *p && w < full + sizeof full - 64; p++)
		if (*p == '@')
			w += snprintf(w, 64, "%s", dir);
		else
			*w++ = *p;
	*w = '\0';
	if (strstr(why.text, full) == NULL)
		fail_msg("union of %s: '%s', want '%s'", list, why.text, full);
}

static void
test_union(void **state)
{
	static const char *const t_only[] = { "t" }, *const u_t[] = { "u", "t" };
	static const int da[] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12 };
	static const int db[] = { 10, 11, 15 };
	sl_store_teacher tt[4];
	sl_reader *r = NULL;
	sl_errmsg why = { "" };
	sl_store_job j;
	char spec[256];
	size_t n;
	got g;

	(void)state;
	/* a: rows 0:100, done 0-9, and a stray shard 12 outside its rows;
	 * b: rows 100:200, "t" is its teacher 1, done 10, 11, 15. */
	make_part("a", 0, 100, 0, t_only, 1, 2.0f, da, 11);
	make_part("b", 100, 200, 0, u_t, 2, 2.0f, db, 3);
	snprintf(spec, sizeof spec, "%s/b,%s/a", dir, dir);
	assert_int_equal(sl_reader_open(spec, NULL, &r, &why), SL_EINVAL); /* b's committee (u, t): a has no "u" */
	assert_null(r);
	assert_non_null(strstr(why.text, "has no teacher 'u'"));
	assert_int_equal(sl_reader_union_open(spec, "t", NULL, &r, &why), 0);

	assert_int_equal(sl_reader_job(r, &j, &why), 0);
	assert_true(j.rows_first == 0 && j.rows_end == 200 &&
	    j.dataset.rows == ROWS && j.shard_rows == SHARD);
	assert_int_equal(sl_reader_teachers(r, tt, 4, &n, &why), 0);
	assert_int_equal(n, 1);
	assert_string_equal(tt[0].name, "t");
	assert_int_equal(tt[0].index, 1); /* b's, the first part given */

	/* Done: a's 0-9 and b's 10-11 merge; a's stray 12 is not a's rows. */
	memset(&g, 0, sizeof g);
	assert_int_equal(sl_reader_each_done(r, tt[0].index, on_run, &g, &why),
	    0);
	assert_int_equal(g.nruns, 2);
	assert_true(g.runs[0][0] == 0 && g.runs[0][1] == 12);
	assert_true(g.runs[1][0] == 15 && g.runs[1][1] == 1);

	/* A range across the parts, in sample order, from each part's own
	 * teacher index; a's stray records (120-129) are not read. */
	memset(&g, 0, sizeof g);
	assert_int_equal(sl_reader_each_label(r, tt[0].index, 95, 130, on_label,
	    &g, &why), 0);
	assert_int_equal(g.bad, 0);
	assert_int_equal(g.nsamples, 5 + 20); /* 95-99, 100-119 */
	assert_true(g.samples[0] == 95 && g.samples[4] == 99 &&
	    g.samples[5] == 100 && g.samples[24] == 119);
	memset(&g, 0, sizeof g);
	g.stop_after = 7;
	assert_int_equal(sl_reader_each_label(r, tt[0].index, 0, ROWS, on_label,
	    &g, &why), 42);
	assert_int_equal(g.nsamples, 7);

	/* A list: list order across parts, absent ones skipped. */
	const uint64_t list[] = { 150, 5, 6, 105, 5, 199, 125, 0 };
	memset(&g, 0, sizeof g);
	assert_int_equal(sl_reader_get_labels(r, tt[0].index, list, 8, on_label,
	    &g, &why), 0);
	assert_int_equal(g.bad, 0);
	assert_int_equal(g.nsamples, 6);
	assert_true(g.samples[0] == 150 && g.samples[1] == 5 &&
	    g.samples[2] == 6 && g.samples[3] == 105 && g.samples[4] == 5 &&
	    g.samples[5] == 0);

	/* An index outside the committee. */
	assert_int_equal(sl_reader_each_done(r, 0, on_run, &g, &why),
	    SL_ENOTFOUND);
	assert_int_equal(sl_reader_refresh(r, &why), 0);
	sl_reader_close(&r);

	/* Refused: overlaps (also a part twice), another dataset or shard
	 * size, a teacher registered otherwise, a committee name missing. */
	make_part("c", 50, 150, 0, t_only, 1, 2.0f, NULL, 0);
	make_part("d", 100, 200, 9, t_only, 1, 2.0f, NULL, 0);
	make_part("e", 100, 200, 0, t_only, 1, 3.0f, NULL, 0);
	union_refused("a,c", NULL, SL_EINVAL,
	    "@/a (rows 0:100) and @/c (rows 50:150) overlap");
	union_refused("a,a", NULL, SL_EINVAL,
	    "@/a (rows 0:100) and @/a (rows 0:100) overlap");
	union_refused("a,d", NULL, SL_EINVAL, "@/a and @/d are not parts of "
	    "one job (the dataset's fingerprint or the shard size differ)");
	union_refused("a,e", NULL, SL_EINVAL, "teacher 't' differs between "
	    "@/a and @/e (model, temperature, encoding or views)");
	union_refused("a,b", "t,zz", SL_ENOTFOUND, "no teacher 'zz' in @/a");
	union_refused("a,b", "t,t", SL_EINVAL, "teacher 't' named twice");
	assert_int_equal(sl_reader_union_open(",", NULL, NULL, &r, &why),
	    SL_EINVAL);
	assert_int_equal(sl_reader_union_open("/nonexistent/x,/nonexistent/y",
	    NULL, NULL, &r, &why), ENOENT);
	assert_non_null(strstr(why.text, "/nonexistent/x: "));
	assert_null(r);
}

/* ---- remote, against a scripted server ---------------------------------- */

enum script {
	S_PREFIX,     /* RECORDS: answer at most 7 samples a reply; runs 2 per reply */
	S_DROP_FIRST, /* ignore the first request, answer the rest */
	S_ERROR,      /* ERROR not found for everything */
	S_WRONG,      /* a reply of another teacher */
};

typedef struct fake {
	void *ctx, *sock;
	char ep[64];
	enum script script;
	pthread_t th;
	volatile int stop;
	int requests;
	char ids[8][256];      /* routing ids seen, for S_DROP_FIRST */
	size_t idlen[8];
	int nids;
} fake;

static void
fake_send(fake *f, zmq_msg_t *id, const sl_msg *m)
{
	sl_proto_buf b = { 0 };

	assert_int_equal(sl_proto_encode(m, &b), 0);
	zmq_send(f->sock, zmq_msg_data(id), zmq_msg_size(id), ZMQ_SNDMORE);
	zmq_send(f->sock, b.p, b.len, 0);
	sl_proto_buf_fini(&b);
}

static void
fake_answer(fake *f, zmq_msg_t *id, const sl_msg *q)
{
	static uint8_t blob[64 * REC], state[64], runs[64];
	sl_proto_buf meta = { 0 };
	sl_msg m;

	memset(&m, 0, sizeof m);
	if (f->script == S_ERROR) {
		m.type = SL_MSG_ERROR;
		m.u.error.code = (uint32_t)-SL_ENOTFOUND;
		m.u.error.reason = sl_bytes_str("no job in the cache yet");
		fake_send(f, id, &m);
		return;
	}
	if (q->type == SL_MSG_META) {
		sl_store_teacher t;
		const sl_store_job j = job();

		memset(&t, 0, sizeof t);
		t.index = 3;
		strcpy(t.name, "remote");
		memset(t.model_sha256, 'c', 64);
		t.temperature = 2.0f;
		t.fmt.encoding = SL_ENC_F32;
		t.fmt.classes = C;
		assert_int_equal(sl_meta_encode(&j, &t, 1, &meta), 0);
		m.type = SL_MSG_META_REPLY;
		m.u.meta.meta.p = meta.p;
		m.u.meta.meta.len = meta.len;
		fake_send(f, id, &m);
		sl_proto_buf_fini(&meta);
		return;
	}
	if (q->type == SL_MSG_SHARDS) {
		/* Done: every shard s with s % 3 != 2 below 20, two runs
		 * per reply: (0,2) (3,2) | (6,2) (9,2) | ... */
		uint64_t first = q->u.shards.from, k = 0;

		m.type = SL_MSG_SHARDS_REPLY;
		m.u.shards.teacher = q->u.shards.teacher;
		m.u.shards.from = q->u.shards.from;
		while (first % 3 == 2)
			first++;
		for (; k < 2 && first < 20; k++, first += 3) {
			const uint64_t count = first + 2 <= 20 ? 2 : 20 - first;

			memcpy(runs + 16 * k, &first, 8);
			memcpy(runs + 16 * k + 8, &count, 8);
		}
		m.u.shards.runs.p = runs;
		m.u.shards.runs.len = 16 * k;
		m.u.shards.next = first > 20 ? 20 : first;
		m.u.shards.last = first >= 20;
		fake_send(f, id, &m);
		return;
	}
	/* RECORDS: odd samples present, at most 7 answered. */
	const uint32_t n = q->u.records.n < 7 ? q->u.records.n : 7;
	size_t off = 0;

	m.type = SL_MSG_RECORDS_REPLY;
	m.u.records.teacher = f->script == S_WRONG ? q->u.records.teacher + 1 :
	    q->u.records.teacher;
	m.u.records.first = q->u.records.first;
	m.u.records.n = n;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t s = q->u.records.first + i;

		if (q->u.records.samples.len)
			memcpy(&s, q->u.records.samples.p + 8 * (size_t)i, 8);
		state[i] = s % 2 ? SL_REC_PRESENT : SL_REC_ABSENT;
		if (s == 9)
			state[i] = SL_REC_BADSIZE;
		if (state[i] == SL_REC_PRESENT) {
			record_of(s, blob + off);
			off += REC;
		}
	}
	m.u.records.state.p = state;
	m.u.records.state.len = n;
	m.u.records.blob.p = blob;
	m.u.records.blob.len = off;
	fake_send(f, id, &m);
}

static void *
fake_run(void *arg)
{
	fake *f = arg;

	while (!f->stop) {
		zmq_pollitem_t it = { f->sock, 0, ZMQ_POLLIN, 0 };
		zmq_msg_t id, body;
		sl_msg q;

		if (zmq_poll(&it, 1, 50) <= 0)
			continue;
		zmq_msg_init(&id);
		zmq_msg_init(&body);
		zmq_msg_recv(&id, f->sock, 0);
		zmq_msg_recv(&body, f->sock, 0);
		if (f->nids < 8) {
			f->idlen[f->nids] = zmq_msg_size(&id);
			memcpy(f->ids[f->nids], zmq_msg_data(&id), f->idlen[f->nids]);
			f->nids++;
		}
		f->requests++;
		if (sl_proto_decode(zmq_msg_data(&body), zmq_msg_size(&body), &q,
		    NULL) == 0 && !(f->script == S_DROP_FIRST && f->requests == 1))
			fake_answer(f, &id, &q);
		zmq_msg_close(&id);
		zmq_msg_close(&body);
	}
	return NULL;
}

static void
fake_start(fake *f, enum script s)
{
	size_t len = sizeof f->ep;

	memset(f, 0, sizeof *f);
	f->script = s;
	f->ctx = zmq_ctx_new();
	assert_int_equal(sl_net_socket(f->ctx, ZMQ_ROUTER, 1 << 20, &f->sock,
	    NULL), 0);
	assert_int_equal(zmq_bind(f->sock, "tcp://127.0.0.1:*"), 0);
	assert_int_equal(zmq_getsockopt(f->sock, ZMQ_LAST_ENDPOINT, f->ep, &len),
	    0);
	assert_int_equal(pthread_create(&f->th, NULL, fake_run, f), 0);
}

static void
fake_stop(fake *f)
{
	f->stop = 1;
	pthread_join(f->th, NULL);
	sl_net_close(&f->sock);
	zmq_ctx_term(f->ctx);
}

static int
count_label(void *arg, uint64_t sample, const void *rec, size_t len)
{
	got *g = arg;

	if (len == 0) { /* stored with the wrong size: marked */
		g->samples[g->nsamples++] = sample | (1ull << 63);
		return 0;
	}
	return on_label(g, sample, rec, len);
}

static void
test_remote_prefixes(void **state)
{
	const sl_reader_opts o = { NULL, NULL, 5, 2000, NULL };
	sl_store_teacher tt[4];
	sl_reader *r = NULL;
	sl_errmsg why = { "" };
	sl_store_job j;
	size_t n;
	fake f;
	got g;

	(void)state;
	fake_start(&f, S_PREFIX);
	assert_int_equal(sl_reader_open(f.ep, &o, &r, &why), 0);
	assert_int_equal(sl_reader_job(r, &j, &why), 0);
	assert_true(j.dataset.rows == ROWS && j.shard_rows == SHARD);
	assert_int_equal(sl_reader_teachers(r, tt, 4, &n, &why), 0);
	assert_int_equal(n, 1);
	assert_int_equal(tt[0].index, 3);
	assert_string_equal(tt[0].name, "remote");
	assert_int_equal(sl_reader_refresh(r, &why), 0);

	/* Runs over several replies, as sent. */
	memset(&g, 0, sizeof g);
	assert_int_equal(sl_reader_each_done(r, 3, on_run, &g, &why), 0);
	assert_int_equal(g.nruns, 7);
	for (int i = 0; i < 7; i++) {
		assert_true(g.runs[i][0] == (uint64_t)(3 * i));
		assert_true(g.runs[i][1] == 2);
	}

	/* A range of 50 over replies of 7: odd samples, 9 flagged bad size. */
	memset(&g, 0, sizeof g);
	assert_int_equal(sl_reader_each_label(r, 3, 0, 50, count_label, &g,
	    &why), 0);
	assert_int_equal(g.bad, 0);
	assert_int_equal(g.nsamples, 25);
	for (size_t i = 0; i < g.nsamples; i++)
		assert_true(g.samples[i] == (i == 4 ? (9 | (1ull << 63)) :
		    2 * i + 1));
	const int before = f.requests;

	/* A list of 20 (7 + 7 + 6 requests), in list order. */
	uint64_t list[20];
	for (int i = 0; i < 20; i++)
		list[i] = (uint64_t)(39 - 2 * i);
	memset(&g, 0, sizeof g);
	assert_int_equal(sl_reader_get_labels(r, 3, list, 20, count_label, &g,
	    &why), 0);
	assert_int_equal(f.requests - before, 3);
	assert_int_equal(g.nsamples, 20);
	for (int i = 0; i < 20; i++)
		assert_true(g.samples[i] == (list[i] == 9 ? (9 | (1ull << 63)) :
		    list[i]));

	/* A teacher the server does not have: not found, without asking
	 * for records. */
	assert_int_equal(sl_reader_each_label(r, 5, 0, 10, count_label, &g,
	    &why), SL_ENOTFOUND);
	sl_reader_close(&r);
	fake_stop(&f);
}

static void
test_remote_retry_and_errors(void **state)
{
	const sl_reader_opts o = { NULL, NULL, 10, 300, NULL };
	sl_reader *r = NULL;
	sl_errmsg why = { "" };
	sl_store_job j;
	fake f;
	got g;

	(void)state;
	/* The first request is never answered: sent again on a new
	 * connection (another routing id), then answered. */
	fake_start(&f, S_DROP_FIRST);
	assert_int_equal(sl_reader_open(f.ep, &o, &r, &why), 0);
	assert_int_equal(sl_reader_job(r, &j, &why), 0);
	assert_int_equal(f.requests, 2);
	assert_true(f.idlen[0] != f.idlen[1] ||
	    memcmp(f.ids[0], f.ids[1], f.idlen[0]) != 0);
	sl_reader_close(&r);
	fake_stop(&f);

	/* ERROR replies carry their code and reason. */
	fake_start(&f, S_ERROR);
	assert_int_equal(sl_reader_open(f.ep, &o, &r, &why), 0);
	assert_int_equal(sl_reader_job(r, &j, &why), SL_ENOTFOUND);
	assert_string_equal(why.text, "no job in the cache yet");
	sl_reader_close(&r);
	fake_stop(&f);

	/* A reply that does not answer the request: EPROTO, no records. */
	fake_start(&f, S_WRONG);
	assert_int_equal(sl_reader_open(f.ep, &o, &r, &why), 0);
	memset(&g, 0, sizeof g);
	assert_int_equal(sl_reader_each_label(r, 3, 0, 10, count_label, &g,
	    &why), EPROTO);
	assert_int_equal(g.nsamples, 0);
	assert_non_null(strstr(why.text, "does not answer"));
	sl_reader_close(&r);
	fake_stop(&f);
}

static void
test_remote_connect_timeout(void **state)
{
	const sl_reader_opts o = { NULL, NULL, 1, 200, NULL };
	sl_reader *r = NULL;
	sl_errmsg why = { "" };
	sl_store_job j;
	char ep[64];
	fake f;

	(void)state;
	/* A port that was just free: nobody answers. */
	fake_start(&f, S_PREFIX);
	snprintf(ep, sizeof ep, "%s", f.ep);
	fake_stop(&f);
	assert_int_equal(sl_reader_open(ep, &o, &r, &why), 0);
	assert_int_equal(sl_reader_job(r, &j, &why), ETIMEDOUT);
	assert_non_null(strstr(why.text, "no server answered within 1 s"));
	sl_reader_close(&r);

	/* The stop flag ends the wait at once, before any timeout. */
	static volatile sig_atomic_t flag;
	const sl_reader_opts so = { NULL, NULL, 0, 60000, &flag };
	flag = 1;
	assert_int_equal(sl_reader_open(ep, &so, &r, &why), 0);
	const uint64_t t0 = sl_net_now_ms();
	assert_int_equal(sl_reader_job(r, &j, &why), EINTR);
	assert_true(sl_net_now_ms() - t0 < 60000);
	assert_non_null(strstr(why.text, "interrupted"));
	sl_reader_close(&r);

	/* Bad endpoints and half a CURVE pair are refused at open. */
	assert_int_equal(sl_reader_open("tcp://127.0.0.1", &o, &r, &why),
	    SL_EINVAL);
	const sl_reader_opts half = { "x.key", NULL, 1, 200, NULL };
	assert_int_equal(sl_reader_open("tcp://127.0.0.1:9", &half, &r, &why),
	    SL_EINVAL);
	assert_null(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_local, setup, teardown),
		cmocka_unit_test_setup_teardown(test_union, setup, teardown),
		cmocka_unit_test(test_remote_prefixes),
		cmocka_unit_test(test_remote_retry_and_errors),
		cmocka_unit_test(test_remote_connect_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

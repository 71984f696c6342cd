/* sl_reader.c - the reader interface and its local implementation, a thin
 * layer over sl_store's read API (one read snapshot, refreshed on demand). */
#include "sl_reader.h"

#include <stdlib.h>
#include <string.h>

typedef struct local {
	struct sl_reader base;
	sl_store *store;
	sl_store_txn *txn;
	int owns_store;
} local;

int
sl_reader_is_remote(const char *spec)
{
	return strncmp(spec, "tcp://", 6) == 0 || strncmp(spec, "ipc://", 6) == 0;
}

static int
local_job(sl_reader *r, sl_store_job *out, sl_errmsg *why)
{
	return sl_store_get_job(((local *)r)->store, out, why);
}

static int
local_teachers(sl_reader *r, sl_store_teacher *out, size_t cap, size_t *n,
    sl_errmsg *why)
{
	return sl_store_teachers(((local *)r)->store, out, cap, n, why);
}

static int
local_refresh(sl_reader *r, sl_errmsg *why)
{
	return sl_store_read_refresh(((local *)r)->txn, why);
}

/* Runs of done shards: extend the current run or flush it. */
typedef struct runs {
	sl_reader_run_fn fn;
	void *arg;
	uint64_t first, count;
} runs;

static int
run_add(void *arg, uint64_t shard, const sl_shard_info *info)
{
	runs *u = arg;
	int rc;

	if (info->state != SL_SHARD_DONE)
		return 0;
	if (u->count > 0 && u->first + u->count == shard) {
		u->count++;
		return 0;
	}
	if (u->count > 0 && (rc = u->fn(u->arg, u->first, u->count)) != 0)
		return rc;
	u->first = shard;
	u->count = 1;
	return 0;
}

static int
local_each_done(sl_reader *r, uint32_t teacher, sl_reader_run_fn fn,
    void *arg, sl_errmsg *why)
{
	runs u = { fn, arg, 0, 0 };
	int rc = sl_store_each_shard(((local *)r)->txn, teacher, run_add, &u);

	if (rc == 0 && u.count > 0)
		rc = fn(arg, u.first, u.count);
	if (rc == SL_EFORMAT)
		sl_errmsg_set(why, rc, "teacher %u: a malformed shard entry",
		    teacher);
	return rc;
}

/* sl_store_each_label has no end: stop it at `to` with a private code. */
typedef struct upto {
	sl_store_label_fn fn;
	void *arg;
	uint64_t to;
	int stopped;
} upto;

static int
label_upto(void *arg, uint64_t sample, const void *rec, size_t len)
{
	upto *u = arg;

	if (sample >= u->to) {
		u->stopped = 1;
		return 1;
	}
	return u->fn(u->arg, sample, rec, len);
}

static int
local_each_label(sl_reader *r, uint32_t teacher, uint64_t from, uint64_t to,
    sl_store_label_fn fn, void *arg, sl_errmsg *why)
{
	upto u = { fn, arg, to, 0 };
	int rc;

	if (from >= to)
		return 0;
	rc = sl_store_each_label(((local *)r)->txn, teacher, from, label_upto,
	    &u);
	if (u.stopped)
		return 0;
	if (rc == SL_EFORMAT)
		sl_errmsg_set(why, rc, "teacher %u: a malformed label key",
		    teacher);
	return rc;
}

static int
local_get_labels_view(sl_reader *r, uint32_t teacher, const uint64_t *samples,
    const uint32_t *views, size_t n, sl_store_label_fn fn, void *arg,
    sl_errmsg *why)
{
	local *l = (local *)r;

	for (size_t i = 0; i < n; i++) {
		const void *rec;
		size_t len;
		int rc = sl_store_get_label_view(l->txn, teacher, samples[i],
		    views != NULL ? views[i] : SL_STORE_NO_VIEW, &rec, &len);

		if (rc == SL_ENOTFOUND)
			continue;
		if (rc != 0)
			return sl_errmsg_set(why, rc, "teacher %u sample %llu: %s",
			    teacher, (unsigned long long)samples[i],
			    sl_strerror(rc));
		if ((rc = fn(arg, samples[i], rec, len)) != 0)
			return rc;
	}
	return 0;
}

static int
local_get_labels(sl_reader *r, uint32_t teacher, const uint64_t *samples,
    size_t n, sl_store_label_fn fn, void *arg, sl_errmsg *why)
{
	return local_get_labels_view(r, teacher, samples, NULL, n, fn, arg, why);
}

/* sl_store_each_label_view stopped at `to`, as label_upto. */
typedef struct vupto {
	sl_store_view_fn fn;
	void *arg;
	uint64_t to;
	int stopped;
} vupto;

static int
view_upto(void *arg, uint64_t sample, uint32_t view, const void *rec,
    size_t len)
{
	vupto *u = arg;

	if (sample >= u->to) {
		u->stopped = 1;
		return 1;
	}
	return u->fn(u->arg, sample, view, rec, len);
}

static int
local_each_label_view(sl_reader *r, uint32_t teacher, uint64_t from,
    uint64_t to, sl_store_view_fn fn, void *arg, sl_errmsg *why)
{
	vupto u = { fn, arg, to, 0 };
	int rc;

	if (from >= to)
		return 0;
	rc = sl_store_each_label_view(((local *)r)->txn, teacher, from,
	    view_upto, &u);
	if (u.stopped)
		return 0;
	if (rc == SL_EFORMAT)
		sl_errmsg_set(why, rc, "teacher %u: a malformed label key (not "
		    "the 16 bytes of a teacher with views)", teacher);
	return rc;
}

static void
local_close(sl_reader *r)
{
	local *l = (local *)r;

	sl_store_read_end(&l->txn);
	if (l->owns_store)
		sl_store_close(&l->store);
	free(l);
}

static const struct sl_reader_ops local_ops = {
	local_job, local_teachers, local_refresh, local_each_done,
	local_each_label, local_get_labels, local_close,
	local_get_labels_view, local_each_label_view,
};

int
sl_reader_open(const char *spec, const sl_reader_opts *o, sl_reader **out,
    sl_errmsg *why)
{
	sl_store_opts so = { 1, 0, 0, NULL };
	local *l;
	int rc;

	if (strchr(spec, ',') != NULL)
		return sl_reader_union_open(spec, NULL, o, out, why);
	if (sl_reader_is_remote(spec))
		return sl_reader_remote_open(spec, o, out, why);
	if ((l = calloc(1, sizeof *l)) == NULL)
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	l->base.ops = &local_ops;
	l->owns_store = 1;
	if ((rc = sl_store_open(spec, &so, &l->store, why)) != 0 ||
	    (rc = sl_store_read_begin(l->store, &l->txn, why)) != 0) {
		local_close(&l->base);
		return rc;
	}
	*out = &l->base;
	return 0;
}

int
sl_reader_from_store(sl_store *s, sl_reader **out, sl_errmsg *why)
{
	local *l = calloc(1, sizeof *l);
	int rc;

	if (l == NULL)
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	l->base.ops = &local_ops;
	l->store = s;
	if ((rc = sl_store_read_begin(s, &l->txn, why)) != 0) {
		free(l);
		return rc;
	}
	*out = &l->base;
	return 0;
}

void
sl_reader_close(sl_reader **r)
{
	if (r == NULL || *r == NULL)
		return;
	(*r)->ops->close(*r);
	*r = NULL;
}

int
sl_reader_job(sl_reader *r, sl_store_job *out, sl_errmsg *why)
{
	return r->ops->job(r, out, why);
}

int
sl_reader_teachers(sl_reader *r, sl_store_teacher *out, size_t cap,
    size_t *n, sl_errmsg *why)
{
	return r->ops->teachers(r, out, cap, n, why);
}

int
sl_reader_refresh(sl_reader *r, sl_errmsg *why)
{
	return r->ops->refresh(r, why);
}

int
sl_reader_each_done(sl_reader *r, uint32_t teacher, sl_reader_run_fn fn,
    void *arg, sl_errmsg *why)
{
	return r->ops->each_done(r, teacher, fn, arg, why);
}

int
sl_reader_each_label(sl_reader *r, uint32_t teacher, uint64_t from,
    uint64_t to, sl_store_label_fn fn, void *arg, sl_errmsg *why)
{
	return r->ops->each_label(r, teacher, from, to, fn, arg, why);
}

int
sl_reader_get_labels(sl_reader *r, uint32_t teacher, const uint64_t *samples,
    size_t n, sl_store_label_fn fn, void *arg, sl_errmsg *why)
{
	return r->ops->get_labels(r, teacher, samples, n, fn, arg, why);
}

int
sl_reader_get_labels_view(sl_reader *r, uint32_t teacher,
    const uint64_t *samples, const uint32_t *views, size_t n,
    sl_store_label_fn fn, void *arg, sl_errmsg *why)
{
	if (views == NULL)
		return r->ops->get_labels(r, teacher, samples, n, fn, arg, why);
	return r->ops->get_labels_view(r, teacher, samples, views, n, fn, arg,
	    why);
}

int
sl_reader_each_label_view(sl_reader *r, uint32_t teacher, uint64_t from,
    uint64_t to, sl_store_view_fn fn, void *arg, sl_errmsg *why)
{
	return r->ops->each_label_view(r, teacher, from, to, fn, arg, why);
}

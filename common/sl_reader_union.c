/* sl_reader_union.c - the caches of one job split by rows, read as one
 * (sl_reader.h): the checks that they are one job, shared with the
 * student's --store a,b, and a reader that dispatches each question to
 * the parts. */
#include "sl_reader.h"

#include <stdlib.h>
#include <string.h>

typedef struct upart {
	char *name;
	sl_reader *rd;
	sl_store_job job;
	uint32_t *index;        /* (nteachers) the committee's indices here */
} upart;

typedef struct un {
	struct sl_reader base;
	char *list;             /* a copy the part names point into */
	upart parts[SL_READER_MAX_PARTS]; /* ascending rows_first */
	int nparts;
	sl_store_job job;
	sl_store_teacher *teachers; /* (nteachers) as the first part has them */
	int nteachers;
} un;

int
sl_reader_parts_check(const char *const *names, const sl_store_job *jobs,
    int n, sl_errmsg *why)
{
	for (int p = 1; p < n; p++) {
		const sl_store_job *a = &jobs[0], *b = &jobs[p];

		if (memcmp(a->dataset.sha256, b->dataset.sha256, 32) != 0 ||
		    a->dataset.rows != b->dataset.rows ||
		    a->shard_rows != b->shard_rows)
			return sl_errmsg_set(why, SL_EINVAL, "%s and %s are not "
			    "parts of one job (the dataset's fingerprint or the "
			    "shard size differ)", names[0], names[p]);
	}
	for (int p = 0; p < n; p++)
		for (int q = p + 1; q < n; q++) {
			const sl_store_job *a = &jobs[p], *b = &jobs[q];

			if (a->rows_first < b->rows_end &&
			    b->rows_first < a->rows_end)
				return sl_errmsg_set(why, SL_EINVAL, "%s (rows "
				    "%llu:%llu) and %s (rows %llu:%llu) overlap",
				    names[p], (unsigned long long)a->rows_first,
				    (unsigned long long)a->rows_end, names[q],
				    (unsigned long long)b->rows_first,
				    (unsigned long long)b->rows_end);
		}
	return 0;
}

int
sl_reader_parts_match(const char *first, const char *name,
    const sl_store_teacher *want, int n, const sl_store_teacher *all,
    size_t nall, sl_store_teacher *out, sl_errmsg *why)
{
	for (int i = 0; i < n; i++) {
		const sl_store_teacher *w = &want[i];
		size_t j;

		for (j = 0; j < nall && strcmp(all[j].name, w->name) != 0; j++)
			;
		if (j == nall)
			return sl_errmsg_set(why, SL_EINVAL, "%s has no teacher "
			    "'%s' (%s has): not parts of one job", name, w->name,
			    first);
		if (strcmp(all[j].model_sha256, w->model_sha256) != 0 ||
		    all[j].temperature != w->temperature ||
		    all[j].fmt.encoding != w->fmt.encoding ||
		    all[j].fmt.classes != w->fmt.classes ||
		    all[j].fmt.k != w->fmt.k || all[j].views != w->views ||
		    all[j].view_seed != w->view_seed ||
		    memcmp(&all[j].view_recipe, &w->view_recipe,
		    sizeof w->view_recipe) != 0)
			return sl_errmsg_set(why, SL_EINVAL, "teacher '%s' differs "
			    "between %s and %s (model, temperature, encoding or "
			    "views): not parts of one job", w->name, first, name);
		out[i] = all[j];
	}
	return 0;
}

/* The committee position of the first part's teacher index, or -1. */
static int
position(const un *u, uint32_t teacher)
{
	for (int i = 0; i < u->nteachers; i++)
		if (u->teachers[i].index == teacher)
			return i;
	return -1;
}

static int
unknown(uint32_t teacher, sl_errmsg *why)
{
	return sl_errmsg_set(why, SL_ENOTFOUND, "no teacher of index %u in "
	    "the parts' committee", teacher);
}

static int
u_job(sl_reader *r, sl_store_job *out, sl_errmsg *why)
{
	(void)why;
	*out = ((un *)r)->job;
	return 0;
}

static int
u_teachers(sl_reader *r, sl_store_teacher *out, size_t cap, size_t *n,
    sl_errmsg *why)
{
	un *u = (un *)r;

	if ((size_t)u->nteachers > cap)
		return sl_errmsg_set(why, SL_ELIMIT, "%d teachers, room for %zu",
		    u->nteachers, cap);
	memcpy(out, u->teachers, (size_t)u->nteachers * sizeof *out);
	*n = (size_t)u->nteachers;
	return 0;
}

static int
u_refresh(sl_reader *r, sl_errmsg *why)
{
	un *u = (un *)r;
	int rc;

	for (int p = 0; p < u->nparts; p++)
		if ((rc = sl_reader_refresh(u->parts[p].rd, why)) != 0)
			return rc;
	return 0;
}

/* Runs of the parts, each clipped to its own shards, merged when one
 * part's last run meets the next part's first. */
typedef struct merge {
	sl_reader_run_fn fn;
	void *arg;
	uint64_t s0, s1;        /* the current part's shards */
	uint64_t first, count;  /* the run not passed on yet */
} merge;

static int
merge_run(void *arg, uint64_t first, uint64_t count)
{
	merge *m = arg;
	uint64_t end = first + count;
	int rc;

	first = first > m->s0 ? first : m->s0;
	end = end < m->s1 ? end : m->s1;
	if (first >= end)
		return 0;
	if (m->count > 0 && m->first + m->count == first) {
		m->count += end - first;
		return 0;
	}
	if (m->count > 0 && (rc = m->fn(m->arg, m->first, m->count)) != 0)
		return rc;
	m->first = first;
	m->count = end - first;
	return 0;
}

static int
u_each_done(sl_reader *r, uint32_t teacher, sl_reader_run_fn fn, void *arg,
    sl_errmsg *why)
{
	un *u = (un *)r;
	const uint64_t sr = u->job.shard_rows;
	const int k = position(u, teacher);
	merge m = { fn, arg, 0, 0, 0, 0 };
	int rc;

	if (k < 0)
		return unknown(teacher, why);
	/* A teacher with V views reports units, shard * V + view. */
	const uint64_t per = u->teachers[k].views ? u->teachers[k].views : 1;

	for (int p = 0; p < u->nparts; p++) {
		const upart *q = &u->parts[p];

		m.s0 = q->job.rows_first / sr * per;
		m.s1 = (q->job.rows_end + sr - 1) / sr * per;
		if ((rc = sl_reader_each_done(q->rd, q->index[k], merge_run, &m,
		    why)) != 0)
			return rc;
	}
	return m.count > 0 ? fn(arg, m.first, m.count) : 0;
}

/* [from, to) within part q's rows: *lo < *hi, or nothing of it there. */
static int
clip(const upart *q, uint64_t from, uint64_t to, uint64_t *lo, uint64_t *hi)
{
	*lo = from > q->job.rows_first ? from : q->job.rows_first;
	*hi = to < q->job.rows_end ? to : q->job.rows_end;
	return *lo < *hi;
}

static int
u_each_label(sl_reader *r, uint32_t teacher, uint64_t from, uint64_t to,
    sl_store_label_fn fn, void *arg, sl_errmsg *why)
{
	un *u = (un *)r;
	const int k = position(u, teacher);
	uint64_t lo, hi;
	int rc;

	if (k < 0)
		return unknown(teacher, why);
	for (int p = 0; p < u->nparts; p++)
		if (clip(&u->parts[p], from, to, &lo, &hi) &&
		    (rc = sl_reader_each_label(u->parts[p].rd,
		    u->parts[p].index[k], lo, hi, fn, arg, why)) != 0)
			return rc;
	return 0;
}

static int
u_each_label_view(sl_reader *r, uint32_t teacher, uint64_t from, uint64_t to,
    sl_store_view_fn fn, void *arg, sl_errmsg *why)
{
	un *u = (un *)r;
	const int k = position(u, teacher);
	uint64_t lo, hi;
	int rc;

	if (k < 0)
		return unknown(teacher, why);
	for (int p = 0; p < u->nparts; p++)
		if (clip(&u->parts[p], from, to, &lo, &hi) &&
		    (rc = sl_reader_each_label_view(u->parts[p].rd,
		    u->parts[p].index[k], lo, hi, fn, arg, why)) != 0)
			return rc;
	return 0;
}

/* The part whose rows hold sample, or -1. */
static int
part_of(const un *u, uint64_t sample)
{
	for (int p = 0; p < u->nparts; p++)
		if (sample >= u->parts[p].job.rows_first &&
		    sample < u->parts[p].job.rows_end)
			return p;
	return -1;
}

/* A list is asked of the parts in stretches of consecutive samples of one
 * part, so list order holds and a remote part gets few requests. views
 * NULL: the 12-byte keys of a teacher without views. */
static int
u_get_labels_view(sl_reader *r, uint32_t teacher, const uint64_t *samples,
    const uint32_t *views, size_t n, sl_store_label_fn fn, void *arg,
    sl_errmsg *why)
{
	un *u = (un *)r;
	const int k = position(u, teacher);
	size_t i = 0;
	int rc;

	if (k < 0)
		return unknown(teacher, why);
	while (i < n) {
		const int p = part_of(u, samples[i]);
		size_t j = i + 1;

		while (j < n && part_of(u, samples[j]) == p)
			j++;
		if (p >= 0 && (rc = sl_reader_get_labels_view(u->parts[p].rd,
		    u->parts[p].index[k], samples + i, views ? views + i : NULL,
		    j - i, fn, arg, why)) != 0)
			return rc;
		i = j;
	}
	return 0;
}

static int
u_get_labels(sl_reader *r, uint32_t teacher, const uint64_t *samples,
    size_t n, sl_store_label_fn fn, void *arg, sl_errmsg *why)
{
	return u_get_labels_view(r, teacher, samples, NULL, n, fn, arg, why);
}

static void
u_close(sl_reader *r)
{
	un *u = (un *)r;

	for (int p = 0; p < u->nparts; p++) {
		sl_reader_close(&u->parts[p].rd);
		free(u->parts[p].index);
	}
	free(u->teachers);
	free(u->list);
	free(u);
}

static const struct sl_reader_ops union_ops = {
	u_job, u_teachers, u_refresh, u_each_done, u_each_label,
	u_get_labels, u_close, u_get_labels_view, u_each_label_view,
};

/* The committee of the first part: the names in committee, or all. */
static int
pick_committee(un *u, const char *committee, const sl_store_teacher *all,
    size_t nall, sl_errmsg *why)
{
	char *copy, *save = NULL;
	int rc = 0;

	if ((u->teachers = calloc(nall ? nall : 1, sizeof *u->teachers)) ==
	    NULL)
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	if (committee == NULL) {
		memcpy(u->teachers, all, nall * sizeof *all);
		u->nteachers = (int)nall;
		return 0;
	}
	if ((copy = strdup(committee)) == NULL)
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	for (char *t = strtok_r(copy, ",", &save); t != NULL && rc == 0;
	    t = strtok_r(NULL, ",", &save)) {
		size_t j;

		for (int i = 0; i < u->nteachers && rc == 0; i++)
			if (strcmp(u->teachers[i].name, t) == 0)
				rc = sl_errmsg_set(why, SL_EINVAL, "teacher '%s' "
				    "named twice", t);
		for (j = 0; j < nall && strcmp(all[j].name, t) != 0; j++)
			;
		if (rc == 0 && j == nall)
			rc = sl_errmsg_set(why, SL_ENOTFOUND, "no teacher '%s' in "
			    "%s", t, u->parts[0].name);
		if (rc == 0)
			u->teachers[u->nteachers++] = all[j];
	}
	free(copy);
	return rc;
}

/* Open part p and fill its job and committee indices (the committee is
 * picked from part 0). */
static int
open_part(un *u, int p, const char *committee, const sl_reader_opts *o,
    sl_store_teacher *all, sl_store_teacher *mine, sl_errmsg *why)
{
	upart *q = &u->parts[p];
	sl_errmsg e = { "" };
	size_t nall;
	int rc;

	/* A part named twice is one directory: LMDB must not open it twice
	 * in a process (sl_store.h); its twin's job makes the overlap that
	 * refuses the list. */
	for (int d = 0; d < p; d++)
		if (strcmp(u->parts[d].name, q->name) == 0) {
			q->job = u->parts[d].job;
			if ((q->index = calloc((size_t)u->nteachers + 1,
			    sizeof *q->index)) == NULL)
				return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
			memcpy(q->index, u->parts[d].index,
			    (size_t)u->nteachers * sizeof *q->index);
			return 0;
		}
	if ((rc = sl_reader_open(q->name, o, &q->rd, &e)) != 0 ||
	    (rc = sl_reader_job(q->rd, &q->job, &e)) != 0 ||
	    (rc = sl_reader_teachers(q->rd, all, SL_STORE_MAX_TEACHERS, &nall,
	    &e)) != 0)
		return sl_errmsg_set(why, rc, "%s: %s", q->name, e.text);
	if (p == 0 && (rc = pick_committee(u, committee, all, nall, why)) != 0)
		return rc;
	if ((q->index = calloc((size_t)u->nteachers + 1, sizeof *q->index)) ==
	    NULL)
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	if ((rc = sl_reader_parts_match(u->parts[0].name, q->name, u->teachers,
	    u->nteachers, all, nall, mine, why)) != 0)
		return rc;
	for (int i = 0; i < u->nteachers; i++)
		q->index[i] = mine[i].index;
	return 0;
}

static int
by_rows(const void *a, const void *b)
{
	const upart *x = a, *y = b;

	return x->job.rows_first < y->job.rows_first ? -1 :
	    x->job.rows_first > y->job.rows_first;
}

int
sl_reader_union_open(const char *list, const char *committee,
    const sl_reader_opts *o, sl_reader **out, sl_errmsg *why)
{
	const char *names[SL_READER_MAX_PARTS];
	sl_store_job jobs[SL_READER_MAX_PARTS];
	sl_store_teacher *all = NULL, *mine = NULL;
	char *save = NULL;
	un *u;
	int rc = 0;

	if ((u = calloc(1, sizeof *u)) == NULL ||
	    (u->list = strdup(list)) == NULL ||
	    (all = calloc(SL_STORE_MAX_TEACHERS, sizeof *all)) == NULL ||
	    (mine = calloc(SL_STORE_MAX_TEACHERS, sizeof *mine)) == NULL) {
		rc = sl_errmsg_set(why, SL_ENOMEM, "out of memory");
		goto fail;
	}
	u->base.ops = &union_ops;
	for (char *t = strtok_r(u->list, ",", &save); t != NULL;
	    t = strtok_r(NULL, ",", &save)) {
		if (u->nparts == SL_READER_MAX_PARTS) {
			rc = sl_errmsg_set(why, SL_EINVAL, "'%s' lists more than "
			    "%d caches", list, SL_READER_MAX_PARTS);
			goto fail;
		}
		u->parts[u->nparts++].name = t;
	}
	if (u->nparts == 0) {
		rc = sl_errmsg_set(why, SL_EINVAL, "'%s' is not a cache or a "
		    "list of 1 to %d caches", list, SL_READER_MAX_PARTS);
		goto fail;
	}
	for (int p = 0; p < u->nparts; p++)
		if ((rc = open_part(u, p, committee, o, all, mine, why)) != 0)
			goto fail;
	for (int p = 0; p < u->nparts; p++) {
		names[p] = u->parts[p].name;
		jobs[p] = u->parts[p].job;
	}
	if ((rc = sl_reader_parts_check(names, jobs, u->nparts, why)) != 0)
		goto fail;
	/* The first part as given is the job's face; dispatch wants rows
	 * order. */
	u->job = u->parts[0].job;
	qsort(u->parts, (size_t)u->nparts, sizeof *u->parts, by_rows);
	u->job.rows_first = u->parts[0].job.rows_first;
	u->job.rows_end = 0;
	for (int p = 0; p < u->nparts; p++)
		if (u->parts[p].job.rows_end > u->job.rows_end)
			u->job.rows_end = u->parts[p].job.rows_end;
	free(all);
	free(mine);
	*out = &u->base;
	return 0;
fail:
	free(all);
	free(mine);
	if (u != NULL)
		u_close(&u->base);
	return rc;
}

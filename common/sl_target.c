#include "sl_target.h"
#include "sl_label.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

/* The T = 1 committee mean lives in a second matrix, kept next to p. */
typedef struct build_ctx {
	sl_target_set *t;
	const sl_store_teacher *teacher;
	float w;
	float T;
	uint32_t shard_rows;
	uint64_t nshards;
	const uint8_t *mask;  /* this teacher's row of the mask */
	float *p1;            /* (rows, classes) committee mean at T = 1 */
	uint8_t *count;       /* (rows) teachers that contributed */
	float *tmp;           /* (classes) */
	int skip_corrupt;
	sl_errmsg *why;
	int failed;
} build_ctx;

int
sl_target_init(sl_target_set *t, uint64_t rows, uint32_t classes)
{
	const size_t n = (size_t)rows * classes;

	memset(t, 0, sizeof *t);
	if (rows == 0 || classes < 2)
		return SL_EINVAL;
	t->rows = rows;
	t->classes = classes;
	/* p holds both matrices: [0, n) at T, [n, 2n) at T = 1. */
	t->p = malloc(2 * n * sizeof *t->p);
	t->has = calloc(rows, 1);
	t->conf = malloc(rows * sizeof *t->conf);
	t->top = malloc(rows * sizeof *t->top);
	if (!t->p || !t->has || !t->conf || !t->top) {
		sl_target_fini(t);
		return SL_ENOMEM;
	}
	return 0;
}

void
sl_target_fini(sl_target_set *t)
{
	if (t == NULL)
		return;
	free(t->p);
	free(t->has);
	free(t->conf);
	free(t->top);
	memset(t, 0, sizeof *t);
}

static int
collect_done(void *arg, uint64_t first, uint64_t count)
{
	uint8_t *row = ((void **)arg)[0];
	const uint64_t nshards = *(const uint64_t *)((void **)arg)[1];

	for (uint64_t shard = first; shard - first < count && shard < nshards;
	    shard++)
		row[shard] = 1;
	return 0;
}

/* A teacher with V views: shard s is done when its units s * V .. s * V +
 * V - 1 all are. Runs are merged while they touch (a reader may split
 * one), and a merged run [first, end) marks the shards it covers whole;
 * a call with count 0 flushes the last one. */
typedef struct units_done {
	uint8_t *row;
	uint64_t nshards;
	uint32_t V;
	uint64_t first, end; /* the run being merged; end 0: none */
} units_done;

static int
collect_units(void *arg, uint64_t first, uint64_t count)
{
	units_done *u = arg;

	if (count > 0 && u->end != 0 && first == u->end) {
		u->end += count;
		return 0;
	}
	if (u->end != 0)
		for (uint64_t s = (u->first + u->V - 1) / u->V;
		    s < u->nshards && (s + 1) * u->V <= u->end; s++)
			u->row[s] = 1;
	u->first = first;
	u->end = count > 0 ? first + count : 0;
	return 0;
}

int
sl_target_mask_done(sl_reader *rd, const sl_store_teacher *teachers,
    int nteachers, uint64_t nshards, uint8_t *mask, sl_errmsg *why)
{
	memset(mask, 0, (size_t)nteachers * nshards);
	for (int i = 0; i < nteachers; i++) {
		void *arg[2] = { mask + (size_t)i * nshards, &nshards };
		units_done u = { mask + (size_t)i * nshards, nshards,
		    teachers[i].views, 0, 0 };
		sl_errmsg inner = { "" };
		int rc = teachers[i].views == 0 ?
		    sl_reader_each_done(rd, teachers[i].index, collect_done,
		    arg, &inner) : sl_reader_each_done(rd, teachers[i].index,
		    collect_units, &u, &inner);

		if (rc == 0 && teachers[i].views != 0)
			rc = collect_units(&u, 0, 0);

		if (rc != 0)
			return sl_errmsg_set(why, rc, "teacher %s: cannot read its "
			    "shards: %s", teachers[i].name, inner.text[0] ?
			    inner.text : sl_strerror(rc));
	}
	return 0;
}

static int
add_record(void *arg, uint64_t s, const void *rec, size_t len)
{
	build_ctx *c = arg;
	sl_target_set *t = c->t;
	const uint32_t C = t->classes;
	sl_errmsg why = { "" };

	if (s >= t->rows || s / c->shard_rows >= c->nshards ||
	    !c->mask[s / c->shard_rows])
		return 0;
	if (sl_label_check(rec, len, &c->teacher->fmt, NULL, &why) != 0) {
		if (c->skip_corrupt) {
			t->corrupt++;
			return 0;
		}
		sl_errmsg_set(c->why, SL_ECORRUPT, "teacher %s sample %llu: %s",
		    c->teacher->name, (unsigned long long)s, why.text);
		c->failed = SL_ECORRUPT;
		return 1;
	}
	float *p = t->p + (size_t)s * C, *p1 = c->p1 + (size_t)s * C;

	sl_label_probs(rec, c->teacher->temperature, c->T, c->tmp);
	for (uint32_t k = 0; k < C; k++)
		p[k] += c->w * c->tmp[k];
	sl_label_probs(rec, c->teacher->temperature, 1.0f, c->tmp);
	for (uint32_t k = 0; k < C; k++)
		p1[k] += c->w * c->tmp[k];
	c->count[s]++;
	return 0;
}

int
sl_target_build(sl_target_set *t, sl_reader *rd,
    const sl_store_teacher *teachers, const float *weights, int nteachers,
    uint32_t shard_rows, uint64_t nshards, const uint8_t *mask, float T,
    int skip_corrupt, sl_errmsg *why)
{
	const uint32_t C = t->classes;
	const size_t n = (size_t)t->rows * C;
	double wsum = 0; /* double: huge finite float weights must not sum to
	                  * inf (every normalised weight would become 0) */
	build_ctx c;
	int rc = 0;

	if (nteachers < 1 || nteachers > SL_TARGET_MAX_TEACHERS || !(T > 0))
		return sl_errmsg_set(why, SL_EINVAL, "need 1 to %d teachers and "
		    "T > 0", SL_TARGET_MAX_TEACHERS);
	/* add_record divides sample numbers by shard_rows. */
	if (shard_rows == 0)
		return sl_errmsg_set(why, SL_EINVAL, "shard_rows is 0");
	for (int i = 0; i < nteachers; i++) {
		if (teachers[i].fmt.classes != C)
			return sl_errmsg_set(why, SL_EMISMATCH, "teacher %s has %u "
			    "classes, the student %u", teachers[i].name,
			    teachers[i].fmt.classes, C);
		if (teachers[i].views != 0)
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "teacher %s has "
			    "%u views: the in-memory targets hold one record per "
			    "row (use sl_target_view)", teachers[i].name,
			    teachers[i].views);
		if (weights != NULL && !(weights[i] >= 0 &&
		    weights[i] <= FLT_MAX))
			return sl_errmsg_set(why, SL_EINVAL, "weight %d is not "
			    "finite and >= 0", i);
		wsum += weights ? (double)weights[i] : 1.0;
	}
	if (!(wsum > 0))
		return sl_errmsg_set(why, SL_EINVAL, "teacher weights sum to 0");

	memset(&c, 0, sizeof c);
	c.count = calloc(t->rows, 1);
	c.tmp = malloc(C * sizeof *c.tmp);
	if (c.count == NULL || c.tmp == NULL) {
		rc = sl_errmsg_set(why, SL_ENOMEM, "out of memory");
		goto out;
	}
	memset(t->p, 0, 2 * n * sizeof *t->p);
	t->corrupt = 0;
	c.t = t;
	c.T = T;
	c.shard_rows = shard_rows;
	c.nshards = nshards;
	c.p1 = t->p + n;
	c.skip_corrupt = skip_corrupt;
	c.why = why;
	for (int i = 0; i < nteachers && rc == 0; i++) {
		c.teacher = &teachers[i];
		c.w = (float)((weights ? (double)weights[i] : 1.0) / wsum);
		c.mask = mask + (size_t)i * nshards;
		sl_errmsg inner = { "" };

		rc = sl_reader_each_label(rd, teachers[i].index, 0, t->rows,
		    add_record, &c, &inner);
		if (c.failed)
			rc = c.failed;
		else if (rc != 0)
			sl_errmsg_set(why, rc, "teacher %s: cannot read its records: "
			    "%s", teachers[i].name, inner.text[0] ? inner.text :
			    sl_strerror(rc));
	}
	if (rc != 0)
		goto out;

	t->nhas = 0;
	for (uint64_t s = 0; s < t->rows; s++) {
		const float *p1 = c.p1 + (size_t)s * C;
		int32_t best = 0;

		t->has[s] = c.count[s] == nteachers;
		t->nhas += t->has[s];
		for (uint32_t k = 1; k < C; k++)
			if (p1[k] > p1[best])
				best = (int32_t)k;
		t->top[s] = best;
		t->conf[s] = t->has[s] ? p1[best] : 0.0f;
	}
out:
	free(c.count);
	free(c.tmp);
	return rc;
}

/* Balancing candidates are (key, row) pairs of uint64: key = class << 32 |
 * the confidence's order bits inverted (most confident first), so sorting
 * pairs orders each class by confidence and ties by row. Exact for every
 * float, and no limit on the number of candidates. */
static int
cmp_cand(const void *a, const void *b)
{
	const uint64_t *x = a, *y = b;

	if (x[0] != y[0])
		return x[0] > y[0] ? 1 : -1;
	return (x[1] > y[1]) - (x[1] < y[1]);
}

/* A float's bits mapped so that unsigned order is numeric order (NaN
 * never gets here: it fails the min_conf comparison). */
static uint32_t
conf_order(float f)
{
	uint32_t u;

	if (f == 0.0f)
		f = 0.0f; /* -0 ranks with +0 */
	memcpy(&u, &f, sizeof u);
	return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

uint64_t
sl_target_select(const sl_target_set *t, const int32_t *labels,
    size_t nlabels, float min_conf, uint64_t balance, uint8_t *keep,
    uint64_t *scratch)
{
	uint64_t kept = 0, ncand = 0;

	for (uint64_t s = 0; s < t->rows; s++) {
		const int labeled = s < nlabels && labels[s] >= 0;

		keep[s] = 0;
		if (!t->has[s])
			continue;
		if (labeled) {
			keep[s] = 1;
			kept++;
		} else if (t->conf[s] >= min_conf) {
			keep[s] = 1;
			kept++;
			scratch[2 * ncand] = (uint64_t)(uint32_t)t->top[s] << 32 |
			    (uint64_t)~conf_order(t->conf[s]);
			scratch[2 * ncand + 1] = s;
			ncand++;
		}
	}
	if (balance == 0 || balance >= ncand)
		return kept;

	/* Per class, keep the `balance` most confident unlabeled rows. */
	qsort(scratch, ncand, 2 * sizeof *scratch, cmp_cand);
	uint64_t per = 0, last_cls = UINT64_MAX;
	for (uint64_t i = 0; i < ncand; i++) {
		const uint64_t cls = scratch[2 * i] >> 32;
		const uint64_t s = scratch[2 * i + 1];

		per = cls == last_cls ? per + 1 : 1;
		last_cls = cls;
		if (per > balance) {
			keep[s] = 0;
			kept--;
		}
	}
	return kept;
}

/* --- out of core: the view -------------------------------------------------- */

/* A view index every teacher of the committee can answer: below V for
 * a teacher with V views, 0 for one without (its one record per row). */
static int
view_ok(const sl_target_view *v, uint32_t view, sl_errmsg *why)
{
	const sl_target_part *part = &v->parts[0];

	for (int i = 0; i < v->nteachers; i++) {
		const sl_store_teacher *t = &part->teachers[i];

		if (t->views == 0 && view != 0)
			return sl_errmsg_set(why, SL_EINVAL, "view %u asked of "
			    "teacher %s, which has no views", view, t->name);
		if (t->views != 0 && view >= t->views)
			return sl_errmsg_set(why, SL_EINVAL, "view %u asked of "
			    "teacher %s, which has %u views", view, t->name,
			    t->views);
	}
	return 0;
}

/* Room for a gather of n rows. */
static int
reserve(sl_target_view *v, size_t n)
{
	uint64_t *ids, *pids;
	size_t *slot, *pslot;
	uint32_t *pvids;

	if (n <= v->cap)
		return 0;
	if ((pvids = realloc(v->pvids, n * sizeof *pvids)) == NULL)
		return SL_ENOMEM;
	v->pvids = pvids;
	if ((ids = realloc(v->ids, n * sizeof *ids)) == NULL)
		return SL_ENOMEM;
	v->ids = ids;
	if ((pids = realloc(v->pids, n * sizeof *pids)) == NULL)
		return SL_ENOMEM;
	v->pids = pids;
	if ((slot = realloc(v->slot, n * sizeof *slot)) == NULL)
		return SL_ENOMEM;
	v->slot = slot;
	if ((pslot = realloc(v->pslot, n * sizeof *pslot)) == NULL)
		return SL_ENOMEM;
	v->pslot = pslot;
	v->cap = n;
	return 0;
}

int
sl_target_view_init(sl_target_view *v, uint64_t rows, uint32_t classes)
{
	memset(v, 0, sizeof *v);
	if (rows == 0 || classes < 2)
		return SL_EINVAL;
	v->rows = rows;
	v->classes = classes;
	v->has = calloc(rows, 1);
	v->tmp = malloc(classes * sizeof *v->tmp);
	v->chunk = malloc((size_t)SL_TARGET_CHUNK * classes * sizeof *v->chunk);
	if (!v->has || !v->tmp || !v->chunk || reserve(v, SL_TARGET_CHUNK) != 0) {
		sl_target_view_fini(v);
		return SL_ENOMEM;
	}
	return 0;
}

void
sl_target_view_fini(sl_target_view *v)
{
	if (v == NULL)
		return;
	free(v->has);
	free(v->tmp);
	free(v->ids);
	free(v->slot);
	free(v->pids);
	free(v->pslot);
	free(v->pvids);
	free(v->chunk);
	memset(v, 0, sizeof *v);
}

typedef struct view_ctx {
	sl_target_view *v;
	const sl_store_teacher *teacher;
	uint32_t shard_rows;
	uint64_t nshards;
	const uint8_t *mask; /* this teacher's row of the mask */
	int skip_corrupt;
	sl_errmsg *why;
	int failed;
	/* count_view: the sample whose views are being counted */
	uint64_t vsample;
	uint32_t vcount;
	int vbad;
} view_ctx;

/* Count the teacher's usable records per row into has[] (a count until the
 * build turns it into 0/1): the checks and skips of add_record. */
static int
count_record(void *arg, uint64_t s, const void *rec, size_t len)
{
	view_ctx *c = arg;
	sl_errmsg why = { "" };

	if (s >= c->v->rows || s / c->shard_rows >= c->nshards ||
	    !c->mask[s / c->shard_rows])
		return 0;
	if (sl_label_check(rec, len, &c->teacher->fmt, NULL, &why) != 0) {
		if (c->skip_corrupt) {
			c->v->corrupt++;
			return 0;
		}
		sl_errmsg_set(c->why, SL_ECORRUPT, "teacher %s sample %llu: %s",
		    c->teacher->name, (unsigned long long)s, why.text);
		c->failed = SL_ECORRUPT;
		return 1;
	}
	c->v->has[s]++;
	return 0;
}

/* A teacher with views: a row counts (has[s]++) when all V of its views
 * pass their checks. Records come in (sample, view) order; the count of
 * the current sample is flushed when the sample changes (and at the end:
 * count_view_flush). A view at or past V is a record the registration
 * does not allow: corrupt. */
static void
count_view_flush(view_ctx *c)
{
	if (c->vcount == c->teacher->views && c->vcount > 0)
		c->v->has[c->vsample]++;
	c->vcount = 0;
}

static int
count_view(void *arg, uint64_t s, uint32_t view, const void *rec, size_t len)
{
	view_ctx *c = arg;
	sl_errmsg why = { "" };

	if (s >= c->v->rows || s / c->shard_rows >= c->nshards ||
	    !c->mask[s / c->shard_rows])
		return 0;
	if (s != c->vsample) {
		count_view_flush(c);
		c->vsample = s;
		c->vbad = 0;
	}
	if (view >= c->teacher->views ||
	    sl_label_check(rec, len, &c->teacher->fmt, NULL, &why) != 0) {
		if (c->skip_corrupt) {
			c->v->corrupt++;
			c->vbad = 1;
			c->vcount = 0;
			return 0;
		}
		if (view >= c->teacher->views)
			sl_errmsg_set(&why, SL_ECORRUPT, "a view %u of a teacher "
			    "with %u views", view, c->teacher->views);
		sl_errmsg_set(c->why, SL_ECORRUPT, "teacher %s sample %llu view "
		    "%u: %s", c->teacher->name, (unsigned long long)s, view,
		    why.text);
		c->failed = SL_ECORRUPT;
		return 1;
	}
	if (!c->vbad)
		c->vcount++;
	return 0;
}

int
sl_target_view_build_parts(sl_target_view *v, const sl_target_part *parts,
    int nparts, const float *weights, int nteachers, uint32_t shard_rows,
    uint64_t nshards, const uint8_t *mask, float T, int skip_corrupt,
    sl_errmsg *why)
{
	double wsum = 0; /* as sl_target_build */
	view_ctx c;
	int rc = 0;

	if (nparts < 1 || nparts > SL_TARGET_MAX_PARTS)
		return sl_errmsg_set(why, SL_EINVAL, "need 1 to %d caches",
		    SL_TARGET_MAX_PARTS);
	if (nteachers < 1 || nteachers > SL_TARGET_MAX_TEACHERS || !(T > 0))
		return sl_errmsg_set(why, SL_EINVAL, "need 1 to %d teachers and "
		    "T > 0", SL_TARGET_MAX_TEACHERS);
	if (shard_rows == 0)
		return sl_errmsg_set(why, SL_EINVAL, "shard_rows is 0");
	for (int i = 0; i < nteachers; i++) {
		for (int p = 0; p < nparts; p++)
			if (parts[p].teachers[i].fmt.classes != v->classes)
				return sl_errmsg_set(why, SL_EMISMATCH, "teacher %s "
				    "has %u classes, the student %u",
				    parts[p].teachers[i].name,
				    parts[p].teachers[i].fmt.classes, v->classes);
		if (weights != NULL && !(weights[i] >= 0 &&
		    weights[i] <= FLT_MAX))
			return sl_errmsg_set(why, SL_EINVAL, "weight %d is not "
			    "finite and >= 0", i);
		wsum += weights ? (double)weights[i] : 1.0;
	}
	if (!(wsum > 0))
		return sl_errmsg_set(why, SL_EINVAL, "teacher weights sum to 0");

	memset(v->has, 0, (size_t)v->rows);
	v->corrupt = 0;
	v->nhas = 0;
	v->nparts = 0;
	v->nteachers = nteachers;
	v->T = T;
	memset(&c, 0, sizeof c);
	c.v = v;
	c.shard_rows = shard_rows;
	c.nshards = nshards;
	c.skip_corrupt = skip_corrupt;
	c.why = why;
	for (int i = 0; i < nteachers; i++) /* the same float as sl_target_build */
		v->w[i] = (float)((weights ? (double)weights[i] : 1.0) / wsum);
	for (int p = 0; p < nparts && rc == 0; p++) {
		const uint64_t end = parts[p].row_end < v->rows ?
		    parts[p].row_end : v->rows;

		for (int i = 0; i < nteachers && rc == 0; i++) {
			sl_errmsg inner = { "" };

			c.teacher = &parts[p].teachers[i];
			c.mask = mask + (size_t)i * nshards;
			c.vcount = 0;
			c.vbad = 0;
			if (c.teacher->views == 0) {
				rc = sl_reader_each_label(parts[p].rd,
				    c.teacher->index, parts[p].row_first, end,
				    count_record, &c, &inner);
			} else {
				rc = sl_reader_each_label_view(parts[p].rd,
				    c.teacher->index, parts[p].row_first, end,
				    count_view, &c, &inner);
				if (rc == 0 && !c.failed)
					count_view_flush(&c);
			}
			if (c.failed)
				rc = c.failed;
			else if (rc != 0)
				sl_errmsg_set(why, rc, "teacher %s: cannot read its "
				    "records: %s", c.teacher->name, inner.text[0] ?
				    inner.text : sl_strerror(rc));
		}
	}
	if (rc != 0)
		return rc; /* nparts stays 0: no gather from a failed build */
	for (uint64_t s = 0; s < v->rows; s++) {
		v->has[s] = v->has[s] == nteachers;
		v->nhas += v->has[s];
	}
	memcpy(v->parts, parts, (size_t)nparts * sizeof *parts);
	v->nparts = nparts;
	return 0;
}

int
sl_target_view_build(sl_target_view *v, sl_reader *rd,
    const sl_store_teacher *teachers, const float *weights, int nteachers,
    uint32_t shard_rows, uint64_t nshards, const uint8_t *mask, float T,
    int skip_corrupt, sl_errmsg *why)
{
	const sl_target_part one = { rd, teachers, 0, v->rows };

	return sl_target_view_build_parts(v, &one, 1, weights, nteachers,
	    shard_rows, nshards, mask, T, skip_corrupt, why);
}

/* One teacher's records of a gather, in list order: each adds w * p(T)
 * to its row of out. */
typedef struct add_ctx {
	sl_target_view *v;
	const sl_store_teacher *t;
	float w, T;
	float *out;        /* (n, classes) */
	const uint64_t *ids;
	const size_t *slot; /* ids[j]'s row of out */
	size_t next;       /* the list position the next record should have */
	size_t m;          /* list length */
	sl_errmsg *why;
	int failed;
} add_ctx;

static int
add_to_row(void *arg, uint64_t s, const void *rec, size_t len)
{
	add_ctx *c = arg;
	sl_target_view *v = c->v;
	sl_errmsg w2 = { "" };

	/* Present records only come back: one that skips a position means
	 * that row's record is gone. */
	if (c->next >= c->m || c->ids[c->next] != s) {
		c->failed = sl_errmsg_set(c->why, SL_ECORRUPT, "teacher %s sample "
		    "%llu: no record since the targets were built", c->t->name,
		    (unsigned long long)(c->next < c->m ? c->ids[c->next] : s));
		return 1;
	}
	if (sl_label_check(rec, len, &c->t->fmt, NULL, &w2) != 0) {
		c->failed = sl_errmsg_set(c->why, SL_ECORRUPT, "teacher %s sample "
		    "%llu: the record changed since the targets were built",
		    c->t->name, (unsigned long long)s);
		return 1;
	}
	sl_label_probs(rec, c->t->temperature, c->T, v->tmp);
	float *row = c->out + c->slot[c->next] * v->classes;
	for (uint32_t k = 0; k < v->classes; k++)
		row[k] += c->w * v->tmp[k];
	c->next++;
	return 0;
}

/* The committee means of v->ids[0..m) at temperature T into the rows
 * v->slot[] of out, with the operations of sl_target_build in its order
 * (0, then += w * p per teacher in committee order): per cache, one
 * request per teacher for the rows it holds. */
static int
committee_rows(sl_target_view *v, size_t m, const uint32_t *views, float T,
    float *out, sl_errmsg *why)
{
	const uint32_t C = v->classes;

	for (size_t j = 0; j < m; j++)
		memset(out + v->slot[j] * C, 0, C * sizeof *out);
	for (int p = 0; p < v->nparts && m > 0; p++) {
		const sl_target_part *part = &v->parts[p];
		size_t mp = 0;

		for (size_t j = 0; j < m; j++)
			if (v->ids[j] >= part->row_first && v->ids[j] < part->row_end) {
				v->pids[mp] = v->ids[j];
				v->pslot[mp++] = v->slot[j];
			}
		for (int i = 0; i < v->nteachers && mp > 0; i++) {
			add_ctx c = { v, &part->teachers[i], v->w[i], T, out, v->pids,
			    v->pslot, 0, mp, why, 0 };
			sl_errmsg inner = { "" };
			int rc;

			if (c.t->views == 0) {
				rc = sl_reader_get_labels(part->rd, c.t->index,
				    v->pids, mp, add_to_row, &c, &inner);
			} else {
				/* The batch's views, or view 0 (the select pass). */
				for (size_t j = 0; j < mp; j++)
					v->pvids[j] = views != NULL ?
					    views[v->pslot[j]] : 0;
				rc = sl_reader_get_labels_view(part->rd, c.t->index,
				    v->pids, v->pvids, mp, add_to_row, &c, &inner);
			}

			if (c.failed)
				return c.failed;
			if (rc != 0)
				return sl_errmsg_set(why, rc, "teacher %s: cannot read "
				    "its records: %s", c.t->name, inner.text[0] ?
				    inner.text : sl_strerror(rc));
			if (c.next != mp)
				return sl_errmsg_set(why, SL_ECORRUPT, "teacher %s "
				    "sample %llu: no record since the targets were "
				    "built", c.t->name,
				    (unsigned long long)v->pids[c.next]);
		}
	}
	return 0;
}

int
sl_target_view_gather(sl_target_view *v, const size_t *rows, size_t n,
    float *p /* (n, classes) */, uint8_t *has /* (n) */, sl_errmsg *why)
{
	return sl_target_view_gather_views(v, rows, NULL, n, p, has, why);
}

int
sl_target_view_gather_views(sl_target_view *v, const size_t *rows,
    const uint32_t *views, size_t n, float *p /* (n, classes) */,
    uint8_t *has /* (n) */, sl_errmsg *why)
{
	size_t m = 0;

	int rc;

	if (v->nparts == 0)
		return sl_errmsg_set(why, SL_EINVAL, "no targets built");
	if (reserve(v, n) != 0)
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory for a batch "
		    "of %zu rows", n);
	for (size_t i = 0; i < n; i++) {
		if (rows[i] >= v->rows)
			return sl_errmsg_set(why, SL_EINVAL, "row %zu is past the "
			    "dataset's %llu", rows[i], (unsigned long long)v->rows);
		if (views != NULL && (rc = view_ok(v, views[i], why)) != 0)
			return rc;
		has[i] = v->has[rows[i]];
		if (has[i]) {
			v->ids[m] = rows[i];
			v->slot[m++] = i;
		}
	}
	return committee_rows(v, m, views, v->T, p, why);
}

/* Per-class bounded max-heaps of (key, row) pairs: the `balance` smallest
 * pairs of each class, i.e. its most confident rows, ties by lower row. */
typedef struct class_heap {
	uint64_t *pairs; /* (cap, 2) */
	size_t n, cap;
} class_heap;

static int
pair_gt(const uint64_t *a, const uint64_t *b)
{
	return cmp_cand(a, b) > 0;
}

static void
pair_swap(uint64_t *a, uint64_t *b)
{
	uint64_t t0 = a[0], t1 = a[1];

	a[0] = b[0];
	a[1] = b[1];
	b[0] = t0;
	b[1] = t1;
}

static void
heap_up(class_heap *h, size_t i)
{
	while (i > 0) {
		size_t up = (i - 1) / 2;

		if (!pair_gt(h->pairs + 2 * i, h->pairs + 2 * up))
			break;
		pair_swap(h->pairs + 2 * i, h->pairs + 2 * up);
		i = up;
	}
}

static void
heap_down(class_heap *h, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, big = i;

		if (l < h->n && pair_gt(h->pairs + 2 * l, h->pairs + 2 * big))
			big = l;
		if (r < h->n && pair_gt(h->pairs + 2 * r, h->pairs + 2 * big))
			big = r;
		if (big == i)
			return;
		pair_swap(h->pairs + 2 * i, h->pairs + 2 * big);
		i = big;
	}
}

/* Offer (key, s) to h, bounded at balance. Returns the row evicted (or s
 * itself when it is not taken), UINT64_MAX when nothing leaves, or
 * UINT64_MAX - 1 when out of memory. */
static uint64_t
heap_offer(class_heap *h, uint64_t balance, uint64_t key, uint64_t s)
{
	const uint64_t pair[2] = { key, s };
	uint64_t out;

	if (h->n < balance) {
		if (h->n == h->cap) {
			size_t cap = h->cap ? 2 * h->cap : 64;
			uint64_t *p;

			if (cap > balance)
				cap = (size_t)balance;
			if ((p = realloc(h->pairs, cap * 2 * sizeof *p)) == NULL)
				return UINT64_MAX - 1;
			h->pairs = p;
			h->cap = cap;
		}
		h->pairs[2 * h->n] = key;
		h->pairs[2 * h->n + 1] = s;
		heap_up(h, h->n++);
		return UINT64_MAX;
	}
	if (!pair_gt(h->pairs, pair))
		return s; /* not better than the worst kept */
	out = h->pairs[1];
	h->pairs[0] = key;
	h->pairs[1] = s;
	heap_down(h, 0);
	return out;
}

/* The select pass's decisions for the m rows in v->ids, whose committee
 * rows at T = 1 are in v->chunk, in row order (as sl_target_select offers
 * them). */
static int
select_chunk(sl_target_view *v, size_t m, float min_conf, uint64_t balance,
    class_heap *heaps, uint8_t *keep, uint64_t *n, sl_errmsg *why)
{
	for (size_t j = 0; j < m; j++) {
		const uint64_t s = v->ids[j];
		const float *acc = v->chunk + j * v->classes;
		uint32_t best = 0;
		float conf;

		for (uint32_t k = 1; k < v->classes; k++)
			if (acc[k] > acc[best])
				best = k;
		conf = acc[best];
		if (!(conf >= min_conf))
			continue;
		keep[s] = 1;
		(*n)++;
		if (balance > 0) {
			const uint64_t out = heap_offer(&heaps[best], balance,
			    (uint64_t)~conf_order(conf) & 0xffffffffu, s);

			if (out == UINT64_MAX - 1)
				return sl_errmsg_set(why, SL_ENOMEM, "out of memory "
				    "for --balance %llu", (unsigned long long)balance);
			if (out != UINT64_MAX) {
				keep[out] = 0;
				(*n)--;
			}
		}
	}
	return 0;
}

int
sl_target_view_select(sl_target_view *v, const int32_t *labels,
    size_t nlabels, float min_conf, uint64_t balance, uint8_t *keep,
    uint64_t *kept, sl_errmsg *why)
{
	const int need_conf = !(min_conf <= 0.0f) || balance > 0;
	class_heap *heaps = NULL;
	uint64_t n = 0;
	size_t m = 0;
	int rc = 0;

	if (need_conf && v->nparts == 0)
		return sl_errmsg_set(why, SL_EINVAL, "no targets built");
	if (balance > 0 && (heaps = calloc(v->classes, sizeof *heaps)) == NULL)
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	for (uint64_t s = 0; s < v->rows; s++) {
		const int labeled = s < nlabels && labels[s] >= 0;

		keep[s] = 0;
		if (!v->has[s])
			continue;
		if (labeled || !need_conf) {
			/* Unlabeled with min_conf <= 0: a confidence >= 0 always
			 * passes, as in sl_target_select. */
			keep[s] = 1;
			n++;
			continue;
		}
		v->ids[m] = s;
		v->slot[m] = m;
		if (++m == SL_TARGET_CHUNK) {
			if ((rc = committee_rows(v, m, NULL, 1.0f, v->chunk, why)) != 0 ||
			    (rc = select_chunk(v, m, min_conf, balance, heaps, keep,
			    &n, why)) != 0)
				goto out;
			m = 0;
		}
	}
	if (m > 0 && ((rc = committee_rows(v, m, NULL, 1.0f, v->chunk, why)) != 0 ||
	    (rc = select_chunk(v, m, min_conf, balance, heaps, keep, &n,
	    why)) != 0))
		goto out;
	*kept = n;
out:
	for (uint32_t k = 0; heaps != NULL && k < v->classes; k++)
		free(heaps[k].pairs);
	free(heaps);
	return rc;
}

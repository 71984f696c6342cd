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

int
sl_target_mask_done(sl_reader *rd, const sl_store_teacher *teachers,
    int nteachers, uint64_t nshards, uint8_t *mask, sl_errmsg *why)
{
	memset(mask, 0, (size_t)nteachers * nshards);
	for (int i = 0; i < nteachers; i++) {
		void *arg[2] = { mask + (size_t)i * nshards, &nshards };
		sl_errmsg inner = { "" };
		int rc = sl_reader_each_done(rd, teachers[i].index, collect_done,
		    arg, &inner);

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

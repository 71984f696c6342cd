#include "distill.h"
#include "sl_fingerprint.h"
#include "sl_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Split a comma list in place into at most max items. */
static int
split(char *s, char **items, int max)
{
	int n = 0;

	for (char *tok = strtok(s, ","); tok != NULL; tok = strtok(NULL, ",")) {
		if (n == max)
			return -1;
		items[n++] = tok;
	}
	return n;
}

static int
resolve_teachers(distill *d, const sl_store_teacher *all, size_t nall)
{
	const distill_cfg *c = d->cfg;
	char list[2048], *names[SL_TARGET_MAX_TEACHERS + 1];
	int n;

	if (c->teachers == NULL) {
		if (nall == 0 || nall > SL_TARGET_MAX_TEACHERS) {
			sl_error("%s: %zu teachers registered; name up to %d with "
			    "--teacher", c->store, nall, SL_TARGET_MAX_TEACHERS);
			return SL_EINVAL;
		}
		for (size_t i = 0; i < nall; i++)
			d->teachers[i] = all[i];
		d->nteachers = (int)nall;
		return 0;
	}
	snprintf(list, sizeof list, "%s", c->teachers);
	if ((n = split(list, names, SL_TARGET_MAX_TEACHERS)) <= 0) {
		sl_error("--teacher: '%s' is not a list of 1 to %d names",
		    c->teachers, SL_TARGET_MAX_TEACHERS);
		return SL_EINVAL;
	}
	for (int i = 0; i < n; i++) {
		size_t j;

		/* Twice the same teacher would double its weight silently. */
		for (int k = 0; k < i; k++)
			if (strcmp(names[k], names[i]) == 0) {
				sl_error("--teacher: '%s' named twice", names[i]);
				return SL_EINVAL;
			}
		for (j = 0; j < nall; j++)
			if (strcmp(all[j].name, names[i]) == 0)
				break;
		if (j == nall) {
			sl_error("--teacher: no teacher '%s' in %s", names[i],
			    c->store);
			return SL_EINVAL;
		}
		d->teachers[i] = all[j];
	}
	d->nteachers = n;
	return 0;
}

static int
parse_weights(distill *d)
{
	char list[1024], *items[SL_TARGET_MAX_TEACHERS + 1];
	double sum = 0;
	int n;

	for (int i = 0; i < d->nteachers; i++)
		d->weights[i] = 1.0f;
	if (d->cfg->weights == NULL)
		return 0;
	snprintf(list, sizeof list, "%s", d->cfg->weights);
	n = split(list, items, SL_TARGET_MAX_TEACHERS);
	if (n != d->nteachers) {
		sl_error("--teacher-weights: %d weights for %d teachers", n,
		    d->nteachers);
		return SL_EINVAL;
	}
	for (int i = 0; i < n; i++) {
		char *end;

		errno = 0;
		d->weights[i] = strtof(items[i], &end);
		if (errno != 0 || *end != '\0' || end == items[i] ||
		    !(d->weights[i] >= 0) || d->weights[i] > 1e6f) {
			sl_error("--teacher-weights: '%s' is not a weight >= 0",
			    items[i]);
			return SL_EINVAL;
		}
		sum += (double)d->weights[i];
	}
	if (!(sum > 0)) {
		sl_error("--teacher-weights: '%s': the weights sum to 0; at least "
		    "one must be above 0", d->cfg->weights);
		return SL_EINVAL;
	}
	return 0;
}

/* The committee (d->teachers, from the first part) in part p's own
 * registrations (sl_reader_parts_match). */
static int
match_teachers(distill *d, distill_part *p, const sl_store_teacher *all,
    size_t nall)
{
	sl_errmsg why = { "" };
	int rc = sl_reader_parts_match(d->parts[0].name, p->name, d->teachers,
	    d->nteachers, all, nall, p->teachers, &why);

	if (rc != 0)
		sl_error("--store: %s", why.text);
	return rc;
}

/* Open part p (a directory or a remote cache: sl_reader.h) and read its
 * job and teachers into all. */
static int
open_part(distill_part *p, const sl_reader_opts *ro, sl_store_teacher *all,
    size_t *nall)
{
	sl_errmsg why = { "" };
	int rc;

	if ((rc = sl_reader_open(p->name, ro, &p->rd, &why)) != 0 ||
	    (rc = sl_reader_job(p->rd, &p->job, &why)) != 0 ||
	    (rc = sl_reader_teachers(p->rd, all, SL_STORE_MAX_TEACHERS, nall,
	    &why)) != 0)
		sl_error("--store %s: %s", p->name, why.text);
	return rc;
}

/* The parts are one job: same dataset and shard size, disjoint rows
 * (sl_reader_parts_check). */
static int
check_parts(const distill *d)
{
	const char *names[SL_TARGET_MAX_PARTS];
	sl_store_job jobs[SL_TARGET_MAX_PARTS];
	sl_errmsg why = { "" };
	int rc;

	for (int p = 0; p < d->nparts; p++) {
		names[p] = d->parts[p].name;
		jobs[p] = d->parts[p].job;
	}
	if ((rc = sl_reader_parts_check(names, jobs, d->nparts, &why)) != 0)
		sl_error("--store: %s", why.text);
	return rc;
}

/* The committee's views: every teacher without (d->views 0), or every
 * one with the same V, recipe and seed, since a student's row is one
 * view of it for all teachers alike. Logs a mix (SL_EINVAL). */
static int
committee_views(distill *d)
{
	const sl_store_teacher *a = &d->teachers[0];

	for (int i = 1; i < d->nteachers; i++) {
		const sl_store_teacher *t = &d->teachers[i];

		if (t->views != a->views || t->view_seed != a->view_seed ||
		    memcmp(&t->view_recipe, &a->view_recipe,
		    sizeof a->view_recipe) != 0) {
			sl_error("teachers %s (%u views) and %s (%u views) label "
			    "different views: a committee's teachers must share "
			    "their views (recipe, seed and count) or have none",
			    a->name, a->views, t->name, t->views);
			return SL_EINVAL;
		}
	}
	d->views = a->views;
	d->view_recipe = a->view_recipe;
	d->view_seed = a->view_seed;
	return 0;
}

int
distill_open(distill *d, const distill_cfg *cfg, sl_dataset *ds,
    uint32_t classes)
{
	sl_store_teacher all[SL_STORE_MAX_TEACHERS];
	char *names[SL_TARGET_MAX_PARTS + 1];
	sl_fingerprint fp;
	sl_errmsg why = { "" };
	size_t nall;
	int rc, n;

	memset(d, 0, sizeof *d);
	d->cfg = cfg;
	if ((d->store_list = strdup(cfg->store)) == NULL)
		return SL_ENOMEM;
	if ((n = split(d->store_list, names, SL_TARGET_MAX_PARTS)) <= 0) {
		sl_error("--store: '%s' is not a cache or a list of 1 to %d "
		    "caches", cfg->store, SL_TARGET_MAX_PARTS);
		return SL_EINVAL;
	}
	if ((d->parts = calloc((size_t)n, sizeof *d->parts)) == NULL)
		return SL_ENOMEM;
	d->nparts = n;
	for (int p = 0; p < n; p++)
		d->parts[p].name = names[p];
	for (int p = 0; p < n; p++) {
		if ((rc = open_part(&d->parts[p], &cfg->ro, all, &nall)) != 0)
			return rc;
		if (p == 0) {
			d->job = d->parts[0].job;
			if ((rc = resolve_teachers(d, all, nall)) != 0 ||
			    (rc = parse_weights(d)) != 0)
				return rc;
			memcpy(d->parts[0].teachers, d->teachers,
			    sizeof d->teachers);
		} else if ((rc = match_teachers(d, &d->parts[p], all, nall)) != 0) {
			return rc;
		}
	}
	if ((rc = check_parts(d)) != 0)
		return rc;
	if ((rc = sl_dataset_fingerprint_start(ds, "--dataset", &fp, &why)) != 0) {
		sl_error("--dataset: %s", why.text);
		return rc;
	}
	if (memcmp(fp.sha256, d->job.dataset.sha256, 32) != 0 ||
	    fp.rows != d->job.dataset.rows) {
		sl_error("--dataset is not the dataset the cache %s was labeled "
		    "from (%s)", cfg->store, d->job.dataset_path);
		return SL_EINVAL;
	}
	for (int i = 0; i < d->nteachers; i++)
		if (d->teachers[i].fmt.classes != classes) {
			sl_error("teacher %s has %u classes, --arch ends in %u",
			    d->teachers[i].name, d->teachers[i].fmt.classes,
			    classes);
			return SL_EINVAL;
		}
	if ((rc = committee_views(d)) != 0)
		return rc;
	d->nshards = (fp.rows + d->job.shard_rows - 1) / d->job.shard_rows;
	d->mask_len = (uint32_t)((uint64_t)d->nteachers * d->nshards);
	d->mask = calloc(d->mask_len ? d->mask_len : 1, 1);
	d->mask_part = calloc(d->mask_len ? d->mask_len : 1, 1);
	d->keep = calloc(fp.rows, 1);
	if (!d->mask || !d->mask_part || !d->keep ||
	    sl_target_view_init(&d->targets, fp.rows, classes) != 0) {
		sl_error("out of memory for targets of %llu rows",
		    (unsigned long long)fp.rows);
		return SL_ENOMEM;
	}
	return 0;
}

/* distill_ready for one cache of the list. */
static int
ready_one(const distill_cfg *cfg, const char *store, char *what,
    size_t what_len)
{
	sl_store_teacher all[SL_STORE_MAX_TEACHERS];
	sl_errmsg why = { "" };
	sl_reader *st = NULL;
	sl_store_job job;
	size_t nall = 0;
	int rc, ready = 1;

	if ((rc = sl_reader_open(store, &cfg->ro, &st, &why)) != 0) {
		if (sl_reader_is_remote(store)) {
			sl_error("--store %s: %s", store, why.text);
			return -1;
		}
		/* No cache yet: the broker has not started. */
		snprintf(what, what_len, "no cache at %s yet", store);
		return 0;
	}
	rc = sl_reader_job(st, &job, &why);
	if (rc == 0)
		rc = sl_reader_teachers(st, all, SL_STORE_MAX_TEACHERS, &nall, &why);
	sl_reader_close(&st);
	if (rc == SL_ENOTFOUND) {
		snprintf(what, what_len, "no job in %s yet", store);
		return 0;
	}
	if (rc != 0) {
		sl_error("--store %s: %s", store, why.text);
		return -1;
	}
	if (cfg->teachers == NULL) {
		if (nall == 0)
			snprintf(what, what_len, "no teacher registered in %s yet",
			    store);
		return nall > 0;
	}
	char list[2048], *names[SL_TARGET_MAX_TEACHERS + 1];
	int n;

	snprintf(list, sizeof list, "%s", cfg->teachers);
	if ((n = split(list, names, SL_TARGET_MAX_TEACHERS)) <= 0)
		return 1; /* distill_open says what is wrong with the list */
	for (int i = 0; i < n && ready; i++) {
		size_t j;

		for (j = 0; j < nall && strcmp(all[j].name, names[i]) != 0; j++)
			;
		if (j == nall) {
			snprintf(what, what_len, "teacher '%s' is not registered "
			    "in %s yet", names[i], store);
			ready = 0;
		}
	}
	return ready;
}

int
distill_ready(const distill_cfg *cfg, char *what, size_t what_len)
{
	char list[4096], *names[SL_TARGET_MAX_PARTS + 1];
	int n, ready = 1;

	snprintf(list, sizeof list, "%s", cfg->store);
	if ((n = split(list, names, SL_TARGET_MAX_PARTS)) <= 0)
		return 1; /* distill_open says what is wrong with the list */
	for (int p = 0; p < n && ready == 1; p++)
		ready = ready_one(cfg, names[p], what, what_len);
	return ready;
}

void
distill_close(distill *d)
{
	for (int p = 0; d->parts != NULL && p < d->nparts; p++)
		sl_reader_close(&d->parts[p].rd);
	free(d->parts);
	free(d->store_list);
	sl_target_view_fini(&d->targets);
	free(d->mask);
	free(d->mask_part);
	free(d->keep);
}

void
distill_describe(const distill *d, char *buf, size_t len)
{
	size_t off = 0;

	for (int i = 0; i < d->nteachers && off < len; i++) {
		int w = snprintf(buf + off, len - off, "%s:%s:%.9g ",
		    d->teachers[i].name, d->teachers[i].model_sha256,
		    (double)d->weights[i]);

		if (w < 0)
			break;
		off += (size_t)w;
	}
	if (off < len)
		snprintf(buf + off, len - off, "T=%.9g minconf=%.9g balance=%lld",
		    (double)d->cfg->temperature, (double)d->cfg->min_confidence,
		    (long long)d->cfg->balance);
}

int
distill_take_done(distill *d)
{
	const uint64_t sr = d->job.shard_rows;
	sl_errmsg why = { "" };
	int rc;

	memset(d->mask, 0, d->mask_len);
	/* Each part gives the shards of its own rows. */
	for (int p = 0; p < d->nparts; p++) {
		distill_part *dp = &d->parts[p];
		const uint64_t s0 = dp->job.rows_first / sr;
		const uint64_t s1 = (dp->job.rows_end + sr - 1) / sr;

		if ((rc = sl_reader_refresh(dp->rd, &why)) != 0 ||
		    (rc = sl_target_mask_done(dp->rd, dp->teachers, d->nteachers,
		    d->nshards, d->mask_part, &why)) != 0) {
			sl_error("--store %s: %s", dp->name, why.text);
			return rc;
		}
		for (int t = 0; t < d->nteachers; t++)
			for (uint64_t s = s0; s < s1 && s < d->nshards; s++)
				d->mask[(uint64_t)t * d->nshards + s] =
				    d->mask_part[(uint64_t)t * d->nshards + s];
	}
	return 0;
}

uint64_t
distill_covered_rows(const distill *d)
{
	const uint64_t rows = d->job.dataset.rows, sr = d->job.shard_rows;
	uint64_t covered = 0;

	for (uint64_t s = 0; s < d->nshards; s++) {
		int all = d->nteachers > 0;

		for (int t = 0; t < d->nteachers && all; t++)
			all = d->mask[(uint64_t)t * d->nshards + s] != 0;
		if (all)
			covered += (s + 1) * sr <= rows ? sr : rows - s * sr;
	}
	return covered;
}

int
distill_build(distill *d, const int32_t *labels, size_t nlabels)
{
	sl_target_part parts[SL_TARGET_MAX_PARTS];
	sl_errmsg why = { "" };
	const int skip = strcmp(d->cfg->on_corrupt, "skip") == 0;
	int rc;

	/* The snapshots must hold every shard the mask names: refresh (a
	 * resumed run's mask may name shards newer than the snapshot). */
	for (int p = 0; p < d->nparts; p++) {
		if ((rc = sl_reader_refresh(d->parts[p].rd, &why)) != 0) {
			sl_error("--store %s: %s", d->parts[p].name, why.text);
			return rc;
		}
		parts[p].rd = d->parts[p].rd;
		parts[p].teachers = d->parts[p].teachers;
		parts[p].row_first = d->parts[p].job.rows_first;
		parts[p].row_end = d->parts[p].job.rows_end;
	}
	if ((rc = sl_target_view_build_parts(&d->targets, parts, d->nparts,
	    d->weights, d->nteachers, d->job.shard_rows, d->nshards, d->mask,
	    d->cfg->temperature, skip, &why)) != 0) {
		sl_error("--store %s: %s%s", d->cfg->store, why.text,
		    rc == SL_ECORRUPT ? " (--on-corrupt skip to train without "
		    "it)" : "");
		return rc;
	}
	if (d->targets.corrupt > 0)
		sl_warn("%llu corrupt records skipped (CRC or format)",
		    (unsigned long long)d->targets.corrupt);
	if ((rc = sl_target_view_select(&d->targets, labels, nlabels,
	    d->cfg->min_confidence, (uint64_t)d->cfg->balance, d->keep,
	    &d->nkeep, &why)) != 0) {
		sl_error("--store %s: selection: %s", d->cfg->store, why.text);
		return rc;
	}
	return 0;
}

int
distill_gather(distill *d, const size_t *rows, const uint32_t *views,
    size_t n, float *p, uint8_t *has)
{
	sl_errmsg why = { "" };
	int rc;

	/* A cache without views holds the stored row's record only: the
	 * student's views (an --augment of its own) all take it. */
	rc = sl_target_view_gather_views(&d->targets, rows,
	    d->views != 0 ? views : NULL, n, p, has, &why);

	if (rc != 0)
		sl_error("--store %s: targets of a batch: %s", d->cfg->store,
		    why.text);
	return rc;
}

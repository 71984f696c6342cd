/* distill.h - the trainer's view of the logit cache: which teachers, which
 * shards this epoch uses (the cache position, saved in checkpoints), the
 * targets built from them, and the rows the selection query keeps.
 *
 * Memory does not grow with rows x classes: two bytes per row (has, keep)
 * and the batch's targets, gathered from the snapshot by distill_gather.
 *
 * At each epoch start the trainer refreshes its read snapshot and takes the
 * shards done so far, so a trainer started while labeling runs uses new
 * shards in later epochs. A resumed trainer rebuilds the epoch's targets
 * from the checkpoint's mask instead, so it sees exactly what it saw.
 */
#ifndef DISTILL_H
#define DISTILL_H

#include <stdint.h>

#include "sl_data.h"
#include "sl_reader.h"
#include "sl_store.h"
#include "sl_target.h"

typedef struct distill_cfg {
	const char *store, *teachers, *weights, *on_corrupt;
	sl_reader_opts ro; /* a remote --store (tcp://): keys, timeouts */
	float temperature, min_confidence;
	int64_t balance;
} distill_cfg;

/* The caches of one job split by rows (--store a,b: softlabel-broker
 * --rows), read as one; a single cache is one part of every row. */
typedef struct distill_part {
	const char *name;     /* as given in --store: a directory or tcp:// */
	sl_reader *rd;        /* local or remote (sl_reader.h) */
	sl_store_job job;
	sl_store_teacher teachers[SL_TARGET_MAX_TEACHERS]; /* committee order */
} distill_part;

typedef struct distill {
	const distill_cfg *cfg;
	char *store_list;     /* a copy of cfg->store the part names point into */
	distill_part *parts;  /* (nparts) */
	int nparts;
	sl_store_job job;     /* the first part's */
	sl_store_teacher teachers[SL_TARGET_MAX_TEACHERS]; /* the first part's */
	float weights[SL_TARGET_MAX_TEACHERS];
	int nteachers;
	uint64_t nshards;
	uint8_t *mask;        /* (nteachers, nshards): the cache position */
	uint8_t *mask_part;   /* (nteachers, nshards): one part's, scratch */
	uint32_t mask_len;
	sl_target_view targets; /* one byte per row; targets read per batch */
	uint8_t *keep;        /* (rows) selected by the query */
	uint64_t nkeep;
	/* The committee's views (sl_store.h; all its teachers share them):
	 * views 0, none; else V views of each row drawn by recipe and seed. */
	uint32_t views;
	sl_view_recipe view_recipe;
	uint64_t view_seed;
} distill;

/* Open the cache read-only (a directory, or tcp://HOST:PORT of
 * `softlabel serve`), check that ds is the job's dataset, resolve
 * the teachers (all registered ones when cfg->teachers is NULL) and check
 * their class count and that they share their views (d->views). cfg->store may list several caches, "a,b" (at most
 * SL_TARGET_MAX_PARTS): the parts of one job split by --rows, read as one;
 * they must hold the same dataset fingerprint and shard size, disjoint row
 * ranges, and the committee's teachers with the same model, temperature
 * and encoding. Logs its own errors; returns 0, SL_EINVAL (usage) or
 * another code. */
int distill_open(distill *d, const distill_cfg *cfg, sl_dataset *ds,
    uint32_t classes);
void distill_close(distill *d);

/* For --wait-coverage: 1 when cfg->store holds a job and the teachers
 * cfg->teachers names (or at least one, when it names none) are
 * registered, 0 when not yet (*what says what is missing), -1 on another
 * error (logged). Opens and closes the cache read-only; a remote cache
 * without an answering server is waited for (sl_reader.h). */
int distill_ready(const distill_cfg *cfg, char *what, size_t what_len);

/* Text that identifies the teachers and settings, for the run digest. */
void distill_describe(const distill *d, char *buf, size_t len);

/* Set the mask to the shards done now (fresh snapshot). */
int distill_take_done(distill *d);

/* Rows the current mask covers for every teacher of the committee (the
 * rows that can have a target), out of the dataset's rows. */
uint64_t distill_covered_rows(const distill *d);

/* Build targets from the current mask and run the selection query over
 * labels. The snapshot then stays as it is until the next build. */
int distill_build(distill *d, const int32_t *labels, size_t nlabels);

/* The targets of rows[0..n) at the student's temperature into p (n,
 * classes) and has (n), from the snapshot of the last build (logged on
 * failure). views[j] is the view of rows[j] the student trains on
 * (augment.h; NULL: none): with a views committee the record of that
 * view, without one the record of the stored row whatever the view.
 * Does not allocate (past the largest batch). */
int distill_gather(distill *d, const size_t *rows, const uint32_t *views,
    size_t n, float *p, uint8_t *has);

#endif

/* sl_target.h - distillation targets read from the logit cache.
 *
 * For every row of the dataset: the teacher distribution at the student's
 * temperature T (the weighted mean of a committee's distributions), whether
 * the row has one, and the committee's confidence and class at T = 1 for
 * pseudo-label selection. Dense records are re-softened exactly; top-k
 * records spread the mass they did not keep evenly (sl_label_probs).
 *
 * A row has a target only when every teacher of the committee has a record
 * for it in a shard the caller allows (shard_mask): while labeling runs, a
 * row's target never changes as more teachers catch up, and a resumed
 * trainer rebuilds exactly the targets it had from the same mask.
 *
 * Two forms. The in-memory set (sl_target_set) holds (rows, classes)
 * floats twice plus a few bytes per row, allocated once by sl_target_init
 * and refilled in place by sl_target_build: it is the reference the view
 * is tested against, for caches that fit in memory. The view
 * (sl_target_view, below) keeps one byte per row and reads targets from
 * the cache's snapshot per batch: what the student trains with.
 */
#ifndef SL_TARGET_H
#define SL_TARGET_H

#include <stddef.h>
#include <stdint.h>

#include "sl_err.h"
#include "sl_reader.h"
#include "sl_store.h"

#define SL_TARGET_MAX_TEACHERS 16

typedef struct sl_target_set {
	uint64_t rows;
	uint32_t classes;
	float *p;        /* (rows, classes) target distribution at T */
	uint8_t *has;    /* (rows) 1 when the row has a target */
	float *conf;     /* (rows) committee max-probability at T = 1 */
	int32_t *top;    /* (rows) committee argmax at T = 1 */
	uint64_t nhas;   /* rows with a target */
	uint64_t corrupt; /* records that failed sl_label_check (skipped) */
} sl_target_set;

int sl_target_init(sl_target_set *t, uint64_t rows, uint32_t classes);
void sl_target_fini(sl_target_set *t);

/* Which shards are usable: mask[i * nshards + s] for teacher i of the
 * committee. sl_target_mask_done fills it with the shards done in the
 * cache as the reader rd sees it (local or remote: sl_reader.h). */
int sl_target_mask_done(sl_reader *rd, const sl_store_teacher *teachers,
    int nteachers, uint64_t nshards, uint8_t *mask, sl_errmsg *why);

/* Fill t from the cache rd reads: committee teachers[0..nteachers) with weights
 * (NULL: equal; each finite and >= 0, not all 0; they are normalised), at
 * temperature T > 0, using only shards set in mask (nteachers * nshards
 * bytes) of shard_rows (> 0) rows each. Every teacher must have
 * t->classes classes. A teacher of weight 0 adds nothing to the mean but
 * still gates coverage: a row needs its record too. A record that fails
 * its check is skipped and counted in t->corrupt when skip_corrupt, else
 * the build fails with SL_ECORRUPT and why names the teacher and sample.
 * Returns 0, SL_EINVAL (arguments),
 * SL_EMISMATCH (classes), SL_ECORRUPT, SL_ENOMEM or a store error; on
 * failure t's contents are unspecified until a build succeeds. */
int sl_target_build(sl_target_set *t, sl_reader *rd,
    const sl_store_teacher *teachers, const float *weights, int nteachers,
    uint32_t shard_rows, uint64_t nshards, const uint8_t *mask, float T,
    int skip_corrupt, sl_errmsg *why);

/* Pseudo-label selection as a query (Noisy Student): keep[i] = 1 for every
 * row with a target whose label is known, and for unlabeled rows with a
 * target whose confidence is at least min_conf; then, when balance > 0, at
 * most balance unlabeled rows per committee class, the most confident
 * first (ties: lower row first). labels (nlabels) uses -1 for unlabeled;
 * rows past nlabels are unlabeled. Returns the number of rows kept.
 * Confidences are compared exactly (a committee mean may exceed 1 by a
 * float step). scratch: (2 * rows) uint64 of caller memory. Does not
 * allocate. */
uint64_t sl_target_select(const sl_target_set *t, const int32_t *labels,
    size_t nlabels, float min_conf, uint64_t balance, uint8_t *keep,
    uint64_t *scratch);

/* --- out of core: the view ----------------------------------------------
 *
 * The same targets without the (rows, classes) matrices: a build pass
 * walks each teacher's records once (a sequential cursor) and keeps one
 * byte per row (has); the targets of a batch are gathered from the read
 * snapshot when the batch is trained (sl_target_view_gather), and the
 * selection query is a streaming pass that keeps per committee class at
 * most `balance` (key, row) pairs of 16 bytes. Memory: rows bytes plus
 * classes floats, plus min(balance * classes, candidates) * 16 bytes while
 * a --balance selection runs; nothing grows with rows x classes.
 *
 * Results are bit for bit those of the in-memory set above (the same
 * float operations in the same order): has, nhas and corrupt as
 * sl_target_build, gathered rows as its p, kept rows as sl_target_select.
 *
 * The view borrows the reader rd and teachers: they must stay as they
 * were at the last build (the same snapshot: do not refresh or close a
 * local rd, nor change teachers) until the next build. A remote rd (whose
 * server reads a fresh snapshot per request) gives the same bytes, since
 * the records of a done shard never change. Gathers ask rd for a whole
 * batch per teacher (one request each, remote). One thread at a time. */
#define SL_TARGET_MAX_PARTS SL_READER_MAX_PARTS

/* One cache of a job split by rows (softlabel-broker --rows): its reader,
 * its registrations of the committee's teachers (in committee order: the
 * same teachers, its own indexes) and the rows it holds. */
typedef struct sl_target_part {
	sl_reader *rd;
	const sl_store_teacher *teachers; /* (nteachers) */
	uint64_t row_first, row_end;
} sl_target_part;

typedef struct sl_target_view {
	uint64_t rows;
	uint32_t classes;
	uint8_t *has;     /* (rows) 1 when the row has a target */
	uint64_t nhas;    /* rows with a target */
	uint64_t corrupt; /* records that failed sl_label_check (skipped) */
	/* The committee and caches of the last build. */
	sl_target_part parts[SL_TARGET_MAX_PARTS];
	int nparts; /* 0: nothing built */
	float w[SL_TARGET_MAX_TEACHERS]; /* normalised weights */
	int nteachers;
	float T;
	float *tmp;        /* (classes) */
	/* A gather's rows with a target, and where each goes (then those of
	 * one part): grown to the largest batch (the select pass's chunk at
	 * least), then reused. */
	uint64_t *ids, *pids;
	size_t *slot, *pslot;
	uint32_t *pvids; /* the views of pids (teachers with views) */
	float *chunk;      /* (SL_TARGET_CHUNK, classes): the select pass */
	size_t cap;
} sl_target_view;

#define SL_TARGET_CHUNK 1024 /* rows per request of the select pass */

/* rows > 0, classes >= 2: SL_EINVAL; SL_ENOMEM. fini accepts a zeroed or
 * NULL view and zeroes it. */
int sl_target_view_init(sl_target_view *v, uint64_t rows, uint32_t classes);
void sl_target_view_fini(sl_target_view *v);

/* As sl_target_build, arguments and return codes alike, into v->has,
 * v->nhas and v->corrupt. */
int sl_target_view_build(sl_target_view *v, sl_reader *rd,
    const sl_store_teacher *teachers, const float *weights, int nteachers,
    uint32_t shard_rows, uint64_t nshards, const uint8_t *mask, float T,
    int skip_corrupt, sl_errmsg *why);

/* The same over the caches of a split job, read as one: parts[0..nparts)
 * with disjoint row ranges (the caller checks that they are one job with
 * the same teachers); a row's records come from the part holding it, and
 * records outside a part's range are not read. With one part of all the
 * rows it is sl_target_view_build. SL_EINVAL for 0 or more than
 * SL_TARGET_MAX_PARTS parts. The parts (and what they point to) are
 * borrowed until the next build. */
int sl_target_view_build_parts(sl_target_view *v, const sl_target_part *parts,
    int nparts, const float *weights, int nteachers, uint32_t shard_rows,
    uint64_t nshards, const uint8_t *mask, float T, int skip_corrupt,
    sl_errmsg *why);

/* Targets of rows[0..n) at the build's T into p (n, classes) and has (n):
 * has[i] = v->has[rows[i]], and p's row i is the committee mean when it
 * is 1 (left as it was when 0). Reads each teacher's records of the batch
 * in one sl_reader_get_labels; allocates only when n is larger than every
 * batch before (SL_ENOMEM). SL_EINVAL for a row past the dataset;
 * SL_ECORRUPT if a record is gone or no longer passes its check (it did in
 * the build: a bug, bad memory, or a shard an audit purged since); a
 * reader error. */
int sl_target_view_gather(sl_target_view *v, const size_t *rows, size_t n,
    float *p /* (n, classes) */, uint8_t *has /* (n) */, sl_errmsg *why);

/* The same for views (sl_store.h): row rows[i] in its view views[i]. A
 * teacher registered with V views gives the record of (row, views[i]),
 * views[i] < V; a teacher without views has one record per row and takes
 * view 0 only (SL_EINVAL for another, or for a view >= V, naming the
 * teacher). views NULL is view 0 of every row: sl_target_view_gather,
 * unchanged for a committee without views. A row has a target (the
 * build's has) when a teacher with views holds all V views of it. A
 * remote reader cannot serve views yet (SL_EUNSUPPORTED from the build). */
int sl_target_view_gather_views(sl_target_view *v, const size_t *rows,
    const uint32_t *views /* (n) or NULL */, size_t n,
    float *p /* (n, classes) */, uint8_t *has /* (n) */, sl_errmsg *why);

/* sl_target_select on the view: same keep[] and count (*kept). With
 * min_conf <= 0 and balance 0 nothing is read (every row with a target
 * is kept); else one pass over the rows with a target, SL_TARGET_CHUNK at
 * a time, computes the committee's confidence at T = 1. SL_ENOMEM, a
 * reader error, or SL_ECORRUPT as gather. */
int sl_target_view_select(sl_target_view *v, const int32_t *labels,
    size_t nlabels, float min_conf, uint64_t balance, uint8_t *keep,
    uint64_t *kept, sl_errmsg *why);

#endif

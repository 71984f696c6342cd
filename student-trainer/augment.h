/* augment.h - the student's augmented inputs (--augment RECIPE): each
 * training row is replaced by one of its views (sl_view.h) before
 * preprocessing, so that a student sees the pixels a view cache's worker
 * labeled, or that an online teacher is run on.
 *
 * Which view: sample i in epoch e takes view view_of(e, i, V, offset).
 * Without a views cache (V = 0) that is view e: every epoch a fresh view,
 * the same on every host and after every --resume. Replaying a cache of V
 * views per sample it is (e + offset) mod V, offset = view_offset(seed,
 * V), so a run of more than V epochs cycles through the V labeled views
 * and two seeds start the cycle at different views. The parameters of view
 * v of sample i are sl_view_draw(recipe, seed, i, v): i is the dataset's
 * row index, seed --augment-seed.
 *
 * Evaluation never augments. Nothing here allocates after augment_init.
 */
#ifndef AUGMENT_H
#define AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "sl_data.h"
#include "sl_view.h"

typedef struct augment {
	sl_view_recipe recipe;
	int on;                  /* the recipe transforms something */
	uint64_t seed;
	uint32_t V;              /* views per sample in the cache; 0: none */
	uint32_t offset;         /* view_offset(seed, V) */
	enum sl_dtype dtype;
	int C, H, W;             /* a row: C planes of H x W */
	size_t row_bytes;
	unsigned char *raw;      /* (B, row_bytes): the batch's views */
	unsigned char *scratch;  /* one plane, for sl_view_apply */
} augment;

/* The view of sample in epoch: epoch when V is 0, else
 * (epoch + offset) mod V. sample is not used by either rule; it is an
 * argument so that a per-sample rule stays a change of this one function. */
uint32_t view_of(uint32_t epoch, uint64_t sample, uint32_t V,
    uint32_t offset);

/* The offset of a V-view replay: sl_view_seed(seed, UINT64_MAX, 0) mod V
 * (0 when V is 0). */
uint32_t view_offset(uint64_t seed, uint32_t V);

/* Parse recipe (sl_view.h; NULL or "none": off) and check it fits the rows
 * of ds ([H, W] or [C, H, W]); size the buffers for batches of B rows.
 * Logs its errors and returns 0, SL_EINVAL (recipe or row shape: usage)
 * or SL_ENOMEM. a is zeroed first; augment_fini undoes it. */
int augment_init(augment *a, const char *recipe, uint64_t seed, uint32_t V,
    const sl_dataset *ds, int B);
void augment_fini(augment *a);

/* views[j] = view_of(epoch, rows[j], a->V, a->offset) for j < n. */
void augment_views(const augment *a, uint32_t epoch, const size_t *rows,
    size_t n, uint32_t *views /* (n) */);

/* The views views[j] of rows rows[j] of ds, j < n <= B, raw (the dataset's
 * dtype) into a->raw; returns a->raw, valid until the next call. */
const void *augment_rows(augment *a, const sl_dataset *ds,
    const size_t *rows, const uint32_t *views, size_t n);

#endif

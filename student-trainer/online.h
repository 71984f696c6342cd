/* online.h - online teaching (--online-teacher FILE): the targets of a
 * batch come from running the teacher on the batch's rows (augmented, when
 * --augment is on) inside the training loop, through the graph engine,
 * instead of from the logit cache: what torchdistill does, and the baseline
 * a view cache is measured against.
 *
 * A row's target is computed with the cache's own arithmetic: the logits z
 * become a dense f32 record of z / T (sl_label_encode, as a worker at
 * --temperature T stores it) and that record is softened at T
 * (sl_label_probs, as the cache gather does). So, with the same teacher,
 * rows and T, an online target equals the one read from a dense f32 cache
 * labeled at T up to the logits themselves, which the graph engine
 * computes bit for bit only for the same batch: a row's logits move by
 * float steps (measured: up to 6e-7 of z / T) with the rows it shares a
 * forward with, and a worker's shards are not the student's shuffled
 * batches (tests/integration/student_online.sh measures the rest).
 *
 * The teacher's input preprocessing is its model file's (a safetensors
 * MLP names it), else the default for the dataset's dtype (x / 255 for
 * uint8), as a softlabel-teacher without --input-* options.
 */
#ifndef ONLINE_H
#define ONLINE_H

#include <stddef.h>
#include <stdint.h>

#include "sl_data.h"
#include "sl_graph.h"
#include "sl_label.h"

#define ONLINE_MAX_CHUNK 256 /* rows per teacher forward */

typedef struct online {
	const char *path;
	sl_graph *g;
	sl_preproc pre;       /* the teacher's */
	int chunk;            /* rows per forward: min(B, ONLINE_MAX_CHUNK) */
	float T;
	sl_label_fmt fmt;     /* dense f32 of the teacher's classes */
	size_t D;             /* values per row */
	float *x;             /* (chunk, D) */
	float *scratch;       /* (2 * classes) */
	unsigned char *rec;   /* one record */
	char sha256[65];      /* of the model file, for the run digest */
} online;

/* Load path (ONNX or safetensors, by content) for rows of ds, batches of
 * up to B rows, a student of classes classes, temperature T. Logs its
 * errors; returns 0, SL_EINVAL (the model does not fit the rows or the
 * classes: usage), or the load's error. o is zeroed first. */
int online_open(online *o, const char *path, const sl_dataset *ds, int B,
    int classes, float T);
void online_close(online *o);

/* Targets softmax(z / T) of n rows into p (n, classes), has[j] = 1. The
 * rows are raw (n, row values of ds's dtype) when raw is not NULL (the
 * batch's views), else rows[0..n) of ds. Does not allocate. Returns 0, or
 * the engine's error, or SL_EINVAL for a non-finite logit (logged). */
int online_targets(online *o, const sl_dataset *ds, const size_t *rows,
    const void *raw, size_t n, float *p, uint8_t *has);

#endif

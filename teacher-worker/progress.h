/* progress.h - the worker's progress line on a terminal: its teacher's
 * shards done in the whole job, the job's rate and ETA (the broker's, from
 * a STATUS asked twice a second), and this worker's own shards. Only when
 * stderr is a terminal; otherwise nothing is asked and nothing drawn, and
 * the log stays one line per event. On the worker's main thread.
 */
#ifndef WORKER_PROGRESS_H
#define WORKER_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "sl_progress.h"

#define WORKER_PROGRESS_EVERY_MS 500

typedef struct worker_progress {
	int on;               /* stderr is a terminal */
	int started;          /* bar started (first status seen) */
	uint64_t next_ms;     /* when to ask for the next status */
	sl_progress bar;
} worker_progress;

/* on when stderr is a terminal. */
void worker_progress_init(worker_progress *p);
/* 1 when a STATUS should be sent now (and schedules the next one). */
int worker_progress_due(worker_progress *p, uint64_t now_ms);
/* A STATUS_REPLY (json, len bytes, not NUL-terminated): draw the line for
 * teacher index. mine: shards this worker computed. Bad JSON is ignored
 * (the line is cosmetic). */
void worker_progress_status(worker_progress *p, const void *json, size_t len,
    uint32_t teacher_index, uint64_t mine);
/* Erase the line (before the process exits). */
void worker_progress_end(worker_progress *p);

#endif

/* sl_progress.h - a one-line progress bar with rate and ETA, drawn on
 * stderr only when stderr is a terminal (logs and CI output stay clean).
 * Redraws at most ten times a second. Not thread-safe. While a bar is on
 * a terminal, every sl_log line first erases it (sl_log_erase_line), so
 * log lines stay whole; the next update draws the bar again below them.
 */
#ifndef SL_PROGRESS_H
#define SL_PROGRESS_H

#include <stdint.h>

typedef struct sl_progress {
	int enabled;
	char label[64];
	uint64_t total, done;
	double start_s, last_draw_s;
} sl_progress;

/* Monotonic clock in seconds. */
double sl_now_s(void);

void sl_progress_start(sl_progress *p, const char *label, uint64_t total);
/* Set the count done so far (in the unit of total, e.g. samples). */
void sl_progress_update(sl_progress *p, uint64_t done);
/* Draw with a rate (per second) and ETA (seconds; < 0: unknown) known
 * elsewhere, e.g. a broker's for the whole job; done is capped at total. */
void sl_progress_show(sl_progress *p, uint64_t done, double rate, double eta_s);
/* Erase the bar so that a log line can follow. */
void sl_progress_clear(sl_progress *p);

#endif

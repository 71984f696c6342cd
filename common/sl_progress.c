#include "sl_progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double
sl_now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void
sl_progress_start(sl_progress *p, const char *label, uint64_t total)
{
	memset(p, 0, sizeof *p);
	p->enabled = isatty(STDERR_FILENO);
	snprintf(p->label, sizeof p->label, "%s", label);
	p->total = total;
	p->start_s = sl_now_s();
}

void
sl_progress_update(sl_progress *p, uint64_t done)
{
	char bar[31], line[160];
	double now, rate, eta;
	int fill, n;

	p->done = done;
	if (!p->enabled)
		return;
	now = sl_now_s();
	if (now - p->last_draw_s < 0.1 && done < p->total)
		return;
	p->last_draw_s = now;
	rate = (double)done / (now - p->start_s + 1e-9);
	eta = rate > 0 && p->total > done ? (double)(p->total - done) / rate : 0;
	fill = p->total ? (int)(30 * done / p->total) : 30;
	memset(bar, '=', (size_t)fill);
	memset(bar + fill, ' ', (size_t)(30 - fill));
	bar[30] = '\0';
	n = snprintf(line, sizeof line,
	    "\r%s [%s] %3d%% %.0f/s ETA %d:%02d\033[K", p->label, bar,
	    p->total ? (int)(100 * done / p->total) : 100, rate,
	    (int)eta / 60, (int)eta % 60);
	if (n > 0)
		(void)!write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

void
sl_progress_clear(sl_progress *p)
{
	if (p->enabled)
		(void)!write(STDERR_FILENO, "\r\033[K", 4);
}

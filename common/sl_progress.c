#include "sl_progress.h"
#include "sl_log.h"

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
	if (p->enabled)
		sl_log_erase_line(1);
	snprintf(p->label, sizeof p->label, "%s", label);
	p->total = total;
	p->start_s = sl_now_s();
}

void
sl_progress_update(sl_progress *p, uint64_t done)
{
	double now, rate, eta;

	p->done = done;
	if (!p->enabled)
		return;
	now = sl_now_s();
	if (now - p->last_draw_s < 0.1 && done < p->total)
		return;
	rate = (double)done / (now - p->start_s + 1e-9);
	eta = rate > 0 && p->total > done ? (double)(p->total - done) / rate : 0;
	sl_progress_show(p, done, rate, eta);
}

void
sl_progress_show(sl_progress *p, uint64_t done, double rate, double eta_s)
{
	char bar[31], line[200], etas[32];
	int fill, n;

	p->done = done;
	if (!p->enabled)
		return;
	p->last_draw_s = sl_now_s();
	if (done > p->total)
		done = p->total;
	fill = p->total ? (int)(30 * done / p->total) : 30;
	memset(bar, '=', (size_t)fill);
	memset(bar + fill, ' ', (size_t)(30 - fill));
	bar[30] = '\0';
	if (eta_s >= 0 && eta_s < 1e8)
		snprintf(etas, sizeof etas, "%d:%02d", (int)eta_s / 60,
		    (int)eta_s % 60);
	else
		snprintf(etas, sizeof etas, "?");
	n = snprintf(line, sizeof line,
	    "\r%s [%s] %3d%% %.0f/s ETA %s\033[K", p->label, bar,
	    p->total ? (int)(100 * done / p->total) : 100, rate, etas);
	if (n > 0)
		(void)!write(STDERR_FILENO, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1);
}

void
sl_progress_clear(sl_progress *p)
{
	if (p->enabled)
		(void)!write(STDERR_FILENO, "\r\033[K", 4);
}

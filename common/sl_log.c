#include "sl_log.h"
#include "sl_err.h"

#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum sl_log_level sl_log_threshold = SL_LOG_INFO;
static const char *log_prog = "softlabel";

static const char *const level_names[] = { "DEBUG", "INFO", "WARN", "ERROR" };

void
sl_log_init(const char *prog, enum sl_log_level threshold)
{
	const char *slash = strrchr(prog, '/');

	log_prog = slash ? slash + 1 : prog;
	sl_log_threshold = threshold;
}

int
sl_log_parse_level(const char *s, enum sl_log_level *out)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };

	for (int i = 0; i < 4; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (enum sl_log_level)i;
			return 0;
		}
	}
	return SL_EINVAL;
}

char *
sl_log_escape(char *out, size_t outsz, const void *p, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *in = p;
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		const unsigned char c = in[i];

		if (c >= 0x20 && c != 0x7f) {
			if (n + 1 >= outsz)
				break;
			out[n++] = (char)c;
			continue;
		}
		if (n + 4 >= outsz)
			break;
		out[n++] = '\\';
		out[n++] = 'x';
		out[n++] = hex[c >> 4];
		out[n++] = hex[c & 15];
	}
	out[n] = '\0';
	return out;
}

static int erase_bar;

void
sl_log_erase_line(int on)
{
	erase_bar = on;
}

void
sl_log_write(enum sl_log_level level, const char *fmt, ...)
{
	char line[1024], msg[1024];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;
	int m;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = 0;
	if (erase_bar) {
		memcpy(line, "\r\033[K", 4);
		n = 4;
	}
	n += strftime(line + n, sizeof line - n, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof line - n, ".%03dZ %d %s %s ",
	    (int)(tv.tv_usec / 1000), (int)getpid(), log_prog,
	    level_names[level]);
	va_start(ap, fmt);
	m = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (m > 0 && n < sizeof line - 1) {
		size_t len = (size_t)m < sizeof msg ? (size_t)m : sizeof msg - 1;

		sl_log_escape(line + n, sizeof line - 1 - n, msg, len);
		n += strlen(line + n);
	}
	line[n++] = '\n';
	/* One write so concurrent lines never interleave; a short write to
	 * stderr is not worth a retry loop. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}

void
sl_log_limit_flush(sl_log_limit *l, uint64_t now_ms)
{
	if (now_ms - l->start_ms < SL_LOG_LIMIT_WINDOW_MS)
		return;
	if (l->suppressed > 0)
		sl_warn("suppressed %" PRIu64 " more '%s' lines in the last %"
		    PRIu64 " s (at most %u per %d s are written; the counters in "
		    "status count every one)", l->suppressed,
		    l->what ? l->what : "?", (now_ms - l->start_ms) / 1000,
		    l->burst ? l->burst : SL_LOG_LIMIT_BURST,
		    SL_LOG_LIMIT_WINDOW_MS / 1000);
	l->start_ms = now_ms;
	l->logged = 0;
	l->suppressed = 0;
}

int
sl_log_limit_allow(sl_log_limit *l, uint64_t now_ms)
{
	sl_log_limit_flush(l, now_ms);
	if (l->logged < (l->burst ? l->burst : SL_LOG_LIMIT_BURST)) {
		l->logged++;
		return 1;
	}
	l->suppressed++;
	return 0;
}

/* --- SIGBUS ------------------------------------------------------------------ */

static char sigbus_what[208];

/* Append s to buf at *n (bounded): for the handler, no stdio. */
static void
put(char *buf, size_t cap, size_t *n, const char *s)
{
	while (*s != '\0' && *n + 1 < cap)
		buf[(*n)++] = *s++;
}

static void
put_uint(char *buf, size_t cap, size_t *n, uintmax_t v, int width, int base)
{
	char d[32];
	int k = 0;

	do {
		d[k++] = "0123456789abcdef"[v % (unsigned)base];
		v /= (unsigned)base;
	} while (v != 0 && k < 31);
	while (k < width && k < 31)
		d[k++] = '0';
	while (k > 0 && *n + 1 < cap)
		buf[(*n)++] = d[--k];
}

/* The log line's UTC time from clock_gettime, with days-to-civil date
 * arithmetic (gmtime_r is not async-signal-safe). */
static void
put_time(char *buf, size_t cap, size_t *n)
{
	struct timespec ts;
	int64_t days, sec, y, mp, doy, yoe, era, d, m;

	clock_gettime(CLOCK_REALTIME, &ts);
	days = (int64_t)ts.tv_sec / 86400;
	sec = (int64_t)ts.tv_sec % 86400;
	days += 719468;
	era = days / 146097;
	doy = days - era * 146097;
	yoe = (doy - doy / 1460 + doy / 36524 - doy / 146096) / 365;
	y = yoe + era * 400;
	doy = doy - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	d = doy - (153 * mp + 2) / 5 + 1;
	m = mp < 10 ? mp + 3 : mp - 9;
	y += m <= 2;
	put_uint(buf, cap, n, (uintmax_t)y, 4, 10);
	put(buf, cap, n, "-");
	put_uint(buf, cap, n, (uintmax_t)m, 2, 10);
	put(buf, cap, n, "-");
	put_uint(buf, cap, n, (uintmax_t)d, 2, 10);
	put(buf, cap, n, "T");
	put_uint(buf, cap, n, (uintmax_t)(sec / 3600), 2, 10);
	put(buf, cap, n, ":");
	put_uint(buf, cap, n, (uintmax_t)(sec / 60 % 60), 2, 10);
	put(buf, cap, n, ":");
	put_uint(buf, cap, n, (uintmax_t)(sec % 60), 2, 10);
	put(buf, cap, n, ".");
	put_uint(buf, cap, n, (uintmax_t)(ts.tv_nsec / 1000000), 3, 10);
	put(buf, cap, n, "Z ");
}

static void
on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	char line[512];
	size_t n = 0;
	ssize_t w;

	(void)sig;
	(void)ctx;
	put_time(line, sizeof line, &n);
	put_uint(line, sizeof line, &n, (uintmax_t)getpid(), 1, 10);
	put(line, sizeof line, &n, " ");
	put(line, sizeof line, &n, log_prog);
	put(line, sizeof line, &n, " ERROR SIGBUS at 0x");
	put_uint(line, sizeof line, &n, (uintmax_t)(uintptr_t)si->si_addr, 1, 16);
	put(line, sizeof line, &n, ": a memory-mapped file shrank while in use (");
	put(line, sizeof line, &n, sigbus_what);
	put(line, sizeof line, &n, ", or the cache): it was truncated or "
	    "replaced in place; exiting\n");
	w = write(STDERR_FILENO, line, n);
	(void)w;
	_exit(1);
}

void
sl_log_catch_sigbus(const char *what)
{
	struct sigaction sa;

	snprintf(sigbus_what, sizeof sigbus_what, "%.200s", what ? what : "");
	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

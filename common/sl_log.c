#include "sl_log.h"
#include "sl_err.h"

#include <inttypes.h>
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
	n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
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
		    PRIu64 " s (at most %d per %d s are written; the counters in "
		    "status count every one)", l->suppressed,
		    l->what ? l->what : "?", (now_ms - l->start_ms) / 1000,
		    SL_LOG_LIMIT_BURST, SL_LOG_LIMIT_WINDOW_MS / 1000);
	l->start_ms = now_ms;
	l->logged = 0;
	l->suppressed = 0;
}

int
sl_log_limit_allow(sl_log_limit *l, uint64_t now_ms)
{
	sl_log_limit_flush(l, now_ms);
	if (l->logged < SL_LOG_LIMIT_BURST) {
		l->logged++;
		return 1;
	}
	l->suppressed++;
	return 0;
}

#include "sl_log.h"
#include "sl_err.h"

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

void
sl_log_write(enum sl_log_level level, const char *fmt, ...)
{
	char line[1024];
	struct timeval tv;
	struct tm tm;
	size_t n;
	va_list ap;

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
	n += (size_t)snprintf(line + n, sizeof line - n, ".%03dZ %d %s %s ",
	    (int)(tv.tv_usec / 1000), (int)getpid(), log_prog,
	    level_names[level]);
	if (n < sizeof line) {
		va_start(ap, fmt);
		int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
		va_end(ap);
		if (m > 0)
			n += (size_t)m;
	}
	if (n > sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	/* One write so concurrent lines never interleave; a short write to
	 * stderr is not worth a retry loop. */
	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}

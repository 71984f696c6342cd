/* sl_log.h - one line per event on stderr:
 *
 *   2026-11-23T20:07:23.123Z 4242 softlabel-broker INFO ready bind=tcp://...
 *
 * SL_LOG skips formatting entirely when the level is below the threshold, so
 * debug lines cost one comparison on hot paths. Thread-safe: each line goes
 * out in a single write(2).
 *
 * A line is always one line: control bytes in the message (0x00-0x1f and
 * 0x7f: a newline, ESC, BEL) are written as \xNN, whatever code path let
 * remote text into it, so no peer can forge a line or drive a terminal.
 */
#include <stddef.h>
#include <stdint.h>

#ifndef SL_LOG_H
#define SL_LOG_H

enum sl_log_level { SL_LOG_DEBUG, SL_LOG_INFO, SL_LOG_WARN, SL_LOG_ERROR };

extern enum sl_log_level sl_log_threshold;

/* Name the program in every line; call once from main(). prog is borrowed
 * and must outlive the process (a string literal or argv[0]). */
void sl_log_init(const char *prog, enum sl_log_level threshold);

/* Parse "debug|info|warn|error"; returns 0 or SL_EINVAL. */
int sl_log_parse_level(const char *s, enum sl_log_level *out);

/* Copy len bytes of p into out (outsz > 0) as one printable line: control
 * bytes (0x00-0x1f, 0x7f) become \xNN, everything else stays; cut, never
 * mid-escape, to fit. out is always NUL-terminated. For remote text that
 * goes anywhere but the log (status, inspect). Returns out. */
char *sl_log_escape(char *out, size_t outsz, const void *p, size_t len);

void sl_log_write(enum sl_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* on: stderr is a terminal with a progress bar (sl_progress) on its last
 * line; each log line then starts with "\r\033[K", erasing the bar in
 * the same write. Set from one thread before others log. */
void sl_log_erase_line(int on);

/* Rate limit for lines a remote peer can cause (one per refused message,
 * per HELLO...): at most burst (SL_LOG_LIMIT_BURST if 0) lines per window of
 * SL_LOG_LIMIT_WINDOW_MS, then one WARN summary "suppressed N ..." when
 * the window ends. Counters elsewhere (status) stay exact; only the log is
 * bounded. Caller's storage, zero-initialized; what names the lines in the
 * summary (borrowed, a literal). Time is the caller's monotonic ms. Not
 * thread-safe: one limiter per thread. */
#define SL_LOG_LIMIT_BURST 20
#define SL_LOG_LIMIT_WINDOW_MS 10000
typedef struct sl_log_limit {
	const char *what;
	uint32_t burst;       /* lines per window; 0: SL_LOG_LIMIT_BURST */
	uint64_t start_ms;    /* the current window began */
	uint32_t logged;      /* lines written in it */
	uint64_t suppressed;  /* lines not written in it */
} sl_log_limit;

/* 1: write the line now; 0: suppressed (counted for the summary). */
int sl_log_limit_allow(sl_log_limit *l, uint64_t now_ms);
/* Call periodically: a window over with lines suppressed gets its summary
 * line, and a new window starts. */
void sl_log_limit_flush(sl_log_limit *l, uint64_t now_ms);

/* A file mapped into memory (a .npy dataset, the LMDB cache) that is
 * truncated while in use makes the next read of the lost pages raise
 * SIGBUS, which kills silently. After this call SIGBUS writes one ERROR
 * line naming what (borrowed; copied, up to 200 bytes: "the dataset
 * x.npy") and the faulting address, then _exit(1). Async-signal-safe; call
 * once from main() after sl_log_init. */
void sl_log_catch_sigbus(const char *what);

#define SL_LOG(level, ...)                                                     \
	do {                                                                   \
		if ((level) >= sl_log_threshold)                               \
			sl_log_write((level), __VA_ARGS__);                    \
	} while (0)

#define sl_debug(...) SL_LOG(SL_LOG_DEBUG, __VA_ARGS__)
#define sl_info(...)  SL_LOG(SL_LOG_INFO, __VA_ARGS__)
#define sl_warn(...)  SL_LOG(SL_LOG_WARN, __VA_ARGS__)
#define sl_error(...) SL_LOG(SL_LOG_ERROR, __VA_ARGS__)

#endif

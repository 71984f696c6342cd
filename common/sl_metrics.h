/* sl_metrics.h - Prometheus text exposition over HTTP (libmicrohttpd).
 *
 * The program that owns the numbers (the broker: one thread, ZeroMQ) and
 * the HTTP server (libmicrohttpd's own thread) never share the numbers.
 * They share one text, under one mutex, handed over on request:
 *
 *   scrape (MHD thread)                  owner (its own thread)
 *   ------------------------------       ---------------------------------
 *   want = ++asked; write 1 byte to  ->  poll sees sl_metrics_fd() readable
 *   the wake pipe; wait on the           gen = sl_metrics_begin(): drains
 *   condition until published >= want    the pipe, returns asked
 *   (at most SL_METRICS_WAIT_MS)         renders the text from its state
 *                                        sl_metrics_publish(gen, text):
 *   copy the text into the response  <-  copies it in, published = gen,
 *                                        broadcast
 *
 * So a scrape sees the owner's state at one instant after the request came,
 * rendered on the owner's thread: no lock around the owner's data and no
 * rendering while nobody scrapes. An owner stuck longer than
 * SL_METRICS_WAIT_MS (a long commit) gets the last text served, after a
 * comment line "# stale: ..."; before any text, 503.
 *
 * Only GET (and HEAD) of /metrics answers 200; other paths 404, other
 * methods 405. At most SL_METRICS_MAX_CONNS connections at once, each
 * closed after 10 s idle.
 */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "sl_err.h"

#define SL_METRICS_WAIT_MS 2000
#define SL_METRICS_MAX_CONNS 16

typedef struct sl_metrics sl_metrics;

/* Check "HOST:PORT" (IPv4, a name, or [IPv6]; PORT 0-65535, 0 for any
 * free one) without binding. 0 or SL_EINVAL with why. */
int sl_metrics_check_addr(const char *addr, sl_errmsg *why);

/* Bind addr (as above), listen and start the server thread. 0, SL_EINVAL
 * (malformed or unresolvable address), an errno value (EADDRINUSE,
 * EADDRNOTAVAIL, EACCES...) or SL_ENOMEM, with why. Thread: the owner's. */
int sl_metrics_open(const char *addr, sl_metrics **out, sl_errmsg *why);
/* Stop the server (a waiting scrape is released at once) and free it.
 * Accepts NULL and *m NULL; sets *m to NULL. */
void sl_metrics_close(sl_metrics **m);

/* The port bound (the real one when addr asked for 0). */
int sl_metrics_port(const sl_metrics *m);
/* A descriptor that turns readable when a scrape waits for a text: poll it
 * beside the owner's sockets. Valid until sl_metrics_close. */
int sl_metrics_fd(const sl_metrics *m);
/* Drain the wake descriptor; the generation to publish (0: none asked). */
uint64_t sl_metrics_begin(sl_metrics *m);
/* Copy text (len bytes) in as the answer to every request up to gen.
 * 0, or SL_ENOMEM (the previous text stays). */
int sl_metrics_publish(sl_metrics *m, uint64_t gen, const char *text,
    size_t len);

/* --- building the text (owner's thread; no locking) ---------------------- */

/* A growing text. Append functions never fail: on no memory the text
 * stops growing and oom is set (the owner then publishes nothing). */
typedef struct sl_metrics_text {
	char *p;
	size_t len, cap;
	int oom;
} sl_metrics_text;

void sl_metrics_text_reset(sl_metrics_text *t); /* len 0, keeps memory */
void sl_metrics_text_fini(sl_metrics_text *t);
void sl_metrics_printf(sl_metrics_text *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "# HELP name help\n# TYPE name type\n" (type: counter, gauge, histogram). */
void sl_metrics_family(sl_metrics_text *t, const char *name,
    const char *type, const char *help);
/* One sample: name{k1="v1",...} value. labels: key, value pairs ended by
 * NULL (NULL itself for none); values are escaped (\\ \" \n) as the
 * exposition format requires. */
void sl_metrics_sample(sl_metrics_text *t, const char *name,
    const char *const *labels, double value);

#endif

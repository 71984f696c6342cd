/* sl_metrics.c - the HTTP side of sl_metrics.h and the text builder. */
#include "sl_metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define STALE_LINE "# stale: the program did not answer in time; " \
	"this is its last text\n"

struct sl_metrics {
	struct MHD_Daemon *mhd;
	int port;
	int wake[2];          /* scrape -> owner: a byte means "render" */
	pthread_mutex_t mu;   /* guards everything below */
	pthread_cond_t cond;  /* published moved, or closing */
	uint64_t asked, published;
	int closing;
	char *text;           /* the last published text, NULL before one */
	size_t len, cap;
};

/* --- addresses ------------------------------------------------------------------ */

/* Split "HOST:PORT" / "[V6]:PORT" into host and port (copies). */
static int
split_addr(const char *addr, char *host, size_t hostsz, long *port,
    sl_errmsg *why)
{
	const char *colon, *h = addr, *hend;
	char *end;

	if (addr == NULL || *addr == '\0')
		return sl_errmsg_set(why, SL_EINVAL, "empty address (want "
		    "HOST:PORT, e.g. 127.0.0.1:9100)");
	if (*addr == '[') {
		hend = strchr(addr, ']');
		if (hend == NULL || hend[1] != ':')
			return sl_errmsg_set(why, SL_EINVAL, "'%s': want "
			    "[IPV6]:PORT", addr);
		h = addr + 1;
		colon = hend + 1;
	} else {
		colon = strrchr(addr, ':');
		if (colon == NULL || strchr(addr, ':') != colon)
			return sl_errmsg_set(why, SL_EINVAL, "'%s': want "
			    "HOST:PORT (e.g. 127.0.0.1:9100; IPv6 as [::1]:9100)",
			    addr);
		hend = colon;
	}
	if (hend == h)
		return sl_errmsg_set(why, SL_EINVAL, "'%s': no host (use "
		    "127.0.0.1 for this machine only, 0.0.0.0 for all)", addr);
	if ((size_t)(hend - h) >= hostsz)
		return sl_errmsg_set(why, SL_EINVAL, "'%s': host name too long",
		    addr);
	memcpy(host, h, (size_t)(hend - h));
	host[hend - h] = '\0';
	errno = 0;
	*port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || *port < 0 ||
	    *port > 65535)
		return sl_errmsg_set(why, SL_EINVAL, "'%s': port '%s' is not a "
		    "number in 0-65535", addr, colon + 1);
	return 0;
}

static int
resolve(const char *addr, struct addrinfo **out, sl_errmsg *why)
{
	struct addrinfo hints;
	char host[256], port_s[8];
	long port = 0;
	int rc;

	if ((rc = split_addr(addr, host, sizeof host, &port, why)) != 0)
		return rc;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(port_s, sizeof port_s, "%ld", port);
	if ((rc = getaddrinfo(host, port_s, &hints, out)) != 0)
		return sl_errmsg_set(why, SL_EINVAL, "'%s': host '%s': %s", addr,
		    host, gai_strerror(rc));
	return 0;
}

int
sl_metrics_check_addr(const char *addr, sl_errmsg *why)
{
	struct addrinfo *ai = NULL;
	int rc = resolve(addr, &ai, why);

	if (ai != NULL)
		freeaddrinfo(ai);
	return rc;
}

/* A listening TCP socket on the first address that binds. */
static int
listen_on(const char *addr, int *fd_out, int *port_out, int *v6, sl_errmsg *why)
{
	struct addrinfo *ai = NULL, *p;
	int rc, err = 0, one = 1;

	if ((rc = resolve(addr, &ai, why)) != 0)
		return rc;
	for (p = ai; p != NULL; p = p->ai_next) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		int fd = socket(p->ai_family, p->ai_socktype, p->ai_protocol);

		if (fd < 0) {
			err = errno;
			continue;
		}
		(void)fcntl(fd, F_SETFD, FD_CLOEXEC);
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (bind(fd, p->ai_addr, p->ai_addrlen) != 0 ||
		    listen(fd, 64) != 0 ||
		    getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
			err = errno;
			close(fd);
			continue;
		}
		*fd_out = fd;
		*v6 = ss.ss_family == AF_INET6;
		*port_out = ntohs(*v6 ? ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port);
		freeaddrinfo(ai);
		return 0;
	}
	freeaddrinfo(ai);
	if (err == 0)
		err = EADDRNOTAVAIL;
	return sl_errmsg_set(why, err, "%s: %s", addr, strerror(err));
}

/* --- the server thread ---------------------------------------------------------- */

static void
deadline_after(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static enum MHD_Result
reply(struct MHD_Connection *c, unsigned code, const char *body, size_t len,
    const char *prefix)
{
	size_t plen = prefix ? strlen(prefix) : 0;
	struct MHD_Response *r;
	enum MHD_Result ret;

	if (plen == 0) {
		r = MHD_create_response_from_buffer(len, (void *)body,
		    MHD_RESPMEM_MUST_COPY);
	} else {
		char *all = malloc(plen + len);

		if (all == NULL)
			return MHD_NO;
		memcpy(all, prefix, plen);
		memcpy(all + plen, body, len);
		r = MHD_create_response_from_buffer(plen + len, all,
		    MHD_RESPMEM_MUST_FREE);
		if (r == NULL)
			free(all);
	}
	if (r == NULL)
		return MHD_NO;
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
	    code == MHD_HTTP_OK ? CONTENT_TYPE : "text/plain; charset=utf-8");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
	sl_metrics *m = cls;
	struct timespec until;
	uint64_t want;
	enum MHD_Result ret;
	int timed_out = 0;

	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		*upload_data_size = 0;
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics\n",
		    13, NULL);
	}
	if (strcmp(url, "/metrics") != 0)
		return reply(c, MHD_HTTP_NOT_FOUND, "not found: try /metrics\n",
		    24, NULL);

	pthread_mutex_lock(&m->mu);
	want = ++m->asked;
	pthread_mutex_unlock(&m->mu);
	/* A full pipe means a wake is already pending: nothing lost. */
	(void)!write(m->wake[1], "m", 1);
	pthread_mutex_lock(&m->mu);
	deadline_after(&until, SL_METRICS_WAIT_MS);
	while (m->published < want && !m->closing && !timed_out)
		timed_out = pthread_cond_timedwait(&m->cond, &m->mu, &until) ==
		    ETIMEDOUT;
	if (m->text == NULL)
		ret = reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "no metrics yet\n",
		    15, NULL);
	else
		ret = reply(c, MHD_HTTP_OK, m->text, m->len,
		    m->published < want ? STALE_LINE : NULL);
	pthread_mutex_unlock(&m->mu);
	return ret;
}

int
sl_metrics_open(const char *addr, sl_metrics **out, sl_errmsg *why)
{
	pthread_condattr_t ca;
	sl_metrics *m;
	int fd = -1, v6 = 0, rc;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;

	if ((m = calloc(1, sizeof *m)) == NULL)
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	m->wake[0] = m->wake[1] = -1;
	if ((rc = listen_on(addr, &fd, &m->port, &v6, why)) != 0) {
		free(m);
		return rc;
	}
	if (pipe(m->wake) != 0) {
		rc = sl_errmsg_set(why, errno, "pipe: %s", strerror(errno));
		goto fail;
	}
	for (int i = 0; i < 2; i++) {
		(void)fcntl(m->wake[i], F_SETFD, FD_CLOEXEC);
		(void)fcntl(m->wake[i], F_SETFL, O_NONBLOCK);
	}
	pthread_mutex_init(&m->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (v6)
		flags |= MHD_USE_IPv6;
	m->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, m,
	    MHD_OPTION_LISTEN_SOCKET, fd,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)SL_METRICS_MAX_CONNS,
	    MHD_OPTION_CONNECTION_TIMEOUT, 10u,
	    MHD_OPTION_END);
	if (m->mhd == NULL) {
		rc = sl_errmsg_set(why, SL_ENOMEM, "%s: the HTTP server did not "
		    "start", addr);
		pthread_cond_destroy(&m->cond);
		pthread_mutex_destroy(&m->mu);
		goto fail;
	}
	*out = m;
	return 0;
fail:
	close(fd);
	for (int i = 0; i < 2; i++)
		if (m->wake[i] >= 0)
			close(m->wake[i]);
	free(m);
	return rc;
}

void
sl_metrics_close(sl_metrics **mp)
{
	sl_metrics *m;

	if (mp == NULL || (m = *mp) == NULL)
		return;
	pthread_mutex_lock(&m->mu);
	m->closing = 1;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->mu);
	MHD_stop_daemon(m->mhd); /* joins its thread, closes the listener */
	close(m->wake[0]);
	close(m->wake[1]);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->mu);
	free(m->text);
	free(m);
	*mp = NULL;
}

int
sl_metrics_port(const sl_metrics *m)
{
	return m->port;
}

int
sl_metrics_fd(const sl_metrics *m)
{
	return m->wake[0];
}

uint64_t
sl_metrics_begin(sl_metrics *m)
{
	char buf[64];
	uint64_t gen;

	while (read(m->wake[0], buf, sizeof buf) > 0)
		;
	pthread_mutex_lock(&m->mu);
	gen = m->asked > m->published ? m->asked : 0;
	pthread_mutex_unlock(&m->mu);
	return gen;
}

int
sl_metrics_publish(sl_metrics *m, uint64_t gen, const char *text, size_t len)
{
	int rc = 0;

	pthread_mutex_lock(&m->mu);
	if (len > m->cap || m->text == NULL) {
		size_t ncap = len > 4096 ? len + len / 2 : 4096;
		char *n = realloc(m->text, ncap);

		if (n == NULL) {
			rc = SL_ENOMEM;
			goto out;
		}
		m->text = n;
		m->cap = ncap;
	}
	memcpy(m->text, text, len);
	m->len = len;
	if (gen > m->published)
		m->published = gen;
	pthread_cond_broadcast(&m->cond);
out:
	pthread_mutex_unlock(&m->mu);
	return rc;
}

/* --- the text ------------------------------------------------------------------- */

void
sl_metrics_text_reset(sl_metrics_text *t)
{
	t->len = 0;
	t->oom = 0;
	if (t->p != NULL)
		t->p[0] = '\0';
}

void
sl_metrics_text_fini(sl_metrics_text *t)
{
	free(t->p);
	memset(t, 0, sizeof *t);
}

static int
reserve(sl_metrics_text *t, size_t more)
{
	size_t need = t->len + more + 1, ncap;
	char *n;

	if (t->oom)
		return -1;
	if (need <= t->cap)
		return 0;
	ncap = t->cap ? t->cap : 4096;
	while (ncap < need)
		ncap *= 2;
	if ((n = realloc(t->p, ncap)) == NULL) {
		t->oom = 1;
		return -1;
	}
	t->p = n;
	t->cap = ncap;
	return 0;
}

static void vappend(sl_metrics_text *t, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
vappend(sl_metrics_text *t, const char *fmt, va_list ap)
{
	va_list ap2;
	int n;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0 || reserve(t, (size_t)n) != 0)
		return;
	vsnprintf(t->p + t->len, (size_t)n + 1, fmt, ap);
	t->len += (size_t)n;
}

void
sl_metrics_printf(sl_metrics_text *t, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vappend(t, fmt, ap);
	va_end(ap);
}

void
sl_metrics_family(sl_metrics_text *t, const char *name, const char *type,
    const char *help)
{
	sl_metrics_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
	    type);
}

static void
escaped(sl_metrics_text *t, const char *v)
{
	for (; *v != '\0'; v++) {
		if (reserve(t, 2) != 0)
			return;
		if (*v == '\\' || *v == '"') {
			t->p[t->len++] = '\\';
			t->p[t->len++] = *v;
		} else if (*v == '\n') {
			t->p[t->len++] = '\\';
			t->p[t->len++] = 'n';
		} else {
			t->p[t->len++] = *v;
		}
		t->p[t->len] = '\0';
	}
}

void
sl_metrics_sample(sl_metrics_text *t, const char *name,
    const char *const *labels, double value)
{
	sl_metrics_printf(t, "%s", name);
	if (labels != NULL && labels[0] != NULL) {
		for (int i = 0; labels[i] != NULL && labels[i + 1] != NULL; i += 2) {
			sl_metrics_printf(t, "%s%s=\"", i ? "," : "{", labels[i]);
			escaped(t, labels[i + 1]);
			sl_metrics_printf(t, "\"");
		}
		sl_metrics_printf(t, "}");
	}
	/* Integers print exactly (counters up to 2^53), others to 9 digits. */
	if (isnan(value))
		sl_metrics_printf(t, " NaN\n");
	else if (isinf(value))
		sl_metrics_printf(t, " %sInf\n", value > 0 ? "+" : "-");
	else if (value == floor(value) && fabs(value) < 9007199254740992.0)
		sl_metrics_printf(t, " %.0f\n", value);
	else
		sl_metrics_printf(t, " %.9g\n", value);
}

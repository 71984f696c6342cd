#include "sl_net.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

static int
setopt_int(void *s, int opt, int v)
{
	return zmq_setsockopt(s, opt, &v, sizeof v) == 0 ? 0 : zmq_errno();
}

int
sl_net_socket(void *ctx, int type, int64_t max_msg_bytes, void **out,
    sl_errmsg *why)
{
	void *s = zmq_socket(ctx, type);
	int rc = 0;

	if (s == NULL)
		return sl_errmsg_set(why, zmq_errno(), "zmq_socket: %s",
		    zmq_strerror(zmq_errno()));
	if (zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &max_msg_bytes,
	    sizeof max_msg_bytes) != 0)
		rc = zmq_errno();
	/* Pending messages die with the socket: results are kept by the
	 * worker until acknowledged, so nothing depends on lingering. */
	rc = rc ? rc : setopt_int(s, ZMQ_LINGER, 0);
	rc = rc ? rc : setopt_int(s, ZMQ_HEARTBEAT_IVL, SL_NET_ZMTP_HEARTBEAT_MS);
	rc = rc ? rc : setopt_int(s, ZMQ_HEARTBEAT_TIMEOUT,
	    SL_NET_ZMTP_TIMEOUT_MS);
	rc = rc ? rc : setopt_int(s, ZMQ_HEARTBEAT_TTL, SL_NET_ZMTP_TIMEOUT_MS);
	rc = rc ? rc : setopt_int(s, ZMQ_RECONNECT_IVL, SL_NET_RECONNECT_MIN_MS);
	rc = rc ? rc : setopt_int(s, ZMQ_RECONNECT_IVL_MAX, SL_NET_RECONNECT_MAX_MS);
	if (type == ZMQ_ROUTER) {
		/* Fail loudly on a vanished peer instead of dropping silently;
		 * the broker treats EHOSTUNREACH as "worker gone". */
		rc = rc ? rc : setopt_int(s, ZMQ_ROUTER_MANDATORY, 1);
	}
	if (rc != 0) {
		zmq_close(s);
		return sl_errmsg_set(why, rc, "zmq_setsockopt: %s",
		    zmq_strerror(rc));
	}
	*out = s;
	return 0;
}

void
sl_net_close(void **sock)
{
	if (sock == NULL || *sock == NULL)
		return;
	zmq_close(*sock);
	*sock = NULL;
}

int
sl_net_send_raw(void *sock, const void *buf, size_t len)
{
	while (zmq_send(sock, buf, len, 0) < 0) {
		if (zmq_errno() != EINTR)
			return zmq_errno();
	}
	return 0;
}

int
sl_net_send(void *sock, const sl_msg *m, sl_proto_buf *buf)
{
	int rc = sl_proto_encode(m, buf);

	return rc ? rc : sl_net_send_raw(sock, buf->p, buf->len);
}

int
sl_net_send_to(void *sock, const void *id, size_t idlen, const sl_msg *m,
    sl_proto_buf *buf)
{
	int rc = sl_proto_encode(m, buf);

	if (rc != 0)
		return rc;
	if (zmq_send(sock, id, idlen, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
		return zmq_errno();
	if (zmq_send(sock, buf->p, buf->len, ZMQ_DONTWAIT) < 0)
		return zmq_errno();
	return 0;
}

uint32_t
sl_net_backoff_ms(uint32_t *cur_ms, uint64_t *rng_state)
{
	uint32_t d = *cur_ms == 0 ? SL_NET_RECONNECT_MIN_MS : *cur_ms * 2;

	if (d > SL_NET_RECONNECT_MAX_MS)
		d = SL_NET_RECONNECT_MAX_MS;
	*cur_ms = d;
	/* xorshift: jitter so that workers cut off together do not come back
	 * in lock step. */
	*rng_state ^= *rng_state << 13;
	*rng_state ^= *rng_state >> 7;
	*rng_state ^= *rng_state << 17;
	return d + (uint32_t)(*rng_state % (d / 4 + 1));
}

uint64_t
sl_net_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t
sl_net_unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int
sl_net_check_endpoint(const char *ep, int bind, sl_errmsg *why)
{
	const char *host, *colon, *port;
	char *end;
	long n;

	if (strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0) {
		if (strchr(ep, '/')[2] != '\0')
			return 0;
		goto bad;
	}
	if (strncmp(ep, "tcp://", 6) != 0)
		goto bad;
	host = ep + 6;
	colon = strrchr(host, ':');
	if (colon == NULL || colon == host)
		goto bad;
	if (host[0] == '[' && colon[-1] != ']')
		goto bad;
	port = colon + 1;
	if (bind && strcmp(port, "*") == 0)
		return 0;
	errno = 0;
	n = strtol(port, &end, 10);
	if (end == port || *end != '\0' || errno != 0 || n < 1 || n > 65535 ||
	    !isdigit((unsigned char)port[0]))
		goto bad;
	if (!bind && colon - host == 1 && host[0] == '*')
		goto bad;
	return 0;
bad:
	return sl_errmsg_set(why, SL_EINVAL, "'%s' is not an endpoint: "
	    "expected tcp://HOST:PORT or ipc://PATH%s", ep,
	    bind ? " (HOST may be *)" : "");
}

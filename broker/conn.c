#include "conn.h"
#include "auth.h"
#include "session.h"
#include "sl_log.h"
#include "sl_net.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define MONITOR_ENDPOINT "inproc://softlabel-broker-monitor"
#define MAX_TRACKED_FDS (1 << 20)

int
conn_open(broker *b)
{
	const int hs = BROKER_HANDSHAKE_MS;
	int events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
	    ZMQ_EVENT_CLOSED;
	struct rlimit rl;
	rlim_t n;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rlim_t want = rl.rlim_max > MAX_TRACKED_FDS ? MAX_TRACKED_FDS :
		    rl.rlim_max;

		if (want > rl.rlim_cur) {
			rl.rlim_cur = want;
			(void)setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	n = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
	if (n > MAX_TRACKED_FDS || n == RLIM_INFINITY)
		n = MAX_TRACKED_FDS;
	b->nconn_fds = (int)n;
	b->max_conns = n > 2 * BROKER_FD_RESERVE ? (uint32_t)(n -
	    BROKER_FD_RESERVE) : (uint32_t)(n / 2);
	if ((b->conns = calloc((size_t)n, sizeof *b->conns)) == NULL) {
		sl_error("out of memory");
		return 1;
	}
	if (b->allow != NULL)
		events |= ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
		    ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
		    ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
	if (zmq_setsockopt(b->sock, ZMQ_HANDSHAKE_IVL, &hs, sizeof hs) != 0 ||
	    zmq_socket_monitor(b->sock, MONITOR_ENDPOINT, events) != 0 ||
	    (b->monitor = zmq_socket(b->zctx, ZMQ_PAIR)) == NULL ||
	    zmq_connect(b->monitor, MONITOR_ENDPOINT) != 0) {
		sl_error("socket monitor: %s", zmq_strerror(zmq_errno()));
		return 1;
	}
	sl_info("connections: at most %u open (fd limit %d), each must say "
	    "something valid within %d s", b->max_conns, b->nconn_fds,
	    b->cfg->hello_timeout_s);
	return 0;
}

void
conn_close(broker *b)
{
	if (b->sock != NULL && b->monitor != NULL)
		zmq_socket_monitor(b->sock, NULL, 0);
	sl_net_close(&b->monitor);
	free(b->conns);
	b->conns = NULL;
}

/* The connection on fd is no longer pending for its address: a session
 * came on it, or it is gone. */
static void
pending_end(broker *b, conn *c)
{
	if (c->open && c->peer >= 0)
		peer_pending_drop(&b->peers, (uint32_t)c->peer, sl_net_now_ms());
	c->peer = -1;
}

/* Ask libzmq to drop the connection on fd: shutdown, not close (the fd is
 * libzmq's; it sees the end, closes it and reports it). */
static void
drop(broker *b, int fd, uint64_t *counter)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
		(void)shutdown(fd, SHUT_RDWR);
	pending_end(b, &b->conns[fd]);
	b->conns[fd].open = 0;
	b->nopen--;
	(*counter)++;
}

/* A connection accepted on fd: pending for its source address (the IP
 * as libzmq's Peer-Address gives it) until a session comes on it, and
 * closed at once when that address has --max-pending-per-peer pending
 * already. An address the table cannot hold goes untracked (the global
 * bound holds). */
static void
accepted(broker *b, int fd)
{
	const int max = b->cfg->max_pending_per_peer;
	conn *c = &b->conns[fd];
	struct sockaddr_storage sa;
	socklen_t len = sizeof sa;
	char host[NI_MAXHOST];
	uint32_t idx;
	enum peer_verdict v;

	if (c->open) { /* closed and reused before we heard */
		pending_end(b, c);
		b->nopen--;
	}
	*c = (conn){ .accepted_ms = sl_net_now_ms(), .open = 1, .peer = -1 };
	b->nopen++;
	if (max == 0 || getpeername(fd, (struct sockaddr *)&sa, &len) != 0 ||
	    getnameinfo((struct sockaddr *)&sa, len, host, sizeof host, NULL, 0,
	    NI_NUMERICHOST) != 0)
		return;
	v = peer_connect(&b->peers, host, sl_net_now_ms(), &idx);
	if (v == PEER_OK) {
		c->peer = (int32_t)idx;
	} else if (v == PEER_PENDING) {
		drop(b, fd, &b->peer_refused[PEER_PENDING]);
		if (broker_log_allow(b, EV_PEER_PENDING))
			sl_warn("closed a connection from %s: it has %d without "
			    "a session open (--max-pending-per-peer)", host, max);
	}
}

/* Its connection is gone: the session's slot may be taken by a new
 * HELLO (session.c), though status shows it until then or until it is
 * forgotten for its silence. */
static void
closed(broker *b, int fd)
{
	conn *c = &b->conns[fd];

	if (!c->open)
		return;
	pending_end(b, c);
	c->open = 0;
	b->nopen--;
	for (int i = 0; i < b->nslots; i++) {
		worker *w = &b->workers[i];

		if (w->used && w->fd == fd && !w->disconnected) {
			w->disconnected = 1;
			session_end_peer(b, w);
			b->sessions_closed++;
		}
	}
}

void
conn_poll(broker *b)
{
	for (int i = 0; i < 4096; i++) {
		zmq_msg_t ev, addr;
		uint16_t event = 0;
		uint32_t value = 0;

		zmq_msg_init(&ev);
		if (zmq_msg_recv(&ev, b->monitor, ZMQ_DONTWAIT) < 0) {
			zmq_msg_close(&ev);
			return;
		}
		zmq_msg_init(&addr);
		zmq_msg_recv(&addr, b->monitor, 0);
		if (zmq_msg_size(&ev) >= 6) {
			memcpy(&event, zmq_msg_data(&ev), 2);
			memcpy(&value, (const uint8_t *)zmq_msg_data(&ev) + 2, 4);
		}
		zmq_msg_close(&ev);
		zmq_msg_close(&addr);
		if (event == ZMQ_EVENT_ACCEPTED && value < (uint32_t)b->nconn_fds) {
			accepted(b, (int)value);
		} else if ((event == ZMQ_EVENT_DISCONNECTED ||
		    event == ZMQ_EVENT_CLOSED) && value < (uint32_t)b->nconn_fds) {
			closed(b, (int)value);
		} else if (event & (ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
		    ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
		    ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL)) {
			auth_handshake_failed(b, event, value);
		}
	}
}

void
conn_heard(broker *b, zmq_msg_t *frame, worker *w)
{
	const int fd = zmq_msg_get(frame, ZMQ_SRCFD);

	if (fd < 0 || fd >= b->nconn_fds)
		return;
	b->conns[fd].heard = 1;
	if (w != NULL) {
		b->conns[fd].session = 1;
		pending_end(b, &b->conns[fd]);
		w->fd = fd;
	}
}

/* Past the limit: the oldest open connection matching (never heard, or
 * heard but without a session), or -1. */
static int
oldest(const broker *b, int heard)
{
	uint64_t t = UINT64_MAX;
	int best = -1;

	for (int fd = 0; fd < b->nconn_fds; fd++) {
		const conn *c = &b->conns[fd];

		if (c->open && c->heard == heard && !c->session &&
		    c->accepted_ms < t) {
			t = c->accepted_ms;
			best = fd;
		}
	}
	return best;
}

void
conn_tick(broker *b)
{
	const uint64_t now = sl_net_now_ms();
	const uint64_t limit = (uint64_t)b->cfg->hello_timeout_s * 1000;
	const uint64_t before = b->idle_closed + b->excess_closed;
	int fd;

	for (fd = 0; b->nopen > 0 && fd < b->nconn_fds; fd++) {
		const conn *c = &b->conns[fd];

		if (c->open && !c->heard && now - c->accepted_ms >= limit)
			drop(b, fd, &b->idle_closed);
	}
	while (b->nopen > b->max_conns &&
	    ((fd = oldest(b, 0)) >= 0 || (fd = oldest(b, 1)) >= 0))
		drop(b, fd, &b->excess_closed);
	if (b->idle_closed + b->excess_closed > before &&
	    broker_log_allow(b, EV_CONN_CLOSED))
		sl_warn("closed %" PRIu64 " connections (%" PRIu64 " silent for "
		    "--hello-timeout %d s, %" PRIu64 " over the limit of %u so "
		    "far); %u open", b->idle_closed + b->excess_closed - before,
		    b->idle_closed, b->cfg->hello_timeout_s, b->excess_closed,
		    b->max_conns, b->nopen);
}

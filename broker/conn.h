/* conn.h - the TCP connections behind the broker's ROUTER, which libzmq
 * hides: a socket monitor reports each one accepted and closed (with its
 * fd), messages say which fd they came on (ZMQ_SRCFD), and so the broker
 * can bound them:
 *
 *   - a connection that sends no valid message within --hello-timeout is
 *     closed (shutdown(2) on its fd: libzmq sees the end and cleans up);
 *   - past max_conns open connections (the fd limit less a reserve for
 *     the store, the dataset and libzmq), the oldest that never sent a
 *     valid message are closed first, then the oldest without a session;
 *   - a session whose connection closed gives its slot to the next HELLO
 *     that finds no free one, once it holds no lease;
 *   - the ZMTP handshake itself is bounded by ZMQ_HANDSHAKE_IVL.
 *
 * The fd in an event may be closed and reused before the broker reads
 * the event: the broker only shuts down sockets, and a wrong one is a
 * reconnect for its peer, never a lost result (workers resend).
 * All on the broker's thread. */
#ifndef CONN_H
#define CONN_H

#include "broker.h"

#define BROKER_HANDSHAKE_MS 10000 /* ZMTP handshake (and CURVE) must end in */
#define BROKER_FD_RESERVE 64      /* fds kept for everything else */

/* Before the ROUTER binds: raise the soft fd limit to the hard one, size
 * the table, set the handshake limit, start the monitor (with the
 * handshake failures auth.c counts under CURVE). Exit status: 0 or 1. */
int conn_open(broker *b);
void conn_close(broker *b);

/* Read pending monitor events. */
void conn_poll(broker *b);
/* A valid message came on the connection of frame; w: its session (or
 * NULL). */
void conn_heard(broker *b, zmq_msg_t *frame, worker *w);
/* Close what outlived --hello-timeout or exceeds max_conns; on the
 * broker's 100 ms tick. */
void conn_tick(broker *b);

#endif

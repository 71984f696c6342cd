/* sl_net.h - libzmq helpers shared by the broker, the workers and the admin
 * tool: socket set-up with the limits and heartbeats we always want, sending
 * encoded messages, and the reconnect back-off.
 *
 * Constants follow the ZeroMQ Guide's Paranoid Pirate: a peer heard nothing
 * from for SL_NET_LIVENESS heartbeats is presumed gone; reconnects back off
 * exponentially from SL_NET_RECONNECT_MIN_MS to SL_NET_RECONNECT_MAX_MS.
 *
 * libzmq errors are translated here, once: functions return 0 or an errno
 * value (zmq_errno()).
 */
#ifndef SL_NET_H
#define SL_NET_H

#include <stddef.h>
#include <stdint.h>

#include "sl_err.h"
#include "sl_proto.h"

#define SL_NET_HEARTBEAT_MS 500
#define SL_NET_LIVENESS 6
/* libzmq's own PING/PONG (ZMTP heartbeats): they close a TCP connection
 * that died without a FIN or a reset. A session's liveness is the
 * protocol's heartbeat above; these are twenty times slower because each
 * PING costs a libzmq timer that is cancelled in O(the side's connections)
 * (poller_base_t::cancel_timer walks every timer). At 500 ms, 4,096
 * sessions took the broker 64 s of CPU to welcome and 0.92 of a core to
 * hold idle; at 10 s, 2.8 s and 0.17. */
#define SL_NET_ZMTP_HEARTBEAT_MS 10000
#define SL_NET_ZMTP_TIMEOUT_MS 30000
#define SL_NET_RECONNECT_MIN_MS 100
#define SL_NET_RECONNECT_MAX_MS 5000
#define SL_NET_DEFAULT_MAX_MSG (64u << 20)

/* Create a socket of type (ZMQ_ROUTER, ZMQ_DEALER) with: linger 0, the
 * message size limit max_msg_bytes (ZMQ_MAXMSGSIZE; bigger messages make
 * libzmq drop the connection), ZMTP heartbeats so dead TCP peers are noticed,
 * and reconnect back-off. */
int sl_net_socket(void *ctx, int type, int64_t max_msg_bytes, void **out,
    sl_errmsg *why);

/* Close a socket and NULL the pointer; accepts NULL. */
void sl_net_close(void **sock);

/* Encode m into buf and send it as one frame (DEALER side). */
int sl_net_send(void *sock, const sl_msg *m, sl_proto_buf *buf);

/* ROUTER side: send to the peer with routing id id[0..idlen). */
int sl_net_send_to(void *sock, const void *id, size_t idlen, const sl_msg *m,
    sl_proto_buf *buf);

/* Send raw bytes as one frame (tests, resends of an already encoded result). */
int sl_net_send_raw(void *sock, const void *buf, size_t len);

/* Next back-off delay: doubles from min to max with 0-25% jitter. *cur_ms
 * holds the state (0 to start). */
uint32_t sl_net_backoff_ms(uint32_t *cur_ms, uint64_t *rng_state);

/* Check that ep has the form of a ZeroMQ endpoint we can use before libzmq
 * sees it (zmq_connect says only "Invalid argument"): tcp://HOST:PORT with
 * PORT 1..65535 (HOST may be [IPv6]; for a bind HOST and PORT may be '*'),
 * ipc://PATH or inproc://NAME. Returns 0, or SL_EINVAL with why saying what
 * was given and what is expected. Thread-safe. */
int sl_net_check_endpoint(const char *ep, int bind, sl_errmsg *why);

/* Milliseconds on the monotonic clock, and Unix time in ms. */
uint64_t sl_net_now_ms(void);
uint64_t sl_net_unix_ms(void);

#endif

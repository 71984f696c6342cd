/* libzmq helpers: back-off, socket options, ROUTER/DEALER round trips and
 * the message size limit, on real sockets over inproc and loopback TCP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <zmq.h>

#include "sl_net.h"

static void
test_backoff_doubles_caps_and_jitters(void **state)
{
	uint32_t cur = 0, prev_base = 0;
	uint64_t rng = 12345;

	(void)state;
	for (int i = 0; i < 12; i++) {
		const uint32_t d = sl_net_backoff_ms(&cur, &rng);

		/* base doubles from MIN up to MAX; jitter adds at most 25% */
		assert_true(cur == SL_NET_RECONNECT_MIN_MS ||
		    cur == prev_base * 2 || cur == SL_NET_RECONNECT_MAX_MS);
		assert_true(d >= cur && d <= cur + cur / 4);
		prev_base = cur;
	}
	assert_int_equal(cur, SL_NET_RECONNECT_MAX_MS);
	/* two workers seeded differently do not come back in lock step */
	uint32_t a = 0, b = 0;
	uint64_t ra = 1, rb = 2;
	int differ = 0;
	for (int i = 0; i < 8; i++)
		differ += sl_net_backoff_ms(&a, &ra) != sl_net_backoff_ms(&b, &rb);
	assert_true(differ > 0);
}

static void
test_socket_options(void **state)
{
	void *ctx = zmq_ctx_new(), *s = NULL;
	int64_t max = 0;
	int v = -1;
	size_t len;
	sl_errmsg why;

	(void)state;
	assert_int_equal(sl_net_socket(ctx, ZMQ_ROUTER, 4096, &s, &why), 0);
	len = sizeof max;
	assert_int_equal(zmq_getsockopt(s, ZMQ_MAXMSGSIZE, &max, &len), 0);
	assert_true(max == 4096);
	len = sizeof v;
	assert_int_equal(zmq_getsockopt(s, ZMQ_LINGER, &v, &len), 0);
	assert_int_equal(v, 0);
	len = sizeof v;
	assert_int_equal(zmq_getsockopt(s, ZMQ_HEARTBEAT_IVL, &v, &len), 0);
	assert_int_equal(v, SL_NET_ZMTP_HEARTBEAT_MS);
	len = sizeof v;
	assert_int_equal(zmq_getsockopt(s, ZMQ_HEARTBEAT_TIMEOUT, &v, &len), 0);
	assert_int_equal(v, SL_NET_ZMTP_TIMEOUT_MS);
	sl_net_close(&s);
	assert_null(s);
	sl_net_close(&s); /* NULL is fine */
	zmq_ctx_term(ctx);
}

static void
test_round_trip_and_size_limit(void **state)
{
	void *ctx = zmq_ctx_new(), *r = NULL, *d = NULL;
	char ep[64];
	size_t eplen = sizeof ep;
	sl_proto_buf buf = { 0 };
	sl_errmsg why;
	sl_msg m, got;
	uint8_t id[256], frame[256];
	int idlen, n;

	(void)state;
	assert_int_equal(sl_net_socket(ctx, ZMQ_ROUTER, 1024, &r, &why), 0);
	assert_int_equal(sl_net_socket(ctx, ZMQ_DEALER, 1 << 20, &d, &why), 0);
	assert_int_equal(zmq_bind(r, "tcp://127.0.0.1:*"), 0);
	assert_int_equal(zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &eplen), 0);
	assert_int_equal(zmq_connect(d, ep), 0);
	int timeout = 5000;
	zmq_setsockopt(r, ZMQ_RCVTIMEO, &timeout, sizeof timeout);
	zmq_setsockopt(d, ZMQ_RCVTIMEO, &timeout, sizeof timeout);

	memset(&m, 0, sizeof m);
	m.type = SL_MSG_READY;
	m.u.ready.credit = 3;
	assert_int_equal(sl_net_send(d, &m, &buf), 0);
	idlen = zmq_recv(r, id, sizeof id, 0);
	assert_true(idlen > 0);
	n = zmq_recv(r, frame, sizeof frame, 0);
	assert_true(n > 0);
	assert_int_equal(sl_proto_decode(frame, (size_t)n, &got, &why), 0);
	assert_int_equal(got.type, SL_MSG_READY);
	assert_int_equal(got.u.ready.credit, 3);

	/* and back through the routing id */
	memset(&m, 0, sizeof m);
	m.type = SL_MSG_HEARTBEAT;
	assert_int_equal(sl_net_send_to(r, id, (size_t)idlen, &m, &buf), 0);
	n = zmq_recv(d, frame, sizeof frame, 0);
	assert_true(n > 0);
	assert_int_equal(sl_proto_decode(frame, (size_t)n, &got, &why), 0);
	assert_int_equal(got.type, SL_MSG_HEARTBEAT);

	/* a frame over the ROUTER's limit never arrives (libzmq drops the
	 * connection); a vanished peer is EHOSTUNREACH, not a silent drop */
	static uint8_t big[4096];
	assert_int_equal(sl_net_send_raw(d, big, sizeof big), 0);
	assert_true(zmq_recv(r, id, sizeof id, ZMQ_DONTWAIT) < 0);
	assert_int_equal(sl_net_send_to(r, "nobody", 6, &m, &buf), EHOSTUNREACH);

	sl_proto_buf_fini(&buf);
	sl_net_close(&r);
	sl_net_close(&d);
	zmq_ctx_term(ctx);
}

static void
test_clocks(void **state)
{
	const uint64_t a = sl_net_now_ms(), u = sl_net_unix_ms();

	(void)state;
	assert_true(sl_net_now_ms() >= a);
	assert_true(u > 1700000000000ULL); /* after 2023 */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff_doubles_caps_and_jitters),
		cmocka_unit_test(test_socket_options),
		cmocka_unit_test(test_round_trip_and_size_limit),
		cmocka_unit_test(test_clocks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

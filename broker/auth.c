#include "auth.h"
#include "session.h"
#include "sl_log.h"
#include "sl_net.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Keys and allow-list, before anything else is opened: a bad key file is a
 * usage error (exit 2) naming the file. */
int
auth_load(broker *b)
{
	const broker_cfg *c = b->cfg;
	sl_errmsg why = { "" };

	if (!zmq_has("curve")) {
		sl_error("--curve-secret: this libzmq was built without CURVE");
		return 2;
	}
	if (sl_curve_load_pair(c->curve_secret, &b->secret, &b->pub, &why) != 0) {
		sl_error("--curve-secret: %s", why.text);
		return 2;
	}
	if (sl_curve_allow_load(c->allow_keys, &b->allow, &why) != 0) {
		sl_error("--allow-keys: %s", why.text);
		return 2;
	}
	if (sl_curve_allow_count(b->allow) == 0)
		sl_warn("--allow-keys %s holds no *.pub file: no worker can "
		    "connect until keys are added and the broker gets SIGHUP",
		    c->allow_keys);
	return 0;
}

/* The ZAP handler goes up before any CURVE socket binds: libzmq admits
 * every key when no handler answers. Then it must refuse a key nobody
 * put on the list, and plaintext, or the broker does not start. */
int
auth_zap_open(broker *b)
{
	sl_curve_key p, s;
	uint8_t bin[32];

	if ((b->zap = zmq_socket(b->zctx, ZMQ_REP)) == NULL ||
	    zmq_bind(b->zap, SL_CURVE_ZAP_ENDPOINT) != 0) {
		sl_error("ZAP handler %s: %s", SL_CURVE_ZAP_ENDPOINT,
		    zmq_strerror(zmq_errno()));
		return 1;
	}
	if (zmq_curve_keypair(p.z85, s.z85) != 0 ||
	    zmq_z85_decode(bin, p.z85) == NULL) {
		sl_error("self-check: zmq_curve_keypair: %s",
		    zmq_strerror(zmq_errno()));
		return 1;
	}
	memset(&s, 0, sizeof s);
	if (sl_curve_decide(b->allow, "CURVE", 5, bin, sizeof bin, NULL) ==
	    SL_CURVE_ADMIT || sl_curve_decide(b->allow, "NULL", 4, NULL, 0,
	    NULL) == SL_CURVE_ADMIT) {
		sl_error("self-check failed: the ZAP handler admits a random "
		    "key or plaintext; refusing to start");
		return 1;
	}
	sl_info("ZAP self-check passed: a random key and plaintext are refused");
	return 0;
}

/* Make a ROUTER a CURVE server under our ZAP domain; before its bind. */
int
auth_curve_server(broker *b, void *sock)
{
	const int one = 1;

	if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
	    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, b->secret.z85,
	    SL_CURVE_Z85_LEN) != 0 ||
	    zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, SL_CURVE_ZAP_DOMAIN,
	    strlen(SL_CURVE_ZAP_DOMAIN)) != 0) {
		sl_error("CURVE server options: %s", zmq_strerror(zmq_errno()));
		return 1;
	}
	return 0;
}

/* Count a refused connection. A refused client reconnects every few
 * hundred ms, so the log gets the first of a reason and then one line per
 * 10 s with the total; status has every count. */
static void
auth_refuse(broker *b, enum auth_reason r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
auth_refuse(broker *b, enum auth_reason r, const char *fmt, ...)
{
	const uint64_t now = sl_net_now_ms();
	char text[256];
	va_list ap;

	b->auth_refused[r]++;
	if (b->auth_logged_ms[r] != 0 && now - b->auth_logged_ms[r] < 10000)
		return;
	b->auth_logged_ms[r] = now;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	sl_warn("refused connection (%s): %s (%" PRIu64 " so far)",
	    broker_auth_names[r], text, b->auth_refused[r]);
}

void
auth_zap_poll(broker *b)
{
	enum sl_curve_verdict v;

	while (sl_curve_zap_serve(b->zap, b->allow, &v) == 0) {
		if (v == SL_CURVE_PLAINTEXT)
			auth_refuse(b, AUTH_PLAINTEXT, "CURVE required");
		else if (v == SL_CURVE_UNKNOWN_KEY || v == SL_CURVE_BAD_REQUEST)
			auth_refuse(b, AUTH_UNKNOWN_KEY, "public key not on the "
			    "allow-list");
	}
}

void
auth_handshake_failed(broker *b, uint16_t event, uint32_t value)
{
	/* A ZAP refusal also shows here as FAILED_AUTH: counted once, by the
	 * handler, which knows why. */
	if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL &&
	    value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
		auth_refuse(b, AUTH_PLAINTEXT, "CURVE required");
	else if (event != ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
		auth_refuse(b, AUTH_HANDSHAKE, "event 0x%x, value 0x%x (0x%x: "
		    "the client has another server key)", event, value,
		    ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC);
}

/* SIGHUP: a new list replaces the old one whole, or not at all. Sessions
 * whose key left it are revoked: their leases go back now, and their next
 * message is refused. */
void
auth_reload(broker *b)
{
	sl_curve_allow *a = NULL;
	sl_errmsg why = { "" };

	if (b->allow == NULL) {
		if (broker_log_allow(b, EV_SIGHUP))
			sl_info("SIGHUP ignored: no --allow-keys");
		return;
	}
	if (sl_curve_allow_load(b->cfg->allow_keys, &a, &why) != 0) {
		if (broker_log_allow(b, EV_SIGHUP))
			sl_error("allow-list not reloaded, the old one stays: %s",
			    why.text);
		return;
	}
	sl_curve_allow_free(&b->allow);
	b->allow = a;
	if (broker_log_allow(b, EV_SIGHUP))
		sl_info("allow-list reloaded: %zu keys", sl_curve_allow_count(a));
	for (int i = 0; i < b->nslots; i++) {
		worker *w = &b->workers[i];

		if (!w->used || w->revoked || w->key.z85[0] == '\0' ||
		    sl_curve_allow_has(a, w->key.z85))
			continue;
		w->revoked = 1;
		session_drop_leases(b, w, "key revoked");
		sl_warn("worker %s revoked: key %.8s... left the allow-list",
		    w->name, w->key.z85);
	}
}

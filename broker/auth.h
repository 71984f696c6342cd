/* auth.h - CURVE for the broker: its key pair and allow-list, the ZAP
 * handler that admits listed keys only, the failed handshakes ZAP never
 * sees (from conn.c's socket monitor), and the allow-list's reload on
 * SIGHUP. Every
 * refusal is counted in b->auth_refused. All on the broker's thread. */
#ifndef AUTH_H
#define AUTH_H

#include "broker.h"

/* Keys and allow-list, before anything else is opened. Exit status: 0, or
 * 2 (logged, naming the file) for a bad key file or list. */
int auth_load(broker *b);
/* The ZAP handler, bound before any CURVE socket, and its self-check.
 * Exit status: 0 or 1 (logged). */
int auth_zap_open(broker *b);
/* Make sock a CURVE server under our ZAP domain; before its bind. */
int auth_curve_server(broker *b, void *sock);
/* Answer pending ZAP requests. */
void auth_zap_poll(broker *b);
/* A failed handshake the socket monitor saw (conn.c): handshakes that
 * never reach ZAP (plaintext, a wrong server key) are counted here. */
void auth_handshake_failed(broker *b, uint16_t event, uint32_t value);

/* SIGHUP: re-read --allow-keys; sessions whose key left it are revoked. */
void auth_reload(broker *b);

#endif

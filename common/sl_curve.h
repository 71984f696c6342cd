/* sl_curve.h - CurveZMQ keys and the broker's ZAP decision, on plain libzmq.
 *
 * Keys travel as Z85 text: 40 characters for 32 bytes. A key file holds one
 * key on one line; a trailing newline is tolerated, nothing else. A secret
 * key file must be owned by the user running us with mode 0600 or less, or
 * by root with mode 0640 or less (PostgreSQL's rule for its key file; the
 * second form is a Kubernetes Secret volume with fsGroup).
 *
 * The allow-list is a directory of *.pub files, one public key each. It is
 * loaded whole or not at all: one invalid file refuses the list, naming the
 * file, so a typo never silently locks a worker out (or a reload never half
 * applies).
 *
 * ZAP (RFC 27): the broker binds a REP socket at SL_CURVE_ZAP_ENDPOINT in its
 * own context and calls sl_curve_zap_serve when it is readable, from the same
 * thread that owns the allow-list, so nothing is locked. Nothing here prints;
 * functions return 0, an errno value or SL_E*, with detail in why.
 */
#ifndef SL_CURVE_H
#define SL_CURVE_H

#include <stddef.h>
#include <stdint.h>

#include "sl_err.h"

#define SL_CURVE_Z85_LEN 40  /* Z85 characters of a 32-byte key */
#define SL_CURVE_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define SL_CURVE_ZAP_DOMAIN "softlabel"

/* A key as Z85 text, NUL-terminated. */
typedef struct sl_curve_key {
	char z85[SL_CURVE_Z85_LEN + 1];
} sl_curve_key;

/* Write a fresh key pair: NAME.key (secret, mode 0600) and NAME.pub
 * (public, 0644 before umask), one Z85 line each. Never overwrites: either
 * file existing is EEXIST, and nothing is left behind on failure. The public
 * key goes to *pub when pub is not NULL. */
int sl_curve_keygen(const char *name, sl_curve_key *pub, sl_errmsg *why);

/* Read one key from path. With secret, the file must be owned by the
 * effective user with no group or other bits, or owned by root with at most
 * group read (no group write or execute, no other bits). SL_EFORMAT for
 * anything but 40 Z85 characters (and an optional newline); EACCES (with
 * why naming the rule and how to fix it) for a secret file with another
 * owner or a looser mode; an errno for an unreadable file. why names the
 * file. */
int sl_curve_load_key(const char *path, int secret, sl_curve_key *out,
    sl_errmsg *why);

/* The public half of a secret key. SL_EFORMAT when secret is not Z85. */
int sl_curve_public(const sl_curve_key *secret, sl_curve_key *pub);

/* Load a secret key and check it against its public half: when path ends
 * in ".key" and the same path with ".pub" exists, the two must match
 * (SL_EMISMATCH, naming both files). The derived public key goes to *pub. */
int sl_curve_load_pair(const char *secret_path, sl_curve_key *secret,
    sl_curve_key *pub, sl_errmsg *why);

/* The allow-list: public keys, sorted, searched by bisection. */
typedef struct sl_curve_allow sl_curve_allow;

/* Load every *.pub file of dir. Any invalid file refuses the whole list
 * (SL_EFORMAT, why naming it); an unreadable dir is its errno. An empty
 * list is valid (it admits nobody). */
int sl_curve_allow_load(const char *dir, sl_curve_allow **out, sl_errmsg *why);
void sl_curve_allow_free(sl_curve_allow **a);
size_t sl_curve_allow_count(const sl_curve_allow *a);
/* 1 when the Z85 key z85 (40 characters, need not be terminated) is on the
 * list. */
int sl_curve_allow_has(const sl_curve_allow *a, const char *z85);

enum sl_curve_verdict {
	SL_CURVE_ADMIT,
	SL_CURVE_PLAINTEXT,    /* mechanism other than CURVE (NULL, PLAIN) */
	SL_CURVE_UNKNOWN_KEY,  /* CURVE, but the key is not on the list */
	SL_CURVE_BAD_REQUEST,  /* a ZAP request we cannot make sense of */
};

/* The decision alone: mechanism (mlen bytes, as ZAP sends it) and the
 * client's binary public key. On SL_CURVE_ADMIT, user_id (when not NULL)
 * gets the key as Z85: what the broker later reads as "User-Id". */
enum sl_curve_verdict sl_curve_decide(const sl_curve_allow *a,
    const char *mechanism, size_t mlen, const uint8_t *key, size_t keylen,
    sl_curve_key *user_id);

/* Receive one ZAP request from the REP socket zap without blocking,
 * decide it with sl_curve_decide and reply 200 (user id: the Z85 key) or
 * 400 with a status text. The verdict goes to *verdict. EAGAIN when no
 * request was waiting; 0 once one was answered. */
int sl_curve_zap_serve(void *zap, const sl_curve_allow *a,
    enum sl_curve_verdict *verdict);

/* Set the client side of CURVE on a socket before it connects. */
int sl_curve_client_setup(void *sock, const sl_curve_key *secret,
    const sl_curve_key *pub, const sl_curve_key *server);

#endif

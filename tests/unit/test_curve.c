/* sl_curve: key files (good, trailing newline, bad length, bad characters,
 * loose secret mode), key pairs, keygen never overwriting, the allow-list
 * loader, and the ZAP decision, including over a real inproc ZAP exchange. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "sl_curve.h"

static char dir[64];

static int
setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof dir, "/tmp/test_curve.XXXXXX");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
put(const char *name, const char *text, mode_t mode, char *path, size_t cap)
{
	FILE *f;

	snprintf(path, cap, "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void
test_key_files(void **state)
{
	char path[256], line[64];
	sl_curve_key pub, sec, k;
	sl_errmsg why = { "" };

	(void)state;
	assert_int_equal(zmq_curve_keypair(pub.z85, sec.z85), 0);

	/* no newline, and one trailing newline: both fine */
	put("a.pub", pub.z85, 0644, path, sizeof path);
	assert_int_equal(sl_curve_load_key(path, 0, &k, &why), 0);
	assert_string_equal(k.z85, pub.z85);
	snprintf(line, sizeof line, "%s\n", pub.z85);
	put("b.pub", line, 0644, path, sizeof path);
	assert_int_equal(sl_curve_load_key(path, 0, &k, &why), 0);
	assert_string_equal(k.z85, pub.z85);

	/* two newlines, a short key, a long key: not 40 characters */
	snprintf(line, sizeof line, "%s\n\n", pub.z85);
	put("c.pub", line, 0644, path, sizeof path);
	assert_int_equal(sl_curve_load_key(path, 0, &k, &why), SL_EFORMAT);
	assert_non_null(strstr(why.text, "c.pub: not 40 Z85 characters"));
	put("d.pub", "abc\n", 0644, path, sizeof path);
	assert_int_equal(sl_curve_load_key(path, 0, &k, &why), SL_EFORMAT);
	assert_non_null(strstr(why.text, "d.pub: not 40 Z85 characters"));
	snprintf(line, sizeof line, "%sx\n", pub.z85);
	put("e.pub", line, 0644, path, sizeof path);
	assert_int_equal(sl_curve_load_key(path, 0, &k, &why), SL_EFORMAT);

	/* a character outside the Z85 alphabet, a space, a CR */
	snprintf(line, sizeof line, "%.39s~", pub.z85);
	put("f.pub", line, 0644, path, sizeof path);
	assert_int_equal(sl_curve_load_key(path, 0, &k, &why), SL_EFORMAT);
	assert_non_null(strstr(why.text, "f.pub: not 40 Z85 characters (byte 39"));
	snprintf(line, sizeof line, "%.39s\r\n", pub.z85);
	put("g.pub", line, 0644, path, sizeof path);
	assert_int_equal(sl_curve_load_key(path, 0, &k, &why), SL_EFORMAT);

	/* a secret: 0600 fine, 0644 and 0640 refused with how to fix it */
	put("s.key", sec.z85, 0600, path, sizeof path);
	assert_int_equal(sl_curve_load_key(path, 1, &k, &why), 0);
	assert_string_equal(k.z85, sec.z85);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(sl_curve_load_key(path, 1, &k, &why), EACCES);
	assert_non_null(strstr(why.text, "s.key: secret key readable by group "
	    "or others (mode 0644): chmod 600 it"));
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(sl_curve_load_key(path, 1, &k, &why), EACCES);
	/* the same file as a public key: mode does not matter */
	assert_int_equal(sl_curve_load_key(path, 0, &k, &why), 0);

	snprintf(path, sizeof path, "%s/absent.key", dir);
	assert_int_equal(sl_curve_load_key(path, 1, &k, &why), ENOENT);
	assert_non_null(strstr(why.text, "absent.key"));
}

static void
test_keygen_and_pairs(void **state)
{
	char name[256], path[256];
	sl_curve_key pub, sec, derived, other;
	sl_errmsg why = { "" };
	struct stat st;

	(void)state;
	snprintf(name, sizeof name, "%s/w", dir);
	assert_int_equal(sl_curve_keygen(name, &pub, &why), 0);
	snprintf(path, sizeof path, "%s/w.key", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 41);
	assert_int_equal(sl_curve_load_pair(path, &sec, &derived, &why), 0);
	assert_string_equal(derived.z85, pub.z85);
	assert_int_equal(sl_curve_public(&sec, &other), 0);
	assert_string_equal(other.z85, pub.z85);

	/* never overwrites */
	assert_int_equal(sl_curve_keygen(name, &other, &why), EEXIST);
	assert_int_equal(sl_curve_load_pair(path, &sec, &derived, &why), 0);
	assert_string_equal(derived.z85, pub.z85);

	/* a .pub beside the .key that is not its half */
	assert_int_equal(zmq_curve_keypair(other.z85, sec.z85), 0);
	snprintf(path, sizeof path, "%s/w.pub", dir);
	unlink(path);
	put("w.pub", other.z85, 0644, path, sizeof path);
	snprintf(path, sizeof path, "%s/w.key", dir);
	assert_int_equal(sl_curve_load_pair(path, &sec, &derived, &why),
	    SL_EMISMATCH);
	assert_non_null(strstr(why.text, "w.pub does not match"));
	/* no .pub beside it: the secret alone is fine */
	snprintf(path, sizeof path, "%s/w.pub", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/w.key", dir);
	assert_int_equal(sl_curve_load_pair(path, &sec, &derived, &why), 0);
	assert_string_equal(derived.z85, pub.z85);
}

static void
test_allow_list_and_decision(void **state)
{
	char path[256];
	sl_curve_key p[3], s, uid;
	uint8_t bin[32];
	sl_curve_allow *a = NULL;
	sl_errmsg why = { "" };

	(void)state;
	for (int i = 0; i < 3; i++)
		assert_int_equal(zmq_curve_keypair(p[i].z85, s.z85), 0);
	put("one.pub", p[0].z85, 0644, path, sizeof path);
	put("two.pub", p[1].z85, 0644, path, sizeof path);
	put("notes.txt", "ignored", 0644, path, sizeof path);
	assert_int_equal(sl_curve_allow_load(dir, &a, &why), 0);
	assert_int_equal(sl_curve_allow_count(a), 2);
	assert_true(sl_curve_allow_has(a, p[0].z85));
	assert_true(sl_curve_allow_has(a, p[1].z85));
	assert_false(sl_curve_allow_has(a, p[2].z85));

	/* the decision: CURVE with a listed key only */
	assert_non_null(zmq_z85_decode(bin, p[1].z85));
	assert_int_equal(sl_curve_decide(a, "CURVE", 5, bin, 32, &uid),
	    SL_CURVE_ADMIT);
	assert_string_equal(uid.z85, p[1].z85);
	assert_int_equal(sl_curve_decide(a, "NULL", 4, NULL, 0, NULL),
	    SL_CURVE_PLAINTEXT);
	assert_int_equal(sl_curve_decide(a, "PLAIN", 5, bin, 32, NULL),
	    SL_CURVE_PLAINTEXT);
	assert_int_equal(sl_curve_decide(a, "CURVE", 5, bin, 31, NULL),
	    SL_CURVE_BAD_REQUEST);
	assert_non_null(zmq_z85_decode(bin, p[2].z85));
	assert_int_equal(sl_curve_decide(a, "CURVE", 5, bin, 32, NULL),
	    SL_CURVE_UNKNOWN_KEY);
	assert_int_equal(sl_curve_decide(NULL, "CURVE", 5, bin, 32, NULL),
	    SL_CURVE_UNKNOWN_KEY);
	sl_curve_allow_free(&a);
	assert_null(a);

	/* one invalid *.pub refuses the whole list, naming the file */
	put("bad.pub", "not a key\n", 0644, path, sizeof path);
	assert_int_equal(sl_curve_allow_load(dir, &a, &why), SL_EFORMAT);
	assert_null(a);
	assert_non_null(strstr(why.text, "bad.pub: not 40 Z85 characters"));
	snprintf(path, sizeof path, "%s/nowhere", dir);
	assert_int_equal(sl_curve_allow_load(path, &a, &why), ENOENT);
}

/* A real ZAP exchange over inproc: a REQ plays libzmq's side. */
static void
test_zap_serve(void **state)
{
	char path[256];
	sl_curve_key p, s;
	uint8_t bin[32];
	sl_curve_allow *a = NULL;
	sl_errmsg why = { "" };
	enum sl_curve_verdict v;
	void *ctx = zmq_ctx_new(), *rep, *req;
	char buf[64];

	(void)state;
	assert_int_equal(zmq_curve_keypair(p.z85, s.z85), 0);
	put("k.pub", p.z85, 0644, path, sizeof path);
	assert_int_equal(sl_curve_allow_load(dir, &a, &why), 0);
	rep = zmq_socket(ctx, ZMQ_REP);
	req = zmq_socket(ctx, ZMQ_REQ);
	assert_int_equal(zmq_bind(rep, "inproc://zap-test"), 0);
	assert_int_equal(zmq_connect(req, "inproc://zap-test"), 0);
	assert_int_equal(sl_curve_zap_serve(rep, a, &v), EAGAIN);

	assert_non_null(zmq_z85_decode(bin, p.z85));
	for (int round = 0; round < 2; round++) {
		const char *frames[] = { "1.0", "id7", "softlabel", "127.0.0.1", "",
		    round == 0 ? "CURVE" : "NULL" };
		int more;
		size_t ml = sizeof more;

		for (int i = 0; i < 6; i++)
			zmq_send(req, frames[i], strlen(frames[i]),
			    i < 5 || round == 0 ? ZMQ_SNDMORE : 0);
		if (round == 0)
			zmq_send(req, bin, 32, 0);
		zmq_pollitem_t it = { rep, 0, ZMQ_POLLIN, 0 };
		assert_int_equal(zmq_poll(&it, 1, 1000), 1);
		assert_int_equal(sl_curve_zap_serve(rep, a, &v), 0);
		assert_int_equal(v, round == 0 ? SL_CURVE_ADMIT : SL_CURVE_PLAINTEXT);
		/* version, request id, status, text, user id, metadata */
		int n = zmq_recv(req, buf, sizeof buf, 0);
		assert_int_equal(n, 3);
		n = zmq_recv(req, buf, sizeof buf, 0);
		assert_memory_equal(buf, "id7", 3);
		n = zmq_recv(req, buf, sizeof buf, 0);
		assert_memory_equal(buf, round == 0 ? "200" : "400", 3);
		zmq_recv(req, buf, sizeof buf, 0);
		n = zmq_recv(req, buf, sizeof buf, 0);
		if (round == 0) {
			assert_int_equal(n, SL_CURVE_Z85_LEN);
			assert_memory_equal(buf, p.z85, SL_CURVE_Z85_LEN);
		} else {
			assert_int_equal(n, 0);
		}
		zmq_getsockopt(req, ZMQ_RCVMORE, &more, &ml);
		assert_true(more);
		assert_int_equal(zmq_recv(req, buf, sizeof buf, 0), 0);
	}
	zmq_close(req);
	zmq_close(rep);
	zmq_ctx_term(ctx);
	sl_curve_allow_free(&a);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_key_files, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keygen_and_pairs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow_list_and_decision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zap_serve, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/* sl_curve: key files (good, trailing newline, bad length, bad characters,
 * loose secret mode), the owner and mode rule for secret keys (root's files
 * and another uid's need root: chown, seteuid), key pairs, keygen never overwriting, the allow-list
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

#define RULE "a secret key file must be owned by you with mode 0600 or " \
	"less, or by root with mode 0640 or less"

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

	/* a secret: 0600 fine, 0644 refused with how to fix it (the owner
	 * and mode rule in full: test_secret_owner_mode) */
	put("s.key", sec.z85, 0600, path, sizeof path);
	assert_int_equal(sl_curve_load_key(path, 1, &k, &why), 0);
	assert_string_equal(k.z85, sec.z85);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(sl_curve_load_key(path, 1, &k, &why), EACCES);
	assert_non_null(strstr(why.text, "s.key: secret key open to group "
	    "or others (mode 0644, owner uid "));
	assert_non_null(strstr(why.text, "): chmod 600 it (" RULE ")"));
	/* the same file as a public key: mode does not matter */
	assert_int_equal(sl_curve_load_key(path, 0, &k, &why), 0);

	snprintf(path, sizeof path, "%s/absent.key", dir);
	assert_int_equal(sl_curve_load_key(path, 1, &k, &why), ENOENT);
	assert_non_null(strstr(why.text, "absent.key"));
}

/* The owner and mode rule for secret keys (PostgreSQL's for ssl_key_file):
 * owned by the effective user with no group or other bits, or owned by
 * root with at most group read. */
#define OTHER_UID 54321 /* an unused uid and gid: the pod's runAsUser/fsGroup */
#define THIRD_UID 54322

struct mode_case {
	const char *name;
	uid_t uid;         /* (uid_t)-1: the test's own */
	gid_t gid;
	mode_t mode;
	int want;          /* 0 or the error */
	const char *text;  /* in why when refused */
};

static void
check_cases(const struct mode_case *c, size_t n, uid_t euid, gid_t egid)
{
	char path[256], z85[SL_CURVE_Z85_LEN + 1], pub[SL_CURVE_Z85_LEN + 1];
	int rc[16];
	sl_errmsg why[16];
	const int switched = euid != geteuid();
	int id_rc = 0;

	assert_true(n <= 16);
	assert_int_equal(zmq_curve_keypair(pub, z85), 0);
	for (size_t i = 0; i < n; i++) {
		put(c[i].name, z85, c[i].mode, path, sizeof path);
		if (c[i].uid != (uid_t)-1)
			assert_int_equal(chown(path, c[i].uid, c[i].gid), 0);
	}
	/* Under another identity, record first and assert after switching
	 * back: a failed assertion must not leave the process as that user. */
	if (switched)
		id_rc = setegid(egid) != 0 || seteuid(euid) != 0;
	for (size_t i = 0; i < n; i++) {
		sl_curve_key k;

		why[i].text[0] = '\0';
		snprintf(path, sizeof path, "%s/%s", dir, c[i].name);
		rc[i] = id_rc ? -1 : sl_curve_load_key(path, 1, &k, &why[i]);
	}
	if (switched)
		assert_true(seteuid(getuid()) == 0 && setegid(getgid()) == 0);
	assert_int_equal(id_rc, 0);
	for (size_t i = 0; i < n; i++) {
		print_message("%-9s owner %-5s mode %04o: %s\n", c[i].name,
		    c[i].uid == (uid_t)-1 ? "self" : c[i].uid == 0 ? "root" :
		    c[i].uid == OTHER_UID ? "other" : "third", (unsigned)c[i].mode,
		    rc[i] == 0 ? "accepted" : why[i].text);
		assert_int_equal(rc[i], c[i].want);
		if (c[i].want != 0) {
			assert_non_null(strstr(why[i].text, c[i].name));
			assert_non_null(strstr(why[i].text, c[i].text));
		}
	}
}

static void
test_secret_owner_mode(void **state)
{
	const int root = geteuid() == 0;
	/* Owned by whoever runs the test. Root's own files fall under the
	 * root branch too, so 0640 and 0440 are fine for root only. */
	const struct mode_case mine[] = {
		{ "m600.key", (uid_t)-1, 0, 0600, 0, NULL },
		{ "m400.key", (uid_t)-1, 0, 0400, 0, NULL },
		{ "m644.key", (uid_t)-1, 0, 0644, EACCES, "(mode 0644, owner uid" },
		{ "m604.key", (uid_t)-1, 0, 0604, EACCES, "): chmod 600 it (" RULE ")" },
		{ "m620.key", (uid_t)-1, 0, 0620, EACCES, RULE },
		{ "m610.key", (uid_t)-1, 0, 0610, EACCES, RULE },
		{ "m660.key", (uid_t)-1, 0, 0660, EACCES, RULE },
		{ "m640.key", (uid_t)-1, 0, 0640, root ? 0 : EACCES, RULE },
		{ "m440.key", (uid_t)-1, 0, 0440, root ? 0 : EACCES, RULE },
	};
	/* As root: root's files with group OTHER, and another user's file. */
	const struct mode_case as_root[] = {
		{ "r440.key", 0, OTHER_UID, 0440, 0, NULL },
		{ "r640.key", 0, OTHER_UID, 0640, 0, NULL },
		{ "r460.key", 0, OTHER_UID, 0460, EACCES, "(mode 0460, owner uid 0)" },
		{ "r450.key", 0, OTHER_UID, 0450, EACCES, RULE },
		{ "r444.key", 0, OTHER_UID, 0444, EACCES, RULE },
		{ "o600.key", OTHER_UID, OTHER_UID, 0600, EACCES,
		  "secret key owned by uid 54321, neither you (uid 0) nor root: "
		  "chown it (" RULE ")" },
	};
	/* As uid/gid OTHER, the way a Kubernetes pod with runAsUser and
	 * fsGroup OTHER sees a Secret volume: root:OTHER 0440. */
	const struct mode_case as_pod[] = {
		{ "k440.key", 0, OTHER_UID, 0440, 0, NULL },
		{ "k640.key", 0, OTHER_UID, 0640, 0, NULL },
		{ "k460.key", 0, OTHER_UID, 0460, EACCES,
		  "(mode 0460, owner uid 0): chmod 640 it (" RULE ")" },
		{ "k444.key", 0, OTHER_UID, 0444, EACCES, RULE },
		{ "p600.key", OTHER_UID, OTHER_UID, 0600, 0, NULL },
		{ "p400.key", OTHER_UID, OTHER_UID, 0400, 0, NULL },
		{ "p640.key", OTHER_UID, OTHER_UID, 0640, EACCES,
		  "(mode 0640, owner uid 54321): chmod 600 it" },
		{ "t444.key", THIRD_UID, OTHER_UID, 0444, EACCES,
		  "owned by uid 54322, neither you (uid 54321) nor root" },
		/* without fsGroup: root's 0400 file is unreadable to the pod */
		{ "n400.key", 0, 0, 0400, EACCES, "Permission denied" },
	};

	(void)state;
	check_cases(mine, sizeof mine / sizeof *mine, geteuid(), getegid());
	if (!root) {
		print_message("skipped: root-owned key files and another uid's "
		    "(chown and seteuid need root)\n");
		return;
	}
	assert_int_equal(chmod(dir, 0755), 0); /* OTHER must reach the files */
	check_cases(as_root, sizeof as_root / sizeof *as_root, 0, 0);
	check_cases(as_pod, sizeof as_pod / sizeof *as_pod, OTHER_UID, OTHER_UID);
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
		cmocka_unit_test_setup_teardown(test_secret_owner_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_keygen_and_pairs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allow_list_and_decision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_zap_serve, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

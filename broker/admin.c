/* softlabel: the admin tool for a running broker and a logit cache.
 *
 *   softlabel status EP                         progress, workers, rejections
 *   softlabel keygen NAME                       CURVE key pair NAME.key, NAME.pub
 *   softlabel inspect STORE                     meta, counts, bytes per sample
 *   softlabel verify STORE[,STORE...]           every record and shard checked
 *   softlabel copy STORE DEST                   compacted snapshot of a live cache
 *   softlabel get STORE --teacher T --sample I  one distribution
 *   softlabel export STORE --teacher T --out probs.npy
 *   softlabel doctor                            BLAS kernel, CPU, threads, self-check
 *
 * STORE,STORE...: the caches of a job split by --rows, read as one
 * (sl_reader_union_open).
 *
 * Exit: 0 fine, 1 runtime failure or (verify) a problem found, 2 bad usage
 * (also a list of caches that are not one job).
 * Reading never blocks the broker: LMDB readers see a snapshot.
 */
#include "sl_blas.h"
#include "sl_curve.h"
#include "sl_file.h"
#include "sl_label.h"
#include "sl_log.h"
#include "sl_net.h"
#include "sl_opt.h"
#include "sl_proto.h"
#include "sl_reader.h"
#include "sl_store.h"
#include "serve.h"

#include <cJSON.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zmq.h>

static const char *teacher_name, *out_path, *curve_secret, *curve_server;
static const char *sample_arg;
static float temperature;
static int as_json, timeout_s, show_help, show_version, max_report, digits;
static int as_logits, watch;
static int view_arg = -1; /* get --view; -1: not given */

static sl_opt opts[] = {
	{ "teacher", SL_OPT_STR, &teacher_name, NULL, 0, 0, "NAME", "teacher (get, export: optional when the cache has one; verify: only this one)", 0 },
	{ "sample", SL_OPT_STR, &sample_arg, NULL, 0, 0, "A[:B]", "get: sample A, or samples A..B-1 (A: or :B open-ended)", 0 },
	{ "view", SL_OPT_INT, &view_arg, NULL, 0, 1023, "V", "get: view V of a teacher with views (default 0); a teacher without views has none", 0 },
	{ "digits", SL_OPT_INT, &digits, "6", 0, 9, "N", "get: decimals printed (0: full float precision, %.9g)", 0 },
	{ "logits", SL_OPT_FLAG, &as_logits, NULL, 0, 0, NULL, "get: the teacher's raw logits (T_stored * values) instead of probabilities; top-k: nan (JSON null) for classes not kept", 0 },
	{ "temperature", SL_OPT_FLOAT, &temperature, "0", 0, 1e4, "T", "distribution at T (get, export; 0: the stored T)", 0 },
	{ "out", SL_OPT_STR, &out_path, NULL, 0, 0, "FILE", "output .npy (export): float32 (rows, classes), or (rows, views, classes) for a teacher with views; NaN where absent", 0 },
	{ "json", SL_OPT_FLAG, &as_json, NULL, 0, 0, NULL, "status: print the broker's JSON as is; get: one JSON object per sample and line, floats in full", 0 },
	{ "timeout", SL_OPT_INT, &timeout_s, "5", 1, 3600, "S", "status: seconds to wait for the broker", 0 },
	{ "watch", SL_OPT_FLAG, &watch, NULL, 0, 0, "[S]", "status: --watch [S] asks again every S seconds (default 2, 0.1-3600) until Ctrl-C or the broker stops answering (exit 0; 1 if it never answered); a terminal is redrawn, a pipe gets one line per refresh", 0 },
	{ "curve-secret", SL_OPT_STR, &curve_secret, NULL, 0, 0, "FILE", "status: this client's secret key (with --curve-server; the .pub beside it must be on the broker's allow-list)", 0 },
	{ "curve-server", SL_OPT_STR, &curve_server, NULL, 0, 0, "FILE", "status: the broker's public key (with --curve-secret)", 0 },
	{ "max-report", SL_OPT_INT, &max_report, "20", 0, 1000000, "N", "verify: problems printed in full", 0 },
	{ "help", SL_OPT_FLAG, &show_help, NULL, 0, 0, NULL, "this text", 0 },
	{ "version", SL_OPT_FLAG, &show_version, NULL, 0, 0, NULL, "print the version", 0 },
	SL_OPT_END
};

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: softlabel status EP [--json] [--timeout S] [--watch [S]]\n"
	    "                        [--curve-secret FILE --curve-server FILE]\n"
	    "       softlabel keygen NAME   (writes NAME.key, mode 0600, and NAME.pub)\n"
	    "       softlabel inspect STORE\n"
	    "       softlabel verify STORE[,STORE...] [--teacher NAME]\n"
	    "       softlabel copy STORE DEST   (a compacted, consistent snapshot,\n"
	    "                           also of a cache a broker writes, into the new\n"
	    "                           directory DEST; nothing left there on failure)\n"
	    "       softlabel get STORE [--teacher NAME] --sample A[:B] [--view V]\n"
	    "                     [--temperature T] [--digits N] [--logits] [--json]\n"
	    "       softlabel export STORE[,STORE...] [--teacher NAME] --out FILE.npy\n"
	    "                     [--temperature T]\n"
	    "       softlabel teacher remove STORE NAME   (a registration that never\n"
	    "                           produced a record; not while a broker runs)\n"
	    "       softlabel doctor   (the OpenBLAS kernel this machine runs, how it\n"
	    "                           was chosen, CPU features, threads, self-check)\n"
	    "       softlabel serve STORE[,STORE...] [--bind EP] [--curve-secret F\n"
	    "                     --allow-keys DIR]  (the read service for students\n"
	    "                           on other hosts: softlabel serve --help)\n"
	    "\n"
	    "STORE,STORE... (verify, export, serve): the caches of one job split\n"
	    "over brokers by softlabel-broker --rows A:B, read as one, as\n"
	    "softlabel-student --store A,B reads them (in any order): their row\n"
	    "ranges must not overlap, their dataset fingerprint and shard size must\n"
	    "be the same, and each must register the teachers (--teacher, or all\n"
	    "of the first cache's) with the same model, temperature and encoding;\n"
	    "else exit 2. verify checks each cache, then the union: rows in none of\n"
	    "the caches are a problem, rows not done yet are named as ranges.\n"
	    "export writes the union, as one cache labeled over all rows would.\n"
	    "\n"
	    "Every program checks its OpenBLAS kernel at start: when OpenBLAS picked a\n"
	    "generic one (Prescott, Core2, ...) on a CPU that can run better, it\n"
	    "re-executes itself once with OPENBLAS_CORETYPE set from cpuid; a value of\n"
	    "OPENBLAS_CORETYPE set by you or the environment is always respected.\n"
	    "\noptions:\n");
	sl_opt_help(opts, out);
}

/* --- doctor ------------------------------------------------------------------ */

/* What sl_blas_start() found and did, for a human; exit 1 when the kernel
 * is not known to compute right here (self-check mismatch, or a kernel the
 * CPU cannot run). */
static int
cmd_doctor(void)
{
	const sl_blas_info *b = sl_blas_info_get();
	const sl_blas_choice *c = &b->choice;
	char feats[160], bf16[256];

	sl_blas_features_format(b->features.bits, feats, sizeof feats);
	printf("kernel      %s\n", b->corename);
	switch (c->how) {
	case SL_BLAS_DEFAULT:
		printf("chosen      default: OpenBLAS's own pick, kept (the best "
		    "class this CPU supports)\n");
		break;
	case SL_BLAS_CPUID:
		printf("chosen      cpuid: OpenBLAS alone picked %s; softlabel "
		    "re-executed with OPENBLAS_CORETYPE=%s\n", c->from, b->corename);
		break;
	case SL_BLAS_ENV:
		printf("chosen      env: OPENBLAS_CORETYPE=%s set by you or the "
		    "environment, respected\n", c->env);
		break;
	case SL_BLAS_FALLBACK:
		printf("chosen      fallback: the sgemm self-check failed under %s "
		    "(or this CPU cannot run it); re-executed with "
		    "OPENBLAS_CORETYPE=%s\n", c->from, b->corename);
		break;
	}
	printf("best here   %s\n", sl_blas_best_kernel(&b->features));
	printf("cpu         %s: %s\n", b->features.vendor[0] ?
	    b->features.vendor : "unknown", feats);
	printf("bf16        no: %s\n", sl_blas_bf16_missing(&b->features,
	    sl_blas_has_sbgemm(), bf16, sizeof bf16));
	printf("threads     %d (OPENBLAS_NUM_THREADS, or one per CPU; the "
	    "programs' --threads overrides)\n", b->threads);
	if (!b->checked)
		printf("self-check  skipped\n");
	else if (b->check.ok)
		printf("self-check  ok: %d sgemm shapes exact against a naive "
		    "loop, %.2f ms\n", b->check.shapes, b->check.elapsed_ms);
	else
		printf("self-check  MISMATCH: %s, max abs error %g\n",
		    b->check.failed, b->check.max_abs_err);
	printf("openblas    %s\n", b->config);
	if (b->note[0])
		printf("note        %s\n", b->note);
	return b->checked && b->check.ok ? 0 : 1;
}

/* Text from elsewhere (a broker's status, names in a cache a worker
 * registered) printed to a terminal: control bytes as \xNN. The result
 * lives until 8 more calls (one printf's arguments). */
static const char *
esc(const char *s)
{
	static char bufs[8][512];
	static unsigned next;
	char *b = bufs[next++ % 8];

	return sl_log_escape(b, sizeof bufs[0], s, strlen(s));
}

/* --- status ------------------------------------------------------------------ */

static double
num(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsNumber(v) ? v->valuedouble : (double)NAN;
}

static const char *
str(const cJSON *o, const char *k)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);

	return cJSON_IsString(v) ? esc(v->valuestring) : "?";
}

/* What a teacher's done count is out of: its (shard, view) units for a
 * teacher with views (status "views" > 0), else the job's shards. */
static double
teacher_total(const cJSON *root, const cJSON *t)
{
	return num(t, "views") > 0 ? num(t, "units") : num(root, "shards");
}

static const char *
teacher_unit(const cJSON *t)
{
	return num(t, "views") > 0 ? "(shard, view) units" : "shards";
}

static void
print_status(const char *text)
{
	cJSON *root = cJSON_Parse(text), *t, *w, *r;

	if (root == NULL) {
		printf("%s\n", esc(text));
		return;
	}
	printf("dataset %s: %.0f rows in %.0f shards of %.0f; up %.0f s, %.0f "
	    "commits, %.0f duplicates dropped\n", str(root, "dataset"),
	    num(root, "rows"), num(root, "shards"), num(root, "shard_rows"),
	    num(root, "uptime_s"), num(root, "commits"), num(root, "duplicates"));
	if (num(root, "rows_end") > 0 && (num(root, "rows_first") > 0 ||
	    num(root, "rows_end") < num(root, "rows")))
		printf("this broker labels rows %.0f:%.0f (--rows)\n",
		    num(root, "rows_first"), num(root, "rows_end"));
	cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(root, "teachers")) {
		const double shards = teacher_total(root, t), done = num(t, "done");
		const double eta = num(t, "eta_s");

		printf("teacher %-16s %6.0f/%.0f %s done (%5.1f%%), %.0f leased, "
		    "%.0f pending, %.0f quarantined, %.0f samples/s",
		    str(t, "name"), done, shards, teacher_unit(t),
		    shards > 0 ? 100 * done / shards : 0,
		    num(t, "leased"), num(t, "pending"), num(t, "quarantined"),
		    num(t, "samples_per_s"));
		if (!isnan(eta))
			printf(", ETA %d:%02d", (int)eta / 60, (int)eta % 60);
		printf("\n");
	}
	cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(root, "workers"))
		printf("  worker %-24s teacher %-12s %2.0f leases %6.0f results "
		    "%8.0f samples/s  last heartbeat %.0f ms ago\n", str(w, "name"),
		    str(w, "teacher"), num(w, "leases"), num(w, "results"),
		    num(w, "samples_per_s"), num(w, "last_heartbeat_ms"));
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "truncated")))
		printf("  (%.0f of %.0f workers listed, at most %.0f quarantined "
		    "shards per teacher: the status was cut to fit its 1 MiB "
		    "limit; the counts are exact)\n", num(root, "workers_listed"),
		    num(root, "workers_total"), num(root, "quarantined_listed_max"));
	printf("rejected:");
	int any = 0;
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(root, "rejected"))
		if (cJSON_IsNumber(r) && r->valuedouble > 0) {
			printf(" %s=%.0f", r->string, r->valuedouble);
			any = 1;
		}
	printf("%s\n", any ? "" : " none");
	const cJSON *auth = cJSON_GetObjectItemCaseSensitive(root, "auth_refused");
	if (cJSON_IsObject(auth)) {
		printf("refused before the protocol (CURVE):");
		cJSON_ArrayForEach(r, auth)
			if (cJSON_IsNumber(r))
				printf(" %s=%.0f", r->string, r->valuedouble);
		printf("\n");
	} else {
		printf("traffic: unauthenticated (no CURVE)\n");
	}
	cJSON_Delete(root);
}

/* softlabel teacher remove STORE NAME: a registration that never produced
 * a record (a typo in a worker's --name, a stray HELLO). Exit 0 removed,
 * 1 refused or failed (the reason on stderr). */
static int
cmd_teacher_remove(const char *dir, const char *name)
{
	sl_store_opts o = { 0, 0, 0, "softlabel teacher remove" };
	sl_store *s = NULL;
	sl_errmsg why = { "" };
	char data[SL_FILE_PATH_MAX];
	struct stat st;
	int rc;

	/* A writable open would create a cache: there must be one. */
	snprintf(data, sizeof data, "%s/data.mdb", dir);
	if (stat(data, &st) != 0) {
		fprintf(stderr, "softlabel: no cache at %s\n", dir);
		return 1;
	}
	if ((rc = sl_store_open(dir, &o, &s, &why)) == 0)
		rc = sl_store_remove_teacher(s, name, &why);
	sl_store_close(&s);
	if (rc != 0) {
		fprintf(stderr, "softlabel: teacher remove %s: %s\n", esc(name),
		    why.text);
		return 1;
	}
	printf("removed teacher %s from %s\n", esc(name), dir);
	return 0;
}

/* Connect a DEALER to ep (CURVE when --curve-secret is given). 0, 1
 * (runtime) or 2 (usage), the error on stderr. */
static int
status_connect(const char *ep, void *ctx, void **s)
{
	sl_errmsg why = { "" };
	int rc;

	if (sl_net_check_endpoint(ep, 0, &why) != 0) {
		fprintf(stderr, "softlabel: status: %s\n", why.text);
		return 2;
	}
	if (sl_net_socket(ctx, ZMQ_DEALER, 64 << 20, s, &why) != 0) {
		fprintf(stderr, "softlabel: %s\n", why.text);
		return 1;
	}
	if (curve_secret != NULL) {
		sl_curve_key sec, pub, srv;

		if (sl_curve_load_pair(curve_secret, &sec, &pub, &why) != 0 ||
		    sl_curve_load_key(curve_server, 0, &srv, &why) != 0) {
			fprintf(stderr, "softlabel: %s\n", why.text);
			return 2;
		}
		rc = sl_curve_client_setup(*s, &sec, &pub, &srv);
		memset(&sec, 0, sizeof sec);
		if (rc != 0) {
			fprintf(stderr, "softlabel: CURVE: %s\n", zmq_strerror(rc));
			return 1;
		}
	}
	if (zmq_connect(*s, ep) != 0) {
		fprintf(stderr, "softlabel: %s: %s\n", ep, zmq_strerror(zmq_errno()));
		return 2;
	}
	return 0;
}

static volatile sig_atomic_t watch_stop;

static void
on_watch_signal(int sig)
{
	(void)sig;
	watch_stop = 1;
}

/* One STATUS round trip: the JSON text, malloc'd, in *text. 0; 1 with the
 * error on stderr (no answer in --timeout, a bad answer); -1 when a signal
 * of --watch stopped the wait. */
static int
status_query(void *s, const char *ep, sl_proto_buf *buf, char **text)
{
	sl_errmsg why = { "" };
	zmq_msg_t frame;
	sl_msg m;
	int rc = 1, n;

	memset(&m, 0, sizeof m);
	m.type = SL_MSG_STATUS;
	sl_net_send(s, &m, buf);
	zmq_msg_init(&frame);
	zmq_pollitem_t item = { s, 0, ZMQ_POLLIN, 0 };
	n = zmq_poll(&item, 1, (long)timeout_s * 1000);
	if (n < 0 && zmq_errno() == EINTR && watch_stop) {
		rc = -1;
		goto out;
	}
	if (n <= 0 || zmq_msg_recv(&frame, s, 0) < 0) {
		fprintf(stderr, "softlabel: no answer from %s in %d s\n", ep,
		    timeout_s);
		goto out;
	}
	if (sl_proto_decode(zmq_msg_data(&frame), zmq_msg_size(&frame), &m,
	    &why) != 0 || m.type != SL_MSG_STATUS_REPLY) {
		fprintf(stderr, "softlabel: bad answer from %s: %s\n", ep,
		    why.text[0] ? why.text : sl_proto_type_name(m.type));
		goto out;
	}
	if ((*text = malloc(m.u.status.json.len + 1)) == NULL)
		goto out;
	memcpy(*text, m.u.status.json.p, m.u.status.json.len);
	(*text)[m.u.status.json.len] = '\0';
	rc = 0;
out:
	zmq_msg_close(&frame);
	return rc;
}

/* --watch on a pipe or a file: one line per refresh, UTC time first:
 *   2026-12-01T15:40:02Z big 5/10 shards 50.0% 1234 samples/s ETA 0:04;
 *   workers 2; rejected 0
 * Returns 1 when every teacher listed is done (and there is one). */
static int
print_status_line(const char *text)
{
	cJSON *root = cJSON_Parse(text), *t, *r;
	double rejected = 0;
	int all_done = 1, nt = 0;
	char when[32];
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (root == NULL) {
		printf("%s %s\n", when, esc(text));
		return 0;
	}
	printf("%s", when);
	cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(root, "teachers")) {
		const double done = num(t, "done"), eta = num(t, "eta_s");
		const double shards = teacher_total(root, t);

		printf("%s %s %.0f/%.0f %s %.1f%% %.0f samples/s", nt++ ? ";" :
		    "", str(t, "name"), done, shards, num(t, "views") > 0 ?
		    "units" : "shards", shards > 0 ? 100 * done / shards : 0,
		    num(t, "samples_per_s"));
		if (!isnan(eta))
			printf(" ETA %d:%02d", (int)eta / 60, (int)eta % 60);
		if (done + num(t, "quarantined") < shards)
			all_done = 0;
	}
	if (nt == 0)
		printf(" no teacher yet");
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(root, "rejected"))
		if (cJSON_IsNumber(r))
			rejected += r->valuedouble;
	printf("; workers %d; rejected %.0f\n", cJSON_GetArraySize(
	    cJSON_GetObjectItemCaseSensitive(root, "workers")), rejected);
	cJSON_Delete(root);
	return nt > 0 && all_done;
}

/* Is every teacher of this status done (quarantined counts as finished)? */
static int
status_all_done(const char *text)
{
	cJSON *root = cJSON_Parse(text), *t;
	int nt = 0, done = 1;

	if (root == NULL)
		return 0;
	cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(root, "teachers")) {
		nt++;
		if (num(t, "done") + num(t, "quarantined") < teacher_total(root, t))
			done = 0;
	}
	cJSON_Delete(root);
	return nt > 0 && done;
}

/* Sleep ms, or less when a signal of --watch comes. */
static void
watch_sleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (!watch_stop && nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* softlabel status EP [--watch [S]]: once, or every S seconds until
 * Ctrl-C or the broker stops answering after it has answered once (both
 * exit 0, the second saying so on stderr); 1 when it never answered. */
static int
cmd_status(const char *ep, double watch_s)
{
	void *ctx = zmq_ctx_new(), *s = NULL;
	sl_proto_buf buf = { 0 };
	const int tty = isatty(STDOUT_FILENO);
	char *text = NULL;
	int rc, n = 0, last_done = 0;

	if ((rc = status_connect(ep, ctx, &s)) != 0)
		goto out;
	if (watch_s > 0) {
		struct sigaction sa;

		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_watch_signal; /* no SA_RESTART: waits end */
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGTERM, &sa, NULL);
	}
	for (;;) {
		rc = status_query(s, ep, &buf, &text);
		if (rc < 0 || watch_stop) {
			rc = 0;
			break;
		}
		if (rc != 0) {
			if (n > 0) {
				fprintf(stderr, "softlabel: status: %s stopped "
				    "answering after %d refreshes; %s\n", ep, n,
				    last_done ? "its job was done" : "the last "
				    "status had shards left (a broker that exits "
				    "when done may go between two refreshes)");
				rc = 0;
			}
			break;
		}
		n++;
		if (watch_s <= 0) {
			if (as_json)
				printf("%s\n", text);
			else
				print_status(text);
			free(text);
			break;
		}
		if (as_json) {
			printf("%s\n", text);
			last_done = status_all_done(text);
		} else if (tty) {
			printf("\033[H\033[2J");
			print_status(text);
			printf("\nsoftlabel status %s, every %g s (Ctrl-C to "
			    "stop)\n", esc(ep), watch_s);
			last_done = status_all_done(text);
		} else {
			last_done = print_status_line(text);
		}
		fflush(stdout);
		free(text);
		text = NULL;
		watch_sleep((long)(watch_s * 1000));
		if (watch_stop)
			break;
	}
out:
	sl_net_close(&s);
	zmq_ctx_term(ctx);
	sl_proto_buf_fini(&buf);
	return rc;
}

/* --- keygen ------------------------------------------------------------------ */

static int
cmd_keygen(const char *name)
{
	sl_errmsg why = { "" };
	sl_curve_key pub;

	if (!zmq_has("curve")) {
		fprintf(stderr, "softlabel: this libzmq was built without CURVE\n");
		return 1;
	}
	if (sl_curve_keygen(name, &pub, &why) != 0) {
		fprintf(stderr, "softlabel: keygen: %s\n", why.text);
		return 1;
	}
	printf("wrote %s.key (secret, mode 0600) and %s.pub (public: %s)\n",
	    name, name, pub.z85);
	return 0;
}

/* --- store commands ---------------------------------------------------------- */

typedef struct cache {
	sl_store *store;
	sl_reader *rd;       /* reader_open's, instead of store */
	sl_store_job job;
	sl_store_teacher teachers[SL_STORE_MAX_TEACHERS];
	size_t nteachers;
	uint64_t nshards;
	uint64_t shard_first, shard_end; /* the shards of its rows (--rows) */
} cache;

/* The shard counts of c->job: all of the dataset's, and its own rows'. */
static void
cache_shards(cache *c)
{
	c->nshards = (c->job.dataset.rows + c->job.shard_rows - 1) /
	    c->job.shard_rows;
	c->shard_first = c->job.rows_first / c->job.shard_rows;
	c->shard_end = (c->job.rows_end + c->job.shard_rows - 1) /
	    c->job.shard_rows;
}

static int
cache_open(const char *dir, cache *c)
{
	sl_store_opts o = { 1, 0, 0, NULL };
	sl_errmsg why = { "" };

	memset(c, 0, sizeof *c);
	if (sl_store_open(dir, &o, &c->store, &why) != 0 ||
	    sl_store_get_job(c->store, &c->job, &why) != 0 ||
	    sl_store_teachers(c->store, c->teachers, SL_STORE_MAX_TEACHERS,
	    &c->nteachers, &why) != 0) {
		fprintf(stderr, "softlabel: %s: %s\n", dir, why.text);
		sl_store_close(&c->store);
		return 1;
	}
	cache_shards(c);
	return 0;
}

/* 1 when a part of spec (a comma list) is an endpoint, not a directory. */
static int
has_remote_part(const char *spec)
{
	for (const char *p = spec; *p; p += strcspn(p, ",") + (p[strcspn(p,
	    ",")] == ','))
		if (sl_reader_is_remote(p))
			return 1;
	return 0;
}

/* The cache at spec read through a reader: one directory, or the parts
 * of a job split by --rows, "a,b", read as one (sl_reader_union_open: the
 * parts must share --teacher, or every teacher of the first, and be one
 * job). Returns 0, or the exit status after a one-line message: 2 for a
 * list that is not one job or an endpoint where a directory must be, 1
 * for any other failure. */
static int
reader_open(const char *spec, const char *cmd, cache *c)
{
	sl_errmsg why = { "" };
	int rc, list = strchr(spec, ',') != NULL;

	memset(c, 0, sizeof *c);
	if (has_remote_part(spec)) {
		fprintf(stderr, "softlabel: %s: '%s': %s reads cache directories, "
		    "not endpoints (softlabel copy brings a cache to this host)\n",
		    cmd, esc(spec), cmd);
		return 2;
	}
	rc = list ? sl_reader_union_open(spec, teacher_name, NULL, &c->rd,
	    &why) : sl_reader_open(spec, NULL, &c->rd, &why);
	if (rc == 0 && (rc = sl_reader_job(c->rd, &c->job, &why)) == 0)
		rc = sl_reader_teachers(c->rd, c->teachers, SL_STORE_MAX_TEACHERS,
		    &c->nteachers, &why);
	if (rc != 0) {
		if (list)
			fprintf(stderr, "softlabel: %s: %s\n", cmd, why.text);
		else
			fprintf(stderr, "softlabel: %s: %s\n", spec, why.text);
		sl_reader_close(&c->rd);
		return list && rc == SL_EINVAL ? 2 : 1;
	}
	cache_shards(c);
	return 0;
}

static const sl_store_teacher *
find_teacher(const cache *c, const char *name)
{
	for (size_t i = 0; i < c->nteachers; i++)
		if (strcmp(c->teachers[i].name, name) == 0)
			return &c->teachers[i];
	fprintf(stderr, "softlabel: no teacher '%s' in the cache (", esc(name));
	for (size_t i = 0; i < c->nteachers; i++)
		fprintf(stderr, "%s%s", i ? ", " : "", esc(c->teachers[i].name));
	fprintf(stderr, "%s)\n", c->nteachers ? "" : "none registered");
	return NULL;
}

typedef struct counter {
	uint64_t done, quarantined;
} counter;

static int
count_shard(void *arg, uint64_t shard, const sl_shard_info *info)
{
	counter *k = arg;

	(void)shard;
	k->done += info->state == SL_SHARD_DONE;
	k->quarantined += info->state == SL_SHARD_QUARANTINED;
	return 0;
}

static int
count_view_rec(void *arg, uint64_t s, uint32_t view, const void *rec,
    size_t len)
{
	(void)s, (void)view, (void)rec, (void)len;
	(*(uint64_t *)arg)++;
	return 0;
}

/* Records of a teacher with views (a walk of its keys; 0 on a walk error,
 * which verify reports). */
static uint64_t
count_records(sl_store_txn *txn, const sl_store_teacher *t)
{
	uint64_t n = 0;

	if (sl_store_each_label_view(txn, t->index, 0, count_view_rec, &n) != 0)
		return 0;
	return n;
}

static int
cmd_inspect(const char *dir)
{
	cache c;
	sl_store_txn *txn = NULL;
	sl_store_stat st;
	sl_errmsg why = { "" };
	char enc[32], hex[65];

	if (cache_open(dir, &c) != 0)
		return 1;
	if (sl_store_stat_get(c.store, &st, &why) != 0 ||
	    sl_store_read_begin(c.store, &txn, &why) != 0) {
		fprintf(stderr, "softlabel: %s: %s\n", dir, why.text);
		sl_store_close(&c.store);
		return 1;
	}
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", c.job.dataset.sha256[i]);
	printf("cache       %s (schema %u%s)\n", dir, c.job.schema,
	    c.job.schema < SL_STORE_SCHEMA ? ", written before views" : "");
	printf("dataset     %s\n", esc(c.job.dataset_path));
	printf("            %" PRIu64 " rows, shape (", c.job.dataset.rows);
	for (uint32_t d = 0; d < c.job.dataset.ndim; d++)
		printf("%s%" PRIu64, d ? ", " : "", c.job.dataset.shape[d]);
	printf("), %s, sha256 %s\n", c.job.dataset.dtype == SL_DTYPE_U8 ?
	    "uint8" : "float32", hex);
	printf("shards      %" PRIu64 " of %u rows\n", c.nshards, c.job.shard_rows);
	if (c.shard_end - c.shard_first != c.nshards)
		printf("rows        %" PRIu64 ":%" PRIu64 " of them in this cache "
		    "(shards %" PRIu64 "..%" PRIu64 ", a job split by --rows)\n",
		    c.job.rows_first, c.job.rows_end, c.shard_first,
		    c.shard_end - 1);
	for (size_t i = 0; i < c.nteachers; i++) {
		const sl_store_teacher *t = &c.teachers[i];
		counter k = { 0, 0 };
		char pre[256];

		sl_store_each_shard(txn, t->index, count_shard, &k);
		sl_label_format_encoding(&t->fmt, enc, sizeof enc);
		printf("teacher %u   %s: model sha256 %s, T=%g, %s, %u classes, "
		    "%zu bytes/record; %" PRIu64 "/%" PRIu64 " %s done, %"
		    PRIu64 " quarantined\n", t->index, esc(t->name),
		    esc(t->model_sha256),
		    (double)t->temperature, enc, t->fmt.classes,
		    sl_label_size(&t->fmt), k.done, (c.shard_end - c.shard_first) *
		    (t->views ? t->views : 1), t->views ? "(shard, view) units" :
		    "shards", k.quarantined);
		if (t->views) {
			char rt[SL_VIEW_RECIPE_TEXT];
			const uint64_t nrec = count_records(txn, t);

			sl_view_recipe_format(rt, sizeof rt, &t->view_recipe);
			printf("            views %u per sample, recipe %s, seed %"
			    PRIu64 "\n", t->views, rt, t->view_seed);
			printf("            %" PRIu64 " records; per view %zu bytes "
			    "of record + 16 of key, %zu per sample for all %u "
			    "views\n", nrec, sl_label_size(&t->fmt),
			    (sl_label_size(&t->fmt) + 16) * t->views, t->views);
		}
		if (t->has_pre && t->pre.channels == 1)
			printf("            input (x * %.9g - %.9g) / %.9g\n",
			    (double)t->pre.scale, (double)t->pre.mean[0],
			    (double)t->pre.std[0]);
		else if (t->has_pre)
			printf("            input (x * S - mean[c]) / std[c], %u "
			    "channels: %s\n", t->pre.channels,
			    sl_preproc_format(&t->pre, pre, sizeof pre));
	}
	printf("records     %" PRIu64 " labels, %" PRIu64 " shard entries, %"
	    PRIu64 " inputs\n", st.labels, st.shards, st.inputs);
	{
		sl_store_audit a;
		int rc = sl_store_get_audit(txn, &a, &why);

		if (rc == 0)
			printf("audits      %" PRIu64 " agreed, %" PRIu64 " disputed "
			    "(%" PRIu64 " settled by a third opinion, %" PRIu64
			    " quarantined); %" PRIu64 " workers refused, %" PRIu64
			    " of their shards deleted and recomputed\n", a.passed,
			    a.disputed, a.settled, a.unsettled, a.refused,
			    a.purged_shards);
		else if (rc == SL_ENOTFOUND)
			printf("audits      none recorded\n");
		else
			printf("audits      %s\n", esc(why.text));
	}
	printf("size        %" PRIu64 " bytes in use, file %" PRIu64 " bytes; "
	    "%.1f bytes per record (a record: one sample, or one view of a "
	    "sample)\n", st.used_bytes, st.file_bytes,
	    st.labels ? (double)st.used_bytes / (double)st.labels : 0.0);
	printf("readers     %u of %u slots in use\n", st.readers_used,
	    st.readers_max);
	sl_store_read_end(&txn);
	sl_store_close(&c.store);
	return 0;
}

/* softlabel copy STORE DEST: a compacted snapshot of a cache, live or not,
 * into the new directory DEST (sl_store_copy). Exit 0 copied, 1 failed
 * (nothing left at DEST). */
static int
cmd_copy(const char *dir, const char *dest)
{
	cache c;
	sl_store_stat src, dst;
	sl_store *copy = NULL;
	sl_store_opts ro = { 1, 0, 0, NULL };
	sl_errmsg why = { "" };

	if (cache_open(dir, &c) != 0)
		return 1;
	if (sl_store_stat_get(c.store, &src, &why) != 0 ||
	    sl_store_copy(c.store, dest, &why) != 0) {
		fprintf(stderr, "softlabel: copy %s to %s: %s\n", dir, dest,
		    why.text);
		sl_store_close(&c.store);
		return 1;
	}
	sl_store_close(&c.store);
	if (sl_store_open(dest, &ro, &copy, &why) != 0 ||
	    sl_store_stat_get(copy, &dst, &why) != 0) {
		fprintf(stderr, "softlabel: the copy %s does not open: %s\n", dest,
		    why.text);
		sl_store_close(&copy);
		return 1;
	}
	sl_store_close(&copy);
	printf("copied %s to %s: %" PRIu64 " labels, %" PRIu64 " shard entries, %"
	    PRIu64 " inputs; %" PRIu64 " bytes (the source's file: %" PRIu64
	    ")\n", dir, dest, dst.labels, dst.shards, dst.inputs, dst.file_bytes,
	    src.file_bytes);
	return 0;
}

/* verify: one pass over each teacher's shard entries and records. */
typedef struct vctx {
	const cache *c;
	const sl_store_teacher *t;
	/* Per unit: a shard, or (shard, view) as shard * V + view for a
	 * teacher with V views; V 1 without views. */
	uint32_t V;
	uint64_t nunits;
	uint8_t *state;    /* (nunits) from the shards db */
	uint32_t *count;   /* (nunits) records seen per unit */
	uint64_t records, problems;
	int64_t last;
} vctx;

static void
problem(vctx *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
problem(vctx *v, const char *fmt, ...)
{
	va_list ap;

	if (v->problems++ < (uint64_t)max_report) {
		va_start(ap, fmt);
		printf("PROBLEM teacher %s: ", esc(v->t->name));
		vprintf(fmt, ap);
		printf("\n");
		va_end(ap);
	}
}

static int
verify_shard(void *arg, uint64_t shard, const sl_shard_info *info)
{
	vctx *v = arg;

	if (shard >= v->nunits)
		problem(v, "shard entry %" PRIu64 " beyond the %" PRIu64
		    " %s of the dataset", shard, v->nunits, v->t->views ?
		    "(shard, view) units" : "shards");
	else if (shard / v->V < v->c->shard_first ||
	    shard / v->V >= v->c->shard_end)
		problem(v, "shard entry %" PRIu64 " outside the cache's rows %"
		    PRIu64 ":%" PRIu64, shard, v->c->job.rows_first,
		    v->c->job.rows_end);
	else
		v->state[shard] = (uint8_t)info->state;
	return 0;
}

/* A record of a teacher with views: counted under its unit. */
static int
verify_view_label(void *arg, uint64_t s, uint32_t view, const void *rec,
    size_t len)
{
	vctx *v = arg;
	sl_errmsg why = { "" };
	const uint64_t unit = s / v->c->job.shard_rows * v->V + view;

	v->records++;
	if (s >= v->c->job.dataset.rows || view >= v->V) {
		problem(v, "sample %" PRIu64 " view %u: beyond the dataset's %"
		    PRIu64 " rows x %u views", s, view, v->c->job.dataset.rows,
		    v->V);
		return 0;
	}
	if (v->state[unit] != SL_SHARD_DONE)
		problem(v, "sample %" PRIu64 " view %u: record in shard %" PRIu64
		    " view %u which is not done", s, view, unit / v->V, view);
	v->count[unit]++;
	if (sl_label_check(rec, len, &v->t->fmt, NULL, &why) != 0)
		problem(v, "sample %" PRIu64 " view %u: %s", s, view, why.text);
	return 0;
}

static int
verify_label(void *arg, uint64_t s, const void *rec, size_t len)
{
	vctx *v = arg;
	sl_errmsg why = { "" };
	const uint64_t shard = s / v->c->job.shard_rows;

	v->records++;
	if (s >= v->c->job.dataset.rows) {
		problem(v, "sample %" PRIu64 ": beyond the dataset's %" PRIu64
		    " rows", s, v->c->job.dataset.rows);
		return 0;
	}
	if (v->state[shard] != SL_SHARD_DONE)
		problem(v, "sample %" PRIu64 ": record in shard %" PRIu64
		    " which is not done", s, shard);
	v->count[shard]++;
	if (sl_label_check(rec, len, &v->t->fmt, NULL, &why) != 0)
		problem(v, "sample %" PRIu64 ": %s", s, why.text);
	return 0;
}

/* verify of one cache; its job into *job when not NULL. */
static int
verify_one(const char *dir, sl_store_job *job)
{
	cache c;
	sl_store_txn *txn = NULL;
	sl_errmsg why = { "" };
	uint64_t total_problems = 0, total_records = 0;

	if (cache_open(dir, &c) != 0)
		return 1;
	if (job != NULL)
		*job = c.job;
	if (sl_store_read_begin(c.store, &txn, &why) != 0) {
		fprintf(stderr, "softlabel: %s: %s\n", dir, why.text);
		sl_store_close(&c.store);
		return 1;
	}
	for (size_t i = 0; i < c.nteachers; i++) {
		const uint32_t V = c.teachers[i].views ? c.teachers[i].views : 1;
		vctx v = { &c, &c.teachers[i], V, c.nshards * V, NULL, NULL, 0, 0,
		    -1 };
		uint64_t done = 0, per_view[8] = { 0 };

		if (teacher_name && strcmp(teacher_name, c.teachers[i].name) != 0)
			continue;
		v.state = calloc(v.nunits + 1, 1);
		v.count = calloc(v.nunits + 1, sizeof *v.count);
		if (v.state == NULL || v.count == NULL) {
			fprintf(stderr, "softlabel: out of memory\n");
			free(v.state);
			free(v.count);
			break;
		}
		int rc1 = sl_store_each_shard(txn, v.t->index, verify_shard, &v);
		int rc2 = v.t->views ? sl_store_each_label_view(txn, v.t->index,
		    0, verify_view_label, &v) : sl_store_each_label(txn,
		    v.t->index, 0, verify_label, &v);
		if (rc1 != 0 || rc2 != 0)
			problem(&v, "cannot walk the cache: %s",
			    sl_strerror(rc1 ? rc1 : rc2));
		for (uint64_t u = 0; u < v.nunits; u++) {
			const uint64_t s = u / V;
			const uint64_t first = s * c.job.shard_rows;
			const uint64_t want = c.job.dataset.rows - first <
			    c.job.shard_rows ? c.job.dataset.rows - first :
			    c.job.shard_rows;

			if (v.state[u] != SL_SHARD_DONE)
				continue;
			done++;
			if (v.t->views && u % V < 8)
				per_view[u % V]++;
			if (v.count[u] == want)
				continue;
			if (v.t->views)
				problem(&v, "shard %" PRIu64 " view %u is done but "
				    "holds %u records of %" PRIu64, s,
				    (unsigned)(u % V), v.count[u], want);
			else
				problem(&v, "shard %" PRIu64 " is done but holds %u "
				    "records of %" PRIu64, s, v.count[u], want);
		}
		if (v.t->views) {
			printf("teacher %s: %" PRIu64 " records in %" PRIu64 "/%"
			    PRIu64 " done (shard, view) units of %u views "
			    "checked, %" PRIu64 " problems\n", esc(v.t->name),
			    v.records, done, (c.shard_end - c.shard_first) * V, V,
			    v.problems);
			for (uint32_t k = 0; k < V && k < 8; k++)
				printf("  view %u: %" PRIu64 "/%" PRIu64 " shards "
				    "done\n", k, per_view[k],
				    c.shard_end - c.shard_first);
			if (V > 8)
				printf("  (views 8..%u not listed)\n", V - 1);
		} else {
			printf("teacher %s: %" PRIu64 " records in %" PRIu64 "/%"
			    PRIu64 " done shards checked, %" PRIu64 " problems\n",
			    esc(v.t->name), v.records, done,
			    c.shard_end - c.shard_first, v.problems);
		}
		total_problems += v.problems;
		total_records += v.records;
		free(v.state);
		free(v.count);
	}
	sl_store_read_end(&txn);
	sl_store_close(&c.store);
	printf("%s: %" PRIu64 " records, %s\n", dir, total_records,
	    total_problems ? "PROBLEMS FOUND" : "ok");
	return total_problems ? 1 : 0;
}

/* Union coverage: the rows of shards not done, as ranges. */
typedef struct cover {
	const cache *c;
	const char *teacher;
	uint64_t next;          /* the first shard not seen yet */
	uint64_t done_rows, ranges;
} cover;

/* Rows of shards [s0, s1). */
static uint64_t
shard_rows_of(const cache *c, uint64_t s0, uint64_t s1, uint64_t *first,
    uint64_t *end)
{
	const uint64_t rows = c->job.dataset.rows, sr = c->job.shard_rows;

	*first = s0 * sr;
	*end = s1 * sr < rows ? s1 * sr : rows;
	return *end - *first;
}

static void
cover_missing(cover *k, uint64_t upto)
{
	uint64_t a, b;

	if (upto <= k->next)
		return;
	shard_rows_of(k->c, k->next, upto, &a, &b);
	if (k->ranges++ < (uint64_t)max_report)
		printf("union: teacher %s: rows %" PRIu64 ":%" PRIu64 " missing "
		    "(shards %" PRIu64 "..%" PRIu64 " not done)\n", esc(k->teacher),
		    a, b, k->next, upto - 1);
}

static int
cover_run(void *arg, uint64_t first, uint64_t count)
{
	cover *k = arg;
	uint64_t a, b;

	cover_missing(k, first);
	k->done_rows += shard_rows_of(k->c, first, first + count, &a, &b);
	k->next = first + count;
	return 0;
}

/* verify A,B: each part as `verify A` does, then the union: the parts are
 * one job (or the list is refused, exit 2), rows no part labels are a
 * problem, and the rows still missing are named as ranges. */
static int
cmd_verify_list(const char *list)
{
	sl_store_job jobs[SL_READER_MAX_PARTS];
	char *copy, *save = NULL;
	uint64_t gaps = 0, missing = 0;
	sl_errmsg why = { "" };
	cache c;
	int rc, nparts = 0, bad = 0;

	/* Refuse a list that is not one job before checking anything. */
	if ((rc = reader_open(list, "verify", &c)) != 0)
		return rc;
	sl_reader_close(&c.rd); /* a part is opened once at a time */
	if ((copy = strdup(list)) == NULL) {
		fprintf(stderr, "softlabel: out of memory\n");
		return 1;
	}
	for (char *p = strtok_r(copy, ",", &save); p != NULL;
	    p = strtok_r(NULL, ",", &save))
		bad |= verify_one(p, &jobs[nparts++]) != 0;
	free(copy);
	/* Rows in no part's range, in rows order. */
	uint64_t next = 0;
	for (;;) {
		uint64_t lo = UINT64_MAX, hi = 0;

		for (int p = 0; p < nparts; p++)
			if (jobs[p].rows_first >= next && jobs[p].rows_first < lo) {
				lo = jobs[p].rows_first;
				hi = jobs[p].rows_end;
			}
		if (lo == UINT64_MAX)
			lo = jobs[0].dataset.rows;
		if (lo > next) {
			gaps += lo - next;
			printf("PROBLEM union: rows %" PRIu64 ":%" PRIu64 " are in "
			    "none of the caches listed\n", next, lo);
		}
		if (lo >= jobs[0].dataset.rows)
			break;
		next = hi;
	}
	if ((rc = reader_open(list, "verify", &c)) != 0)
		return rc;
	for (size_t i = 0; i < c.nteachers; i++) {
		cover k = { &c, c.teachers[i].name, 0, 0, 0 };

		if ((rc = sl_reader_each_done(c.rd, c.teachers[i].index, cover_run,
		    &k, &why)) != 0) {
			fprintf(stderr, "softlabel: verify: %s\n", why.text);
			sl_reader_close(&c.rd);
			return 1;
		}
		cover_missing(&k, c.nshards);
		if (k.ranges > (uint64_t)max_report)
			printf("union: teacher %s: %" PRIu64 " more missing ranges\n",
			    esc(k.teacher), k.ranges - (uint64_t)max_report);
		printf("union: teacher %s: %" PRIu64 " of %" PRIu64 " rows done in "
		    "%d caches\n", esc(k.teacher), k.done_rows,
		    c.job.dataset.rows, nparts);
		missing += c.job.dataset.rows - k.done_rows;
	}
	sl_reader_close(&c.rd);
	printf("union of %d caches: %s%s\n", nparts, bad || gaps ?
	    "PROBLEMS FOUND" : "ok", !bad && !gaps && missing ?
	    " (not complete yet)" : "");
	return bad || gaps ? 1 : 0;
}

static int
cmd_verify(const char *dir)
{
	return strchr(dir, ',') != NULL ? cmd_verify_list(dir) :
	    verify_one(dir, NULL);
}

/* s as a JSON string (escaped); free with cJSON_free. */
static char *
json_quote(const char *s)
{
	cJSON *j = cJSON_CreateString(s);
	char *out = j != NULL ? cJSON_PrintUnformatted(j) : NULL;

	cJSON_Delete(j);
	return out;
}

/* 60000 -> "60,000", for messages people read. */
static const char *
grouped(uint64_t v, char buf[32])
{
	char tmp[24];
	int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v), o = 0;

	for (int i = 0; i < n; i++) {
		if (i > 0 && (n - i) % 3 == 0)
			buf[o++] = ',';
		buf[o++] = tmp[i];
	}
	buf[o] = '\0';
	return buf;
}

/* The teacher get and export read: --teacher, or the cache's only one.
 * NULL with *rc the exit status when there is none to take. */
static const sl_store_teacher *
pick_teacher(const cache *c, const char *cmd, int *rc)
{
	*rc = 1;
	if (teacher_name != NULL)
		return find_teacher(c, teacher_name);
	if (c->nteachers == 1)
		return &c->teachers[0];
	if (c->nteachers == 0) {
		fprintf(stderr, "softlabel: %s: no teacher is registered in the "
		    "cache yet\n", cmd);
		return NULL;
	}
	fprintf(stderr, "softlabel: %s: the cache has %zu teachers (", cmd,
	    c->nteachers);
	for (size_t i = 0; i < c->nteachers; i++)
		fprintf(stderr, "%s%s", i ? ", " : "", esc(c->teachers[i].name));
	fprintf(stderr, "): name one with --teacher\n");
	*rc = 2;
	return NULL;
}

/* --sample I, A:B (A..B-1), A: or :B, within [0, rows). Returns 0, or the
 * exit status after a one-line message. */
static int
parse_samples(const char *arg, uint64_t rows, uint64_t *first, uint64_t *end)
{
	const char *colon = strchr(arg, ':');
	char rbuf[32];
	uint64_t v[2] = { 0, rows };
	int given[2] = { 0, 0 };

	for (int k = 0; k < (colon ? 2 : 1); k++) {
		const char *p = k == 0 ? arg : colon + 1;
		const char *stop = k == 0 && colon ? colon : p + strlen(p);
		char *e;

		if (p == stop && colon != NULL)
			continue; /* open-ended */
		errno = 0;
		unsigned long long n = strtoull(p, &e, 10);
		if (p == stop || e != stop || errno != 0 || *p == '-' || *p == '+' ||
		    *p == ' ') {
			fprintf(stderr, "softlabel: --sample: '%s' is not a sample "
			    "index I or a range A:B\n", arg);
			return 2;
		}
		v[k] = n;
		given[k] = 1;
	}
	if (!colon)
		v[1] = v[0] + 1;
	if (!given[0] && colon)
		v[0] = 0;
	if (v[0] >= rows || v[1] > rows || (!colon && v[0] == UINT64_MAX)) {
		const uint64_t bad = v[0] >= rows ? v[0] : v[1] - 1;

		if (rows == 0)
			fprintf(stderr, "softlabel: sample %" PRIu64 " is out of "
			    "range (the dataset has no rows)\n", bad);
		else
			fprintf(stderr, "softlabel: sample %" PRIu64 " is out of "
			    "range (dataset has %s rows: 0..%" PRIu64 ")\n", bad,
			    grouped(rows, rbuf), rows - 1);
		return 2;
	}
	if (v[1] <= v[0]) {
		fprintf(stderr, "softlabel: --sample %s: an empty range (A:B "
		    "means A..B-1)\n", arg);
		return 2;
	}
	*first = v[0];
	*end = v[1];
	return 0;
}

static void
print_float(float f, int json)
{
	if (!isfinite(f)) {
		fputs(json ? "null" : "nan", stdout);
		return;
	}
	if (json || digits == 0)
		printf("%.9g", (double)f);
	else
		printf("%.*f", digits, (double)f);
}

/* One sample: 0 printed, 1 absent or corrupt (said on stderr, or in the
 * JSON line). */
static int
get_one(sl_store_txn *txn, const cache *c, const sl_store_teacher *t,
    uint64_t s, uint32_t view, float T, float *v)
{
	sl_errmsg why = { "" };
	const uint32_t C = t->fmt.classes;
	const void *rec;
	size_t len;
	char vtext[32] = "";

	if (view != SL_STORE_NO_VIEW)
		snprintf(vtext, sizeof vtext, " view %u", view);
	if (sl_store_get_label_view(txn, t->index, s, view, &rec, &len) != 0) {
		const uint64_t shard = s / c->job.shard_rows;
		sl_shard_info info;
		const char *state = "pending";
		int rc = sl_store_get_shard(txn, t->index, view == SL_STORE_NO_VIEW ?
		    shard : shard * t->views + view, &info, &why);

		if (rc == 0)
			state = info.state == SL_SHARD_QUARANTINED ? "quarantined" :
			    info.state == SL_SHARD_DONE ? "done, yet without this "
			    "record (run softlabel verify)" : "unknown";
		if (as_json) {
			char *name = json_quote(t->name);

			printf("{\"teacher\":%s,\"sample\":%" PRIu64 ",", name ?
			    name : "null", s);
			if (view != SL_STORE_NO_VIEW)
				printf("\"view\":%u,", view);
			printf("\"shard\":%" PRIu64 ",\"state\":\"%s\",\"%s\":null}\n",
			    shard, rc == 0 && info.state == SL_SHARD_QUARANTINED ?
			    "quarantined" : rc == 0 ? "missing" : "pending",
			    as_logits ? "logits" : "probs");
			cJSON_free(name);
		} else {
			fprintf(stderr, "softlabel: teacher %s has no record for "
			    "sample %" PRIu64 "%s yet (shard %" PRIu64 "%s is %s)\n",
			    esc(t->name), s, vtext, shard, vtext, state);
		}
		return 1;
	}
	if (sl_label_check(rec, len, &t->fmt, NULL, &why) != 0) {
		fprintf(stderr, "softlabel: teacher %s sample %" PRIu64 "%s: %s\n",
		    esc(t->name), s, vtext, why.text);
		return 1;
	}
	if (as_logits) {
		if (sl_label_values(rec, v) != 0) {
			/* Top-k: the kept classes' values, after the header. */
			const uint8_t *r = rec;
			const uint16_t k = (uint16_t)(r[2] | r[3] << 8);
			const uint8_t *idx = r + 12 + 4, *val = idx + 4 * (size_t)k;

			for (uint32_t j = 0; j < C; j++)
				v[j] = NAN;
			for (uint16_t j = 0; j < k; j++) {
				uint32_t cl = (uint32_t)idx[4 * j] |
				    (uint32_t)idx[4 * j + 1] << 8 |
				    (uint32_t)idx[4 * j + 2] << 16 |
				    (uint32_t)idx[4 * j + 3] << 24;
				uint16_t h = (uint16_t)(val[2 * j] | val[2 * j + 1] << 8);

				if (cl < C)
					v[cl] = sl_f16_to_f32(h);
			}
		}
		for (uint32_t j = 0; j < C; j++)
			v[j] *= t->temperature;
	} else {
		sl_label_probs(rec, t->temperature, T, v);
	}
	if (as_json) {
		char *name = json_quote(t->name);

		printf("{\"teacher\":%s,\"sample\":%" PRIu64 ",",
		    name ? name : "null", s);
		if (view != SL_STORE_NO_VIEW)
			printf("\"view\":%u,", view);
		cJSON_free(name);
		if (as_logits)
			printf("\"logits\":[");
		else
			printf("\"T\":%.9g,\"probs\":[", (double)T);
		for (uint32_t j = 0; j < C; j++) {
			if (j)
				putchar(',');
			print_float(v[j], 1);
		}
		printf("]}\n");
	} else {
		if (as_logits)
			printf("teacher %s sample %" PRIu64 "%s logits:", esc(t->name),
			    s, vtext);
		else
			printf("teacher %s sample %" PRIu64 "%s at T=%g:",
			    esc(t->name), s, vtext, (double)T);
		for (uint32_t j = 0; j < C; j++) {
			putchar(' ');
			print_float(v[j], 0);
		}
		putchar('\n');
	}
	return 0;
}

static int
cmd_get(const char *dir)
{
	cache c;
	sl_store_txn *txn = NULL;
	sl_errmsg why = { "" };
	const sl_store_teacher *t;
	uint64_t first, end, absent = 0;
	float *v = NULL;
	int rc = 1;

	if (sample_arg == NULL) {
		fprintf(stderr, "softlabel: get needs --sample I (or a range A:B)\n");
		return 2;
	}
	if (as_logits && temperature > 0) {
		fprintf(stderr, "softlabel: get: --logits and --temperature do not "
		    "go together (logits have no temperature)\n");
		return 2;
	}
	if (cache_open(dir, &c) != 0)
		return 1;
	if ((t = pick_teacher(&c, "get", &rc)) == NULL)
		goto out;
	if ((rc = parse_samples(sample_arg, c.job.dataset.rows, &first,
	    &end)) != 0)
		goto out;
	rc = 2;
	if (view_arg >= 0 && t->views == 0) {
		fprintf(stderr, "softlabel: get --view %d: teacher %s has no views "
		    "(one record per sample)\n", view_arg, esc(t->name));
		goto out;
	}
	if (view_arg >= 0 && (uint32_t)view_arg >= t->views) {
		fprintf(stderr, "softlabel: get --view %d: teacher %s has views "
		    "0..%u\n", view_arg, esc(t->name), t->views - 1);
		goto out;
	}
	const uint32_t view = t->views == 0 ? SL_STORE_NO_VIEW :
	    view_arg >= 0 ? (uint32_t)view_arg : 0;
	rc = 1;
	if (sl_store_read_begin(c.store, &txn, &why) != 0) {
		fprintf(stderr, "softlabel: %s: %s\n", dir, why.text);
		goto out;
	}
	if ((v = malloc(t->fmt.classes * sizeof *v)) == NULL) {
		fprintf(stderr, "softlabel: out of memory\n");
		goto out;
	}
	const float T = temperature > 0 ? temperature : t->temperature;
	for (uint64_t s = first; s < end; s++)
		absent += (uint64_t)get_one(txn, &c, t, s, view, T, v);
	if (absent > 0 && end - first > 1)
		fprintf(stderr, "softlabel: %" PRIu64 " of %" PRIu64 " samples "
		    "have no (valid) record\n", absent, end - first);
	rc = absent ? 1 : 0;
out:
	free(v);
	sl_store_read_end(&txn);
	sl_store_close(&c.store);
	return rc;
}

/* export streams: rows go out in order through a buffer of a few MiB,
 * absent rows as NaN, so memory does not grow with rows x classes. */
typedef struct ectx {
	const sl_store_teacher *t;
	sl_npy_writer w;
	float *buf;          /* (cap, classes) */
	uint64_t cap, nbuf;  /* rows the buffer holds, rows in it */
	uint64_t next;       /* the next row to write */
	uint64_t rows, found, bad;
	float T;
	int rc;
	sl_errmsg why;
} ectx;

static int
flush_rows(ectx *e)
{
	const size_t C = e->t->fmt.classes;

	if (e->nbuf > 0 && (e->rc = sl_npy_append(&e->w, e->buf,
	    (size_t)e->nbuf * C * sizeof *e->buf, &e->why)) != 0)
		return 1;
	e->nbuf = 0;
	return 0;
}

/* Next row's slot in the buffer, flushing a full one. */
static float *
next_slot(ectx *e)
{
	if (e->nbuf == e->cap && flush_rows(e) != 0)
		return NULL;
	e->next++;
	return e->buf + (size_t)(e->nbuf++) * e->t->fmt.classes;
}

/* Write NaN rows up to (not including) row end. */
static int
fill_absent(ectx *e, uint64_t end)
{
	while (e->next < end) {
		float *p = next_slot(e);

		if (p == NULL)
			return 1;
		for (uint32_t k = 0; k < e->t->fmt.classes; k++)
			p[k] = NAN;
	}
	return 0;
}

static int
export_label(void *arg, uint64_t s, const void *rec, size_t len)
{
	ectx *e = arg;
	sl_errmsg why = { "" };
	float *p;

	if (s >= e->rows || s < e->next) {
		e->bad++;
		return 0;
	}
	if (fill_absent(e, s) != 0 || (p = next_slot(e)) == NULL)
		return 1;
	if (sl_label_check(rec, len, &e->t->fmt, NULL, &why) != 0) {
		e->bad++;
		for (uint32_t k = 0; k < e->t->fmt.classes; k++)
			p[k] = NAN;
		return 0;
	}
	sl_label_probs(rec, e->t->temperature, e->T, p);
	e->found++;
	return 0;
}

/* A teacher with views: (sample, view) is row sample * V + view of the
 * (rows * V, classes) stream, i.e. the (rows, V, classes) array. */
static int
export_view_label(void *arg, uint64_t s, uint32_t view, const void *rec,
    size_t len)
{
	ectx *e = arg;

	if (view >= e->t->views || s > UINT64_MAX / e->t->views) {
		e->bad++;
		return 0;
	}
	return export_label(arg, s * e->t->views + view, rec, len);
}

static int
cmd_export(const char *dir)
{
	cache c;
	sl_errmsg why = { "" };
	ectx e;
	int rc = 1, began = 0;

	memset(&e, 0, sizeof e);
	if (out_path == NULL) {
		fprintf(stderr, "softlabel: export needs --out\n");
		return 2;
	}
	if ((rc = reader_open(dir, "export", &c)) != 0)
		return rc;
	if ((e.t = pick_teacher(&c, "export", &rc)) == NULL)
		goto out;
	rc = 1;
	const uint32_t V = e.t->views;
	e.rows = c.job.dataset.rows * (V ? V : 1);
	e.T = temperature > 0 ? temperature : e.t->temperature;
	e.cap = ((uint64_t)4 << 20) / (e.t->fmt.classes * sizeof *e.buf);
	if (e.cap == 0)
		e.cap = 1;
	if ((e.buf = malloc((size_t)e.cap * e.t->fmt.classes *
	    sizeof *e.buf)) == NULL) {
		fprintf(stderr, "softlabel: out of memory\n");
		goto out;
	}
	uint64_t shape[3] = { c.job.dataset.rows, V, e.t->fmt.classes };
	if (V == 0)
		shape[1] = e.t->fmt.classes;
	if (sl_npy_begin(&e.w, out_path, "<f4", shape, V ? 3 : 2, &why) != 0) {
		fprintf(stderr, "softlabel: %s: %s\n", out_path, why.text);
		goto out;
	}
	began = 1;
	if ((V ? sl_reader_each_label_view(c.rd, e.t->index, 0, UINT64_MAX,
	    export_view_label, &e, &why) : sl_reader_each_label(c.rd,
	    e.t->index, 0, UINT64_MAX, export_label, &e, &why)) != 0 &&
	    e.rc == 0) {
		fprintf(stderr, "softlabel: %s: cannot walk the cache%s%s\n", dir,
		    why.text[0] ? ": " : "", why.text);
		goto out;
	}
	if (e.rc != 0 || fill_absent(&e, e.rows) != 0 || flush_rows(&e) != 0 ||
	    (e.rc = sl_npy_finish(&e.w, &e.why)) != 0) {
		fprintf(stderr, "softlabel: %s: %s\n", out_path, e.why.text);
		goto out;
	}
	began = 0;
	if (V)
		printf("wrote %s: %" PRIu64 " x %u x %u (rows, views, classes) "
		    "at T=%g; %" PRIu64 " (row, view) records present, %" PRIu64
		    " absent (NaN), %" PRIu64 " corrupt skipped\n", out_path,
		    c.job.dataset.rows, V, e.t->fmt.classes, (double)e.T,
		    e.found, e.rows - e.found, e.bad);
	else
		printf("wrote %s: %" PRIu64 " x %u at T=%g; %" PRIu64 " rows "
		    "present, %" PRIu64 " absent (NaN), %" PRIu64 " corrupt "
		    "skipped\n", out_path, e.rows, e.t->fmt.classes,
		    (double)e.T, e.found, e.rows - e.found, e.bad);
	rc = e.bad ? 1 : 0;
out:
	if (began)
		sl_npy_abort(&e.w);
	free(e.buf);
	sl_reader_close(&c.rd);
	return rc;
}

int
main(int argc, char **argv)
{
	sl_errmsg why = { "" };
	int pos[4], npos;

	/* Before anything else: this may re-execute the program with a better
	 * OpenBLAS kernel (sl_blas.h). */
	sl_blas_start(argv);
	/* serve has options of its own (a daemon, not a one-shot command). */
	if (argc >= 2 && strcmp(argv[1], "serve") == 0)
		return serve_main(argc - 1, argv + 1);
	if (sl_opt_parse(opts, argc, argv, pos, 4, &npos, &why) != 0) {
		fprintf(stderr, "softlabel: %s\n", why.text);
		return 2;
	}
	if (show_help) {
		usage(stdout);
		return 0;
	}
	if (show_version) {
		char line[900];

		printf("softlabel %s\n", SL_VERSION);
		sl_blas_describe(sl_blas_info_get(), 0, line, sizeof line);
		printf("%s\n", line);
		return 0;
	}
	sl_log_init("softlabel", SL_LOG_WARN);
	/* At WARN, like the rest of this tool's log: the line shows only when
	 * the kernel is off (stdout of status, get... is parsed by scripts;
	 * `softlabel doctor` prints it all). */
	sl_blas_log_startup(0, SL_LOG_WARN);
	if (npos == 1 && strcmp(argv[pos[0]], "doctor") == 0)
		return cmd_doctor();
	if (npos == 3 && strcmp(argv[pos[0]], "copy") == 0)
		return cmd_copy(argv[pos[1]], argv[pos[2]]);
	if (npos == 4 && strcmp(argv[pos[0]], "teacher") == 0 &&
	    strcmp(argv[pos[1]], "remove") == 0)
		return cmd_teacher_remove(argv[pos[2]], argv[pos[3]]);
	if (npos >= 1 && strcmp(argv[pos[0]], "copy") == 0) {
		fprintf(stderr, "softlabel: copy takes STORE and DEST (a new "
		    "directory)\n");
		return 2;
	}
	/* status EP --watch S: S is a positional argument to sl_opt (the
	 * flag takes no value); it must be a number, EP never is one. */
	double watch_s = 2;
	if (watch && npos == 3 && strcmp(argv[pos[0]], "status") == 0) {
		int wi = sl_net_check_endpoint(argv[pos[1]], 0, NULL) == 0 ? 2 : 1;
		char *end;

		errno = 0;
		watch_s = strtod(argv[pos[wi]], &end);
		if (*argv[pos[wi]] == '\0' || *end != '\0' || errno != 0 ||
		    !(watch_s >= 0.1 && watch_s <= 3600)) {
			fprintf(stderr, "softlabel: --watch '%s': want seconds "
			    "between refreshes, 0.1 to 3600\n", esc(argv[pos[wi]]));
			return 2;
		}
		pos[wi] = pos[2];
		npos = 2;
	}
	if (watch && (npos != 2 || strcmp(argv[pos[0]], "status") != 0)) {
		fprintf(stderr, "softlabel: --watch goes with status only: "
		    "softlabel status EP --watch [SECONDS]\n");
		return 2;
	}
	if (npos != 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[pos[0]], *arg = argv[pos[1]];
	if ((curve_secret == NULL) != (curve_server == NULL)) {
		fprintf(stderr, "softlabel: --curve-secret and --curve-server go "
		    "together\n");
		return 2;
	}
	if (strcmp(cmd, "keygen") == 0)
		return cmd_keygen(arg);
	if (strcmp(cmd, "status") == 0)
		return cmd_status(arg, watch ? watch_s : 0);
	if (strcmp(cmd, "inspect") == 0)
		return cmd_inspect(arg);
	if (strcmp(cmd, "verify") == 0)
		return cmd_verify(arg);
	if (strcmp(cmd, "get") == 0)
		return cmd_get(arg);
	if (strcmp(cmd, "export") == 0)
		return cmd_export(arg);
	fprintf(stderr, "softlabel: unknown command '%s' (see --help)\n", cmd);
	return 2;
}

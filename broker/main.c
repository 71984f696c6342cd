/* softlabel-broker: hands out shards of a dataset to teacher workers and
 * commits their soft labels into the logit cache. Exit: 0 done or stopped,
 * 1 runtime failure (or finished with quarantined shards), 2 bad usage. */
#include "broker.h"
#include "sl_blas.h"
#include "sl_log.h"
#include "sl_net.h"
#include "sl_opt.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested, reload_requested;

static void
on_signal(int sig)
{
	if (sig == SIGHUP)
		reload_requested = 1;
	else
		stop_requested = 1;
}

static broker_cfg cfg;
static int show_help, show_version;
static const char *log_level, *metrics_bind;

static sl_opt opts[] = {
	{ "store", SL_OPT_STR, &cfg.store, NULL, 0, 0, "DIR", "logit cache (LMDB directory); created on first start", 0 },
	{ "dataset", SL_OPT_STR, &cfg.dataset, NULL, 0, 0, "FILE", "rows to label (.npy, IDX, IDX.gz)", 0 },
	{ "bind", SL_OPT_STR, &cfg.bind, "tcp://127.0.0.1:5555", 0, 0, "EP", "ZeroMQ endpoint for workers", 0 },
	{ "status-bind", SL_OPT_STR, &cfg.status_bind, NULL, 0, 0, "EP", "extra endpoint answering STATUS only (probes)", 0 },
	{ "metrics-bind", SL_OPT_STR, &metrics_bind, NULL, 0, 0, "HOST:PORT", "serve Prometheus metrics over HTTP at http://HOST:PORT/metrics (e.g. 127.0.0.1:9100; 0 as PORT: any free one, logged); off by default", 0 },
	{ "curve-secret", SL_OPT_STR, &cfg.curve_secret, NULL, 0, 0, "FILE", "speak CURVE with this secret key (softlabel keygen; owned by us: mode 0600 at most, by root: 0640 at most); needs --allow-keys", 0 },
	{ "allow-keys", SL_OPT_STR, &cfg.allow_keys, NULL, 0, 0, "DIR", "admit only clients whose public key is a *.pub file here; SIGHUP re-reads it", 0 },
	{ "teacher", SL_OPT_STR, &cfg.teachers, NULL, 0, 0, "NAME[=SHA256],...", "the operator's teachers: HELLO may name only these (with that model's sha256sum, when given); --exit-when-done waits for these alone (default: open registration)", 0 },
	{ "max-teachers", SL_OPT_INT, &cfg.max_teachers, "16", 1, 256, "N", "without --teacher: teachers the cache may hold; a HELLO for one more is refused", 0 },
	{ "views", SL_OPT_INT, &cfg.views, "0", 0, SL_STORE_MAX_VIEWS, "V", "label V views of every row (deterministic augmentations, --view-recipe) instead of the plain rows: records are keyed (teacher, sample, view), leases are (shard, view) units; applies to the teachers this broker registers (a teacher already in the cache keeps its own, and must have these when given); 0: no views", 0 },
	{ "view-recipe", SL_OPT_STR, &cfg.view_recipe, NULL, 0, 0, "R", "the views' transform, items joined by ',': rrc=SMIN:SMAX (random-resized crop), crop=P (pad P, random crop), flip (left-right mirror, p = 1/2); needed with --views", 0 },
	{ "view-seed", SL_OPT_I64, &cfg.view_seed, "0", 0, INT64_MAX, "S", "seed of the views: view v of sample i is drawn from (S, i, v) alone", 0 },
	{ "shard-rows", SL_OPT_INT, &cfg.shard_rows, "1024", 1, 65536, "N", "rows per shard (fixed when the job is created)", 0 },
	{ "lease-timeout", SL_OPT_INT, &cfg.lease_timeout_s, "30", 1, 86400, "S", "seconds a lease lives without renewal", 0 },
	{ "max-attempts", SL_OPT_INT, &cfg.max_attempts, "5", 1, 255, "N", "leases of one shard before it is quarantined", 0 },
	{ "max-workers", SL_OPT_INT, &cfg.max_workers, "4096", 1, BROKER_MAX_WORKERS, "N", "worker sessions at once; a HELLO past them gets BUSY and retries after a back-off", 0 },
	{ "max-sessions-per-peer", SL_OPT_INT, &cfg.max_sessions_per_peer, "256", 0, BROKER_MAX_WORKERS, "N", "worker sessions at once from one source address (many workers behind a NAT share one); a HELLO past them gets BUSY and retries (0: no limit)", 0 },
	{ "max-pending-per-peer", SL_OPT_INT, &cfg.max_pending_per_peer, "256", 0, 1000000, "N", "connections from one source address open at once without a session (in the handshake, or not yet said HELLO); past them a new one is closed at once (0: no limit)", 0 },
	{ "hello-rate-per-peer", SL_OPT_FLOAT, &cfg.hello_rate_per_peer, "20", 0, 1000000, "R", "HELLOs a second from one source address, in bursts of --hello-burst-per-peer; one past them gets BUSY and retries after a back-off (0: no limit)", 0 },
	{ "hello-burst-per-peer", SL_OPT_INT, &cfg.hello_burst_per_peer, "64", 1, 1000000, "N", "HELLOs one source address may say at once before --hello-rate-per-peer holds it back", 0 },
	{ "hello-timeout", SL_OPT_INT, &cfg.hello_timeout_s, "10", 1, 3600, "S", "close a connection that sends no valid message within S seconds (the ZMTP handshake itself must end within 10 s)", 0 },
	{ "rows", SL_OPT_STR, &cfg.rows, NULL, 0, 0, "A:B", "label rows A..B-1 only (A: to the end), into this cache (a job split over several brokers, each with its own cache); A and B on shard boundaries (B may be the row count); fixed when the job is created", 0 },
	{ "map-size", SL_OPT_I64, &cfg.map_size_bytes, "1099511627776", 1048576, INT64_C(70368744177664), "B", "the cache's LMDB map: address space reserved, not disk (1 TiB); the cache cannot grow past it; raised to the file's size", 0 },
	{ "max-msg-bytes", SL_OPT_I64, &cfg.max_msg_bytes, "67108864", 65536, 1073741824, "B", "largest message accepted", 0 },
	{ "audit", SL_OPT_FLOAT, &cfg.audit_rate, "0.02", 0, 1, "RATE", "share of shards computed again by a worker of another identity (CURVE key, or name in plaintext) and compared; plus each identity's first result; a worker proven wrong is refused and its shards recomputed (0: no audits)", 0 },
	{ "audit-seed", SL_OPT_I64, &cfg.audit_seed, "-1", -1, INT64_MAX, "N", "which shards are audited (-1: random at each start, so workers cannot know)", 0 },
	{ "trusted-keys", SL_OPT_STR, &cfg.trusted_keys, NULL, 0, 0, "DIR", "CURVE only: workers whose public key is a *.pub file here are never audited (they still audit others)", 0 },
	{ "exit-when-done", SL_OPT_FLAG, &cfg.exit_when_done, NULL, 0, 0, NULL, "exit once every shard of every registered teacher is done (with --teacher: of those teachers)", 0 },
	{ "recompute-corrupt", SL_OPT_FLAG, &cfg.recompute_corrupt, NULL, 0, 0, NULL, "at start, check every record's CRC and put shards holding a bad one back to pending", 0 },
	{ "nosync", SL_OPT_FLAG, &cfg.nosync, NULL, 0, 0, NULL, "do not fsync commits (fast; a crash can lose acknowledged results)", 0 },
	{ "log-level", SL_OPT_STR, &log_level, "info", 0, 0, "debug|info|warn|error", "log threshold", 0 },
	{ "help", SL_OPT_FLAG, &show_help, NULL, 0, 0, NULL, "this text", 0 },
	{ "version", SL_OPT_FLAG, &show_version, NULL, 0, 0, NULL, "print the version", 0 },
	SL_OPT_END
};

/* A cache directory this start creates is removed again when the start
 * fails (a --bind that is taken, a bad key...): a failed start leaves
 * nothing behind. What the directory held before is never touched. */
typedef struct fresh_store {
	int created_dir;     /* the directory did not exist */
	char **before;       /* names it held, NULL-terminated */
	size_t nbefore;
} fresh_store;

static int
names_before(const char *dir, fresh_store *f)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t cap = 0;

	memset(f, 0, sizeof *f);
	if (d == NULL) {
		f->created_dir = errno == ENOENT;
		return 0;
	}
	while ((e = readdir(d)) != NULL) {
		if (f->nbefore + 1 >= cap) {
			size_t ncap = cap ? 2 * cap : 16;
			char **nb = realloc(f->before, ncap * sizeof *nb);

			if (nb == NULL)
				break;
			f->before = nb;
			cap = ncap;
		}
		if ((f->before[f->nbefore] = strdup(e->d_name)) == NULL)
			break;
		f->nbefore++;
	}
	closedir(d);
	return 0;
}

static int
was_there(const fresh_store *f, const char *name)
{
	for (size_t i = 0; i < f->nbefore; i++)
		if (strcmp(f->before[i], name) == 0)
			return 1;
	return 0;
}

/* Remove the regular files this start added to dir, and dir if it made it. */
static void
undo_store(const char *dir, const fresh_store *f)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[4096];
	struct stat st;
	int removed = 0, left = 0;

	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    was_there(f, e->d_name))
			continue;
		if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >=
		    (int)sizeof path || lstat(path, &st) != 0 ||
		    !S_ISREG(st.st_mode) || unlink(path) != 0)
			left++;
		else
			removed++;
	}
	closedir(d);
	if (f->created_dir && rmdir(dir) != 0)
		left++;
	if (left)
		sl_warn("the failed start left %s behind (it holds files "
		    "softlabel did not create)", dir);
	else if (removed || f->created_dir)
		sl_info("removed the cache %s this failed start created", dir);
}

static void
fresh_store_fini(fresh_store *f)
{
	for (size_t i = 0; i < f->nbefore; i++)
		free(f->before[i]);
	free(f->before);
}

/* --version's second line: the kernel this binary runs here. */
static void
print_blas_line(int threads)
{
	char line[900];

	sl_blas_describe(sl_blas_info_get(), threads, line, sizeof line);
	printf("%s\n", line);
}

int
main(int argc, char **argv)
{
	sl_errmsg why = { "" };
	enum sl_log_level level;
	struct sigaction sa;
	broker b;
	int npos, rc;

	/* Before anything else: this may re-execute the program with a better
	 * OpenBLAS kernel (sl_blas.h). */
	sl_blas_start(argv);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (sl_opt_parse(opts, argc, argv, NULL, 0, &npos, &why) != 0 ||
	    sl_opt_env(opts, "SOFTLABEL_BROKER", &why) != 0) {
		fprintf(stderr, "softlabel-broker: %s\n", why.text);
		return 2;
	}
	if (show_help) {
		printf("usage: softlabel-broker --store DIR --dataset FILE [options]\n\n"
		    "Leases shards of FILE to softlabel-teacher workers and commits\n"
		    "their soft labels into the logit cache DIR, each shard in one\n"
		    "transaction, acknowledged only after its commit.\n\n"
		    "With --curve-secret and --allow-keys all traffic is CurveZMQ and\n"
		    "only listed public keys get a session (also on --status-bind);\n"
		    "without them traffic is unauthenticated.\n\n"
		    "The dataset's fingerprint is remembered in a memo file keyed by its\n"
		    "device, inode, size, mtime and ctime ($SOFTLABEL_FINGERPRINTS, default\n"
		    "~/.cache/softlabel/fingerprints; off: hash at every start); each\n"
		    "shard's rows are hashed again before they are shipped, and rows\n"
		    "changed since stop the broker (exit 1).\n\noptions:\n");
		sl_opt_help(opts, stdout);
		sl_opt_env_help(opts, "SOFTLABEL_BROKER", stdout);
		return 0;
	}
	if (show_version) {
		printf("softlabel-broker %s\n", SL_VERSION);
		print_blas_line(0);
		return 0;
	}
	if (cfg.store == NULL || cfg.dataset == NULL) {
		fprintf(stderr, "softlabel-broker: --store and --dataset are "
		    "required (see --help)\n");
		return 2;
	}
	if ((cfg.curve_secret == NULL) != (cfg.allow_keys == NULL)) {
		fprintf(stderr, "softlabel-broker: --curve-secret and "
		    "--allow-keys go together (see --help)\n");
		return 2;
	}
	if (cfg.trusted_keys != NULL && cfg.curve_secret == NULL) {
		fprintf(stderr, "softlabel-broker: --trusted-keys needs CURVE "
		    "(--curve-secret, --allow-keys): in plaintext no worker can "
		    "prove who it is\n");
		return 2;
	}
	if (sl_net_check_endpoint(cfg.bind, 1, &why) != 0 ||
	    (cfg.status_bind != NULL &&
	    sl_net_check_endpoint(cfg.status_bind, 1, &why) != 0)) {
		fprintf(stderr, "softlabel-broker: --%s: %s\n",
		    sl_net_check_endpoint(cfg.bind, 1, NULL) ? "bind" :
		    "status-bind", why.text);
		return 2;
	}
	if ((cfg.views > 0) != (cfg.view_recipe != NULL)) {
		fprintf(stderr, "softlabel-broker: --views and --view-recipe go "
		    "together (see --help)\n");
		return 2;
	}
	if (cfg.view_recipe != NULL &&
	    sl_view_recipe_parse(cfg.view_recipe, &cfg.recipe, &why) != 0) {
		fprintf(stderr, "softlabel-broker: --view-recipe: %s\n", why.text);
		return 2;
	}
	if (metrics_bind != NULL &&
	    sl_metrics_check_addr(metrics_bind, &why) != 0) {
		fprintf(stderr, "softlabel-broker: --metrics-bind: %s\n", why.text);
		return 2;
	}
	(void)sl_log_parse_level(log_level, &level);
	sl_log_init("softlabel-broker", level);
	{
		char what[256];

		snprintf(what, sizeof what, "the dataset %s", cfg.dataset);
		sl_log_catch_sigbus(what);
	}
	sl_blas_log_startup(0, SL_LOG_INFO);
	/* A cache is new when its data file is not there yet. */
	char data_path[4096];
	fresh_store fresh = { 0, NULL, 0 };
	struct stat st;
	int is_new;

	/* Bound before the cache is touched: a port that is taken stops the
	 * start with nothing created. */
	sl_metrics *metrics = NULL;

	if (metrics_bind != NULL) {
		if ((rc = sl_metrics_open(metrics_bind, &metrics, &why)) != 0) {
			sl_error("--metrics-bind %s", why.text);
			return rc == SL_EINVAL || rc == EADDRNOTAVAIL ? 2 : 1;
		}
		/* The real port, when the address asked for any (0). */
		sl_info("metrics on http://%.*s:%d/metrics (port %d)",
		    (int)(strrchr(metrics_bind, ':') - metrics_bind), metrics_bind,
		    sl_metrics_port(metrics), sl_metrics_port(metrics));
	}
	snprintf(data_path, sizeof data_path, "%s/data.mdb", cfg.store);
	is_new = stat(data_path, &st) != 0 && errno == ENOENT;
	if (is_new)
		(void)names_before(cfg.store, &fresh);
	if ((rc = broker_open(&b, &cfg, &stop_requested)) == 0) {
		b.reload = &reload_requested;
		b.metrics = metrics;
		if (cfg.curve_secret == NULL)
			sl_warn("traffic on %s is unauthenticated and unencrypted: "
			    "bind only where you trust the network", cfg.bind);
		else
			sl_info("CURVE on %s: server key %s, %zu allowed keys "
			    "from %s", cfg.bind, b.pub.z85,
			    sl_curve_allow_count(b.allow), cfg.allow_keys);
		rc = broker_run(&b);
		is_new = 0; /* it started: the cache is the job's now */
	}
	broker_close(&b);
	sl_metrics_close(&metrics);
	if (is_new && rc != 0)
		undo_store(cfg.store, &fresh);
	fresh_store_fini(&fresh);
	return rc;
}

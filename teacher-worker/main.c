/* softlabel-teacher: a teacher worker. Exit: 0 when the job is done (or
 * stopped cleanly), 1 runtime failure or refusal, 2 bad usage. */
#include "worker.h"
#include "sl_blas.h"
#include "sl_log.h"
#include "sl_net.h"
#include "sl_opt.h"
#include "sl_proto.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static worker_cfg cfg;
static int show_help, show_version;
static const char *log_level;
static const char *precision;

static sl_opt opts[] = {
	{ "connect", SL_OPT_STR, &cfg.connect, "tcp://127.0.0.1:5555", 0, 0, "EP", "the broker's endpoint, tcp://HOST:PORT (or ipc://PATH)", 0 },
	{ "connect-timeout", SL_OPT_INT, &cfg.connect_timeout_s, "300", 0, 100000000, "S", "exit 1 if no broker answers within S seconds of the start (0: wait forever); once connected, a lost broker is waited for without limit", 0 },
	{ "model", SL_OPT_STR, &cfg.model, NULL, 0, 0, "FILE", "teacher model: ONNX (.onnx) or a safetensors MLP, told apart by content", 0 },
	{ "name", SL_OPT_STR, &cfg.name, NULL, 0, 0, "NAME", "teacher name in the cache (default: the model file's name)", 0 },
	{ "worker-name", SL_OPT_STR, &cfg.worker_name, NULL, 0, 0, "NAME", "this worker in status and logs (default: host-pid)", 0 },
	{ "temperature", SL_OPT_FLOAT, &cfg.temperature, "1", 1e-3, 1e4, "T", "softmax temperature the records are stored at", 0 },
	{ "encoding", SL_OPT_STR, &cfg.encoding, "f32", 0, 0, "ENC", "soft-label record encoding: f32, f16 or topk:K", 0 },
	{ "input-scale", SL_OPT_FLOAT, &cfg.input_scale, NULL, 1e-12, 1e12, "S", "x*S before mean/std (default: the model's metadata, else 1/255 for uint8 rows, 1 for float32)", 0 },
	{ "input-mean", SL_OPT_STR, &cfg.input_mean, NULL, 0, 0, "M[,M...]", "subtracted after scaling: one value, or one per channel (rows [C, H, W]) (default: the model's, else 0)", 0 },
	{ "input-std", SL_OPT_STR, &cfg.input_std, NULL, 0, 0, "SD[,SD...]", "divides after the mean: one value, or one per channel (default: the model's, else 1)", 0 },
	{ "precision", SL_OPT_STR, &precision, "fp32", 0, 0, "fp32|bf16", "arithmetic of the forward pass; bf16 (cblas_sbgemm) needs AVX512-BF16 and an OpenBLAS built with it, and is refused elsewhere", 0 },
	{ "batch", SL_OPT_INT, &cfg.batch, "256", 1, 65536, "N", "rows per forward pass", 0 },
	{ "threads", SL_OPT_INT, &cfg.threads, "0", 0, 1024, "N", "OpenBLAS threads (0: OpenBLAS decides)", 0 },
	{ "views", SL_OPT_INT, &cfg.views, "0", 0, 1024, "V", "refuse a broker whose teacher does not have exactly these views (with --view-recipe, --view-seed); 0: label the views the broker's registration names (WELCOME carries V, recipe and seed)", 0 },
	{ "view-recipe", SL_OPT_STR, &cfg.view_recipe, NULL, 0, 0, "R", "with --views: the recipe this worker expects (softlabel-broker --view-recipe)", 0 },
	{ "view-seed", SL_OPT_I64, &cfg.view_seed, "0", 0, INT64_MAX, "S", "with --views: the view seed this worker expects", 0 },
	{ "dataset", SL_OPT_STR, &cfg.dataset, NULL, 0, 0, "FILE", "local copy of the dataset (same fingerprint): only row ranges travel", 0 },
	{ "curve-secret", SL_OPT_STR, &cfg.curve_secret, NULL, 0, 0, "FILE", "speak CURVE with this secret key (softlabel keygen); needs --curve-server", 0 },
	{ "curve-server", SL_OPT_STR, &cfg.curve_server, NULL, 0, 0, "FILE", "the broker's public key (its .pub file)", 0 },
	{ "credit", SL_OPT_INT, &cfg.credit, "2", 1, 64, "N", "shards leased at once (2 overlaps computing and network)", 0 },
	{ "max-held", SL_OPT_INT, &cfg.max_held, "8", 1, 16, "N", "unacknowledged results before computing pauses", 0 },
	{ "log-level", SL_OPT_STR, &log_level, "info", 0, 0, "debug|info|warn|error", "log threshold", 0 },
	{ "help", SL_OPT_FLAG, &show_help, NULL, 0, 0, NULL, "this text", 0 },
	{ "version", SL_OPT_FLAG, &show_version, NULL, 0, 0, NULL, "print the version", 0 },
	SL_OPT_END
};

/* --version's second line: the kernel this binary runs here. */
static void
print_blas_line(int threads)
{
	char line[900];

	sl_blas_describe(sl_blas_info_get(), threads, line, sizeof line);
	printf("%s\n", line);
}

/* The broker refuses a HELLO whose names are outside SL_PROTO_NAME_CHARS:
 * say so at start, naming the byte, rather than after connecting. */
static int
name_ok(const char *opt, const char *name)
{
	char shown[160];
	size_t bad;

	if (sl_proto_name_valid(name, strlen(name), &bad))
		return 1;
	sl_log_escape(shown, sizeof shown, name, strlen(name));
	fprintf(stderr, "softlabel-teacher: %s '%s': names are 1 to %d "
	    "characters from %s%s\n", opt, shown, SL_PROTO_MAX_NAME,
	    SL_PROTO_NAME_CHARS, strcmp(opt, "--name") == 0 ? " (the default "
	    "is the model file's name: give --name)" : "");
	return 0;
}

int
main(int argc, char **argv)
{
	sl_errmsg why = { "" };
	enum sl_log_level level;
	struct sigaction sa;
	char teacher[129], self[160], host[64] = "worker";
	int npos;

	/* Before anything else: this may re-execute the program with a better
	 * OpenBLAS kernel (sl_blas.h). */
	sl_blas_start(argv);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	cfg.input_scale = NAN;
	if (sl_opt_parse(opts, argc, argv, NULL, 0, &npos, &why) != 0 ||
	    sl_opt_env(opts, "SOFTLABEL_TEACHER", &why) != 0) {
		fprintf(stderr, "softlabel-teacher: %s\n", why.text);
		return 2;
	}
	if (show_help) {
		printf("usage: softlabel-teacher --connect EP --model FILE [options]\n\n"
		    "Leases shards from softlabel-broker, runs the teacher over them\n"
		    "and sends back soft labels, keeping each result until the broker\n"
		    "acknowledges it (a result the broker could not store, its disk\n"
		    "full, is kept and resent after a back-off; a broker whose\n"
		    "worker slots are all taken is asked again after one). Names\n"
		    "are 1 to 128 characters from " SL_PROTO_NAME_CHARS ".\n"
		    "With --curve-secret and --curve-server the\n"
		    "connection is CurveZMQ; the broker must list this key's .pub.\n"
		    "With --dataset, its fingerprint is remembered in a memo file keyed\n"
		    "by its device, inode, size, mtime and ctime ($SOFTLABEL_FINGERPRINTS,\n"
		    "default ~/.cache/softlabel/fingerprints; off: hash at every start),\n"
		    "and each shard's rows are hashed again before its result is sent:\n"
		    "rows changed since stop the worker (exit 1).\n"
		    "\noptions:\n");
		sl_opt_help(opts, stdout);
		sl_opt_env_help(opts, "SOFTLABEL_TEACHER", stdout);
		return 0;
	}
	if (show_version) {
		printf("softlabel-teacher %s\n", SL_VERSION);
		print_blas_line(cfg.threads);
		return 0;
	}
	if (cfg.model == NULL) {
		fprintf(stderr, "softlabel-teacher: --model is required (see --help)\n");
		return 2;
	}
	if (sl_net_check_endpoint(cfg.connect, 0, &why) != 0) {
		fprintf(stderr, "softlabel-teacher: --connect: %s\n", why.text);
		return 2;
	}
	if ((cfg.curve_secret == NULL) != (cfg.curve_server == NULL)) {
		fprintf(stderr, "softlabel-teacher: --curve-secret and "
		    "--curve-server go together (see --help)\n");
		return 2;
	}
	if (strcmp(precision, "bf16") == 0) {
		char why_bf16[256];

		fprintf(stderr, "softlabel-teacher: --precision bf16 cannot run "
		    "here: %s; use --precision fp32 (the default)\n",
		    sl_blas_bf16_missing(&sl_blas_info_get()->features,
		    sl_blas_has_sbgemm(), why_bf16, sizeof why_bf16));
		return 2;
	}
	if (cfg.name == NULL) {
		const char *base = strrchr(cfg.model, '/');
		char *dot;

		snprintf(teacher, sizeof teacher, "%s", base ? base + 1 : cfg.model);
		if ((dot = strrchr(teacher, '.')) != NULL && dot != teacher)
			*dot = '\0';
		cfg.name = teacher;
	}
	if (cfg.worker_name == NULL) {
		gethostname(host, sizeof host - 1);
		snprintf(self, sizeof self, "%s-%d", host, (int)getpid());
		cfg.worker_name = self;
	}
	if (!name_ok("--name", cfg.name) ||
	    !name_ok("--worker-name", cfg.worker_name))
		return 2;
	(void)sl_log_parse_level(log_level, &level);
	sl_log_init("softlabel-teacher", level);
	{
		char what[256];

		snprintf(what, sizeof what, "the dataset %s", cfg.dataset ?
		    cfg.dataset : "(none: rows come from the broker)");
		sl_log_catch_sigbus(what);
	}
	sl_blas_log_startup(cfg.threads, SL_LOG_INFO);
	return worker_run(&cfg, &stop_requested);
}

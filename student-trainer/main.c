/* softlabel-student: trains small networks from hard labels and from the
 * logit cache (knowledge distillation). Exit: 0 done, 1 runtime failure or
 * interrupted, 2 bad usage. */
#include "train.h"
#include "sl_blas.h"
#include "sl_log.h"
#include "sl_net.h"
#include "sl_opt.h"
#include "sl_reader.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static train_cfg cfg;
static int evaluate, print_torch, show_help, show_version;
static const char *model_path, *predictions, *probs_path, *log_level;

static sl_opt opts[] = {
	{ "dataset", SL_OPT_STR, &cfg.dataset, NULL, 0, 0, "FILE", "training rows (.npy, IDX, IDX.gz)", 0 },
	{ "labels", SL_OPT_STR, &cfg.labels, NULL, 0, 0, "FILE", "labels (.npy, IDX); -1 or rows past the end are unlabeled", 0 },
	{ "store", SL_OPT_STR, &cfg.dc.store, NULL, 0, 0, "CACHE", "logit cache to distill from (read while the broker writes): a directory, or `softlabel serve` on another host; CACHE,CACHE,... the caches of a job split by softlabel-broker --rows, read as one", 0 },
	{ "curve-secret", SL_OPT_STR, &cfg.dc.ro.curve_secret, NULL, 0, 0, "FILE", "--store tcp://: speak CURVE with this secret key (softlabel keygen); needs --curve-server", 0 },
	{ "curve-server", SL_OPT_STR, &cfg.dc.ro.curve_server, NULL, 0, 0, "FILE", "--store tcp://: the server's public key (its .pub file)", 0 },
	{ "connect-timeout", SL_OPT_INT, &cfg.dc.ro.connect_timeout_s, "300", 0, 100000000, "S", "--store tcp://: exit 1 if no server answers within S seconds of the start (0: wait forever); once one has answered, a lost server is waited for without limit; ignored for a directory", 0 },
	{ "teacher", SL_OPT_STR, &cfg.dc.teachers, NULL, 0, 0, "A[,B..]", "teachers in the cache (default: all); several (each once) make a committee", 0 },
	{ "teacher-weights", SL_OPT_STR, &cfg.dc.weights, NULL, 0, 0, "W[,W..]", "committee weights >= 0, not all 0 (default: equal)", 0 },
	{ "alpha", SL_OPT_FLOAT, &cfg.alpha, "0.9", 0, 1, "A", "weight of the distillation term where a row has a target", 0 },
	{ "temperature", SL_OPT_FLOAT, &cfg.dc.temperature, "4", 1e-3, 1e4, "T", "distillation temperature (--evaluate --probs: softmax temperature, default 1 there)", 0 },
	{ "min-confidence", SL_OPT_FLOAT, &cfg.dc.min_confidence, "0", 0, 1, "P", "keep unlabeled rows whose teacher max-probability at T=1 is >= P", 0 },
	{ "balance", SL_OPT_I64, &cfg.dc.balance, "0", 0, 1e15, "N", "at most N unlabeled rows per teacher class, most confident first (0: no limit)", 0 },
	{ "on-corrupt", SL_OPT_STR, &cfg.dc.on_corrupt, "fail", 0, 0, "fail|skip", "a cache record that fails its CRC stops training, or is skipped", 0 },
	{ "wait-coverage", SL_OPT_FLOAT, &cfg.wait_coverage, "0", 0, 1, "F", "before the first epoch, wait until the cache covers fraction F of the rows for every teacher (0: train on what is there)", 0 },
	{ "wait-timeout", SL_OPT_INT, &cfg.wait_timeout_s, "3600", 0, 100000000, "S", "give up --wait-coverage after S seconds, exit 1 (0: wait forever)", 0 },
	{ "online-teacher", SL_OPT_STR, &cfg.online_teacher, NULL, 0, 0, "FILE", "targets from this teacher (ONNX or safetensors MLP) run on every batch as the student sees it (after --augment), instead of from a cache: alpha*T^2*KL at --temperature on every row, plus (1-alpha)*CE where the label is known; not with --store", 0 },
	{ "augment", SL_OPT_STR, &cfg.augment, NULL, 0, 0, "RECIPE", "train on views: each row of a batch becomes view e of itself in epoch e (e from 0), by the recipe (rrc=SMIN:SMAX, crop=P, flip, joined by ','; none: off), before preprocessing; evaluation never augments", 0 },
	{ "augment-seed", SL_OPT_I64, &cfg.augment_seed, NULL, 0, 9007199254740991.0, "S", "the views' seed: view v of row i is the one sl_view draws from (S, i, v) (default: --seed)", 0 },
	{ "teacher-model", SL_OPT_STR, &cfg.teacher_model, NULL, 0, 0, "FILE", "teacher model: report fidelity (agreement) on the test set; with --store, the model of one of the teachers", 0 },
	{ "arch", SL_OPT_STR, &cfg.arch, NULL, 0, 0, "ARCH", "an MLP's layer sizes, e.g. 784-128-10 (ReLU between), or a network of torch.nn modules, e.g. conv:16:3:p=1,bn,relu,maxpool:2,flatten,linear:10 (see below)", 0 },
	{ "print-torch", SL_OPT_FLAG, &print_torch, NULL, 0, 0, NULL, "print the torch.nn module --arch stands for (a model file loads into it) and exit; a network takes its input shape from --dataset", 0 },
	{ "epochs", SL_OPT_INT, &cfg.epochs, "10", 1, 100000, "E", "passes over the training rows", 0 },
	{ "batch", SL_OPT_INT, &cfg.batch, "128", 1, 65536, "B", "rows per step (--evaluate: per forward pass, at most 256)", 0 },
	{ "lr", SL_OPT_FLOAT, &cfg.lr, "0.001", 1e-9, 10, "LR", "learning rate", 0 },
	{ "optimizer", SL_OPT_STR, &cfg.optimizer, "adam", 0, 0, "sgd|adam", "optimizer", 0 },
	{ "lr-schedule", SL_OPT_STR, &cfg.lr_schedule, "constant", 0, 0, "constant|cosine", "learning rate per epoch: --lr throughout, or --lr * (1 + cos(pi * e / E)) / 2 in epoch e of E (PyTorch's CosineAnnealingLR(T_max=E) stepped per epoch)", 0 },
	{ "momentum", SL_OPT_FLOAT, &cfg.momentum, "0.9", 0, 0.999999, "M", "SGD momentum", 0 },
	{ "weight-decay", SL_OPT_FLOAT, &cfg.weight_decay, "0", 0, 1, "WD", "L2 weight decay", 0 },
	{ "dropout", SL_OPT_FLOAT, &cfg.dropout, "0", 0, 0.95, "P", "dropout after each hidden layer", 0 },
	{ "seed", SL_OPT_I64, &cfg.seed, "1", 0, 9007199254740991.0, "S", "seed for init, order and dropout", 0 },
	{ "input-scale", SL_OPT_FLOAT, &cfg.input_scale, NULL, 1e-12, 1e12, "S", "x*S before mean/std (default 1/255 for uint8 data, 1 for float32)", 0 },
	{ "input-mean", SL_OPT_STR, &cfg.input_mean, "0", 0, 0, "M[,M...]", "subtracted after scaling: one value, or one per channel (rows [C, H, W])", 0 },
	{ "input-std", SL_OPT_STR, &cfg.input_std, "1", 0, 0, "SD[,SD...]", "divides after the mean: one value, or one per channel", 0 },
	{ "test-data", SL_OPT_STR, &cfg.test_data, NULL, 0, 0, "FILE", "evaluated after every epoch", 0 },
	{ "test-labels", SL_OPT_STR, &cfg.test_labels, NULL, 0, 0, "FILE", "labels of --test-data, one per row", 0 },
	{ "out", SL_OPT_STR, &cfg.out, NULL, 0, 0, "FILE", "trained model (.safetensors, PyTorch layout)", 0 },
	{ "onnx-out", SL_OPT_STR, &cfg.onnx_out, NULL, 0, 0, "FILE", "an --arch network: also write it as ONNX (opset 13), to run as a teacher; with --model M.safetensors and no --dataset: convert M", 0 },
	{ "checkpoint", SL_OPT_STR, &cfg.checkpoint, NULL, 0, 0, "FILE", "resumable state, written atomically", 0 },
	{ "checkpoint-every", SL_OPT_INT, &cfg.checkpoint_every, "200", 0, 1000000000, "STEPS", "also checkpoint every STEPS steps (0: epoch ends only)", 0 },
	{ "resume", SL_OPT_FLAG, &cfg.resume, NULL, 0, 0, NULL, "continue from --checkpoint if it exists", 0 },
	{ "metrics", SL_OPT_STR, &cfg.metrics, NULL, 0, 0, "FILE", "JSON lines, one per epoch", 0 },
	{ "threads", SL_OPT_INT, &cfg.threads, "0", 0, 1024, "N", "OpenBLAS threads (0: OpenBLAS decides); 1 is bit-reproducible", 0 },
	{ "evaluate", SL_OPT_FLAG, &evaluate, NULL, 0, 0, NULL, "score --model on --test-data instead of training", 0 },
	{ "model", SL_OPT_STR, &model_path, NULL, 0, 0, "FILE", "model to evaluate (safetensors MLP or ONNX, told apart by content)", 0 },
	{ "predictions", SL_OPT_STR, &predictions, NULL, 0, 0, "FILE", "with --evaluate: predicted class per row (.npy int32)", 0 },
	{ "probs", SL_OPT_STR, &probs_path, NULL, 0, 0, "FILE", "with --evaluate: softmax(z/T) per row (.npy float32, rows x classes)", 0 },
	{ "log-level", SL_OPT_STR, &log_level, "info", 0, 0, "debug|info|warn|error", "log threshold", 0 },
	{ "help", SL_OPT_FLAG, &show_help, NULL, 0, 0, NULL, "this text", 0 },
	{ "version", SL_OPT_FLAG, &show_version, NULL, 0, 0, NULL, "print the version", 0 },
	SL_OPT_END
};

static void
usage(FILE *out)
{
	fprintf(out,
	    "usage: softlabel-student --dataset X --labels Y --arch 784-128-10 --out M.safetensors [options]\n"
	    "       softlabel-student --dataset X [--labels Y] --store CACHE [--teacher A,B] --alpha 0.9\n"
	    "                         --temperature 4 --arch 784-128-10 --out M.safetensors [options]\n"
	    "       softlabel-student --dataset X [--labels Y] --online-teacher T.onnx --alpha 0.9\n"
	    "                         --temperature 4 [--augment crop=2,flip] --arch A --out M [options]\n"
	    "       softlabel-student --evaluate --model M --test-data X [--test-labels Y]\n"
	    "                         [--predictions P.npy] [--probs F.npy --temperature T]\n"
	    "       softlabel-student --print-torch --arch A [--dataset X]\n"
	    "       softlabel-student --model S.safetensors --onnx-out S.onnx\n"
	    "\n"
	    "Trains a multilayer perceptron or a convolutional network and writes it\n"
	    "as safetensors that PyTorch loads into nn.Sequential (--print-torch\n"
	    "prints the module). Without --store: cross-entropy on labeled rows.\n"
	    "With --store: per row alpha*T^2*KL(teacher_T || student_T) where the\n"
	    "cache has a target, plus (1-alpha)*CE where the label is known\n"
	    "(CE alone for labeled rows the teachers have not reached yet).\n"
	    "With --online-teacher: the same loss, the targets computed by running\n"
	    "that teacher on each batch (every row has one); with --temperature T,\n"
	    "bit for bit the targets a dense f32 cache labeled at T gives.\n"
	    "\n"
	    "--augment RECIPE: in epoch e (from 0) row i of the dataset is trained\n"
	    "as its view (S, i, e), S = --augment-seed: the pixels sl_view (and\n"
	    "softlabel.views in Python) computes for that seed, sample and view,\n"
	    "before preprocessing; an online teacher sees the same pixels, a\n"
	    "1-view cache gives the target of the stored row. Evaluation never\n"
	    "augments. Rows must be images ([H, W] or [C, H, W]).\n"
	    "\n"
	    "--arch networks: elements separated by ',', each one torch.nn module\n"
	    "in an nn.Sequential (--print-torch prints it); input (C, H, W) from\n"
	    "the dataset's rows ([H, W] rows: C = 1):\n"
	    "  conv:OC:K[:s=S][:p=P][:g=G][:bias=0]  nn.Conv2d(C, OC, K, S, P, groups=G)\n"
	    "  bn[:eps=E][:momentum=M]               nn.BatchNorm2d(C, E, M)\n"
	    "  relu | gap | flatten                  nn.ReLU | nn.AdaptiveAvgPool2d(1) | nn.Flatten\n"
	    "  maxpool:K[:s=S][:p=P]                 nn.MaxPool2d(K, S (default K), P)\n"
	    "  avgpool:K[:s=S][:p=P]                 nn.AvgPool2d(K, S (default K), P)\n"
	    "  linear:N[:bias=0]                     nn.Linear(IN, N)\n"
	    "  dropout:P                             nn.Dropout(P)\n"
	    "  res(E,...)                            Residual(E, ...): x + body(x)\n"
	    "e.g. 'conv:16:3:p=1,bn,relu,maxpool:2,res(conv:16:3:p=1,bn,relu,conv:16:3:p=1,bn),\n"
	    "relu,gap,flatten,linear:10' (quote it: the shell reads parentheses).\n"
	    "\n"
	    "The dataset's fingerprint is remembered in a memo file keyed by its\n"
	    "device, inode, size, mtime and ctime ($SOFTLABEL_FINGERPRINTS, default\n"
	    "~/.cache/softlabel/fingerprints; off: hash at every start).\n"
	    "\n"
	    "--store tcp://HOST:PORT reads the cache from `softlabel serve` on\n"
	    "another host: the same targets, so with --threads 1 the same model\n"
	    "bit for bit; a lost server is waited for, never trained around.\n"
	    "\noptions:\n");
	sl_opt_help(opts, out);
	sl_opt_env_help(opts, "SOFTLABEL_STUDENT", out);
}

static int
need(const char *what, const char *v)
{
	if (v != NULL)
		return 0;
	fprintf(stderr, "softlabel-student: %s is required (see --help)\n", what);
	return 1;
}

/* The first distillation option on the command line, or NULL. --alpha 0
 * is plain supervised training (the way the demo trains its teacher). */
static const char *
distill_option_given(void)
{
	static const char *const names[] = { "teacher", "teacher-weights",
		"alpha", "temperature", "min-confidence", "balance", "on-corrupt",
		"wait-coverage", "wait-timeout" };

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (!sl_opt_find(opts, names[i])->given)
			continue;
		if (strcmp(names[i], "alpha") == 0 && cfg.alpha == 0.0f)
			continue;
		return names[i];
	}
	return NULL;
}

/* The first option on the command line that only a cache reads, or NULL. */
static const char *
cache_option_given(void)
{
	static const char *const names[] = { "teacher", "teacher-weights",
		"min-confidence", "balance", "on-corrupt", "wait-coverage",
		"wait-timeout" };

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (sl_opt_find(opts, names[i])->given)
			return names[i];
	return NULL;
}

/* --online-teacher is a source of targets instead of the cache: the
 * cache's options (cache_opt: the first one on the command line), and a
 * teacher weighted 0, make no sense with it. */
static int
check_online(const char *cache_opt)
{
	if (cfg.online_teacher == NULL)
		return 0;
	if (cfg.dc.store != NULL) {
		fprintf(stderr, "softlabel-student: --online-teacher and --store "
		    "are two sources of targets: give one\n");
		return 1;
	}
	if (cache_opt != NULL) {
		fprintf(stderr, "softlabel-student: --%s is for a cache "
		    "(--store); --online-teacher gives every row a target\n",
		    cache_opt);
		return 1;
	}
	if (sl_opt_find(opts, "alpha")->given && cfg.alpha == 0.0f) {
		fprintf(stderr, "softlabel-student: --alpha 0 with "
		    "--online-teacher would run the teacher for nothing\n");
		return 1;
	}
	return 0;
}

static int
check_augment(void)
{
	if (cfg.augment == NULL && sl_opt_find(opts, "augment-seed")->given) {
		fprintf(stderr, "softlabel-student: --augment-seed needs "
		    "--augment\n");
		return 1;
	}
	return 0;
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
	int npos;

	/* Before anything else: this may re-execute the program with a better
	 * OpenBLAS kernel (sl_blas.h). */
	sl_blas_start(argv);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	cfg.input_scale = NAN;
	cfg.augment_seed = -1;
	if (sl_opt_parse(opts, argc, argv, NULL, 0, &npos, &why) != 0) {
		fprintf(stderr, "softlabel-student: %s\n", why.text);
		return TRAIN_USAGE;
	}
	/* Before the environment: one env file serves both modes, so only
	 * the command line counts for distill_option_given(). */
	const char *distill_opt = distill_option_given();
	const char *cache_opt = cache_option_given();
	if (sl_opt_env(opts, "SOFTLABEL_STUDENT", &why) != 0) {
		fprintf(stderr, "softlabel-student: %s\n", why.text);
		return TRAIN_USAGE;
	}
	if (show_help) {
		usage(stdout);
		return 0;
	}
	/* A debug aid, not an option (README, "Views and augmentation"). */
	cfg.dump_inputs = getenv("SOFTLABEL_STUDENT_DUMP_INPUTS");
	if (cfg.dump_inputs != NULL && cfg.dump_inputs[0] == '\0')
		cfg.dump_inputs = NULL;
	if (show_version) {
		printf("softlabel-student %s\n", SL_VERSION);
		print_blas_line(cfg.threads);
		return 0;
	}
	(void)sl_log_parse_level(log_level, &level);
	sl_log_init("softlabel-student", level);
	{
		char what[256];

		snprintf(what, sizeof what, "the dataset %s", cfg.dataset ?
		    cfg.dataset : "(none)");
		sl_log_catch_sigbus(what);
	}
	/* Now only when the kernel is off: the INFO line waits until training
	 * has its inputs (train_run), so that a bad file stays a one-line
	 * error; --evaluate, a one-shot command, shows it only when off. */
	sl_blas_log_startup(cfg.threads, SL_LOG_WARN);

	if ((evaluate || print_torch) && cfg.augment != NULL) {
		fprintf(stderr, "softlabel-student: --augment is for training "
		    "(evaluation never augments)\n");
		return TRAIN_USAGE;
	}
	if (evaluate) {
		if (need("--model", model_path) || need("--test-data", cfg.test_data))
			return TRAIN_USAGE;
		if (cfg.test_labels == NULL && predictions == NULL &&
		    probs_path == NULL) {
			fprintf(stderr, "softlabel-student: --evaluate has nothing "
			    "to report: give --test-labels (accuracy), "
			    "--predictions FILE or --probs FILE\n");
			return TRAIN_USAGE;
		}
		eval_cfg e = {
			.model = model_path, .arch = cfg.arch,
			.test_data = cfg.test_data, .test_labels = cfg.test_labels,
			.predictions = predictions, .probs = probs_path,
			.T = sl_opt_find(opts, "temperature")->given ?
			    cfg.dc.temperature : 1.0f,
			.batch = cfg.batch, .threads = cfg.threads,
		};
		sl_preproc pre;

		/* --input-* given: they override the model's preprocessing. */
		if (!isnan(cfg.input_scale) || sl_opt_find(opts, "input-mean")->given ||
		    sl_opt_find(opts, "input-std")->given) {
			sl_dataset *ds = NULL;

			if (sl_dataset_open(cfg.test_data, &ds, &why) != 0) {
				fprintf(stderr, "softlabel-student: %s: %s\n",
				    cfg.test_data, why.text);
				return TRAIN_FAILED;
			}
			/* Mean and std default to 0 and 1 here, not to the
			 * model's: --input-* replace its preprocessing. */
			if (sl_preproc_from_options(&pre, NULL, cfg.input_scale,
			    cfg.input_mean, cfg.input_std, &why) != 0) {
				sl_dataset_close(&ds);
				fprintf(stderr, "softlabel-student: %s\n", why.text);
				return TRAIN_USAGE;
			}
			sl_preproc_fill(&pre, sl_dataset_dtype(ds));
			sl_dataset_close(&ds);
			e.pre = &pre;
		}
		return eval_run(&e);
	}
	if (cfg.onnx_out != NULL && model_path != NULL && !evaluate &&
	    cfg.dataset == NULL)
		return train_convert_onnx(model_path, cfg.onnx_out);
	if (print_torch) {
		if (need("--arch", cfg.arch))
			return TRAIN_USAGE;
		return train_print_torch(&cfg);
	}
	if (need("--dataset", cfg.dataset) || need("--arch", cfg.arch) ||
	    need("--out", cfg.out) ||
	    (cfg.dc.store == NULL && cfg.online_teacher == NULL &&
	    need("--labels (or --store, or --online-teacher)", cfg.labels)))
		return TRAIN_USAGE;
	if (check_online(cache_opt) != 0 || check_augment() != 0)
		return TRAIN_USAGE;
	if (cfg.dc.store == NULL && cfg.online_teacher == NULL &&
	    distill_opt != NULL) {
		fprintf(stderr, "softlabel-student: --%s is a distillation "
		    "option and needs --store (without --store training is "
		    "supervised%s)\n", distill_opt, strcmp(distill_opt, "alpha") ?
		    "" : "; --alpha 0 says so");
		return TRAIN_USAGE;
	}
	if ((cfg.dc.ro.curve_secret == NULL) != (cfg.dc.ro.curve_server == NULL)) {
		fprintf(stderr, "softlabel-student: --curve-secret and "
		    "--curve-server go together (see --help)\n");
		return TRAIN_USAGE;
	}
	/* Keys without a server to speak to are a mistake worth saying;
	 * --connect-timeout has a default (an env file sets it) and is
	 * ignored for a directory. */
	if (cfg.dc.ro.curve_secret != NULL &&
	    (cfg.dc.store == NULL || !sl_reader_is_remote(cfg.dc.store))) {
		fprintf(stderr, "softlabel-student: --curve-secret is for a "
		    "remote --store (tcp://HOST:PORT of softlabel serve)\n");
		return TRAIN_USAGE;
	}
	if (cfg.dc.store != NULL && sl_reader_is_remote(cfg.dc.store) &&
	    sl_net_check_endpoint(cfg.dc.store, 0, &why) != 0) {
		fprintf(stderr, "softlabel-student: --store: %s\n", why.text);
		return TRAIN_USAGE;
	}
	if ((cfg.test_data == NULL) != (cfg.test_labels == NULL)) {
		fprintf(stderr, "softlabel-student: --test-data and --test-labels "
		    "go together\n");
		return TRAIN_USAGE;
	}
	if (cfg.resume && cfg.checkpoint == NULL) {
		fprintf(stderr, "softlabel-student: --resume needs --checkpoint\n");
		return TRAIN_USAGE;
	}

	cfg.dc.ro.stop = &stop_requested; /* SIGTERM ends a wait for a server */
	return train_run(&cfg, &stop_requested);
}

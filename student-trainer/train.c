/* train.c - a training run: opening it (data, labels, cache or online
 * teacher, network, optimizer, checkpoint), its epochs and batches, its
 * metrics and the model it writes. run.h says what a run holds. */
#include "run.h"
#include "sl_blas.h"
#include "sl_fingerprint.h"
#include "sl_log.h"
#include "sl_loss.h"
#include "sl_progress.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void
run_fini(run *r)
{
	sl_dataset_close(&r->ds);
	sl_dataset_close(&r->test_ds);
	free(r->labels);
	free(r->test_labels);
	sl_mlp_free(&r->m);
	sl_mlp_ws_free(&r->ws);
	sl_cnn_free(&r->cnn);
	sl_cnn_ws_free(&r->cws);
	sl_optim_fini(&r->opt);
	if (r->cached)
		distill_close(&r->d);
	if (r->taught)
		online_close(&r->ot);
	augment_fini(&r->aug);
	free(r->views);
	if (r->dump != NULL)
		fclose(r->dump);
	free(r->rows);
	free(r->x);
	free(r->y);
	free(r->pt);
	free(r->has_t);
	free(r->test_pred);
	free(r->teacher_pred);
	free(r->dz);
	free(r->grads);
	free(r->settings);
	if (r->metrics != NULL)
		fclose(r->metrics);
}


int
open_data(const char *path, sl_dataset **ds)
{
	sl_errmsg why = { "" };
	int rc = sl_dataset_open(path, ds, &why);

	if (rc != 0)
		sl_error("%s: %s", path, why.text[0] ? why.text : sl_strerror(rc));
	return rc;
}

/* Training labels may be fewer than the rows (the rest are unlabeled);
 * test labels (exact) must be one per test row, or accuracy is scored
 * against the wrong rows. */
static int
open_labels(const char *path, int32_t **y, size_t *n, size_t rows, int classes,
    int exact, const char *rows_path)
{
	sl_errmsg why = { "" };
	int rc = sl_labels_load(path, y, n, &why);

	if (rc != 0) {
		sl_error("%s: %s", path, why.text[0] ? why.text : sl_strerror(rc));
		return rc;
	}
	if (*n > rows || (exact && *n != rows)) {
		sl_error("%s: %zu labels for the %zu rows of %s%s", path, *n, rows,
		    rows_path, exact ? " (test labels: one per row)" : "");
		return SL_EMISMATCH;
	}
	for (size_t i = 0; i < *n; i++) {
		if ((*y)[i] >= classes) {
			sl_error("%s: label %d at row %zu, but the network has %d "
			    "classes", path, (*y)[i], i, classes);
			return SL_EMISMATCH;
		}
	}
	return 0;
}


static int
labeled(const run *r, size_t i)
{
	return i < r->nlabels && r->labels[i] >= 0;
}

/* Rows of this epoch in index order: every labeled row (cross-entropy,
 * plus distillation where it has a target), and the unlabeled rows the
 * selection query keeps (distillation only); with an online teacher every
 * row (each has a target). */
static void
select_rows(run *r)
{
	const size_t n = sl_dataset_rows(r->ds);

	r->n_rows = 0;
	for (size_t i = 0; i < n; i++)
		if (labeled(r, i) || (r->cached && r->d.keep[i]) || r->taught)
			r->rows[r->n_rows++] = i;
}

/* The teacher's class for every test row, for fidelity (agreement). */
static int
teacher_predictions(run *r)
{
	const train_cfg *c = r->cfg;
	sl_errmsg why = { "" };
	sl_model_info info;
	sl_graph *g = NULL;
	sl_graph_opts go = { .max_batch = 256 };
	uint64_t shape[SL_DATA_MAX_DIMS];
	float *x = NULL;
	uint64_t ok, cnt;
	sl_preproc pre;
	int rc;

	if (r->test_ds == NULL) {
		sl_error("--teacher-model needs --test-data");
		return SL_EINVAL;
	}
	if (r->cached) {
		/* Fidelity is agreement with the teacher the targets came
		 * from: the cache names each teacher's model by its SHA-256. */
		char sha[65];
		int i;

		if ((rc = sl_model_sha256(c->teacher_model, sha, &why)) != 0) {
			sl_error("%s: %s", c->teacher_model, why.text);
			return rc;
		}
		for (i = 0; i < r->d.nteachers; i++)
			if (strcmp(sha, r->d.teachers[i].model_sha256) == 0)
				break;
		if (i == r->d.nteachers) {
			sl_error("--teacher-model %s (sha256 %.16s...) is not the "
			    "model of %s %s in %s (sha256 %.16s...)",
			    c->teacher_model, sha, r->d.nteachers > 1 ?
			    "any teacher, e.g." : "teacher", r->d.teachers[0].name,
			    c->dc.store, r->d.teachers[0].model_sha256);
			return SL_EMISMATCH;
		}
	}
	/* Any teacher the engine runs (an ONNX CNN, a safetensors MLP),
	 * planned for the test rows' shape. */
	go.row_rank = (int)sl_dataset_shape(r->test_ds, shape) - 1;
	go.row_dims = shape + 1;
	if ((rc = sl_graph_load(c->teacher_model, &go, &g, &info, &why)) != 0) {
		sl_error("%s: %s", c->teacher_model, why.text[0] ? why.text :
		    sl_strerror(rc));
		return rc;
	}
	if (sl_graph_classes(g) != net_classes(r)) {
		sl_error("--teacher-model %s has %d classes, the student %d",
		    c->teacher_model, sl_graph_classes(g), net_classes(r));
		sl_graph_free(&g);
		return SL_EINVAL;
	}
	pre = info.has_preproc ? info.pre :
	    sl_preproc_default(sl_dataset_dtype(r->test_ds));
	r->teacher_pred = malloc(sl_dataset_rows(r->test_ds) * sizeof(int32_t) + 4);
	x = malloc((size_t)go.max_batch * sl_graph_input_dim(g) * sizeof *x);
	if (r->teacher_pred == NULL || x == NULL)
		rc = SL_ENOMEM;
	else if ((rc = eval_graph(g, go.max_batch, x, r->test_ds, &pre, NULL,
	    0, r->teacher_pred, 1.0f, NULL, &ok, &cnt, &why)) != 0)
		sl_error("%s: %s", c->teacher_model, why.text);
	free(x);
	sl_graph_free(&g);
	return rc;
}

/* Whether path can be written (it, or its directory when it does not
 * exist yet), without creating it; errno says why not. */
static int
writable(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');

	if (access(path, W_OK) == 0)
		return 1;
	if (errno != ENOENT)
		return 0;
	if (slash == NULL)
		return access(".", W_OK) == 0;
	if ((size_t)(slash - path) >= sizeof dir) {
		errno = ENAMETOOLONG;
		return 0;
	}
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	return access(slash == path ? "/" : dir, W_OK) == 0;
}

/* --wait-coverage from before the labeling starts: wait (within the same
 * --wait-timeout) for the cache and its teachers to exist. */
static int
wait_for_teachers(run *r, volatile sig_atomic_t *stop)
{
	const train_cfg *c = r->cfg;
	char what[512] = "";
	int ready, logged = 0;

	r->wait_t0 = sl_now_s();
	if (c->wait_coverage <= 0.0f)
		return 0;
	while ((ready = distill_ready(&c->dc, what, sizeof what)) == 0) {
		const struct timespec half = { 0, 500000000L };

		if (!logged) {
			char bound[48] = "no time limit";

			if (c->wait_timeout_s > 0)
				snprintf(bound, sizeof bound, "at most %d s",
				    c->wait_timeout_s);
			sl_info("--wait-coverage: %s; waiting, %s", what, bound);
			logged = r->waited = 1;
		}
		if (*stop) {
			sl_info("interrupted while waiting for the cache");
			return EINTR;
		}
		if (c->wait_timeout_s > 0 &&
		    sl_now_s() - r->wait_t0 >= c->wait_timeout_s) {
			sl_error("--wait-coverage: %s after --wait-timeout %d s",
			    what, c->wait_timeout_s);
			return ETIMEDOUT;
		}
		nanosleep(&half, NULL);
	}
	return ready < 0 ? EIO : 0;
}

/* The views the student trains on: --augment's, or, from a cache whose
 * teachers labeled views, the cache's own recipe and seed, replayed
 * (augment.h: view (e + offset) mod V in epoch e), so that every row is
 * taught the teacher's output on the very pixels it sees. --augment and
 * --augment-seed may then only repeat the cache's. */
static int
open_augment(run *r, int B)
{
	const train_cfg *c = r->cfg;
	const char *recipe = c->augment;
	uint64_t seed = (uint64_t)(c->augment_seed < 0 ? c->seed :
	    c->augment_seed);
	char text[SL_VIEW_RECIPE_TEXT];
	uint32_t V = 0;

	if (r->cached && r->d.views > 0) {
		const distill *d = &r->d;
		sl_view_recipe mine;
		sl_errmsg why = { "" };

		sl_view_recipe_format(text, sizeof text, &d->view_recipe);
		if (c->augment != NULL && (sl_view_recipe_parse(c->augment, &mine,
		    &why) != 0 || memcmp(&mine, &d->view_recipe,
		    sizeof mine) != 0)) {
			sl_error("--augment %s: the cache's teacher %s labeled "
			    "%u views of %s, which the student replays: leave "
			    "--augment out or give that recipe", c->augment,
			    d->teachers[0].name, d->views, text);
			return SL_EINVAL;
		}
		if (c->augment_seed >= 0 && (uint64_t)c->augment_seed !=
		    d->view_seed) {
			sl_error("--augment-seed %lld: the cache's views are drawn "
			    "with seed %llu, which the student replays: leave "
			    "--augment-seed out or give that one",
			    (long long)c->augment_seed,
			    (unsigned long long)d->view_seed);
			return SL_EINVAL;
		}
		recipe = text, seed = d->view_seed, V = d->views;
		sl_info("replaying %u views of %s (seed %llu) from the cache", V,
		    text, (unsigned long long)seed);
	}
	return augment_init(&r->aug, recipe, seed, V, r->ds, B);
}

static int
run_open(run *r, const train_cfg *c, volatile sig_atomic_t *stop)
{
	int sizes[SL_MLP_MAX_LAYERS + 1], nl, C, B = c->batch;
	size_t D;
	enum sl_optim_kind kind;
	int rc;

	r->cfg = c;
	if (c->onnx_out != NULL && !sl_cnn_is_arch(c->arch)) {
		sl_error("--onnx-out is for --arch networks (an MLP's safetensors "
		    "file already runs as a teacher)");
		return SL_EINVAL;
	}
	if (sl_cnn_is_arch(c->arch)) {
		if (c->dropout > 0.0f) {
			sl_error("--dropout: a convolutional --arch places its own "
			    "dropout:P elements");
			return SL_EINVAL;
		}
		if ((rc = open_data(c->dataset, &r->ds)) != 0 ||
		    (rc = open_cnn(r, c->arch)) != 0)
			return rc;
		sizes[0] = (int)sl_dataset_dim(r->ds);
		nl = 0;
		C = sl_cnn_classes(r->cnn);
	} else if (sl_mlp_parse_arch(c->arch, sizes, &nl) != 0) {
		sl_error("--arch: '%s' is not a layer list like 784-128-10 nor a "
		    "network like conv:16:3:p=1,relu,flatten,linear:10 (see "
		    "--help)", c->arch);
		return SL_EINVAL;
	} else {
		C = sizes[nl];
		if ((rc = open_data(c->dataset, &r->ds)) != 0)
			return rc;
	}
	D = sl_dataset_dim(r->ds);
	if (D != (size_t)sizes[0]) {
		sl_error("%s: rows have %zu values, --arch %s expects %d",
		    c->dataset, D, c->arch, sizes[0]);
		return SL_EMISMATCH;
	}
	if (c->labels != NULL && (rc = open_labels(c->labels, &r->labels,
	    &r->nlabels, sl_dataset_rows(r->ds), C, 0, c->dataset)) != 0)
		return rc;
	if (c->dc.store != NULL) {
		if ((rc = wait_for_teachers(r, stop)) != 0)
			return rc;
		if ((rc = distill_open(&r->d, &c->dc, r->ds, (uint32_t)C)) != 0) {
			distill_close(&r->d);
			return rc;
		}
		r->cached = 1;
	}
	if (c->test_data != NULL) {
		if ((rc = open_data(c->test_data, &r->test_ds)) != 0)
			return rc;
		if (sl_dataset_dim(r->test_ds) != D) {
			sl_error("%s: rows have %zu values, training rows %zu",
			    c->test_data, sl_dataset_dim(r->test_ds), D);
			return SL_EMISMATCH;
		}
		if ((rc = open_labels(c->test_labels, &r->test_labels,
		    &r->test_nlabels, sl_dataset_rows(r->test_ds), C, 1,
		    c->test_data)) != 0)
			return rc;
	}

	{
		sl_errmsg why = { "" };
		uint64_t shape[SL_DATA_MAX_DIMS];
		uint32_t ndim = sl_dataset_shape(r->ds, shape);

		if (sl_preproc_from_options(&r->pre, NULL, c->input_scale,
		    c->input_mean, c->input_std, &why) == 0) {
			sl_preproc_fill(&r->pre, sl_dataset_dtype(r->ds));
			rc = sl_preproc_check(&r->pre, shape, ndim, &why);
		} else {
			rc = SL_EINVAL;
		}
		if (rc != 0) {
			sl_error("%s", why.text);
			return SL_EINVAL;
		}
	}

	if ((rc = open_augment(r, B)) != 0)
		return rc;
	if (c->online_teacher != NULL) {
		if ((rc = online_open(&r->ot, c->online_teacher, r->ds, B, C,
		    c->dc.temperature)) != 0) {
			online_close(&r->ot);
			return rc;
		}
		r->taught = 1;
	}
	if (c->dump_inputs != NULL &&
	    (r->dump = fopen(c->dump_inputs, "wb")) == NULL) {
		sl_error("SOFTLABEL_STUDENT_DUMP_INPUTS %s: cannot open: %s",
		    c->dump_inputs, strerror(errno));
		return SL_EINVAL;
	}

	/* The trainable rows are chosen per epoch (select_rows). */
	r->rows = malloc(sl_dataset_rows(r->ds) * sizeof *r->rows + 1);
	if (r->rows == NULL)
		return SL_ENOMEM;
	if (!r->cached) {
		select_rows(r);
		if (r->n_rows == 0) {
			sl_error("%s: no labeled rows to train on", c->labels);
			return SL_EINVAL;
		}
	}

	if (r->cnn != NULL)
		rc = sl_cnn_ws_new(r->cnn, B, &r->cws);
	else if ((rc = sl_mlp_new(sizes, nl, &r->m)) == 0)
		rc = sl_mlp_ws_new(r->m, B, &r->ws);
	if (rc != 0)
		return rc;
	(void)sl_optim_parse_kind(c->optimizer, &kind); /* checked by sl_opt */
	if ((rc = sl_optim_init(&r->opt, kind, net_nparams(r), c->lr)) != 0)
		return rc;
	r->opt.momentum = c->momentum;
	r->opt.weight_decay = c->weight_decay;
	r->x = malloc((size_t)B * D * sizeof *r->x);
	r->y = malloc((size_t)B * sizeof *r->y);
	r->dz = malloc((size_t)B * C * sizeof *r->dz);
	r->grads = malloc(net_nparams(r) * sizeof *r->grads);
	r->pt = malloc((size_t)B * C * sizeof *r->pt);
	r->has_t = malloc((size_t)B);
	r->views = malloc((size_t)B * sizeof *r->views);
	if (!r->x || !r->y || !r->dz || !r->grads || !r->pt || !r->has_t ||
	    !r->views)
		return SL_ENOMEM;
	if (r->test_ds != NULL) {
		r->test_pred = malloc(sl_dataset_rows(r->test_ds) * sizeof(int32_t) + 4);
		if (r->test_pred == NULL)
			return SL_ENOMEM;
	}
	if (c->teacher_model != NULL && (rc = teacher_predictions(r)) != 0)
		return rc;

	sl_rng_seed(&r->rng, (uint64_t)c->seed);
	if (r->cnn != NULL)
		sl_cnn_init_params(r->cnn, &r->rng);
	else
		sl_mlp_init_params(r->m, &r->rng);
	if ((rc = run_digest(r)) != 0)
		return rc;
	if (c->metrics != NULL && !writable(c->metrics)) {
		sl_error("--metrics %s: cannot write there: %s", c->metrics,
		    strerror(errno));
		return SL_EINVAL;
	}
	return 0;
}

/* The order of epoch e depends only on the seed, e and the rows chosen, so
 * a resumed run rebuilds it instead of storing it. */
static void
epoch_order(run *r, uint32_t epoch)
{
	sl_rng order;

	select_rows(r);
	sl_rng_seed(&order, (uint64_t)r->cfg->seed * 1000003u + epoch + 1);
	sl_rng_shuffle(&order, r->rows, r->n_rows);
}

static int
save_checkpoint(run *r, const ckpt_pos *pos)
{
	sl_errmsg why = { "" };
	int rc;

	if (r->cfg->checkpoint == NULL)
		return 0;
	const ckpt_net net = net_ckpt(r);

	rc = ckpt_save_net(r->cfg->checkpoint, &net, &r->opt, &r->rng, pos,
	    r->digest, r->settings, r->cached ? r->d.mask : NULL,
	    r->cached ? r->d.mask_len : 0, &why);
	if (rc != 0)
		sl_error("checkpoint %s: %s", r->cfg->checkpoint, why.text);
	return rc;
}

/* The batch's inputs as stored: x = preprocessed rows[first .. first+B). */
static void
batch_inputs(run *r, size_t first, int B)
{
	if (sl_dataset_dtype(r->ds) == SL_DTYPE_U8 && r->pre.channels == 1 &&
	    r->pre.mean[0] == 0.0f && r->pre.std[0] == 1.0f) {
		/* The default preprocessing of uint8 rows is x / 255: then
		 * (x * s - 0) / 1, as sl_rows_f32 computes it, is x * s exactly,
		 * and the loop is a vector convert and multiply instead of a
		 * convert, multiply, subtract and divide (the divide was most of
		 * the 8-11% the batch gather took of a 784-128-10 epoch). */
		const size_t D = net_dim(r);
		const float scale = r->pre.scale;

		for (int i = 0; i < B; i++) {
			const uint8_t *src = sl_dataset_row(r->ds,
			    r->rows[first + (size_t)i]);
			float *dst = r->x + (size_t)i * D;

			/* The rows are in shuffled order, so the hardware
			 * prefetcher cannot see the next one coming. */
			if (i + 1 < B) {
				const char *next = sl_dataset_row(r->ds,
				    r->rows[first + (size_t)i + 1]);

				for (size_t o = 0; o < D; o += 64)
					__builtin_prefetch(next + o);
			}
			for (size_t j = 0; j < D; j++)
				dst[j] = (float)src[j] * scale;
		}
	} else {
		sl_dataset_rows_f32(r->ds, r->rows + first, 0, (size_t)B, &r->pre,
		    r->x);
	}
}

/* SOFTLABEL_STUDENT_DUMP_INPUTS (a debug aid, README "Views and
 * augmentation"): the first batch of every epoch as trained, appended as
 * u32 epoch, u32 B, u32 D, u32 C, B u64 samples, B u32 views, B * D
 * float32 inputs, B * C float32 targets (0 where has is 0), B u8 has
 * (native byte order: little-endian on the hosts we build for). */
static void
dump_batch(run *r, uint32_t epoch, size_t first, int B)
{
	const uint32_t hdr[4] = { epoch, (uint32_t)B, (uint32_t)net_dim(r),
		(uint32_t)net_classes(r) };
	const size_t C = (size_t)net_classes(r);

	fwrite(hdr, sizeof hdr, 1, r->dump);
	for (int i = 0; i < B; i++) {
		const uint64_t s = r->rows[first + (size_t)i];

		fwrite(&s, sizeof s, 1, r->dump);
	}
	fwrite(r->views, sizeof *r->views, (size_t)B, r->dump);
	fwrite(r->x, sizeof *r->x, (size_t)B * net_dim(r), r->dump);
	for (int i = 0; i < B; i++) {
		if (!r->has_t[i])
			memset(r->pt + (size_t)i * C, 0, C * sizeof *r->pt);
		fwrite(r->pt + (size_t)i * C, sizeof *r->pt, C, r->dump);
	}
	fwrite(r->has_t, 1, (size_t)B, r->dump);
	if (fflush(r->dump) != 0)
		sl_warn("SOFTLABEL_STUDENT_DUMP_INPUTS: write failed");
}

/* One optimizer step on rows[first .. first+B) of epoch. With --augment
 * each row is replaced by its view views[i] (augment.h) before
 * preprocessing, and the targets are those of that view. Returns the
 * batch loss. */
static float
train_batch(run *r, uint32_t epoch, size_t first, int B)
{
	const train_cfg *c = r->cfg;
	const size_t *rows = r->rows + first;
	const void *raw = NULL; /* the batch's views, raw */
	const int teach = r->cached || r->taught;
	const float *z;
	float loss;

	const int C = net_classes(r);

	/* view_of(epoch, ...) of every row; without --augment the stored row
	 * is view 0 of a 1-view cache. */
	if (r->aug.on)
		augment_views(&r->aug, epoch, rows, (size_t)B, r->views);
	else
		memset(r->views, 0, (size_t)B * sizeof *r->views);
	if (r->aug.on) {
		raw = augment_rows(&r->aug, r->ds, rows, r->views, (size_t)B);
		sl_rows_f32(raw, sl_dataset_dtype(r->ds), (size_t)B, net_dim(r),
		    &r->pre, r->x);
	} else {
		batch_inputs(r, first, B);
	}
	for (int i = 0; i < B; i++) {
		const size_t row = rows[i];

		r->y[i] = labeled(r, row) ? r->labels[row] : -1;
		r->has_t[i] = 0;
	}
	/* The batch's targets: read from the cache's snapshot now (memory
	 * does not grow with rows x classes), or computed by the online
	 * teacher on what the student sees. */
	if (r->cached && distill_gather(&r->d, rows, r->views, (size_t)B,
	    r->pt, r->has_t) != 0) {
		r->failed = 1;
		return NAN;
	}
	if (r->taught && online_targets(&r->ot, r->ds, rows, raw, (size_t)B,
	    r->pt, r->has_t) != 0) {
		r->failed = 1;
		return NAN;
	}
	if (r->dump != NULL && first == 0)
		dump_batch(r, epoch, first, B);
	z = net_forward(r, r->x, B, 1);
	loss = sl_loss_kd(z, teach ? r->pt : NULL, r->has_t, r->y, B, C,
	    teach ? c->dc.temperature : 1.0f, teach ? c->alpha : 0.0f,
	    r->dz, NULL);
	net_backward(r, r->dz, B);
	sl_optim_step(&r->opt, net_params(r), r->grads);
	return loss;
}

void
eval_accuracy(const sl_mlp *m, sl_mlp_ws *ws, int B, float *x,
    const sl_dataset *ds, const sl_preproc *pre, const int32_t *labels,
    size_t nlabels, int32_t *pred, uint64_t *correct, uint64_t *counted)
{
	const size_t n = sl_dataset_rows(ds);
	const int C = m->sizes[m->nlayers];
	int32_t top[256];
	uint64_t ok = 0, cnt = 0;

	/* top[] bounds the chunk, so evaluation needs no buffer of its own. */
	if (B > 256)
		B = 256;
	for (size_t first = 0; first < n; first += (size_t)B) {
		const int b = n - first < (size_t)B ? (int)(n - first) : B;
		const float *z;

		sl_dataset_rows_f32(ds, NULL, first, (size_t)b, pre, x);
		z = sl_mlp_forward(m, ws, x, b, 0.0f, NULL);
		sl_loss_argmax(top, z, b, C);
		for (int i = 0; i < b; i++) {
			const size_t row = first + (size_t)i;

			if (pred != NULL)
				pred[row] = top[i];
			if (row < nlabels && labels[row] >= 0) {
				cnt++;
				ok += top[i] == labels[row];
			}
		}
	}
	*correct = ok;
	*counted = cnt;
}

void
eval_cnn(sl_cnn *n, sl_cnn_ws *ws, int B, float *x, const sl_dataset *ds,
    const sl_preproc *pre, const int32_t *labels, size_t nlabels,
    int32_t *pred, float *probs, float T, uint64_t *correct,
    uint64_t *counted)
{
	const size_t rows = sl_dataset_rows(ds);
	const int C = sl_cnn_classes(n);
	int32_t top[256];
	uint64_t ok = 0, cnt = 0;

	if (B > 256)
		B = 256;
	for (size_t first = 0; first < rows; first += (size_t)B) {
		const int b = rows - first < (size_t)B ? (int)(rows - first) : B;
		const float *z;

		sl_dataset_rows_f32(ds, NULL, first, (size_t)b, pre, x);
		z = sl_cnn_forward(n, ws, x, b, 0, NULL);
		sl_loss_argmax(top, z, b, C);
		for (int i = 0; i < b; i++) {
			const size_t row = first + (size_t)i;

			if (pred != NULL)
				pred[row] = top[i];
			if (labels != NULL && row < nlabels && labels[row] >= 0) {
				cnt++;
				ok += top[i] == labels[row];
			}
		}
		if (probs != NULL)
			sl_loss_softmax(probs + first * (size_t)C, z, b, C, T);
	}
	*correct = ok;
	*counted = cnt;
}

/* Per-epoch figures, for the log line and the metrics file. */
typedef struct epoch_stats {
	double loss, rate, wall_s;
	uint64_t test_ok, test_n;  /* test_n 0: no test set */
	uint64_t agree;            /* with --teacher-model */
} epoch_stats;

/* One JSON object per epoch; fields without a value are null (JSON has no
 * NaN). */
static void
write_metrics(run *r, const ckpt_pos *pos, const epoch_stats *e)
{
	char acc[64] = "null", errors[32] = "null", fid[64] = "null";
	char targets[32] = "null";

	if (r->metrics == NULL)
		return;
	if (e->test_n > 0) {
		snprintf(acc, sizeof acc, "%.6f", (double)e->test_ok /
		    (double)e->test_n);
		snprintf(errors, sizeof errors, "%llu",
		    (unsigned long long)(e->test_n - e->test_ok));
		if (r->teacher_pred != NULL)
			snprintf(fid, sizeof fid, "%.6f", (double)e->agree /
			    (double)sl_dataset_rows(r->test_ds));
	}
	if (r->cached)
		snprintf(targets, sizeof targets, "%llu",
		    (unsigned long long)r->d.targets.nhas);
	else if (r->taught) /* every row has one */
		snprintf(targets, sizeof targets, "%zu", r->n_rows);
	fprintf(r->metrics, "{\"epoch\":%u,\"step\":%llu,\"loss\":%.6f,"
	    "\"lr\":%.9g,\"rows\":%zu,\"rows_with_target\":%s,\"test_accuracy\":%s,"
	    "\"test_errors\":%s,\"fidelity\":%s,\"samples_per_s\":%.1f,"
	    "\"wall_s\":%.3f}\n", pos->epoch, (unsigned long long)pos->step,
	    e->loss, (double)r->opt.lr, r->n_rows, targets, acc, errors, fid, e->rate, e->wall_s);
	fflush(r->metrics);
}

/* Targets and rows for the epoch: a fresh look at the cache, or, for the
 * epoch a checkpoint was taken in, the shards it names. */
static int
prepare_epoch(run *r, uint32_t epoch, int from_checkpoint)
{
	if (r->cached) {
		if (!from_checkpoint && distill_take_done(&r->d) != 0)
			return 1;
		if (distill_build(&r->d, r->labels, r->nlabels) != 0)
			return 1;
	}
	epoch_order(r, epoch);
	if (r->n_rows == 0) {
		sl_error("epoch %u: no rows to train on yet (no labels, no "
		    "targets selected)", epoch + 1);
		return 1;
	}
	if (r->cached) {
		const uint64_t rows = sl_dataset_rows(r->ds);
		const uint64_t covered = distill_covered_rows(&r->d);

		sl_info("epoch %u: %zu rows (%llu with teacher targets, %llu "
		    "selected unlabeled or labeled)", epoch + 1, r->n_rows,
		    (unsigned long long)r->d.targets.nhas,
		    (unsigned long long)r->d.nkeep);
		if (covered < rows)
			sl_warn("epoch %u: the cache covers %llu of %llu rows "
			    "(%.1f%%): labeling is not finished; later epochs "
			    "take the shards done by then (--wait-coverage F "
			    "waits for a fraction first)", epoch + 1,
			    (unsigned long long)covered, (unsigned long long)rows,
			    100.0 * (double)covered / (double)rows);
	}
	return 0;
}

/* --wait-coverage: before the first epoch, wait until the shards done for
 * every teacher cover that fraction of the rows, looking again every
 * 500 ms, at most --wait-timeout seconds (0: no bound). */
static int
wait_coverage(run *r, volatile sig_atomic_t *stop)
{
	const train_cfg *c = r->cfg;
	const uint64_t rows = sl_dataset_rows(r->ds);
	const uint64_t want = (uint64_t)ceil((double)c->wait_coverage *
	    (double)rows);
	const double t0 = r->wait_t0; /* the wait for teachers counts too */
	double logged = sl_now_s();
	uint64_t covered;

	if (c->wait_coverage <= 0.0f)
		return 0;
	if (distill_take_done(&r->d) != 0)
		return 1;
	covered = distill_covered_rows(&r->d);
	if (covered >= want && !r->waited)
		return 0;
	char bound[48] = "no time limit";

	if (c->wait_timeout_s > 0)
		snprintf(bound, sizeof bound, "at most %d s", c->wait_timeout_s);
	if (covered < want)
		sl_info("waiting until the cache covers %.4g of %llu rows (%llu "
		    "rows; now %llu, %.1f%%), %s", (double)c->wait_coverage,
		    (unsigned long long)rows, (unsigned long long)want,
		    (unsigned long long)covered,
		    100.0 * (double)covered / (double)rows, bound);
	while (covered < want) {
		const struct timespec half = { 0, 500000000L };
		const double now = sl_now_s();

		if (*stop) {
			sl_info("interrupted while waiting for coverage");
			return 1;
		}
		if (c->wait_timeout_s > 0 && now - t0 >= c->wait_timeout_s) {
			sl_error("--wait-coverage %.4g: the cache covers %llu of "
			    "%llu rows (%.1f%%) after --wait-timeout %d s",
			    (double)c->wait_coverage, (unsigned long long)covered,
			    (unsigned long long)rows,
			    100.0 * (double)covered / (double)rows,
			    c->wait_timeout_s);
			return 1;
		}
		if (now - logged >= 30) {
			sl_info("waiting: the cache covers %llu of %llu rows "
			    "(%.1f%%)", (unsigned long long)covered,
			    (unsigned long long)rows,
			    100.0 * (double)covered / (double)rows);
			logged = now;
		}
		nanosleep(&half, NULL);
		if (distill_take_done(&r->d) != 0)
			return 1;
		covered = distill_covered_rows(&r->d);
	}
	sl_info("the cache covers %llu of %llu rows (%.1f%%) after %.1f s: "
	    "training", (unsigned long long)covered, (unsigned long long)rows,
	    100.0 * (double)covered / (double)rows, sl_now_s() - t0);
	return 0;
}

static int
save_model(run *r)
{
	sl_errmsg why = { "" };
	int rc = r->cnn != NULL ? sl_cnn_save(r->cfg->out, r->cnn, &r->pre,
	    sl_dataset_dtype(r->ds), &why) : sl_model_save(r->cfg->out, r->m,
	    &r->pre, sl_dataset_dtype(r->ds), &why);

	if (rc != 0) {
		sl_error("%s: %s", r->cfg->out, why.text);
		return rc;
	}
	if (r->cnn != NULL && r->cfg->onnx_out != NULL &&
	    (rc = sl_cnn_save_onnx(r->cfg->onnx_out, r->cnn, &r->pre,
	    &why)) != 0)
		sl_error("%s: %s", r->cfg->onnx_out, why.text);
	else if (r->cfg->onnx_out != NULL)
		sl_info("wrote %s (ONNX)", r->cfg->onnx_out);
	return rc;
}

int
train_run(const train_cfg *c, volatile sig_atomic_t *stop)
{
	run r;
	ckpt_pos pos = { 0, 0, 0, 0.0, 0 };
	sl_progress bar;
	const double t0 = sl_now_s();
	int rc, status = TRAIN_FAILED;

	memset(&r, 0, sizeof r);
	if (c->threads > 0)
		openblas_set_num_threads(c->threads);
	if ((rc = run_open(&r, c, stop)) != 0) {
		status = rc == SL_EINVAL || rc == SL_EMISMATCH ? TRAIN_USAGE :
		    TRAIN_FAILED;
		goto out;
	}
	int resumed_mid_epoch = 0;

	if (c->resume && c->checkpoint != NULL) {
		sl_errmsg why = { "" };

		const ckpt_net net = net_ckpt(&r);

		rc = ckpt_load_net(c->checkpoint, &net, &r.opt, &r.rng, &pos,
		    r.digest, r.settings, r.cached ? r.d.mask : NULL,
		    r.cached ? r.d.mask_len : 0, &why);
		if (rc == ENOENT) {
			sl_info("resume: no checkpoint at %s yet, starting fresh",
			    c->checkpoint);
		} else if (rc != 0) {
			sl_error("--resume %s: %s", c->checkpoint, why.text);
			/* Another run's checkpoint is an option that differs:
			 * usage, like an --arch that does not fit. */
			if (rc == SL_EMISMATCH)
				status = TRAIN_USAGE;
			goto out;
		} else {
			resumed_mid_epoch = pos.batch > 0;
			sl_info("resume: epoch %u batch %llu step %llu from %s",
			    pos.epoch + 1, (unsigned long long)pos.batch,
			    (unsigned long long)pos.step, c->checkpoint);
		}
	}
	sl_blas_log_startup(c->threads, SL_LOG_INFO);
	sl_info("training %s from %s%s, %zu parameters, %s lr %g, batch %d, "
	    "%d epoch%s, openblas %s", c->arch, c->dataset,
	    r.cached ? " and its logit cache" : r.taught ?
	    " and an online teacher" : "", net_nparams(&r), c->optimizer,
	    (double)c->lr, c->batch, c->epochs, c->epochs == 1 ? "" : "s",
	    openblas_get_corename());
	if (r.cached && !resumed_mid_epoch && wait_coverage(&r, stop) != 0)
		goto out;
	/* Opened only now: a start refused above (another run's checkpoint, a
	 * coverage that never came) leaves no metrics file behind. */
	if (c->metrics != NULL &&
	    (r.metrics = fopen(c->metrics, c->resume ? "a" : "w")) == NULL) {
		sl_error("--metrics %s: cannot open: %s", c->metrics,
		    strerror(errno));
		goto out;
	}

	for (; pos.epoch < (uint32_t)c->epochs; pos.epoch++, pos.batch = 0) {
		/* The loss covers the whole epoch, also when it resumed mid-way
		 * (the checkpoint carries the sums); the rate only what this
		 * process trained. */
		double loss_sum = resumed_mid_epoch ? pos.loss_sum : 0.0;
		double t_epoch = sl_now_s();
		uint64_t seen = resumed_mid_epoch ? pos.loss_rows : 0, here = 0;
		char label[32];

		if (prepare_epoch(&r, pos.epoch, resumed_mid_epoch) != 0)
			goto out;
		resumed_mid_epoch = 0;
		r.opt.lr = epoch_lr(c, pos.epoch);
		const size_t nb = (r.n_rows + (size_t)c->batch - 1) /
		    (size_t)c->batch;
		snprintf(label, sizeof label, "epoch %u/%d", pos.epoch + 1,
		    c->epochs);
		sl_progress_start(&bar, label, r.n_rows);
		for (; pos.batch < nb; ) {
			const size_t first = pos.batch * (size_t)c->batch;
			const int B = r.n_rows - first < (size_t)c->batch ?
			    (int)(r.n_rows - first) : c->batch;

			loss_sum += (double)train_batch(&r, pos.epoch, first, B) * B;
			if (r.failed)
				goto out;
			seen += (uint64_t)B;
			here += (uint64_t)B;
			pos.batch++;
			pos.step++;
			pos.loss_sum = loss_sum;
			pos.loss_rows = seen;
			sl_progress_update(&bar, first + (size_t)B);
			if (*stop) {
				sl_progress_clear(&bar);
				sl_info("interrupted at epoch %u batch %llu; %s",
				    pos.epoch + 1, (unsigned long long)pos.batch,
				    c->checkpoint ? "checkpointing" :
				    "no --checkpoint, progress is lost");
				(void)save_checkpoint(&r, &pos);
				goto out;
			}
			if (c->checkpoint_every > 0 &&
			    pos.step % (uint64_t)c->checkpoint_every == 0 &&
			    save_checkpoint(&r, &pos) != 0)
				goto out;
		}
		sl_progress_clear(&bar);

		epoch_stats e = { 0 };
		ckpt_pos next = { pos.epoch + 1, 0, pos.step, 0.0, 0 };

		e.rate = (double)here / (sl_now_s() - t_epoch + 1e-9);
		e.loss = seen ? loss_sum / (double)seen : 0.0;
		if (save_checkpoint(&r, &next) != 0)
			goto out;
		if (r.test_ds != NULL) {
			if (r.cnn != NULL)
				eval_cnn(r.cnn, r.cws, c->batch, r.x, r.test_ds, &r.pre,
				    r.test_labels, r.test_nlabels, r.test_pred, NULL,
				    1.0f, &e.test_ok, &e.test_n);
			else
				eval_accuracy(r.m, r.ws, c->batch, r.x, r.test_ds,
				    &r.pre, r.test_labels, r.test_nlabels, r.test_pred,
				    &e.test_ok, &e.test_n);
			for (size_t i = 0; r.teacher_pred != NULL &&
			    i < sl_dataset_rows(r.test_ds); i++)
				e.agree += r.test_pred[i] == r.teacher_pred[i];
		}
		e.wall_s = sl_now_s() - t0;
		char fid[32] = "";

		if (r.teacher_pred != NULL && e.test_n > 0)
			snprintf(fid, sizeof fid, " fidelity %.4f", (double)e.agree /
			    (double)sl_dataset_rows(r.test_ds));
		if (e.test_n > 0)
			sl_info("epoch %u/%d step %llu loss %.4f %.0f samples/s "
			    "test_accuracy %.4f (%llu errors)%s", pos.epoch + 1,
			    c->epochs, (unsigned long long)pos.step, e.loss, e.rate,
			    (double)e.test_ok / (double)e.test_n,
			    (unsigned long long)(e.test_n - e.test_ok), fid);
		else
			sl_info("epoch %u/%d step %llu loss %.4f %.0f samples/s",
			    pos.epoch + 1, c->epochs, (unsigned long long)pos.step,
			    e.loss, e.rate);
		write_metrics(&r, &next, &e);
	}
	if (save_model(&r) != 0)
		goto out;
	sl_info("wrote %s after %llu steps in %.1f s", c->out,
	    (unsigned long long)pos.step, sl_now_s() - t0);
	status = TRAIN_OK;
out:
	run_fini(&r);
	return status;
}

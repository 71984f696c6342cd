#include "train.h"
#include "checkpoint.h"
#include "sl_log.h"
#include "sl_loss.h"
#include "sl_model.h"
#include "sl_optim.h"
#include "sl_progress.h"
#include "sl_rng.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Everything a run holds, sized once before the first batch so that the loop
 * itself never allocates. */
typedef struct run {
	const train_cfg *cfg;
	sl_dataset *ds, *test_ds;
	int32_t *labels, *test_labels;
	size_t nlabels, test_nlabels;
	sl_preproc pre;
	sl_mlp *m;
	sl_mlp_ws *ws;
	sl_optim opt;
	sl_rng rng;          /* dropout; saved in checkpoints */
	size_t *rows;        /* (n_rows) the trainable rows, shuffled per epoch */
	size_t n_rows;
	float *x;            /* (B, D) */
	int32_t *y;          /* (B) */
	float *dz;           /* (B, C) */
	float *grads;        /* (nparams) */
	uint8_t digest[32];  /* identifies the run for --resume */
	FILE *metrics;
} run;

static void
run_fini(run *r)
{
	sl_dataset_close(&r->ds);
	sl_dataset_close(&r->test_ds);
	free(r->labels);
	free(r->test_labels);
	sl_mlp_free(&r->m);
	sl_mlp_ws_free(&r->ws);
	sl_optim_fini(&r->opt);
	free(r->rows);
	free(r->x);
	free(r->y);
	free(r->dz);
	free(r->grads);
	if (r->metrics != NULL)
		fclose(r->metrics);
}

static int
open_data(const char *path, sl_dataset **ds)
{
	sl_errmsg why = { "" };
	int rc = sl_dataset_open(path, ds, &why);

	if (rc != 0)
		sl_error("%s: %s", path, why.text[0] ? why.text : sl_strerror(rc));
	return rc;
}

static int
open_labels(const char *path, int32_t **y, size_t *n, size_t rows, int classes)
{
	sl_errmsg why = { "" };
	int rc = sl_labels_load(path, y, n, &why);

	if (rc != 0) {
		sl_error("%s: %s", path, why.text[0] ? why.text : sl_strerror(rc));
		return rc;
	}
	if (*n > rows) {
		sl_error("%s: %zu labels for %zu rows", path, *n, rows);
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

/* The digest covers every setting that changes the trajectory, and the data
 * itself, so a checkpoint never resumes a different run. --epochs is left
 * out on purpose: extending a finished run is a legitimate resume. */
static int
run_digest(run *r)
{
	const train_cfg *c = r->cfg;
	crypto_hash_sha256_state st;
	sl_fingerprint fp;
	char text[512];
	int n, rc;

	if ((rc = sl_dataset_fingerprint(r->ds, &fp)) != 0)
		return rc;
	n = snprintf(text, sizeof text,
	    "arch=%s opt=%s lr=%.9g mom=%.9g wd=%.9g drop=%.9g batch=%d "
	    "seed=%lld scale=%.9g mean=%.9g std=%.9g",
	    c->arch, c->optimizer, (double)c->lr, (double)c->momentum,
	    (double)c->weight_decay, (double)c->dropout, c->batch,
	    (long long)c->seed, (double)r->pre.scale, (double)r->pre.mean,
	    (double)r->pre.std);
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)text, (size_t)n);
	crypto_hash_sha256_update(&st, fp.sha256, sizeof fp.sha256);
	crypto_hash_sha256_update(&st, (const unsigned char *)r->labels,
	    r->nlabels * sizeof *r->labels);
	crypto_hash_sha256_final(&st, r->digest);
	return 0;
}

static int
run_open(run *r, const train_cfg *c)
{
	int sizes[SL_MLP_MAX_LAYERS + 1], nl, C, B = c->batch;
	size_t D;
	enum sl_optim_kind kind;
	int rc;

	r->cfg = c;
	if (sl_mlp_parse_arch(c->arch, sizes, &nl) != 0) {
		sl_error("--arch: '%s' is not a layer list like 784-128-10", c->arch);
		return SL_EINVAL;
	}
	C = sizes[nl];
	if ((rc = open_data(c->dataset, &r->ds)) != 0)
		return rc;
	D = sl_dataset_dim(r->ds);
	if (D != (size_t)sizes[0]) {
		sl_error("%s: rows have %zu values, --arch %s expects %d",
		    c->dataset, D, c->arch, sizes[0]);
		return SL_EMISMATCH;
	}
	if ((rc = open_labels(c->labels, &r->labels, &r->nlabels,
	    sl_dataset_rows(r->ds), C)) != 0)
		return rc;
	if (c->test_data != NULL) {
		if ((rc = open_data(c->test_data, &r->test_ds)) != 0)
			return rc;
		if (sl_dataset_dim(r->test_ds) != D) {
			sl_error("%s: rows have %zu values, training rows %zu",
			    c->test_data, sl_dataset_dim(r->test_ds), D);
			return SL_EMISMATCH;
		}
		if ((rc = open_labels(c->test_labels, &r->test_labels,
		    &r->test_nlabels, sl_dataset_rows(r->test_ds), C)) != 0)
			return rc;
	}

	r->pre = sl_preproc_default(sl_dataset_dtype(r->ds));
	if (!isnan(c->input_scale))
		r->pre.scale = c->input_scale;
	r->pre.mean = c->input_mean;
	r->pre.std = c->input_std;

	/* Supervised mode trains on the rows whose label is known. */
	r->rows = malloc((r->nlabels ? r->nlabels : 1) * sizeof *r->rows);
	if (r->rows == NULL)
		return SL_ENOMEM;
	for (size_t i = 0; i < r->nlabels; i++)
		if (r->labels[i] >= 0)
			r->rows[r->n_rows++] = i;
	if (r->n_rows == 0) {
		sl_error("%s: no labeled rows to train on", c->labels);
		return SL_EINVAL;
	}

	if ((rc = sl_mlp_new(sizes, nl, &r->m)) != 0 ||
	    (rc = sl_mlp_ws_new(r->m, B, &r->ws)) != 0)
		return rc;
	(void)sl_optim_parse_kind(c->optimizer, &kind); /* checked by sl_opt */
	if ((rc = sl_optim_init(&r->opt, kind, r->m->nparams, c->lr)) != 0)
		return rc;
	r->opt.momentum = c->momentum;
	r->opt.weight_decay = c->weight_decay;
	r->x = malloc((size_t)B * D * sizeof *r->x);
	r->y = malloc((size_t)B * sizeof *r->y);
	r->dz = malloc((size_t)B * C * sizeof *r->dz);
	r->grads = malloc(r->m->nparams * sizeof *r->grads);
	if (!r->x || !r->y || !r->dz || !r->grads)
		return SL_ENOMEM;

	sl_rng_seed(&r->rng, (uint64_t)c->seed);
	sl_mlp_init_params(r->m, &r->rng);
	if ((rc = run_digest(r)) != 0)
		return rc;
	if (c->metrics != NULL) {
		r->metrics = fopen(c->metrics, c->resume ? "a" : "w");
		if (r->metrics == NULL) {
			sl_error("--metrics %s: cannot open", c->metrics);
			return SL_EINVAL;
		}
	}
	return 0;
}

/* The order of epoch e depends only on the seed and e, so a resumed run
 * rebuilds it instead of storing it. */
static void
epoch_order(run *r, uint32_t epoch)
{
	sl_rng order;

	sl_rng_seed(&order, (uint64_t)r->cfg->seed * 1000003u + epoch + 1);
	for (size_t i = 0, k = 0; i < r->nlabels; i++)
		if (r->labels[i] >= 0)
			r->rows[k++] = i;
	sl_rng_shuffle(&order, r->rows, r->n_rows);
}

static int
save_checkpoint(run *r, const ckpt_pos *pos)
{
	sl_errmsg why = { "" };
	int rc;

	if (r->cfg->checkpoint == NULL)
		return 0;
	rc = ckpt_save(r->cfg->checkpoint, r->m, &r->opt, &r->rng, pos,
	    r->digest, &why);
	if (rc != 0)
		sl_error("checkpoint %s: %s", r->cfg->checkpoint, why.text);
	return rc;
}

/* One optimizer step on rows[first .. first+B). Returns the batch loss. */
static float
train_batch(run *r, size_t first, int B)
{
	const train_cfg *c = r->cfg;
	const float *z;
	float loss;

	sl_dataset_rows_f32(r->ds, r->rows + first, 0, (size_t)B, &r->pre, r->x);
	for (int i = 0; i < B; i++)
		r->y[i] = r->labels[r->rows[first + (size_t)i]];
	z = sl_mlp_forward(r->m, r->ws, r->x, B, c->dropout, &r->rng);
	loss = sl_loss_kd(z, NULL, NULL, r->y, B, r->m->sizes[r->m->nlayers],
	    1.0f, 0.0f, r->dz, NULL);
	sl_mlp_backward(r->m, r->ws, r->dz, B, r->grads);
	sl_optim_step(&r->opt, r->m->params, r->grads);
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

/* One JSON object per epoch; without a test set the accuracy fields are
 * null (JSON has no NaN). */
static void
write_metrics(run *r, const ckpt_pos *pos, double loss, uint64_t test_ok,
    uint64_t test_n, double rate, double wall_s)
{
	char acc[64] = "null", errors[32] = "null";

	if (r->metrics == NULL)
		return;
	if (test_n > 0) {
		snprintf(acc, sizeof acc, "%.6f", (double)test_ok / (double)test_n);
		snprintf(errors, sizeof errors, "%llu",
		    (unsigned long long)(test_n - test_ok));
	}
	fprintf(r->metrics, "{\"epoch\":%u,\"step\":%llu,\"loss\":%.6f,"
	    "\"rows\":%zu,\"test_accuracy\":%s,\"test_errors\":%s,"
	    "\"samples_per_s\":%.1f,\"wall_s\":%.3f}\n", pos->epoch,
	    (unsigned long long)pos->step, loss, r->n_rows, acc, errors, rate,
	    wall_s);
	fflush(r->metrics);
}

static int
save_model(run *r)
{
	sl_errmsg why = { "" };
	int rc = sl_model_save(r->cfg->out, r->m, &r->pre,
	    sl_dataset_dtype(r->ds), &why);

	if (rc != 0)
		sl_error("%s: %s", r->cfg->out, why.text);
	return rc;
}

int
train_run(const train_cfg *c, volatile sig_atomic_t *stop)
{
	run r;
	ckpt_pos pos = { 0, 0, 0 };
	sl_progress bar;
	const double t0 = sl_now_s();
	int rc, status = TRAIN_FAILED;

	memset(&r, 0, sizeof r);
	if (c->threads > 0)
		openblas_set_num_threads(c->threads);
	if ((rc = run_open(&r, c)) != 0) {
		status = rc == SL_EINVAL || rc == SL_EMISMATCH ? TRAIN_USAGE :
		    TRAIN_FAILED;
		goto out;
	}
	if (c->resume && c->checkpoint != NULL) {
		sl_errmsg why = { "" };

		rc = ckpt_load(c->checkpoint, r.m, &r.opt, &r.rng, &pos,
		    r.digest, &why);
		if (rc == ENOENT) {
			sl_info("resume: no checkpoint at %s yet, starting fresh",
			    c->checkpoint);
		} else if (rc != 0) {
			sl_error("--resume %s: %s", c->checkpoint, why.text);
			goto out;
		} else {
			sl_info("resume: epoch %u batch %llu step %llu from %s",
			    pos.epoch + 1, (unsigned long long)pos.batch,
			    (unsigned long long)pos.step, c->checkpoint);
		}
	}
	sl_info("training %s on %zu rows of %s, %zu parameters, %s lr %g, "
	    "batch %d, %d epochs, openblas %s", c->arch, r.n_rows, c->dataset,
	    r.m->nparams, c->optimizer, (double)c->lr, c->batch, c->epochs,
	    openblas_get_corename());

	const size_t nb = (r.n_rows + (size_t)c->batch - 1) / (size_t)c->batch;
	for (; pos.epoch < (uint32_t)c->epochs; pos.epoch++, pos.batch = 0) {
		double loss_sum = 0, t_epoch = sl_now_s();
		uint64_t seen = 0;
		char label[32];

		epoch_order(&r, pos.epoch);
		snprintf(label, sizeof label, "epoch %u/%d", pos.epoch + 1,
		    c->epochs);
		sl_progress_start(&bar, label, r.n_rows);
		for (; pos.batch < nb; ) {
			const size_t first = pos.batch * (size_t)c->batch;
			const int B = r.n_rows - first < (size_t)c->batch ?
			    (int)(r.n_rows - first) : c->batch;

			loss_sum += (double)train_batch(&r, first, B) * B;
			seen += (uint64_t)B;
			pos.batch++;
			pos.step++;
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

		const double rate = (double)seen / (sl_now_s() - t_epoch + 1e-9);
		const double loss = seen ? loss_sum / (double)seen : 0.0;
		uint64_t ok = 0, cnt = 0;
		ckpt_pos next = { pos.epoch + 1, 0, pos.step };

		if (save_checkpoint(&r, &next) != 0)
			goto out;
		if (r.test_ds != NULL) {
			eval_accuracy(r.m, r.ws, c->batch, r.x, r.test_ds, &r.pre,
			    r.test_labels, r.test_nlabels, NULL, &ok, &cnt);
		}
		if (cnt > 0)
			sl_info("epoch %u/%d step %llu loss %.4f %.0f samples/s "
			    "test_accuracy %.4f (%llu errors)", pos.epoch + 1,
			    c->epochs, (unsigned long long)pos.step, loss, rate,
			    (double)ok / (double)cnt,
			    (unsigned long long)(cnt - ok));
		else
			sl_info("epoch %u/%d step %llu loss %.4f %.0f samples/s",
			    pos.epoch + 1, c->epochs, (unsigned long long)pos.step,
			    loss, rate);
		write_metrics(&r, &next, loss, ok, cnt, rate, sl_now_s() - t0);
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

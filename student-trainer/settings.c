/* settings.c - what identifies a run: the digest a checkpoint must match
 * to be resumed, the "--option=value" text that names the setting that
 * differs, and the learning-rate schedule derived from the settings. */
#include "run.h"
#include "sl_fingerprint.h"
#include "sl_log.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void
hex(const uint8_t *b, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* The shortest text that reads back as f (settings lines for people). */
static const char *
fl(float f, char buf[32])
{
	for (int prec = 6; prec <= 9; prec++) {
		snprintf(buf, 32, "%.*g", prec, (double)f);
		if (strtof(buf, NULL) == f)
			break;
	}
	return buf;
}

static int
cosine(const train_cfg *c)
{
	return c->lr_schedule != NULL && strcmp(c->lr_schedule, "cosine") == 0;
}

/* The learning rate of epoch e (from 0): a function of the settings and e
 * alone, so a resumed run steps exactly as the one it continues. Double
 * arithmetic, rounded once, as PyTorch's scheduler sets a Python float. */
float
epoch_lr(const train_cfg *c, uint32_t e)
{
	if (!cosine(c))
		return c->lr;
	return (float)((double)c->lr * 0.5 *
	    (1.0 + cos(3.14159265358979323846 * (double)e /
	    (double)c->epochs)));
}

/* The settings the digest covers, one "--option=value" line each, saved in
 * checkpoints so that a refusal names the one that differs. */
static int
run_settings(run *r, const sl_fingerprint *fp)
{
	const train_cfg *c = r->cfg;
	char fph[65], lh[65] = "none", f[6][32];
	uint8_t ld[32];
	size_t cap = 4096 + 64 * SL_PREPROC_MAX_CHANNELS +
	    (r->cached ? (size_t)r->d.nteachers * 400 : 0);
	int n;

	hex(fp->sha256, 32, fph);
	if (r->labels != NULL) {
		crypto_hash_sha256(ld, (const unsigned char *)r->labels,
		    r->nlabels * sizeof *r->labels);
		memcpy(lh, "sha256:", 7);
		hex(ld, 8, lh + 7);
	}
	if ((r->settings = malloc(cap)) == NULL)
		return SL_ENOMEM;
	n = snprintf(r->settings, cap, "--arch=%s\n--optimizer=%s\n--lr=%s\n"
	    "--momentum=%s\n--weight-decay=%s\n--dropout=%s\n--batch=%d\n"
	    "--seed=%lld\n", c->arch, c->optimizer, fl(c->lr, f[0]),
	    fl(c->momentum, f[1]), fl(c->weight_decay, f[2]),
	    fl(c->dropout, f[3]), c->batch, (long long)c->seed);
	n += snprintf(r->settings + n, cap - (size_t)n, "--lr-schedule=%s\n",
	    cosine(c) ? "cosine" : "constant");
	if (cosine(c))
		n += snprintf(r->settings + n, cap - (size_t)n, "--epochs=%d\n",
		    c->epochs);
	n += snprintf(r->settings + n, cap - (size_t)n, "--input-scale=%s",
	    fl(r->pre.scale, f[0]));
	for (int k = 0; k < 2; k++) {
		const float *v = k == 0 ? r->pre.mean : r->pre.std;

		n += snprintf(r->settings + n, cap - (size_t)n, "\n--input-%s=",
		    k == 0 ? "mean" : "std");
		for (uint32_t ch = 0; ch < r->pre.channels; ch++)
			n += snprintf(r->settings + n, cap - (size_t)n, "%s%s",
			    ch ? "," : "", fl(v[ch], f[1]));
	}
	n += snprintf(r->settings + n, cap - (size_t)n, "\n--dataset=sha256:"
	    "%.16s\n--labels=%s", fph, lh);
	/* --augment always (none when off), so that a checkpoint of a run
	 * without views names it when resumed with them, and back. */
	{
		char rt[SL_VIEW_RECIPE_TEXT];

		sl_view_recipe_format(rt, sizeof rt, &r->aug.recipe);
		n += snprintf(r->settings + n, cap - (size_t)n, "\n--augment=%s",
		    r->aug.on ? rt : "none");
		if (r->aug.on)
			n += snprintf(r->settings + n, cap - (size_t)n,
			    "\n--augment-seed=%llu", (unsigned long long)r->aug.seed);
	}
	if (r->taught)
		n += snprintf(r->settings + n, cap - (size_t)n, "\n--alpha=%s"
		    "\n--temperature=%s\n--online-teacher=sha256:%.16s",
		    fl(c->alpha, f[0]), fl(c->dc.temperature, f[1]),
		    r->ot.sha256);
	if (r->cached) {
		const distill *d = &r->d;

		n += snprintf(r->settings + n, cap - (size_t)n, "\n--alpha=%s"
		    "\n--temperature=%s\n--min-confidence=%s\n--balance=%lld"
		    "\n--teacher=", fl(c->alpha, f[0]),
		    fl(c->dc.temperature, f[1]), fl(c->dc.min_confidence, f[2]),
		    (long long)c->dc.balance);
		for (int i = 0; i < d->nteachers; i++)
			n += snprintf(r->settings + n, cap - (size_t)n, "%s%s",
			    i ? "," : "", d->teachers[i].name);
		n += snprintf(r->settings + n, cap - (size_t)n,
		    "\n--teacher-weights=");
		for (int i = 0; i < d->nteachers; i++)
			n += snprintf(r->settings + n, cap - (size_t)n, "%s%s",
			    i ? "," : "", fl(d->weights[i], f[0]));
		n += snprintf(r->settings + n, cap - (size_t)n,
		    "\nteacher models=");
		for (int i = 0; i < d->nteachers; i++)
			n += snprintf(r->settings + n, cap - (size_t)n, "%s%.12s",
			    i ? "," : "", d->teachers[i].model_sha256);
	}
	return 0;
}

/* The digest covers every setting that changes the trajectory, and the data
 * itself, so a checkpoint never resumes a different run. --epochs is left
 * out on purpose: extending a finished run is a legitimate resume. */
int
run_digest(run *r)
{
	const train_cfg *c = r->cfg;
	crypto_hash_sha256_state st;
	sl_fingerprint fp;
	sl_errmsg why = { "" };
	char text[1024];
	char mean[16 * SL_PREPROC_MAX_CHANNELS], std[16 * SL_PREPROC_MAX_CHANNELS];
	int n, rc;

	if ((rc = sl_dataset_fingerprint_start(r->ds, c->dataset, &fp, &why)) != 0) {
		sl_error("%s: %s", c->dataset, why.text);
		return rc;
	}
	/* One channel reads "mean=0 std=1", as before lists existed, so that
	 * older checkpoints keep resuming. */
	sl_floats_format(mean, sizeof mean, r->pre.mean, r->pre.channels);
	sl_floats_format(std, sizeof std, r->pre.std, r->pre.channels);
	n = snprintf(text, sizeof text,
	    "arch=%s opt=%s lr=%.9g mom=%.9g wd=%.9g drop=%.9g batch=%d "
	    "seed=%lld scale=%.9g mean=%s std=%s",
	    c->arch, c->optimizer, (double)c->lr, (double)c->momentum,
	    (double)c->weight_decay, (double)c->dropout, c->batch,
	    (long long)c->seed, (double)r->pre.scale, mean, std);
	/* A cosine schedule depends on --epochs; a constant one does not, and
	 * adds nothing, so that older checkpoints keep resuming. */
	if (cosine(c))
		n += snprintf(text + n, sizeof text - (size_t)n,
		    " sched=cosine/%d", c->epochs);
	crypto_hash_sha256_init(&st);
	crypto_hash_sha256_update(&st, (const unsigned char *)text, (size_t)n);
	crypto_hash_sha256_update(&st, fp.sha256, sizeof fp.sha256);
	crypto_hash_sha256_update(&st, (const unsigned char *)r->labels,
	    r->nlabels * sizeof *r->labels);
	if (r->cached) {
		char d[4096];

		distill_describe(&r->d, d, sizeof d);
		n = snprintf(text, sizeof text, "alpha=%.9g store:", (double)c->alpha);
		crypto_hash_sha256_update(&st, (const unsigned char *)text, (size_t)n);
		crypto_hash_sha256_update(&st, (const unsigned char *)d, strlen(d));
	}
	/* Only when on, so that the checkpoints of runs without them keep
	 * resuming. */
	if (r->aug.on) {
		char rt[SL_VIEW_RECIPE_TEXT];

		sl_view_recipe_format(rt, sizeof rt, &r->aug.recipe);
		n = snprintf(text, sizeof text, "augment=%s seed=%llu V=%u", rt,
		    (unsigned long long)r->aug.seed, r->aug.V);
		crypto_hash_sha256_update(&st, (const unsigned char *)text, (size_t)n);
	}
	if (r->taught) {
		n = snprintf(text, sizeof text, "online=%s alpha=%.9g T=%.9g",
		    r->ot.sha256, (double)c->alpha, (double)c->dc.temperature);
		crypto_hash_sha256_update(&st, (const unsigned char *)text, (size_t)n);
	}
	crypto_hash_sha256_final(&st, r->digest);
	return run_settings(r, &fp);
}

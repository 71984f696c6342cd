/* run.h - what a training run holds, shared by the files of the trainer
 * (train.c: opening a run and its loop; net.c: the network, MLP or CNN;
 * settings.c: the digest and settings that identify a run for --resume).
 * Internal to softlabel-student.
 */
#ifndef RUN_H
#define RUN_H

#include "train.h"
#include "augment.h"
#include "checkpoint.h"
#include "online.h"
#include "sl_cnn.h"
#include "sl_model.h"
#include "sl_optim.h"
#include "sl_rng.h"

#include <stdio.h>

/* Everything a run holds, sized once before the first batch so that the loop
 * itself never allocates. */
typedef struct run {
	const train_cfg *cfg;
	sl_dataset *ds, *test_ds;
	int32_t *labels, *test_labels;
	size_t nlabels, test_nlabels;
	sl_preproc pre;
	sl_mlp *m;           /* an MLP (--arch 784-128-10), or */
	sl_mlp_ws *ws;
	sl_cnn *cnn;         /* a network of the sl_cnn grammar */
	sl_cnn_ws *cws;
	int csizes[SL_CNN_MAX_LAYERS + 1]; /* its shape, for checkpoints */
	sl_optim opt;
	sl_rng rng;          /* dropout; saved in checkpoints */
	int cached;          /* training from the logit cache */
	distill d;
	int taught;          /* online teacher: targets computed per batch */
	online ot;
	augment aug;         /* --augment; aug.on 0: the rows as stored */
	uint32_t *views;     /* (B) the view of each row of the batch */
	FILE *dump;          /* SOFTLABEL_STUDENT_DUMP_INPUTS, or NULL */
	size_t *rows;        /* (n_rows) the trainable rows, shuffled per epoch */
	size_t n_rows;
	float *x;            /* (B, D) */
	int32_t *y;          /* (B) */
	float *pt;           /* (B, C) teacher targets of the batch */
	uint8_t *has_t;      /* (B) */
	int32_t *test_pred;  /* (test rows) student predictions */
	int32_t *teacher_pred; /* (test rows) --teacher-model predictions */
	float *dz;           /* (B, C) */
	float *grads;        /* (nparams) */
	double wait_t0;      /* --wait-coverage started waiting */
	int waited;          /* it waited for the cache or a teacher */
	uint8_t digest[32];  /* identifies the run for --resume */
	char *settings;      /* what the digest covers, as "--option=value" lines */
	FILE *metrics;
	int failed;          /* a batch could not be trained (logged) */
} run;

/* net.c: the network, MLP or CNN, behind one interface. */
int net_classes(const run *r);
size_t net_nparams(const run *r);
float *net_params(run *r);
size_t net_dim(const run *r);
/* Logits of B rows of x; train: dropout (and BatchNorm's batch
 * statistics) on. Valid until the next forward. */
const float *net_forward(run *r, const float *x, int B, int train);
void net_backward(run *r, const float *dz, int B);
ckpt_net net_ckpt(run *r);
/* The CNN --arch describes for the rows of r->ds. Logs its errors. */
int open_cnn(run *r, const char *arch);

/* settings.c */
/* The learning rate of epoch e (from 0) under --lr-schedule. */
float epoch_lr(const train_cfg *c, uint32_t e);
/* Fill r->digest and r->settings from the run's settings and data. Logs
 * its errors. */
int run_digest(run *r);

/* train.c: open a dataset, logging why not. */
int open_data(const char *path, sl_dataset **ds);

#endif

/* train.h - the student trainer's run: settings, the training loop, and
 * evaluation of a saved model.
 */
#ifndef TRAIN_H
#define TRAIN_H

#include <signal.h>
#include <stdint.h>

#include "distill.h"
#include "sl_cnn.h"
#include "sl_data.h"
#include "sl_graph.h"
#include "sl_nn.h"

typedef struct train_cfg {
	const char *dataset, *labels;       /* training rows and their labels */
	const char *test_data, *test_labels; /* evaluated after every epoch */
	const char *arch, *optimizer, *out;
	const char *lr_schedule;             /* "constant" | "cosine" */
	const char *onnx_out;                /* a network also as ONNX */
	const char *checkpoint, *metrics;
	const char *teacher_model;           /* fidelity on the test set */
	const char *augment;                 /* view recipe; NULL: none */
	int64_t augment_seed;                /* -1: --seed */
	const char *online_teacher;          /* targets from this model */
	const char *dump_inputs;             /* debug: first batches' x */
	distill_cfg dc;                      /* dc.store NULL: no cache */
	float alpha;
	int epochs, batch, threads, resume, checkpoint_every;
	float wait_coverage;                 /* 0: train on what is there */
	int wait_timeout_s;                  /* bound of that wait; 0: none */
	int64_t seed;
	float lr, momentum, weight_decay, dropout;
	float input_scale;                    /* NAN: by the dtype */
	const char *input_mean, *input_std;  /* lists: one, or one a channel */
} train_cfg;

/* Exit status of a run, as main() returns it. */
enum { TRAIN_OK = 0, TRAIN_FAILED = 1, TRAIN_USAGE = 2 };

/* Train as cfg says and write cfg->out. Stops early, after checkpointing,
 * when *stop becomes non-zero (SIGINT/SIGTERM). Logs its own errors. */
int train_run(const train_cfg *cfg, volatile sig_atomic_t *stop);

/* --model M.safetensors --onnx-out F: write the convolutional student in
 * M as ONNX. Returns TRAIN_OK or TRAIN_FAILED (M unreadable or not a
 * softlabel-cnn file, F not written). Logs its errors. */
int train_convert_onnx(const char *model, const char *onnx_out);

/* --print-torch: write to stdout the Python (torch.nn) module a model of
 * cfg->arch loads into; a convolutional arch takes its input shape from
 * cfg->dataset. Returns TRAIN_OK, TRAIN_USAGE (bad arch, logged) or
 * TRAIN_FAILED (the dataset cannot be read). */
int train_print_torch(const train_cfg *cfg);

/* Count correct argmax predictions of m over rows [0, n) of ds whose label
 * is known; labels beyond nlabels count as unknown. pred (n), when not NULL,
 * receives every row's predicted class. ws must hold batches of B rows and
 * x must hold (B, D) floats. */
void eval_accuracy(const sl_mlp *m, sl_mlp_ws *ws, int B, float *x,
    const sl_dataset *ds, const sl_preproc *pre, const int32_t *labels,
    size_t nlabels, int32_t *pred, uint64_t *correct, uint64_t *counted);

/* The same for a convolutional student in evaluation mode (running
 * statistics, no dropout), B <= 256 rows at a time (ws sized for them);
 * probs (n, classes) gets softmax(z / T) when not NULL, pred may be NULL,
 * labels may be NULL. */
void eval_cnn(sl_cnn *n, sl_cnn_ws *ws, int B, float *x,
    const sl_dataset *ds, const sl_preproc *pre, const int32_t *labels,
    size_t nlabels, int32_t *pred, float *probs, float T, uint64_t *correct,
    uint64_t *counted);

/* The same over any model of the graph engine (safetensors MLP or ONNX):
 * logits of every row of ds, B at a time (B <= 256, the graph planned for
 * B rows, x of (B, input_dim) floats); argmax into pred (may be NULL),
 * accuracy against labels (may be NULL), softmax(z / T) into probs (n, C)
 * (may be NULL). Returns 0 or the graph's error with why. */
int eval_graph(sl_graph *g, int B, float *x, const sl_dataset *ds,
    const sl_preproc *pre, const int32_t *labels, size_t nlabels,
    int32_t *pred, float T, float *probs, uint64_t *correct,
    uint64_t *counted, sl_errmsg *why);

/* --evaluate: load a model (safetensors MLP or ONNX, by content), score it on test data, optionally write the
 * predictions as .npy (int32) and softmax(z / T) as .npy (float32), in
 * batches of min(batch, 256) rows. */
typedef struct eval_cfg {
	const char *model, *arch;          /* arch: NULL, or the MLP to expect */
	const char *test_data, *test_labels; /* labels may be NULL */
	const char *predictions, *probs;   /* outputs, each may be NULL */
	const sl_preproc *pre;             /* NULL: the model's, or the default */
	float T;
	int batch, threads;
} eval_cfg;

int eval_run(const eval_cfg *e);

#endif

/* sl_cnn.h - convolutional students: a network of trainable layers built
 * from an architecture text whose every element is one torch.nn module.
 *
 * Architecture ("--arch"): elements separated by commas; an element is a
 * name and colon-separated arguments, positional first, then key=value:
 *
 *   conv:OC:K[:s=S][:p=P][:g=G][:bias=0|1]  nn.Conv2d(C, OC, K, stride=S,
 *                                            padding=P, groups=G, bias=...)
 *   bn[:eps=E][:momentum=M]                  nn.BatchNorm2d(C, eps, momentum)
 *   relu                                     nn.ReLU()
 *   maxpool:K[:s=S][:p=P]                    nn.MaxPool2d(K, stride=S, padding=P)
 *   avgpool:K[:s=S][:p=P]                    nn.AvgPool2d(K, stride=S, padding=P)
 *   gap                                      nn.AdaptiveAvgPool2d(1)
 *   flatten                                  nn.Flatten()
 *   linear:N[:bias=0|1]                      nn.Linear(IN, N, bias=...)
 *   dropout:P                                nn.Dropout(P)
 *   res(E,E,...)                             Residual(E, E, ...): x + body(x)
 *
 * Defaults as PyTorch's: s=1 p=0 g=1 bias=1 for conv, s=K p=0 for pools,
 * eps=1e-5 momentum=0.1. The network is nn.Sequential of the elements in
 * order; Residual is the small module sl_cnn_format_torch prints (its body
 * an nn.Sequential named "body"), so state_dict names are "<i>.weight",
 * "<i>.body.<j>.weight", ... exactly as PyTorch names them.
 *
 * The input shape (C, H, W) comes from the dataset's rows. Every element is
 * checked against the shape it receives; the last must give a flat vector:
 * its length is the number of classes.
 *
 * Storage: one parameter block (weights and biases in element order: conv
 * weight (OC, C/G, K, K) then bias (OC); bn weight (C) then bias (C);
 * linear weight (N, IN) then bias (N)) that optimizers and checkpoints
 * treat as one flat vector, and one buffer block of BatchNorm running
 * statistics (running_mean (C) then running_var (C) per bn) with a count
 * num_batches_tracked per bn.
 *
 * Thread-safety: a network may be read by many threads in evaluation;
 * a training forward updates the running statistics (one thread).
 */
#ifndef SL_CNN_H
#define SL_CNN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "sl_err.h"
#include "sl_rng.h"

#define SL_CNN_MAX_LAYERS 128        /* elements, residual ends included */
#define SL_CNN_MAX_ARCH 4096         /* bytes of an architecture text */
#define SL_CNN_MAX_DEPTH 8           /* nested res(...) */
#define SL_CNN_MAX_PARAMS ((size_t)1 << 28)
#define SL_CNN_MAX_ACT ((size_t)1 << 26) /* values of one row's activation */

typedef struct sl_cnn sl_cnn;

/* Does s look like an architecture of this grammar (rather than an MLP
 * "784-128-10")? True when it starts with a letter. */
int sl_cnn_is_arch(const char *s);

/* Build the network arch describes for rows of shape (C, H, W) (a flat
 * input: C values, H = W = 1, flat = 1). Parameters zeroed, running_var 1.
 * On a bad description, why names the element (its position and text) and
 * the reason, e.g. "element 3 'conv:8:5': kernel 5 larger than its padded
 * input 4x4". Returns 0, SL_EINVAL (the description) or SL_ENOMEM. */
int sl_cnn_new(const char *arch, int C, int H, int W, int flat,
    sl_cnn **out, sl_errmsg *why);
void sl_cnn_free(sl_cnn **n);

/* PyTorch's default initialisation: Conv2d and Linear weights and biases
 * U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5)),
 * drawn in element order, weight before bias; BatchNorm weight 1, bias 0,
 * running_mean 0, running_var 1, num_batches_tracked 0. */
void sl_cnn_init_params(sl_cnn *n, sl_rng *rng);

/* Accessors. Pointers stay valid for the network's life. */
const char *sl_cnn_arch(const sl_cnn *n);     /* normalised text */
int sl_cnn_classes(const sl_cnn *n);
size_t sl_cnn_input_dim(const sl_cnn *n);     /* C * H * W */
size_t sl_cnn_nparams(const sl_cnn *n);
float *sl_cnn_params(sl_cnn *n);
/* Running statistics and counts, for checkpoints: nbufs floats, nbn
 * counts. */
size_t sl_cnn_nbufs(const sl_cnn *n);
float *sl_cnn_bufs(sl_cnn *n);
int sl_cnn_nbn(const sl_cnn *n);
int64_t *sl_cnn_batches_tracked(sl_cnn *n);
/* Layers as the trainer reports them: their count and, per layer, the
 * values of one row's output (the input as layer -1). */
int sl_cnn_nlayers(const sl_cnn *n);
size_t sl_cnn_layer_size(const sl_cnn *n, int l);

/* The state_dict of the network, tensor by tensor (i < sl_cnn_ntensors):
 * its PyTorch name, rank and dims, and its data: float32 (f32 set) or the
 * int64 count (i64 set) of num_batches_tracked (rank 0). */
typedef struct sl_cnn_tensor {
	char name[96];
	int rank;
	int64_t dims[4];
	float *f32;
	int64_t *i64;
} sl_cnn_tensor;

int sl_cnn_ntensors(const sl_cnn *n);
void sl_cnn_tensor_at(sl_cnn *n, int i, sl_cnn_tensor *t);

/* Write Python that builds the module a saved student loads into:
 * "import torch.nn as nn", the Residual class when used, and
 * "model = nn.Sequential(...)". */
void sl_cnn_format_torch(const sl_cnn *n, FILE *out);

/* Activations and gradients for batches of up to max_batch rows, sized
 * once: training never allocates per batch. Convolutions run on OpenBLAS's
 * thread count at the time of the call (openblas_get_num_threads, at most
 * SL_CONV_MAX_THREADS): forward in the engine's kernel, backward split by
 * images, each part's weight gradients added in part order, so runs with
 * one thread count give the same bits (one thread and two differ by float
 * rounding). BatchNorm, ReLU and the pools use the same threads, split by
 * channels, elements or planes, with results that do not depend on the
 * split. */
typedef struct sl_cnn_ws sl_cnn_ws;

int sl_cnn_ws_new(const sl_cnn *n, int max_batch, sl_cnn_ws **out);
void sl_cnn_ws_free(sl_cnn_ws **ws);

/* Forward B rows. train: BatchNorm on the batch's statistics, updating
 * the running ones, and Dropout drawing from rng (rng may be NULL only
 * when the network has no dropout); otherwise evaluation. Returns the
 * logits (B, classes), valid until the next call on ws. */
const float *sl_cnn_forward(sl_cnn *n, sl_cnn_ws *ws,
    const float *x /* (B, C*H*W) */, int B, int train, sl_rng *rng);

/* Backward of the last (training) forward on ws: parameter gradients
 * written (not accumulated) into grads (nparams), same layout as the
 * parameter block. */
void sl_cnn_backward(const sl_cnn *n, sl_cnn_ws *ws,
    const float *dlogits /* (B, classes) */, int B, float *grads);



/* --- files (cnn_io.c) ------------------------------------------------------- */

#include "sl_data.h"
#include "sl_model.h"

/* Write n as safetensors, atomically (sl_atomic_*): the state_dict of the
 * module sl_cnn_format_torch prints, with exactly PyTorch's names and
 * shapes (float32; num_batches_tracked int64, shape []), so that
 * model.load_state_dict(safetensors.torch.load_file(F)) succeeds with
 * strict=True. "__metadata__": "format": "softlabel-cnn", "arch", the
 * input shape "input_shape": "C,H,W", and the preprocessing as an MLP
 * file has it (sl_model.h). Returns 0, an errno value, SL_EINVAL for a
 * non-finite value (such a file would not load back) or SL_ENOMEM. */
int sl_cnn_save(const char *path, sl_cnn *n, const sl_preproc *pre,
    enum sl_dtype input_dtype, sl_errmsg *why);

/* Whether buf[0..len) is a safetensors image whose metadata says
 * "format": "softlabel-cnn". Thread-safe (cJSON aside, as sl_model.h). */
int sl_cnn_sniff(const void *buf, size_t len);

/* Build the network a softlabel-cnn file describes and fill its tensors
 * (each present once, with its shape; no other tensor; finite values).
 * *info gets the preprocessing. *out is written only on success. Returns
 * 0, SL_EFORMAT (what is wrong named in why), SL_EINVAL (its arch does not
 * build), SL_ENOMEM. */
int sl_cnn_parse_file(const void *buf, size_t len, sl_cnn **out,
    sl_model_info *info, sl_errmsg *why);
int sl_cnn_load(const char *path, sl_cnn **out, sl_model_info *info,
    sl_errmsg *why);

/* Write n as an ONNX model (protobuf-c, opset 13, IR version 8) of the
 * module's evaluation graph: Conv, BatchNormalization (running
 * statistics), Relu, MaxPool, AveragePool (count_include_pad=1),
 * GlobalAveragePool, Flatten, Gemm (transB=1), Add for res(...);
 * dropout is the identity. Input "input" (batch, C, H, W), output
 * "logits" (batch, classes), initializers under the state_dict names. The
 * preprocessing is not part of the graph (as with torch.onnx.export); it
 * goes into metadata_props "input_scale", "input_mean", "input_std" for
 * the record. Written atomically. Returns 0, an errno value or
 * SL_ENOMEM. */
int sl_cnn_save_onnx(const char *path, const sl_cnn *n, const sl_preproc *pre,
    sl_errmsg *why);
#endif

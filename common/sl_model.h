/* sl_model.h - MLP models in safetensors files, the way PyTorch writes them.
 *
 * File: u64 little-endian header length n, n bytes of JSON, then the raw
 * tensor bytes. For nn.Sequential(Linear, ReLU, ..., Linear) the tensors are
 * "<i>.weight" (out, in) and "<i>.bias" (out) where i is the module index
 * (0, 2, 4, ... without dropout modules). We write float32 and read float32,
 * float16 and bfloat16.
 *
 * "__metadata__" (string values only, as the format requires):
 *   "format": "softlabel-mlp", "arch": "784-128-10", "activation": "relu",
 *   "input_scale", "input_mean", "input_std": decimal floats,
 *   "input_dtype": "uint8" | "float32".
 * A file without metadata loads too: layer sizes follow from the shapes, ReLU
 * between layers, default preprocessing for the dataset at hand.
 */
#ifndef SL_MODEL_H
#define SL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "sl_data.h"
#include "sl_err.h"
#include "sl_nn.h"

#define SL_MODEL_MAX_HEADER_BYTES (1u << 20) /* JSON header */
#define SL_MODEL_MAX_TENSORS 1024

typedef struct sl_model_info {
	int has_preproc;   /* metadata named the preprocessing */
	sl_preproc pre;    /* valid when has_preproc */
} sl_model_info;

/* Parse a safetensors image buf[0..len) into a new MLP. expect_sizes, when
 * not NULL, is the --arch the user gave (expect_nlayers dense layers) and
 * must match the tensor shapes. On failure fills why with one line naming the
 * problem (the caller prefixes the file name).
 *
 * Module indices may have gaps (Dropout modules) and are ordered as numbers.
 * The tensors must tile the data section exactly, as the safetensors library
 * requires. Metadata "input_scale", "input_mean", "input_std" come all three
 * or not at all; "format" is not checked ("pt" is fine).
 *
 * *out (free with sl_mlp_free) and *info (may be NULL) are written only on
 * success; buf is not kept. Returns 0, SL_EFORMAT (malformed header, names,
 * shapes, offsets, non-finite values, layers that do not chain), SL_ELIMIT
 * (header, tensor, dimension, layer or parameter limits), SL_EUNSUPPORTED
 * (dtype other than F32/F16/BF16, activation other than relu), SL_EMISMATCH
 * (--arch or metadata "arch" against the shapes) or SL_ENOMEM. Callable
 * from several threads, except that cJSON records every parse's error in
 * one process-wide variable (we never read it; TSan would see the race). */
int sl_model_parse(const void *buf, size_t len, const int *expect_sizes,
    int expect_nlayers, sl_mlp **out, sl_model_info *info, sl_errmsg *why);

/* What a file that is not a model looks like, from its first bytes: "a
 * NumPy .npy array", "gzip data (an IDX.gz dataset?)", "an IDX dataset",
 * "a softlabel checkpoint", "a zip archive (a PyTorch .pt/.pth
 * checkpoint?)", "a Python pickle", "text", "an ONNX model", or NULL when
 * nothing is recognised (and for a safetensors image). The string is
 * static. Thread-safe. */
const char *sl_model_sniff(const void *buf, size_t len);

/* The formats model options accept, for error messages. */
#define SL_MODEL_FORMATS "a safetensors MLP or an ONNX model"

/* Read PATH and parse it as above. Also returns an errno value when the
 * file cannot be opened or read, SL_EFORMAT for something other than a
 * regular file, SL_ELIMIT for a file larger than any valid model. */
int sl_model_load(const char *path, const int *expect_sizes,
    int expect_nlayers, sl_mlp **out, sl_model_info *info, sl_errmsg *why);

/* Write m as float32 safetensors with metadata, atomically (temp file
 * "PATH.tmp.<pid>" in the same directory, fsync, rename, fsync of the
 * directory; the temp file is removed on failure). Tensors are named
 * "<2l>.weight"/"<2l>.bias", as nn.Sequential(Linear, ReLU, ...) names them.
 * Returns 0, an errno value, SL_EINVAL for non-finite parameters or
 * preprocessing (such a file would not load back), or SL_ENOMEM. */
int sl_model_save(const char *path, const sl_mlp *m, const sl_preproc *pre,
    enum sl_dtype input_dtype, sl_errmsg *why);

/* SHA-256 of the file's bytes, as lowercase hex (65 bytes with NUL),
 * written only on success. Returns 0, an errno value, SL_ENOMEM, or
 * SL_EUNSUPPORTED when libsodium cannot initialise. */
int sl_model_sha256(const char *path, char hex[65], sl_errmsg *why);

#endif

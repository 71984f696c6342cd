/* sl_label.h - soft-label records: the values of the logit cache's `labels`
 * database and of a RESULT message's blob, byte for byte.
 *
 * A record, little-endian:
 *
 *   u8  encoding   1 dense f32, 2 dense f16, 3 top-k
 *   u8  0          reserved
 *   u16 k          top-k only (0 for dense)
 *   u32 classes
 *   u32 crc32      of every byte after this field
 *   dense:  classes values of z / T (f32 or f16)
 *   top-k:  f32 lse (log-sum-exp of z / T over all classes),
 *           k u32 class indices, k f16 values of z / T, largest first
 *
 * softmax(values) (dense) or exp(v - lse) (top-k) is the teacher's
 * distribution at T; T * values gives back the logits. A record's size
 * depends only on its header, so a shard's records are fixed-size and a blob
 * of n records is n * sl_label_size() bytes.
 *
 * Thread-safe: pure functions on caller buffers.
 */
#ifndef SL_LABEL_H
#define SL_LABEL_H

#include <stddef.h>
#include <stdint.h>

#include "sl_err.h"

#define SL_LABEL_HEADER_BYTES 12
#define SL_LABEL_MAX_CLASSES 65536
#define SL_LABEL_MAX_K 1024

enum sl_encoding {
	SL_ENC_F32 = 1,
	SL_ENC_F16 = 2,
	SL_ENC_TOPK = 3,
};

/* How records of one teacher are written. */
typedef struct sl_label_fmt {
	enum sl_encoding encoding;
	uint32_t classes;
	uint16_t k; /* top-k only; 1 <= k < classes */
} sl_label_fmt;

/* Parse "f32", "f16" or "topk:K" (K decimal digits, in [1, SL_LABEL_MAX_K],
 * nothing after them). Sets out->encoding and out->k only: classes is left
 * for the caller, and nothing is written on failure. Returns 0 or SL_EINVAL. */
int sl_label_parse_encoding(const char *s, sl_label_fmt *out);
/* "f32", "f16", "topk:5" into buf (len bytes, always NUL-terminated when
 * len > 0; "?" for an unknown encoding). */
void sl_label_format_encoding(const sl_label_fmt *f, char *buf, size_t len);

/* Check that fmt is one we can write and read: known encoding, classes in
 * [2, SL_LABEL_MAX_CLASSES], k in [1, min(classes - 1, SL_LABEL_MAX_K)] for
 * top-k and 0 otherwise. Returns 0 or SL_EINVAL. */
int sl_label_fmt_check(const sl_label_fmt *fmt);

/* Bytes of one record in this format (header included). fmt must pass
 * sl_label_fmt_check. */
size_t sl_label_size(const sl_label_fmt *fmt);

/* Encode one record from a row of logits (classes values) at temperature T
 * into out (sl_label_size bytes, any alignment). scratch is caller memory of
 * at least 2 * classes floats (no allocation). Top-k keeps the k largest z / T,
 * largest first, ties to the lower class index.
 *
 * Returns 0 or SL_EINVAL: fmt fails sl_label_fmt_check; T not finite or not
 * > 0; a logit not finite (the caller should reject these first, with its own
 * message) or z / T overflowing float; a value that half cannot hold,
 * |z / T| > 65504, in an f16 record or among the kept classes of a top-k
 * record (unkept classes may be anything finite). out may be partly written
 * on failure.
 *
 * Half rounding can lift the largest kept value just above lse; the encoder
 * then stores lse equal to that value, so a stored class never has
 * probability above 1 (a change within the half rounding itself). */
int sl_label_encode(const sl_label_fmt *fmt, const float *logits /* (classes) */,
    float T, float *scratch /* (2 * classes) */, void *out);

/* Check one record in buf[0..len): header valid, len exactly its size, CRC
 * holds, every value finite, top-k indices distinct and in range and values
 * in non-increasing order, lse >= the largest value. When expect is not NULL
 * the header must equal it. On success *fmt (if not NULL) gets the record's
 * format. Never allocates (8 KiB of stack for top-k).
 * Returns 0, SL_EFORMAT, SL_ECORRUPT (CRC) or SL_EMISMATCH (not expect),
 * with why (may be NULL) naming the field.
 *
 * Caveat: the CRC covers only the bytes after the header. A damaged header
 * byte almost always breaks a header rule or the size, but the classes field
 * of a top-k record does not enter its size: a flip to another valid count
 * passes unless expect is given. Readers that know the teacher's format (all
 * of them: it is in the cache's meta) should pass it. */
int sl_label_check(const void *buf, size_t len, const sl_label_fmt *expect,
    sl_label_fmt *fmt, sl_errmsg *why);

/* The distribution at temperature T from a record that passed
 * sl_label_check, into p (classes). The record holds z / T_stored; both
 * temperatures must be > 0 (asserted). Dense records are re-softened exactly:
 * softmax(v * T_stored / T), max-subtracted. Top-k records give
 * exp(v - lse) to the kept classes at T == T_stored and spread the remaining
 * mass evenly over the others; at another T they treat every unkept class as
 * having the same value, the one that carries that remaining mass, and
 * re-soften the whole row (exact when the unkept classes are equal, an
 * approximation otherwise; details at probs_topk in sl_label.c). Rows sum
 * to 1. */
void sl_label_probs(const void *rec, float T_stored, float T,
    float *p /* (classes) */);

/* A dense record's stored values z / T_stored as floats into v (classes).
 * Returns 0, or SL_EUNSUPPORTED for a top-k record. */
int sl_label_values(const void *rec, float *v /* (classes) */);

/* Audits: how far two computations of one row by the same teacher may
 * differ, relative to the row's scale max(1, max |z / T|). Two workers sum
 * in other orders (another batch size, thread count or BLAS tiling), which
 * moves float32 logits of the networks we run by ~1e-6 of the scale; the
 * f32 tolerance leaves 1,000x room for that. A half value is rounded once
 * more, by at most 2^-11 of the scale, on each side: f16 (and the values of
 * top-k) add 2 * 2^-11. Confident garbage differs by the scale itself. */
#define SL_LABEL_AGREE_F32 1e-3
#define SL_LABEL_AGREE_F16 (1e-3 + 2.0 / 2048.0)

/* 1 if records a and b (both passed sl_label_check with fmt) hold the same
 * teacher output within the tolerances above, else 0. Dense: every value.
 * Top-k: lse, and the k values position by position; a class kept by one
 * record and not the other is allowed only at the boundary (its value
 * within tolerance of the other record's smallest kept value: a near tie
 * swapped by rounding), and a class kept by both must have close values.
 * *worst (may be NULL) gets the largest difference seen over the scale.
 * Pure; no allocation. */
int sl_label_agree(const void *a, const void *b, const sl_label_fmt *fmt,
    double *worst);

/* IEEE half <-> float, round to nearest even; exported for tests. */
uint16_t sl_f32_to_f16(float f);
float sl_f16_to_f32(uint16_t h);

#endif

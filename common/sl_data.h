/* sl_data.h - datasets and labels users bring: NumPy .npy and IDX[.gz].
 *
 * A dataset is N samples of D values each (D = product of the dimensions
 * after the first), stored as uint8 or float32. .npy files are mapped, not
 * copied; IDX files are read (and gunzipped) into memory once.
 *
 * Rows reach the network as float32 through sl_dataset_rows_f32(), which
 * applies the preprocessing (sl_preproc) a model was trained with.
 *
 * Thread-safety: an open dataset is immutable; any number of threads may read
 * it at once (the lazily computed fingerprint is guarded by a lock).
 *
 * Caveats:
 *   - .npy files (and plain uint8 IDX files) stay mapped while open;
 *     truncating such a file under an open dataset ends in SIGBUS, as with
 *     any mmap reader (LMDB has the same caveat).
 *   - IDX float32 data is big-endian on disk and swapped to host order on
 *     load, so sl_dataset_row() always returns host-order floats.
 *   - The code assumes a little-endian host ('<f4' is used as stored).
 */
#ifndef SL_DATA_H
#define SL_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "sl_err.h"
#include "sl_file.h"

/* Limits enforced before anything is allocated. */
#define SL_DATA_MAX_DIMS 8
#define SL_DATA_MAX_HEADER_BYTES 65536 /* .npy header */
/* Largest IDX image (header + data) a gzip file may claim. The gunzip buffer
 * grows as data arrives, so a claim alone never allocates this much. */
#define SL_DATA_MAX_BYTES ((uint64_t)16 << 30) /* 16 GiB */

enum sl_dtype {
	SL_DTYPE_U8 = 1,
	SL_DTYPE_F32 = 2,
};

/* x' = (x * scale - mean[c]) / std[c], per value, where c is the value's
 * channel: with one channel every value shares mean[0] and std[0]; with C
 * channels the rows are channel-major, as PyTorch's NCHW ([C, H, W] rows:
 * the first dimension after the row index is C) and value j of a row of D
 * values is in channel j / (D / C). Defaults: scale 1/255 for uint8 data
 * and 1 for float32, one channel of mean 0 and std 1. */
#define SL_PREPROC_MAX_CHANNELS 16
/* Its wire and cache form: float32 LE scale, mean[C], std[C]. */
#define SL_PREPROC_MIN_BYTES 12
#define SL_PREPROC_MAX_BYTES (4 * (1 + 2 * SL_PREPROC_MAX_CHANNELS))

typedef struct sl_preproc {
	float scale;
	uint32_t channels; /* 1..SL_PREPROC_MAX_CHANNELS */
	float mean[SL_PREPROC_MAX_CHANNELS];
	float std[SL_PREPROC_MAX_CHANNELS];
} sl_preproc;

/* Default preprocessing for data of this dtype. */
sl_preproc sl_preproc_default(enum sl_dtype dtype);

/* Replace every NaN in p by the default for this dtype (scale, and mean 0
 * and std 1 per channel): a worker leaves what it was not told as NaN, and
 * worker and broker both fill it in so. */
void sl_preproc_fill(sl_preproc *p, enum sl_dtype dtype);

/* Set p's means and stds from lists of nmean and nstd values: equal
 * lengths, or one of them a single value that then holds for every
 * channel. SL_EINVAL (why says which) for more than
 * SL_PREPROC_MAX_CHANNELS values or lengths that cannot pair. */
int sl_preproc_set(sl_preproc *p, const float *mean, uint32_t nmean,
    const float *std, uint32_t nstd, sl_errmsg *why);

/* Parse "0.485,0.456,0.406" (or one value) into out[0..cap); *n gets the
 * count. SL_EINVAL when a value is not a finite decimal or there are more
 * than cap. */
int sl_floats_parse(const char *s, float *out, uint32_t cap, uint32_t *n,
    sl_errmsg *why);

/* v[0..n) as "%.9g" values joined by ',' into buf[0..cap) (cap > 0; always
 * NUL-terminated, cut short when it does not fit). Returns the length
 * written. */
size_t sl_floats_format(char *buf, size_t cap, const float *v, uint32_t n);

/* What a program runs with: base (the model's metadata; NULL: none, all
 * NaN) with the options over it: scale unless NaN, and the lists mean and
 * std ("0.485,0.456,0.406"; NULL: not given) paired as sl_preproc_set
 * pairs them, a list given alone paired with base's. NaN is left for
 * sl_preproc_fill. SL_EINVAL with why naming the option. */
int sl_preproc_from_options(sl_preproc *out, const sl_preproc *base,
    float scale, const char *mean, const char *std, sl_errmsg *why);

/* The wire and cache form of p into out; returns its length (12 for one
 * channel, 4 * (1 + 2C) bytes). */
size_t sl_preproc_pack(const sl_preproc *p, uint8_t out[SL_PREPROC_MAX_BYTES]);

/* Read that form: SL_EINVAL for a length that is not 4 * (1 + 2C) with C
 * in 1..SL_PREPROC_MAX_CHANNELS. Values are not judged (NaN stays NaN). */
int sl_preproc_unpack(const void *b, size_t len, sl_preproc *p);

/* Whether p can run: scale and every mean and std finite, no std 0; and,
 * with more than one channel, rows of shape[1..ndim) whose first dimension
 * is the channel count (shape is the dataset's, shape[0] the rows; ndim 0
 * skips the shape check). SL_EINVAL with why naming what does not fit. */
int sl_preproc_check(const sl_preproc *p, const uint64_t *shape,
    uint32_t ndim, sl_errmsg *why);

/* "scale 0.00392157 mean 0.286 std 0.353", lists for several channels, into
 * buf (always NUL-terminated). Returns buf. */
const char *sl_preproc_format(const sl_preproc *p, char *buf, size_t cap);

/* What identifies a dataset for provenance checks: two files with the same
 * fingerprint hold the same samples. */
typedef struct sl_fingerprint {
	uint64_t rows;
	uint32_t ndim;
	uint64_t shape[SL_DATA_MAX_DIMS]; /* shape[0] == rows */
	enum sl_dtype dtype;
	uint8_t sha256[32]; /* of the sample bytes, in row order, as
	                     * sl_dataset_row() returns them (host order) */
} sl_fingerprint;

typedef struct sl_dataset sl_dataset;

/* Open FILE (.npy, IDX, IDX.gz; detected by content, not by name).
 * On failure returns an error code and fills why with one line naming the
 * problem (the caller prefixes the path). */
int sl_dataset_open(const char *path, sl_dataset **out, sl_errmsg *why);

/* Close and set *ds to NULL. Accepts NULL and *ds == NULL. */
void sl_dataset_close(sl_dataset **ds);

size_t sl_dataset_rows(const sl_dataset *ds);
size_t sl_dataset_dim(const sl_dataset *ds); /* values per row (D) */
enum sl_dtype sl_dataset_dtype(const sl_dataset *ds);
/* Shape of the file, shape[0] == rows; returns ndim. */
uint32_t sl_dataset_shape(const sl_dataset *ds, uint64_t shape[SL_DATA_MAX_DIMS]);

/* Raw bytes of row i (D * dtype size bytes); valid until the dataset is
 * closed. i must be < rows. */
const void *sl_dataset_row(const sl_dataset *ds, size_t i);

/* Write rows idx[0..n) as float32 with preprocessing pre into out (n, D).
 * idx may be NULL, meaning rows first..first+n. Does not allocate. */
void sl_dataset_rows_f32(const sl_dataset *ds, const size_t *idx, size_t first,
    size_t n, const sl_preproc *pre, float *out /* (n, D) */);

/* The same conversion for n raw rows of d values in memory (rows shipped in
 * a TASK message); identical results to sl_dataset_rows_f32. */
void sl_rows_f32(const void *raw, enum sl_dtype dtype, size_t n, size_t d,
    const sl_preproc *pre, float *out /* (n, d) */);

/* Compute the fingerprint (hashes every byte once, then caches it). */
int sl_dataset_fingerprint(sl_dataset *ds, sl_fingerprint *out);

/* Labels: .npy of any integer dtype (int8..int64, uint8..uint32) with shape
 * [N] or [N, 1], or IDX ubyte. -1 means unlabeled; any other negative value,
 * or a value that does not fit int32, is an error. *labels is malloc'd and
 * owned by the caller (free()). */
int sl_labels_load(const char *path, int32_t **labels, size_t *n,
    sl_errmsg *why);

/* Write a C-order .npy file atomically (temp file, fsync, rename).
 * descr is a NumPy type string: "|u1", "<f4", "<i4", "<i8". */
int sl_npy_write(const char *path, const char *descr, const uint64_t *shape,
    uint32_t ndim, const void *data, sl_errmsg *why);

/* The same file written in pieces, for data larger than memory: begin
 * writes the header into a temp file (as sl_npy_write), append adds data
 * bytes in order (SL_EINVAL past what the shape holds), finish checks
 * that exactly the shape's bytes came and renames the file into place
 * (SL_EINVAL, nothing written, if not); abort (also after a failed call)
 * removes the temp file. */
typedef struct sl_npy_writer {
	sl_atomic_file f;
	uint64_t left; /* data bytes still to come */
} sl_npy_writer;

int sl_npy_begin(sl_npy_writer *w, const char *path, const char *descr,
    const uint64_t *shape, uint32_t ndim, sl_errmsg *why);
int sl_npy_append(sl_npy_writer *w, const void *data, size_t bytes,
    sl_errmsg *why);
int sl_npy_finish(sl_npy_writer *w, sl_errmsg *why);
void sl_npy_abort(sl_npy_writer *w);

/* Decoders of outside bytes, exposed for tests and fuzzing. They never
 * allocate more than the input justifies. */
typedef struct sl_array_info {
	char descr[8];      /* normalised, e.g. "|u1", "<f4", "<i8" */
	size_t elem_size;
	uint32_t ndim;
	uint64_t shape[SL_DATA_MAX_DIMS];
	size_t data_offset; /* where the values start in buf */
	size_t count;       /* product of shape */
} sl_array_info;

/* Parse a .npy header from buf[0..len); checks that the data fits in len. */
int sl_npy_parse(const void *buf, size_t len, sl_array_info *out,
    sl_errmsg *why);
/* Parse an (uncompressed) IDX header from buf[0..len); same checks. */
int sl_idx_parse(const void *buf, size_t len, sl_array_info *out,
    sl_errmsg *why);

#endif

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

/* x' = (x * scale - mean) / std, per value. Defaults: scale 1/255 for uint8
 * data and 1 for float32, mean 0, std 1. */
typedef struct sl_preproc {
	float scale;
	float mean;
	float std;
} sl_preproc;

/* Default preprocessing for data of this dtype. */
sl_preproc sl_preproc_default(enum sl_dtype dtype);

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

/* sl_data_impl.h - the dataset handle's fields, shared by sl_data.c (the
 * file formats) and sl_fingerprint.c (hashing, the memo, row checks).
 * Private to libsoftlabel: programs use the accessors in sl_data.h. */
#ifndef SL_DATA_IMPL_H
#define SL_DATA_IMPL_H

#include "sl_data.h"

#include <pthread.h>
#include <sys/stat.h>

struct sl_dataset {
	enum sl_dtype dtype;
	uint32_t ndim;
	uint64_t shape[SL_DATA_MAX_DIMS];
	size_t rows;
	size_t dim;       /* values per row */
	size_t elem_size; /* bytes per value */
	size_t row_bytes;
	const uint8_t *data; /* rows * row_bytes bytes, in map or heap */
	void *map;           /* mmap of the file, or NULL */
	size_t map_len;
	uint8_t *heap; /* gunzipped or byte-swapped IDX, or NULL */
	struct stat st; /* of the file opened (fstat of its descriptor) */

	pthread_mutex_t fp_lock; /* guards everything below */
	int fp_valid;
	int fp_from_memo; /* the fingerprint came from a memo file */
	sl_fingerprint fp;
	/* Per-chunk BLAKE2b-256 of the sample bytes, chunk_rows rows each (the
	 * last may be shorter), known once fp_valid. */
	size_t chunk_rows, nchunks;
	uint8_t (*chunk)[32];
	uint64_t bytes_hashed; /* sample bytes read for hashing, ever */
};

#endif

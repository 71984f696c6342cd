/* fuzz_idx.c - IDX headers from bytes, and datasets and labels from files.
 *
 * Three decoders see each input:
 *   - sl_idx_parse on the raw bytes (an accepted header's data lies inside
 *     the input);
 *   - sl_dataset_open and sl_labels_load on the bytes as a file (a memfd
 *     opened through /proc/self/fd/N): .npy, IDX or IDX.gz by content;
 *   - the same two on the bytes gzip-compressed here, so the IDX decoder
 *     behind gunzip sees inputs the fuzzer controls (a mutated .gz file
 *     almost never passes its CRC).
 * An opened dataset is read end to end (its fingerprint hashes every row)
 * and its shape is checked against its row count and width. */
#define _GNU_SOURCE /* memfd_create */
#include "fuzz.h"

#include "sl_data.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

static int fd = -1;
static char path[64];

static void
put_file(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (fd < 0) {
		fd = memfd_create("fuzz_idx", 0);
		FUZZ_CHECK(fd >= 0);
		snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	}
	FUZZ_CHECK(ftruncate(fd, 0) == 0);
	for (size_t off = 0; off < len;) {
		ssize_t n = pwrite(fd, p + off, len - off, (off_t)off);

		FUZZ_CHECK(n > 0);
		off += (size_t)n;
	}
}

static void
open_file(void)
{
	sl_dataset *ds = NULL;
	sl_fingerprint fp;
	sl_errmsg why;
	int32_t *labels = NULL;
	size_t n = 0;
	uint64_t shape[SL_DATA_MAX_DIMS], count = 1;
	uint32_t ndim;

	if (sl_dataset_open(path, &ds, &why) == 0) {
		FUZZ_CHECK(ds != NULL);
		ndim = sl_dataset_shape(ds, shape);
		FUZZ_CHECK(ndim >= 1 && ndim <= SL_DATA_MAX_DIMS);
		FUZZ_CHECK(shape[0] == sl_dataset_rows(ds));
		for (uint32_t i = 1; i < ndim; i++)
			count *= shape[i];
		FUZZ_CHECK(count == sl_dataset_dim(ds));
		FUZZ_CHECK(sl_dataset_fingerprint(ds, &fp) == 0);
		FUZZ_CHECK(fp.rows == shape[0]);
		if (sl_dataset_rows(ds) > 0 && sl_dataset_dim(ds) > 0 &&
		    sl_dataset_dim(ds) <= 4096) {
			float row[4096];
			sl_preproc pre = sl_preproc_default(sl_dataset_dtype(ds));

			sl_dataset_rows_f32(ds, NULL, sl_dataset_rows(ds) - 1, 1,
			    &pre, row);
		}
		sl_dataset_close(&ds);
		FUZZ_CHECK(ds == NULL);
	}
	if (sl_labels_load(path, &labels, &n, &why) == 0) {
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK(labels[i] >= -1);
		free(labels);
	}
}

static void
gzip_file(const uint8_t *data, size_t size)
{
	z_stream zs;
	uLong cap = compressBound((uLong)size) + 64;
	uint8_t *out = malloc(cap);

	FUZZ_CHECK(out != NULL);
	memset(&zs, 0, sizeof zs);
	FUZZ_CHECK(deflateInit2(&zs, 1, Z_DEFLATED, 9 + 16, 1,
	    Z_DEFAULT_STRATEGY) == Z_OK);
	zs.next_in = (Bytef *)(uintptr_t)data;
	zs.avail_in = (uInt)size;
	zs.next_out = out;
	zs.avail_out = (uInt)cap;
	FUZZ_CHECK(deflate(&zs, Z_FINISH) == Z_STREAM_END);
	put_file(out, zs.total_out);
	deflateEnd(&zs);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sl_array_info ai;
	sl_errmsg why;

	if (sl_idx_parse(data, size, &ai, &why) == 0) {
		FUZZ_CHECK(ai.ndim >= 1 && ai.ndim <= SL_DATA_MAX_DIMS);
		FUZZ_CHECK(ai.data_offset <= size);
		FUZZ_CHECK(ai.count <= (size - ai.data_offset) / ai.elem_size);
	}
	put_file(data, size);
	open_file();
	if (size < 2 || data[0] != 0x1f || data[1] != 0x8b) {
		gzip_file(data, size);
		open_file();
	}
	return 0;
}

/* fuzz_meta.c - sl_meta_decode (META_REPLY's blob) on arbitrary bytes.
 *
 * Properties: what decodes is self-consistent (shape[0] = rows, valid
 * record formats, ascending indexes), and re-encodes into a blob that
 * decodes again to the same job and teachers. */
#include "fuzz.h"

#include <string.h>

#include "sl_meta.h"

static sl_store_teacher t[SL_STORE_MAX_TEACHERS], t2[SL_STORE_MAX_TEACHERS];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sl_store_job j, j2;
	sl_proto_buf b = { 0 };
	sl_errmsg why;
	size_t n, n2;
	int rc;

	rc = sl_meta_decode(data, size, &j, t, SL_STORE_MAX_TEACHERS, &n, &why);
	if (rc != 0) {
		FUZZ_CHECK(rc == SL_EFORMAT || rc == SL_ELIMIT);
		return 0;
	}
	FUZZ_CHECK(j.dataset.shape[0] == j.dataset.rows && j.shard_rows > 0);
	for (size_t i = 0; i < n; i++) {
		FUZZ_CHECK(sl_label_fmt_check(&t[i].fmt) == 0);
		FUZZ_CHECK(i == 0 || t[i].index > t[i - 1].index);
	}
	FUZZ_CHECK(sl_meta_encode(&j, t, n, &b) == 0);
	rc = sl_meta_decode(b.p, b.len, &j2, t2, SL_STORE_MAX_TEACHERS, &n2,
	    &why);
	if (rc != 0)
		fprintf(stderr, "re-decode: %s\n", why.text);
	FUZZ_CHECK(rc == 0 && n2 == n);
	FUZZ_CHECK(j2.dataset.rows == j.dataset.rows &&
	    memcmp(j2.dataset.sha256, j.dataset.sha256, 32) == 0 &&
	    strcmp(j2.dataset_path, j.dataset_path) == 0);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(t2[i].index == t[i].index &&
		    strcmp(t2[i].name, t[i].name) == 0 &&
		    t2[i].has_pre == t[i].has_pre &&
		    memcmp(&t2[i].temperature, &t[i].temperature, 4) == 0);
	sl_proto_buf_fini(&b);
	return 0;
}

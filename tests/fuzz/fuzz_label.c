/* fuzz_label.c - sl_label_check and sl_label_probs on arbitrary records.
 *
 * Each input is checked as given and, since a random CRC almost never
 * holds, once more with its CRC field recomputed, so the value checks
 * behind the CRC are fuzzed too. Properties of an accepted record:
 *   - it passes again with expect = its own format, and fails with
 *     SL_EMISMATCH against a format it does not have;
 *   - sl_label_probs gives finite probabilities in [0, 1] summing to 1
 *     (within 1e-3) at the stored temperature and at two others. */
#include "fuzz.h"

#include "sl_label.h"

#include <math.h>
#include <string.h>
#include <zlib.h>

static void
check_one(const uint8_t *rec, size_t size)
{
	static const float temps[][2] = { { 1.0f, 1.0f }, { 4.0f, 1.0f },
		{ 2.0f, 8.0f } };
	sl_label_fmt fmt, other;
	sl_errmsg why;
	float *p;
	int rc;

	rc = sl_label_check(rec, size, NULL, &fmt, &why);
	if (rc != 0) {
		FUZZ_CHECK(rc == SL_EFORMAT || rc == SL_ECORRUPT);
		return;
	}
	FUZZ_CHECK(sl_label_fmt_check(&fmt) == 0);
	FUZZ_CHECK(sl_label_size(&fmt) == size);
	FUZZ_CHECK(sl_label_check(rec, size, &fmt, NULL, &why) == 0);
	other = fmt;
	other.classes = fmt.classes == 2 ? 3 : 2;
	if (fmt.encoding == SL_ENC_TOPK)
		other.k = 1;
	FUZZ_CHECK(sl_label_check(rec, size, &other, NULL, &why) ==
	    SL_EMISMATCH);

	p = malloc(fmt.classes * sizeof *p);
	FUZZ_CHECK(p != NULL);
	for (size_t t = 0; t < sizeof temps / sizeof temps[0]; t++) {
		double sum = 0;

		sl_label_probs(rec, temps[t][0], temps[t][1], p);
		for (uint32_t c = 0; c < fmt.classes; c++) {
			FUZZ_CHECK(isfinite(p[c]));
			FUZZ_CHECK(p[c] >= 0.0f && p[c] <= 1.0f + 1e-6f);
			sum += (double)p[c];
		}
		if (fabs(sum - 1.0) > 1e-3)
			fprintf(stderr, "sum %.9g at T %g -> %g\n", sum,
			    (double)temps[t][0], (double)temps[t][1]);
		FUZZ_CHECK(fabs(sum - 1.0) <= 1e-3);
	}
	free(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;
	uint32_t crc;

	check_one(data, size);
	if (size < SL_LABEL_HEADER_BYTES)
		return 0;
	copy = malloc(size);
	FUZZ_CHECK(copy != NULL);
	memcpy(copy, data, size);
	crc = (uint32_t)crc32(0L, copy + SL_LABEL_HEADER_BYTES,
	    (uInt)(size - SL_LABEL_HEADER_BYTES));
	for (int i = 0; i < 4; i++)
		copy[8 + i] = (uint8_t)(crc >> (8 * i));
	check_one(copy, size);
	free(copy);
	return 0;
}

/* fuzz_npy.c - sl_npy_parse on arbitrary .npy headers.
 *
 * Property: an accepted header describes data that lies inside the input:
 * data_offset + count * elem_size == size, without overflow. */
#include "fuzz.h"

#include "sl_data.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	sl_array_info ai;
	sl_errmsg why;
	size_t count = 1;

	if (sl_npy_parse(data, size, &ai, &why) != 0)
		return 0;
	FUZZ_CHECK(ai.ndim <= SL_DATA_MAX_DIMS);
	FUZZ_CHECK(ai.elem_size >= 1 && ai.elem_size <= 8);
	FUZZ_CHECK(ai.data_offset <= size);
	for (uint32_t i = 0; i < ai.ndim; i++)
		count *= (size_t)ai.shape[i];
	FUZZ_CHECK(count == ai.count);
	FUZZ_CHECK(ai.count <= (size - ai.data_offset) / ai.elem_size);
	return 0;
}

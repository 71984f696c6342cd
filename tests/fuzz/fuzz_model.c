/* fuzz_model.c - sl_model_parse on arbitrary safetensors images.
 *
 * Parsed without and with expected layer sizes. Properties: an accepted
 * model is within the documented limits, parses again when its own sizes
 * are expected, and is refused with SL_EMISMATCH against other sizes. */
#include "fuzz.h"

#include "sl_model.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int fixture[] = { 4, 6, 3 }; /* tests/data/fixture_mlp */
	sl_mlp *m = NULL, *m2 = NULL;
	sl_model_info info;
	sl_errmsg why;
	int rc, other[SL_MLP_MAX_LAYERS + 1];

	rc = sl_model_parse(data, size, fixture, 2, &m2, NULL, &why);
	if (rc == 0)
		sl_mlp_free(&m2);
	rc = sl_model_parse(data, size, NULL, 0, &m, &info, &why);
	if (rc != 0) {
		FUZZ_CHECK(m == NULL);
		FUZZ_CHECK(rc < 0);
		return 0;
	}
	FUZZ_CHECK(m != NULL);
	FUZZ_CHECK(m->nlayers >= 1 && m->nlayers <= SL_MLP_MAX_LAYERS);
	FUZZ_CHECK(m->nparams <= SL_MLP_MAX_PARAMS);
	for (int l = 0; l <= m->nlayers; l++) {
		FUZZ_CHECK(m->sizes[l] >= 1 && m->sizes[l] <= SL_MLP_MAX_WIDTH);
		other[l] = m->sizes[l];
	}
	FUZZ_CHECK(sl_model_parse(data, size, m->sizes, m->nlayers, &m2, NULL,
	    &why) == 0);
	sl_mlp_free(&m2);
	other[0] = m->sizes[0] + 1;
	FUZZ_CHECK(sl_model_parse(data, size, other, m->nlayers, &m2, NULL,
	    &why) == SL_EMISMATCH);
	FUZZ_CHECK(m2 == NULL);
	sl_mlp_free(&m);
	return 0;
}

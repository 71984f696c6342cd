/* fuzz_checkpoint.c - ckpt_decode on arbitrary checkpoint files.
 *
 * The run it decodes into is fixed and small: a 4-3-2 MLP (23 parameters),
 * an all-zero settings digest, no cache mask; once with SGD, once with Adam.
 * Each input is decoded as given and, since a random CRC almost never
 * holds, once more with its trailing CRC recomputed, so the fields behind
 * the CRC are fuzzed too. Properties: the caller's state is untouched on
 * failure, and on success every decoded value is finite. */
#include "fuzz.h"

#include "checkpoint.h"

#include <math.h>
#include <string.h>
#include <zlib.h>

static void
decode(const uint8_t *buf, size_t len, enum sl_optim_kind kind)
{
	static const int sizes[] = { 4, 3, 2 };
	static const uint8_t digest[32];
	sl_mlp *m = NULL;
	sl_optim o;
	sl_rng rng = { { 0 } };
	ckpt_pos pos = { 0, 0, 0, 0.0, 0 };
	sl_errmsg why;
	int rc;

	FUZZ_CHECK(sl_mlp_new(sizes, 2, &m) == 0);
	FUZZ_CHECK(sl_optim_init(&o, kind, m->nparams, 0.5f) == 0);
	rc = ckpt_decode(buf, len, m, &o, &rng, &pos, digest, "--lr=1", NULL, 0,
	    &why);
	if (rc == 0) {
		for (size_t i = 0; i < m->nparams; i++) {
			FUZZ_CHECK(isfinite(m->params[i]));
			FUZZ_CHECK(isfinite(o.m[i]));
			FUZZ_CHECK(kind == SL_OPTIM_SGD || isfinite(o.v[i]));
		}
	} else {
		FUZZ_CHECK(rc < 0);
		FUZZ_CHECK(o.lr == 0.5f && o.t == 0 && pos.step == 0);
		for (size_t i = 0; i < m->nparams; i++)
			FUZZ_CHECK(m->params[i] == 0.0f && o.m[i] == 0.0f);
	}
	sl_optim_fini(&o);
	sl_mlp_free(&m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *copy;
	uint32_t crc;

	decode(data, size, SL_OPTIM_SGD);
	decode(data, size, SL_OPTIM_ADAM);
	if (size < 12)
		return 0;
	copy = malloc(size);
	FUZZ_CHECK(copy != NULL);
	memcpy(copy, data, size);
	crc = (uint32_t)crc32(0L, copy, (uInt)(size - 4));
	for (int i = 0; i < 4; i++)
		copy[size - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
	decode(copy, size, SL_OPTIM_SGD);
	decode(copy, size, SL_OPTIM_ADAM);
	free(copy);
	return 0;
}

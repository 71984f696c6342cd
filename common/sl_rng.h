/* sl_rng.h - a small seeded RNG (xoshiro256**) whose whole state is four
 * u64 words, so checkpoints can save and restore it exactly.
 * Not thread-safe: one generator per thread. */
#ifndef SL_RNG_H
#define SL_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct sl_rng {
	uint64_t s[4];
} sl_rng;

/* Seed through splitmix64, so nearby seeds give unrelated streams. */
void sl_rng_seed(sl_rng *r, uint64_t seed);
uint64_t sl_rng_u64(sl_rng *r);
/* Uniform in [0, 1) with 24 bits of precision. */
float sl_rng_float(sl_rng *r);
/* Uniform in [0, n), unbiased; n > 0. */
uint64_t sl_rng_below(sl_rng *r, uint64_t n);
/* Fisher-Yates shuffle of idx[0..n). */
void sl_rng_shuffle(sl_rng *r, size_t *idx, size_t n);

#endif

/* checkpoint.h - the trainer's resumable state in one file.
 *
 * Everything a run needs to continue bit for bit: weights, optimizer state,
 * the dropout RNG, the position (epoch, batch within it, global step), and a
 * digest of the settings the run started with so that --resume refuses a
 * different run. Written atomically (temp file, fsync, rename, fsync dir).
 *
 * Layout, little-endian:
 *   "SLCKPT\0\1"            magic and version
 *   u32 nlayers, u32 sizes[nlayers + 1]
 *   u32 optim kind, f32 lr momentum beta1 beta2 eps weight_decay, u64 t
 *   u64 rng[4]
 *   u32 epoch, u64 batch, u64 step
 *   u8 run_digest[32]
 *   u32 mask_len, u8 mask[mask_len]   shards of the cache this epoch uses
 *                                     (teachers x shards; 0 bytes without
 *                                     a cache): the cache position
 *   f32 params[n], f32 m[n], f32 v[n] (v only for Adam)
 *   u32 crc32 of all the bytes before it
 */
#ifndef CHECKPOINT_H
#define CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "sl_err.h"
#include "sl_nn.h"
#include "sl_optim.h"
#include "sl_rng.h"

typedef struct ckpt_pos {
	uint32_t epoch;   /* epoch in progress, from 0 */
	uint64_t batch;   /* batches of that epoch already applied */
	uint64_t step;    /* batches applied in all */
} ckpt_pos;

/* Write the state to path atomically; mask[0..mask_len) is the cache
 * position (may be NULL with mask_len 0). */
int ckpt_save(const char *path, const sl_mlp *m, const sl_optim *o,
    const sl_rng *rng, const ckpt_pos *pos, const uint8_t digest[32],
    const uint8_t *mask, uint32_t mask_len, sl_errmsg *why);

/* Decode buf[0..len) into the caller's m, o, rng, pos, which must already
 * have the same architecture and optimizer kind; the digest must equal
 * digest, and the mask must be exactly mask_len bytes (written into mask).
 * Nothing is written unless everything checks out. */
int ckpt_decode(const void *buf, size_t len, sl_mlp *m, sl_optim *o,
    sl_rng *rng, ckpt_pos *pos, const uint8_t digest[32], uint8_t *mask,
    uint32_t mask_len, sl_errmsg *why);

/* Read path and decode it as above. */
int ckpt_load(const char *path, sl_mlp *m, sl_optim *o, sl_rng *rng,
    ckpt_pos *pos, const uint8_t digest[32], uint8_t *mask,
    uint32_t mask_len, sl_errmsg *why);

#endif

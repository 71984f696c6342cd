/* checkpoint.h - the trainer's resumable state in one file.
 *
 * Everything a run needs to continue bit for bit: weights, optimizer state,
 * the dropout RNG, the position (epoch, batch within it, global step), and a
 * digest of the settings the run started with so that --resume refuses a
 * different run. Written atomically (temp file, fsync, rename, fsync dir).
 *
 * Layout, little-endian:
 *   "SLCKPT\0\2"            magic and version (version 1, without the two
 *                           version-2 fields below, still loads)
 *   u32 nlayers, u32 sizes[nlayers + 1]
 *   u32 optim kind, f32 lr momentum beta1 beta2 eps weight_decay, u64 t
 *   u64 rng[4]
 *   u32 epoch, u64 batch, u64 step
 *   f64 loss_sum, u64 loss_rows   (v2) the epoch's partial sums
 *   u8 run_digest[32]
 *   u32 settings_len, settings    (v2) the settings the digest covers, as
 *                                 text, to name the one that differs
 *   u32 mask_len, u8 mask[mask_len]   shards of the cache this epoch uses
 *                                     (teachers x shards; 0 bytes without
 *                                     a cache): the cache position
 *   u32 nbufs, f32 bufs[nbufs],   (v3) running statistics (BatchNorm
 *   u32 ncounts, u64 counts[]     running_mean, running_var) and their
 *                                 num_batches_tracked; version 3 is
 *                                 written only for networks that have them
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
	/* Over the epoch's first `batch` batches: the sum of batch loss times
	 * rows, and the rows, so a resumed epoch reports the loss of the
	 * whole epoch. 0 from a version-1 checkpoint. */
	double loss_sum;
	uint64_t loss_rows;
} ckpt_pos;

/* The network as a checkpoint sees it: a shape to check (nlayers + 1
 * sizes: an MLP's layer widths, or a CNN's values per row before and after
 * each layer), the parameter block, and the running statistics and counts
 * (none for an MLP). Pointers are the caller's; decode writes into them. */
typedef struct ckpt_net {
	int nlayers;
	const int *sizes;
	float *params;
	size_t nparams;
	float *bufs;
	size_t nbufs;
	int64_t *counts;
	size_t ncounts;
} ckpt_net;

ckpt_net ckpt_net_of_mlp(sl_mlp *m);

/* Longest settings text a checkpoint carries. */
#define CKPT_MAX_SETTINGS 16384

/* Write the state to path atomically; mask[0..mask_len) is the cache
 * position (may be NULL with mask_len 0). settings (may be NULL) is the
 * text the digest was made from: lines "--option=value", kept to explain a
 * refusal; at most CKPT_MAX_SETTINGS bytes are kept. */
int ckpt_save(const char *path, const sl_mlp *m, const sl_optim *o,
    const sl_rng *rng, const ckpt_pos *pos, const uint8_t digest[32],
    const char *settings, const uint8_t *mask, uint32_t mask_len,
    sl_errmsg *why);

/* Decode buf[0..len) into the caller's m, o, rng, pos, which must already
 * have the same architecture and optimizer kind; the digest must equal
 * digest, and the mask must be exactly mask_len bytes (written into mask).
 * On a digest mismatch, why names the first line of settings (may be NULL)
 * whose value differs from the checkpoint's, with both values.
 * Nothing is written unless everything checks out. Returns 0, SL_EFORMAT,
 * SL_ECORRUPT, SL_EMISMATCH (another run's checkpoint) or SL_ENOMEM. */
int ckpt_decode(const void *buf, size_t len, sl_mlp *m, sl_optim *o,
    sl_rng *rng, ckpt_pos *pos, const uint8_t digest[32],
    const char *settings, uint8_t *mask, uint32_t mask_len, sl_errmsg *why);

/* Read path and decode it as above. */
int ckpt_load(const char *path, sl_mlp *m, sl_optim *o, sl_rng *rng,
    ckpt_pos *pos, const uint8_t digest[32], const char *settings,
    uint8_t *mask, uint32_t mask_len, sl_errmsg *why);

/* The same for any network (ckpt_net): ckpt_save and friends are these
 * on ckpt_net_of_mlp(m). */
int ckpt_save_net(const char *path, const ckpt_net *n, const sl_optim *o,
    const sl_rng *rng, const ckpt_pos *pos, const uint8_t digest[32],
    const char *settings, const uint8_t *mask, uint32_t mask_len,
    sl_errmsg *why);
int ckpt_decode_net(const void *buf, size_t len, const ckpt_net *n,
    sl_optim *o, sl_rng *rng, ckpt_pos *pos, const uint8_t digest[32],
    const char *settings, uint8_t *mask, uint32_t mask_len, sl_errmsg *why);
int ckpt_load_net(const char *path, const ckpt_net *n, sl_optim *o,
    sl_rng *rng, ckpt_pos *pos, const uint8_t digest[32],
    const char *settings, uint8_t *mask, uint32_t mask_len, sl_errmsg *why);

#endif

/* sl_view.h - views: deterministic augmentations of a row.
 *
 * A view of a row is the row transformed by a recipe with parameters drawn
 * from (job seed, sample, view index) alone, so a worker that labels view v
 * of sample i and a student that trains on it, on any host, see the same
 * pixels bit for bit. Rows are images: the last two dimensions of the row
 * shape are height and width, the dimensions before them (channels) are
 * transformed alike; a row of one dimension has no view.
 *
 * A recipe, as the options spell it (items joined by ','; "none": no item):
 *
 *   rrc=SMIN:SMAX  random-resized crop: a box of area SMIN..SMAX of the
 *                  image, aspect ratio 3/4..4/3 (log-uniform), resized back
 *                  to H x W by bilinear interpolation (half-pixel centres:
 *                  torch.nn.functional.interpolate(mode="bilinear",
 *                  align_corners=False, antialias=False)); torchvision's
 *                  RandomResizedCrop rule: 10 tries, then the whole image
 *                  clipped to the ratio range, centred;
 *                  0 < SMIN <= SMAX <= 1
 *   crop=P         pad P zero pixels on every side, then a random H x W
 *                  window (torchvision's RandomCrop(size, padding=P));
 *                  1 <= P <= 64
 *   flip           mirror left-right with probability 1/2
 *                  (RandomHorizontalFlip): right for clothes, wrong for
 *                  digits or text
 *
 * applied in that order to the raw row (uint8 or float32), before any
 * preprocessing (scale, mean, std). A u8 pixel resized by rrc is rounded to
 * the nearest integer (ties to even) and clamped to 0..255.
 *
 * Parameters: a generator (sl_rng, xoshiro256**) seeded with
 * sl_view_seed(seed, sample, view) draws, in this order, rrc's tries (per
 * try: area fraction, then log aspect ratio, as sl_rng_float each; then
 * top and left, sl_rng_below), crop's offsets (top, then left, each
 * sl_rng_below(2P + 1)), flip's coin (the top bit of sl_rng_u64). Only the
 * items in the recipe draw. The arithmetic is float32 without contraction
 * (-std=c11 turns GCC's off), so results do not depend on the host.
 *
 * Everything here is pure and thread-safe; nothing allocates.
 */
#ifndef SL_VIEW_H
#define SL_VIEW_H

#include <stddef.h>
#include <stdint.h>

#include "sl_data.h"
#include "sl_err.h"

#define SL_VIEW_MAX_PAD 64
#define SL_VIEW_RECIPE_BYTES 12 /* sl_view_recipe_pack */
#define SL_VIEW_RECIPE_TEXT 64  /* sl_view_recipe_format, with NUL */

typedef struct sl_view_recipe {
	float rrc_min, rrc_max; /* area fraction; both 0: no rrc */
	uint32_t pad;           /* crop=P; 0: no crop */
	uint32_t flip;          /* 1: flip */
} sl_view_recipe;

/* The parameters of one view. */
typedef struct sl_view_params {
	int rrc;                /* resample the box below */
	int box_top, box_left, box_h, box_w;
	int crop;               /* shift by (dy, dx) - pad, zeros outside */
	int dy, dx;
	int flip;
} sl_view_params;

/* Parse the text above into *r (written only on success). SL_EINVAL with
 * why naming the item and why it is wrong (unknown, repeated, out of
 * range). */
int sl_view_recipe_parse(const char *s, sl_view_recipe *r, sl_errmsg *why);

/* 1 when r transforms nothing. */
int sl_view_recipe_empty(const sl_view_recipe *r);

/* The canonical text of r ("rrc=0.35:1,crop=2,flip", "none") into
 * buf[0..cap); parse gives r back. Returns the length written (cut short,
 * NUL-terminated, when it does not fit). */
size_t sl_view_recipe_format(char *buf, size_t cap, const sl_view_recipe *r);

/* Fixed 12-byte little-endian form, for registrations: u8 version (1), u8
 * flip, u16 pad, float32 rrc_min, float32 rrc_max. Two recipes are the same
 * when these bytes are. unpack returns SL_EFORMAT (another length or
 * version, or values parse would refuse). */
void sl_view_recipe_pack(const sl_view_recipe *r,
    uint8_t out[SL_VIEW_RECIPE_BYTES]);
int sl_view_recipe_unpack(const void *buf, size_t len, sl_view_recipe *r,
    sl_errmsg *why);

/* Whether rows of shape[0..rank) can take r's views: rank >= 2 and, for
 * crop, an image of at least 1 x 1 (any). SL_EMISMATCH with why naming the
 * shape. */
int sl_view_check_shape(const sl_view_recipe *r, int rank,
    const uint32_t *shape, sl_errmsg *why);

/* The generator's seed for (seed, sample, view): splitmix64 steps over the
 * three, so neighbouring samples and views draw unrelated streams. */
uint64_t sl_view_seed(uint64_t seed, uint64_t sample, uint32_t view);

/* Draw view (seed, sample, view) of an H x W image under r. */
void sl_view_draw(const sl_view_recipe *r, uint64_t seed, uint64_t sample,
    uint32_t view, int H, int W, sl_view_params *p);

/* out = the view p of in: C planes of H x W in dtype (uint8 or float32).
 * scratch holds one plane (H * W elements of dtype) and is used only when
 * p->rrc and p->crop or p->flip. out must not overlap in or scratch. */
void sl_view_apply(const sl_view_params *p, enum sl_dtype dtype,
    const void *in, void *out, void *scratch, int C, int H, int W);

#endif

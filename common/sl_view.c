/* sl_view.c - deterministic augmentations of a row (see sl_view.h). */
#include "sl_view.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_rng.h"

#define RATIO_MIN (3.0 / 4.0)
#define RATIO_MAX (4.0 / 3.0)
#define RRC_TRIES 10

/* --- recipes -------------------------------------------------------------- */

static int
parse_float(const char *s, const char *end, float *out)
{
	char buf[32], *e;
	const size_t n = (size_t)(end - s);

	if (n == 0 || n >= sizeof buf)
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*out = strtof(buf, &e);
	return *e == '\0' && isfinite(*out) ? 0 : -1;
}

static int
parse_item(const char *s, const char *end, sl_view_recipe *r, int *seen,
    sl_errmsg *why)
{
	const int len = (int)(end - s);
	const char *eq = memchr(s, '=', (size_t)len);

	if (len == 4 && memcmp(s, "flip", 4) == 0) {
		if (*seen & 4)
			return sl_errmsg_set(why, SL_EINVAL, "'flip' given twice");
		*seen |= 4;
		r->flip = 1;
		return 0;
	}
	if (eq != NULL && eq - s == 4 && memcmp(s, "crop", 4) == 0) {
		char buf[16], *e;
		long p;

		if (*seen & 2)
			return sl_errmsg_set(why, SL_EINVAL, "'crop' given twice");
		*seen |= 2;
		if (end - eq - 1 <= 0 || end - eq - 1 >= (long)sizeof buf)
			return sl_errmsg_set(why, SL_EINVAL, "'%.*s': want crop=P, "
			    "P pixels of padding 1..%d", len, s, SL_VIEW_MAX_PAD);
		memcpy(buf, eq + 1, (size_t)(end - eq - 1));
		buf[end - eq - 1] = '\0';
		p = strtol(buf, &e, 10);
		if (*e != '\0' || p < 1 || p > SL_VIEW_MAX_PAD)
			return sl_errmsg_set(why, SL_EINVAL, "'%.*s': want crop=P, "
			    "P pixels of padding 1..%d", len, s, SL_VIEW_MAX_PAD);
		r->pad = (uint32_t)p;
		return 0;
	}
	if (eq != NULL && eq - s == 3 && memcmp(s, "rrc", 3) == 0) {
		const char *colon = memchr(eq + 1, ':', (size_t)(end - eq - 1));
		float lo, hi;

		if (*seen & 1)
			return sl_errmsg_set(why, SL_EINVAL, "'rrc' given twice");
		*seen |= 1;
		if (colon == NULL || parse_float(eq + 1, colon, &lo) != 0 ||
		    parse_float(colon + 1, end, &hi) != 0 ||
		    !(lo > 0.0f && lo <= hi && hi <= 1.0f))
			return sl_errmsg_set(why, SL_EINVAL, "'%.*s': want "
			    "rrc=SMIN:SMAX, area fractions with 0 < SMIN <= SMAX "
			    "<= 1", len, s);
		r->rrc_min = lo;
		r->rrc_max = hi;
		return 0;
	}
	return sl_errmsg_set(why, SL_EINVAL, "unknown view item '%.*s' (want "
	    "rrc=SMIN:SMAX, crop=P, flip or none)", len, s);
}

int
sl_view_recipe_parse(const char *s, sl_view_recipe *r, sl_errmsg *why)
{
	sl_view_recipe v;
	int seen = 0;

	memset(&v, 0, sizeof v);
	if (s == NULL || *s == '\0')
		return sl_errmsg_set(why, SL_EINVAL, "empty view recipe (want "
		    "items such as crop=2,flip, or none)");
	if (strcmp(s, "none") != 0) {
		for (const char *p = s;;) {
			const char *end = strchr(p, ',');
			int rc;

			if (end == NULL)
				end = p + strlen(p);
			if (end == p)
				return sl_errmsg_set(why, SL_EINVAL, "empty item in "
				    "view recipe '%s'", s);
			if ((rc = parse_item(p, end, &v, &seen, why)) != 0)
				return rc;
			if (*end == '\0')
				break;
			p = end + 1;
		}
	}
	*r = v;
	return 0;
}

int
sl_view_recipe_empty(const sl_view_recipe *r)
{
	return r->rrc_max == 0.0f && r->pad == 0 && !r->flip;
}

/* Append to buf[0..cap) at n, keeping it NUL-terminated; the new length. */
static size_t __attribute__((format(printf, 4, 5)))
append(char *buf, size_t cap, size_t n, const char *fmt, ...)
{
	va_list ap;
	int w;

	va_start(ap, fmt);
	w = vsnprintf(buf + n, cap - n, fmt, ap);
	va_end(ap);
	if (w < 0)
		return n;
	return (size_t)w < cap - n ? n + (size_t)w : cap - 1;
}

size_t
sl_view_recipe_format(char *buf, size_t cap, const sl_view_recipe *r)
{
	size_t n = 0;

	buf[0] = '\0';
	if (sl_view_recipe_empty(r))
		return append(buf, cap, 0, "none");
	if (r->rrc_max > 0.0f)
		n = append(buf, cap, n, "rrc=%.9g:%.9g", (double)r->rrc_min,
		    (double)r->rrc_max);
	if (r->pad > 0)
		n = append(buf, cap, n, "%scrop=%u", n ? "," : "", r->pad);
	if (r->flip)
		n = append(buf, cap, n, "%sflip", n ? "," : "");
	return n;
}

static void
put_f32(uint8_t *p, float f)
{
	uint32_t u;

	memcpy(&u, &f, 4);
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(u >> (8 * i));
}

static float
get_f32(const uint8_t *p)
{
	uint32_t u = 0;
	float f;

	for (int i = 0; i < 4; i++)
		u |= (uint32_t)p[i] << (8 * i);
	memcpy(&f, &u, 4);
	return f;
}

void
sl_view_recipe_pack(const sl_view_recipe *r, uint8_t out[SL_VIEW_RECIPE_BYTES])
{
	out[0] = 1;
	out[1] = (uint8_t)(r->flip != 0);
	out[2] = (uint8_t)(r->pad & 0xff);
	out[3] = (uint8_t)(r->pad >> 8);
	put_f32(out + 4, r->rrc_min);
	put_f32(out + 8, r->rrc_max);
}

int
sl_view_recipe_unpack(const void *buf, size_t len, sl_view_recipe *r,
    sl_errmsg *why)
{
	const uint8_t *p = buf;
	sl_view_recipe v;

	if (len != SL_VIEW_RECIPE_BYTES)
		return sl_errmsg_set(why, SL_EFORMAT, "view recipe of %zu bytes, "
		    "want %d", len, SL_VIEW_RECIPE_BYTES);
	if (p[0] != 1)
		return sl_errmsg_set(why, SL_EFORMAT, "view recipe version %u, "
		    "this build reads 1", p[0]);
	v.flip = p[1];
	v.pad = (uint32_t)p[2] | (uint32_t)p[3] << 8;
	v.rrc_min = get_f32(p + 4);
	v.rrc_max = get_f32(p + 8);
	if (v.flip > 1 || v.pad > SL_VIEW_MAX_PAD ||
	    !(v.rrc_min == 0.0f && v.rrc_max == 0.0f ? 1 :
	    v.rrc_min > 0.0f && v.rrc_min <= v.rrc_max && v.rrc_max <= 1.0f))
		return sl_errmsg_set(why, SL_EFORMAT, "view recipe out of range "
		    "(flip %u, pad %u, rrc %g:%g)", v.flip, v.pad,
		    (double)v.rrc_min, (double)v.rrc_max);
	*r = v;
	return 0;
}

int
sl_view_check_shape(const sl_view_recipe *r, int rank, const uint32_t *shape,
    sl_errmsg *why)
{
	if (sl_view_recipe_empty(r))
		return 0;
	if (rank < 2 || shape[rank - 1] == 0 || shape[rank - 2] == 0)
		return sl_errmsg_set(why, SL_EMISMATCH, "views transform images: "
		    "rows need a shape [..., H, W], not %d dimension(s)", rank);
	return 0;
}

/* --- drawing -------------------------------------------------------------- */

static uint64_t
splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

uint64_t
sl_view_seed(uint64_t seed, uint64_t sample, uint32_t view)
{
	return splitmix64(splitmix64(splitmix64(seed) ^ sample) ^ view);
}

/* e^x for |x| <= 0.3 from basic IEEE operations only (a libm's exp may
 * round differently on another host): Taylor to x^12, error < 1e-16. */
static double
exp_small(double x)
{
	double term = 1.0, sum = 1.0;

	for (int k = 1; k <= 12; k++) {
		term = term * x / k;
		sum += term;
	}
	return sum;
}

static void
draw_box(sl_rng *g, const sl_view_recipe *r, int H, int W, sl_view_params *p)
{
	/* log(3/4) and log(4/3), written out: no libm in the draw. */
	const double lr_min = -0.28768207245178093, lr_max = 0.28768207245178093;
	const double area = (double)H * W;

	for (int t = 0; t < RRC_TRIES; t++) {
		const double frac = (double)r->rrc_min + (double)sl_rng_float(g) *
		    ((double)r->rrc_max - (double)r->rrc_min);
		const double aspect = exp_small(lr_min +
		    (double)sl_rng_float(g) * (lr_max - lr_min));
		const double target = area * frac;
		const int w = (int)nearbyint(sqrt(target * aspect));
		const int h = (int)nearbyint(sqrt(target / aspect));

		if (w > 0 && w <= W && h > 0 && h <= H) {
			p->box_top = (int)sl_rng_below(g, (uint64_t)(H - h + 1));
			p->box_left = (int)sl_rng_below(g, (uint64_t)(W - w + 1));
			p->box_h = h;
			p->box_w = w;
			return;
		}
	}
	/* The whole image, clipped to the ratio range, centred. */
	const double in_ratio = (double)W / H;
	int w = W, h = H;

	if (in_ratio < RATIO_MIN)
		h = (int)nearbyint(w / RATIO_MIN);
	else if (in_ratio > RATIO_MAX)
		w = (int)nearbyint(h * RATIO_MAX);
	p->box_top = (H - h) / 2;
	p->box_left = (W - w) / 2;
	p->box_h = h;
	p->box_w = w;
}

void
sl_view_draw(const sl_view_recipe *r, uint64_t seed, uint64_t sample,
    uint32_t view, int H, int W, sl_view_params *p)
{
	sl_rng g;

	memset(p, 0, sizeof *p);
	sl_rng_seed(&g, sl_view_seed(seed, sample, view));
	if (r->rrc_max > 0.0f) {
		p->rrc = 1;
		draw_box(&g, r, H, W, p);
	}
	if (r->pad > 0) {
		p->crop = 1;
		p->dy = (int)sl_rng_below(&g, 2u * r->pad + 1) - (int)r->pad;
		p->dx = (int)sl_rng_below(&g, 2u * r->pad + 1) - (int)r->pad;
	}
	if (r->flip)
		p->flip = (int)(sl_rng_u64(&g) >> 63);
}

/* --- applying ------------------------------------------------------------- */

/* PyTorch's bilinear source index (align_corners=False): scale * (dst +
 * 0.5) - 0.5, negative clamped to 0; i0, i1 = i0 + (i0 < in - 1) and the
 * weight of i1. */
static void
src_index(int dst, float scale, int in, int *i0, int *i1, float *l1)
{
	float s = scale * ((float)dst + 0.5f) - 0.5f;

	if (s < 0.0f)
		s = 0.0f;
	*i0 = (int)s;
	*i1 = *i0 + (*i0 < in - 1);
	*l1 = s - (float)*i0;
}

/* One plane: the box resized to H x W. */
static void
resize_plane(const sl_view_params *p, enum sl_dtype dtype, const void *in,
    void *out, int H, int W)
{
	const float sh = (float)p->box_h / (float)H, sw = (float)p->box_w / (float)W;

	for (int y = 0; y < H; y++) {
		int y0, y1;
		float ly1;

		src_index(y, sh, p->box_h, &y0, &y1, &ly1);
		const float ly0 = 1.0f - ly1;
		const size_t r0 = (size_t)(p->box_top + y0) * (size_t)W,
		    r1 = (size_t)(p->box_top + y1) * (size_t)W;

		for (int x = 0; x < W; x++) {
			int x0, x1;
			float lx1, a, b, c, d;

			src_index(x, sw, p->box_w, &x0, &x1, &lx1);
			const float lx0 = 1.0f - lx1;
			const size_t c0 = (size_t)(p->box_left + x0),
			    c1 = (size_t)(p->box_left + x1);

			if (dtype == SL_DTYPE_U8) {
				const uint8_t *s = in;

				a = s[r0 + c0], b = s[r0 + c1];
				c = s[r1 + c0], d = s[r1 + c1];
			} else {
				const float *s = in;

				a = s[r0 + c0], b = s[r0 + c1];
				c = s[r1 + c0], d = s[r1 + c1];
			}
			const float v = ly0 * (lx0 * a + lx1 * b) +
			    ly1 * (lx0 * c + lx1 * d);

			if (dtype == SL_DTYPE_U8) {
				float q = nearbyintf(v);

				((uint8_t *)out)[(size_t)y * W + x] = (uint8_t)(q < 0.0f ?
				    0.0f : q > 255.0f ? 255.0f : q);
			} else {
				((float *)out)[(size_t)y * W + x] = v;
			}
		}
	}
}

/* One plane: shifted by (dy, dx) with zeros outside, mirrored if flip. */
static void
shift_plane(const sl_view_params *p, size_t esize, const uint8_t *in,
    uint8_t *out, int H, int W)
{
	const int dy = p->crop ? p->dy : 0, dx = p->crop ? p->dx : 0;

	for (int y = 0; y < H; y++) {
		const int sy = y + dy;
		uint8_t *o = out + (size_t)y * W * esize;

		if (sy < 0 || sy >= H) {
			memset(o, 0, (size_t)W * esize);
			continue;
		}
		for (int x = 0; x < W; x++) {
			const int sx = (p->flip ? W - 1 - x : x) + dx;

			if (sx < 0 || sx >= W)
				memset(o + (size_t)x * esize, 0, esize);
			else
				memcpy(o + (size_t)x * esize,
				    in + ((size_t)sy * W + (size_t)sx) * esize, esize);
		}
	}
}

void
sl_view_apply(const sl_view_params *p, enum sl_dtype dtype, const void *in,
    void *out, void *scratch, int C, int H, int W)
{
	const size_t esize = dtype == SL_DTYPE_U8 ? 1 : sizeof(float);
	const size_t plane = (size_t)H * (size_t)W * esize;
	const int remap = p->crop || p->flip;

	for (int c = 0; c < C; c++) {
		const uint8_t *src = (const uint8_t *)in + (size_t)c * plane;
		uint8_t *dst = (uint8_t *)out + (size_t)c * plane;

		if (p->rrc) {
			resize_plane(p, dtype, src, remap ? scratch : dst, H, W);
			src = scratch;
		}
		if (remap)
			shift_plane(p, esize, src, dst, H, W);
		else if (!p->rrc)
			memcpy(dst, src, plane);
	}
}

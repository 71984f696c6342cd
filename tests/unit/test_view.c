/* sl_view: recipes parsed, formatted and packed both ways with every
 * refusal; draws that depend on (seed, sample, view) alone and spread as
 * the recipe says (crop offsets over all 2P + 1 values, flips near half,
 * rrc boxes inside the image with the area and ratio asked); each
 * transform against a naive definition (zero-padded window, mirror,
 * bilinear with half-pixel centres in double), on u8 and f32 and on
 * several channels. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "sl_view.h"

static sl_view_recipe
recipe(const char *s)
{
	sl_view_recipe r;
	sl_errmsg why = { "" };

	if (sl_view_recipe_parse(s, &r, &why) != 0) {
		print_error("'%s': %s\n", s, why.text);
		fail();
	}
	return r;
}

static void
test_parse_format(void **state)
{
	static const struct {
		const char *in, *canon;
	} ok[] = {
		{ "none", "none" },
		{ "flip", "flip" },
		{ "crop=2", "crop=2" },
		{ "flip,crop=4", "crop=4,flip" },
		{ "rrc=0.35:1,crop=2,flip", "rrc=0.349999994:1,crop=2,flip" },
		{ "rrc=0.5:0.5", "rrc=0.5:0.5" },
		{ "crop=64", "crop=64" },
	};
	char buf[SL_VIEW_RECIPE_TEXT];

	(void)state;
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		sl_view_recipe r = recipe(ok[i].in), back;

		sl_view_recipe_format(buf, sizeof buf, &r);
		assert_string_equal(buf, ok[i].canon);
		back = recipe(buf);
		assert_memory_equal(&back, &r, sizeof r);
	}
	assert_true(sl_view_recipe_empty(&(sl_view_recipe){ 0 }));
	/* Cut short, still terminated. */
	sl_view_recipe r = recipe("rrc=0.35:1,crop=2,flip");
	assert_int_equal(sl_view_recipe_format(buf, 8, &r), 7);
	assert_string_equal(buf, "rrc=0.3");
}

static void
test_parse_refusals(void **state)
{
	static const struct {
		const char *in, *why;
	} bad[] = {
		{ "", "empty view recipe" },
		{ "crop", "unknown view item 'crop'" },
		{ "crop=0", "'crop=0': want crop=P" },
		{ "crop=65", "'crop=65'" },
		{ "crop=2x", "'crop=2x'" },
		{ "crop=-1", "'crop=-1'" },
		{ "crop=2,crop=3", "'crop' given twice" },
		{ "flip,flip", "'flip' given twice" },
		{ "rrc=0.5", "'rrc=0.5': want rrc=SMIN:SMAX" },
		{ "rrc=0:1", "'rrc=0:1'" },
		{ "rrc=0.8:0.3", "'rrc=0.8:0.3'" },
		{ "rrc=0.3:1.5", "'rrc=0.3:1.5'" },
		{ "rrc=nan:1", "'rrc=nan:1'" },
		{ "flip,,crop=2", "empty item" },
		{ "flip,", "empty item" },
		{ "mirror", "unknown view item 'mirror'" },
		{ "none,flip", "unknown view item 'none'" },
	};
	sl_view_recipe r = { .pad = 7 };

	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		sl_errmsg why = { "" };

		assert_int_equal(sl_view_recipe_parse(bad[i].in, &r, &why),
		    SL_EINVAL);
		if (strstr(why.text, bad[i].why) == NULL) {
			print_error("'%s': got '%s', want '%s'\n", bad[i].in,
			    why.text, bad[i].why);
			fail();
		}
		assert_int_equal(r.pad, 7); /* untouched */
	}
}

static void
test_pack(void **state)
{
	uint8_t b[SL_VIEW_RECIPE_BYTES], c[SL_VIEW_RECIPE_BYTES];
	sl_view_recipe r = recipe("rrc=0.25:0.75,crop=3,flip"), back;
	sl_errmsg why = { "" };

	(void)state;
	sl_view_recipe_pack(&r, b);
	assert_int_equal(b[0], 1);
	assert_int_equal(b[1], 1);
	assert_int_equal(b[2], 3);
	assert_int_equal(b[3], 0);
	assert_int_equal(sl_view_recipe_unpack(b, sizeof b, &back, &why), 0);
	assert_memory_equal(&back, &r, sizeof r);
	/* Another recipe, other bytes. */
	sl_view_recipe o = recipe("rrc=0.25:0.75,crop=3");
	sl_view_recipe_pack(&o, c);
	assert_memory_not_equal(b, c, sizeof b);
	assert_int_equal(sl_view_recipe_unpack(b, 11, &back, &why), SL_EFORMAT);
	assert_non_null(strstr(why.text, "11 bytes"));
	memcpy(c, b, sizeof b);
	c[0] = 2;
	assert_int_equal(sl_view_recipe_unpack(c, sizeof c, &back, &why),
	    SL_EFORMAT);
	assert_non_null(strstr(why.text, "version 2"));
	memcpy(c, b, sizeof b);
	c[2] = 65;
	assert_int_equal(sl_view_recipe_unpack(c, sizeof c, &back, &why),
	    SL_EFORMAT);
	memcpy(c, b, sizeof b);
	c[1] = 2;
	assert_int_equal(sl_view_recipe_unpack(c, sizeof c, &back, &why),
	    SL_EFORMAT);
	sl_view_recipe bad = r;
	bad.rrc_min = 0.9f; /* above rrc_max */
	sl_view_recipe_pack(&bad, c);
	assert_int_equal(sl_view_recipe_unpack(c, sizeof c, &back, &why),
	    SL_EFORMAT);
}

static void
test_check_shape(void **state)
{
	const uint32_t img[2] = { 28, 28 }, flat[1] = { 784 };
	sl_view_recipe r = recipe("crop=2"), none = recipe("none");
	sl_errmsg why = { "" };

	(void)state;
	assert_int_equal(sl_view_check_shape(&r, 2, img, &why), 0);
	assert_int_equal(sl_view_check_shape(&none, 1, flat, &why), 0);
	assert_int_equal(sl_view_check_shape(&r, 1, flat, &why), SL_EMISMATCH);
	assert_non_null(strstr(why.text, "[..., H, W]"));
}

/* The same triple, the same view; another sample, view or seed, another
 * stream (a 3-way collision of 1000 draws would be a broken mix). */
static void
test_draw_deterministic(void **state)
{
	sl_view_recipe r = recipe("rrc=0.3:1,crop=4,flip");
	sl_view_params a, b;
	int same_sample = 0, same_view = 0, same_seed = 0;

	(void)state;
	for (uint64_t i = 0; i < 1000; i++) {
		sl_view_draw(&r, 42, i, 3, 28, 28, &a);
		sl_view_draw(&r, 42, i, 3, 28, 28, &b);
		assert_memory_equal(&a, &b, sizeof a);
		sl_view_draw(&r, 42, i + 1, 3, 28, 28, &b);
		same_sample += memcmp(&a, &b, sizeof a) == 0;
		sl_view_draw(&r, 42, i, 4, 28, 28, &b);
		same_view += memcmp(&a, &b, sizeof a) == 0;
		sl_view_draw(&r, 43, i, 3, 28, 28, &b);
		same_seed += memcmp(&a, &b, sizeof a) == 0;
	}
	assert_true(same_sample < 3 && same_view < 3 && same_seed < 3);
	/* The seed is a pure function of the triple; neighbours differ. */
	assert_int_equal(sl_view_seed(1, 2, 3), sl_view_seed(1, 2, 3));
	assert_true(sl_view_seed(1, 2, 3) != sl_view_seed(1, 3, 2));
	assert_true(sl_view_seed(0, 0, 0) != sl_view_seed(0, 0, 1));
}

/* crop=P: every offset in -P..P shows up, near uniformly; flip about half
 * (seeded, so the counts are fixed: the bounds are 6 sigma wide). */
static void
test_draw_spread(void **state)
{
	sl_view_recipe r = recipe("crop=3,flip");
	int dy[7] = { 0 }, dx[7] = { 0 }, flips = 0;
	const int n = 7000;

	(void)state;
	for (int i = 0; i < n; i++) {
		sl_view_params p;

		sl_view_draw(&r, 7, (uint64_t)i, 0, 28, 28, &p);
		assert_true(p.crop && !p.rrc);
		assert_in_range(p.dy + 3, 0, 6);
		assert_in_range(p.dx + 3, 0, 6);
		dy[p.dy + 3]++;
		dx[p.dx + 3]++;
		flips += p.flip;
	}
	for (int k = 0; k < 7; k++) {
		assert_in_range(dy[k], 1000 - 180, 1000 + 180);
		assert_in_range(dx[k], 1000 - 180, 1000 + 180);
	}
	assert_in_range(flips, n / 2 - 250, n / 2 + 250);
	/* Items not in the recipe do not draw. */
	sl_view_recipe f = recipe("flip");
	sl_view_params p;
	sl_view_draw(&f, 7, 0, 0, 28, 28, &p);
	assert_false(p.crop || p.rrc);
}

/* rrc: boxes inside the image; area and ratio as asked, up to the
 * rounding of w and h; the fallback centred and within the ratio range. */
static void
test_draw_rrc(void **state)
{
	sl_view_recipe r = recipe("rrc=0.25:0.5");
	const int H = 28, W = 28;

	(void)state;
	for (uint64_t i = 0; i < 2000; i++) {
		sl_view_params p;

		sl_view_draw(&r, 1, i, 0, H, W, &p);
		assert_true(p.rrc);
		assert_true(p.box_h >= 1 && p.box_w >= 1);
		assert_true(p.box_top >= 0 && p.box_top + p.box_h <= H);
		assert_true(p.box_left >= 0 && p.box_left + p.box_w <= W);
		const double area = (double)p.box_h * p.box_w / (H * W);
		const double ratio = (double)p.box_w / p.box_h;
		/* w and h each rounded by up to half a pixel. */
		assert_true(area >= 0.25 * 0.85 && area <= 0.5 * 1.15);
		assert_true(ratio >= 0.75 * 0.9 && ratio <= 4.0 / 3.0 * 1.1);
	}
	/* A 4 x 40 strip takes no box of area 0.9 with ratio <= 4/3: the
	 * fallback clips the whole strip to 4/3 and centres it. */
	sl_view_recipe big = recipe("rrc=0.9:1");
	sl_view_params p;
	sl_view_draw(&big, 1, 0, 0, 4, 40, &p);
	assert_int_equal(p.box_h, 4);
	assert_int_equal(p.box_w, 5);
	assert_int_equal(p.box_top, 0);
	assert_int_equal(p.box_left, (40 - 5) / 2);
}

/* --- transforms against naive definitions --------------------------------- */

static double
px(enum sl_dtype dt, const void *img, int H, int W, int c, int y, int x)
{
	const size_t i = ((size_t)c * H + (size_t)y) * W + (size_t)x;

	return dt == SL_DTYPE_U8 ? ((const uint8_t *)img)[i] :
	    (double)((const float *)img)[i];
}

/* The view by its definition, in double: bilinear on the box (half-pixel
 * centres, edge clamped), then the zero-padded shift, then the mirror. */
static double
naive(const sl_view_params *p, enum sl_dtype dt, const void *img, int H,
    int W, int c, int y, int x)
{
	if (p->flip)
		x = W - 1 - x;
	if (p->crop) {
		y += p->dy;
		x += p->dx;
		if (y < 0 || y >= H || x < 0 || x >= W)
			return 0.0;
	}
	if (!p->rrc)
		return px(dt, img, H, W, c, y, x);
	double sy = ((double)y + 0.5) * p->box_h / H - 0.5;
	double sx = ((double)x + 0.5) * p->box_w / W - 0.5;
	sy = sy < 0 ? 0 : sy;
	sx = sx < 0 ? 0 : sx;
	const int y0 = (int)sy, x0 = (int)sx;
	const int y1 = y0 + (y0 < p->box_h - 1), x1 = x0 + (x0 < p->box_w - 1);
	const double ly = sy - y0, lx = sx - x0;
	const int t = p->box_top, l = p->box_left;
	double v = (1 - ly) * ((1 - lx) * px(dt, img, H, W, c, t + y0, l + x0) +
	    lx * px(dt, img, H, W, c, t + y0, l + x1)) +
	    ly * ((1 - lx) * px(dt, img, H, W, c, t + y1, l + x0) +
	    lx * px(dt, img, H, W, c, t + y1, l + x1));
	return v;
}

static void
check_views(const char *recipe_text, enum sl_dtype dt, int C, int H, int W)
{
	enum { MAXPX = 3 * 32 * 32 };
	static uint8_t in8[MAXPX], out8[MAXPX], scr8[MAXPX];
	static float inf[MAXPX], outf[MAXPX], scrf[MAXPX];
	const sl_view_recipe r = recipe(recipe_text);
	const void *in = dt == SL_DTYPE_U8 ? (void *)in8 : (void *)inf;
	void *out = dt == SL_DTYPE_U8 ? (void *)out8 : (void *)outf;
	void *scr = dt == SL_DTYPE_U8 ? (void *)scr8 : (void *)scrf;
	uint32_t h = 12345;

	assert_true(C * H * W <= MAXPX);
	for (int i = 0; i < C * H * W; i++) {
		h = h * 1103515245u + 12345u;
		in8[i] = (uint8_t)(h >> 16);
		inf[i] = (float)(h >> 8 & 0xffff) / 65536.0f - 0.5f;
	}
	for (uint64_t s = 0; s < 200; s++) {
		sl_view_params p;

		sl_view_draw(&r, 9, s, (uint32_t)(s % 5), H, W, &p);
		sl_view_apply(&p, dt, in, out, scr, C, H, W);
		for (int c = 0; c < C; c++)
			for (int y = 0; y < H; y++)
				for (int x = 0; x < W; x++) {
					const double want = naive(&p, dt, in, H, W, c, y, x);
					const double got = px(dt, out, H, W, c, y, x);
					/* u8: rounded once (ties may go either way after
					 * float32 sums); f32: a few float roundings. */
					const double tol = dt == SL_DTYPE_U8 ?
					    (p.rrc ? 0.5 + 1e-3 : 0) : (p.rrc ? 2e-6 : 0);

					if (!(fabs(got - want) <= tol)) {
						print_error("%s %s C=%d %dx%d sample %d: "
						    "(%d,%d,%d) got %.9g want %.9g\n",
						    recipe_text, dt == SL_DTYPE_U8 ?
						    "u8" : "f32", C, H, W, (int)s, c, y, x,
						    got, want);
						fail();
					}
				}
	}
}

static void
test_apply(void **state)
{
	static const char *recipes[] = {
		"none", "flip", "crop=2", "crop=4,flip", "rrc=0.08:1",
		"rrc=0.3:1,flip", "rrc=0.35:1,crop=2,flip",
	};

	(void)state;
	for (size_t i = 0; i < sizeof recipes / sizeof recipes[0]; i++) {
		check_views(recipes[i], SL_DTYPE_U8, 1, 28, 28);
		check_views(recipes[i], SL_DTYPE_F32, 1, 28, 28);
		check_views(recipes[i], SL_DTYPE_U8, 3, 32, 32);
		check_views(recipes[i], SL_DTYPE_F32, 3, 17, 9);
	}
}

/* A box of the whole image resizes to the image itself, exactly. */
static void
test_identity_box(void **state)
{
	uint8_t in[6 * 5], out[6 * 5];
	const sl_view_params p = { .rrc = 1, .box_h = 6, .box_w = 5 };

	(void)state;
	for (int i = 0; i < 30; i++)
		in[i] = (uint8_t)(i * 7);
	sl_view_apply(&p, SL_DTYPE_U8, in, out, NULL, 1, 6, 5);
	assert_memory_equal(in, out, sizeof in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_format),
		cmocka_unit_test(test_parse_refusals),
		cmocka_unit_test(test_pack),
		cmocka_unit_test(test_check_shape),
		cmocka_unit_test(test_draw_deterministic),
		cmocka_unit_test(test_draw_spread),
		cmocka_unit_test(test_draw_rrc),
		cmocka_unit_test(test_apply),
		cmocka_unit_test(test_identity_box),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

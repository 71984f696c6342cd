/* test_augment: the student's view schedule and batch views
 * (student-trainer/augment.c): view_of's rule without and with a V-view
 * cache, view_offset's range and spread, refusals of recipes and row
 * shapes, and augment_rows against sl_view_draw + sl_view_apply row by
 * row (u8 [H, W] and float32 [C, H, W] datasets written as .npy). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../student-trainer/augment.h"
#include "sl_err.h"

static char dir[] = "/tmp/test_augment.XXXXXX";

static const char *
tpath(const char *name)
{
	static char p[256];

	snprintf(p, sizeof p, "%s/%s", dir, name);
	return p;
}

/* A dataset of n rows of shape dims[0..nd) (after the row index). */
static sl_dataset *
make_ds(const char *name, const char *descr, uint32_t n, const uint64_t *dims,
    uint32_t nd, size_t esize, unsigned seed)
{
	uint64_t shape[4] = { n, 0, 0, 0 };
	size_t count = n;
	sl_errmsg why = { "" };
	sl_dataset *ds = NULL;
	unsigned char *v;

	for (uint32_t i = 0; i < nd; i++) {
		shape[i + 1] = dims[i];
		count *= dims[i];
	}
	v = malloc(count * esize);
	assert_non_null(v);
	srand(seed);
	for (size_t i = 0; i < count; i++) {
		if (esize == 1) {
			v[i] = (unsigned char)(rand() & 0xff);
		} else {
			float f = (float)rand() / (float)RAND_MAX - 0.5f;

			memcpy(v + 4 * i, &f, 4);
		}
	}
	assert_int_equal(sl_npy_write(tpath(name), descr, shape, nd + 1, v, &why), 0);
	free(v);
	assert_int_equal(sl_dataset_open(tpath(name), &ds, &why), 0);
	return ds;
}

static void
test_view_of(void **state)
{
	(void)state;
	/* No cache: view e in epoch e, whatever the sample. */
	for (uint32_t e = 0; e < 50; e++)
		for (uint64_t s = 0; s < 5; s++)
			assert_int_equal(view_of(e, s, 0, 0), e);
	/* A V-view cache: (e + offset) mod V, so V epochs see every view once. */
	for (uint32_t V = 1; V <= 9; V++)
		for (uint32_t off = 0; off < V; off++) {
			unsigned seen = 0;

			for (uint32_t e = 0; e < V; e++) {
				uint32_t v = view_of(e, 12345, V, off);

				assert_true(v < V);
				assert_int_equal(v, (e + off) % V);
				seen |= 1u << v;
			}
			assert_int_equal(seen, (1u << V) - 1);
			assert_int_equal(view_of(V + 3, 1, V, off), (3 + off) % V);
		}
	assert_int_equal(view_of(UINT32_MAX, 0, 8, 7), (uint32_t)((UINT32_MAX + 7ull) % 8));
}

static void
test_offset(void **state)
{
	unsigned hits[8] = { 0 };

	(void)state;
	assert_int_equal(view_offset(99, 0), 0);
	assert_int_equal(view_offset(99, 1), 0);
	for (uint64_t seed = 0; seed < 800; seed++) {
		uint32_t o = view_offset(seed, 8);

		assert_true(o < 8);
		assert_int_equal(o, view_offset(seed, 8)); /* a function of the seed */
		hits[o]++;
	}
	/* Seeds start the cycle at different views: every offset occurs. */
	for (int i = 0; i < 8; i++)
		assert_true(hits[i] > 50);
}

static void
test_refusals(void **state)
{
	const uint64_t flat[1] = { 16 }, img[2] = { 4, 4 };
	sl_dataset *f = make_ds("flat.npy", "|u1", 3, flat, 1, 1, 1);
	sl_dataset *g = make_ds("img.npy", "|u1", 3, img, 2, 1, 2);
	augment a;

	(void)state;
	assert_int_equal(augment_init(&a, "flip", 1, 0, f, 4), SL_EINVAL);
	assert_int_equal(augment_init(&a, "mirror", 1, 0, g, 4), SL_EINVAL);
	assert_int_equal(augment_init(&a, "crop=0", 1, 0, g, 4), SL_EINVAL);
	/* Off: NULL, "none"; then nothing is allocated, even for flat rows. */
	assert_int_equal(augment_init(&a, NULL, 1, 0, f, 4), 0);
	assert_false(a.on);
	assert_int_equal(augment_init(&a, "none", 1, 0, f, 4), 0);
	assert_false(a.on);
	assert_null(a.raw);
	augment_fini(&a);
	sl_dataset_close(&f);
	sl_dataset_close(&g);
}

/* augment_rows of a shuffled batch equals each row's view drawn alone. */
static void
check_rows(sl_dataset *ds, const char *recipe, uint64_t seed, int C, int H,
    int W, size_t esize, enum sl_dtype dt)
{
	const size_t rows[6] = { 5, 0, 7, 2, 2, 9 };
	const size_t bytes = (size_t)C * H * W * esize;
	sl_view_recipe r;
	sl_errmsg why = { "" };
	unsigned char *want = malloc(bytes), *scratch = malloc((size_t)H * W * esize);
	uint32_t views[6];
	augment a;
	int changed = 0;

	assert_non_null(want);
	assert_non_null(scratch);
	assert_int_equal(sl_view_recipe_parse(recipe, &r, &why), 0);
	assert_int_equal(augment_init(&a, recipe, seed, 0, ds, 6), 0);
	assert_true(a.on);
	assert_int_equal(a.C, C);
	assert_int_equal(a.H, H);
	assert_int_equal(a.W, W);
	for (uint32_t epoch = 0; epoch < 3; epoch++) {
		const unsigned char *got;

		augment_views(&a, epoch, rows, 6, views);
		for (int j = 0; j < 6; j++)
			assert_int_equal(views[j], epoch);
		got = augment_rows(&a, ds, rows, views, 6);
		for (int j = 0; j < 6; j++) {
			sl_view_params p;

			sl_view_draw(&r, seed, rows[j], epoch, H, W, &p);
			sl_view_apply(&p, dt, sl_dataset_row(ds, rows[j]), want,
			    scratch, C, H, W);
			assert_memory_equal(got + j * bytes, want, bytes);
			changed += memcmp(want, sl_dataset_row(ds, rows[j]), bytes) != 0;
		}
	}
	assert_true(changed > 9); /* the views are not the rows */
	augment_fini(&a);
	free(want);
	free(scratch);
}

static void
test_rows(void **state)
{
	const uint64_t img[2] = { 9, 11 }, chw[3] = { 3, 6, 5 };
	sl_dataset *u = make_ds("u8.npy", "|u1", 10, img, 2, 1, 3);
	sl_dataset *f = make_ds("f32.npy", "<f4", 10, chw, 3, 4, 4);

	(void)state;
	check_rows(u, "crop=2,flip", 17, 1, 9, 11, 1, SL_DTYPE_U8);
	check_rows(u, "rrc=0.3:1", 5, 1, 9, 11, 1, SL_DTYPE_U8);
	check_rows(f, "rrc=0.5:1,crop=1,flip", 8, 3, 6, 5, 4, SL_DTYPE_F32);
	sl_dataset_close(&u);
	sl_dataset_close(&f);
}

static int
cleanup(void **state)
{
	const char *names[] = { "flat.npy", "img.npy", "u8.npy", "f32.npy" };

	(void)state;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		unlink(tpath(names[i]));
	return rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_view_of),
		cmocka_unit_test(test_offset),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_rows),
	};

	if (mkdtemp(dir) == NULL)
		return 1;
	return cmocka_run_group_tests(tests, NULL, cleanup);
}

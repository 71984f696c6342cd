/* test_meta.c - sl_meta: the job-and-teachers blob of META_REPLY.
 *
 * Round trips keep every field bit for bit (preprocessing included); every
 * truncation, a trailing byte, each field out of its range and random
 * byte flips are refused (or decode to something valid), never a crash. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sl_meta.h"
#include "sl_rng.h"

static sl_store_job
job_sample(void)
{
	sl_store_job j;

	memset(&j, 0, sizeof j);
	strcpy(j.dataset_path, "/data/fashion/train-images-idx3-ubyte.gz");
	j.dataset.rows = 60000;
	j.dataset.ndim = 3;
	j.dataset.shape[0] = 60000;
	j.dataset.shape[1] = 28;
	j.dataset.shape[2] = 28;
	j.dataset.dtype = SL_DTYPE_U8;
	for (int i = 0; i < 32; i++)
		j.dataset.sha256[i] = (uint8_t)(i * 7 + 1);
	j.shard_rows = 1024;
	j.rows_first = 0;
	j.rows_end = 60000;
	return j;
}

static void
teachers_sample(sl_store_teacher t[3])
{
	memset(t, 0, 3 * sizeof *t);
	t[0].index = 0;
	strcpy(t[0].name, "mlp");
	memset(t[0].model_sha256, 'a', 64);
	t[0].temperature = 4.0f;
	t[0].fmt.encoding = SL_ENC_F32;
	t[0].fmt.classes = 10;
	t[1].index = 2;
	strcpy(t[1].name, "resnet-18.v2");
	memset(t[1].model_sha256, '7', 64);
	t[1].temperature = 0.3333333f;
	t[1].fmt.encoding = SL_ENC_TOPK;
	t[1].fmt.classes = 1000;
	t[1].fmt.k = 5;
	t[1].has_pre = 1;
	t[1].pre.scale = 1.0f / 255;
	t[1].pre.channels = 3;
	for (int c = 0; c < 3; c++) {
		t[1].pre.mean[c] = 0.485f + 0.01f * (float)c;
		t[1].pre.std[c] = 0.229f + 0.02f * (float)c;
	}
	t[2].index = 9;
	strcpy(t[2].name, "vit@b:16");
	memset(t[2].model_sha256, 'f', 64);
	t[2].temperature = 1e4f;
	t[2].fmt.encoding = SL_ENC_F16;
	t[2].fmt.classes = 2;
	/* A teacher with views: the map of 11 keys. */
	t[2].views = 8;
	t[2].view_recipe.pad = 4;
	t[2].view_recipe.flip = 1;
	t[2].view_recipe.rrc_min = 0.35f;
	t[2].view_recipe.rrc_max = 1.0f;
	t[2].view_seed = UINT64_MAX - 5;
}

static void
assert_teacher_equal(const sl_store_teacher *a, const sl_store_teacher *b)
{
	assert_int_equal(a->index, b->index);
	assert_string_equal(a->name, b->name);
	assert_string_equal(a->model_sha256, b->model_sha256);
	assert_memory_equal(&a->temperature, &b->temperature, sizeof(float));
	assert_int_equal(a->fmt.encoding, b->fmt.encoding);
	assert_int_equal(a->fmt.classes, b->fmt.classes);
	assert_int_equal(a->fmt.k, b->fmt.k);
	assert_int_equal(a->has_pre, b->has_pre);
	assert_int_equal(a->views, b->views);
	assert_memory_equal(&a->view_recipe, &b->view_recipe,
	    sizeof a->view_recipe);
	assert_true(a->view_seed == b->view_seed);
	if (a->has_pre) {
		uint8_t pa[SL_PREPROC_MAX_BYTES], pb[SL_PREPROC_MAX_BYTES];
		size_t na = sl_preproc_pack(&a->pre, pa);

		assert_int_equal(na, sl_preproc_pack(&b->pre, pb));
		assert_memory_equal(pa, pb, na);
	}
}

static void
test_round_trip(void **state)
{
	const sl_store_job j = job_sample();
	sl_store_teacher t[3], out[4];
	sl_proto_buf b = { 0 };
	sl_store_job jo;
	sl_errmsg why = { "" };
	size_t n = 99;

	(void)state;
	teachers_sample(t);
	assert_int_equal(sl_meta_encode(&j, t, 3, &b), 0);
	assert_int_equal(sl_meta_decode(b.p, b.len, &jo, out, 4, &n, &why), 0);
	assert_int_equal(n, 3);
	assert_string_equal(jo.dataset_path, j.dataset_path);
	assert_true(jo.dataset.rows == j.dataset.rows);
	assert_int_equal(jo.dataset.ndim, 3);
	assert_memory_equal(jo.dataset.shape, j.dataset.shape, 3 * sizeof(uint64_t));
	assert_int_equal(jo.dataset.dtype, SL_DTYPE_U8);
	assert_memory_equal(jo.dataset.sha256, j.dataset.sha256, 32);
	assert_int_equal(jo.shard_rows, 1024);
	assert_true(jo.rows_first == 0 && jo.rows_end == 60000);
	for (int i = 0; i < 3; i++)
		assert_teacher_equal(&out[i], &t[i]);
	/* No teacher yet is a valid answer too. */
	assert_int_equal(sl_meta_encode(&j, t, 0, &b), 0);
	assert_int_equal(sl_meta_decode(b.p, b.len, &jo, out, 4, &n, &why), 0);
	assert_int_equal(n, 0);
	/* Room for fewer teachers than sent. */
	assert_int_equal(sl_meta_encode(&j, t, 3, &b), 0);
	n = 77;
	assert_int_equal(sl_meta_decode(b.p, b.len, &jo, out, 2, &n, &why),
	    SL_ELIMIT);
	assert_int_equal(n, 77);
	assert_int_equal(sl_meta_encode(&j, t, SL_STORE_MAX_TEACHERS + 1, &b),
	    SL_EINVAL);
	sl_proto_buf_fini(&b);
}

static void
test_truncation_and_trailing(void **state)
{
	const sl_store_job j = job_sample();
	sl_store_teacher t[3], out[3];
	sl_proto_buf b = { 0 };
	sl_store_job jo;
	size_t n;
	uint8_t *p;

	(void)state;
	teachers_sample(t);
	assert_int_equal(sl_meta_encode(&j, t, 3, &b), 0);
	for (size_t len = 0; len < b.len; len++) {
		sl_errmsg why = { "" };

		p = malloc(len ? len : 1); /* exact size: ASan sees overreads */
		memcpy(p, b.p, len);
		assert_int_equal(sl_meta_decode(p, len, &jo, out, 3, &n, &why),
		    SL_EFORMAT);
		assert_true(why.text[0] != '\0');
		free(p);
	}
	p = malloc(b.len + 1);
	memcpy(p, b.p, b.len);
	p[b.len] = 0xc0;
	assert_int_equal(sl_meta_decode(p, b.len + 1, &jo, out, 3, &n, NULL),
	    SL_EFORMAT);
	free(p);
	sl_proto_buf_fini(&b);
}

/* One field of one value made bad; decode names it. */
static void
expect_bad(const sl_store_job *j, const sl_store_teacher *t, size_t nt,
    const char *in)
{
	sl_store_teacher out[3];
	sl_proto_buf b = { 0 };
	sl_errmsg why = { "" };
	sl_store_job jo;
	size_t n;

	assert_int_equal(sl_meta_encode(j, t, nt, &b), 0);
	assert_int_equal(sl_meta_decode(b.p, b.len, &jo, out, 3, &n, &why),
	    SL_EFORMAT);
	if (strstr(why.text, in) == NULL)
		fail_msg("reason '%s' lacks '%s'", why.text, in);
	sl_proto_buf_fini(&b);
}

static void
test_bad_fields(void **state)
{
	sl_store_job j = job_sample();
	sl_store_teacher t[3];

	(void)state;
	j.dataset.shape[0] = 5;
	teachers_sample(t);
	expect_bad(&j, t, 3, "shape[0] 5 is not rows 60000");
	j = job_sample();
	j.dataset.dtype = (enum sl_dtype)3;
	expect_bad(&j, t, 3, "'dtype'");
	j = job_sample();
	j.shard_rows = 0;
	expect_bad(&j, t, 3, "'shard_rows'");
	j = job_sample();
	j.rows_first = 2048; /* not a range */
	j.rows_end = 1024;
	expect_bad(&j, t, 3, "'end'");
	j = job_sample();
	j.rows_first = 1000; /* off a shard boundary */
	expect_bad(&j, t, 3, "not on shard boundaries");
	j = job_sample();
	j.rows_end = 60001; /* past the dataset */
	expect_bad(&j, t, 3, "'end'");
	j = job_sample();
	j.dataset.shape[2] = 0;
	expect_bad(&j, t, 3, "'shape' 2");
	j = job_sample();

	strcpy(t[1].name, "has space");
	expect_bad(&j, t, 3, "teacher 1 'name'");
	teachers_sample(t);
	t[0].model_sha256[10] = 'A';
	expect_bad(&j, t, 3, "teacher 0 'model'");
	teachers_sample(t);
	t[2].temperature = 0.0f;
	expect_bad(&j, t, 3, "teacher 2 'temp'");
	teachers_sample(t);
	t[2].temperature = NAN;
	expect_bad(&j, t, 3, "teacher 2 'temp'");
	teachers_sample(t);
	t[1].fmt.k = 1000;
	expect_bad(&j, t, 3, "no valid record format");
	teachers_sample(t);
	t[2].index = 2;
	expect_bad(&j, t, 3, "not ascending");
	teachers_sample(t);
	t[2].index = SL_STORE_MAX_TEACHERS;
	expect_bad(&j, t, 3, "'index'");
}

static void
test_random_flips(void **state)
{
	const sl_store_job j = job_sample();
	sl_store_teacher t[3], out[3];
	sl_proto_buf b = { 0 };
	sl_rng r;
	int decoded = 0;

	(void)state;
	teachers_sample(t);
	sl_rng_seed(&r, 42);
	assert_int_equal(sl_meta_encode(&j, t, 3, &b), 0);
	for (int i = 0; i < 20000; i++) {
		uint8_t *p = malloc(b.len);
		sl_store_job jo;
		size_t n;
		int rc;

		memcpy(p, b.p, b.len);
		for (int k = 0; k < 3; k++)
			p[sl_rng_below(&r, b.len)] ^= (uint8_t)(1u << sl_rng_below(&r, 8));
		rc = sl_meta_decode(p, b.len, &jo, out, 3, &n, NULL);
		assert_true(rc == 0 || rc == SL_EFORMAT || rc == SL_ELIMIT);
		if (rc == 0) {
			decoded++;
			assert_true(n <= 3);
			assert_true(jo.dataset.shape[0] == jo.dataset.rows);
			for (size_t k = 0; k < n; k++)
				assert_int_equal(sl_label_fmt_check(&out[k].fmt), 0);
		}
		free(p);
	}
	/* Flips inside the path, the digest or floats still decode. */
	assert_true(decoded > 0);
	sl_proto_buf_fini(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_truncation_and_trailing),
		cmocka_unit_test(test_bad_fields),
		cmocka_unit_test(test_random_flips),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

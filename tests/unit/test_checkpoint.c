/* Checkpoints: exact round trip; a flipped byte, a truncation, another run's
 * digest or another architecture is refused and leaves the caller's state
 * untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <errno.h>
#include <zlib.h>

#include "../../student-trainer/checkpoint.h"
#include "sl_file.h"

typedef struct fixture {
	char dir[64], path[96];
	sl_mlp *m;
	sl_optim o;
	sl_rng rng;
	uint8_t digest[32];
} fixture;

static int
setup(void **state)
{
	const int sizes[] = { 5, 4, 3 };
	fixture *f = calloc(1, sizeof *f);

	strcpy(f->dir, "/tmp/sl-ckpt-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof f->path, "%s/c.ckpt", f->dir);
	if (sl_mlp_new(sizes, 2, &f->m) != 0 ||
	    sl_optim_init(&f->o, SL_OPTIM_ADAM, f->m->nparams, 1e-3f) != 0)
		return -1;
	sl_rng_seed(&f->rng, 11);
	sl_mlp_init_params(f->m, &f->rng);
	for (size_t i = 0; i < f->m->nparams; i++) {
		f->o.m[i] = (float)i * 0.5f;
		f->o.v[i] = (float)i * 0.25f;
	}
	f->o.t = 77;
	memset(f->digest, 0xab, sizeof f->digest);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	fixture *f = *state;

	unlink(f->path);
	rmdir(f->dir);
	sl_mlp_free(&f->m);
	sl_optim_fini(&f->o);
	free(f);
	return 0;
}

/* A fresh state of the same shape, all zeros. */
static void
blank(fixture *f, sl_mlp **m, sl_optim *o)
{
	assert_int_equal(sl_mlp_new(f->m->sizes, f->m->nlayers, m), 0);
	assert_int_equal(sl_optim_init(o, SL_OPTIM_ADAM, f->m->nparams, 1.0f), 0);
}

static void
test_round_trip_is_exact(void **state)
{
	fixture *f = *state;
	const ckpt_pos pos = { 3, 17, 1234, 0.1 + 0.2, 1088 };
	ckpt_pos got;
	sl_mlp *m;
	sl_optim o;
	sl_rng r;
	sl_errmsg why = { "" };

	const uint8_t mask[5] = { 1, 0, 1, 1, 0 };
	uint8_t got_mask[5] = { 9, 9, 9, 9, 9 };

	assert_int_equal(ckpt_save(f->path, f->m, &f->o, &f->rng, &pos,
	    f->digest, "--lr=0.001", mask, 5, &why), 0);
	blank(f, &m, &o);
	assert_int_equal(ckpt_load(f->path, m, &o, &r, &got, f->digest, NULL,
	    got_mask, 5, &why), 0);
	assert_memory_equal(got_mask, mask, 5);
	assert_memory_equal(m->params, f->m->params, m->nparams * sizeof(float));
	assert_memory_equal(o.m, f->o.m, o.n * sizeof(float));
	assert_memory_equal(o.v, f->o.v, o.n * sizeof(float));
	assert_true(o.t == 77);
	assert_true(o.lr == 1e-3f);
	assert_memory_equal(r.s, f->rng.s, sizeof r.s);
	assert_int_equal(got.epoch, 3);
	assert_true(got.batch == 17 && got.step == 1234);
	/* the epoch's partial sums, bit for bit */
	assert_memory_equal(&got.loss_sum, &pos.loss_sum, sizeof got.loss_sum);
	assert_true(got.loss_rows == 1088);
	sl_mlp_free(&m);
	sl_optim_fini(&o);
}

static void
expect_refused(fixture *f, const void *buf, size_t len, const uint8_t *digest,
    int want)
{
	sl_mlp *m;
	sl_optim o;
	sl_rng r = { { 1, 2, 3, 4 } };
	ckpt_pos pos = { 9, 9, 9, 0, 0 };
	sl_errmsg why = { "" };

	blank(f, &m, &o);
	assert_int_equal(ckpt_decode(buf, len, m, &o, &r, &pos, digest, NULL,
	    NULL, 0, &why), want);
	assert_true(why.text[0] != '\0');
	/* untouched */
	for (size_t i = 0; i < m->nparams; i++)
		assert_true(m->params[i] == 0.0f);
	assert_true(r.s[0] == 1 && pos.epoch == 9 && o.t == 0);
	sl_mlp_free(&m);
	sl_optim_fini(&o);
}

static void
test_corruption_truncation_and_mismatch(void **state)
{
	fixture *f = *state;
	const ckpt_pos pos = { 1, 2, 3, 0, 0 };
	sl_errmsg why;
	unsigned char *buf;
	size_t len;
	uint8_t other[32];

	assert_int_equal(ckpt_save(f->path, f->m, &f->o, &f->rng, &pos,
	    f->digest, NULL, NULL, 0, &why), 0);
	assert_int_equal(sl_file_read(f->path, 1 << 20, (void **)&buf, &len,
	    &why), 0);

	/* every single flipped byte is caught */
	for (size_t i = 0; i < len; i += 7) {
		buf[i] ^= 0x10;
		expect_refused(f, buf, len, f->digest,
		    i < 8 ? SL_EFORMAT : SL_ECORRUPT);
		buf[i] ^= 0x10;
	}
	/* every truncation */
	for (size_t n = 0; n < len; n += 13)
		expect_refused(f, buf, n, f->digest,
		    n < 12 ? SL_EFORMAT : SL_ECORRUPT);
	memset(other, 0xcd, sizeof other);
	expect_refused(f, buf, len, other, SL_EMISMATCH);
	free(buf);

	/* another architecture */
	{
		const int sizes[] = { 5, 6, 3 };
		sl_mlp *m;
		sl_optim o;
		sl_rng r;
		ckpt_pos p;

		assert_int_equal(sl_mlp_new(sizes, 2, &m), 0);
		assert_int_equal(sl_optim_init(&o, SL_OPTIM_ADAM, m->nparams, 1), 0);
		assert_int_equal(ckpt_load(f->path, m, &o, &r, &p, f->digest,
		    NULL, NULL, 0, &why), SL_EMISMATCH);
		sl_mlp_free(&m);
		sl_optim_fini(&o);
	}
}

static void
test_missing_file_is_enoent(void **state)
{
	fixture *f = *state;
	ckpt_pos p;
	sl_rng r;
	sl_errmsg why;

	unlink(f->path);
	assert_int_equal(ckpt_load(f->path, f->m, &f->o, &r, &p, f->digest,
	    NULL, NULL, 0, &why), ENOENT);
}

/* A version-1 file (no partial sums, no settings) still loads, with the
 * sums 0: made here from a version-2 one by cutting those fields out. */
static void
test_version_1_still_loads(void **state)
{
	fixture *f = *state;
	const ckpt_pos pos = { 2, 4, 40, 7.5, 256 };
	const char *settings = "--lr=0.001";
	/* magic, nlayers + 3 sizes, kind + 6 hyper + t, rng, epoch batch step */
	const size_t sums_at = 8 + 4 + 3 * 4 + 4 + 6 * 4 + 8 + 4 * 8 + 4 + 8 + 8;
	unsigned char *buf, *v1;
	size_t len, n = 0, slen = strlen(settings);
	sl_mlp *m;
	sl_optim o;
	sl_rng r;
	ckpt_pos got;
	sl_errmsg why = { "" };
	uint32_t crc;

	assert_int_equal(ckpt_save(f->path, f->m, &f->o, &f->rng, &pos,
	    f->digest, settings, NULL, 0, &why), 0);
	assert_int_equal(sl_file_read(f->path, 1 << 20, (void **)&buf, &len,
	    &why), 0);
	v1 = malloc(len);
	assert_non_null(v1);
	/* up to the sums; the digest; the rest after the settings; new CRC */
	memcpy(v1, buf, sums_at);
	n = sums_at;
	memcpy(v1 + n, buf + sums_at + 16, 32);
	n += 32;
	memcpy(v1 + n, buf + sums_at + 16 + 32 + 4 + slen,
	    len - 4 - (sums_at + 16 + 32 + 4 + slen));
	n += len - 4 - (sums_at + 16 + 32 + 4 + slen);
	v1[7] = 1;
	crc = (uint32_t)crc32(0L, v1, (uInt)n);
	for (int i = 0; i < 4; i++)
		v1[n++] = (unsigned char)(crc >> (8 * i));
	blank(f, &m, &o);
	assert_int_equal(ckpt_decode(v1, n, m, &o, &r, &got, f->digest, settings,
	    NULL, 0, &why), 0);
	assert_int_equal(got.epoch, 2);
	assert_true(got.batch == 4 && got.step == 40);
	assert_true(got.loss_sum == 0.0 && got.loss_rows == 0);
	assert_memory_equal(m->params, f->m->params, m->nparams * sizeof(float));
	/* another run's version-1 file: refused, saying it cannot name why */
	{
		uint8_t other[32];

		memset(other, 0xcd, sizeof other);
		assert_int_equal(ckpt_decode(v1, n, m, &o, &r, &got, other,
		    settings, NULL, 0, &why), SL_EMISMATCH);
		assert_non_null(strstr(why.text, "version-1"));
	}
	sl_mlp_free(&m);
	sl_optim_fini(&o);
	free(v1);
	free(buf);
}

/* Another run's checkpoint: the refusal names the setting and both values. */
static void
test_mismatch_names_the_setting(void **state)
{
	fixture *f = *state;
	const ckpt_pos pos = { 0, 5, 5, 0, 0 };
	uint8_t other[32];
	ckpt_pos p;
	sl_rng r;
	sl_errmsg why = { "" };

	memset(other, 0xcd, sizeof other);
	assert_int_equal(ckpt_save(f->path, f->m, &f->o, &f->rng, &pos,
	    f->digest, "--arch=5-4-3\n--lr=0.01\n--seed=1", NULL, 0, &why), 0);
	assert_int_equal(ckpt_load(f->path, f->m, &f->o, &r, &p, other,
	    "--arch=5-4-3\n--lr=0.001\n--seed=1", NULL, 0, &why), SL_EMISMATCH);
	assert_non_null(strstr(why.text, "--lr is 0.01 there, 0.001 here"));
	assert_int_equal(ckpt_load(f->path, f->m, &f->o, &r, &p, other,
	    "--arch=5-4-3\n--lr=0.01\n--seed=1\n--alpha=0.5", NULL, 0, &why),
	    SL_EMISMATCH);
	assert_non_null(strstr(why.text, "--alpha is absent there, 0.5 here"));
}

/* Version 3: a network with running statistics (a CNN's BatchNorm) round
 * trips them and their counts exactly; a run whose network has them refuses
 * an MLP's version-2 file, and one with other counts refuses the file;
 * a flipped statistic fails the CRC. */
static void
test_running_statistics_round_trip(void **state)
{
	fixture *f = *state;
	const ckpt_pos pos = { 1, 2, 3, 0.0, 0 };
	const int sizes[] = { 5, 4, 3 };
	float bufs[6] = { 0.5f, -1.25f, 3.0f, 1.0f, 2.0f, 0.125f };
	int64_t counts[2] = { 41, 1234567890123LL };
	float got_bufs[6] = { 0 };
	int64_t got_counts[2] = { 0 };
	ckpt_net net = { 2, sizes, f->m->params, f->m->nparams, bufs, 6,
		counts, 2 };
	ckpt_net back = { 2, sizes, NULL, f->m->nparams, got_bufs, 6,
		got_counts, 2 };
	sl_mlp *m;
	sl_optim o;
	sl_rng r;
	ckpt_pos p;
	sl_errmsg why = { "" };

	(void)state;
	blank(f, &m, &o);
	back.params = m->params;
	assert_int_equal(ckpt_save_net(f->path, &net, &f->o, &f->rng, &pos,
	    f->digest, NULL, NULL, 0, &why), 0);
	assert_int_equal(ckpt_load_net(f->path, &back, &o, &r, &p, f->digest,
	    NULL, NULL, 0, &why), 0);
	assert_memory_equal(got_bufs, bufs, sizeof bufs);
	assert_true(got_counts[0] == 41 && got_counts[1] == 1234567890123LL);
	assert_memory_equal(m->params, f->m->params, m->nparams * sizeof(float));
	/* another number of counts: refused, nothing written */
	back.ncounts = 1;
	got_counts[0] = 0;
	assert_int_equal(ckpt_load_net(f->path, &back, &o, &r, &p, f->digest,
	    NULL, NULL, 0, &why), SL_EMISMATCH);
	assert_non_null(strstr(why.text, "batch counts"));
	assert_true(got_counts[0] == 0);
	back.ncounts = 2;
	/* an MLP's checkpoint (version 2) has none */
	assert_int_equal(ckpt_save(f->path, f->m, &f->o, &f->rng, &pos,
	    f->digest, NULL, NULL, 0, &why), 0);
	assert_int_equal(ckpt_load_net(f->path, &back, &o, &r, &p, f->digest,
	    NULL, NULL, 0, &why), SL_EMISMATCH);
	assert_non_null(strstr(why.text, "no running statistics"));
	/* a flipped byte in the statistics */
	{
		void *buf;
		size_t len;

		assert_int_equal(ckpt_save_net(f->path, &net, &f->o, &f->rng, &pos,
		    f->digest, NULL, NULL, 0, &why), 0);
		assert_int_equal(sl_file_read(f->path, 1 << 20, &buf, &len, &why),
		    0);
		/* the statistics follow the (empty) mask and its length */
		((unsigned char *)buf)[len - 4 - 3 * 4 * f->m->nparams - 16 - 4 -
		    20] ^= 0x10;
		assert_int_equal(ckpt_decode_net(buf, len, &back, &o, &r, &p,
		    f->digest, NULL, NULL, 0, &why), SL_ECORRUPT);
		free(buf);
	}
	sl_mlp_free(&m);
	sl_optim_fini(&o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip_is_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corruption_truncation_and_mismatch, setup, teardown),
		cmocka_unit_test_setup_teardown(test_missing_file_is_enoent, setup, teardown),
		cmocka_unit_test_setup_teardown(test_mismatch_names_the_setting, setup, teardown),
		cmocka_unit_test_setup_teardown(test_version_1_still_loads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_running_statistics_round_trip, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

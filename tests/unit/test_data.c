/* test_data.c - sl_data: .npy / IDX[.gz] datasets and labels.
 *
 * Round trips through sl_npy_write and hand-built IDX files, preprocessing,
 * fingerprints, and one test per malformed input, each asserting the exact
 * return code and that why names the problem.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "sl_data.h"

/* ASan reserves terabytes of address space, so RLIMIT_AS cannot be used
 * under it. */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_BUILD 1
#endif
#endif

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist/"

static char dir[64];

static const char *
tpath(const char *name)
{
	static char buf[8][256];
	static int next;
	char *p = buf[next++ % 8];

	snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

static void
put_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	if (len > 0)
		assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static void
put_gz(const char *path, const void *buf, size_t len)
{
	gzFile g = gzopen(path, "wb");

	assert_non_null(g);
	if (len > 0)
		assert_int_equal(gzwrite(g, buf, (unsigned)len), (int)len);
	assert_int_equal(gzclose(g), Z_OK);
}

static uint8_t *
get_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* A .npy image with an arbitrary (possibly broken) dict. */
static size_t
make_npy(uint8_t *out, size_t cap, int major, const char *dict,
    const void *data, size_t dlen)
{
	size_t hl = strlen(dict), pre = major == 1 ? 10 : 12;

	assert_true(pre + hl + dlen <= cap);
	memcpy(out, "\x93NUMPY", 6);
	out[6] = (uint8_t)major;
	out[7] = 0;
	if (major == 1) {
		out[8] = (uint8_t)hl;
		out[9] = (uint8_t)(hl >> 8);
	} else {
		out[8] = (uint8_t)hl;
		out[9] = (uint8_t)(hl >> 8);
		out[10] = (uint8_t)(hl >> 16);
		out[11] = (uint8_t)(hl >> 24);
	}
	memcpy(out + pre, dict, hl);
	if (dlen > 0)
		memcpy(out + pre + hl, data, dlen);
	return pre + hl + dlen;
}

/* An IDX image: magic, type, ndim, big-endian dims, then data as given. */
static size_t
make_idx(uint8_t *out, size_t cap, uint8_t type, uint8_t ndim,
    const uint32_t *dims, const void *data, size_t dlen)
{
	size_t at = 4;

	assert_true(4 + 4 * (size_t)ndim + dlen <= cap);
	out[0] = 0, out[1] = 0, out[2] = type, out[3] = ndim;
	for (uint8_t i = 0; i < ndim; i++) {
		out[at++] = (uint8_t)(dims[i] >> 24);
		out[at++] = (uint8_t)(dims[i] >> 16);
		out[at++] = (uint8_t)(dims[i] >> 8);
		out[at++] = (uint8_t)dims[i];
	}
	if (dlen > 0)
		memcpy(out + at, data, dlen);
	return at + dlen;
}

/* Open path expecting failure with code want; why must say something. */
static void
expect_open_fails(const char *path, int want)
{
	sl_dataset *ds = NULL;
	sl_errmsg why = { "" };

	assert_int_equal(sl_dataset_open(path, &ds, &why), want);
	assert_null(ds);
	assert_true(why.text[0] != '\0');
}

static void
expect_labels_fail(const char *path, int want)
{
	int32_t *lab = NULL;
	size_t n = 12345;
	sl_errmsg why = { "" };

	assert_int_equal(sl_labels_load(path, &lab, &n, &why), want);
	assert_null(lab);
	assert_int_equal(n, 12345);
	assert_true(why.text[0] != '\0');
}

static void
expect_npy_parse_fails(const void *buf, size_t len, int want)
{
	sl_array_info ai;
	sl_errmsg why = { "" };

	assert_int_equal(sl_npy_parse(buf, len, &ai, &why), want);
	assert_true(why.text[0] != '\0');
}

static void
expect_idx_parse_fails(const void *buf, size_t len, int want)
{
	sl_array_info ai;
	sl_errmsg why = { "" };

	assert_int_equal(sl_idx_parse(buf, len, &ai, &why), want);
	assert_true(why.text[0] != '\0');
}

/* ---- round trips -------------------------------------------------------- */

static void
test_npy_write_layout(void **state)
{
	static const uint8_t v[12] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255 };
	const uint64_t shape[3] = { 3, 2, 2 };
	sl_array_info ai;
	sl_errmsg why = { "" };
	uint8_t *img;
	size_t len;

	(void)state;
	assert_int_equal(sl_npy_write(tpath("layout.npy"), "|u1", shape, 3, v,
	    &why), 0);
	img = get_file(tpath("layout.npy"), &len);
	/* NumPy's rule: data starts at a multiple of 64, header ends '\n'. */
	assert_int_equal(img[6], 1);
	assert_int_equal(img[7], 0);
	assert_int_equal(sl_npy_parse(img, len, &ai, &why), 0);
	assert_int_equal(ai.data_offset % 64, 0);
	assert_int_equal(img[ai.data_offset - 1], '\n');
	assert_string_equal(ai.descr, "|u1");
	assert_int_equal(ai.ndim, 3);
	assert_int_equal(ai.shape[0], 3);
	assert_int_equal(ai.shape[2], 2);
	assert_int_equal(ai.count, 12);
	assert_int_equal(len, ai.data_offset + 12);
	assert_memory_equal(img + ai.data_offset, v, 12);
	assert_non_null(strstr((char *)img + 10,
	    "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 2, 2), }"));
	free(img);
	/* No temp file is left behind. */
	{
		char tmp[300];
		struct stat st;

		snprintf(tmp, sizeof tmp, "%s.tmp.%ld", tpath("layout.npy"),
		    (long)getpid());
		assert_int_not_equal(stat(tmp, &st), 0);
	}
}

static void
test_roundtrip_u8(void **state)
{
	static const uint8_t v[12] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 255 };
	const uint64_t shape[3] = { 3, 2, 2 };
	uint64_t got[SL_DATA_MAX_DIMS];
	sl_dataset *ds = NULL;
	sl_errmsg why = { "" };

	(void)state;
	assert_int_equal(sl_npy_write(tpath("u8.npy"), "|u1", shape, 3, v,
	    &why), 0);
	assert_int_equal(sl_dataset_open(tpath("u8.npy"), &ds, &why), 0);
	assert_int_equal(sl_dataset_rows(ds), 3);
	assert_int_equal(sl_dataset_dim(ds), 4);
	assert_int_equal(sl_dataset_dtype(ds), SL_DTYPE_U8);
	assert_int_equal(sl_dataset_shape(ds, got), 3);
	assert_int_equal(got[0], 3);
	assert_int_equal(got[1], 2);
	assert_int_equal(got[2], 2);
	assert_memory_equal(sl_dataset_row(ds, 0), v, 4);
	assert_memory_equal(sl_dataset_row(ds, 2), v + 8, 4);
	sl_dataset_close(&ds);
	assert_null(ds);
	sl_dataset_close(&ds); /* NULL is fine */
	sl_dataset_close(NULL);
}

static void
test_roundtrip_f32(void **state)
{
	static const float v[12] = { 0.0f, -1.5f, 3.25f, 1e30f, -0.0f, 7.0f,
	    1e-30f, 2.5f, -8.0f, 100.0f, 0.125f, -3.0f };
	const uint64_t shape[2] = { 4, 3 };
	sl_dataset *ds = NULL;
	sl_errmsg why = { "" };
	float out[12];

	(void)state;
	assert_int_equal(sl_npy_write(tpath("f4.npy"), "<f4", shape, 2, v,
	    &why), 0);
	assert_int_equal(sl_dataset_open(tpath("f4.npy"), &ds, &why), 0);
	assert_int_equal(sl_dataset_rows(ds), 4);
	assert_int_equal(sl_dataset_dim(ds), 3);
	assert_int_equal(sl_dataset_dtype(ds), SL_DTYPE_F32);
	assert_memory_equal(sl_dataset_row(ds, 1), v + 3, 12);
	/* Default preprocessing for float32 is the identity. */
	sl_dataset_rows_f32(ds, NULL, 0, 4, NULL, out);
	assert_memory_equal(out, v, sizeof v);
	sl_dataset_close(&ds);
}

static void
test_roundtrip_1d_and_empty(void **state)
{
	static const float v[5] = { 1, 2, 3, 4, 5 };
	const uint64_t s1[1] = { 5 }, s0[2] = { 0, 7 };
	sl_dataset *ds = NULL;
	sl_errmsg why = { "" };
	float out[5];

	(void)state;
	assert_int_equal(sl_npy_write(tpath("1d.npy"), "<f4", s1, 1, v, &why),
	    0);
	assert_int_equal(sl_dataset_open(tpath("1d.npy"), &ds, &why), 0);
	assert_int_equal(sl_dataset_rows(ds), 5);
	assert_int_equal(sl_dataset_dim(ds), 1);
	sl_dataset_rows_f32(ds, NULL, 2, 3, NULL, out);
	assert_true(out[0] == 3.0f && out[1] == 4.0f && out[2] == 5.0f);
	sl_dataset_close(&ds);

	assert_int_equal(sl_npy_write(tpath("empty.npy"), "|u1", s0, 2, NULL,
	    &why), 0);
	assert_int_equal(sl_dataset_open(tpath("empty.npy"), &ds, &why), 0);
	assert_int_equal(sl_dataset_rows(ds), 0);
	assert_int_equal(sl_dataset_dim(ds), 7);
	sl_dataset_close(&ds);
}

static void
test_npy_versions_and_header_forms(void **state)
{
	static const uint8_t v[6] = { 1, 2, 3, 4, 5, 6 };
	static const char *const dicts[] = {
		"{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }",
		"{\"shape\":(2,3),\"descr\":\"|u1\",\"fortran_order\":False}",
		("{ 'fortran_order' : False , 'shape' : ( 2L , 3L , ) ,"
		    " 'descr' : '<u1' }   \n"),
		"{'descr': '=u1', 'fortran_order': False, 'shape': (2, 3)}\n",
	};
	uint8_t img[512];
	sl_array_info ai;
	sl_errmsg why = { "" };
	sl_dataset *ds = NULL;

	(void)state;
	for (int major = 1; major <= 3; major++) {
		for (size_t i = 0; i < sizeof dicts / sizeof dicts[0]; i++) {
			size_t len = make_npy(img, sizeof img, major, dicts[i],
			    v, 6);
			why.text[0] = '\0';
			assert_int_equal(sl_npy_parse(img, len, &ai, &why), 0);
			assert_string_equal(ai.descr, "|u1");
			assert_int_equal(ai.ndim, 2);
			assert_int_equal(ai.shape[0], 2);
			assert_int_equal(ai.shape[1], 3);
			assert_int_equal(ai.count, 6);
			assert_int_equal(ai.data_offset, len - 6);
		}
	}
	/* v2 through the file path too. */
	{
		size_t len = make_npy(img, sizeof img, 2, dicts[0], v, 6);
		put_file(tpath("v2.npy"), img, len);
		assert_int_equal(sl_dataset_open(tpath("v2.npy"), &ds, &why),
		    0);
		assert_memory_equal(sl_dataset_row(ds, 1), v + 3, 3);
		sl_dataset_close(&ds);
	}
	/* Fortran order with one dimension is the same bytes: accepted. */
	{
		size_t len = make_npy(img, sizeof img, 1,
		    "{'descr': '|u1', 'fortran_order': True, 'shape': (6,), }",
		    v, 6);
		assert_int_equal(sl_npy_parse(img, len, &ai, &why), 0);
		assert_int_equal(ai.count, 6);
	}
	/* A misaligned float32 file still reads correctly. */
	{
		float f[2] = { 1.5f, -2.25f }, out[2];
		size_t len = make_npy(img, sizeof img, 1,
		    "{'descr':'<f4','fortran_order':False,'shape':(2,)}", f,
		    sizeof f);
		put_file(tpath("unaligned.npy"), img, len);
		assert_int_equal(sl_dataset_open(tpath("unaligned.npy"), &ds,
		    &why), 0);
		sl_dataset_rows_f32(ds, NULL, 0, 2, NULL, out);
		assert_true(out[0] == 1.5f && out[1] == -2.25f);
		sl_dataset_close(&ds);
	}
}

static void
test_idx_roundtrip(void **state)
{
	const uint32_t dims[3] = { 3, 2, 2 };
	uint8_t v[12], img[128];
	sl_dataset *ds = NULL;
	sl_errmsg why = { "" };
	uint64_t shape[SL_DATA_MAX_DIMS];
	size_t len;

	(void)state;
	for (int i = 0; i < 12; i++)
		v[i] = (uint8_t)(i * 20 + 3);
	len = make_idx(img, sizeof img, 0x08, 3, dims, v, 12);
	put_file(tpath("plain-idx3-ubyte"), img, len);
	put_gz(tpath("gz-idx3-ubyte.gz"), img, len);
	for (int gz = 0; gz < 2; gz++) {
		const char *p = gz ? tpath("gz-idx3-ubyte.gz") :
		    tpath("plain-idx3-ubyte");
		assert_int_equal(sl_dataset_open(p, &ds, &why), 0);
		assert_int_equal(sl_dataset_rows(ds), 3);
		assert_int_equal(sl_dataset_dim(ds), 4);
		assert_int_equal(sl_dataset_dtype(ds), SL_DTYPE_U8);
		assert_int_equal(sl_dataset_shape(ds, shape), 3);
		assert_int_equal(shape[1], 2);
		assert_memory_equal(sl_dataset_row(ds, 0), v, 12);
		sl_dataset_close(&ds);
	}
}

static void
test_idx_f32_roundtrip(void **state)
{
	const float v[6] = { 1.0f, -2.5f, 3.75f, 1e20f, -0.0f, 0.1f };
	const uint32_t dims[2] = { 2, 3 };
	uint8_t be[24], img[128];
	sl_dataset *ds = NULL;
	sl_errmsg why = { "" };
	float out[6];
	size_t len;

	(void)state;
	for (int i = 0; i < 6; i++) {
		uint32_t u;
		memcpy(&u, &v[i], 4);
		be[4 * i] = (uint8_t)(u >> 24);
		be[4 * i + 1] = (uint8_t)(u >> 16);
		be[4 * i + 2] = (uint8_t)(u >> 8);
		be[4 * i + 3] = (uint8_t)u;
	}
	len = make_idx(img, sizeof img, 0x0D, 2, dims, be, sizeof be);
	put_file(tpath("f-idx2-float"), img, len);
	put_gz(tpath("f-idx2-float.gz"), img, len);
	for (int gz = 0; gz < 2; gz++) {
		assert_int_equal(sl_dataset_open(gz ? tpath("f-idx2-float.gz") :
		    tpath("f-idx2-float"), &ds, &why), 0);
		assert_int_equal(sl_dataset_dtype(ds), SL_DTYPE_F32);
		assert_int_equal(sl_dataset_rows(ds), 2);
		assert_int_equal(sl_dataset_dim(ds), 3);
		assert_memory_equal(sl_dataset_row(ds, 0), v, sizeof v);
		sl_dataset_rows_f32(ds, NULL, 0, 2, NULL, out);
		assert_memory_equal(out, v, sizeof v);
		sl_dataset_close(&ds);
	}
}

/* Per-channel preprocessing: rows [C, H, W] take mean[c] and std[c] on
 * their c-th plane, for uint8 and float32 rows, as a naive loop does. */
static void
test_rows_f32_channels(void **state)
{
	enum { N = 2, C = 3, P = 4, D = C * P };
	const float mean[C] = { 0.485f, 0.456f, 0.406f };
	const float std[C] = { 0.229f, 0.224f, 0.225f };
	uint8_t u8[N * D];
	float f32[N * D], out[N * D];
	sl_preproc pre = sl_preproc_default(SL_DTYPE_U8);
	sl_errmsg why = { "" };

	(void)state;
	for (int j = 0; j < N * D; j++) {
		u8[j] = (uint8_t)(j * 37 % 256);
		f32[j] = (float)j * 0.125f - 2.0f;
	}
	assert_int_equal(sl_preproc_set(&pre, mean, C, std, C, &why), 0);
	assert_int_equal(pre.channels, C);
	sl_rows_f32(u8, SL_DTYPE_U8, N, D, &pre, out);
	for (int j = 0; j < N * D; j++) {
		int c = j % D / P;
		float want = ((float)u8[j] * pre.scale - mean[c]) / std[c];

		assert_true(out[j] == want);
	}
	pre.scale = 2.0f;
	sl_rows_f32(f32, SL_DTYPE_F32, N, D, &pre, out);
	for (int j = 0; j < N * D; j++) {
		int c = j % D / P;

		assert_true(out[j] == (f32[j] * 2.0f - mean[c]) / std[c]);
	}
	/* One std for every channel. */
	assert_int_equal(sl_preproc_set(&pre, mean, C, std, 1, &why), 0);
	assert_true(pre.std[0] == std[0] && pre.std[2] == std[0] &&
	    pre.mean[2] == mean[2]);
}

/* The wire and cache form: 4 * (1 + 2C) bytes, little-endian, and nothing
 * else is read back. */
static void
test_preproc_pack(void **state)
{
	const float mean[3] = { 0.5f, -1.0f, 3.25f }, std[3] = { 2.0f, 0.5f,
	    1.0f };
	uint8_t b[SL_PREPROC_MAX_BYTES];
	sl_preproc p = sl_preproc_default(SL_DTYPE_F32), q;
	sl_errmsg why = { "" };
	static const size_t bad[] = { 0, 4, 8, 13, 16, 20 + 1,
	    SL_PREPROC_MAX_BYTES + 8 };

	(void)state;
	assert_int_equal(sl_preproc_pack(&p, b), 12);
	/* 1.0f little-endian, then 0.0f, then 1.0f: the 12-byte form HELLO
	 * had before lists, so old caches read the same. */
	assert_int_equal(b[3], 0x3f);
	assert_int_equal(b[2], 0x80);
	assert_int_equal(b[7], 0x00);
	assert_int_equal(b[11], 0x3f);
	assert_int_equal(sl_preproc_set(&p, mean, 3, std, 3, &why), 0);
	assert_int_equal(sl_preproc_pack(&p, b), 28);
	assert_int_equal(sl_preproc_unpack(b, 28, &q), 0);
	assert_int_equal(q.channels, 3);
	for (int c = 0; c < 3; c++)
		assert_true(q.mean[c] == mean[c] && q.std[c] == std[c]);
	assert_true(q.scale == p.scale);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_int_equal(sl_preproc_unpack(b, bad[i], &q), SL_EINVAL);
	assert_int_equal(sl_preproc_unpack(b, SL_PREPROC_MAX_BYTES, &q), 0);
	assert_int_equal(q.channels, SL_PREPROC_MAX_CHANNELS);
}

/* Lists from options: parsing, pairing, and what cannot run. */
static void
test_preproc_options(void **state)
{
	static const char *bad[] = { "", ",", "1,", ",1", "a", "1,,2", "inf",
	    "nan", "1e39", "1 2", "0.5;0.5",
	    "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17" };
	float v[SL_PREPROC_MAX_CHANNELS];
	uint32_t n = 0;
	sl_preproc p, base = sl_preproc_default(SL_DTYPE_U8);
	sl_errmsg why = { "" };
	char text[256];

	(void)state;
	assert_int_equal(sl_floats_parse("0.485,0.456,-1e-3", v, 16, &n, &why), 0);
	assert_int_equal(n, 3);
	assert_true(v[0] == 0.485f && v[1] == 0.456f && v[2] == -1e-3f);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why.text[0] = '\0';
		assert_int_equal(sl_floats_parse(bad[i], v, 16, &n, &why),
		    SL_EINVAL);
		assert_non_null(strstr(why.text, bad[i]));
	}

	/* A list given alone pairs with the base's single value. */
	assert_int_equal(sl_preproc_from_options(&p, &base, NAN, NULL,
	    "0.2,0.3,0.4", &why), 0);
	assert_int_equal(p.channels, 3);
	assert_true(p.mean[2] == 0.0f && p.std[1] == 0.3f &&
	    p.scale == base.scale);
	/* Nothing given and no base: all NaN, one channel, for the broker. */
	assert_int_equal(sl_preproc_from_options(&p, NULL, NAN, NULL, NULL,
	    &why), 0);
	assert_true(p.channels == 1 && isnan(p.scale) && isnan(p.mean[0]) &&
	    isnan(p.std[0]));
	sl_preproc_fill(&p, SL_DTYPE_U8);
	assert_true(p.scale == 1.0f / 255.0f && p.mean[0] == 0.0f &&
	    p.std[0] == 1.0f);
	assert_int_equal(sl_preproc_from_options(&p, NULL, NAN, "1,2",
	    "1,2,3", &why), SL_EINVAL);
	assert_non_null(strstr(why.text, "2 means and 3 stds"));
	assert_int_equal(sl_preproc_from_options(&p, NULL, NAN, NULL, "1,0",
	    &why), SL_EINVAL);
	assert_non_null(strstr(why.text, "--input-std"));
	assert_int_equal(sl_preproc_from_options(&p, NULL, 2.0f, "x", NULL,
	    &why), SL_EINVAL);
	assert_non_null(strstr(why.text, "--input-mean"));

	assert_int_equal(sl_preproc_from_options(&p, &base, 0.5f, "1,2,3",
	    "4,5,6", &why), 0);
	sl_preproc_format(&p, text, sizeof text);
	assert_string_equal(text, "scale 0.5 mean 1,2,3 std 4,5,6");
	/* Always terminated, even cut short. */
	sl_preproc_format(&p, text, 10);
	assert_int_equal(strlen(text), 9);
}

/* Several channels need rows whose first dimension is the channel count. */
static void
test_preproc_check(void **state)
{
	const uint64_t nchw[4] = { 10, 3, 4, 4 }, nhw[3] = { 10, 4, 4 },
	    flat[2] = { 10, 48 };
	const float mean[3] = { 0, 0, 0 }, std[3] = { 1, 1, 1 };
	sl_preproc p = sl_preproc_default(SL_DTYPE_U8);
	sl_errmsg why = { "" };

	(void)state;
	assert_int_equal(sl_preproc_check(&p, nhw, 3, &why), 0);
	assert_int_equal(sl_preproc_set(&p, mean, 3, std, 3, &why), 0);
	assert_int_equal(sl_preproc_check(&p, nchw, 4, &why), 0);
	assert_int_equal(sl_preproc_check(&p, NULL, 0, &why), 0);
	assert_int_equal(sl_preproc_check(&p, nhw, 3, &why), SL_EINVAL);
	assert_non_null(strstr(why.text, "[4, 4]"));
	assert_int_equal(sl_preproc_check(&p, flat, 2, &why), SL_EINVAL);
	assert_non_null(strstr(why.text, "[48]"));
	p.std[1] = 0.0f;
	assert_int_equal(sl_preproc_check(&p, nchw, 4, &why), SL_EINVAL);
	p.std[1] = 1.0f;
	p.mean[2] = NAN;
	assert_int_equal(sl_preproc_check(&p, nchw, 4, &why), SL_EINVAL);
}

static void
test_rows_f32_preproc(void **state)
{
	static const uint8_t v[3 * 4] = { 0, 255, 128, 1, 10, 20, 30, 40, 200,
	    100, 50, 25 };
	const uint64_t shape[2] = { 3, 4 };
	const size_t idx[3] = { 2, 0, 2 };
	sl_preproc pre = { .scale = 1.0f / 255.0f, .channels = 1,
	    .mean = { 0.5f }, .std = { 0.25f } };
	sl_preproc def = sl_preproc_default(SL_DTYPE_U8);
	sl_dataset *ds = NULL;
	sl_errmsg why = { "" };
	float out[3 * 4], guard = 12345.0f, tail[1];

	(void)state;
	assert_true(def.scale == 1.0f / 255.0f && def.channels == 1 &&
	    def.mean[0] == 0.0f && def.std[0] == 1.0f);
	def = sl_preproc_default(SL_DTYPE_F32);
	assert_true(def.scale == 1.0f && def.channels == 1 &&
	    def.mean[0] == 0.0f && def.std[0] == 1.0f);

	assert_int_equal(sl_npy_write(tpath("pre.npy"), "|u1", shape, 2, v,
	    &why), 0);
	assert_int_equal(sl_dataset_open(tpath("pre.npy"), &ds, &why), 0);
	tail[0] = guard;
	sl_dataset_rows_f32(ds, idx, 0, 3, &pre, out);
	for (int k = 0; k < 3; k++)
		for (int j = 0; j < 4; j++) {
			float x = (float)v[idx[k] * 4 + (size_t)j];
			float want = (x * pre.scale - pre.mean[0]) / pre.std[0];
			assert_true(out[k * 4 + j] == want);
			/* and against the real-number value */
			assert_true(fabs((double)out[k * 4 + j] -
			    ((double)x / 255.0 - 0.5) / 0.25) < 1e-5);
		}
	assert_true(out[1 * 4 + 1] > 1.99f && out[1 * 4 + 1] < 2.01f);
	assert_true(out[1 * 4 + 0] == -2.0f);
	assert_true(tail[0] == guard);
	/* Range form with defaults: x / 255. */
	sl_dataset_rows_f32(ds, NULL, 1, 1, NULL, out);
	for (int j = 0; j < 4; j++)
		assert_true(out[j] == (float)v[4 + j] * (1.0f / 255.0f));
	sl_dataset_close(&ds);
}

/* sl_npy_begin/append/finish: the file written in pieces equals the one
 * written at once; a wrong byte count writes nothing. */
static void
test_npy_pieces(void **state)
{
	const uint64_t shape[2] = { 5, 3 };
	float v[15];
	sl_npy_writer w;
	sl_dataset *a = NULL, *b = NULL;
	sl_errmsg why = { "" };
	struct stat st;

	(void)state;
	for (int i = 0; i < 15; i++)
		v[i] = (float)i * 0.5f - 2.0f;
	assert_int_equal(sl_npy_write(tpath("whole.npy"), "<f4", shape, 2, v,
	    &why), 0);
	assert_int_equal(sl_npy_begin(&w, tpath("parts.npy"), "<f4", shape, 2,
	    &why), 0);
	assert_int_equal(sl_npy_append(&w, v, 4 * sizeof *v, &why), 0);
	assert_int_equal(sl_npy_append(&w, v + 4, 0, &why), 0);
	assert_int_equal(sl_npy_append(&w, v + 4, 11 * sizeof *v, &why), 0);
	assert_int_equal(sl_npy_append(&w, v, 1, &why), SL_EINVAL);
	assert_int_equal(sl_npy_finish(&w, &why), 0);
	assert_int_equal(sl_dataset_open(tpath("whole.npy"), &a, &why), 0);
	assert_int_equal(sl_dataset_open(tpath("parts.npy"), &b, &why), 0);
	assert_memory_equal(sl_dataset_row(a, 0), sl_dataset_row(b, 0),
	    sizeof v);
	sl_dataset_close(&a);
	sl_dataset_close(&b);
	/* Short: finish refuses, no file. */
	assert_int_equal(sl_npy_begin(&w, tpath("short.npy"), "<f4", shape, 2,
	    &why), 0);
	assert_int_equal(sl_npy_append(&w, v, 14 * sizeof *v, &why), 0);
	assert_int_equal(sl_npy_finish(&w, &why), SL_EINVAL);
	assert_non_null(strstr(why.text, "4 bytes of data missing"));
	assert_int_not_equal(stat(tpath("short.npy"), &st), 0);
	/* Aborted: no file either. */
	assert_int_equal(sl_npy_begin(&w, tpath("gone.npy"), "<f4", shape, 2,
	    &why), 0);
	sl_npy_abort(&w);
	assert_int_not_equal(stat(tpath("gone.npy"), &st), 0);
}

static void
test_fingerprint(void **state)
{
	uint8_t v[2 * 6];
	const uint64_t shape[2] = { 2, 6 };
	const uint32_t dims[2] = { 2, 6 };
	sl_fingerprint a, b, c, d;
	sl_dataset *ds = NULL;
	sl_errmsg why = { "" };
	uint8_t img[128];
	size_t len;

	(void)state;
	for (int i = 0; i < 12; i++)
		v[i] = (uint8_t)(i * 7);
	assert_int_equal(sl_npy_write(tpath("fa.npy"), "|u1", shape, 2, v,
	    &why), 0);
	assert_int_equal(sl_npy_write(tpath("fb.npy"), "|u1", shape, 2, v,
	    &why), 0);
	v[11] ^= 1;
	assert_int_equal(sl_npy_write(tpath("fc.npy"), "|u1", shape, 2, v,
	    &why), 0);
	v[11] ^= 1;
	len = make_idx(img, sizeof img, 0x08, 2, dims, v, 12);
	put_gz(tpath("fd.gz"), img, len);

	assert_int_equal(sl_dataset_open(tpath("fa.npy"), &ds, &why), 0);
	assert_int_equal(sl_dataset_fingerprint(ds, &a), 0);
	assert_int_equal(sl_dataset_fingerprint(ds, &b), 0); /* cached */
	assert_memory_equal(&a, &b, sizeof a);
	sl_dataset_close(&ds);
	assert_int_equal(a.rows, 2);
	assert_int_equal(a.ndim, 2);
	assert_int_equal(a.shape[0], 2);
	assert_int_equal(a.shape[1], 6);
	assert_int_equal(a.dtype, SL_DTYPE_U8);
	/* SHA-256 of the sample bytes, independently computed. */
	{
		static const uint8_t zero[32];
		assert_memory_not_equal(a.sha256, zero, 32);
	}

	assert_int_equal(sl_dataset_open(tpath("fb.npy"), &ds, &why), 0);
	assert_int_equal(sl_dataset_fingerprint(ds, &b), 0);
	sl_dataset_close(&ds);
	assert_memory_equal(a.sha256, b.sha256, 32);
	assert_int_equal(a.rows, b.rows);

	assert_int_equal(sl_dataset_open(tpath("fc.npy"), &ds, &why), 0);
	assert_int_equal(sl_dataset_fingerprint(ds, &c), 0);
	sl_dataset_close(&ds);
	assert_memory_not_equal(a.sha256, c.sha256, 32);

	/* Same samples, same shape and dtype, other container: same. */
	assert_int_equal(sl_dataset_open(tpath("fd.gz"), &ds, &why), 0);
	assert_int_equal(sl_dataset_fingerprint(ds, &d), 0);
	sl_dataset_close(&ds);
	assert_memory_equal(a.sha256, d.sha256, 32);
	assert_int_equal(d.ndim, 2);
}

/* The SHA-256 of "abc" through a one-row dataset: the hash is the real one
 * over exactly the sample bytes. */
static void
test_fingerprint_known_sha(void **state)
{
	static const uint8_t want[32] = {
		0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41,
		0x40, 0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3,
		0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00,
		0x15, 0xad,
	};
	const uint64_t shape[2] = { 1, 3 };
	sl_fingerprint fp;
	sl_dataset *ds = NULL;
	sl_errmsg why = { "" };

	(void)state;
	assert_int_equal(sl_npy_write(tpath("abc.npy"), "|u1", shape, 2, "abc",
	    &why), 0);
	assert_int_equal(sl_dataset_open(tpath("abc.npy"), &ds, &why), 0);
	assert_int_equal(sl_dataset_fingerprint(ds, &fp), 0);
	sl_dataset_close(&ds);
	assert_memory_equal(fp.sha256, want, 32);
}

/* ---- labels ------------------------------------------------------------- */

static void
test_labels_roundtrip(void **state)
{
	const int32_t i4[5] = { 0, 9, -1, 3, 2147483647 };
	const int64_t i8[4] = { 7, -1, 0, 2147483647 };
	const uint8_t u1[3] = { 0, 255, 4 };
	const int16_t i2[3] = { -1, 300, 5 };
	const uint64_t n5[1] = { 5 }, n4x1[2] = { 4, 1 }, n3[1] = { 3 };
	int32_t *lab = NULL;
	size_t n = 0;
	sl_errmsg why = { "" };

	(void)state;
	assert_int_equal(sl_npy_write(tpath("l4.npy"), "<i4", n5, 1, i4, &why),
	    0);
	assert_int_equal(sl_labels_load(tpath("l4.npy"), &lab, &n, &why), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(lab, i4, sizeof i4);
	free(lab);

	assert_int_equal(sl_npy_write(tpath("l8.npy"), "<i8", n4x1, 2, i8,
	    &why), 0);
	assert_int_equal(sl_labels_load(tpath("l8.npy"), &lab, &n, &why), 0);
	assert_int_equal(n, 4);
	assert_int_equal(lab[0], 7);
	assert_int_equal(lab[1], -1);
	assert_int_equal(lab[2], 0);
	assert_int_equal(lab[3], 2147483647);
	free(lab);

	assert_int_equal(sl_npy_write(tpath("l1.npy"), "|u1", n3, 1, u1, &why),
	    0);
	assert_int_equal(sl_labels_load(tpath("l1.npy"), &lab, &n, &why), 0);
	assert_int_equal(n, 3);
	assert_int_equal(lab[1], 255);
	free(lab);

	assert_int_equal(sl_npy_write(tpath("l2.npy"), "<i2", n3, 1, i2, &why),
	    0);
	assert_int_equal(sl_labels_load(tpath("l2.npy"), &lab, &n, &why), 0);
	assert_int_equal(lab[0], -1);
	assert_int_equal(lab[1], 300);
	free(lab);

	/* IDX ubyte labels, plain and gzipped. */
	{
		const uint32_t d[1] = { 3 };
		uint8_t img[64];
		size_t len = make_idx(img, sizeof img, 0x08, 1, d, u1, 3);

		put_file(tpath("l-idx1-ubyte"), img, len);
		put_gz(tpath("l-idx1-ubyte.gz"), img, len);
		assert_int_equal(sl_labels_load(tpath("l-idx1-ubyte"), &lab, &n,
		    &why), 0);
		assert_int_equal(n, 3);
		assert_int_equal(lab[0], 0);
		assert_int_equal(lab[1], 255);
		assert_int_equal(lab[2], 4);
		free(lab);
		assert_int_equal(sl_labels_load(tpath("l-idx1-ubyte.gz"), &lab,
		    &n, &why), 0);
		assert_int_equal(n, 3);
		assert_int_equal(lab[2], 4);
		free(lab);
	}
}

static void
test_labels_rejected(void **state)
{
	const int32_t neg2[3] = { 1, -2, 0 };
	const int64_t big[2] = { 1, 2147483648LL };
	const uint32_t ubig[2] = { 1, 4000000000u };
	const int32_t two[4] = { 1, 2, 3, 4 };
	const float f[2] = { 1, 2 };
	const uint64_t n3[1] = { 3 }, n2[1] = { 2 }, n2x2[2] = { 2, 2 };
	sl_errmsg why = { "" };
	int32_t *lab = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(sl_npy_write(tpath("neg2.npy"), "<i4", n3, 1, neg2,
	    &why), 0);
	expect_labels_fail(tpath("neg2.npy"), SL_EFORMAT);
	{ /* the message names the index and the value */
		assert_int_equal(sl_labels_load(tpath("neg2.npy"), &lab, &n,
		    &why), SL_EFORMAT);
		assert_non_null(strstr(why.text, "1"));
		assert_non_null(strstr(why.text, "-2"));
	}
	assert_int_equal(sl_npy_write(tpath("big.npy"), "<i8", n2, 1, big,
	    &why), 0);
	expect_labels_fail(tpath("big.npy"), SL_EFORMAT);
	assert_int_equal(sl_npy_write(tpath("ubig.npy"), "<u4", n2, 1, ubig,
	    &why), 0);
	expect_labels_fail(tpath("ubig.npy"), SL_EFORMAT);
	assert_int_equal(sl_npy_write(tpath("two.npy"), "<i4", n2x2, 2, two,
	    &why), 0);
	expect_labels_fail(tpath("two.npy"), SL_EFORMAT);
	assert_int_equal(sl_npy_write(tpath("flab.npy"), "<f4", n2, 1, f,
	    &why), 0);
	expect_labels_fail(tpath("flab.npy"), SL_EUNSUPPORTED);
	expect_labels_fail(tpath("does-not-exist.npy"), ENOENT);
}

/* ---- malformed .npy ----------------------------------------------------- */

static void
test_npy_malformed(void **state)
{
	static const uint8_t data[64];
	uint8_t img[1024];
	size_t len;

	(void)state;
	/* bad magic */
	len = make_npy(img, sizeof img, 1,
	    "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }",
	    data, 2);
	img[5] = 'Z';
	expect_npy_parse_fails(img, len, SL_EFORMAT);
	put_file(tpath("badmagic.npy"), "hello, world\n", 13);
	expect_open_fails(tpath("badmagic.npy"), SL_EFORMAT);
	put_file(tpath("tiny"), "\x01", 1);
	expect_open_fails(tpath("tiny"), SL_EFORMAT);
	put_file(tpath("empty"), "", 0);
	expect_open_fails(tpath("empty"), SL_EFORMAT);
	expect_open_fails(tpath("missing.npy"), ENOENT);
	expect_open_fails(dir, EISDIR);

	/* truncated preamble (header length cut off) */
	expect_npy_parse_fails("\x93NUMPY\x01\x00\x10", 9, SL_EFORMAT);
	expect_npy_parse_fails("\x93NUMPY\x02\x00\x10\x00\x00", 11,
	    SL_EFORMAT);
	put_file(tpath("trunc-pre.npy"), "\x93NUMPY\x01", 7);
	expect_open_fails(tpath("trunc-pre.npy"), SL_EFORMAT);

	/* unknown version */
	len = make_npy(img, sizeof img, 1,
	    "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }",
	    data, 2);
	img[6] = 4;
	expect_npy_parse_fails(img, len, SL_EUNSUPPORTED);

	/* header length beyond the file */
	len = make_npy(img, sizeof img, 1,
	    "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }",
	    data, 0);
	img[8] = 200;
	expect_npy_parse_fails(img, len, SL_EFORMAT);
	put_file(tpath("hdr-beyond.npy"), img, len);
	expect_open_fails(tpath("hdr-beyond.npy"), SL_EFORMAT);

	/* header length over the limit (v2: u32 length), file tiny */
	memcpy(img, "\x93NUMPY\x02\x00", 8);
	img[8] = 0x70, img[9] = 0x11, img[10] = 0x01, img[11] = 0; /* 70000 */
	expect_npy_parse_fails(img, 12, SL_ELIMIT);
	{
		sl_errmsg why = { "" };
		sl_array_info ai;
		assert_int_equal(sl_npy_parse(img, 12, &ai, &why), SL_ELIMIT);
		assert_non_null(strstr(why.text, "70000"));
	}
	img[11] = 0xff; /* ~4 GiB claimed */
	expect_npy_parse_fails(img, 12, SL_ELIMIT);
	put_file(tpath("hdr-limit.npy"), img, 12);
	expect_open_fails(tpath("hdr-limit.npy"), SL_ELIMIT);

#define DICT_FAILS(dict, dlen, want)                                           \
	do {                                                                   \
		len = make_npy(img, sizeof img, 1, dict, data, dlen);          \
		expect_npy_parse_fails(img, len, want);                        \
	} while (0)

	/* missing keys */
	DICT_FAILS("{'descr': '|u1', 'fortran_order': False}", 0, SL_EFORMAT);
	DICT_FAILS("{'descr': '|u1', 'shape': (2,)}", 2, SL_EFORMAT);
	DICT_FAILS("{'fortran_order': False, 'shape': (2,)}", 2, SL_EFORMAT);
	/* broken dict syntax */
	DICT_FAILS("", 0, SL_EFORMAT);
	DICT_FAILS("{'descr': '|u1', 'fortran_order': False, 'shape': (2,)", 2,
	    SL_EFORMAT);
	DICT_FAILS("{'descr': '|u1, 'fortran_order': False, 'shape': (2,)}", 2,
	    SL_EFORMAT);
	DICT_FAILS("{'descr': '|u1' 'fortran_order': False, 'shape': (2,)}", 2,
	    SL_EFORMAT);
	DICT_FAILS("{'descr': '|u1', 'fortran_order': false, 'shape': (2,)}",
	    2, SL_EFORMAT);
	DICT_FAILS("{'descr': '|u1', 'fortran_order': False, 'shape': [2]}", 2,
	    SL_EFORMAT);
	DICT_FAILS("{'descr': '|u1', 'fortran_order': False, 'shape': (-2,)}",
	    2, SL_EFORMAT);
	DICT_FAILS("{'descr': '|u1', 'fortran_order': False, 'shape': (2 3)}",
	    6, SL_EFORMAT);
	DICT_FAILS("{'descr': '|u1', 'fortran_order': False, 'shape': "
	    "(99999999999999999999999,)}", 2, SL_EFORMAT);
	DICT_FAILS("{'descr': '|u1', 'fortran_order': False, 'shape': (2,)} x",
	    2, SL_EFORMAT);
	DICT_FAILS("{'descr': '|u1', 'descr': '|u1', 'fortran_order': False, "
	    "'shape': (2,)}", 2, SL_EFORMAT);
	DICT_FAILS("{'descr': '|u1', 'fortran_order': False, 'shape': (2,), "
	    "'extra': 1}", 2, SL_EFORMAT);
	/* fortran order, 2-D */
	DICT_FAILS("{'descr': '|u1', 'fortran_order': True, 'shape': (2, 3)}",
	    6, SL_EUNSUPPORTED);
	/* unsupported type strings */
	DICT_FAILS("{'descr': '<c8', 'fortran_order': False, 'shape': (2,)}",
	    16, SL_EUNSUPPORTED);
	DICT_FAILS("{'descr': '<U10', 'fortran_order': False, 'shape': (2,)}",
	    0, SL_EUNSUPPORTED);
	DICT_FAILS("{'descr': '|O', 'fortran_order': False, 'shape': (2,)}",
	    16, SL_EUNSUPPORTED);
	DICT_FAILS("{'descr': [('a', '<f4')], 'fortran_order': False, "
	    "'shape': (2,)}", 8, SL_EUNSUPPORTED);
	DICT_FAILS("{'descr': '|f4', 'fortran_order': False, 'shape': (2,)}",
	    8, SL_EFORMAT);
	/* too many dimensions */
	DICT_FAILS("{'descr': '|u1', 'fortran_order': False, "
	    "'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1)}", 1, SL_ELIMIT);
	/* shape product overflow */
	DICT_FAILS("{'descr': '|u1', 'fortran_order': False, "
	    "'shape': (4294967296, 4294967296)}", 0, SL_EFORMAT);
	DICT_FAILS("{'descr': '<f4', 'fortran_order': False, "
	    "'shape': (0, 4294967296, 4294967296)}", 0, SL_EFORMAT);
	DICT_FAILS("{'descr': '<f8', 'fortran_order': False, "
	    "'shape': (4611686018427387904,)}", 0, SL_EFORMAT);
	/* data shorter than the shape says / trailing bytes */
	DICT_FAILS("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}",
	    47, SL_EFORMAT);
	DICT_FAILS("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}",
	    49, SL_EFORMAT);
#undef DICT_FAILS

	len = make_npy(img, sizeof img, 1,
	    "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}", data,
	    40);
	put_file(tpath("short.npy"), img, len);
	expect_open_fails(tpath("short.npy"), SL_EFORMAT);
	len = make_npy(img, sizeof img, 1,
	    "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}", data,
	    49);
	put_file(tpath("trailing.npy"), img, len);
	expect_open_fails(tpath("trailing.npy"), SL_EFORMAT);
	{
		sl_errmsg why = { "" };
		sl_dataset *ds = NULL;
		assert_int_equal(sl_dataset_open(tpath("trailing.npy"), &ds,
		    &why), SL_EFORMAT);
		assert_non_null(strstr(why.text, "1 trailing bytes"));
	}
}

static void
test_npy_dataset_dtypes(void **state)
{
	static const uint8_t data[64];
	uint8_t img[512];
	size_t len;
	sl_errmsg why = { "" };
	sl_dataset *ds = NULL;

	(void)state;
	/* well-formed, but not a dataset dtype */
	len = make_npy(img, sizeof img, 1,
	    "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2)}", data,
	    48);
	put_file(tpath("f8.npy"), img, len);
	expect_open_fails(tpath("f8.npy"), SL_EUNSUPPORTED);
	assert_int_equal(sl_dataset_open(tpath("f8.npy"), &ds, &why),
	    SL_EUNSUPPORTED);
	assert_non_null(strstr(why.text, "(3, 2)"));
	assert_non_null(strstr(why.text, "'<f8'"));
	len = make_npy(img, sizeof img, 1,
	    "{'descr': '>f4', 'fortran_order': False, 'shape': (3,)}", data,
	    12);
	put_file(tpath("bef4.npy"), img, len);
	expect_open_fails(tpath("bef4.npy"), SL_EUNSUPPORTED);
	len = make_npy(img, sizeof img, 1,
	    "{'descr': '|b1', 'fortran_order': False, 'shape': (3,)}", data,
	    3);
	put_file(tpath("b1.npy"), img, len);
	expect_open_fails(tpath("b1.npy"), SL_EUNSUPPORTED);
	len = make_npy(img, sizeof img, 1,
	    "{'descr': '|u1', 'fortran_order': False, 'shape': ()}", data, 1);
	put_file(tpath("scalar.npy"), img, len);
	expect_open_fails(tpath("scalar.npy"), SL_EFORMAT);
	len = make_npy(img, sizeof img, 1,
	    "{'descr': '|u1', 'fortran_order': True, 'shape': (2, 2)}", data,
	    4);
	put_file(tpath("fortran.npy"), img, len);
	expect_open_fails(tpath("fortran.npy"), SL_EUNSUPPORTED);
}

static void
test_npy_write_errors(void **state)
{
	const uint64_t shape[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
	const uint64_t huge[2] = { 4294967296ULL, 4294967296ULL };
	uint8_t v[1] = { 0 };
	sl_errmsg why = { "" };

	(void)state;
	assert_int_equal(sl_npy_write(tpath("w.npy"), "<c8", shape, 1, v,
	    &why), SL_EUNSUPPORTED);
	assert_true(why.text[0] != '\0');
	why.text[0] = '\0';
	assert_int_equal(sl_npy_write(tpath("w.npy"), "|u1", shape, 9, v,
	    &why), SL_ELIMIT);
	assert_true(why.text[0] != '\0');
	assert_int_equal(sl_npy_write(tpath("w.npy"), "|u1", huge, 2, v,
	    &why), SL_EFORMAT);
	assert_int_equal(sl_npy_write(tpath("w.npy"), "|u1", shape, 1, NULL,
	    &why), SL_EINVAL);
	why.text[0] = '\0';
	assert_int_equal(sl_npy_write(tpath("no-such-dir/w.npy"), "|u1", shape,
	    1, v, &why), ENOENT);
	assert_true(why.text[0] != '\0');
	{
		struct stat st;
		assert_int_not_equal(stat(tpath("w.npy"), &st), 0);
	}
}

/* ---- malformed IDX ------------------------------------------------------ */

static void
test_idx_malformed(void **state)
{
	static const uint8_t data[64];
	const uint32_t d2[2] = { 3, 4 }, d9[9] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
	uint8_t img[256];
	size_t len;

	(void)state;
	/* bad type byte: not an IDX type at all, or valid but not a dataset
	 * dtype (0x0E double) */
	len = make_idx(img, sizeof img, 0x07, 2, d2, data, 12);
	expect_idx_parse_fails(img, len, SL_EFORMAT);
	put_file(tpath("badtype-idx"), img, len);
	expect_open_fails(tpath("badtype-idx"), SL_EFORMAT);
	{
		const uint32_t d1[1] = { 2 };
		len = make_idx(img, sizeof img, 0x0E, 1, d1, data, 16);
		put_file(tpath("double-idx"), img, len);
		expect_open_fails(tpath("double-idx"), SL_EUNSUPPORTED);
	}
	/* bad magic */
	len = make_idx(img, sizeof img, 0x08, 2, d2, data, 12);
	img[1] = 1;
	expect_idx_parse_fails(img, len, SL_EFORMAT);
	/* ndim 0 and beyond the limit */
	len = make_idx(img, sizeof img, 0x08, 0, d2, data, 1);
	expect_idx_parse_fails(img, len, SL_EFORMAT);
	put_file(tpath("ndim0-idx"), img, len);
	expect_open_fails(tpath("ndim0-idx"), SL_EFORMAT);
	len = make_idx(img, sizeof img, 0x08, 9, d9, data, 1);
	expect_idx_parse_fails(img, len, SL_ELIMIT);
	put_file(tpath("ndim9-idx"), img, len);
	expect_open_fails(tpath("ndim9-idx"), SL_ELIMIT);
	/* truncated header (dims cut short) */
	len = make_idx(img, sizeof img, 0x08, 3, d9, NULL, 0);
	expect_idx_parse_fails(img, len - 2, SL_EFORMAT);
	expect_idx_parse_fails(img, 3, SL_EFORMAT);
	put_file(tpath("trunchdr-idx"), img, len - 2);
	expect_open_fails(tpath("trunchdr-idx"), SL_EFORMAT);
	/* truncated data, trailing data */
	len = make_idx(img, sizeof img, 0x08, 2, d2, data, 11);
	expect_idx_parse_fails(img, len, SL_EFORMAT);
	put_file(tpath("truncdata-idx"), img, len);
	expect_open_fails(tpath("truncdata-idx"), SL_EFORMAT);
	len = make_idx(img, sizeof img, 0x08, 2, d2, data, 13);
	expect_idx_parse_fails(img, len, SL_EFORMAT);
	put_file(tpath("trailing-idx"), img, len);
	expect_open_fails(tpath("trailing-idx"), SL_EFORMAT);
	/* labels: IDX of the wrong shape */
	len = make_idx(img, sizeof img, 0x08, 2, d2, data, 12);
	put_file(tpath("lab2d-idx"), img, len);
	expect_labels_fail(tpath("lab2d-idx"), SL_EFORMAT);
}

/* ---- malformed gzip ----------------------------------------------------- */

static void
test_gzip_malformed(void **state)
{
	const uint32_t d2[2] = { 100, 10 };
	uint8_t data[1000], img[2048], *gz;
	size_t len, gzlen;

	(void)state;
	for (int i = 0; i < 1000; i++)
		data[i] = (uint8_t)(i * 31 + i / 7);
	len = make_idx(img, sizeof img, 0x08, 2, d2, data, 1000);
	put_gz(tpath("ok.gz"), img, len);
	gz = get_file(tpath("ok.gz"), &gzlen);
	assert_true(gzlen > 40);

	/* cut in the middle of the deflate data */
	put_file(tpath("cut.gz"), gz, gzlen / 2);
	expect_open_fails(tpath("cut.gz"), SL_EFORMAT);
	expect_labels_fail(tpath("cut.gz"), SL_EFORMAT);
	/* all data there, trailer (CRC, length) missing */
	put_file(tpath("notrailer.gz"), gz, gzlen - 8);
	expect_open_fails(tpath("notrailer.gz"), SL_EFORMAT);
	/* cut inside the IDX header */
	put_file(tpath("hdrcut.gz"), gz, 12);
	expect_open_fails(tpath("hdrcut.gz"), SL_EFORMAT);
	/* CRC wrong */
	gz[gzlen - 8] ^= 0x55;
	put_file(tpath("crc.gz"), gz, gzlen);
	expect_open_fails(tpath("crc.gz"), SL_ECORRUPT);
	gz[gzlen - 8] ^= 0x55;
	/* garbage after the stream */
	{
		uint8_t *g2 = malloc(gzlen + 3);
		assert_non_null(g2);
		memcpy(g2, gz, gzlen);
		memcpy(g2 + gzlen, "xyz", 3);
		put_file(tpath("garbage.gz"), g2, gzlen + 3);
		expect_open_fails(tpath("garbage.gz"), SL_EFORMAT);
		free(g2);
	}
	/* concatenated members form one valid stream */
	{
		uint8_t *g2, *g1;
		size_t l1, l2;
		sl_dataset *ds = NULL;
		sl_errmsg why = { "" };

		put_gz(tpath("m1.gz"), img, 300);
		put_gz(tpath("m2.gz"), img + 300, len - 300);
		g1 = get_file(tpath("m1.gz"), &l1);
		g2 = get_file(tpath("m2.gz"), &l2);
		g1 = realloc(g1, l1 + l2);
		assert_non_null(g1);
		memcpy(g1 + l1, g2, l2);
		put_file(tpath("multi.gz"), g1, l1 + l2);
		assert_int_equal(sl_dataset_open(tpath("multi.gz"), &ds, &why),
		    0);
		assert_int_equal(sl_dataset_rows(ds), 100);
		assert_memory_equal(sl_dataset_row(ds, 99), data + 990, 10);
		sl_dataset_close(&ds);
		free(g1);
		free(g2);
	}
	free(gz);

	/* more data than the header describes */
	{
		const uint32_t d99[2] = { 99, 10 };
		len = make_idx(img, sizeof img, 0x08, 2, d99, data, 1000);
		put_gz(tpath("extra.gz"), img, len);
		expect_open_fails(tpath("extra.gz"), SL_EFORMAT);
	}
	/* content not IDX, content too short */
	put_gz(tpath("notidx.gz"), "hello world", 11);
	expect_open_fails(tpath("notidx.gz"), SL_EFORMAT);
	put_gz(tpath("short.gz"), "\0\0", 2);
	expect_open_fails(tpath("short.gz"), SL_EFORMAT);
	put_gz(tpath("emptygz.gz"), "", 0);
	expect_open_fails(tpath("emptygz.gz"), SL_EFORMAT);
	/* not gzip after the magic */
	put_file(tpath("fakegz.gz"), "\x1f\x8b\x00\x00garbage-garbage", 19);
	expect_open_fails(tpath("fakegz.gz"), SL_EFORMAT);
}

/* A tiny gzip whose IDX header claims 8 GiB must fail as truncated, fast,
 * without allocating gigabytes; a claim over SL_DATA_MAX_BYTES fails with
 * SL_ELIMIT before anything is allocated. Outside sanitizer builds the open
 * runs in a child whose address space is capped, so an up-front allocation
 * of the claimed size would turn into SL_ENOMEM and fail the test. */
static void
test_gzip_huge_claim(void **state)
{
	const uint32_t d8g[3] = { 8192, 1024, 1024 };      /* 8 GiB */
	const uint32_t d64t[3] = { 65536, 65536, 65536 };  /* 256 TiB */
	static const uint8_t zeros[100];
	uint8_t img[256];
	size_t len;
	struct timespec t0, t1;
	double secs;

	(void)state;
	len = make_idx(img, sizeof img, 0x08, 3, d8g, zeros, 100);
	put_gz(tpath("huge.gz"), img, len);
	len = make_idx(img, sizeof img, 0x08, 3, d64t, zeros, 100);
	put_gz(tpath("over.gz"), img, len);

	clock_gettime(CLOCK_MONOTONIC, &t0);
	expect_open_fails(tpath("huge.gz"), SL_EFORMAT);
	expect_labels_fail(tpath("huge.gz"), SL_EFORMAT);
	expect_open_fails(tpath("over.gz"), SL_ELIMIT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	assert_true(secs < 2.0);

#ifndef ASAN_BUILD
	{
		pid_t pid;
		int status;

		fflush(NULL);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct rlimit rl;
			sl_dataset *ds = NULL;
			sl_errmsg why;
			unsigned long pages = 0;
			FILE *f = fopen("/proc/self/statm", "r");
			int rc;

			if (f == NULL || fscanf(f, "%lu", &pages) != 1)
				_exit(3);
			fclose(f);
			/* current size + 512 MiB: room for the 1 MiB first
			 * buffer, nowhere near 8 GiB */
			rl.rlim_cur = rl.rlim_max = (rlim_t)pages *
			    (rlim_t)sysconf(_SC_PAGESIZE) + ((rlim_t)512 << 20);
			if (setrlimit(RLIMIT_AS, &rl) != 0)
				_exit(4);
			rc = sl_dataset_open(tpath("huge.gz"), &ds, &why);
			_exit(rc == SL_EFORMAT ? 0 : rc == SL_ENOMEM ? 1 : 2);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
#endif
}

/* ---- the real thing ------------------------------------------------------ */

static void
test_fashion_mnist(void **state)
{
	const char *img = FMNIST_DIR "t10k-images-idx3-ubyte.gz";
	const char *lbl = FMNIST_DIR "t10k-labels-idx1-ubyte.gz";
	uint64_t shape[SL_DATA_MAX_DIMS];
	sl_dataset *ds = NULL;
	sl_errmsg why = { "" };
	sl_fingerprint fp;
	int32_t *lab = NULL;
	size_t n = 0, hist[10] = { 0 };

	(void)state;
	if (access(img, R_OK) != 0 || access(lbl, R_OK) != 0)
		skip();
	assert_int_equal(sl_dataset_open(img, &ds, &why), 0);
	assert_int_equal(sl_dataset_rows(ds), 10000);
	assert_int_equal(sl_dataset_dim(ds), 784);
	assert_int_equal(sl_dataset_dtype(ds), SL_DTYPE_U8);
	assert_int_equal(sl_dataset_shape(ds, shape), 3);
	assert_int_equal(shape[1], 28);
	assert_int_equal(shape[2], 28);
	assert_int_equal(sl_dataset_fingerprint(ds, &fp), 0);
	assert_int_equal(fp.rows, 10000);
	sl_dataset_close(&ds);

	assert_int_equal(sl_labels_load(lbl, &lab, &n, &why), 0);
	assert_int_equal(n, 10000);
	for (size_t i = 0; i < n; i++) {
		assert_true(lab[i] >= 0 && lab[i] <= 9);
		hist[lab[i]]++;
	}
	/* The test set is balanced: 1000 of each class. */
	for (int c = 0; c < 10; c++)
		assert_int_equal(hist[c], 1000);
	free(lab);
}

/* ---- fixture ------------------------------------------------------------ */

static int
setup(void **state)
{
	const char *t = getenv("TMPDIR");

	(void)state;
	snprintf(dir, sizeof dir, "%s/test_data.XXXXXX",
	    t && strlen(t) < 40 ? t : "/tmp");
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char p[512];

	(void)state;
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		unlink(p);
	}
	closedir(d);
	return rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_npy_write_layout),
		cmocka_unit_test(test_roundtrip_u8),
		cmocka_unit_test(test_roundtrip_f32),
		cmocka_unit_test(test_roundtrip_1d_and_empty),
		cmocka_unit_test(test_npy_versions_and_header_forms),
		cmocka_unit_test(test_idx_roundtrip),
		cmocka_unit_test(test_idx_f32_roundtrip),
		cmocka_unit_test(test_rows_f32_preproc),
		cmocka_unit_test(test_rows_f32_channels),
		cmocka_unit_test(test_preproc_pack),
		cmocka_unit_test(test_preproc_options),
		cmocka_unit_test(test_preproc_check),
		cmocka_unit_test(test_npy_pieces),
		cmocka_unit_test(test_fingerprint),
		cmocka_unit_test(test_fingerprint_known_sha),
		cmocka_unit_test(test_labels_roundtrip),
		cmocka_unit_test(test_labels_rejected),
		cmocka_unit_test(test_npy_malformed),
		cmocka_unit_test(test_npy_dataset_dtypes),
		cmocka_unit_test(test_npy_write_errors),
		cmocka_unit_test(test_idx_malformed),
		cmocka_unit_test(test_gzip_malformed),
		cmocka_unit_test(test_gzip_huge_claim),
		cmocka_unit_test(test_fashion_mnist),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}

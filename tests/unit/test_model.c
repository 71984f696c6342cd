/* test_model.c - safetensors MLPs: the PyTorch-written fixtures, save/load
 * round trips, F16/BF16 conversion, and every malformed header we can think
 * of, each expecting a specific code and a message.
 *
 * Run from the repository root (paths "tests/data/..."). The fixtures come
 * from tests/data/make_fixture.py; Python is not needed at run time.
 *
 * Tolerances: the expected logits for each fixture are computed (in float64)
 * from that file's own rounded weights, so float32, float16 and bfloat16 are
 * all checked to 1e-5 absolute (logits are of order 0.1; float32 sgemm
 * rounding is ~1e-8 here). The float16 and bfloat16 logits are also checked
 * against the float32 ones to 2e-3 and 2e-2, the rounding of the weights.
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
#include <unistd.h>

#include "sl_model.h"
#include "sl_nn.h"
#include "sl_rng.h"

#define FIXTURE "tests/data/fixture_mlp.safetensors"
#define FIXTURE_F16 "tests/data/fixture_mlp_f16.safetensors"
#define FIXTURE_BF16 "tests/data/fixture_mlp_bf16.safetensors"
#define EXPECTED "tests/data/fixture_mlp.expected.txt"
#define TOL 1e-5f

/* --- helpers ---------------------------------------------------------------- */

static unsigned char *
read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
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
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

static void
write_all(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* An image: u64 LE header length, the header, then data. */
static unsigned char *
image(const char *json, const void *data, size_t dlen, size_t *len)
{
	size_t hl = strlen(json);
	unsigned char *buf = malloc(8 + hl + dlen + 1);

	assert_non_null(buf);
	for (int i = 0; i < 8; i++)
		buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
	memcpy(buf + 8, json, hl);
	if (dlen > 0)
		memcpy(buf + 8 + hl, data, dlen);
	*len = 8 + hl + dlen;
	return buf;
}

/* Parse json + data and expect failure with code; returns nothing, checks
 * that *out stays untouched and why names something. If needle is not NULL
 * the message must contain it. */
static void
expect_fail_data(const char *json, const void *data, size_t dlen, int code,
    const char *needle)
{
	size_t len;
	unsigned char *buf = image(json, data, dlen, &len);
	sl_mlp *m = NULL;
	sl_model_info info;
	sl_errmsg why;
	int r;

	memset(&why, 0, sizeof why);
	r = sl_model_parse(buf, len, NULL, 0, &m, &info, &why);
	if (r != code)
		print_error("json: %s\ngot %d (%s): %s\n", json, r,
		    sl_strerror(r), why.text);
	assert_int_equal(r, code);
	assert_null(m);
	assert_true(why.text[0] != '\0');
	assert_null(strchr(why.text, '\n'));
	if (needle != NULL && strstr(why.text, needle) == NULL) {
		print_error("message \"%s\" lacks \"%s\"\n", why.text, needle);
		fail();
	}
	free(buf);
}

/* The small valid model used as a base: 2-3-2, float32, 68 data bytes. */
#define W0 "\"0.weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}"
#define B0 "\"0.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,36]}"
#define W2 "\"2.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[36,60]}"
#define B2 "\"2.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[60,68]}"
#define GOOD_NFLOATS 17

static float good_data[GOOD_NFLOATS];

static void
expect_fail(const char *json, int code, const char *needle)
{
	expect_fail_data(json, good_data, sizeof good_data, code, needle);
}

static int
setup_data(void **state)
{
	(void)state;
	for (int i = 0; i < GOOD_NFLOATS; i++)
		good_data[i] = 0.25f * (float)(i - 8);
	return 0;
}

/* Expected-output file of make_fixture.py: numbers separated by space,
 * '#' comment lines. */
struct expected {
	int B, in, outn;
	float x[4 * 6];
	float logits[3][4 * 3]; /* f32, f16, bf16 */
};

static void
read_expected(struct expected *e)
{
	size_t len, k = 0;
	char *text = (char *)read_all(EXPECTED, &len);
	char *p = text;
	double v[3 + 24 + 36];

	while (*p != '\0') {
		char *end;

		while (*p == ' ' || *p == '\n')
			p++;
		if (*p == '#') {
			p = strchr(p, '\n');
			assert_non_null(p);
			continue;
		}
		if (*p == '\0')
			break;
		assert_true(k < sizeof v / sizeof v[0]);
		v[k] = strtod(p, &end);
		assert_true(end != p);
		k++;
		p = end;
	}
	assert_int_equal(k, sizeof v / sizeof v[0]);
	e->B = (int)v[0];
	e->in = (int)v[1];
	e->outn = (int)v[2];
	assert_int_equal(e->B, 4);
	assert_int_equal(e->in, 6);
	assert_int_equal(e->outn, 3);
	for (int i = 0; i < 24; i++)
		e->x[i] = (float)v[3 + i];
	for (int t = 0; t < 3; t++)
		for (int i = 0; i < 12; i++)
			e->logits[t][i] = (float)v[27 + 12 * t + i];
	free(text);
}

static char tmpdir[256];

static int
setup_tmp(void **state)
{
	const char *base = getenv("TMPDIR");

	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "%s/test_model.XXXXXX",
	    base != NULL && base[0] != '\0' ? base : "/tmp");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return setup_data(state);
}

static int
teardown_tmp(void **state)
{
	DIR *d = opendir(tmpdir);
	struct dirent *de;
	char path[512];

	(void)state;
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof path, "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	closedir(d);
	return rmdir(tmpdir);
}

static int
count_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* --- the PyTorch-written fixtures ------------------------------------------ */

static void
check_fixture(const char *path, int which)
{
	struct expected e;
	const int want[] = { 6, 5, 4, 3 };
	sl_mlp *m = NULL;
	sl_mlp_ws *ws = NULL;
	sl_model_info info;
	sl_errmsg why;
	const float *y;
	int r;

	read_expected(&e);
	info.has_preproc = 7;
	r = sl_model_load(path, want, 3, &m, &info, &why);
	if (r != 0)
		print_error("%s: %s\n", path, why.text);
	assert_int_equal(r, 0);
	/* {"format": "pt"} is no softlabel metadata */
	assert_int_equal(info.has_preproc, 0);
	assert_int_equal(m->nlayers, 3);
	assert_memory_equal(m->sizes, want, sizeof want);
	assert_int_equal(sl_mlp_ws_new(m, e.B, &ws), 0);
	y = sl_mlp_forward(m, ws, e.x, e.B, 0.0f, NULL);
	for (int i = 0; i < e.B * e.outn; i++) {
		assert_float_equal(y[i], e.logits[which][i], TOL);
		/* the rounding of the weights stays small */
		assert_float_equal(y[i], e.logits[0][i],
		    which == 0 ? TOL : which == 1 ? 2e-3f : 2e-2f);
	}
	sl_mlp_ws_free(&ws);
	sl_mlp_free(&m);
	assert_null(m);
}

static void
test_fixture_f32(void **state)
{
	(void)state;
	check_fixture(FIXTURE, 0);
}

static void
test_fixture_f16(void **state)
{
	(void)state;
	check_fixture(FIXTURE_F16, 1);
}

static void
test_fixture_bf16(void **state)
{
	(void)state;
	check_fixture(FIXTURE_BF16, 2);
}

static void
test_fixture_arch_mismatch(void **state)
{
	const int want[] = { 6, 7, 4, 3 };
	const int fewer[] = { 6, 3 };
	sl_mlp *m = NULL;
	sl_errmsg why;

	(void)state;
	memset(&why, 0, sizeof why);
	assert_int_equal(sl_model_load(FIXTURE, want, 3, &m, NULL, &why),
	    SL_EMISMATCH);
	assert_null(m);
	assert_string_equal(why.text, "--arch 6-7-4-3 but file has 6-5-4-3");
	assert_int_equal(sl_model_load(FIXTURE, fewer, 1, &m, NULL, &why),
	    SL_EMISMATCH);
	assert_string_equal(why.text, "--arch 6-3 but file has 6-5-4-3");
	assert_null(m);
}

/* Every prefix of the fixture fails cleanly; flipping any byte never reads
 * out of bounds (ASan) and never succeeds with a non-finite parameter. */
static void
test_fixture_truncated_and_flipped(void **state)
{
	size_t len;
	unsigned char *buf = read_all(FIXTURE, &len);
	sl_mlp *m = NULL;
	sl_errmsg why;

	(void)state;
	for (size_t n = 0; n < len; n++) {
		unsigned char *cut = malloc(n > 0 ? n : 1);

		assert_non_null(cut);
		memcpy(cut, buf, n);
		why.text[0] = '\0';
		assert_int_not_equal(sl_model_parse(cut, n, NULL, 0, &m, NULL,
		    &why), 0);
		assert_null(m);
		assert_true(why.text[0] != '\0');
		free(cut);
	}
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			buf[i] ^= (unsigned char)(1u << bit);
			if (sl_model_parse(buf, len, NULL, 0, &m, NULL,
			    &why) == 0) {
				for (size_t k = 0; k < m->nparams; k++)
					assert_true(isfinite(m->params[k]));
				sl_mlp_free(&m);
			} else {
				assert_null(m);
				assert_true(why.text[0] != '\0');
			}
			buf[i] ^= (unsigned char)(1u << bit);
		}
	}
	free(buf);
}

static void
test_load_truncated_file(void **state)
{
	size_t len;
	unsigned char *buf = read_all(FIXTURE, &len);
	const size_t cuts[] = { 0, 5, 8, 100, 200, len - 1 };
	char path[512];
	sl_mlp *m = NULL;
	sl_errmsg why;

	(void)state;
	snprintf(path, sizeof path, "%s/truncated.safetensors", tmpdir);
	for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
		write_all(path, buf, cuts[i]);
		memset(&why, 0, sizeof why);
		assert_int_equal(sl_model_load(path, NULL, 0, &m, NULL, &why),
		    SL_EFORMAT);
		assert_null(m);
		assert_true(why.text[0] != '\0');
	}
	unlink(path);
	free(buf);

	snprintf(path, sizeof path, "%s/absent.safetensors", tmpdir);
	assert_int_equal(sl_model_load(path, NULL, 0, &m, NULL, &why), ENOENT);
	assert_true(why.text[0] != '\0');
	assert_int_equal(sl_model_load(tmpdir, NULL, 0, &m, NULL, &why),
	    SL_EFORMAT);
	assert_null(m);
}

/* --- save / load ------------------------------------------------------------ */

static void
test_save_round_trip(void **state)
{
	const int sizes[] = { 7, 5, 4, 3 };
	const sl_preproc pre = { .scale = 1.0f / 255.0f, .channels = 1,
	    .mean = { 0.1307f }, .std = { 0.3081f } };
	char path[512];
	sl_mlp *m = NULL, *back = NULL;
	sl_model_info info;
	sl_errmsg why;
	sl_rng rng;
	unsigned char *buf;
	size_t len;
	uint64_t hl = 0;
	int r;

	(void)state;
	assert_int_equal(sl_mlp_new(sizes, 3, &m), 0);
	sl_rng_seed(&rng, 42);
	sl_mlp_init_params(m, &rng);
	snprintf(path, sizeof path, "%s/student.safetensors", tmpdir);

	r = sl_model_save(path, m, &pre, SL_DTYPE_U8, &why);
	if (r != 0)
		print_error("%s\n", why.text);
	assert_int_equal(r, 0);
	assert_int_equal(count_files(tmpdir), 1); /* no temp file left */

	r = sl_model_load(path, sizes, 3, &back, &info, &why);
	if (r != 0)
		print_error("%s\n", why.text);
	assert_int_equal(r, 0);
	assert_int_equal(back->nlayers, 3);
	assert_memory_equal(back->sizes, sizes, sizeof sizes);
	assert_int_equal(back->nparams, m->nparams);
	assert_memory_equal(back->params, m->params,
	    m->nparams * sizeof *m->params);
	assert_int_equal(info.has_preproc, 1);
	assert_memory_equal(&info.pre, &pre, sizeof pre);
	sl_mlp_free(&back);

	/* What PyTorch will see: Sequential indices, metadata, aligned data. */
	buf = read_all(path, &len);
	for (int i = 7; i >= 0; i--)
		hl = hl << 8 | buf[i];
	assert_int_equal((8 + hl) % 8, 0);
	assert_true(8 + hl <= len);
	assert_int_equal(len, 8 + hl + m->nparams * 4);
	buf[8 + hl] = '\0'; /* end the header for strstr */
	assert_non_null(strstr((char *)buf + 8, "\"0.weight\""));
	assert_non_null(strstr((char *)buf + 8, "\"2.bias\""));
	assert_non_null(strstr((char *)buf + 8, "\"4.weight\""));
	assert_null(strstr((char *)buf + 8, "\"1.weight\""));
	assert_non_null(strstr((char *)buf + 8, "\"arch\":\"7-5-4-3\""));
	assert_non_null(strstr((char *)buf + 8, "\"input_dtype\":\"uint8\""));
	assert_non_null(strstr((char *)buf + 8, "\"format\":\"softlabel-mlp\""));
	free(buf);

	/* --arch disagreeing with the saved file */
	{
		const int other[] = { 7, 6, 4, 3 };

		assert_int_equal(sl_model_load(path, other, 3, &back, NULL,
		    &why), SL_EMISMATCH);
		assert_null(back);
		assert_string_equal(why.text,
		    "--arch 7-6-4-3 but file has 7-5-4-3");
	}

	/* Overwrite in place with float32 input metadata. */
	assert_int_equal(sl_model_save(path, m, &pre, SL_DTYPE_F32, &why), 0);
	buf = read_all(path, &len);
	assert_non_null(strstr((char *)buf + 8, "\"input_dtype\":\"float32\""));
	free(buf);
	assert_int_equal(count_files(tmpdir), 1);
	unlink(path);
	sl_mlp_free(&m);
}

static void
test_save_failures(void **state)
{
	const int sizes[] = { 3, 2 };
	const sl_preproc pre = { .scale = 1.0f, .channels = 1, .std = { 1.0f } };
	const sl_preproc bad = { .scale = 1.0f, .channels = 1, .std = { 0.0f } };
	char path[512];
	sl_mlp *m = NULL;
	sl_errmsg why;

	(void)state;
	assert_int_equal(sl_mlp_new(sizes, 1, &m), 0);

	snprintf(path, sizeof path, "%s/no/such/dir/m.safetensors", tmpdir);
	memset(&why, 0, sizeof why);
	assert_int_equal(sl_model_save(path, m, &pre, SL_DTYPE_F32, &why),
	    ENOENT);
	assert_true(why.text[0] != '\0');

	snprintf(path, sizeof path, "%s/m.safetensors", tmpdir);
	memset(&why, 0, sizeof why);
	assert_int_equal(sl_model_save(path, m, &bad, SL_DTYPE_F32, &why),
	    SL_EINVAL);
	assert_true(why.text[0] != '\0');

	m->b[0][1] = NAN;
	memset(&why, 0, sizeof why);
	assert_int_equal(sl_model_save(path, m, &pre, SL_DTYPE_F32, &why),
	    SL_EINVAL);
	assert_true(why.text[0] != '\0');
	assert_int_equal(count_files(tmpdir), 0);
	sl_mlp_free(&m);
}

static void
test_sha256(void **state)
{
	char path[512], hex[65];
	sl_errmsg why;

	(void)state;
	snprintf(path, sizeof path, "%s/abc", tmpdir);
	write_all(path, "abc", 3);
	assert_int_equal(sl_model_sha256(path, hex, &why), 0);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223"
	    "b00361a396177a9cb410ff61f20015ad");
	write_all(path, "", 0);
	assert_int_equal(sl_model_sha256(path, hex, &why), 0);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb924"
	    "27ae41e4649b934ca495991b7852b855");
	unlink(path);
	memset(&why, 0, sizeof why);
	assert_int_equal(sl_model_sha256(path, hex, &why), ENOENT);
	assert_true(why.text[0] != '\0');
}

/* --- valid variants --------------------------------------------------------- */

static sl_mlp *
parse_ok(const char *json, const void *data, size_t dlen, sl_model_info *info)
{
	size_t len;
	unsigned char *buf = image(json, data, dlen, &len);
	sl_mlp *m = NULL;
	sl_errmsg why;
	int r;

	r = sl_model_parse(buf, len, NULL, 0, &m, info, &why);
	if (r != 0)
		print_error("json: %s\n%s\n", json, why.text);
	assert_int_equal(r, 0);
	free(buf);
	return m;
}

static void
test_parse_base(void **state)
{
	sl_model_info info;
	sl_mlp *m;

	(void)state;
	m = parse_ok("{" W0 "," B0 "," W2 "," B2 "}", good_data,
	    sizeof good_data, &info);
	assert_int_equal(info.has_preproc, 0);
	assert_int_equal(m->nlayers, 2);
	assert_int_equal(m->sizes[0], 2);
	assert_int_equal(m->sizes[1], 3);
	assert_int_equal(m->sizes[2], 2);
	/* params block is W0 b0 W2 b2, like the data */
	assert_memory_equal(m->params, good_data, sizeof good_data);
	sl_mlp_free(&m);

	/* order in the header does not matter; padding spaces are fine */
	m = parse_ok("{" B2 "," W0 "," B0 "," W2 "}      ", good_data,
	    sizeof good_data, NULL);
	assert_memory_equal(m->params, good_data, sizeof good_data);
	sl_mlp_free(&m);

	/* metadata as softlabel writes it */
	m = parse_ok("{\"__metadata__\":{\"format\":\"softlabel-mlp\","
	    "\"arch\":\"2-3-2\",\"activation\":\"relu\",\"input_scale\":"
	    "\"0.00392156886\",\"input_mean\":\"-0.5\",\"input_std\":\"2\","
	    "\"input_dtype\":\"uint8\"}," W0 "," B0 "," W2 "," B2 "}",
	    good_data, sizeof good_data, &info);
	assert_int_equal(info.has_preproc, 1);
	assert_float_equal(info.pre.scale, 1.0f / 255.0f, 1e-9f);
	assert_true(info.pre.channels == 1 && info.pre.mean[0] == -0.5f);
	assert_true(info.pre.std[0] == 2.0f);
	sl_mlp_free(&m);

	/* one mean and std per channel; a single std holds for all three */
	m = parse_ok("{\"__metadata__\":{\"input_scale\":\"1\","
	    "\"input_mean\":\"0.1,0.2,0.3\",\"input_std\":\"2\"},"
	    W0 "," B0 "," W2 "," B2 "}", good_data, sizeof good_data, &info);
	assert_int_equal(info.pre.channels, 3);
	assert_true(info.pre.mean[2] == 0.3f && info.pre.std[2] == 2.0f);
	sl_mlp_free(&m);
}

/* "10.weight" sorts before "2.weight" as text; layers go by number. Gaps
 * (Dropout modules at 1, 4, ...) are fine. */
static void
test_parse_numeric_order(void **state)
{
	sl_mlp *m;

	(void)state;
	m = parse_ok("{"
	    "\"10.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[36,60]},"
	    "\"10.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[60,68]},"
	    "\"2.weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
	    "\"2.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,36]}}",
	    good_data, sizeof good_data, NULL);
	assert_int_equal(m->nlayers, 2);
	assert_int_equal(m->sizes[0], 2);
	assert_int_equal(m->sizes[2], 2);
	assert_memory_equal(m->params, good_data, sizeof good_data);
	sl_mlp_free(&m);

	m = parse_ok("{"
	    "\"0.weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]},"
	    "\"0.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,36]},"
	    "\"3.weight\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[36,60]},"
	    "\"3.bias\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[60,68]}}",
	    good_data, sizeof good_data, NULL);
	assert_int_equal(m->nlayers, 2);
	sl_mlp_free(&m);
}

/* The half-precision converter on chosen bit patterns. */
static void
test_parse_f16_bf16_values(void **state)
{
	static const uint16_t f16[12] = {
		0x0001, 0x03ff, 0x0400, 0x3c00, 0xc000, 0x7bff, 0x8000, 0x3555,
		0x8001, 0xfbff, 0x0000, 0x3800,
	};
	static const float f16_want[12] = {
		5.9604644775390625e-8f, 6.0975551605224609e-5f,
		6.103515625e-5f, 1.0f, -2.0f, 65504.0f, -0.0f,
		0.333251953125f, -5.9604644775390625e-8f, -65504.0f, 0.0f, 0.5f,
	};
	static const uint16_t bf16[12] = {
		0x3f80, 0xc049, 0x0001, 0x7f7f, 0x8000, 0x3e80,
		0x0080, 0xbf80, 0x4000, 0x0000, 0x3f00, 0x4120,
	};
	static const float bf16_want[12] = {
		1.0f, -3.140625f, 9.18354961579912e-41f, 3.3895313892515355e38f,
		-0.0f, 0.25f, 1.1754943508222875e-38f, -1.0f, 2.0f, 0.0f, 0.5f,
		10.0f,
	};
	unsigned char data[24];
	sl_mlp *m;

	(void)state;
	for (int i = 0; i < 12; i++) {
		data[2 * i] = (unsigned char)(f16[i] & 0xff);
		data[2 * i + 1] = (unsigned char)(f16[i] >> 8);
	}
	m = parse_ok("{\"0.weight\":{\"dtype\":\"F16\",\"shape\":[4,2],"
	    "\"data_offsets\":[0,16]},\"0.bias\":{\"dtype\":\"F16\","
	    "\"shape\":[4],\"data_offsets\":[16,24]}}", data, sizeof data,
	    NULL);
	for (int i = 0; i < 12; i++) {
		assert_memory_equal(&m->params[i], &f16_want[i], sizeof(float));
	}
	assert_true(signbit(m->params[6]));
	sl_mlp_free(&m);

	for (int i = 0; i < 12; i++) {
		data[2 * i] = (unsigned char)(bf16[i] & 0xff);
		data[2 * i + 1] = (unsigned char)(bf16[i] >> 8);
	}
	m = parse_ok("{\"0.weight\":{\"dtype\":\"BF16\",\"shape\":[4,2],"
	    "\"data_offsets\":[0,16]},\"0.bias\":{\"dtype\":\"BF16\","
	    "\"shape\":[4],\"data_offsets\":[16,24]}}", data, sizeof data,
	    NULL);
	for (int i = 0; i < 12; i++)
		assert_memory_equal(&m->params[i], &bf16_want[i], sizeof(float));
	sl_mlp_free(&m);

	/* inf and NaN halves are decoded, then refused as weights */
	data[0] = 0x00;
	data[1] = 0x7c; /* +inf */
	expect_fail_data("{\"0.weight\":{\"dtype\":\"F16\",\"shape\":[4,2],"
	    "\"data_offsets\":[0,16]},\"0.bias\":{\"dtype\":\"F16\","
	    "\"shape\":[4],\"data_offsets\":[16,24]}}", data, sizeof data,
	    SL_EFORMAT, "0.weight");
	data[0] = 0x00;
	data[1] = 0x7e; /* NaN */
	expect_fail_data("{\"0.weight\":{\"dtype\":\"F16\",\"shape\":[4,2],"
	    "\"data_offsets\":[0,16]},\"0.bias\":{\"dtype\":\"F16\","
	    "\"shape\":[4],\"data_offsets\":[16,24]}}", data, sizeof data,
	    SL_EFORMAT, "not finite");
}

/* --- malformed images ------------------------------------------------------ */

static void
test_bad_length_prefix(void **state)
{
	unsigned char buf[64];
	sl_mlp *m = NULL;
	sl_errmsg why;

	(void)state;
	memset(buf, 0, sizeof buf);
	for (size_t n = 0; n < 8; n++) {
		why.text[0] = '\0';
		assert_int_equal(sl_model_parse(buf, n, NULL, 0, &m, NULL, &why),
		    SL_EFORMAT);
		assert_true(why.text[0] != '\0');
	}
	assert_int_equal(sl_model_parse(NULL, 0, NULL, 0, &m, NULL, &why),
	    SL_EFORMAT);

	/* header length beyond the buffer */
	buf[0] = 57; /* 8 + 57 = 65 > 64 */
	memcpy(buf + 8, "{}", 2);
	why.text[0] = '\0';
	assert_int_equal(sl_model_parse(buf, sizeof buf, NULL, 0, &m, NULL,
	    &why), SL_EFORMAT);
	assert_true(why.text[0] != '\0');

	/* over the limit, before looking at the buffer */
	memset(buf, 0, 8);
	for (int i = 0; i < 4; i++) /* one byte over the limit, little-endian */
		buf[i] = (unsigned char)((SL_MODEL_MAX_HEADER_BYTES + 1) >> (8 * i));
	why.text[0] = '\0';
	assert_int_equal(sl_model_parse(buf, sizeof buf, NULL, 0, &m, NULL,
	    &why), SL_ELIMIT);
	assert_true(why.text[0] != '\0');
	memset(buf, 0xff, 8);
	why.text[0] = '\0';
	assert_int_equal(sl_model_parse(buf, sizeof buf, NULL, 0, &m, NULL,
	    &why), SL_ELIMIT);
	assert_true(why.text[0] != '\0');

	/* zero-length header */
	memset(buf, 0, 8);
	why.text[0] = '\0';
	assert_int_equal(sl_model_parse(buf, sizeof buf, NULL, 0, &m, NULL,
	    &why), SL_EFORMAT);
	assert_true(why.text[0] != '\0');
	assert_null(m);
}

static void
test_bad_json(void **state)
{
	static const char nul_json[] = "{\"a\":1}\0  ";
	size_t len;
	unsigned char *buf;
	sl_mlp *m = NULL;
	sl_errmsg why;

	(void)state;
	expect_fail("{\"0.weight\":", SL_EFORMAT, "JSON");
	expect_fail("{" W0 "," B0 "," W2 "," B2, SL_EFORMAT, "JSON");
	expect_fail("not json", SL_EFORMAT, "JSON");
	expect_fail("{" W0 "," B0 "," W2 "," B2 "} x", SL_EFORMAT, "after");
	expect_fail("[1,2]", SL_EFORMAT, "not an object");
	expect_fail("\"str\"", SL_EFORMAT, "not an object");
	expect_fail("{}", SL_EFORMAT, "no tensors");
	expect_fail("{\"__metadata__\":{\"format\":\"pt\"}}", SL_EFORMAT,
	    "no tensors");

	/* a NUL inside the declared header */
	buf = image("0123456789", NULL, 0, &len);
	memcpy(buf + 8, nul_json, 10);
	why.text[0] = '\0';
	assert_int_equal(sl_model_parse(buf, len, NULL, 0, &m, NULL, &why),
	    SL_EFORMAT);
	assert_true(why.text[0] != '\0');
	free(buf);
}

static void
test_bad_entries(void **state)
{
	(void)state;
	/* missing fields */
	expect_fail("{\"0.weight\":{\"shape\":[3,2],\"data_offsets\":[0,24]},"
	    B0 "," W2 "," B2 "}", SL_EFORMAT, "dtype");
	expect_fail("{\"0.weight\":{\"dtype\":\"F32\",\"data_offsets\":[0,24]},"
	    B0 "," W2 "," B2 "}", SL_EFORMAT, "shape");
	expect_fail("{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[3,2]},"
	    B0 "," W2 "," B2 "}", SL_EFORMAT, "data_offsets");
	expect_fail("{\"0.weight\":[1,2]," B0 "," W2 "," B2 "}", SL_EFORMAT,
	    "0.weight");
	expect_fail("{\"0.weight\":{\"dtype\":32,\"shape\":[3,2],"
	    "\"data_offsets\":[0,24]}," B0 "," W2 "," B2 "}", SL_EFORMAT,
	    "dtype");
	expect_fail("{\"0.weight\":{\"dtype\":\"F32\",\"shape\":\"3x2\","
	    "\"data_offsets\":[0,24]}," B0 "," W2 "," B2 "}", SL_EFORMAT,
	    "shape");

	/* dtypes */
	expect_fail("{\"0.weight\":{\"dtype\":\"F64\",\"shape\":[3,2],"
	    "\"data_offsets\":[0,48]}," B0 "," W2 "," B2 "}", SL_EUNSUPPORTED,
	    "\"0.weight\": dtype \"F64\"");
	expect_fail("{" W0 ",\"0.bias\":{\"dtype\":\"I8\",\"shape\":[3],"
	    "\"data_offsets\":[24,27]}," W2 "," B2 "}", SL_EUNSUPPORTED, "I8");
	expect_fail("{\"0.weight\":{\"dtype\":\"f32\",\"shape\":[3,2],"
	    "\"data_offsets\":[0,24]}," B0 "," W2 "," B2 "}", SL_EUNSUPPORTED,
	    "f32");

	/* shapes */
	expect_fail("{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[-3,2],"
	    "\"data_offsets\":[0,24]}," B0 "," W2 "," B2 "}", SL_EFORMAT,
	    "0.weight");
	expect_fail("{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[0,2],"
	    "\"data_offsets\":[0,0]}," B0 "," W2 "," B2 "}", SL_EFORMAT, NULL);
	expect_fail("{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[2.5,2],"
	    "\"data_offsets\":[0,24]}," B0 "," W2 "," B2 "}", SL_EFORMAT, NULL);
	expect_fail("{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[\"3\",2],"
	    "\"data_offsets\":[0,24]}," B0 "," W2 "," B2 "}", SL_EFORMAT, NULL);
	expect_fail("{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[3,1048577],"
	    "\"data_offsets\":[0,24]}," B0 "," W2 "," B2 "}", SL_ELIMIT,
	    "limit");
	expect_fail("{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[3,1e300],"
	    "\"data_offsets\":[0,24]}," B0 "," W2 "," B2 "}", SL_ELIMIT, NULL);
	expect_fail("{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[3,1e999],"
	    "\"data_offsets\":[0,24]}," B0 "," W2 "," B2 "}", SL_ELIMIT, NULL);
	expect_fail("{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[1048576,"
	    "1048576,1048576,1048576,1048576],\"data_offsets\":[0,24]},"
	    B0 "," W2 "," B2 "}", SL_ELIMIT, "overflows");
	expect_fail("{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,"
	    "1,1,1],\"data_offsets\":[0,4]}," B0 "," W2 "," B2 "}", SL_EFORMAT,
	    "dimensions");
	expect_fail("{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[6],"
	    "\"data_offsets\":[0,24]}," B0 "," W2 "," B2 "}", SL_EFORMAT,
	    "not 2");
	expect_fail("{" W0 ",\"0.bias\":{\"dtype\":\"F32\",\"shape\":[3,1],"
	    "\"data_offsets\":[24,36]}," W2 "," B2 "}", SL_EFORMAT, "not 1");

	/* offsets */
	expect_fail("{" W0 "," B0 "," W2 ",\"2.bias\":{\"dtype\":\"F32\","
	    "\"shape\":[2],\"data_offsets\":[64,72]}}", SL_EFORMAT, "outside");
	expect_fail("{" W0 "," B0 "," W2 ",\"2.bias\":{\"dtype\":\"F32\","
	    "\"shape\":[2],\"data_offsets\":[-8,0]}}", SL_EFORMAT, "outside");
	expect_fail("{" W0 "," B0 "," W2 ",\"2.bias\":{\"dtype\":\"F32\","
	    "\"shape\":[2],\"data_offsets\":[1e300,1e300]}}", SL_EFORMAT,
	    "outside");
	expect_fail("{" W0 "," B0 "," W2 ",\"2.bias\":{\"dtype\":\"F32\","
	    "\"shape\":[2],\"data_offsets\":[60.5,68]}}", SL_EFORMAT, NULL);
	expect_fail("{" W0 "," B0 "," W2 ",\"2.bias\":{\"dtype\":\"F32\","
	    "\"shape\":[2],\"data_offsets\":[60,68,76]}}", SL_EFORMAT,
	    "data_offsets");
	expect_fail("{" W0 "," B0 "," W2 ",\"2.bias\":{\"dtype\":\"F32\","
	    "\"shape\":[2],\"data_offsets\":[60]}}", SL_EFORMAT,
	    "data_offsets");
	expect_fail("{" W0 "," B0 "," W2 ",\"2.bias\":{\"dtype\":\"F32\","
	    "\"shape\":[2],\"data_offsets\":[68,60]}}", SL_EFORMAT, "before");
	expect_fail("{" W0 "," B0 "," W2 ",\"2.bias\":{\"dtype\":\"F32\","
	    "\"shape\":[2],\"data_offsets\":[56,68]}}", SL_EFORMAT, "bytes");
	expect_fail("{\"0.weight\":{\"dtype\":\"F16\",\"shape\":[3,2],"
	    "\"data_offsets\":[0,24]}," B0 "," W2 "," B2 "}", SL_EFORMAT,
	    "bytes");

	/* tensors must tile the data: overlap, hole, bytes left over */
	expect_fail("{" W0 "," B0 "," W2 ",\"2.bias\":{\"dtype\":\"F32\","
	    "\"shape\":[2],\"data_offsets\":[52,60]}}", SL_EFORMAT,
	    "contiguous");
	expect_fail("{" W0 "," B0 ",\"2.weight\":{\"dtype\":\"F32\","
	    "\"shape\":[2,3],\"data_offsets\":[40,64]},\"2.bias\":"
	    "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[60,68]}}",
	    SL_EFORMAT, "contiguous");
	expect_fail("{\"0.weight\":{\"dtype\":\"F32\",\"shape\":[3,2],"
	    "\"data_offsets\":[4,28]},\"0.bias\":{\"dtype\":\"F32\","
	    "\"shape\":[3],\"data_offsets\":[28,40]}," W2 "," B2 "}",
	    SL_EFORMAT, "contiguous");
	expect_fail_data("{" W0 "," B0 "," W2 "," B2 "}", good_data,
	    sizeof good_data - 4, SL_EFORMAT, "outside");
	{
		float more[GOOD_NFLOATS + 1] = { 0 };

		expect_fail_data("{" W0 "," B0 "," W2 "," B2 "}", more,
		    sizeof more, SL_EFORMAT, "tensors end at byte 68 of 72");
	}
}

static void
test_bad_structure(void **state)
{
	char *json;
	size_t cap = 64 * 1024, off;

	(void)state;
	/* missing halves */
	expect_fail("{" W0 "," B0 "," W2 "}", SL_EFORMAT, "2.bias");
	expect_fail("{" W0 "," W2 "," B2 "}", SL_EFORMAT, "0.bias");
	expect_fail("{" B0 "," W2 "," B2 "}", SL_EFORMAT, "0.weight");
	/* duplicates */
	expect_fail("{" W0 "," B0 "," W0 "," W2 "," B2 "}", SL_EFORMAT,
	    "twice");
	expect_fail("{\"__metadata__\":{},\"__metadata__\":{}," W0 "," B0 "}",
	    SL_EFORMAT, "twice");

	/* layers that do not chain: 2.weight takes 4 inputs after 3 */
	expect_fail("{" W0 "," B0 ",\"2.weight\":{\"dtype\":\"F32\","
	    "\"shape\":[2,4],\"data_offsets\":[36,68]},\"2.bias\":"
	    "{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[60,68]}}",
	    SL_EFORMAT, "2.weight");
	/* bias length not the weight's out */
	expect_fail("{" W0 ",\"0.bias\":{\"dtype\":\"F32\",\"shape\":[4],"
	    "\"data_offsets\":[24,40]}," W2 "," B2 "}", SL_EFORMAT, "0.bias");

	/* names that are not an MLP's */
	expect_fail("{" W0 "," B0 "," W2 "," B2 ",\"foo\":{\"dtype\":\"F32\","
	    "\"shape\":[1],\"data_offsets\":[0,4]}}", SL_EFORMAT, "foo");
	expect_fail("{" W0 "," B0 "," W2 "," B2 ",\"1.running_mean\":"
	    "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
	    SL_EFORMAT, "1.running_mean");
	expect_fail("{" W0 "," B0 "," W2 "," B2 ",\"04.weight\":"
	    "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
	    SL_EFORMAT, "04.weight");
	expect_fail("{" W0 "," B0 "," W2 "," B2 ",\"-4.weight\":"
	    "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
	    SL_EFORMAT, "-4.weight");
	expect_fail("{" W0 "," B0 ",\"99999999999999999999.weight\":"
	    "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
	    SL_EFORMAT, "99999");
	expect_fail("{" W0 "," B0 ",\"model.0.weight\":"
	    "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
	    SL_EFORMAT, "model.0.weight");

	/* too many tensors: counted before anything else is read */
	json = malloc(cap);
	assert_non_null(json);
	off = (size_t)snprintf(json, cap, "{");
	for (int i = 0; i <= SL_MODEL_MAX_TENSORS; i++)
		off += (size_t)snprintf(json + off, cap - off, "%s\"%d.weight\":0",
		    i ? "," : "", 2 * i);
	snprintf(json + off, cap - off, "}");
	expect_fail(json, SL_ELIMIT, "tensors");

	/* too many layers: 17 of 1x1 */
	{
		float ones[34];

		for (int i = 0; i < 34; i++)
			ones[i] = 1.0f;
		off = (size_t)snprintf(json, cap, "{");
		for (int l = 0; l <= SL_MLP_MAX_LAYERS; l++)
			off += (size_t)snprintf(json + off, cap - off,
			    "%s\"%d.weight\":{\"dtype\":\"F32\",\"shape\":[1,1],"
			    "\"data_offsets\":[%d,%d]},\"%d.bias\":{\"dtype\":"
			    "\"F32\",\"shape\":[1],\"data_offsets\":[%d,%d]}",
			    l ? "," : "", 2 * l, 8 * l, 8 * l + 4, 2 * l,
			    8 * l + 4, 8 * l + 8);
		snprintf(json + off, cap - off, "}");
		expect_fail_data(json, ones, sizeof ones, SL_ELIMIT, "layers");
	}
	free(json);
}

static void
test_bad_metadata(void **state)
{
	(void)state;
	expect_fail("{\"__metadata__\":{\"activation\":\"tanh\"}," W0 "," B0
	    "," W2 "," B2 "}", SL_EUNSUPPORTED, "tanh");
	expect_fail("{\"__metadata__\":{\"arch\":\"2-4-2\"}," W0 "," B0
	    "," W2 "," B2 "}", SL_EMISMATCH, "2-3-2");
	expect_fail("{\"__metadata__\":{\"arch\":\"2-3-2-1\"}," W0 "," B0
	    "," W2 "," B2 "}", SL_EMISMATCH, "2-3-2-1");
	expect_fail("{\"__metadata__\":{\"arch\":\"two-three\"}," W0 "," B0
	    "," W2 "," B2 "}", SL_EFORMAT, "two-three");
	expect_fail("{\"__metadata__\":[]," W0 "," B0 "," W2 "," B2 "}",
	    SL_EFORMAT, "__metadata__");
	expect_fail("{\"__metadata__\":{\"arch\":232}," W0 "," B0 "," W2 ","
	    B2 "}", SL_EFORMAT, "arch");
	expect_fail("{\"__metadata__\":{\"input_scale\":\"1\",\"input_mean\":"
	    "\"0\",\"input_std\":\"1x\"}," W0 "," B0 "," W2 "," B2 "}",
	    SL_EFORMAT, "input_std");
	expect_fail("{\"__metadata__\":{\"input_scale\":\"\",\"input_mean\":"
	    "\"0\",\"input_std\":\"1\"}," W0 "," B0 "," W2 "," B2 "}",
	    SL_EFORMAT, "input_scale");
	expect_fail("{\"__metadata__\":{\"input_scale\":\"1e99\",\"input_mean\":"
	    "\"0\",\"input_std\":\"1\"}," W0 "," B0 "," W2 "," B2 "}",
	    SL_EFORMAT, "input_scale");
	expect_fail("{\"__metadata__\":{\"input_scale\":\"1\",\"input_mean\":"
	    "\"nan\",\"input_std\":\"1\"}," W0 "," B0 "," W2 "," B2 "}",
	    SL_EFORMAT, "input_mean");
	expect_fail("{\"__metadata__\":{\"input_scale\":\"1\",\"input_mean\":"
	    "\"0\",\"input_std\":\"0\"}," W0 "," B0 "," W2 "," B2 "}",
	    SL_EFORMAT, "input_std");
	expect_fail("{\"__metadata__\":{\"input_scale\":\"1\"}," W0 "," B0
	    "," W2 "," B2 "}", SL_EFORMAT, "input_mean");
	expect_fail("{\"__metadata__\":{\"input_dtype\":\"int16\"}," W0 ","
	    B0 "," W2 "," B2 "}", SL_EUNSUPPORTED, "int16");
}

static void
test_bad_values(void **state)
{
	float data[GOOD_NFLOATS];
	const int want[] = { 2, 4, 2 };
	size_t len;
	unsigned char *buf;
	sl_mlp *m = NULL;
	sl_errmsg why;

	(void)state;
	memcpy(data, good_data, sizeof data);
	data[5] = NAN;
	expect_fail_data("{" W0 "," B0 "," W2 "," B2 "}", data, sizeof data,
	    SL_EFORMAT, "0.weight");
	memcpy(data, good_data, sizeof data);
	data[16] = -INFINITY;
	expect_fail_data("{" W0 "," B0 "," W2 "," B2 "}", data, sizeof data,
	    SL_EFORMAT, "2.bias");

	/* --arch from the user against the shapes */
	buf = image("{" W0 "," B0 "," W2 "," B2 "}", good_data,
	    sizeof good_data, &len);
	memset(&why, 0, sizeof why);
	assert_int_equal(sl_model_parse(buf, len, want, 2, &m, NULL, &why),
	    SL_EMISMATCH);
	assert_null(m);
	assert_string_equal(why.text, "--arch 2-4-2 but file has 2-3-2");
	assert_int_equal(sl_model_parse(buf, len, want, 1, &m, NULL, &why),
	    SL_EMISMATCH);
	assert_string_equal(why.text, "--arch 2-4 but file has 2-3-2");
	free(buf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fixture_f32),
		cmocka_unit_test(test_fixture_f16),
		cmocka_unit_test(test_fixture_bf16),
		cmocka_unit_test(test_fixture_arch_mismatch),
		cmocka_unit_test(test_fixture_truncated_and_flipped),
		cmocka_unit_test(test_load_truncated_file),
		cmocka_unit_test(test_save_round_trip),
		cmocka_unit_test(test_save_failures),
		cmocka_unit_test(test_sha256),
		cmocka_unit_test(test_parse_base),
		cmocka_unit_test(test_parse_numeric_order),
		cmocka_unit_test(test_parse_f16_bf16_values),
		cmocka_unit_test(test_bad_length_prefix),
		cmocka_unit_test(test_bad_json),
		cmocka_unit_test(test_bad_entries),
		cmocka_unit_test(test_bad_structure),
		cmocka_unit_test(test_bad_metadata),
		cmocka_unit_test(test_bad_values),
	};

	return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}

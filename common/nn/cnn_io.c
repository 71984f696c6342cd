/* cnn_io.c - convolutional students in safetensors files with PyTorch's
 * state_dict names (sl_cnn.h). */
#include "cnn_impl.h"
#include "sl_file.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FORMAT "softlabel-cnn"

static size_t
tensor_bytes(const sl_cnn_tensor *t)
{
	size_t n = 1;

	for (int d = 0; d < t->rank; d++)
		n *= (size_t)t->dims[d];
	return n * (t->i64 != NULL ? 8 : 4);
}

static int sappend(char **s, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
sappend(char **s, size_t *len, size_t *cap, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		int w;

		va_start(ap, fmt);
		w = vsnprintf(*s + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (w < 0)
			return -1;
		if ((size_t)w < *cap - *len) {
			*len += (size_t)w;
			return 0;
		}
		char *g = realloc(*s, *cap * 2 + (size_t)w);

		if (g == NULL)
			return -1;
		*s = g;
		*cap = *cap * 2 + (size_t)w;
	}
}

static void
put_le(unsigned char *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t
get_le(const unsigned char *p, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

int
sl_cnn_save(const char *path, sl_cnn *n, const sl_preproc *pre,
    enum sl_dtype input_dtype, sl_errmsg *why)
{
	char mean[16 * SL_PREPROC_MAX_CHANNELS], std[16 * SL_PREPROC_MAX_CHANNELS];
	size_t len = 0, cap = 4096, off = 0, data = 0, total;
	char *s = malloc(cap);
	unsigned char *img = NULL;
	sl_atomic_file f;
	sl_cnn_tensor t;
	const int nt = sl_cnn_ntensors(n);
	int rc;

	if (s == NULL)
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	for (size_t i = 0; i < n->nparams; i++)
		if (!isfinite(n->params[i])) {
			free(s);
			return sl_errmsg_set(why, SL_EINVAL, "parameter %zu is not "
			    "finite", i);
		}
	if (sl_preproc_check(pre, NULL, 0, why) != 0) {
		free(s);
		return SL_EINVAL;
	}
	sl_floats_format(mean, sizeof mean, pre->mean, pre->channels);
	sl_floats_format(std, sizeof std, pre->std, pre->channels);
	rc = sappend(&s, &len, &cap, "{\"__metadata__\":{\"format\":\"" FORMAT
	    "\",\"arch\":\"%s\",\"input_shape\":\"%d,%d,%d\","
	    "\"input_scale\":\"%.9g\",\"input_mean\":\"%s\",\"input_std\":\"%s\","
	    "\"input_dtype\":\"%s\"}", n->arch, n->in.C, n->in.H, n->in.W,
	    (double)pre->scale, mean, std, input_dtype == SL_DTYPE_U8 ?
	    "uint8" : "float32");
	for (int i = 0; rc == 0 && i < nt; i++) {
		const size_t b = (sl_cnn_tensor_at(n, i, &t), tensor_bytes(&t));

		rc = sappend(&s, &len, &cap, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[",
		    t.name, t.i64 ? "I64" : "F32");
		for (int d = 0; rc == 0 && d < t.rank; d++)
			rc = sappend(&s, &len, &cap, d ? ",%lld" : "%lld",
			    (long long)t.dims[d]);
		if (rc == 0)
			rc = sappend(&s, &len, &cap, "],\"data_offsets\":[%zu,%zu]}",
			    data, data + b);
		data += b;
	}
	if (rc == 0)
		rc = sappend(&s, &len, &cap, "}");
	while (rc == 0 && len % 8 != 0)
		rc = sappend(&s, &len, &cap, " ");
	if (rc != 0 || (img = malloc(8 + len + data)) == NULL) {
		free(s);
		return sl_errmsg_set(why, SL_ENOMEM, "out of memory");
	}
	put_le(img, len, 8);
	memcpy(img + 8, s, len);
	off = 8 + len;
	for (int i = 0; i < nt; i++) {
		sl_cnn_tensor_at(n, i, &t);
		if (t.i64 != NULL) {
			put_le(img + off, (uint64_t)*t.i64, 8);
			off += 8;
			continue;
		}
		const size_t cnt = tensor_bytes(&t) / 4;

		for (size_t j = 0; j < cnt; j++, off += 4) {
			uint32_t u;

			memcpy(&u, &t.f32[j], 4);
			put_le(img + off, u, 4);
		}
	}
	total = off;
	if ((rc = sl_atomic_open(&f, path, why)) == 0 &&
	    (rc = sl_atomic_write(&f, img, total, why)) == 0)
		rc = sl_atomic_commit(&f, why);
	sl_atomic_abort(&f);
	free(img);
	free(s);
	return rc;
}

/* The JSON header of a safetensors image, or NULL. */
static cJSON *
header(const void *buf, size_t len, size_t *hlen)
{
	const unsigned char *p = buf;
	uint64_t h;

	if (len < 10)
		return NULL;
	h = get_le(p, 8);
	if (h < 2 || h > SL_MODEL_MAX_HEADER_BYTES || h > len - 8 ||
	    p[8] != '{')
		return NULL;
	*hlen = (size_t)h;
	return cJSON_ParseWithLength((const char *)p + 8, (size_t)h);
}

static const char *
meta_str(const cJSON *root, const char *key)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "__metadata__");
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(m, key);

	return cJSON_IsString(j) ? j->valuestring : NULL;
}

int
sl_cnn_sniff(const void *buf, size_t len)
{
	size_t hlen;
	cJSON *root = header(buf, len, &hlen);
	const char *fmt = root ? meta_str(root, "format") : NULL;
	const int yes = fmt != NULL && strcmp(fmt, FORMAT) == 0;

	cJSON_Delete(root);
	return yes;
}

/* The preprocessing in the metadata: all three of scale, mean and std. */
static int
meta_preproc(const cJSON *root, sl_model_info *info, sl_errmsg *why)
{
	const char *sc = meta_str(root, "input_scale");
	const char *mn = meta_str(root, "input_mean");
	const char *sd = meta_str(root, "input_std");
	float mean[SL_PREPROC_MAX_CHANNELS], std[SL_PREPROC_MAX_CHANNELS];
	uint32_t one, nm, ns;
	sl_errmsg e = { "" };

	memset(info, 0, sizeof *info);
	if (sc == NULL && mn == NULL && sd == NULL)
		return 0;
	if (sc == NULL || mn == NULL || sd == NULL ||
	    sl_floats_parse(sc, &info->pre.scale, 1, &one, &e) != 0 ||
	    sl_floats_parse(mn, mean, SL_PREPROC_MAX_CHANNELS, &nm, &e) != 0 ||
	    sl_floats_parse(sd, std, SL_PREPROC_MAX_CHANNELS, &ns, &e) != 0 ||
	    sl_preproc_set(&info->pre, mean, nm, std, ns, &e) != 0 ||
	    sl_preproc_check(&info->pre, NULL, 0, &e) != 0)
		return sl_errmsg_set(why, SL_EFORMAT, "metadata input "
		    "preprocessing: %s", e.text[0] ? e.text : "input_scale, "
		    "input_mean and input_std come together");
	info->has_preproc = 1;
	return 0;
}

/* Copy tensor t's data from the file's tensor entry j. */
static int
fill_tensor(const cJSON *j, const sl_cnn_tensor *t, const unsigned char *data,
    size_t dlen, sl_errmsg *why)
{
	const cJSON *dt = cJSON_GetObjectItemCaseSensitive(j, "dtype");
	const cJSON *sh = cJSON_GetObjectItemCaseSensitive(j, "shape");
	const cJSON *of = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
	const char *want = t->i64 ? "I64" : "F32";
	const size_t bytes = tensor_bytes(t);
	double b0, b1;
	int d = 0;
	const cJSON *v;

	if (!cJSON_IsString(dt) || strcmp(dt->valuestring, want) != 0)
		return sl_errmsg_set(why, SL_EFORMAT, "tensor %s: dtype %s "
		    "expected", t->name, want);
	if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) != t->rank)
		return sl_errmsg_set(why, SL_EFORMAT, "tensor %s: rank %d "
		    "expected", t->name, t->rank);
	cJSON_ArrayForEach(v, sh) {
		if (!cJSON_IsNumber(v) || v->valuedouble != (double)t->dims[d])
			return sl_errmsg_set(why, SL_EFORMAT, "tensor %s: dimension "
			    "%d is not %lld", t->name, d, (long long)t->dims[d]);
		d++;
	}
	if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 ||
	    !cJSON_IsNumber(of->child) || !cJSON_IsNumber(of->child->next))
		return sl_errmsg_set(why, SL_EFORMAT, "tensor %s: bad "
		    "data_offsets", t->name);
	b0 = of->child->valuedouble;
	b1 = of->child->next->valuedouble;
	if (!(b0 >= 0 && b1 == b0 + (double)bytes && b1 <= (double)dlen))
		return sl_errmsg_set(why, SL_EFORMAT, "tensor %s: data_offsets "
		    "outside the data or of the wrong size", t->name);
	const unsigned char *p = data + (size_t)b0;

	if (t->i64 != NULL) {
		*t->i64 = (int64_t)get_le(p, 8);
		if (*t->i64 < 0)
			return sl_errmsg_set(why, SL_EFORMAT, "tensor %s: "
			    "negative", t->name);
		return 0;
	}
	for (size_t i = 0; i < bytes / 4; i++) {
		const uint32_t u = (uint32_t)get_le(p + 4 * i, 4);

		memcpy(&t->f32[i], &u, 4);
		if (!isfinite(t->f32[i]))
			return sl_errmsg_set(why, SL_EFORMAT, "tensor %s: "
			    "non-finite value", t->name);
	}
	return 0;
}

int
sl_cnn_parse_file(const void *buf, size_t len, sl_cnn **out,
    sl_model_info *info, sl_errmsg *why)
{
	size_t hlen = 0;
	cJSON *root = header(buf, len, &hlen);
	const char *fmt, *arch, *shape;
	sl_model_info mi;
	sl_cnn *n = NULL;
	sl_cnn_tensor t;
	int C, H, W, count = 0, rc;
	char tail;
	const cJSON *j;

	if (root == NULL)
		return sl_errmsg_set(why, SL_EFORMAT, "not a safetensors file");
	fmt = meta_str(root, "format");
	arch = meta_str(root, "arch");
	shape = meta_str(root, "input_shape");
	if (fmt == NULL || strcmp(fmt, FORMAT) != 0 || arch == NULL ||
	    shape == NULL) {
		rc = sl_errmsg_set(why, SL_EFORMAT, "metadata lacks format \""
		    FORMAT "\", arch or input_shape");
		goto out;
	}
	if (sscanf(shape, "%d,%d,%d%c", &C, &H, &W, &tail) != 3) {
		rc = sl_errmsg_set(why, SL_EFORMAT, "metadata input_shape '%.32s' "
		    "is not C,H,W", shape);
		goto out;
	}
	if ((rc = meta_preproc(root, &mi, why)) != 0)
		goto out;
	{
		sl_errmsg e = { "" };

		if ((rc = sl_cnn_new(arch, C, H, W, 0, &n, &e)) != 0) {
			rc = sl_errmsg_set(why, rc, "metadata arch: %s", e.text);
			goto out;
		}
	}
	cJSON_ArrayForEach(j, root)
		if (strcmp(j->string, "__metadata__") != 0)
			count++;
	if (count != sl_cnn_ntensors(n)) {
		rc = sl_errmsg_set(why, SL_EFORMAT, "%d tensors, the arch has %d",
		    count, sl_cnn_ntensors(n));
		goto out;
	}
	for (int i = 0; i < sl_cnn_ntensors(n); i++) {
		sl_cnn_tensor_at(n, i, &t);
		j = cJSON_GetObjectItemCaseSensitive(root, t.name);
		if (j == NULL) {
			rc = sl_errmsg_set(why, SL_EFORMAT, "no tensor %s", t.name);
			goto out;
		}
		if ((rc = fill_tensor(j, &t, (const unsigned char *)buf + 8 + hlen,
		    len - 8 - hlen, why)) != 0)
			goto out;
	}
	*out = n;
	n = NULL;
	if (info != NULL)
		*info = mi;
	rc = 0;
out:
	sl_cnn_free(&n);
	cJSON_Delete(root);
	return rc;
}

int
sl_cnn_load(const char *path, sl_cnn **out, sl_model_info *info,
    sl_errmsg *why)
{
	void *buf;
	size_t len;
	int rc;

	if ((rc = sl_file_read(path, (size_t)SL_MODEL_MAX_HEADER_BYTES + 8 +
	    SL_CNN_MAX_PARAMS * 8, &buf, &len, why)) != 0)
		return rc;
	rc = sl_cnn_parse_file(buf, len, out, info, why);
	free(buf);
	return rc;
}

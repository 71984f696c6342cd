/* sl_model.c - safetensors MLPs: parse, load, save, fingerprint.
 *
 * Everything in a file is outside input. The parser checks each limit before
 * it allocates or reads: the header length against the buffer and
 * SL_MODEL_MAX_HEADER_BYTES, the tensor count, every dimension, every byte
 * size (with overflow checks) and every data offset against the buffer.
 */
#include "sl_model.h"

#include "sl_file.h"
#include "sl_label.h" /* sl_f16_to_f32 */

#include <cJSON.h>
#include <sodium.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_RANK 8         /* dims we read in a shape before judging it */
#define MAX_INDEX 1000000  /* module indices above this are not a real model */
#define ARCH_MAX 256       /* "784-128-10" for up to 17 sizes of 7 digits */
#define IO_CHUNK (1u << 16)

enum kind { KIND_WEIGHT = 0, KIND_BIAS = 1 };

enum dt { DT_F32 = 1, DT_F16, DT_BF16 };

/* One tensor entry of the header, validated against the buffer. */
struct tensor {
	const char *name;  /* into the cJSON tree */
	long index;        /* module index: "<index>.weight" */
	enum kind kind;
	enum dt dtype;
	int rank;
	size_t shape[MAX_RANK];
	size_t count;      /* product of shape */
	size_t begin, end; /* into the data section */
};

/* --- small helpers -------------------------------------------------------- */

static uint64_t
load_u64le(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static float
bf16_to_float(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;

	memcpy(&f, &bits, sizeof f);
	return f;
}

static size_t
dtype_size(enum dt d)
{
	return d == DT_F32 ? 4 : 2;
}

/* Element i of a little-endian tensor at p, as float. */
static float
read_elem(const unsigned char *p, enum dt d, size_t i)
{
	if (d == DT_F32) {
		const unsigned char *q = p + 4 * i;
		uint32_t bits = (uint32_t)q[0] | (uint32_t)q[1] << 8 |
		    (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
		float f;

		memcpy(&f, &bits, sizeof f);
		return f;
	}
	uint16_t h = (uint16_t)(p[2 * i] | p[2 * i + 1] << 8);
	return d == DT_F16 ? sl_f16_to_f32(h) : bf16_to_float(h);
}

/* "<digits>.weight" or "<digits>.bias", digits without sign or leading zero
 * (so "0.weight" and "00.weight" cannot both name module 0). */
static int
parse_name(const char *name, long *index, enum kind *kind)
{
	const char *p = name;
	long v = 0;

	if (*p < '0' || *p > '9')
		return -1;
	if (*p == '0' && p[1] >= '0' && p[1] <= '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (*p - '0');
		if (v > MAX_INDEX)
			return -1;
	}
	if (strcmp(p, ".weight") == 0)
		*kind = KIND_WEIGHT;
	else if (strcmp(p, ".bias") == 0)
		*kind = KIND_BIAS;
	else
		return -1;
	*index = v;
	return 0;
}

/* A JSON number that is an integer in [0, max]; cJSON keeps doubles, which
 * hold every integer up to 2^53 exactly. */
static int
json_size(const cJSON *j, size_t max, size_t *out)
{
	double v;

	if (!cJSON_IsNumber(j))
		return -1;
	v = j->valuedouble;
	if (!(v >= 0.0 && v <= 9007199254740992.0) || v != floor(v))
		return -1;
	if ((uint64_t)v > max)
		return -1;
	*out = (size_t)v;
	return 0;
}

static int
cmp_tensor(const void *a, const void *b)
{
	const struct tensor *x = a, *y = b;

	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	return (int)x->kind - (int)y->kind;
}

static int
cmp_begin(const void *a, const void *b)
{
	const struct tensor *x = a, *y = b;

	if (x->begin != y->begin)
		return x->begin < y->begin ? -1 : 1;
	return x->end < y->end ? -1 : x->end > y->end;
}

static void
format_sizes(const int *sizes, int nlayers, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (int l = 0; l <= nlayers && off < len; l++) {
		int w = snprintf(buf + off, len - off, l ? "-%d" : "%d",
		    sizes[l]);

		if (w < 0)
			break;
		off += (size_t)w;
	}
}

/* --- header parsing ------------------------------------------------------- */

/* Fill t from the header entry j named name; data_len bounds the offsets. */
static int
parse_tensor(const cJSON *j, const char *name, size_t data_len,
    struct tensor *t, sl_errmsg *why)
{
	const cJSON *dtype, *shape, *offs, *d;
	size_t esize, bytes;
	int r = 0;

	memset(t, 0, sizeof *t);
	t->name = name;
	if (parse_name(name, &t->index, &t->kind) != 0)
		return sl_errmsg_set(why, SL_EFORMAT, "unexpected tensor \"%.64s\" "
		    "(an MLP has only \"<i>.weight\" and \"<i>.bias\")", name);
	if (!cJSON_IsObject(j))
		return sl_errmsg_set(why, SL_EFORMAT,
		    "tensor \"%.64s\": entry is not an object", name);

	dtype = cJSON_GetObjectItemCaseSensitive(j, "dtype");
	if (!cJSON_IsString(dtype))
		return sl_errmsg_set(why, SL_EFORMAT,
		    "tensor \"%.64s\": missing or non-string \"dtype\"", name);
	if (strcmp(dtype->valuestring, "F32") == 0)
		t->dtype = DT_F32;
	else if (strcmp(dtype->valuestring, "F16") == 0)
		t->dtype = DT_F16;
	else if (strcmp(dtype->valuestring, "BF16") == 0)
		t->dtype = DT_BF16;
	else
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "tensor \"%.64s\": "
		    "dtype \"%.32s\" (F32, F16 and BF16 are read)", name,
		    dtype->valuestring);

	shape = cJSON_GetObjectItemCaseSensitive(j, "shape");
	if (!cJSON_IsArray(shape))
		return sl_errmsg_set(why, SL_EFORMAT,
		    "tensor \"%.64s\": missing or non-array \"shape\"", name);
	cJSON_ArrayForEach(d, shape) {
		double v;

		if (t->rank == MAX_RANK)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "tensor \"%.64s\": more than %d dimensions", name,
			    MAX_RANK);
		v = cJSON_IsNumber(d) ? d->valuedouble : 0.0;
		if (v != floor(v) || v < 1.0)
			return sl_errmsg_set(why, SL_EFORMAT, "tensor \"%.64s\": "
			    "dimension %d is not a positive integer", name,
			    t->rank);
		if (v > (double)SL_MLP_MAX_WIDTH)
			return sl_errmsg_set(why, SL_ELIMIT, "tensor \"%.64s\": "
			    "dimension %d is %.0f, over the limit %d", name,
			    t->rank, v, SL_MLP_MAX_WIDTH);
		t->shape[t->rank++] = (size_t)v;
	}

	esize = dtype_size(t->dtype);
	t->count = 1;
	for (int i = 0; i < t->rank; i++) {
		if (t->count > SIZE_MAX / t->shape[i])
			return sl_errmsg_set(why, SL_ELIMIT,
			    "tensor \"%.64s\": element count overflows", name);
		t->count *= t->shape[i];
	}
	if (t->count > SIZE_MAX / esize)
		return sl_errmsg_set(why, SL_ELIMIT,
		    "tensor \"%.64s\": byte size overflows", name);
	bytes = t->count * esize;

	offs = cJSON_GetObjectItemCaseSensitive(j, "data_offsets");
	if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
		return sl_errmsg_set(why, SL_EFORMAT, "tensor \"%.64s\": "
		    "missing or malformed \"data_offsets\"", name);
	if (json_size(cJSON_GetArrayItem(offs, 0), data_len, &t->begin) != 0 ||
	    json_size(cJSON_GetArrayItem(offs, 1), data_len, &t->end) != 0)
		return sl_errmsg_set(why, SL_EFORMAT, "tensor \"%.64s\": "
		    "data_offsets outside the %zu data bytes", name, data_len);
	if (t->end < t->begin)
		return sl_errmsg_set(why, SL_EFORMAT, "tensor \"%.64s\": "
		    "data_offsets end %zu before begin %zu", name, t->end,
		    t->begin);
	if (t->end - t->begin != bytes)
		return sl_errmsg_set(why, SL_EFORMAT, "tensor \"%.64s\": "
		    "%zu bytes for a shape of %zu elements of %zu bytes", name,
		    t->end - t->begin, t->count, esize);

	if (t->kind == KIND_WEIGHT && t->rank != 2)
		r = sl_errmsg_set(why, SL_EFORMAT, "tensor \"%.64s\": weight "
		    "has %d dimensions, not 2 (out, in)", name, t->rank);
	else if (t->kind == KIND_BIAS && t->rank != 1)
		r = sl_errmsg_set(why, SL_EFORMAT, "tensor \"%.64s\": bias has "
		    "%d dimensions, not 1", name, t->rank);
	return r;
}

/* Metadata floats: the whole string must be finite decimals, one or
 * (means and stds, one per channel) a comma-separated list. */
static int
meta_floats(const cJSON *meta, const char *key, float *out, uint32_t cap,
    uint32_t *n, sl_errmsg *why)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(meta, key);
	sl_errmsg e = { "" };

	if (j == NULL)
		return sl_errmsg_set(why, SL_EFORMAT, "metadata has input "
		    "preprocessing but no \"%s\"", key);
	if (sl_floats_parse(j->valuestring, out, cap, n, &e) != 0)
		return sl_errmsg_set(why, SL_EFORMAT, "metadata \"%s\": %s",
		    key, e.text);
	return 0;
}

/* Check __metadata__ against the layer sizes found from the shapes. */
static int
parse_metadata(const cJSON *meta, const int *sizes, int nlayers,
    sl_model_info *info, sl_errmsg *why)
{
	const cJSON *j;
	char have[ARCH_MAX];
	int r;

	memset(info, 0, sizeof *info);
	if (meta == NULL)
		return 0;
	if (!cJSON_IsObject(meta))
		return sl_errmsg_set(why, SL_EFORMAT,
		    "\"__metadata__\" is not an object");
	cJSON_ArrayForEach(j, meta)
		if (!cJSON_IsString(j))
			return sl_errmsg_set(why, SL_EFORMAT, "metadata "
			    "\"%.64s\" is not a string", j->string);

	j = cJSON_GetObjectItemCaseSensitive(meta, "arch");
	if (j != NULL) {
		int msizes[SL_MLP_MAX_LAYERS + 1], mn;

		if (sl_mlp_parse_arch(j->valuestring, msizes, &mn) != 0)
			return sl_errmsg_set(why, SL_EFORMAT, "metadata arch "
			    "\"%.64s\" is not like 784-128-10", j->valuestring);
		if (mn != nlayers || memcmp(msizes, sizes,
		    (size_t)(nlayers + 1) * sizeof *sizes) != 0) {
			format_sizes(sizes, nlayers, have, sizeof have);
			return sl_errmsg_set(why, SL_EMISMATCH, "metadata arch "
			    "%.64s but the tensors are %.64s", j->valuestring,
			    have);
		}
	}
	j = cJSON_GetObjectItemCaseSensitive(meta, "activation");
	if (j != NULL && strcmp(j->valuestring, "relu") != 0)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "activation \"%.32s\" "
		    "(only relu)", j->valuestring);
	j = cJSON_GetObjectItemCaseSensitive(meta, "input_dtype");
	if (j != NULL && strcmp(j->valuestring, "uint8") != 0 &&
	    strcmp(j->valuestring, "float32") != 0)
		return sl_errmsg_set(why, SL_EUNSUPPORTED, "input_dtype "
		    "\"%.32s\" (uint8 or float32)", j->valuestring);

	if (cJSON_GetObjectItemCaseSensitive(meta, "input_scale") != NULL ||
	    cJSON_GetObjectItemCaseSensitive(meta, "input_mean") != NULL ||
	    cJSON_GetObjectItemCaseSensitive(meta, "input_std") != NULL) {
		/* All three or none: a partial set has no obvious default,
		 * since the scale depends on the data's dtype. */
		float mean[SL_PREPROC_MAX_CHANNELS], std[SL_PREPROC_MAX_CHANNELS];
		uint32_t one, nmean, nstd;
		sl_errmsg e = { "" };

		if ((r = meta_floats(meta, "input_scale", &info->pre.scale, 1,
		    &one, why)) != 0 ||
		    (r = meta_floats(meta, "input_mean", mean,
		    SL_PREPROC_MAX_CHANNELS, &nmean, why)) != 0 ||
		    (r = meta_floats(meta, "input_std", std,
		    SL_PREPROC_MAX_CHANNELS, &nstd, why)) != 0)
			return r;
		for (uint32_t c = 0; c < nstd; c++)
			if (std[c] == 0.0f)
				return sl_errmsg_set(why, SL_EFORMAT,
				    "metadata input_std is 0");
		if (sl_preproc_set(&info->pre, mean, nmean, std, nstd, &e) != 0 ||
		    sl_preproc_check(&info->pre, NULL, 0, &e) != 0)
			return sl_errmsg_set(why, SL_EFORMAT, "metadata input "
			    "preprocessing: %s", e.text);
		info->has_preproc = 1;
	}
	return 0;
}

const char *
sl_model_sniff(const void *buf, size_t len)
{
	const unsigned char *p = buf;
	size_t text = 0;

	if (len >= 6 && memcmp(p, "\x93NUMPY", 6) == 0)
		return "a NumPy .npy array";
	if (len >= 2 && p[0] == 0x1f && p[1] == 0x8b)
		return "gzip data (an IDX.gz dataset?)";
	if (len >= 4 && p[0] == 0 && p[1] == 0 && p[3] >= 1 && p[3] <= 4 &&
	    (p[2] == 0x08 || p[2] == 0x09 || (p[2] >= 0x0b && p[2] <= 0x0e)))
		return "an IDX dataset";
	if (len >= 6 && memcmp(p, "SLCKPT", 6) == 0)
		return "a softlabel checkpoint";
	if (len >= 4 && memcmp(p, "PK\3\4", 4) == 0)
		return "a zip archive (a PyTorch .pt/.pth checkpoint?)";
	if (len >= 2 && p[0] == 0x80 && p[1] >= 2 && p[1] <= 5)
		return "a Python pickle (a PyTorch .pt file?)";
	if (len >= 9 && p[8] == '{')
		return NULL; /* safetensors, maybe damaged */
	/* ONNX: a ModelProto starts with ir_version (field 1, varint). */
	if (len >= 2 && p[0] == 0x08 && p[1] < 0x80)
		return "an ONNX model";
	for (; text < len && text < 512; text++)
		if (p[text] < 0x20 && p[text] != '\n' && p[text] != '\r' &&
		    p[text] != '\t')
			break;
	if (len > 0 && (text == len || text == 512))
		return "text";
	return NULL;
}

int
sl_model_parse(const void *buf, size_t len, const int *expect_sizes,
    int expect_nlayers, sl_mlp **out, sl_model_info *info, sl_errmsg *why)
{
	const unsigned char *p = buf;
	const unsigned char *data;
	char *text = NULL;
	cJSON *root = NULL;
	const cJSON *meta = NULL, *j;
	const char *end = NULL;
	struct tensor *ts = NULL;
	sl_mlp *m = NULL;
	sl_model_info mi;
	int sizes[SL_MLP_MAX_LAYERS + 1];
	int nt = 0, nlayers, r;
	uint64_t hlen;
	size_t data_len;

	if (why != NULL)
		why->text[0] = '\0';
	if (len < 8)
		return sl_errmsg_set(why, SL_EFORMAT, "%zu bytes, shorter than "
		    "the 8-byte header length", len);
	hlen = load_u64le(p);
	if (hlen > len - 8) {
		const char *what = sl_model_sniff(p, len);

		/* Not safetensors at all: say what it looks like. */
		if (what != NULL && strcmp(what, "an ONNX model") == 0)
			return sl_errmsg_set(why, SL_EUNSUPPORTED, "an ONNX "
			    "model; this takes a safetensors MLP only");
		if (what != NULL)
			return sl_errmsg_set(why, SL_EFORMAT, "%s, not a model "
			    "(%s)", what, SL_MODEL_FORMATS);
	}
	if (hlen > SL_MODEL_MAX_HEADER_BYTES)
		return sl_errmsg_set(why, SL_ELIMIT, "header of %llu bytes, "
		    "over the limit of %u", (unsigned long long)hlen,
		    SL_MODEL_MAX_HEADER_BYTES);
	if (hlen > len - 8)
		return sl_errmsg_set(why, SL_EFORMAT, "header of %llu bytes "
		    "but only %zu bytes follow", (unsigned long long)hlen,
		    len - 8);
	data = p + 8 + hlen;
	data_len = len - 8 - (size_t)hlen;

	/* A NUL-terminated copy, so that no JSON parser can read past it. */
	text = malloc((size_t)hlen + 1);
	if (text == NULL) {
		r = sl_errmsg_set(why, SL_ENOMEM, "no memory for the header");
		goto fail;
	}
	memcpy(text, p + 8, (size_t)hlen);
	text[hlen] = '\0';
	root = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &end, 0);
	if (root == NULL) {
		/* On failure end points at the error. */
		r = sl_errmsg_set(why, SL_EFORMAT, "header is not valid JSON "
		    "(near byte %zu)", end != NULL ? (size_t)(end - text) : 0);
		goto fail;
	}
	/* Only whitespace may follow: the spaces that pad the header. */
	for (; end < text + hlen; end++) {
		if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
			r = sl_errmsg_set(why, SL_EFORMAT, "header has bytes "
			    "after the JSON (at byte %zu)",
			    (size_t)(end - text));
			goto fail;
		}
	}
	if (!cJSON_IsObject(root)) {
		r = sl_errmsg_set(why, SL_EFORMAT, "header is JSON but not an "
		    "object");
		goto fail;
	}

	cJSON_ArrayForEach(j, root) {
		if (j->string != NULL && strcmp(j->string, "__metadata__") == 0) {
			if (meta != NULL) {
				r = sl_errmsg_set(why, SL_EFORMAT,
				    "\"__metadata__\" appears twice");
				goto fail;
			}
			meta = j;
		} else if (++nt > SL_MODEL_MAX_TENSORS) {
			r = sl_errmsg_set(why, SL_ELIMIT, "more than %d tensors",
			    SL_MODEL_MAX_TENSORS);
			goto fail;
		}
	}
	if (nt == 0) {
		r = sl_errmsg_set(why, SL_EFORMAT, "no tensors");
		goto fail;
	}
	ts = calloc((size_t)nt, sizeof *ts);
	if (ts == NULL) {
		r = sl_errmsg_set(why, SL_ENOMEM, "no memory for %d tensors", nt);
		goto fail;
	}
	nt = 0;
	cJSON_ArrayForEach(j, root) {
		if (j == meta)
			continue;
		r = parse_tensor(j, j->string != NULL ? j->string : "",
		    data_len, &ts[nt], why);
		if (r != 0)
			goto fail;
		nt++;
	}

	/* Layers in module order (numeric: 10 after 2); each index has exactly
	 * one weight and one bias, and the sort puts the weight first. */
	qsort(ts, (size_t)nt, sizeof *ts, cmp_tensor);
	for (int i = 1; i < nt; i++) {
		if (cmp_tensor(&ts[i - 1], &ts[i]) == 0) {
			r = sl_errmsg_set(why, SL_EFORMAT, "tensor \"%.64s\" "
			    "appears twice", ts[i].name);
			goto fail;
		}
	}
	nlayers = 0;
	for (int i = 0; i < nt; i++) {
		const struct tensor *t = &ts[i];

		if (t->kind == KIND_BIAS && (i == 0 ||
		    ts[i - 1].index != t->index)) {
			r = sl_errmsg_set(why, SL_EFORMAT, "bias \"%.64s\" has "
			    "no \"%ld.weight\"", t->name, t->index);
			goto fail;
		}
		if (t->kind == KIND_WEIGHT && (i + 1 == nt ||
		    ts[i + 1].index != t->index)) {
			r = sl_errmsg_set(why, SL_EFORMAT, "weight \"%.64s\" has "
			    "no \"%ld.bias\"", t->name, t->index);
			goto fail;
		}
		if (t->kind == KIND_BIAS)
			continue;
		if (nlayers == SL_MLP_MAX_LAYERS) {
			r = sl_errmsg_set(why, SL_ELIMIT, "more than %d layers",
			    SL_MLP_MAX_LAYERS);
			goto fail;
		}
		/* weight (out, in); shapes are <= SL_MLP_MAX_WIDTH */
		if (nlayers == 0) {
			sizes[0] = (int)t->shape[1];
		} else if ((int)t->shape[1] != sizes[nlayers]) {
			r = sl_errmsg_set(why, SL_EFORMAT, "\"%.64s\" takes %zu "
			    "inputs but the layer before gives %d", t->name,
			    t->shape[1], sizes[nlayers]);
			goto fail;
		}
		if (ts[i + 1].shape[0] != t->shape[0]) {
			r = sl_errmsg_set(why, SL_EFORMAT, "\"%.64s\" has %zu "
			    "values for %zu outputs", ts[i + 1].name,
			    ts[i + 1].shape[0], t->shape[0]);
			goto fail;
		}
		sizes[++nlayers] = (int)t->shape[0];
	}

	/* The safetensors rule: the tensors tile the data section, no holes,
	 * no overlap, nothing after (no polyglot files). The library PyTorch
	 * uses refuses anything else, so we do too. Checked after the
	 * structure, whose messages say more; leaves ts in module order. */
	qsort(ts, (size_t)nt, sizeof *ts, cmp_begin);
	for (int i = 0; i < nt; i++) {
		const size_t prev = i > 0 ? ts[i - 1].end : 0;

		if (ts[i].begin != prev) {
			r = sl_errmsg_set(why, SL_EFORMAT, "tensor \"%.64s\" "
			    "starts at %zu, not at %zu where the previous one "
			    "ends (data must be contiguous)", ts[i].name,
			    ts[i].begin, prev);
			goto fail;
		}
	}
	if (ts[nt - 1].end != data_len) {
		r = sl_errmsg_set(why, SL_EFORMAT, "tensors end at byte %zu of "
		    "%zu data bytes", ts[nt - 1].end, data_len);
		goto fail;
	}
	qsort(ts, (size_t)nt, sizeof *ts, cmp_tensor);

	if (expect_sizes != NULL && (expect_nlayers != nlayers ||
	    memcmp(expect_sizes, sizes,
	    (size_t)(nlayers + 1) * sizeof *sizes) != 0)) {
		char want[ARCH_MAX], have[ARCH_MAX];

		format_sizes(expect_sizes, expect_nlayers < 0 ? 0 :
		    expect_nlayers > SL_MLP_MAX_LAYERS ? SL_MLP_MAX_LAYERS :
		    expect_nlayers, want, sizeof want);
		format_sizes(sizes, nlayers, have, sizeof have);
		r = sl_errmsg_set(why, SL_EMISMATCH, "--arch %s but file has %s",
		    want, have);
		goto fail;
	}
	if ((r = parse_metadata(meta, sizes, nlayers, &mi, why)) != 0)
		goto fail;

	r = sl_mlp_new(sizes, nlayers, &m);
	if (r == SL_EINVAL) {
		r = sl_errmsg_set(why, SL_ELIMIT, "more than %zu parameters",
		    SL_MLP_MAX_PARAMS);
		goto fail;
	} else if (r != 0) {
		r = sl_errmsg_set(why, r, "no memory for the parameters");
		goto fail;
	}
	for (int i = 0; i < nt; i++) {
		const struct tensor *t = &ts[i];
		const int l = i / 2; /* weight, bias pairs in layer order */
		float *dst = t->kind == KIND_WEIGHT ? m->W[l] : m->b[l];

		for (size_t k = 0; k < t->count; k++) {
			dst[k] = read_elem(data + t->begin, t->dtype, k);
			if (!isfinite(dst[k])) {
				r = sl_errmsg_set(why, SL_EFORMAT, "tensor "
				    "\"%.64s\": element %zu is not finite",
				    t->name, k);
				goto fail;
			}
		}
	}

	*out = m;
	if (info != NULL)
		*info = mi;
	free(ts);
	cJSON_Delete(root);
	free(text);
	return 0;
fail:
	sl_mlp_free(&m);
	free(ts);
	cJSON_Delete(root);
	free(text);
	return r;
}

/* --- files ---------------------------------------------------------------- */

int
sl_model_load(const char *path, const int *expect_sizes, int expect_nlayers,
    sl_mlp **out, sl_model_info *info, sl_errmsg *why)
{
	/* The largest file worth reading: a full header and the most float32
	 * parameters an MLP may have. */
	const uint64_t max_bytes = 8 + (uint64_t)SL_MODEL_MAX_HEADER_BYTES +
	    (uint64_t)SL_MLP_MAX_PARAMS * 4;
	void *buf;
	size_t len;
	int r;

	if (why != NULL)
		why->text[0] = '\0';
	/* A file that shrinks while being read comes back short and then
	 * fails to parse like any truncated file. */
	r = sl_file_read(path, max_bytes > SIZE_MAX ? SIZE_MAX :
	    (size_t)max_bytes, &buf, &len, why);
	if (r != 0)
		return r;
	r = sl_model_parse(buf, len, expect_sizes, expect_nlayers, out, info,
	    why);
	free(buf);
	return r;
}

/* Buffered little-endian writer for sl_model_save, in front of an atomic
 * file: the float conversions go 4 bytes at a time, the writes IO_CHUNK. */
struct writer {
	sl_atomic_file f;
	sl_errmsg *why; /* holds the text of err */
	int err;        /* first failure, sticky */
	size_t used;
	unsigned char buf[IO_CHUNK];
};

static void
wflush(struct writer *w)
{
	if (w->err == 0 && w->used > 0)
		w->err = sl_atomic_write(&w->f, w->buf, w->used, w->why);
	w->used = 0;
}

static void
wbytes(struct writer *w, const void *p, size_t n)
{
	const unsigned char *s = p;

	while (n > 0) {
		size_t k = sizeof w->buf - w->used;

		if (k > n)
			k = n;
		memcpy(w->buf + w->used, s, k);
		w->used += k;
		s += k;
		n -= k;
		if (w->used == sizeof w->buf)
			wflush(w);
	}
}

static void
wfloats(struct writer *w, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char b[4];
		uint32_t bits;

		memcpy(&bits, &x[i], sizeof bits);
		b[0] = (unsigned char)bits;
		b[1] = (unsigned char)(bits >> 8);
		b[2] = (unsigned char)(bits >> 16);
		b[3] = (unsigned char)(bits >> 24);
		wbytes(w, b, 4);
	}
}

/* Append printf output to a growing string; returns -1 when out of memory. */
static int
sappend(char **s, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int
sappend(char **s, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(*s + *len, *cap - *len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return -1;
		if ((size_t)n < *cap - *len) {
			*len += (size_t)n;
			return 0;
		}
		char *t = realloc(*s, *cap * 2);
		if (t == NULL)
			return -1;
		*s = t;
		*cap *= 2;
	}
}

/* The JSON header: metadata, then the tensors in data order, padded with
 * spaces so that the data starts at a multiple of 8. */
static int
build_header(const sl_mlp *m, const sl_preproc *pre,
    enum sl_dtype input_dtype, char **out, size_t *out_len)
{
	char arch[ARCH_MAX];
	char mean[16 * SL_PREPROC_MAX_CHANNELS], std[16 * SL_PREPROC_MAX_CHANNELS];
	size_t len = 0, cap = 1024, off = 0;
	char *s = malloc(cap);

	if (s == NULL)
		return -1;
	sl_mlp_format_arch(m, arch, sizeof arch);
	sl_floats_format(mean, sizeof mean, pre->mean, pre->channels);
	sl_floats_format(std, sizeof std, pre->std, pre->channels);
	if (sappend(&s, &len, &cap, "{\"__metadata__\":{\"format\":"
	    "\"softlabel-mlp\",\"arch\":\"%s\",\"activation\":\"relu\","
	    "\"input_scale\":\"%.9g\",\"input_mean\":\"%s\","
	    "\"input_std\":\"%s\",\"input_dtype\":\"%s\"}", arch,
	    (double)pre->scale, mean, std,
	    input_dtype == SL_DTYPE_U8 ? "uint8" : "float32") != 0)
		goto fail;
	for (int l = 0; l < m->nlayers; l++) {
		const size_t in = (size_t)m->sizes[l], o = (size_t)m->sizes[l + 1];
		const size_t wb = o * in * 4, bb = o * 4;

		if (sappend(&s, &len, &cap, ",\"%d.weight\":{\"dtype\":\"F32\","
		    "\"shape\":[%zu,%zu],\"data_offsets\":[%zu,%zu]}",
		    2 * l, o, in, off, off + wb) != 0)
			goto fail;
		off += wb;
		if (sappend(&s, &len, &cap, ",\"%d.bias\":{\"dtype\":\"F32\","
		    "\"shape\":[%zu],\"data_offsets\":[%zu,%zu]}",
		    2 * l, o, off, off + bb) != 0)
			goto fail;
		off += bb;
	}
	if (sappend(&s, &len, &cap, "}") != 0)
		goto fail;
	while ((8 + len) % 8 != 0)
		if (sappend(&s, &len, &cap, " ") != 0)
			goto fail;
	*out = s;
	*out_len = len;
	return 0;
fail:
	free(s);
	return -1;
}

int
sl_model_save(const char *path, const sl_mlp *m, const sl_preproc *pre,
    enum sl_dtype input_dtype, sl_errmsg *why)
{
	struct writer *w;
	char *header;
	size_t hlen;
	unsigned char lenbuf[8];
	int r;

	if (why != NULL)
		why->text[0] = '\0';
	/* A file we could not load back is not worth writing. Each layer's
	 * bias follows its weight in the parameter block (sl_nn.h). */
	for (int l = 0; l < m->nlayers; l++) {
		const size_t nw = (size_t)m->sizes[l + 1] * m->sizes[l];

		for (size_t i = 0; i < nw + (size_t)m->sizes[l + 1]; i++) {
			if (!isfinite(m->W[l][i]))
				return sl_errmsg_set(why, SL_EINVAL, "layer %d "
				    "has a non-finite %s", l,
				    i < nw ? "weight" : "bias");
		}
	}
	if (sl_preproc_check(pre, NULL, 0, why) != 0)
		return SL_EINVAL;
	if (build_header(m, pre, input_dtype, &header, &hlen) != 0)
		return sl_errmsg_set(why, SL_ENOMEM, "no memory for the header");

	w = malloc(sizeof *w);
	if (w == NULL) {
		free(header);
		return sl_errmsg_set(why, SL_ENOMEM, "no memory");
	}
	w->why = why;
	w->err = 0;
	w->used = 0;
	r = sl_atomic_open(&w->f, path, why);
	if (r != 0)
		goto fail;
	for (int i = 0; i < 8; i++)
		lenbuf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
	wbytes(w, lenbuf, sizeof lenbuf);
	wbytes(w, header, hlen);
	for (int l = 0; l < m->nlayers; l++) {
		wfloats(w, m->W[l], (size_t)m->sizes[l + 1] * m->sizes[l]);
		wfloats(w, m->b[l], (size_t)m->sizes[l + 1]);
	}
	wflush(w);
	if ((r = w->err) != 0)
		goto fail;
	r = sl_atomic_commit(&w->f, why);
fail:
	sl_atomic_abort(&w->f); /* no-op after a commit */
	free(w);
	free(header);
	return r;
}

int
sl_model_sha256(const char *path, char hex[65], sl_errmsg *why)
{
	crypto_hash_sha256_state st;
	unsigned char digest[crypto_hash_sha256_BYTES];
	unsigned char *buf = NULL;
	int fd, r = 0;

	if (why != NULL)
		why->text[0] = '\0';
	if (sodium_init() < 0)
		return sl_errmsg_set(why, SL_EUNSUPPORTED,
		    "libsodium failed to initialise");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return sl_errmsg_set(why, errno, "cannot open: %s",
		    strerror(errno));
	buf = malloc(IO_CHUNK);
	if (buf == NULL) {
		r = sl_errmsg_set(why, SL_ENOMEM, "no memory");
		goto fail;
	}
	crypto_hash_sha256_init(&st);
	for (;;) {
		ssize_t n = read(fd, buf, IO_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = sl_errmsg_set(why, errno, "read: %s", strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		crypto_hash_sha256_update(&st, buf, (unsigned long long)n);
	}
	crypto_hash_sha256_final(&st, digest);
	sodium_bin2hex(hex, 65, digest, sizeof digest);
fail:
	free(buf);
	close(fd);
	return r;
}

/* sl_meta.c - the job-and-teachers blob of META_REPLY (see sl_meta.h). */
#include "sl_meta.h"

#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_msgpack.h"

/* The packer's write callback lives in sl_proto.c; this one is the same
 * append into an sl_proto_buf. */
static int
meta_write(void *data, const char *src, size_t n)
{
	sl_proto_buf *b = data;

	if (n == 0)
		return 0;
	if (n > SIZE_MAX - b->len)
		return -1;
	if (b->len + n > b->cap) {
		size_t cap = b->cap < 1024 ? 1024 : b->cap;
		uint8_t *p;

		while (cap < b->len + n) {
			if (cap > SIZE_MAX / 2)
				return -1;
			cap *= 2;
		}
		if ((p = realloc(b->p, cap)) == NULL)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
	return 0;
}

static int
pstr(msgpack_packer *pk, const char *s, size_t n)
{
	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int
pkey(msgpack_packer *pk, const char *k)
{
	return pstr(pk, k, strlen(k));
}

static int
pack_job(msgpack_packer *pk, const sl_store_job *j)
{
	const sl_fingerprint *f = &j->dataset;
	int bad = msgpack_pack_map(pk, 8);

	bad |= pkey(pk, "path") || pstr(pk, j->dataset_path,
	    strnlen(j->dataset_path, sizeof j->dataset_path - 1));
	bad |= pkey(pk, "rows") || msgpack_pack_uint64(pk, f->rows);
	bad |= pkey(pk, "shape") || msgpack_pack_array(pk, f->ndim);
	for (uint32_t i = 0; i < f->ndim && i < SL_DATA_MAX_DIMS; i++)
		bad |= msgpack_pack_uint64(pk, f->shape[i]);
	bad |= pkey(pk, "dtype") || msgpack_pack_uint32(pk, (uint32_t)f->dtype);
	bad |= pkey(pk, "sha256") || msgpack_pack_bin(pk, 32) ||
	    msgpack_pack_bin_body(pk, f->sha256, 32);
	bad |= pkey(pk, "shard_rows") || msgpack_pack_uint32(pk, j->shard_rows);
	bad |= pkey(pk, "first") || msgpack_pack_uint64(pk, j->rows_first);
	/* rows_end 0 is the whole dataset, as sl_store_init_job takes it. */
	bad |= pkey(pk, "end") || msgpack_pack_uint64(pk, j->rows_end ?
	    j->rows_end : f->rows);
	return bad;
}

static int
pack_teacher(msgpack_packer *pk, const sl_store_teacher *t)
{
	uint8_t pre[SL_PREPROC_MAX_BYTES];
	const size_t npre = t->has_pre ? sl_preproc_pack(&t->pre, pre) : 0;
	int bad = msgpack_pack_map(pk, t->views ? 11 : 8);

	bad |= pkey(pk, "index") || msgpack_pack_uint32(pk, t->index);
	bad |= pkey(pk, "name") || pstr(pk, t->name, strlen(t->name));
	bad |= pkey(pk, "model") || pstr(pk, t->model_sha256,
	    strlen(t->model_sha256));
	bad |= pkey(pk, "temp") || msgpack_pack_float(pk, t->temperature);
	bad |= pkey(pk, "enc") || msgpack_pack_uint32(pk,
	    (uint32_t)t->fmt.encoding);
	bad |= pkey(pk, "classes") || msgpack_pack_uint32(pk, t->fmt.classes);
	bad |= pkey(pk, "k") || msgpack_pack_uint16(pk, t->fmt.k);
	bad |= pkey(pk, "pre") || msgpack_pack_bin(pk, npre) ||
	    msgpack_pack_bin_body(pk, pre, npre);
	if (t->views) {
		uint8_t rb[SL_VIEW_RECIPE_BYTES];

		sl_view_recipe_pack(&t->view_recipe, rb);
		bad |= pkey(pk, "views") || msgpack_pack_uint32(pk, t->views);
		bad |= pkey(pk, "vrecipe") || msgpack_pack_bin(pk, sizeof rb) ||
		    msgpack_pack_bin_body(pk, rb, sizeof rb);
		bad |= pkey(pk, "vseed") || msgpack_pack_uint64(pk,
		    t->view_seed);
	}
	return bad;
}

int
sl_meta_encode(const sl_store_job *job, const sl_store_teacher *t, size_t n,
    sl_proto_buf *b)
{
	msgpack_packer pk;
	int bad;

	if (n > SL_STORE_MAX_TEACHERS || job->dataset.ndim > SL_DATA_MAX_DIMS)
		return SL_EINVAL;
	b->len = 0;
	msgpack_packer_init(&pk, b, meta_write);
	bad = msgpack_pack_map(&pk, 2);
	bad |= pkey(&pk, "job") || pack_job(&pk, job);
	bad |= pkey(&pk, "teachers") || msgpack_pack_array(&pk, (uint32_t)n);
	for (size_t i = 0; i < n && !bad; i++)
		bad |= pack_teacher(&pk, &t[i]);
	if (bad) {
		b->len = 0;
		return SL_ENOMEM;
	}
	return 0;
}

/* ---- decoding ---------------------------------------------------------- */

/* The next key must be want. */
static int
key(sl_mp *c, const char *want, sl_errmsg *why)
{
	const uint8_t *k;
	size_t klen;

	if (sl_mp_str(c, &k, &klen) != 0 || !sl_mp_streq(k, klen, want))
		return sl_errmsg_set(why, SL_EFORMAT, "meta: want key '%s'",
		    want);
	return 0;
}

static int
u64_in(sl_mp *c, const char *name, uint64_t lo, uint64_t hi, uint64_t *v,
    sl_errmsg *why)
{
	if (key(c, name, why) != 0)
		return SL_EFORMAT;
	if (sl_mp_u64(c, v) != 0 || *v < lo || *v > hi)
		return sl_errmsg_set(why, SL_EFORMAT, "meta: '%s' is not a uint "
		    "in %llu..%llu", name, (unsigned long long)lo,
		    (unsigned long long)hi);
	return 0;
}

static int
map_of(sl_mp *c, uint32_t want, const char *what, sl_errmsg *why)
{
	uint32_t n;

	if (sl_mp_map(c, &n) != 0 || n != want)
		return sl_errmsg_set(why, SL_EFORMAT, "meta: %s is not a map of "
		    "%u keys", what, want);
	return 0;
}

static int
decode_job(sl_mp *c, sl_store_job *j, sl_errmsg *why)
{
	sl_fingerprint *f = &j->dataset;
	const uint8_t *s;
	size_t len;
	uint64_t v;
	uint32_t nd;

	memset(j, 0, sizeof *j);
	if (map_of(c, 8, "job", why) != 0 || key(c, "path", why) != 0)
		return SL_EFORMAT;
	if (sl_mp_str(c, &s, &len) != 0 || len >= sizeof j->dataset_path ||
	    memchr(s, 0, len) != NULL)
		return sl_errmsg_set(why, SL_EFORMAT, "meta: job 'path' is not "
		    "a str of < %zu bytes without NUL", sizeof j->dataset_path);
	memcpy(j->dataset_path, s, len);
	if (u64_in(c, "rows", 1, UINT64_MAX, &f->rows, why) != 0 ||
	    key(c, "shape", why) != 0)
		return SL_EFORMAT;
	if (sl_mp_array(c, &nd) != 0 || nd < 1 || nd > SL_DATA_MAX_DIMS)
		return sl_errmsg_set(why, SL_EFORMAT, "meta: job 'shape' is not "
		    "an array of 1..%d uint", SL_DATA_MAX_DIMS);
	f->ndim = nd;
	for (uint32_t i = 0; i < nd; i++)
		if (sl_mp_u64(c, &f->shape[i]) != 0 || f->shape[i] == 0)
			return sl_errmsg_set(why, SL_EFORMAT, "meta: job 'shape' "
			    "%u is not a uint >= 1", i);
	if (f->shape[0] != f->rows)
		return sl_errmsg_set(why, SL_EFORMAT, "meta: job shape[0] %llu "
		    "is not rows %llu", (unsigned long long)f->shape[0],
		    (unsigned long long)f->rows);
	if (u64_in(c, "dtype", SL_DTYPE_U8, SL_DTYPE_F32, &v, why) != 0)
		return SL_EFORMAT;
	f->dtype = (enum sl_dtype)v;
	if (key(c, "sha256", why) != 0)
		return SL_EFORMAT;
	if (sl_mp_bin(c, &s, &len) != 0 || len != 32)
		return sl_errmsg_set(why, SL_EFORMAT, "meta: job 'sha256' is not "
		    "32 bytes of bin");
	memcpy(f->sha256, s, 32);
	if (u64_in(c, "shard_rows", 1, UINT32_MAX, &v, why) != 0)
		return SL_EFORMAT;
	j->shard_rows = (uint32_t)v;
	/* The rows this cache labels (softlabel-broker --rows), as
	 * sl_store_get_job checks them. */
	if (u64_in(c, "first", 0, f->rows - 1, &j->rows_first, why) != 0 ||
	    u64_in(c, "end", j->rows_first + 1, f->rows, &j->rows_end, why) != 0)
		return SL_EFORMAT;
	if (j->rows_first % j->shard_rows != 0 ||
	    (j->rows_end % j->shard_rows != 0 && j->rows_end != f->rows))
		return sl_errmsg_set(why, SL_EFORMAT, "meta: job rows %llu..%llu "
		    "are not on shard boundaries of %u rows",
		    (unsigned long long)j->rows_first,
		    (unsigned long long)j->rows_end, j->shard_rows);
	return 0;
}

static int
lower_hex64(const uint8_t *s, size_t len)
{
	if (len != 64)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

static int
decode_teacher(sl_mp *c, size_t i, sl_store_teacher *t, sl_errmsg *why)
{
	const uint8_t *s;
	size_t len;
	uint64_t v;
	double d;

	uint32_t nkeys;

	memset(t, 0, sizeof *t);
	if (sl_mp_map(c, &nkeys) != 0 || (nkeys != 8 && nkeys != 11))
		return sl_errmsg_set(why, SL_EFORMAT, "meta: a teacher is not a "
		    "map of 8 or 11 keys");
	if (u64_in(c, "index", 0, SL_STORE_MAX_TEACHERS - 1, &v, why) != 0)
		return SL_EFORMAT;
	t->index = (uint32_t)v;
	if (key(c, "name", why) != 0)
		return SL_EFORMAT;
	if (sl_mp_str(c, &s, &len) != 0 || !sl_proto_name_valid(s, len, NULL))
		return sl_errmsg_set(why, SL_EFORMAT, "meta: teacher %zu 'name' "
		    "is not 1..%d characters of %s", i, SL_PROTO_MAX_NAME,
		    SL_PROTO_NAME_CHARS);
	memcpy(t->name, s, len);
	if (key(c, "model", why) != 0)
		return SL_EFORMAT;
	if (sl_mp_str(c, &s, &len) != 0 || !lower_hex64(s, len))
		return sl_errmsg_set(why, SL_EFORMAT, "meta: teacher %zu 'model' "
		    "is not 64 lowercase hex digits", i);
	memcpy(t->model_sha256, s, 64);
	if (key(c, "temp", why) != 0)
		return SL_EFORMAT;
	if (sl_mp_f64(c, &d) != 0 || !isfinite(d) || !(d > 0) || d > 1e30 ||
	    !((float)d > 0.0f))
		return sl_errmsg_set(why, SL_EFORMAT, "meta: teacher %zu 'temp' "
		    "is not a finite float > 0", i);
	t->temperature = (float)d;
	if (u64_in(c, "enc", SL_ENC_F32, SL_ENC_TOPK, &v, why) != 0)
		return SL_EFORMAT;
	t->fmt.encoding = (enum sl_encoding)v;
	if (u64_in(c, "classes", 0, UINT32_MAX, &v, why) != 0)
		return SL_EFORMAT;
	t->fmt.classes = (uint32_t)v;
	if (u64_in(c, "k", 0, UINT16_MAX, &v, why) != 0)
		return SL_EFORMAT;
	t->fmt.k = (uint16_t)v;
	if (sl_label_fmt_check(&t->fmt) != 0)
		return sl_errmsg_set(why, SL_EFORMAT, "meta: teacher %zu: 'enc', "
		    "'classes', 'k' are no valid record format", i);
	if (key(c, "pre", why) != 0)
		return SL_EFORMAT;
	if (sl_mp_bin(c, &s, &len) != 0 || (len != 0 &&
	    sl_preproc_unpack(s, len, &t->pre) != 0))
		return sl_errmsg_set(why, SL_EFORMAT, "meta: teacher %zu 'pre' "
		    "is not empty or a packed preprocessing", i);
	t->has_pre = len != 0;
	if (nkeys == 8)
		return 0;
	if (u64_in(c, "views", 1, SL_STORE_MAX_VIEWS, &v, why) != 0)
		return SL_EFORMAT;
	t->views = (uint32_t)v;
	if (key(c, "vrecipe", why) != 0)
		return SL_EFORMAT;
	if (sl_mp_bin(c, &s, &len) != 0 ||
	    sl_view_recipe_unpack(s, len, &t->view_recipe, NULL) != 0)
		return sl_errmsg_set(why, SL_EFORMAT, "meta: teacher %zu "
		    "'vrecipe' is not a packed view recipe", i);
	if (u64_in(c, "vseed", 0, UINT64_MAX, &t->view_seed, why) != 0)
		return SL_EFORMAT;
	return 0;
}

int
sl_meta_decode(const void *buf, size_t len, sl_store_job *job,
    sl_store_teacher *t, size_t cap, size_t *n, sl_errmsg *why)
{
	sl_store_job j;
	uint32_t nt;
	sl_mp c;
	int rc;

	sl_mp_init(&c, buf, len);
	if (map_of(&c, 2, "the blob", why) != 0 || key(&c, "job", why) != 0 ||
	    (rc = decode_job(&c, &j, why)) != 0 || key(&c, "teachers", why) != 0)
		return SL_EFORMAT;
	if (sl_mp_array(&c, &nt) != 0 || nt > SL_STORE_MAX_TEACHERS)
		return sl_errmsg_set(why, SL_EFORMAT, "meta: 'teachers' is not "
		    "an array of at most %d", SL_STORE_MAX_TEACHERS);
	if (nt > cap)
		return sl_errmsg_set(why, SL_ELIMIT, "meta: %u teachers, room "
		    "for %zu", nt, cap);
	for (uint32_t i = 0; i < nt; i++) {
		if ((rc = decode_teacher(&c, i, &t[i], why)) != 0)
			return rc;
		if (i > 0 && t[i].index <= t[i - 1].index)
			return sl_errmsg_set(why, SL_EFORMAT, "meta: teacher "
			    "indexes not ascending at %u", i);
	}
	if (sl_mp_left(&c) != 0)
		return sl_errmsg_set(why, SL_EFORMAT, "meta: %zu trailing bytes",
		    sl_mp_left(&c));
	*job = j;
	*n = nt;
	return 0;
}

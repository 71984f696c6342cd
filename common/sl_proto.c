/* sl_proto.c - wire messages: encode with msgpack-c's packer, decode with the
 * bounds-checked sl_msgpack cursor (see sl_proto.h).
 *
 * Wire format (protocol version 1). Every frame is one msgpack map; its first
 * two entries are "v" and "t" (in either order; the encoder writes v first),
 * then exactly the keys of the type below, each once, in any order. Every key
 * is required, except those marked (optional): absent means 0 or empty, and
 * the encoder leaves them out when they are (so a frame without views is
 * byte for byte what it was before views existed). Unknown keys, repeated keys, missing keys, other msgpack
 * types, values out of range and bytes after the map are errors.
 *
 *   key       msgpack  meaning, range
 *   --------  -------  ------------------------------------------------------
 *   v         uint     protocol version, 1 (another: SL_EUNSUPPORTED)
 *   t         uint     message type, 1..20 (enum sl_msg_type)
 *
 *   HELLO (1) worker -> broker
 *   worker    str      worker name, 1..128 bytes, no NUL
 *   teacher   str      teacher name, 1..128 bytes, no NUL
 *   model     str      SHA-256 of the model file, 64 lowercase hex digits
 *   temp      float    temperature T, finite, 0 < T <= 1e4 (float32 written;
 *                      float64 or an integer accepted)
 *   enc       uint     encoding: 1 f32, 2 f16, 3 top-k
 *   classes   uint     2..65536
 *   k         uint     top-k: 1..min(classes - 1, 1024); dense: 0
 *   dim       uint     values per input row the model takes, >= 1
 *   dataset   bin      SHA-256 of the worker's local dataset (32 bytes), or
 *                      empty: the broker ships rows in TASK
 *   pre       bin      input preprocessing, 4 * (1 + 2C) bytes for C channels
 *                      (1..16): float32 LE scale, mean[C], std[C], as
 *                      (x * scale - mean[c]) / std[c]; NaN: the default for
 *                      the dataset's dtype, which the broker fills in
 *   held      array    of uint: shards whose results it still holds, <= 64
 *   views     uint     (optional) the views the worker was started with,
 *                      0..1024; 0: it takes the broker's (WELCOME)
 *   vrecipe   bin      (optional) its view recipe, sl_view_recipe_pack's
 *                      12 bytes when views > 0, else empty
 *   vseed     uint     (optional) its view seed (uint64)
 *
 *   WELCOME (2) broker -> worker
 *   teacher   uint     teacher index in the cache
 *   hb_ms     uint     heartbeat interval, ms, >= 1
 *   lease_ms  uint     lease timeout, ms, >= 1
 *   rows      uint     dataset rows (uint64)
 *   shard_rows uint    rows per shard, 1..2^20
 *   row_bytes uint     bytes per row in TASK data, >= 1
 *   dtype     uint     1 uint8, 2 float32 (enum sl_dtype)
 *   max_msg   uint     largest frame the broker accepts, bytes (uint64), >= 1
 *   views     uint     (optional) the teacher's views V, 0..1024 (0: none);
 *                      with V > 0 a TASK's shard is a unit: view shard % V
 *                      of rows first..first+n
 *   vrecipe   bin      (optional) the teacher's recipe, 12 bytes when
 *                      views > 0, else empty
 *   vseed     uint     (optional) the teacher's view seed (uint64)
 *   vh, vw    uint     (optional) the rows' image height and width (the
 *                      last two dimensions of the row shape), >= 1 each
 *                      when views > 0: a view transforms rows as
 *                      row_values / (vh * vw) planes of vh x vw
 *
 *   REFUSE (3) broker -> worker     reason  str  0..256 bytes, no NUL
 *   READY (4) worker -> broker      credit  uint 0..64 (0: a stopping worker,
 *                                           lease it nothing more)
 *
 *   TASK (5) broker -> worker
 *   shard     uint     shard number (uint64)
 *   first     uint     first row (uint64)
 *   n         uint     rows, 1..2^20
 *   data      bin      n * row_bytes bytes of rows, or empty (worker has them)
 *
 *   HEARTBEAT (6) both ways         held  array of uint, <= 64 (broker: [])
 *
 *   RESULT (7) worker -> broker
 *   shard     uint     shard number (uint64)
 *   teacher   uint     teacher index from WELCOME
 *   n         uint     records, 1..2^20
 *   blob      bin      n soft-label records (sl_label.h), not empty
 *
 *   ACK (8) broker -> worker
 *   shard     uint     shard number (uint64)
 *   status    uint     1 stored, 2 duplicate, 3 rejected, 4 retry (keep it,
 *                      resend after a back-off: the broker could not store)
 *   reason    str      0..256 bytes, no NUL (empty unless rejected)
 *
 *   RESET (9), DONE (12), BUSY (13) broker -> worker
 *                                           reason  str  0..256, no NUL
 *   STATUS (10) client -> broker            (no keys)
 *   STATUS_REPLY (11) broker -> client      json  str  0..1 MiB
 *
 *   META (14) reader -> serve               (no keys)
 *   META_REPLY (15) serve -> reader         meta  bin  1..1 MiB: the job and
 *                                           teachers (sl_meta.h)
 *   SHARDS (16) reader -> serve
 *   teacher   uint     teacher index
 *   from      uint     first shard to report (uint64)
 *   SHARDS_REPLY (17) serve -> reader
 *   teacher   uint     as asked
 *   from      uint     as asked
 *   next      uint     shard to ask from next (uint64), >= from
 *   last      uint     1: no done shard at or past next; 0: ask again
 *   runs      bin      done shards in [from, next) as (first, count) pairs
 *                      of u64 LE, ascending and disjoint, count >= 1;
 *                      16 bytes each, at most 65536 pairs
 *   RECORDS (18) reader -> serve
 *   teacher   uint     teacher index
 *   first     uint     range form: first sample (uint64); list form: 0
 *   n         uint     samples asked, 1..2^20
 *   samples   bin      list form: n u64 LE sample numbers; range form:
 *                      empty (the samples first..first+n-1)
 *   views     bin      (optional, list form only) n u32 LE view numbers:
 *                      the records of (samples[i], views[i]), a teacher
 *                      registered with views; absent: of the samples
 *   RECORDS_REPLY (19) serve -> reader
 *   teacher   uint     as asked
 *   first     uint     as asked
 *   n         uint     samples answered, 0..2^20: a prefix of those asked
 *                      (the reply size is bounded; ask again for the rest)
 *   state     bin      n bytes: 0 absent, 1 present, 2 stored record of
 *                      the wrong size (corrupt, not sent)
 *   blob      bin      the present records back to back, each of the
 *                      teacher's record size, in sample order
 *   ERROR (20) serve -> reader
 *   code      uint     the failure: minus an SL_E* code, or an errno value
 *   reason    str      0..256 bytes, no NUL
 *
 * Error codes: values above a documented size limit (name, reason and json
 * lengths, held count, credit, rows) are SL_ELIMIT; another version is
 * SL_EUNSUPPORTED; everything else malformed is SL_EFORMAT.
 */
#include "sl_proto.h"

#include <math.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

#include "sl_data.h"
#include "sl_msgpack.h"
#include "sl_view.h"

#define MAX_TEMPERATURE 1e4

enum fkind {
	K_U16,
	K_U32,
	K_U64,
	K_ENC,  /* enum sl_encoding, as uint */
	K_TEMP, /* float, temperature checks */
	K_STR,  /* sl_bytes */
	K_BIN,  /* sl_bytes */
	K_HELD, /* uint64_t[SL_PROTO_MAX_HELD] at off, uint32_t count at off_n */
};

#define F_NONUL 1u /* str: no NUL byte */
#define F_ENUM 2u  /* above max is SL_EFORMAT, not SL_ELIMIT */
#define F_OPT 4u   /* may be absent (0 / empty); not written when so */

/* One key of one message type: where it lives in sl_msg and its range
 * (integers: value; str and bin: length in bytes). */
struct field {
	const char *key;
	enum fkind kind;
	size_t off, off_n;
	uint64_t min, max;
	unsigned flags;
};

#define OFF(member) offsetof(sl_msg, u.member)
#define U(key, kind, member, lo, hi, fl) \
	{ key, kind, OFF(member), 0, lo, hi, fl }
#define HELD(key, s) \
	{ key, K_HELD, OFF(s.held), OFF(s.nheld), 0, SL_PROTO_MAX_HELD, 0 }

static const struct field hello_fields[] = {
	U("worker", K_STR, hello.worker, 1, SL_PROTO_MAX_NAME, F_NONUL),
	U("teacher", K_STR, hello.teacher, 1, SL_PROTO_MAX_NAME, F_NONUL),
	U("model", K_STR, hello.model_sha256, 0, SIZE_MAX, 0),
	U("temp", K_TEMP, hello.temperature, 0, 0, 0),
	U("enc", K_ENC, hello.fmt.encoding, SL_ENC_F32, SL_ENC_TOPK, F_ENUM),
	U("classes", K_U32, hello.fmt.classes, 0, UINT32_MAX, 0),
	U("k", K_U16, hello.fmt.k, 0, UINT16_MAX, 0),
	U("dim", K_U32, hello.input_dim, 1, UINT32_MAX, 0),
	U("dataset", K_BIN, hello.dataset_sha256, 0, SIZE_MAX, 0),
	U("pre", K_BIN, hello.preproc, SL_PREPROC_MIN_BYTES, SL_PREPROC_MAX_BYTES, 0),
	HELD("held", hello),
	U("views", K_U32, hello.views, 0, SL_PROTO_MAX_VIEWS, F_OPT | F_ENUM),
	U("vrecipe", K_BIN, hello.view_recipe, 0, SL_VIEW_RECIPE_BYTES, F_OPT),
	U("vseed", K_U64, hello.view_seed, 0, UINT64_MAX, F_OPT),
};
static const struct field welcome_fields[] = {
	U("teacher", K_U32, welcome.teacher_index, 0, UINT32_MAX, 0),
	U("hb_ms", K_U32, welcome.heartbeat_ms, 1, UINT32_MAX, 0),
	U("lease_ms", K_U32, welcome.lease_timeout_ms, 1, UINT32_MAX, 0),
	U("rows", K_U64, welcome.rows, 0, UINT64_MAX, 0),
	U("shard_rows", K_U32, welcome.shard_rows, 1, SL_PROTO_MAX_ROWS, 0),
	U("row_bytes", K_U32, welcome.row_bytes, 1, UINT32_MAX, 0),
	U("dtype", K_U32, welcome.dtype, SL_DTYPE_U8, SL_DTYPE_F32, F_ENUM),
	U("max_msg", K_U64, welcome.max_msg_bytes, 1, UINT64_MAX, 0),
	U("views", K_U32, welcome.views, 0, SL_PROTO_MAX_VIEWS, F_OPT | F_ENUM),
	U("vrecipe", K_BIN, welcome.view_recipe, 0, SL_VIEW_RECIPE_BYTES, F_OPT),
	U("vseed", K_U64, welcome.view_seed, 0, UINT64_MAX, F_OPT),
	U("vh", K_U32, welcome.view_h, 0, UINT32_MAX, F_OPT),
	U("vw", K_U32, welcome.view_w, 0, UINT32_MAX, F_OPT),
};
static const struct field refuse_fields[] = {
	U("reason", K_STR, refuse.reason, 0, SL_PROTO_MAX_REASON, F_NONUL),
};
static const struct field ready_fields[] = {
	U("credit", K_U32, ready.credit, 0, SL_PROTO_MAX_HELD, 0),
};
static const struct field task_fields[] = {
	U("shard", K_U64, task.shard, 0, UINT64_MAX, 0),
	U("first", K_U64, task.first_row, 0, UINT64_MAX, 0),
	U("n", K_U32, task.nrows, 1, SL_PROTO_MAX_ROWS, 0),
	U("data", K_BIN, task.data, 0, SIZE_MAX, 0),
};
static const struct field heartbeat_fields[] = {
	HELD("held", heartbeat),
};
static const struct field result_fields[] = {
	U("shard", K_U64, result.shard, 0, UINT64_MAX, 0),
	U("teacher", K_U32, result.teacher_index, 0, UINT32_MAX, 0),
	U("n", K_U32, result.nrows, 1, SL_PROTO_MAX_ROWS, 0),
	U("blob", K_BIN, result.blob, 1, SIZE_MAX, 0),
};
static const struct field ack_fields[] = {
	U("shard", K_U64, ack.shard, 0, UINT64_MAX, 0),
	U("status", K_U32, ack.status, SL_ACK_STORED, SL_ACK_RETRY, F_ENUM),
	U("reason", K_STR, ack.reason, 0, SL_PROTO_MAX_REASON, F_NONUL),
};
static const struct field reset_fields[] = {
	U("reason", K_STR, reset.reason, 0, SL_PROTO_MAX_REASON, F_NONUL),
};
static const struct field status_reply_fields[] = {
	U("json", K_STR, status.json, 0, SL_PROTO_MAX_JSON, 0),
};
static const struct field meta_reply_fields[] = {
	U("meta", K_BIN, meta.meta, 1, SL_PROTO_MAX_META, 0),
};
static const struct field shards_fields[] = {
	U("teacher", K_U32, shards.teacher, 0, UINT32_MAX, 0),
	U("from", K_U64, shards.from, 0, UINT64_MAX, 0),
};
static const struct field shards_reply_fields[] = {
	U("teacher", K_U32, shards.teacher, 0, UINT32_MAX, 0),
	U("from", K_U64, shards.from, 0, UINT64_MAX, 0),
	U("next", K_U64, shards.next, 0, UINT64_MAX, 0),
	U("last", K_U32, shards.last, 0, 1, F_ENUM),
	U("runs", K_BIN, shards.runs, 0, 16 * (size_t)SL_PROTO_MAX_RUNS, 0),
};
static const struct field records_fields[] = {
	U("teacher", K_U32, records.teacher, 0, UINT32_MAX, 0),
	U("first", K_U64, records.first, 0, UINT64_MAX, 0),
	U("n", K_U32, records.n, 1, SL_PROTO_MAX_ROWS, 0),
	U("samples", K_BIN, records.samples, 0, 8 * (size_t)SL_PROTO_MAX_ROWS, 0),
	U("views", K_BIN, records.views, 0, 4 * (size_t)SL_PROTO_MAX_ROWS, F_OPT),
};
static const struct field records_reply_fields[] = {
	U("teacher", K_U32, records.teacher, 0, UINT32_MAX, 0),
	U("first", K_U64, records.first, 0, UINT64_MAX, 0),
	U("n", K_U32, records.n, 0, SL_PROTO_MAX_ROWS, 0),
	U("state", K_BIN, records.state, 0, SL_PROTO_MAX_ROWS, 0),
	U("blob", K_BIN, records.blob, 0, SIZE_MAX, 0),
};
static const struct field error_fields[] = {
	U("code", K_U32, error.code, 0, UINT32_MAX, 0),
	U("reason", K_STR, error.reason, 0, SL_PROTO_MAX_REASON, F_NONUL),
};

struct mtype {
	const char *name;
	const struct field *f;
	size_t n;
};

#define T(name, arr) { name, arr, sizeof arr / sizeof arr[0] }
static const struct mtype types[] = {
	[SL_MSG_HELLO] = T("HELLO", hello_fields),
	[SL_MSG_WELCOME] = T("WELCOME", welcome_fields),
	[SL_MSG_REFUSE] = T("REFUSE", refuse_fields),
	[SL_MSG_READY] = T("READY", ready_fields),
	[SL_MSG_TASK] = T("TASK", task_fields),
	[SL_MSG_HEARTBEAT] = T("HEARTBEAT", heartbeat_fields),
	[SL_MSG_RESULT] = T("RESULT", result_fields),
	[SL_MSG_ACK] = T("ACK", ack_fields),
	[SL_MSG_RESET] = T("RESET", reset_fields),
	[SL_MSG_STATUS] = { "STATUS", NULL, 0 },
	[SL_MSG_STATUS_REPLY] = T("STATUS_REPLY", status_reply_fields),
	[SL_MSG_DONE] = T("DONE", reset_fields),
	[SL_MSG_BUSY] = T("BUSY", reset_fields),
	[SL_MSG_META] = { "META", NULL, 0 },
	[SL_MSG_META_REPLY] = T("META_REPLY", meta_reply_fields),
	[SL_MSG_SHARDS] = T("SHARDS", shards_fields),
	[SL_MSG_SHARDS_REPLY] = T("SHARDS_REPLY", shards_reply_fields),
	[SL_MSG_RECORDS] = T("RECORDS", records_fields),
	[SL_MSG_RECORDS_REPLY] = T("RECORDS_REPLY", records_reply_fields),
	[SL_MSG_ERROR] = T("ERROR", error_fields),
};
#define NTYPES (sizeof types / sizeof types[0])

/* Every type's keys fit one bit each of a uint32_t "seen" mask. */
_Static_assert(sizeof hello_fields / sizeof hello_fields[0] <= 32,
    "seen mask too small");

static const struct mtype *
lookup(uint64_t t)
{
	if (t == 0 || t >= NTYPES || types[t].name == NULL)
		return NULL;
	return &types[t];
}

const char *
sl_proto_type_name(enum sl_msg_type t)
{
	const struct mtype *mt = lookup((uint64_t)t);

	return mt != NULL ? mt->name : "UNKNOWN";
}

sl_bytes
sl_bytes_str(const char *s)
{
	sl_bytes b = { NULL, 0 };

	if (s != NULL) {
		b.p = (const uint8_t *)s;
		b.len = strlen(s);
	}
	return b;
}

/* ---- encoding ---------------------------------------------------------- */

void
sl_proto_buf_fini(sl_proto_buf *b)
{
	if (b == NULL)
		return;
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

/* msgpack_packer write callback: append, doubling the capacity. */
static int
buf_write(void *data, const char *src, size_t n)
{
	sl_proto_buf *b = data;

	if (n == 0)
		return 0;
	if (n > SIZE_MAX - b->len)
		return -1;
	if (b->len + n > b->cap) {
		size_t cap = b->cap < 256 ? 256 : b->cap;
		uint8_t *p;

		while (cap < b->len + n) {
			if (cap > SIZE_MAX / 2)
				return -1;
			cap *= 2;
		}
		p = realloc(b->p, cap);
		if (p == NULL)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
	return 0;
}

static int
pack_key(msgpack_packer *pk, const char *key)
{
	const size_t n = strlen(key);

	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, key, n);
}

static int
pack_bytes(msgpack_packer *pk, sl_bytes v, int bin)
{
	if (bin)
		return msgpack_pack_bin(pk, v.len) ||
		    msgpack_pack_bin_body(pk, v.p, v.len);
	return msgpack_pack_str(pk, v.len) ||
	    msgpack_pack_str_body(pk, v.p, v.len);
}

/* Fields a caller must not get wrong: an sl_bytes with a length but no
 * pointer, one longer than msgpack can say, a held count past the array. */
static int
check_encodable(const sl_msg *m, const struct mtype *mt)
{
	for (size_t i = 0; i < mt->n; i++) {
		const struct field *f = &mt->f[i];
		const char *at = (const char *)m + f->off;

		if (f->kind == K_STR || f->kind == K_BIN) {
			const sl_bytes *v = (const sl_bytes *)(const void *)at;

			if ((v->len > 0 && v->p == NULL) || v->len > UINT32_MAX)
				return SL_EINVAL;
		} else if (f->kind == K_HELD) {
			if (*(const uint32_t *)(const void *)((const char *)m +
			    f->off_n) > SL_PROTO_MAX_HELD)
				return SL_EINVAL;
		}
	}
	return 0;
}

/* 1 when an optional field holds 0 or nothing: it is not written. */
static int
opt_absent(const sl_msg *m, const struct field *f)
{
	const char *at = (const char *)m + f->off;

	if (!(f->flags & F_OPT))
		return 0;
	switch (f->kind) {
	case K_U32:
		return *(const uint32_t *)(const void *)at == 0;
	case K_U64:
		return *(const uint64_t *)(const void *)at == 0;
	case K_BIN:
	case K_STR:
		return ((const sl_bytes *)(const void *)at)->len == 0;
	default:
		return 0;
	}
}

int
sl_proto_encode(const sl_msg *m, sl_proto_buf *b)
{
	const struct mtype *mt = lookup((uint64_t)m->type);
	msgpack_packer pk;
	uint32_t nkeys = 2;
	int bad = 0;

	if (mt == NULL || check_encodable(m, mt) != 0)
		return SL_EINVAL;
	for (size_t i = 0; i < mt->n; i++)
		nkeys += !opt_absent(m, &mt->f[i]);
	b->len = 0;
	msgpack_packer_init(&pk, b, buf_write);
	bad |= msgpack_pack_map(&pk, nkeys);
	bad |= pack_key(&pk, "v") || msgpack_pack_uint32(&pk, SL_PROTO_VERSION);
	bad |= pack_key(&pk, "t") || msgpack_pack_uint32(&pk,
	    (uint32_t)m->type);
	for (size_t i = 0; i < mt->n && !bad; i++) {
		const struct field *f = &mt->f[i];
		const void *at = (const char *)m + f->off;

		if (opt_absent(m, f))
			continue;
		bad |= pack_key(&pk, f->key);
		switch (f->kind) {
		case K_U16:
			bad |= msgpack_pack_uint16(&pk, *(const uint16_t *)at);
			break;
		case K_U32:
			bad |= msgpack_pack_uint32(&pk, *(const uint32_t *)at);
			break;
		case K_U64:
			bad |= msgpack_pack_uint64(&pk, *(const uint64_t *)at);
			break;
		case K_ENC:
			bad |= msgpack_pack_uint32(&pk,
			    (uint32_t)*(const enum sl_encoding *)at);
			break;
		case K_TEMP:
			bad |= msgpack_pack_float(&pk, *(const float *)at);
			break;
		case K_STR:
		case K_BIN:
			bad |= pack_bytes(&pk, *(const sl_bytes *)at,
			    f->kind == K_BIN);
			break;
		case K_HELD: {
			const uint64_t *held = at;
			const uint32_t n = *(const uint32_t *)(const void *)
			    ((const char *)m + f->off_n);

			bad |= msgpack_pack_array(&pk, n);
			for (uint32_t k = 0; k < n; k++)
				bad |= msgpack_pack_uint64(&pk, held[k]);
			break;
		}
		}
	}
	if (bad) {
		b->len = 0;
		return SL_ENOMEM;
	}
	return 0;
}

/* ---- decoding ---------------------------------------------------------- */

/* A key from the wire made safe to print: at most 32 bytes, non-printable
 * bytes as '?'. */
static const char *
printable(char *out /* (40) */, const uint8_t *s, size_t len)
{
	size_t n = len > 32 ? 32 : len, k;

	for (k = 0; k < n; k++)
		out[k] = s[k] >= 0x20 && s[k] < 0x7f ? (char)s[k] : '?';
	if (len > n)
		memcpy(out + k, "...", 4);
	else
		out[k] = '\0';
	return out;
}

/* The error for a value of the wrong msgpack type (or a truncated one). */
static int
wrong_type(sl_errmsg *why, const char *tname, const char *key,
    const sl_mp *c, const char *want)
{
	const char *got = sl_mp_type_name(c);

	if (strcmp(got, "malformed") == 0 || strcmp(got, "end of input") == 0)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "%s: key '%s': value truncated or malformed (want %s)",
		    tname, key, want);
	return sl_errmsg_set(why, SL_EFORMAT, "%s: key '%s' is %s, want %s",
	    tname, key, got, want);
}

static int
decode_uint(sl_mp *c, const struct field *f, const char *tname, sl_msg *out,
    sl_errmsg *why)
{
	void *at = (char *)out + f->off;
	const uint64_t width = f->kind == K_U16 ? UINT16_MAX
	    : f->kind == K_U64 ? UINT64_MAX : UINT32_MAX;
	uint64_t v;

	if (sl_mp_u64(c, &v) != 0)
		return wrong_type(why, tname, f->key, c, "uint");
	if (v > width || v < f->min || (v > f->max && (f->flags & F_ENUM)))
		return sl_errmsg_set(why, SL_EFORMAT,
		    "%s: key '%s' = %llu, want %llu..%llu", tname, f->key,
		    (unsigned long long)v, (unsigned long long)f->min,
		    (unsigned long long)f->max);
	if (v > f->max)
		return sl_errmsg_set(why, SL_ELIMIT,
		    "%s: key '%s' = %llu, limit %llu", tname, f->key,
		    (unsigned long long)v, (unsigned long long)f->max);
	switch (f->kind) {
	case K_U16:
		*(uint16_t *)at = (uint16_t)v;
		break;
	case K_U64:
		*(uint64_t *)at = v;
		break;
	case K_ENC:
		*(enum sl_encoding *)at = (enum sl_encoding)v;
		break;
	default:
		*(uint32_t *)at = (uint32_t)v;
		break;
	}
	return 0;
}

static int
decode_field(sl_mp *c, const struct field *f, const char *tname, sl_msg *out,
    sl_errmsg *why)
{
	void *at = (char *)out + f->off;

	switch (f->kind) {
	case K_U16:
	case K_U32:
	case K_U64:
	case K_ENC:
		return decode_uint(c, f, tname, out, why);
	case K_TEMP: {
		double d;
		float t;

		if (sl_mp_f64(c, &d) != 0)
			return wrong_type(why, tname, f->key, c, "float");
		/* Range first: converting an out-of-range double to float is
		 * undefined; then again, for values that round to 0. */
		t = isfinite(d) && d > 0 && d <= MAX_TEMPERATURE ? (float)d : 0;
		if (!(t > 0.0f))
			return sl_errmsg_set(why, SL_EFORMAT,
			    "%s: key '%s' = %g, want a finite value in "
			    "(0, %g]", tname, f->key, d, MAX_TEMPERATURE);
		*(float *)at = t;
		return 0;
	}
	case K_STR:
	case K_BIN: {
		const int bin = f->kind == K_BIN;
		sl_bytes v;

		if ((bin ? sl_mp_bin(c, &v.p, &v.len)
		    : sl_mp_str(c, &v.p, &v.len)) != 0)
			return wrong_type(why, tname, f->key, c,
			    bin ? "bin" : "str");
		if (v.len < f->min && v.len == 0)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "%s: key '%s' is empty", tname, f->key);
		if (v.len < f->min)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "%s: key '%s' has %zu bytes, want %llu", tname,
			    f->key, v.len, (unsigned long long)f->min);
		if (v.len > f->max)
			return sl_errmsg_set(why, SL_ELIMIT,
			    "%s: key '%s' has %zu bytes, limit %llu", tname,
			    f->key, v.len, (unsigned long long)f->max);
		if ((f->flags & F_NONUL) && v.len > 0 &&
		    memchr(v.p, 0, v.len) != NULL)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "%s: key '%s' contains a NUL byte", tname, f->key);
		*(sl_bytes *)at = v;
		return 0;
	}
	case K_HELD: {
		uint64_t *held = at;
		uint32_t n;

		if (sl_mp_array(c, &n) != 0)
			return wrong_type(why, tname, f->key, c, "array");
		if (n > SL_PROTO_MAX_HELD)
			return sl_errmsg_set(why, SL_ELIMIT,
			    "%s: key '%s' lists %u shards, limit %d", tname,
			    f->key, n, SL_PROTO_MAX_HELD);
		for (uint32_t k = 0; k < n; k++)
			if (sl_mp_u64(c, &held[k]) != 0)
				return wrong_type(why, tname, f->key, c,
				    "array of uint");
		*(uint32_t *)(void *)((char *)out + f->off_n) = n;
		return 0;
	}
	}
	return SL_EFORMAT;
}

static int
is_lower_hex(const uint8_t *s, size_t len)
{
	for (size_t k = 0; k < len; k++)
		if (!((s[k] >= '0' && s[k] <= '9') || (s[k] >= 'a' && s[k] <= 'f')))
			return 0;
	return 1;
}

/* SHARDS_REPLY: runs whole pairs, ascending, disjoint, inside
 * [from, next), none empty. */
static int
check_runs(const sl_msg *m, sl_errmsg *why)
{
	const sl_bytes *r = &m->u.shards.runs;
	uint64_t end = m->u.shards.from;

	if (m->u.shards.next < m->u.shards.from)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "SHARDS_REPLY: key 'next' is before 'from'");
	if (r->len % 16 != 0)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "SHARDS_REPLY: key 'runs' has %zu bytes, not pairs of u64",
		    r->len);
	for (size_t i = 0; i < r->len; i += 16) {
		uint64_t first, count;

		memcpy(&first, r->p + i, 8);
		memcpy(&count, r->p + i + 8, 8);
		if (count == 0 || first < end || count > m->u.shards.next ||
		    first > m->u.shards.next - count)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "SHARDS_REPLY: run %zu (%llu, %llu) is empty, out "
			    "of order or outside [from, next)", i / 16,
			    (unsigned long long)first, (unsigned long long)count);
		end = first + count;
	}
	return 0;
}

/* RECORDS / RECORDS_REPLY: the list and state lengths agree with n. */
static int
check_records(const sl_msg *m, sl_errmsg *why)
{
	const size_t n = m->u.records.n;

	if (m->type == SL_MSG_RECORDS) {
		const sl_bytes *s = &m->u.records.samples;

		if (s->len != 0 && s->len != 8 * n)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "RECORDS: key 'samples' has %zu bytes, want 0 or "
			    "8 * n = %zu", s->len, 8 * n);
		if (s->len != 0 && m->u.records.first != 0)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "RECORDS: 'first' must be 0 with a sample list");
		if (m->u.records.views.len != 0 && (s->len == 0 ||
		    m->u.records.views.len != 4 * n))
			return sl_errmsg_set(why, SL_EFORMAT,
			    "RECORDS: key 'views' has %zu bytes, want 4 * n = %zu "
			    "beside a sample list", m->u.records.views.len, 4 * n);
		if (s->len == 0 && m->u.records.first > UINT64_MAX - n)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "RECORDS: range 'first' + 'n' overflows");
		return 0;
	}
	if (m->u.records.state.len != n)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "RECORDS_REPLY: key 'state' has %zu bytes, want n = %zu",
		    m->u.records.state.len, n);
	for (size_t i = 0; i < n; i++)
		if (m->u.records.state.p[i] > SL_REC_BADSIZE)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "RECORDS_REPLY: state %u of sample %zu, want 0..2",
			    m->u.records.state.p[i], i);
	return 0;
}

/* HELLO / WELCOME views: a recipe exactly when V > 0, and one that
 * sl_view_recipe_unpack takes; no seed without views. */
static int
check_views(const char *tname, uint32_t views, const sl_bytes *recipe,
    uint64_t seed, sl_errmsg *why)
{
	sl_view_recipe r;
	sl_errmsg inner = { "" };

	if (views == 0 && (recipe->len != 0 || seed != 0))
		return sl_errmsg_set(why, SL_EFORMAT, "%s: keys 'vrecipe' and "
		    "'vseed' without 'views'", tname);
	if (views > 0 && sl_view_recipe_unpack(recipe->p, recipe->len, &r,
	    &inner) != 0)
		return sl_errmsg_set(why, SL_EFORMAT, "%s: key 'vrecipe': %s",
		    tname, inner.text);
	return 0;
}

/* Checks that span keys or need more than a range. */
static int
check_message(const sl_msg *m, sl_errmsg *why)
{
	if (m->type == SL_MSG_WELCOME) {
		if ((m->u.welcome.views > 0) != (m->u.welcome.view_h > 0) ||
		    (m->u.welcome.views > 0) != (m->u.welcome.view_w > 0))
			return sl_errmsg_set(why, SL_EFORMAT, "WELCOME: keys 'vh' "
			    "and 'vw' go with 'views', each >= 1");
		return check_views("WELCOME", m->u.welcome.views,
		    &m->u.welcome.view_recipe, m->u.welcome.view_seed, why);
	}
	if (m->type == SL_MSG_SHARDS_REPLY)
		return check_runs(m, why);
	if (m->type == SL_MSG_RECORDS || m->type == SL_MSG_RECORDS_REPLY)
		return check_records(m, why);
	if (m->type == SL_MSG_HELLO) {
		const sl_bytes *sha = &m->u.hello.model_sha256;
		const sl_label_fmt *fmt = &m->u.hello.fmt;

		if (sha->len != 64 || !is_lower_hex(sha->p, sha->len))
			return sl_errmsg_set(why, SL_EFORMAT,
			    "HELLO: key 'model' is not 64 lowercase hex digits");
		if (sl_label_fmt_check(fmt) != 0)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "HELLO: keys 'enc' %u, 'classes' %u, 'k' %u are no "
			    "valid format (classes 2..%d; top-k: 1 <= k < "
			    "classes, k <= %d; dense: k = 0)",
			    (unsigned)fmt->encoding, (unsigned)fmt->classes,
			    (unsigned)fmt->k, SL_LABEL_MAX_CLASSES,
			    SL_LABEL_MAX_K);
		if (m->u.hello.dataset_sha256.len != 0 &&
		    m->u.hello.dataset_sha256.len != 32)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "HELLO: key 'dataset' has %zu bytes, want 0 or 32",
			    m->u.hello.dataset_sha256.len);
		return check_views("HELLO", m->u.hello.views,
		    &m->u.hello.view_recipe, m->u.hello.view_seed, why);
	}
	return 0;
}

/* One of the two leading keys: "v" (checked at once, so a peer of another
 * version is told so whatever follows) or "t". */
static int
decode_head_key(sl_mp *c, uint64_t *v, uint64_t *t, int *seen,
    sl_errmsg *why)
{
	const uint8_t *k;
	size_t klen;
	char kp[40];

	if (sl_mp_str(c, &k, &klen) != 0)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "first key is %s, want str 'v' or 't'", sl_mp_type_name(c));
	if ((sl_mp_streq(k, klen, "v") && (*seen & 1)) ||
	    (sl_mp_streq(k, klen, "t") && (*seen & 2)))
		return sl_errmsg_set(why, SL_EFORMAT, "duplicate key '%s'",
		    printable(kp, k, klen));
	if (sl_mp_streq(k, klen, "v")) {
		if (sl_mp_u64(c, v) != 0)
			return wrong_type(why, "message", "v", c, "uint");
		if (*v != SL_PROTO_VERSION)
			return sl_errmsg_set(why, SL_EUNSUPPORTED,
			    "protocol version %llu, this build speaks %d",
			    (unsigned long long)*v, SL_PROTO_VERSION);
		*seen |= 1;
		return 0;
	}
	if (sl_mp_streq(k, klen, "t")) {
		if (sl_mp_u64(c, t) != 0)
			return wrong_type(why, "message", "t", c, "uint");
		*seen |= 2;
		return 0;
	}
	return sl_errmsg_set(why, SL_EFORMAT,
	    "the first two keys must be 'v' and 't', got '%s'",
	    printable(kp, k, klen));
}

int
sl_proto_decode(const void *buf, size_t len, sl_msg *m, sl_errmsg *why)
{
	const struct mtype *mt;
	uint32_t n, seen = 0;
	uint64_t v = 0, t = 0;
	int head_seen = 0, rc;
	sl_msg out;
	sl_mp c;

	if (len == 0)
		return sl_errmsg_set(why, SL_EFORMAT, "empty frame");
	sl_mp_init(&c, buf, len);
	if (sl_mp_map(&c, &n) != 0)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "message is %s, want a map", sl_mp_type_name(&c));
	if (n < 2)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "message map has %u keys, want at least 'v' and 't'", n);
	for (int i = 0; i < 2; i++)
		if ((rc = decode_head_key(&c, &v, &t, &head_seen, why)) != 0)
			return rc;
	mt = lookup(t);
	if (mt == NULL)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "unknown message type %llu", (unsigned long long)t);

	memset(&out, 0, sizeof out);
	out.type = (enum sl_msg_type)t;
	for (uint32_t i = 2; i < n; i++) {
		const struct field *f = NULL;
		const uint8_t *k;
		size_t klen, j;
		char kp[40];

		if (sl_mp_str(&c, &k, &klen) != 0)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "%s: key %u is %s, want str", mt->name, i,
			    sl_mp_type_name(&c));
		for (j = 0; j < mt->n; j++)
			if (sl_mp_streq(k, klen, mt->f[j].key)) {
				f = &mt->f[j];
				break;
			}
		if (f == NULL && (sl_mp_streq(k, klen, "v") ||
		    sl_mp_streq(k, klen, "t")))
			return sl_errmsg_set(why, SL_EFORMAT,
			    "%s: duplicate key '%s'", mt->name,
			    printable(kp, k, klen));
		if (f == NULL)
			return sl_errmsg_set(why, SL_EFORMAT,
			    "%s: unknown key '%s'", mt->name,
			    printable(kp, k, klen));
		if (seen & (1u << j))
			return sl_errmsg_set(why, SL_EFORMAT,
			    "%s: duplicate key '%s'", mt->name, f->key);
		if ((rc = decode_field(&c, f, mt->name, &out, why)) != 0)
			return rc;
		seen |= 1u << j;
	}
	if (sl_mp_left(&c) != 0)
		return sl_errmsg_set(why, SL_EFORMAT,
		    "%s: %zu trailing bytes after the map", mt->name,
		    sl_mp_left(&c));
	for (size_t j = 0; j < mt->n; j++)
		if (!(seen & (1u << j)) && !(mt->f[j].flags & F_OPT))
			return sl_errmsg_set(why, SL_EFORMAT,
			    "%s: missing key '%s'", mt->name, mt->f[j].key);
	if ((rc = check_message(&out, why)) != 0)
		return rc;
	*m = out;
	return 0;
}

int
sl_proto_name_valid(const void *p, size_t len, size_t *bad)
{
	const unsigned char *c = p;

	for (size_t i = 0; i < len && i < SL_PROTO_MAX_NAME; i++) {
		if ((c[i] >= 'a' && c[i] <= 'z') || (c[i] >= 'A' && c[i] <= 'Z') ||
		    (c[i] >= '0' && c[i] <= '9') ||
		    (c[i] != '\0' && strchr("._-+:@", c[i]) != NULL))
			continue;
		if (bad != NULL)
			*bad = i;
		return 0;
	}
	if (len == 0 || len > SL_PROTO_MAX_NAME) {
		if (bad != NULL)
			*bad = len;
		return 0;
	}
	return 1;
}

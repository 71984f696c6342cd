/* Wire messages: every type round-trips; every malformed frame is refused
 * with its code and a reason; random and mutated bytes never crash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <msgpack.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_data.h"
#include "sl_err.h"
#include "sl_log.h"
#include "sl_msgpack.h"
#include "sl_proto.h"
#include "sl_view.h"
#include "sl_rng.h"

static const char SHA[] =
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
static const uint8_t DATASET_SHA[32] = {
	0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
	13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28,
};
static uint8_t rows[64 * 784];    /* TASK data: 64 uint8 rows of 784 */
static uint8_t blob[64 * 32];     /* RESULT blob: 64 f16 records, 10 classes */

/* scale 1/255, mean 0.286, std 0.353 as float32 little-endian. */
static const uint8_t PREPROC[SL_PREPROC_MIN_BYTES] = {
	0x81, 0x80, 0x80, 0x3b, 0x44, 0x6f, 0x92, 0x3e, 0x06, 0x81, 0xb4, 0x3e,
};

/* Done runs (17, 3) and (40, 50) as u64 LE pairs; 4 samples; states. */
static const uint8_t RUNS[32] = { 17, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0,
	0, 0, 40, 0, 0, 0, 0, 0, 0, 0, 50, 0, 0, 0, 0, 0, 0, 0 };
static const uint8_t SAMPLES[32] = { 9, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
	0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
static const uint8_t STATES[4] = { SL_REC_PRESENT, SL_REC_ABSENT,
	SL_REC_BADSIZE, SL_REC_PRESENT };

/* A realistic message of each type. */
static sl_msg
sample(enum sl_msg_type t)
{
	sl_msg m;

	memset(&m, 0, sizeof m);
	m.type = t;
	switch (t) {
	case SL_MSG_HELLO:
		m.u.hello.worker = sl_bytes_str("gpu-node-17:4242");
		m.u.hello.teacher = sl_bytes_str("mlp-784-1200-10");
		m.u.hello.model_sha256 = sl_bytes_str(SHA);
		m.u.hello.temperature = 4.0f;
		m.u.hello.fmt.encoding = SL_ENC_TOPK;
		m.u.hello.fmt.classes = 10;
		m.u.hello.fmt.k = 5;
		m.u.hello.input_dim = 784;
		m.u.hello.dataset_sha256.p = DATASET_SHA;
		m.u.hello.dataset_sha256.len = 32;
		m.u.hello.preproc.p = PREPROC;
		m.u.hello.preproc.len = SL_PREPROC_MIN_BYTES;
		m.u.hello.nheld = 3;
		m.u.hello.held[0] = 0;
		m.u.hello.held[1] = 17;
		m.u.hello.held[2] = (uint64_t)1 << 40;
		break;
	case SL_MSG_WELCOME:
		m.u.welcome.teacher_index = 2;
		m.u.welcome.heartbeat_ms = 1000;
		m.u.welcome.lease_timeout_ms = 30000;
		m.u.welcome.rows = 60000;
		m.u.welcome.shard_rows = 1024;
		m.u.welcome.row_bytes = 784;
		m.u.welcome.dtype = SL_DTYPE_U8;
		m.u.welcome.max_msg_bytes = (uint64_t)64 << 20;
		break;
	case SL_MSG_REFUSE:
		m.u.refuse.reason = sl_bytes_str("teacher 'mlp' is registered "
		    "with another model (sha256 9f86...)");
		break;
	case SL_MSG_READY:
		m.u.ready.credit = 4;
		break;
	case SL_MSG_TASK:
		m.u.task.shard = 58;
		m.u.task.first_row = 58 * 64;
		m.u.task.nrows = 64;
		m.u.task.data.p = rows;
		m.u.task.data.len = sizeof rows;
		break;
	case SL_MSG_HEARTBEAT:
		m.u.heartbeat.nheld = SL_PROTO_MAX_HELD;
		for (uint32_t k = 0; k < SL_PROTO_MAX_HELD; k++)
			m.u.heartbeat.held[k] = 1000 + 3 * k;
		break;
	case SL_MSG_RESULT:
		m.u.result.shard = 58;
		m.u.result.teacher_index = 2;
		m.u.result.nrows = 64;
		m.u.result.blob.p = blob;
		m.u.result.blob.len = sizeof blob;
		break;
	case SL_MSG_ACK:
		m.u.ack.shard = 58;
		m.u.ack.status = SL_ACK_REJECTED;
		m.u.ack.reason = sl_bytes_str("record 3: non-finite value");
		break;
	case SL_MSG_RESET:
	case SL_MSG_DONE:
	case SL_MSG_BUSY:
		m.u.reset.reason = sl_bytes_str("unknown worker");
		break;
	case SL_MSG_STATUS:
		break;
	case SL_MSG_STATUS_REPLY:
		m.u.status.json = sl_bytes_str("{\"done\": 12, \"total\": 59}");
		break;
	case SL_MSG_META:
		break;
	case SL_MSG_META_REPLY:
		m.u.meta.meta.p = blob;
		m.u.meta.meta.len = 100;
		break;
	case SL_MSG_SHARDS:
		m.u.shards.teacher = 3;
		m.u.shards.from = 17;
		break;
	case SL_MSG_SHARDS_REPLY:
		m.u.shards.teacher = 3;
		m.u.shards.from = 17;
		m.u.shards.next = 90;
		m.u.shards.last = 0;
		m.u.shards.runs.p = RUNS;
		m.u.shards.runs.len = sizeof RUNS;
		break;
	case SL_MSG_RECORDS:
		m.u.records.teacher = 1;
		m.u.records.first = 0;
		m.u.records.n = 4;
		m.u.records.samples.p = SAMPLES;
		m.u.records.samples.len = sizeof SAMPLES;
		break;
	case SL_MSG_RECORDS_REPLY:
		m.u.records.teacher = 1;
		m.u.records.first = 64;
		m.u.records.n = 4;
		m.u.records.state.p = STATES;
		m.u.records.state.len = sizeof STATES;
		m.u.records.blob.p = blob;
		m.u.records.blob.len = 2 * 52;
		break;
	case SL_MSG_ERROR:
		m.u.error.code = (uint32_t)-SL_ENOTFOUND;
		m.u.error.reason = sl_bytes_str("no job in the cache yet");
		break;
	}
	return m;
}

static int
setup(void **state)
{
	(void)state;
	for (size_t k = 0; k < sizeof rows; k++)
		rows[k] = (uint8_t)(k * 31 + 7);
	for (size_t k = 0; k < sizeof blob; k++)
		blob[k] = (uint8_t)(k * 13 + 1);
	return 0;
}

/* b borrows from frame[0..len) and equals want. */
static void
assert_bytes(sl_bytes got, sl_bytes want, const uint8_t *frame, size_t len)
{
	assert_int_equal(got.len, want.len);
	if (got.len == 0)
		return;
	assert_true(got.p >= frame && got.p + got.len <= frame + len);
	assert_memory_equal(got.p, want.p, want.len);
}

static void
assert_msg_equal(const sl_msg *a, const sl_msg *b, const uint8_t *f,
    size_t len)
{
	assert_int_equal(a->type, b->type);
	switch (a->type) {
	case SL_MSG_HELLO:
		assert_bytes(a->u.hello.worker, b->u.hello.worker, f, len);
		assert_bytes(a->u.hello.teacher, b->u.hello.teacher, f, len);
		assert_bytes(a->u.hello.model_sha256, b->u.hello.model_sha256,
		    f, len);
		assert_true(a->u.hello.temperature == b->u.hello.temperature);
		assert_int_equal(a->u.hello.fmt.encoding,
		    b->u.hello.fmt.encoding);
		assert_int_equal(a->u.hello.fmt.classes, b->u.hello.fmt.classes);
		assert_int_equal(a->u.hello.fmt.k, b->u.hello.fmt.k);
		assert_int_equal(a->u.hello.input_dim, b->u.hello.input_dim);
		assert_bytes(a->u.hello.dataset_sha256,
		    b->u.hello.dataset_sha256, f, len);
		assert_bytes(a->u.hello.preproc, b->u.hello.preproc, f, len);
		assert_int_equal(a->u.hello.nheld, b->u.hello.nheld);
		for (uint32_t k = 0; k < a->u.hello.nheld; k++)
			assert_true(a->u.hello.held[k] == b->u.hello.held[k]);
		break;
	case SL_MSG_WELCOME:
		assert_int_equal(a->u.welcome.teacher_index,
		    b->u.welcome.teacher_index);
		assert_int_equal(a->u.welcome.heartbeat_ms,
		    b->u.welcome.heartbeat_ms);
		assert_int_equal(a->u.welcome.lease_timeout_ms,
		    b->u.welcome.lease_timeout_ms);
		assert_true(a->u.welcome.rows == b->u.welcome.rows);
		assert_int_equal(a->u.welcome.shard_rows,
		    b->u.welcome.shard_rows);
		assert_int_equal(a->u.welcome.row_bytes, b->u.welcome.row_bytes);
		assert_int_equal(a->u.welcome.dtype, b->u.welcome.dtype);
		assert_true(a->u.welcome.max_msg_bytes ==
		    b->u.welcome.max_msg_bytes);
		break;
	case SL_MSG_REFUSE:
		assert_bytes(a->u.refuse.reason, b->u.refuse.reason, f, len);
		break;
	case SL_MSG_READY:
		assert_int_equal(a->u.ready.credit, b->u.ready.credit);
		break;
	case SL_MSG_TASK:
		assert_true(a->u.task.shard == b->u.task.shard);
		assert_true(a->u.task.first_row == b->u.task.first_row);
		assert_int_equal(a->u.task.nrows, b->u.task.nrows);
		assert_bytes(a->u.task.data, b->u.task.data, f, len);
		break;
	case SL_MSG_HEARTBEAT:
		assert_int_equal(a->u.heartbeat.nheld, b->u.heartbeat.nheld);
		for (uint32_t k = 0; k < a->u.heartbeat.nheld; k++)
			assert_true(a->u.heartbeat.held[k] ==
			    b->u.heartbeat.held[k]);
		break;
	case SL_MSG_RESULT:
		assert_true(a->u.result.shard == b->u.result.shard);
		assert_int_equal(a->u.result.teacher_index,
		    b->u.result.teacher_index);
		assert_int_equal(a->u.result.nrows, b->u.result.nrows);
		assert_bytes(a->u.result.blob, b->u.result.blob, f, len);
		break;
	case SL_MSG_ACK:
		assert_true(a->u.ack.shard == b->u.ack.shard);
		assert_int_equal(a->u.ack.status, b->u.ack.status);
		assert_bytes(a->u.ack.reason, b->u.ack.reason, f, len);
		break;
	case SL_MSG_RESET:
	case SL_MSG_DONE:
	case SL_MSG_BUSY:
		assert_bytes(a->u.reset.reason, b->u.reset.reason, f, len);
		break;
	case SL_MSG_STATUS:
		break;
	case SL_MSG_STATUS_REPLY:
		assert_bytes(a->u.status.json, b->u.status.json, f, len);
		break;
	case SL_MSG_META:
		break;
	case SL_MSG_META_REPLY:
		assert_bytes(a->u.meta.meta, b->u.meta.meta, f, len);
		break;
	case SL_MSG_SHARDS_REPLY:
		assert_true(a->u.shards.next == b->u.shards.next);
		assert_int_equal(a->u.shards.last, b->u.shards.last);
		assert_bytes(a->u.shards.runs, b->u.shards.runs, f, len);
		/* fall through */
	case SL_MSG_SHARDS:
		assert_int_equal(a->u.shards.teacher, b->u.shards.teacher);
		assert_true(a->u.shards.from == b->u.shards.from);
		break;
	case SL_MSG_RECORDS_REPLY:
		assert_bytes(a->u.records.state, b->u.records.state, f, len);
		assert_bytes(a->u.records.blob, b->u.records.blob, f, len);
		/* fall through */
	case SL_MSG_RECORDS:
		assert_int_equal(a->u.records.teacher, b->u.records.teacher);
		assert_true(a->u.records.first == b->u.records.first);
		assert_int_equal(a->u.records.n, b->u.records.n);
		if (a->type == SL_MSG_RECORDS) {
			assert_bytes(a->u.records.samples, b->u.records.samples,
			    f, len);
			assert_bytes(a->u.records.views, b->u.records.views,
			    f, len);
		}
		break;
	case SL_MSG_ERROR:
		assert_int_equal(a->u.error.code, b->u.error.code);
		assert_bytes(a->u.error.reason, b->u.error.reason, f, len);
		break;
	}
}

static void
test_round_trip_every_type(void **state)
{
	sl_proto_buf b = { 0 };

	(void)state;
	for (int t = SL_MSG_HELLO; t <= SL_MSG_ERROR; t++) {
		const sl_msg m = sample((enum sl_msg_type)t);
		sl_errmsg why = { "" };
		sl_msg d;

		assert_int_equal(sl_proto_encode(&m, &b), 0);
		assert_true(b.len > 0 && b.len <= b.cap);
		memset(&d, 0xa5, sizeof d);
		assert_int_equal(sl_proto_decode(b.p, b.len, &d, &why), 0);
		assert_string_equal(why.text, "");
		assert_msg_equal(&d, &m, b.p, b.len);
		assert_string_not_equal(sl_proto_type_name(d.type), "UNKNOWN");
	}
	sl_proto_buf_fini(&b);
	assert_null(b.p);
	sl_proto_buf_fini(&b); /* twice is fine */
	sl_proto_buf_fini(NULL);
}

/* Edge values that are still valid. */
static void
test_round_trip_edges(void **state)
{
	sl_proto_buf b = { 0 };
	char name[SL_PROTO_MAX_NAME + 1];
	sl_msg m, d;

	(void)state;
	memset(name, 'n', SL_PROTO_MAX_NAME);
	name[SL_PROTO_MAX_NAME] = '\0';

	m = sample(SL_MSG_HELLO);
	m.u.hello.teacher = sl_bytes_str(name); /* exactly the limit */
	m.u.hello.worker = sl_bytes_str("w");
	m.u.hello.fmt.encoding = SL_ENC_F32;
	m.u.hello.fmt.k = 0;
	m.u.hello.fmt.classes = SL_LABEL_MAX_CLASSES;
	m.u.hello.dataset_sha256.len = 0; /* rows travel in TASK */
	m.u.hello.nheld = 0;
	m.u.hello.temperature = 1e4f;
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	assert_int_equal(sl_proto_decode(b.p, b.len, &d, NULL), 0);
	assert_msg_equal(&d, &m, b.p, b.len);

	m = sample(SL_MSG_TASK);
	m.u.task.data.len = 0;
	m.u.task.data.p = NULL;
	m.u.task.nrows = SL_PROTO_MAX_ROWS;
	m.u.task.shard = UINT64_MAX;
	m.u.task.first_row = UINT64_MAX - 1;
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	assert_int_equal(sl_proto_decode(b.p, b.len, &d, NULL), 0);
	assert_msg_equal(&d, &m, b.p, b.len);

	m = sample(SL_MSG_ACK);
	m.u.ack.status = SL_ACK_STORED;
	m.u.ack.reason = sl_bytes_str("");
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	assert_int_equal(sl_proto_decode(b.p, b.len, &d, NULL), 0);
	assert_msg_equal(&d, &m, b.p, b.len);

	m = sample(SL_MSG_HEARTBEAT);
	m.u.heartbeat.nheld = 0; /* the broker's */
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	assert_int_equal(sl_proto_decode(b.p, b.len, &d, NULL), 0);
	assert_int_equal(d.u.heartbeat.nheld, 0);
	sl_proto_buf_fini(&b);
}

/* The read service's forms that are valid: a range RECORDS, an empty
 * RECORDS_REPLY, a last SHARDS_REPLY without runs; a range that would
 * overflow is not. */
static void
test_read_service_forms(void **state)
{
	sl_proto_buf b = { 0 };
	sl_msg m, d;

	(void)state;
	m = sample(SL_MSG_RECORDS);
	m.u.records.samples.p = NULL;
	m.u.records.samples.len = 0;
	m.u.records.first = 1000;
	m.u.records.n = SL_PROTO_MAX_ROWS;
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	assert_int_equal(sl_proto_decode(b.p, b.len, &d, NULL), 0);
	assert_msg_equal(&d, &m, b.p, b.len);
	m.u.records.first = UINT64_MAX - 2;
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	assert_int_equal(sl_proto_decode(b.p, b.len, &d, NULL), SL_EFORMAT);

	/* A list of (sample, view) pairs round-trips; views need the list. */
	static const uint8_t VIEWS[16] = { 0, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0,
		3, 0, 0, 0 };
	m = sample(SL_MSG_RECORDS);
	m.u.records.views.p = VIEWS;
	m.u.records.views.len = sizeof VIEWS;
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	assert_int_equal(sl_proto_decode(b.p, b.len, &d, NULL), 0);
	assert_msg_equal(&d, &m, b.p, b.len);
	m.u.records.samples.len = 0;
	m.u.records.samples.p = NULL;
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	assert_int_equal(sl_proto_decode(b.p, b.len, &d, NULL), SL_EFORMAT);

	m = sample(SL_MSG_RECORDS_REPLY);
	m.u.records.n = 0;
	m.u.records.state.len = 0;
	m.u.records.blob.len = 0;
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	assert_int_equal(sl_proto_decode(b.p, b.len, &d, NULL), 0);
	assert_int_equal(d.u.records.n, 0);

	m = sample(SL_MSG_SHARDS_REPLY);
	m.u.shards.runs.len = 0;
	m.u.shards.next = m.u.shards.from;
	m.u.shards.last = 1;
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	assert_int_equal(sl_proto_decode(b.p, b.len, &d, NULL), 0);
	assert_msg_equal(&d, &m, b.p, b.len);
	/* A run ending exactly at next is inside [from, next). */
	m = sample(SL_MSG_SHARDS_REPLY);
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	assert_int_equal(sl_proto_decode(b.p, b.len, &d, NULL), 0);
	sl_proto_buf_fini(&b);
}

/* The bytes on the wire, as the README documents them. */
static void
test_wire_bytes(void **state)
{
	static const uint8_t want[] = {
		0x83, 0xa1, 'v', 0x01, 0xa1, 't', 0x04,
		0xa6, 'c', 'r', 'e', 'd', 'i', 't', 0x03,
	};
	sl_proto_buf b = { 0 };
	sl_msg m = sample(SL_MSG_READY);

	(void)state;
	m.u.ready.credit = 3;
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	assert_int_equal(b.len, sizeof want);
	assert_memory_equal(b.p, want, sizeof want);
	sl_proto_buf_fini(&b);
}

/* Views in HELLO and WELCOME: optional keys, left out at 0 (the frame of a
 * worker without views is unchanged), round-trip when set, and a recipe
 * must come with views and unpack. */
static void
test_views_keys(void **state)
{
	sl_view_recipe r = { 0.0f, 0.0f, 4, 1 };
	uint8_t rb[SL_VIEW_RECIPE_BYTES];
	sl_proto_buf b = { 0 }, plain = { 0 };
	sl_errmsg why = { "" };
	sl_msg m, out;
	const int types[2] = { SL_MSG_HELLO, SL_MSG_WELCOME };

	(void)state;
	sl_view_recipe_pack(&r, rb);
	for (int i = 0; i < 2; i++) {
		m = sample(types[i]);
		assert_int_equal(sl_proto_encode(&m, &plain), 0);
		for (size_t k = 0; k + 7 <= plain.len; k++)
			assert_false(memcmp(plain.p + k, "vrecipe", 7) == 0);
		assert_int_equal(sl_proto_decode(plain.p, plain.len, &out, &why),
		    0);
		if (types[i] == SL_MSG_HELLO) {
			assert_int_equal(out.u.hello.views, 0);
			m.u.hello.views = 8;
			m.u.hello.view_recipe = (sl_bytes){ rb, sizeof rb };
			m.u.hello.view_seed = UINT64_MAX;
		} else {
			assert_int_equal(out.u.welcome.views, 0);
			m.u.welcome.views = 8;
			m.u.welcome.view_recipe = (sl_bytes){ rb, sizeof rb };
			m.u.welcome.view_seed = UINT64_MAX;
			m.u.welcome.view_h = 28;
			m.u.welcome.view_w = 27;
		}
		assert_int_equal(sl_proto_encode(&m, &b), 0);
		assert_true(b.len > plain.len);
		assert_int_equal(sl_proto_decode(b.p, b.len, &out, &why), 0);
		if (types[i] == SL_MSG_HELLO) {
			assert_int_equal(out.u.hello.views, 8);
			assert_bytes(out.u.hello.view_recipe, m.u.hello.view_recipe,
			    b.p, b.len);
			assert_true(out.u.hello.view_seed == UINT64_MAX);
			m.u.hello.views = 0; /* a recipe without views */
		} else {
			assert_int_equal(out.u.welcome.views, 8);
			assert_bytes(out.u.welcome.view_recipe,
			    m.u.welcome.view_recipe, b.p, b.len);
			assert_true(out.u.welcome.view_seed == UINT64_MAX);
			assert_int_equal(out.u.welcome.view_h, 28);
			assert_int_equal(out.u.welcome.view_w, 27);
			m.u.welcome.views = 0;
		}
		assert_int_equal(sl_proto_encode(&m, &b), 0);
		assert_int_equal(sl_proto_decode(b.p, b.len, &out, &why),
		    SL_EFORMAT);
		assert_non_null(strstr(why.text, types[i] == SL_MSG_HELLO ?
		    "without 'views'" : "'vh' and 'vw' go with 'views'"));
		m.u.welcome.view_h = m.u.welcome.view_w = 0;
		if (types[i] == SL_MSG_WELCOME) {
			assert_int_equal(sl_proto_encode(&m, &b), 0);
			assert_int_equal(sl_proto_decode(b.p, b.len, &out, &why),
			    SL_EFORMAT);
			assert_non_null(strstr(why.text, "without 'views'"));
			m.u.welcome.view_h = 28;
			m.u.welcome.view_w = 27;
		}
		/* A recipe of another version, and views past the limit. */
		rb[0] = 2;
		if (types[i] == SL_MSG_HELLO)
			m.u.hello.views = 3;
		else
			m.u.welcome.views = 3;
		assert_int_equal(sl_proto_encode(&m, &b), 0);
		assert_int_equal(sl_proto_decode(b.p, b.len, &out, &why),
		    SL_EFORMAT);
		assert_non_null(strstr(why.text, "'vrecipe': view recipe "
		    "version 2"));
		rb[0] = 1;
		if (types[i] == SL_MSG_HELLO)
			m.u.hello.views = SL_PROTO_MAX_VIEWS + 1;
		else
			m.u.welcome.views = SL_PROTO_MAX_VIEWS + 1;
		assert_int_equal(sl_proto_encode(&m, &b), 0);
		assert_int_equal(sl_proto_decode(b.p, b.len, &out, &why),
		    SL_EFORMAT);
		assert_non_null(strstr(why.text, "'views' = 1025"));
	}
	sl_proto_buf_fini(&b);
	sl_proto_buf_fini(&plain);
}

/* "t" before "v" is accepted: the pair is a set. */
static void
test_t_before_v(void **state)
{
	static const uint8_t frame[] = {
		0x83, 0xa1, 't', 0x04, 0xa1, 'v', 0x01,
		0xa6, 'c', 'r', 'e', 'd', 'i', 't', 0x03,
	};
	sl_msg d;

	(void)state;
	assert_int_equal(sl_proto_decode(frame, sizeof frame, &d, NULL), 0);
	assert_int_equal(d.type, SL_MSG_READY);
	assert_int_equal(d.u.ready.credit, 3);
}

static void
test_buffer_reused(void **state)
{
	sl_proto_buf b = { 0 };
	sl_msg big = sample(SL_MSG_TASK), small = sample(SL_MSG_READY);
	const uint8_t *p;
	size_t cap;

	(void)state;
	assert_int_equal(sl_proto_encode(&big, &b), 0);
	assert_true(b.len > sizeof rows);
	p = b.p;
	cap = b.cap;
	for (int i = 0; i < 100; i++) {
		assert_int_equal(sl_proto_encode(&small, &b), 0);
		assert_int_equal(sl_proto_encode(&big, &b), 0);
	}
	assert_ptr_equal(b.p, p);
	assert_int_equal(b.cap, cap);
	sl_proto_buf_fini(&b);
}

static void
test_encode_refuses_bad_input(void **state)
{
	sl_proto_buf b = { 0 };
	sl_msg m = sample(SL_MSG_HEARTBEAT);

	(void)state;
	m.u.heartbeat.nheld = SL_PROTO_MAX_HELD + 1;
	assert_int_equal(sl_proto_encode(&m, &b), SL_EINVAL);
	m = sample(SL_MSG_READY);
	m.type = (enum sl_msg_type)0;
	assert_int_equal(sl_proto_encode(&m, &b), SL_EINVAL);
	m.type = (enum sl_msg_type)21; /* the first unused type */
	assert_int_equal(sl_proto_encode(&m, &b), SL_EINVAL);
	m = sample(SL_MSG_RESULT);
	m.u.result.blob.p = NULL;
	assert_int_equal(sl_proto_encode(&m, &b), SL_EINVAL);
	assert_string_equal(sl_proto_type_name((enum sl_msg_type)0), "UNKNOWN");
	assert_string_equal(sl_proto_type_name(SL_MSG_RESULT), "RESULT");
	assert_string_equal(sl_proto_type_name(SL_MSG_STATUS_REPLY),
	    "STATUS_REPLY");
	assert_null(b.p);
}

/* ---- malformed frames ----------------------------------------------------
 * Built by re-packing a valid frame with one change: drop a key, duplicate
 * it, replace its value, or add a new key. */

enum vkind { V_U, V_I, V_F64, V_F32, V_STR, V_BIN, V_NIL, V_ARR, V_RAW,
	V_MAP };

struct val {
	enum vkind kind;
	uint64_t u;      /* V_U; V_ARR: element count */
	int64_t i;
	double d;
	const void *p;   /* V_STR, V_BIN, V_RAW */
	size_t len;
};

static void
pack_val(msgpack_packer *pk, const struct val *v)
{
	switch (v->kind) {
	case V_U:
		msgpack_pack_uint64(pk, v->u);
		break;
	case V_I:
		msgpack_pack_int64(pk, v->i);
		break;
	case V_F64:
		msgpack_pack_double(pk, v->d);
		break;
	case V_F32:
		msgpack_pack_float(pk, (float)v->d);
		break;
	case V_STR:
		msgpack_pack_str(pk, v->len);
		msgpack_pack_str_body(pk, v->p, v->len);
		break;
	case V_BIN:
		msgpack_pack_bin(pk, v->len);
		msgpack_pack_bin_body(pk, v->p, v->len);
		break;
	case V_NIL:
		msgpack_pack_nil(pk);
		break;
	case V_ARR:
		msgpack_pack_array(pk, (size_t)v->u);
		for (uint64_t k = 0; k < v->u; k++)
			msgpack_pack_uint64(pk, k);
		break;
	case V_RAW:
		pk->callback(pk->data, v->p, v->len);
		break;
	case V_MAP:
		msgpack_pack_map(pk, 0);
		break;
	}
}

enum op { OP_DROP, OP_DUP, OP_SET, OP_ADD };

/* Re-pack the valid frame src with one change to key `key`. */
static void
remix(const sl_proto_buf *src, const char *key, enum op op,
    const struct val *v, msgpack_sbuffer *out)
{
	msgpack_packer pk;
	uint32_t n;
	sl_mp c;

	msgpack_sbuffer_clear(out);
	msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
	sl_mp_init(&c, src->p, src->len);
	assert_int_equal(sl_mp_map(&c, &n), 0);
	if (op == OP_DROP)
		msgpack_pack_map(&pk, n - 1);
	else if (op == OP_SET)
		msgpack_pack_map(&pk, n);
	else
		msgpack_pack_map(&pk, n + 1);
	for (uint32_t e = 0; e < n; e++) {
		const uint8_t *k;
		size_t klen, vstart;
		int hit;

		assert_int_equal(sl_mp_str(&c, &k, &klen), 0);
		vstart = c.off;
		assert_int_equal(sl_mp_skip(&c), 0);
		hit = sl_mp_streq(k, klen, key);
		if (hit && op == OP_DROP)
			continue;
		for (int rep = 0; rep < (hit && op == OP_DUP ? 2 : 1); rep++) {
			msgpack_pack_str(&pk, klen);
			msgpack_pack_str_body(&pk, k, klen);
			if (hit && op == OP_SET)
				pack_val(&pk, v);
			else
				msgpack_sbuffer_write(out,
				    (const char *)src->p + vstart,
				    c.off - vstart);
		}
	}
	if (op == OP_ADD) {
		msgpack_pack_str(&pk, strlen(key));
		msgpack_pack_str_body(&pk, key, strlen(key));
		pack_val(&pk, v);
	}
}

/* Decode must fail with rc and a reason containing `in`; m stays as it was.
 * label names the case in a failure. */
static void
expect_fail_at(const char *label, const void *frame, size_t len, int rc,
    const char *in)
{
	sl_errmsg why = { "" };
	sl_msg d, before;
	int got;

	memset(&d, 0x5a, sizeof d);
	before = d;
	got = sl_proto_decode(frame, len, &d, &why);
	if (got != rc)
		fail_msg("%s: rc %d (%s), want %d", label, got, why.text, rc);
	if (why.text[0] == '\0')
		fail_msg("%s: no reason", label);
	if (in != NULL && strstr(why.text, in) == NULL)
		fail_msg("%s: reason '%s' does not contain '%s'", label,
		    why.text, in);
	if (memcmp(&d, &before, sizeof d) != 0)
		fail_msg("%s: the message was written on failure", label);
	/* and without an sl_errmsg */
	if (sl_proto_decode(frame, len, &d, NULL) != rc)
		fail_msg("%s: another rc without why", label);
}

#define expect_fail(frame, len, rc, in) \
	expect_fail_at(#frame, frame, len, rc, in)

struct bad {
	enum sl_msg_type type;
	const char *key;
	enum op op;
	struct val v;
	int rc;
	const char *in; /* part of the reason */
};

static const char sha63[] =
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a0";
static const char shaUP[] =
    "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08";
static const char shaXX[] =
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00axx";
static const char sha65[] =
    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a080";
static char long_name[SL_PROTO_MAX_NAME + 1];
static char long_reason[SL_PROTO_MAX_REASON + 1];
static const char nul_name[] = { 'a', 0, 'b' };
static const uint8_t bin32_4g[] = { 0xc6, 0xff, 0xff, 0xff, 0xff, 1, 2, 3 };

#define VU(x) { V_U, (x), 0, 0, NULL, 0 }
#define VI(x) { V_I, 0, (x), 0, NULL, 0 }
#define VF(x) { V_F64, 0, 0, (x), NULL, 0 }
#define VF32(x) { V_F32, 0, 0, (x), NULL, 0 }
#define VS(s, n) { V_STR, 0, 0, 0, (s), (n) }
#define VB(s, n) { V_BIN, 0, 0, 0, (s), (n) }
#define VA(n) { V_ARR, (n), 0, 0, NULL, 0 }
#define VNIL { V_NIL, 0, 0, 0, NULL, 0 }
#define VMAP { V_MAP, 0, 0, 0, NULL, 0 }
#define VRAW(p) { V_RAW, 0, 0, 0, (p), sizeof(p) }
#define VNONE VNIL

static const struct bad bads[] = {
	/* the head */
	{ SL_MSG_READY, "v", OP_SET, VU(2), SL_EUNSUPPORTED,
	    "protocol version 2, this build speaks 1" },
	{ SL_MSG_READY, "v", OP_SET, VU(0), SL_EUNSUPPORTED,
	    "protocol version 0" },
	{ SL_MSG_READY, "v", OP_SET, VS("1", 1), SL_EFORMAT,
	    "key 'v' is str, want uint" },
	{ SL_MSG_READY, "v", OP_DROP, VNONE, SL_EFORMAT, "'v' and 't'" },
	{ SL_MSG_READY, "t", OP_DROP, VNONE, SL_EFORMAT, "'v' and 't'" },
	{ SL_MSG_STATUS, "t", OP_DROP, VNONE, SL_EFORMAT, "at least" },
	{ SL_MSG_READY, "t", OP_SET, VU(21), SL_EFORMAT,
	    "unknown message type 21" },
	{ SL_MSG_READY, "t", OP_SET, VU(0), SL_EFORMAT,
	    "unknown message type 0" },
	{ SL_MSG_READY, "t", OP_SET, VI(-4), SL_EFORMAT,
	    "key 't' is negative int, want uint" },
	{ SL_MSG_READY, "v", OP_DUP, VNONE, SL_EFORMAT, "duplicate key 'v'" },
	{ SL_MSG_READY, "t", OP_DUP, VNONE, SL_EFORMAT, "duplicate key 't'" },
	{ SL_MSG_READY, "v", OP_ADD, VU(1), SL_EFORMAT, "duplicate key 'v'" },
	/* keys */
	{ SL_MSG_RESULT, "bogus", OP_ADD, VU(1), SL_EFORMAT,
	    "RESULT: unknown key 'bogus'" },
	{ SL_MSG_STATUS, "json", OP_ADD, VS("{}", 2), SL_EFORMAT,
	    "STATUS: unknown key 'json'" },
	{ SL_MSG_RESULT, "shard", OP_DUP, VNONE, SL_EFORMAT,
	    "RESULT: duplicate key 'shard'" },
	{ SL_MSG_HELLO, "held", OP_DUP, VNONE, SL_EFORMAT,
	    "HELLO: duplicate key 'held'" },
	{ SL_MSG_RESULT, "blob", OP_DROP, VNONE, SL_EFORMAT,
	    "RESULT: missing key 'blob'" },
	{ SL_MSG_HELLO, "temp", OP_DROP, VNONE, SL_EFORMAT,
	    "HELLO: missing key 'temp'" },
	{ SL_MSG_HELLO, "pre", OP_DROP, VNONE, SL_EFORMAT,
	    "HELLO: missing key 'pre'" },
	{ SL_MSG_HELLO, "pre", OP_SET, VB("\0\0\0\0", 4), SL_EFORMAT,
	    "HELLO: key 'pre' has 4 bytes, want 12" },
	{ SL_MSG_ACK, "reason", OP_DROP, VNONE, SL_EFORMAT,
	    "ACK: missing key 'reason'" },
	/* wrong msgpack types */
	{ SL_MSG_RESULT, "blob", OP_SET, VS("abc", 3), SL_EFORMAT,
	    "RESULT: key 'blob' is str, want bin" },
	{ SL_MSG_RESULT, "shard", OP_SET, VI(-1), SL_EFORMAT,
	    "RESULT: key 'shard' is negative int, want uint" },
	{ SL_MSG_RESULT, "n", OP_SET, VF(3.0), SL_EFORMAT,
	    "key 'n' is float64, want uint" },
	{ SL_MSG_RESULT, "teacher", OP_SET, VNIL, SL_EFORMAT,
	    "key 'teacher' is nil, want uint" },
	{ SL_MSG_HELLO, "teacher", OP_SET, VB("mlp", 3), SL_EFORMAT,
	    "HELLO: key 'teacher' is bin, want str" },
	{ SL_MSG_HELLO, "model", OP_SET, VB(SHA, 64), SL_EFORMAT,
	    "key 'model' is bin, want str" },
	{ SL_MSG_HELLO, "dataset", OP_SET, VS("x", 1), SL_EFORMAT,
	    "key 'dataset' is str, want bin" },
	{ SL_MSG_HELLO, "temp", OP_SET, VS("4", 1), SL_EFORMAT,
	    "key 'temp' is str, want float" },
	{ SL_MSG_HELLO, "held", OP_SET, VMAP, SL_EFORMAT,
	    "key 'held' is map, want array" },
	{ SL_MSG_HEARTBEAT, "held", OP_SET, VU(3), SL_EFORMAT,
	    "key 'held' is uint, want array" },
	{ SL_MSG_READY, "credit", OP_SET, VI(-1), SL_EFORMAT,
	    "READY: key 'credit' is negative int, want uint" },
	{ SL_MSG_STATUS_REPLY, "json", OP_SET, VB("{}", 2), SL_EFORMAT,
	    "STATUS_REPLY: key 'json' is bin, want str" },
	/* the read service's messages */
	{ SL_MSG_RECORDS, "n", OP_SET, VU(SL_PROTO_MAX_ROWS + 1), SL_ELIMIT,
	    "RECORDS: key 'n' = 1048577, limit 1048576" },
	{ SL_MSG_RECORDS, "n", OP_SET, VU(0), SL_EFORMAT, "'n' = 0" },
	{ SL_MSG_RECORDS, "n", OP_SET, VU(3), SL_EFORMAT,
	    "'samples' has 32 bytes, want 0 or 8 * n = 24" },
	{ SL_MSG_RECORDS, "first", OP_SET, VU(5), SL_EFORMAT,
	    "'first' must be 0 with a sample list" },
	{ SL_MSG_RECORDS, "samples", OP_SET, VS("x", 1), SL_EFORMAT,
	    "RECORDS: key 'samples' is str, want bin" },
	{ SL_MSG_RECORDS, "teacher", OP_DROP, VNIL, SL_EFORMAT,
	    "RECORDS: missing key 'teacher'" },
	{ SL_MSG_RECORDS, "views", OP_ADD, VB("\0\0\0\0", 4), SL_EFORMAT,
	    "'views' has 4 bytes, want 4 * n = 16 beside a sample list" },
	{ SL_MSG_RECORDS, "views", OP_ADD, VS("x", 1), SL_EFORMAT,
	    "RECORDS: key 'views' is str, want bin" },
	{ SL_MSG_RECORDS_REPLY, "n", OP_SET, VU(5), SL_EFORMAT,
	    "'state' has 4 bytes, want n = 5" },
	{ SL_MSG_RECORDS_REPLY, "state", OP_SET, VB("\0\1\3\0", 4),
	    SL_EFORMAT, "state 3 of sample 2, want 0..2" },
	{ SL_MSG_SHARDS_REPLY, "next", OP_SET, VU(16), SL_EFORMAT,
	    "'next' is before 'from'" },
	{ SL_MSG_SHARDS_REPLY, "next", OP_SET, VU(89), SL_EFORMAT,
	    "run 1 (40, 50) is empty, out of order or outside [from, next)" },
	{ SL_MSG_SHARDS_REPLY, "from", OP_SET, VU(18), SL_EFORMAT,
	    "run 0 (17, 3)" },
	{ SL_MSG_SHARDS_REPLY, "runs", OP_SET, VB("0123456789abcdef0", 17),
	    SL_EFORMAT, "'runs' has 17 bytes, not pairs of u64" },
	{ SL_MSG_SHARDS_REPLY, "last", OP_SET, VU(2), SL_EFORMAT,
	    "'last' = 2, want 0..1" },
	{ SL_MSG_META_REPLY, "meta", OP_SET, VB("", 0), SL_EFORMAT,
	    "META_REPLY: key 'meta' is empty" },
	{ SL_MSG_META, "extra", OP_ADD, VU(1), SL_EFORMAT,
	    "META: unknown key 'extra'" },
	{ SL_MSG_ERROR, "reason", OP_SET, VS("a\0b", 3), SL_EFORMAT,
	    "ERROR: key 'reason' contains a NUL byte" },
	{ SL_MSG_RESULT, "blob", OP_SET, VRAW(bin32_4g), SL_EFORMAT,
	    "RESULT: key 'blob': value truncated or malformed (want bin)" },
	/* out of range */
	{ SL_MSG_HELLO, "temp", OP_SET, VF(NAN), SL_EFORMAT,
	    "key 'temp' = nan" },
	{ SL_MSG_HELLO, "temp", OP_SET, VF(INFINITY), SL_EFORMAT,
	    "key 'temp' = inf" },
	{ SL_MSG_HELLO, "temp", OP_SET, VF32(NAN), SL_EFORMAT, "'temp'" },
	{ SL_MSG_HELLO, "temp", OP_SET, VF(0.0), SL_EFORMAT, "'temp' = 0" },
	{ SL_MSG_HELLO, "temp", OP_SET, VF32(-1.0), SL_EFORMAT,
	    "'temp' = -1" },
	{ SL_MSG_HELLO, "temp", OP_SET, VF(1e4 + 1), SL_EFORMAT, "'temp'" },
	{ SL_MSG_HELLO, "temp", OP_SET, VF(1e-60), SL_EFORMAT, "'temp'" },
	{ SL_MSG_HELLO, "temp", OP_SET, VU(0), SL_EFORMAT, "'temp' = 0" },
	{ SL_MSG_HELLO, "k", OP_SET, VU(10), SL_EFORMAT, "valid format" },
	{ SL_MSG_HELLO, "k", OP_SET, VU(0), SL_EFORMAT, "valid format" },
	{ SL_MSG_HELLO, "k", OP_SET, VU(70000), SL_EFORMAT, "'k' = 70000" },
	{ SL_MSG_HELLO, "classes", OP_SET, VU(1), SL_EFORMAT, "valid format" },
	{ SL_MSG_HELLO, "classes", OP_SET, VU(65537), SL_EFORMAT,
	    "valid format" },
	{ SL_MSG_HELLO, "classes", OP_SET, VU((uint64_t)1 << 32), SL_EFORMAT,
	    "'classes' = 4294967296" },
	{ SL_MSG_HELLO, "enc", OP_SET, VU(4), SL_EFORMAT, "'enc' = 4, want 1..3" },
	{ SL_MSG_HELLO, "enc", OP_SET, VU(0), SL_EFORMAT, "'enc' = 0" },
	{ SL_MSG_HELLO, "dim", OP_SET, VU(0), SL_EFORMAT, "'dim' = 0" },
	{ SL_MSG_HELLO, "model", OP_SET, VS(sha63, 63), SL_EFORMAT,
	    "'model' is not 64 lowercase hex" },
	{ SL_MSG_HELLO, "model", OP_SET, VS(sha65, 65), SL_EFORMAT,
	    "'model' is not 64 lowercase hex" },
	{ SL_MSG_HELLO, "model", OP_SET, VS(shaUP, 64), SL_EFORMAT,
	    "'model' is not 64 lowercase hex" },
	{ SL_MSG_HELLO, "model", OP_SET, VS(shaXX, 64), SL_EFORMAT,
	    "'model' is not 64 lowercase hex" },
	{ SL_MSG_HELLO, "teacher", OP_SET, VS(long_name, SL_PROTO_MAX_NAME + 1),
	    SL_ELIMIT, "HELLO: key 'teacher' has 129 bytes, limit 128" },
	{ SL_MSG_HELLO, "worker", OP_SET, VS(long_name, SL_PROTO_MAX_NAME + 1),
	    SL_ELIMIT, "'worker' has 129 bytes" },
	{ SL_MSG_HELLO, "teacher", OP_SET, VS(nul_name, 3), SL_EFORMAT,
	    "'teacher' contains a NUL byte" },
	{ SL_MSG_HELLO, "worker", OP_SET, VS(nul_name, 3), SL_EFORMAT,
	    "'worker' contains a NUL byte" },
	{ SL_MSG_HELLO, "teacher", OP_SET, VS("", 0), SL_EFORMAT,
	    "'teacher' is empty" },
	{ SL_MSG_HELLO, "dataset", OP_SET, VB(DATASET_SHA, 31), SL_EFORMAT,
	    "'dataset' has 31 bytes, want 0 or 32" },
	{ SL_MSG_HELLO, "held", OP_SET, VA(SL_PROTO_MAX_HELD + 1), SL_ELIMIT,
	    "'held' lists 65 shards, limit 64" },
	{ SL_MSG_HEARTBEAT, "held", OP_SET, VA(SL_PROTO_MAX_HELD + 1),
	    SL_ELIMIT, "HEARTBEAT: key 'held' lists 65" },
	{ SL_MSG_READY, "credit", OP_SET, VU(65), SL_ELIMIT,
	    "READY: key 'credit' = 65, limit 64" },
	{ SL_MSG_TASK, "n", OP_SET, VU(0), SL_EFORMAT, "TASK: key 'n' = 0" },
	{ SL_MSG_TASK, "n", OP_SET, VU(SL_PROTO_MAX_ROWS + 1), SL_ELIMIT,
	    "TASK: key 'n' = 1048577, limit 1048576" },
	{ SL_MSG_RESULT, "n", OP_SET, VU(0), SL_EFORMAT, "RESULT: key 'n' = 0" },
	{ SL_MSG_RESULT, "blob", OP_SET, VB("", 0), SL_EFORMAT,
	    "RESULT: key 'blob' is empty" },
	{ SL_MSG_RESULT, "teacher", OP_SET, VU((uint64_t)1 << 32), SL_EFORMAT,
	    "'teacher' = 4294967296" },
	{ SL_MSG_ACK, "status", OP_SET, VU(0), SL_EFORMAT,
	    "ACK: key 'status' = 0, want 1..4" },
	{ SL_MSG_ACK, "status", OP_SET, VU(5), SL_EFORMAT,
	    "ACK: key 'status' = 5, want 1..4" },
	{ SL_MSG_ACK, "reason", OP_SET, VS(long_reason, SL_PROTO_MAX_REASON + 1),
	    SL_ELIMIT, "'reason' has 257 bytes, limit 256" },
	{ SL_MSG_REFUSE, "reason", OP_SET, VS(nul_name, 3), SL_EFORMAT,
	    "REFUSE: key 'reason' contains a NUL" },
	{ SL_MSG_DONE, "reason", OP_SET, VS(long_reason,
	    SL_PROTO_MAX_REASON + 1), SL_ELIMIT, "DONE: key 'reason'" },
	{ SL_MSG_WELCOME, "dtype", OP_SET, VU(3), SL_EFORMAT,
	    "WELCOME: key 'dtype' = 3" },
	{ SL_MSG_WELCOME, "hb_ms", OP_SET, VU(0), SL_EFORMAT, "'hb_ms' = 0" },
	{ SL_MSG_WELCOME, "shard_rows", OP_SET, VU(SL_PROTO_MAX_ROWS + 1),
	    SL_ELIMIT, "'shard_rows'" },
	{ SL_MSG_WELCOME, "rows", OP_SET, VI(-5), SL_EFORMAT,
	    "'rows' is negative int" },
};

static void
test_every_malformed_key(void **state)
{
	msgpack_sbuffer out;
	sl_proto_buf b = { 0 };

	(void)state;
	memset(long_name, 'x', sizeof long_name);
	memset(long_reason, 'r', sizeof long_reason);
	msgpack_sbuffer_init(&out);
	for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
		const struct bad *c = &bads[i];
		const sl_msg m = sample(c->type);
		char label[80];

		assert_int_equal(sl_proto_encode(&m, &b), 0);
		remix(&b, c->key, c->op, &c->v, &out);

		snprintf(label, sizeof label, "case %zu (%s '%s')", i,
		    sl_proto_type_name(c->type), c->key);
		expect_fail_at(label, out.data, out.size, c->rc, c->in);
	}
	msgpack_sbuffer_destroy(&out);
	sl_proto_buf_fini(&b);
}

/* remix itself must be able to produce a valid frame (else every case above
 * would pass for the wrong reason). */
static void
test_remix_control(void **state)
{
	static const struct val credit7 = VU(7), credit0 = VU(0);
	msgpack_sbuffer out;
	sl_proto_buf b = { 0 };
	sl_msg m = sample(SL_MSG_READY), d;

	(void)state;
	msgpack_sbuffer_init(&out);
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	remix(&b, "credit", OP_SET, &credit7, &out);
	assert_int_equal(sl_proto_decode(out.data, out.size, &d, NULL), 0);
	assert_int_equal(d.u.ready.credit, 7);
	/* Credit 0 is a stopping worker's "no more", not a malformed READY. */
	remix(&b, "credit", OP_SET, &credit0, &out);
	assert_int_equal(sl_proto_decode(out.data, out.size, &d, NULL), 0);
	assert_int_equal(d.u.ready.credit, 0);
	m = sample(SL_MSG_HELLO);
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	remix(&b, "nothing", OP_SET, &credit7, &out); /* identity */
	assert_int_equal(out.size, b.len);
	assert_int_equal(sl_proto_decode(out.data, out.size, &d, NULL), 0);
	msgpack_sbuffer_destroy(&out);
	sl_proto_buf_fini(&b);
}

static void
test_not_a_message(void **state)
{
	static const uint8_t garbage[] = { 0xc1, 0x00, 0x13, 0x37 };
	static const uint8_t array[] = { 0x92, 0x01, 0x02 };
	static const uint8_t str[] = { 0xa2, 'h', 'i' };
	static const uint8_t fixint[] = { 0x07 };
	static const uint8_t empty_map[] = { 0x80 };
	/* map32 claiming 4e9 entries, then a few bytes */
	static const uint8_t map4e9[] = { 0xdf, 0xee, 0x6b, 0x28, 0x00,
		0xa1, 'v', 0x01, 0xa1, 't', 0x04 };
	/* a key that is not a str */
	static const uint8_t intkey[] = { 0x82, 0x01, 0x01, 0xa1, 't', 0x04 };
	/* type ok, then a non-str key */
	static const uint8_t intkey2[] = { 0x83, 0xa1, 'v', 0x01, 0xa1, 't',
		0x04, 0x05, 0x03 };

	(void)state;
	expect_fail(garbage, sizeof garbage, SL_EFORMAT, "want a map");
	expect_fail(garbage, 0, SL_EFORMAT, "empty frame");
	expect_fail(NULL, 0, SL_EFORMAT, "empty frame");
	expect_fail(array, sizeof array, SL_EFORMAT, "message is array");
	expect_fail(str, sizeof str, SL_EFORMAT, "message is str");
	expect_fail(fixint, sizeof fixint, SL_EFORMAT, "message is uint");
	expect_fail(empty_map, sizeof empty_map, SL_EFORMAT, "at least");
	expect_fail(map4e9, sizeof map4e9, SL_EFORMAT, "want a map");
	expect_fail(intkey, sizeof intkey, SL_EFORMAT, "first key is uint");
	expect_fail(intkey2, sizeof intkey2, SL_EFORMAT,
	    "READY: key 2 is uint, want str");
}

static void
test_trailing_bytes(void **state)
{
	sl_proto_buf b = { 0 };
	const sl_msg m = sample(SL_MSG_RESULT);
	uint8_t *p;

	(void)state;
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	p = malloc(b.len + 1);
	assert_non_null(p);
	memcpy(p, b.p, b.len);
	p[b.len] = 0xc0;
	expect_fail(p, b.len + 1, SL_EFORMAT, "RESULT: 1 trailing bytes");
	free(p);
	sl_proto_buf_fini(&b);
}

static void
test_every_truncation_of_result(void **state)
{
	sl_proto_buf b = { 0 };
	const sl_msg m = sample(SL_MSG_RESULT);
	uint8_t *p;
	sl_msg d;

	(void)state;
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	for (size_t cut = 0; cut < b.len; cut++) {
		/* a copy of exactly cut bytes, so ASan sees any overread */
		p = malloc(cut > 0 ? cut : 1);
		assert_non_null(p);
		memcpy(p, b.p, cut);
		expect_fail(p, cut, SL_EFORMAT, NULL);
		free(p);
	}
	assert_int_equal(sl_proto_decode(b.p, b.len, &d, NULL), 0);
	sl_proto_buf_fini(&b);
}

static void
test_json_limit(void **state)
{
	sl_proto_buf b = { 0 };
	char *json = malloc(SL_PROTO_MAX_JSON + 1);
	sl_msg m = sample(SL_MSG_STATUS_REPLY), d;

	(void)state;
	assert_non_null(json);
	memset(json, ' ', SL_PROTO_MAX_JSON + 1);
	m.u.status.json.p = (const uint8_t *)json;
	m.u.status.json.len = SL_PROTO_MAX_JSON;
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	assert_int_equal(sl_proto_decode(b.p, b.len, &d, NULL), 0);
	assert_int_equal(d.u.status.json.len, SL_PROTO_MAX_JSON);
	m.u.status.json.len = SL_PROTO_MAX_JSON + 1;
	assert_int_equal(sl_proto_encode(&m, &b), 0);
	expect_fail(b.p, b.len, SL_ELIMIT, "STATUS_REPLY: key 'json' has");
	free(json);
	sl_proto_buf_fini(&b);
}

/* Outside bytes never crash the decoder: random strings, and valid frames
 * with random bytes changed (those reach deep into the walk). A frame that
 * decodes must survive a re-encode and decode. */
static void
check_any(const uint8_t *p, size_t len, sl_proto_buf *re, int *ok)
{
	sl_errmsg why = { "" };
	sl_msg d, d2;
	int rc;

	rc = sl_proto_decode(p, len, &d, &why);
	if (rc == 0) {
		(*ok)++;
		assert_int_equal(sl_proto_encode(&d, re), 0);
		assert_int_equal(sl_proto_decode(re->p, re->len, &d2, NULL), 0);
		assert_int_equal(d2.type, d.type);
		return;
	}
	assert_true(rc == SL_EFORMAT || rc == SL_ELIMIT ||
	    rc == SL_EUNSUPPORTED);
	assert_true(why.text[0] != '\0');
}

static void
test_random_bytes_never_crash(void **state)
{
	sl_proto_buf b = { 0 }, re = { 0 };
	uint8_t buf[512];
	int ok = 0, mutated_ok = 0;
	sl_rng r;

	(void)state;
	sl_rng_seed(&r, 20240601);
	for (int i = 0; i < 10000; i++) {
		const size_t len = (size_t)sl_rng_below(&r, sizeof buf + 1);

		for (size_t k = 0; k < len; k++)
			buf[k] = (uint8_t)sl_rng_u64(&r);
		/* half of them start like a map, to get past the first byte */
		if (len > 0 && (i & 1))
			buf[0] = (uint8_t)(0x80 | (buf[0] & 0x0f));
		check_any(buf, len, &re, &ok);
	}
	assert_int_equal(ok, 0); /* random bytes are not a message */

	for (int i = 0; i < 10000; i++) {
		const sl_msg m = sample((enum sl_msg_type)
		    (1 + sl_rng_below(&r, SL_MSG_ERROR)));
		uint8_t *p;
		size_t nflip;

		assert_int_equal(sl_proto_encode(&m, &b), 0);
		p = malloc(b.len);
		assert_non_null(p);
		memcpy(p, b.p, b.len);
		nflip = 1 + (size_t)sl_rng_below(&r, 3);
		for (size_t k = 0; k < nflip; k++) {
			const size_t at = (size_t)sl_rng_below(&r, b.len);

			p[at] = (uint8_t)sl_rng_u64(&r);
		}
		check_any(p, b.len, &re, &mutated_ok);
		free(p);
	}
	/* some mutations land in payload bytes and still decode */
	assert_true(mutated_ok > 0 && mutated_ok < 10000);
	sl_proto_buf_fini(&b);
	sl_proto_buf_fini(&re);
}

/* Names: the documented set only, the first bad byte named; and remote
 * text escaped into one printable line. */
static void
test_names_and_escaping(void **state)
{
	char big[SL_PROTO_MAX_NAME + 1], out[32];
	size_t bad = 99;

	(void)state;
	assert_true(sl_proto_name_valid("host-01.a_b:c@d+e", 17, NULL));
	assert_false(sl_proto_name_valid("ab\ncd", 5, &bad));
	assert_int_equal(bad, 2);
	assert_false(sl_proto_name_valid("t\x1b]0;x\x07", 7, &bad));
	assert_int_equal(bad, 1);
	assert_false(sl_proto_name_valid("a\0b", 3, &bad));
	assert_int_equal(bad, 1);
	for (const char *c = " /,=\\\"'\x7f\x80"; *c; c++)
		assert_false(sl_proto_name_valid(c, 1, NULL));
	assert_false(sl_proto_name_valid("", 0, &bad));
	assert_int_equal(bad, 0);
	memset(big, 'a', sizeof big);
	assert_true(sl_proto_name_valid(big, SL_PROTO_MAX_NAME, NULL));
	assert_false(sl_proto_name_valid(big, SL_PROTO_MAX_NAME + 1, &bad));
	assert_int_equal(bad, SL_PROTO_MAX_NAME + 1);

	assert_string_equal(sl_log_escape(out, sizeof out, "a\nb\x1b]\x07\x7f", 7),
	    "a\\x0ab\\x1b]\\x07\\x7f");
	/* Cut to fit, never in the middle of an escape. */
	assert_string_equal(sl_log_escape(out, 8, "abcde\n", 6), "abcde");
	assert_string_equal(sl_log_escape(out, 1, "abc", 3), "");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_every_type),
		cmocka_unit_test(test_round_trip_edges),
		cmocka_unit_test(test_read_service_forms),
		cmocka_unit_test(test_views_keys),
		cmocka_unit_test(test_wire_bytes),
		cmocka_unit_test(test_t_before_v),
		cmocka_unit_test(test_buffer_reused),
		cmocka_unit_test(test_encode_refuses_bad_input),
		cmocka_unit_test(test_remix_control),
		cmocka_unit_test(test_every_malformed_key),
		cmocka_unit_test(test_not_a_message),
		cmocka_unit_test(test_trailing_bytes),
		cmocka_unit_test(test_every_truncation_of_result),
		cmocka_unit_test(test_json_limit),
		cmocka_unit_test(test_random_bytes_never_crash),
		cmocka_unit_test(test_names_and_escaping),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}

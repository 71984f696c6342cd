/* sl_proto.h - the wire protocol between broker, teacher workers and clients.
 *
 * Every message is one ZeroMQ frame holding one msgpack map. Two keys are in
 * every message: "v" (protocol version, SL_PROTO_VERSION) and "t" (type, an
 * unsigned integer below). The other keys depend on the type; unknown keys
 * are an error, so a peer of another version fails loudly rather than
 * half-understood. Soft labels and dataset rows travel as one msgpack `bin`
 * each, never as arrays of numbers.
 *
 * Workers (DEALER) talk to the broker (ROUTER):
 *
 *   worker                         broker
 *   HELLO {teacher, model, T, enc} ->        register; provenance checked
 *                                  <- WELCOME {teacher index, timings} | REFUSE {reason}
 *                                     | BUSY {reason}: HELLO again after a back-off
 *   READY {credit}                 ->        ask for up to `credit` shards
 *                                            (0: stopping, lease nothing more)
 *                                  <- TASK {shard, rows, [data]}  (0..credit of them)
 *   HEARTBEAT {shards held}        ->        every heartbeat_ms: renews leases
 *                                  <- HEARTBEAT {}
 *   RESULT {shard, blob}           ->        validated, committed in one txn
 *                                  <- ACK {shard, status}          after the commit
 *
 * A broker that does not know the sender (restarted, or the worker
 * reconnected under a new identity) answers anything but HELLO with RESET;
 * the worker then sends HELLO again, listing the shards whose results it
 * still holds, and resends them.
 *
 * STATUS {} -> STATUS_REPLY {json} works from any client without HELLO.
 *
 * Readers (DEALER) talk to `softlabel serve` (ROUTER), one request at a
 * time, each answered from a fresh read snapshot of the cache:
 *
 *   META {}                        -> <- META_REPLY {meta}: job and teachers
 *                                        (sl_meta.h's blob)
 *   SHARDS {teacher, from}         -> <- SHARDS_REPLY {teacher, from, next,
 *                                        last, runs}: done shards as runs
 *   RECORDS {teacher, first, n, samples, views}
 *                                  -> <- RECORDS_REPLY {teacher, first, n,
 *                                        state, blob}: raw records of a
 *                                        prefix of the asked samples (with
 *                                        views: of the listed (sample,
 *                                        view) pairs, 16-byte keys)
 *                                  <- ERROR {code, reason} for any of them
 *
 * A reply may answer a prefix (bounded reply size): the client asks again
 * for the rest (SHARDS from `next`, RECORDS for the samples after `n`).
 *
 * Decoding is a bounds-checked walk of the frame that allocates nothing:
 * strings and blobs in a decoded message point into the frame and are valid
 * only as long as it is. Encoding uses msgpack-c's packer.
 */
#ifndef SL_PROTO_H
#define SL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "sl_err.h"
#include "sl_label.h"

#define SL_PROTO_VERSION 1
#define SL_PROTO_MAX_NAME 128        /* teacher and worker names, bytes */
#define SL_PROTO_MAX_VIEWS 1024      /* = SL_STORE_MAX_VIEWS */
/* The characters a teacher or worker name may have (a documented set:
 * README "Wire protocol"): no space, no control byte, no '/', ',' or '='
 * (file names, lists and NAME=VALUE options use them). */
#define SL_PROTO_NAME_CHARS "A-Z a-z 0-9 . _ - + : @"
#define SL_PROTO_MAX_HELD 64         /* shards listed in HELLO / HEARTBEAT */
#define SL_PROTO_MAX_REASON 256      /* REFUSE / ACK / RESET / DONE reason, bytes */
#define SL_PROTO_MAX_ROWS (1u << 20) /* TASK / RESULT n and WELCOME shard_rows */
#define SL_PROTO_MAX_JSON (1u << 20) /* STATUS_REPLY json, bytes */
#define SL_PROTO_MAX_META (1u << 20) /* META_REPLY meta, bytes */
#define SL_PROTO_MAX_RUNS (1u << 16) /* SHARDS_REPLY runs per reply */

enum sl_msg_type {
	SL_MSG_HELLO = 1,
	SL_MSG_WELCOME = 2,
	SL_MSG_REFUSE = 3,
	SL_MSG_READY = 4,
	SL_MSG_TASK = 5,
	SL_MSG_HEARTBEAT = 6,
	SL_MSG_RESULT = 7,
	SL_MSG_ACK = 8,
	SL_MSG_RESET = 9,
	SL_MSG_STATUS = 10,
	SL_MSG_STATUS_REPLY = 11,
	SL_MSG_DONE = 12, /* broker -> worker: every shard of your teacher is done */
	SL_MSG_BUSY = 13, /* broker -> worker: HELLO refused for now; say it
	                     again after a back-off (every worker slot taken,
	                     or a limit per source address) */
	SL_MSG_META = 14,          /* reader -> serve */
	SL_MSG_META_REPLY = 15,
	SL_MSG_SHARDS = 16,
	SL_MSG_SHARDS_REPLY = 17,
	SL_MSG_RECORDS = 18,
	SL_MSG_RECORDS_REPLY = 19,
	SL_MSG_ERROR = 20,         /* serve -> reader: the request failed */
};

/* RECORDS_REPLY state bytes, one per answered sample. */
enum sl_rec_state {
	SL_REC_ABSENT = 0,  /* no record for this sample */
	SL_REC_PRESENT = 1, /* its record follows in blob */
	SL_REC_BADSIZE = 2, /* a record of the wrong size is stored (corrupt):
	                       nothing in blob; the reader counts it as a
	                       record that failed sl_label_check */
};

enum sl_ack_status {
	SL_ACK_STORED = 1,    /* committed now */
	SL_ACK_DUPLICATE = 2, /* already done: dropped */
	SL_ACK_REJECTED = 3,  /* invalid: see reason; the shard goes back to the queue */
	SL_ACK_RETRY = 4,     /* valid, but the broker could not store it (a full
	                         disk): keep it, resend it after a back-off */
};

/* A borrowed byte range inside the frame being decoded. */
typedef struct sl_bytes {
	const uint8_t *p;
	size_t len;
} sl_bytes;

typedef struct sl_msg {
	enum sl_msg_type type;
	union {
		struct { /* HELLO */
			sl_bytes worker;      /* free-form name for status */
			sl_bytes teacher;     /* teacher name, 1..SL_PROTO_MAX_NAME */
			sl_bytes model_sha256; /* 64 lowercase hex digits */
			float temperature;    /* > 0, finite */
			sl_label_fmt fmt;     /* encoding, classes, k */
			uint32_t input_dim;   /* values per row the model takes */
			sl_bytes dataset_sha256; /* 32 bytes, or len 0: ship rows */
			sl_bytes preproc;     /* sl_preproc_pack()'s form, 12 to
			                       * SL_PREPROC_MAX_BYTES; NaN: the
			                       * dataset dtype's default */
			uint32_t nheld;
			uint64_t held[SL_PROTO_MAX_HELD]; /* results it still holds */
			/* Optional: the views it was started with (0: it takes
			 * the broker's); recipe 12 bytes when views > 0. */
			uint32_t views;
			sl_bytes view_recipe;
			uint64_t view_seed;
		} hello;
		struct { /* WELCOME */
			uint32_t teacher_index;
			uint32_t heartbeat_ms;
			uint32_t lease_timeout_ms;
			uint64_t rows;        /* dataset rows */
			uint32_t shard_rows;
			uint32_t row_bytes;   /* bytes per row in TASK data */
			uint32_t dtype;       /* enum sl_dtype of TASK data */
			uint64_t max_msg_bytes;
			/* Optional: the teacher's views (0: none); with V > 0
			 * TASK, RESULT, ACK and held numbers are units,
			 * shard * V + view. */
			uint32_t views;
			sl_bytes view_recipe; /* 12 bytes when views > 0 */
			uint64_t view_seed;
			uint32_t view_h, view_w; /* the rows' image, views > 0 */
		} welcome;
		struct { /* REFUSE */
			sl_bytes reason;
		} refuse;
		struct { /* READY */
			uint32_t credit;      /* 0..SL_PROTO_MAX_HELD; 0: stopping */
		} ready;
		struct { /* TASK */
			uint64_t shard;
			uint64_t first_row;
			uint32_t nrows;
			sl_bytes data;        /* nrows * row_bytes, or empty */
		} task;
		struct { /* HEARTBEAT (worker: shards in progress; broker: none) */
			uint32_t nheld;
			uint64_t held[SL_PROTO_MAX_HELD];
		} heartbeat;
		struct { /* RESULT */
			uint64_t shard;
			uint32_t teacher_index;
			uint32_t nrows;
			sl_bytes blob;        /* nrows records of the teacher's format */
		} result;
		struct { /* ACK */
			uint64_t shard;
			uint32_t status;      /* enum sl_ack_status */
			sl_bytes reason;      /* empty unless rejected */
		} ack;
		struct { /* STATUS_REPLY */
			sl_bytes json;
		} status;
		struct { /* RESET, DONE, BUSY */
			sl_bytes reason;
		} reset;
		struct { /* META_REPLY */
			sl_bytes meta;        /* sl_meta_encode()'s blob */
		} meta;
		struct { /* SHARDS (from only) and SHARDS_REPLY */
			uint32_t teacher;     /* teacher index */
			uint64_t from;        /* first shard considered */
			uint64_t next;        /* reply: ask again from here */
			uint32_t last;        /* reply: 1 when nothing follows next */
			sl_bytes runs;        /* reply: (first, count) u64 LE pairs,
			                       * ascending, disjoint, count >= 1 */
		} shards;
		struct { /* RECORDS and RECORDS_REPLY */
			uint32_t teacher;     /* teacher index */
			uint64_t first;       /* range form: samples first.. */
			uint32_t n;           /* samples asked (reply: answered) */
			sl_bytes samples;     /* list form: n u64 LE sample numbers;
			                       * empty: the range first..first+n */
			sl_bytes views;       /* list form only: n u32 LE view
			                       * numbers, the records of (sample,
			                       * view); empty: 12-byte keys */
			sl_bytes state;       /* reply: n enum sl_rec_state bytes */
			sl_bytes blob;        /* reply: the present records, back
			                       * to back, each of the teacher's size */
		} records;
		struct { /* ERROR */
			uint32_t code;        /* -SL_E* or an errno value */
			sl_bytes reason;
		} error;
	} u;
} sl_msg;

/* Decode frame buf[0..len) into m. Checks the version, the type, that every
 * required key is present with the right msgpack type and range, that no
 * unknown or repeated key appears, and that nothing trails the map. The
 * first two keys must be "v" and "t" (either order); the key table and
 * every range are in the comment at the top of sl_proto.c. Strings and blobs
 * in m borrow from buf. Allocates nothing; m is written only on success.
 * Returns 0, SL_EUNSUPPORTED (another protocol version), SL_ELIMIT (a
 * documented size limit exceeded) or SL_EFORMAT (anything else), with why
 * naming the type, the key and the problem. Thread-safe. */
int sl_proto_decode(const void *buf, size_t len, sl_msg *m, sl_errmsg *why);

/* A growable output buffer for encoding; reuse one across messages so the
 * steady state allocates nothing. Start from { 0 }; p[0..len) is the frame,
 * valid until the next encode into b or sl_proto_buf_fini. */
typedef struct sl_proto_buf {
	uint8_t *p;
	size_t len, cap;
} sl_proto_buf;

/* Free b's memory and zero it; b may be NULL. */
void sl_proto_buf_fini(sl_proto_buf *b);

/* Encode m into b (replacing its contents). Values are written as given:
 * the encoder does not range-check them (the peer's decoder does). Returns
 * 0, SL_ENOMEM (b is then empty but still valid), or SL_EINVAL for an
 * unknown type, a held count above SL_PROTO_MAX_HELD, or an sl_bytes with a
 * length but no pointer or longer than 4 GiB - 1. Thread-safe per b. */
int sl_proto_encode(const sl_msg *m, sl_proto_buf *b);

/* A name for logs and status counters: "HELLO", "RESULT", ..., "UNKNOWN"
 * for a value outside the enum. Static string. */
const char *sl_proto_type_name(enum sl_msg_type t);

/* Build sl_bytes from a C string (borrowed; NULL gives an empty one). */
sl_bytes sl_bytes_str(const char *s);

/* 1 if p[0..len) is a valid name: 1 to SL_PROTO_MAX_NAME characters from
 * SL_PROTO_NAME_CHARS; else 0, and *bad (if not NULL) gets the offset of
 * the first bad byte (len for a bad length). */
int sl_proto_name_valid(const void *p, size_t len, size_t *bad);

#endif

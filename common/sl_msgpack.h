/* sl_msgpack.h - a bounds-checked msgpack reader for bytes from outside.
 *
 * msgpack-c's unpacker allocates what a header claims (a 5-byte array32
 * header can claim 4 billion elements) before it has seen the bytes, so
 * everything softlabel receives or reads back from disk is walked with this
 * cursor instead: it never allocates, never reads past the end, and checks
 * every claimed length against the bytes that remain. Strings and bins are
 * returned as pointers into the buffer. msgpack-c's packer writes.
 *
 * Every reader returns 0 on success, or SL_EFORMAT (malformed, wrong type,
 * truncated, out of range) and then leaves the cursor where it was; out-
 * parameters are written only on success. Ext values are an error for every
 * typed reader and are skipped by sl_mp_skip. The cursor only reads the
 * buffer, which must outlive it and every pointer it returned. Not
 * thread-safe per cursor; any number of cursors may read one buffer.
 */
#ifndef SL_MSGPACK_H
#define SL_MSGPACK_H

#include <stddef.h>
#include <stdint.h>

#define SL_MP_MAX_DEPTH 8 /* nesting sl_mp_skip accepts */

typedef struct sl_mp {
	const uint8_t *p;
	size_t len, off;
} sl_mp;

void sl_mp_init(sl_mp *c, const void *buf, size_t len);
/* Bytes not yet consumed. */
size_t sl_mp_left(const sl_mp *c);

/* Map or array header: element count, checked against the bytes left (each
 * element takes at least one byte, two for a map entry), so a 5-byte header
 * claiming 4 billion elements fails here. The elements follow: read them. */
int sl_mp_map(sl_mp *c, uint32_t *n);
int sl_mp_array(sl_mp *c, uint32_t *n);
/* Any unsigned integer (positive fixint, uint8..64, or a non-negative int). */
int sl_mp_u64(sl_mp *c, uint64_t *v);
/* As sl_mp_u64, and at most max (a larger value is SL_EFORMAT). */
int sl_mp_u32(sl_mp *c, uint32_t *v, uint32_t max);
/* Any integer that fits int64_t (a uint64 above INT64_MAX is SL_EFORMAT). */
int sl_mp_i64(sl_mp *c, int64_t *v);
/* float32 or float64 (or an integer), as double. NaN and infinities pass:
 * range checks are the caller's. */
int sl_mp_f64(sl_mp *c, double *v);
/* bool as 0 or 1. */
int sl_mp_bool(sl_mp *c, int *v);
/* str: pointer into the buffer and length (not NUL-terminated). */
int sl_mp_str(sl_mp *c, const uint8_t **s, size_t *len);
/* bin: pointer into the buffer and length. */
int sl_mp_bin(sl_mp *c, const uint8_t **b, size_t *len);
/* Is the next value nil? Returns 1 and consumes it if so, else 0 (also at
 * the end of the buffer) without moving. */
int sl_mp_nil(sl_mp *c);
/* Skip one value of any type (ext included). Containers may nest
 * SL_MP_MAX_DEPTH deep (an array of arrays is depth 2); deeper is
 * SL_EFORMAT. Iterative: hostile nesting uses no stack. */
int sl_mp_skip(sl_mp *c);

/* The msgpack type of the next value for error messages: "uint",
 * "negative int", "float32", "str", "bin", "map", ..., "end of input" or
 * "malformed". Static string; does not move the cursor. */
const char *sl_mp_type_name(const sl_mp *c);

/* Compare a str just read with a C string: 1 if equal, else 0. */
int sl_mp_streq(const uint8_t *s, size_t len, const char *want);

#endif

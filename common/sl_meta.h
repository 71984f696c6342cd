/* sl_meta.h - a cache's job and teachers as one msgpack blob: what
 * `softlabel serve` sends in META_REPLY, so a remote reader holds exactly
 * what sl_store_get_job and sl_store_teachers give a local one
 * (preprocessing included).
 *
 * Layout (msgpack; keys in exactly this order, no other key):
 *
 *   map {
 *     "job": map {
 *       "path"       str   dataset path the cache was made from, < 1024 B
 *       "rows"       uint  rows (uint64), = shape[0]
 *       "shape"      array of 1..8 uint, shape[0] = rows
 *       "dtype"      uint  1 uint8, 2 float32
 *       "sha256"     bin   32 bytes: the dataset fingerprint
 *       "shard_rows" uint  1..2^32-1
 *       "first" uint, "end" uint   the rows this cache labels, [first,
 *                          end) (softlabel-broker --rows; 0 and rows for
 *                          a whole job), on shard boundaries
 *     }
 *     "teachers": array of 0..256 map {          ascending index
 *       "index" uint, "name" str (SL_PROTO_NAME_CHARS, 1..128 B),
 *       "model" str (64 lowercase hex), "temp" float (finite, > 0),
 *       "enc" uint, "classes" uint, "k" uint (a valid sl_label_fmt),
 *       "pre" bin (empty: none recorded; else sl_preproc_pack's form)
 *       and, for a teacher with views only (a map of 11 keys then):
 *       "views" uint (1..SL_STORE_MAX_VIEWS), "vrecipe" bin
 *       (sl_view_recipe_pack), "vseed" uint
 *     }
 *   }
 *
 * The decoder takes bytes from outside: bounds-checked (sl_msgpack), no
 * allocation, nothing trailing. Returns 0, SL_ELIMIT (more teachers than
 * cap) or SL_EFORMAT with why naming the field. Thread-safe.
 */
#ifndef SL_META_H
#define SL_META_H

#include <stddef.h>

#include "sl_err.h"
#include "sl_proto.h"
#include "sl_store.h"

/* Encode job and teachers t[0..n) into b (replacing its contents): 0,
 * SL_ENOMEM or SL_EINVAL (n above SL_STORE_MAX_TEACHERS). */
int sl_meta_encode(const sl_store_job *job, const sl_store_teacher *t,
    size_t n, sl_proto_buf *b);

/* Decode buf[0..len) into *job and t[0..cap); *n gets the count. Written
 * only on success (t[] is scratch on failure). */
int sl_meta_decode(const void *buf, size_t len, sl_store_job *job,
    sl_store_teacher *t, size_t cap, size_t *n, sl_errmsg *why);

#endif

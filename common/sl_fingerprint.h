/* sl_fingerprint.h - a dataset's fingerprint without rereading the file on
 * every start, and checks that rows still hold the bytes it was taken from.
 *
 * The fingerprint (sl_fingerprint in sl_data.h) is the SHA-256 of every
 * sample byte in row order, with the shape and dtype. Taking it reads the
 * whole dataset; the same pass hashes the rows in chunks of at most
 * SL_FP_CHUNK_BYTES and SL_FP_CHUNK_MAX_ROWS rows (BLAKE2b-256 each). Both are remembered in a memo file
 * keyed by the opened file's identity: device, inode, size, and mtime and
 * ctime to the nanosecond. A later open of the same, unchanged file reads
 * the memo instead of the data. Any write to the file through the file
 * system (write(2), a writable mmap, truncate, a new file renamed into
 * place) changes ctime or the inode, and the kernel sets ctime (utimensat
 * cannot set it back), so a stale memo is never used for a changed file.
 *
 * A file changed in place after the fingerprint was taken (while a broker
 * or worker runs, or between a memo's write and its use through a way that
 * keeps ctime: writing the block device, a clock set back) is caught by
 * sl_dataset_verify_rows(), which programs call on the rows of each shard
 * they label: the chunks those rows lie in are hashed again and compared.
 *
 * Memo files: DIR/<device>-<inode>.fp, written atomically (sl_file.h);
 * every field is checked on read (magic, identity, shape, chunk count, a
 * CRC-32 over it all) and any difference means "recompute", never an
 * error. Thread-safety: as sl_data.h (the handle's lock guards them).
 */
#ifndef SL_FINGERPRINT_H
#define SL_FINGERPRINT_H

#include "sl_data.h"

/* Rows per chunk: SL_FP_CHUNK_BYTES / row bytes, at most
 * SL_FP_CHUNK_MAX_ROWS (so that shards of a multiple of 1024 rows, the
 * default, are whole chunks: checking one rereads nothing more), at least
 * one. The memo holds 32 bytes per chunk. */
#define SL_FP_CHUNK_BYTES ((size_t)1 << 20)
#define SL_FP_CHUNK_MAX_ROWS ((size_t)1024)

/* The memo directory the environment names, into buf (cap bytes):
 * $SOFTLABEL_FINGERPRINTS; else $XDG_CACHE_HOME/softlabel/fingerprints;
 * else $HOME/.cache/softlabel/fingerprints. NULL when
 * SOFTLABEL_FINGERPRINTS is "off" or "", or nothing is set. */
const char *sl_fingerprint_memo_dir(char *buf, size_t cap);

/* The fingerprint of ds into *out. From memo_dir's memo of the opened file
 * when it matches (then nothing of the data is read, *remembered = 1);
 * else computed in one pass, chunk hashes too, and the memo written
 * (memo_dir and its parents created, mode 0755; a memo that cannot be
 * written is logged at INFO, not an error), *remembered = 0. memo_dir
 * NULL: computed, no memo. remembered may be NULL. Later calls return the
 * fingerprint held by ds. 0 or SL_EUNSUPPORTED (libsodium failed). */
int sl_dataset_fingerprint_memo(sl_dataset *ds, const char *memo_dir,
    sl_fingerprint *out, int *remembered, sl_errmsg *why);

/* What programs call at start: sl_dataset_fingerprint_memo with the
 * environment's memo directory, and one INFO line saying whether the
 * fingerprint was remembered or computed and how many bytes were read for
 * it ("dataset x.npy: fingerprint remembered from its memo (0 of 47040000
 * sample bytes read to hash)"); no line when ds already held its
 * fingerprint. path is only for that line. */
int sl_dataset_fingerprint_start(sl_dataset *ds, const char *path,
    sl_fingerprint *out, sl_errmsg *why);

/* Check that rows first..first+n-1 hold the bytes the fingerprint was
 * taken from: each chunk they touch is hashed again (so at most two
 * chunks' worth more than the rows are read, none for rows that are whole
 * chunks). Rows read into memory at
 * open (IDX.gz, byte-swapped IDX) cannot change and are not hashed. 0;
 * SL_EMISMATCH, why naming the rows of the first chunk that differs;
 * SL_EINVAL before a fingerprint was taken or for rows past the end. */
int sl_dataset_verify_rows(sl_dataset *ds, size_t first, size_t n,
    sl_errmsg *why);

/* Sample bytes this handle has read to hash them, fingerprint and
 * verify_rows together (a counter, for tests and start-up logs). */
uint64_t sl_dataset_bytes_hashed(sl_dataset *ds);

#endif

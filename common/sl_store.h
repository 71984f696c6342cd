/* sl_store.h - the logit cache: one LMDB environment (a directory).
 *
 * Named databases (a public format, documented in the README):
 *
 *   meta    UTF-8 name -> msgpack
 *             "schema"          2 (1: a cache written before views; it
 *                               reads as before and holds no view)
 *             "dataset"         {path, rows, shape, dtype, sha256 (bin 32)}
 *             "shard_rows"      uint
 *             "teacher/<name>"  {index, classes, temperature (float32),
 *                                encoding, k, model_sha256 (bin 32)
 *                                [, preproc (bin 4 * (1 + 2C): float32
 *                                LE scale, mean[C], std[C])]
 *                                [, views (uint V >= 1), view_recipe (bin
 *                                SL_VIEW_RECIPE_BYTES, sl_view_recipe_pack),
 *                                view_seed (uint64): all three or none]}
 *   shards  u32 BE teacher, u64 BE shard -> msgpack {state (1 done,
 *                                           2 quarantined), attempts,
 *                                           worker, committed_ms[, reason]}
 *   labels  u32 BE teacher, u64 BE sample -> soft-label record (sl_label.h)
 *           u32 BE teacher, u64 BE sample, u32 BE view -> the same, for a
 *                                           teacher registered with views
 *                                           (the views of a sample are
 *                                           adjacent); view < V
 *   inputs  u64 BE sample -> raw row bytes (optional)
 *
 * A teacher with V views labels units, not shards: unit u = shard * V +
 * view is the job of labeling view `view` of the shard's rows, and its
 * entry in `shards` is keyed (teacher, u); sl_store_put_shard_view commits
 * one unit. A teacher without views has V = 0 and unit = shard.
 *
 * A shard absent from `shards` is pending. A shard's records and its `done`
 * state are written in one write transaction (sl_store_put_shard inside
 * sl_store_write_begin/commit), so the cache never holds half a shard.
 *
 * The environment is opened without MDB_WRITEMAP (a full disk is an error,
 * not SIGBUS) and with MDB_NOTLS (read transactions may move between
 * threads); stale reader slots of dead processes are cleared at open and by
 * sl_store_reader_check(). One writer at a time (LMDB's own lock); readers
 * never block it.
 *
 * Thread-safety: an sl_store may be shared; each transaction belongs to one
 * thread at a time (with MDB_NOTLS one thread may hold a read transaction
 * and the write transaction at once). Values returned by read functions are
 * borrowed from the read transaction and valid until it ends or is reset.
 *
 * Return codes: 0, an errno value (ENOENT, ENOSPC, ... as LMDB reports
 * them), SL_ENOTFOUND (absent), SL_ELIMIT (map full: "cache map full"; also
 * LMDB's reader-table and transaction-size limits), SL_EFORMAT (a corrupt or
 * foreign cache; LMDB's own codes end here, named in why), SL_EUNSUPPORTED
 * (another schema), SL_EMISMATCH, SL_EINVAL (bad arguments, a write in a
 * read-only store or a read transaction). Nothing prints.
 *
 * Caveats:
 *   - After any write in a write transaction fails, the transaction can
 *     only be aborted: sl_store_write_commit aborts it and returns
 *     SL_EINVAL (LMDB refuses to commit it too).
 *   - A read transaction pins the pages it sees; a reader that never ends
 *     or refreshes makes the file grow under a busy writer.
 *   - Never open the same directory twice in one process (LMDB's locks are
 *     per process); fork() children must open their own sl_store.
 *   - map_size_bytes is address space, not disk: the 1 TiB default costs
 *     nothing until written. A smaller map than the file's is raised to it.
 */
#ifndef SL_STORE_H
#define SL_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "sl_data.h"
#include "sl_err.h"
#include "sl_label.h"
#include "sl_view.h"

#define SL_STORE_SCHEMA 2     /* written by this build */
#define SL_STORE_SCHEMA_MIN 1 /* the oldest it reads (no views) */
#define SL_STORE_MAX_VIEWS 1024
#define SL_STORE_NO_VIEW UINT32_MAX /* "the 12-byte key" to the _view calls */
#define SL_STORE_MAX_TEACHERS 256
#define SL_STORE_MAX_NAME 128

typedef struct sl_store sl_store;
typedef struct sl_store_txn sl_store_txn;

typedef struct sl_store_opts {
	int readonly;
	int nosync;              /* MDB_NOSYNC: fast, not durable across a crash */
	uint64_t map_size_bytes; /* 0: default (1 TiB of address space) */
	/* A writer's description, written after its pid into writer.lock and
	 * named to a second writer that is refused ("softlabel-broker on
	 * tcp://127.0.0.1:5555"); at most SL_STORE_MAX_OWNER bytes kept. NULL:
	 * the pid alone. Ignored when readonly. */
	const char *owner;
} sl_store_opts;

#define SL_STORE_MAX_OWNER 256

/* Open (and, unless readonly, create) the environment in dir, creating the
 * directory (0755) and the four databases if missing; clears stale reader
 * slots. A writable open takes dir/writer.lock (flock, released when the
 * store is closed or the process dies) and writes "pid N OWNER" into it:
 * one writer per cache, a second writable open, in another process or this
 * one, is EBUSY with a message naming the holder's pid and owner text. o
 * may be NULL (defaults). A read-only open of a directory without
 * a cache is ENOENT; an LMDB environment without our databases SL_EFORMAT.
 * *out is owned by the caller (sl_store_close). */
int sl_store_open(const char *dir, const sl_store_opts *o, sl_store **out,
    sl_errmsg *why);
/* Close; every transaction must have ended. Accepts NULL, NULLs *s. */
void sl_store_close(sl_store **s);

/* Write a compacted copy of the cache, as one read snapshot sees it (the
 * writer keeps writing; every shard in the copy is complete, since a shard
 * and its records commit together), to the new directory dest: dest must
 * not exist (EEXIST), the copy is built in dest.copy-PID.tmp beside it,
 * synced, then renamed to dest, so dest is either absent or complete and
 * a failure leaves nothing. writer.lock is not copied (the copy has no
 * writer). Any open mode; safe while other threads use s. */
int sl_store_copy(sl_store *s, const char *dest, sl_errmsg *why);

/* The job a store holds. */
typedef struct sl_store_job {
	char dataset_path[1024];
	sl_fingerprint dataset;
	uint32_t shard_rows;
	/* The rows this cache labels, [rows_first, rows_end) of the dataset
	 * (a job split over several brokers: softlabel-broker --rows A:B).
	 * sl_store_get_job always fills them (0 and rows for a whole job); to
	 * sl_store_init_job rows_end 0 means the whole dataset. rows_first is
	 * a multiple of shard_rows, rows_end one too or the dataset's end, so
	 * a cache holds whole shards of the common numbering. */
	uint64_t rows_first, rows_end;
	/* The cache's schema (SL_STORE_SCHEMA_MIN..SL_STORE_SCHEMA), filled
	 * by sl_store_get_job; ignored by sl_store_init_job, which writes
	 * SL_STORE_SCHEMA. */
	uint32_t schema;
} sl_store_job;

/* SL_ENOTFOUND for a store without a job yet; SL_EUNSUPPORTED for a
 * schema outside 1..2 ("cache schema 3, this build reads 1 to 2"); SL_EFORMAT naming the meta
 * key for a malformed value. */
int sl_store_get_job(sl_store *s, sl_store_job *out, sl_errmsg *why);
/* Write schema, dataset, shard_rows and (for part of the rows) the range
 * in one transaction. A store that already holds the same job
 * (fingerprint, shard_rows and range; the path may differ and is not
 * rewritten) is success; another job is SL_EMISMATCH, so labels never end
 * up under a different dataset. SL_EINVAL for a job that is not
 * self-consistent (shape[0] != rows, ndim, dtype, shard_rows 0, a range
 * empty, past the rows or not on shard boundaries). */
int sl_store_init_job(sl_store *s, const sl_store_job *job, sl_errmsg *why);

typedef struct sl_store_teacher {
	uint32_t index;
	char name[SL_STORE_MAX_NAME + 1];
	char model_sha256[65];
	float temperature;
	sl_label_fmt fmt;
	/* Input preprocessing (x * scale - mean[c]) / std[c]; a cache written
	 * before it was recorded has has_pre 0 and takes any. */
	int has_pre;
	sl_preproc pre;
	/* Views (sl_view.h): views 0 is a teacher of the plain rows (12-byte
	 * label keys); views V >= 1 (at most SL_STORE_MAX_VIEWS) labels views
	 * 0..V-1 of every row, the view v of sample i being sl_view_draw
	 * (view_recipe, view_seed, i, v) of row i, under 16-byte keys. */
	uint32_t views;
	sl_view_recipe view_recipe;
	uint64_t view_seed;
} sl_store_teacher;

/* Register t->name, or find it, in one write transaction. A new name gets
 * the lowest free index (SL_ELIMIT past SL_STORE_MAX_TEACHERS teachers); an existing name must match model_sha256,
 * temperature and preprocessing (bit for bit; preprocessing only where
 * both have it), fmt and the views (V, recipe bytes, seed) exactly, else
 * SL_EMISMATCH with why
 * naming the field ("teacher 'big' is registered with model 3fa4...,
 * this worker has 9c1e..."). SL_EINVAL: name not 1..SL_STORE_MAX_NAME
 * characters from SL_PROTO_NAME_CHARS, model_sha256 not 64 hex digits (either case), a
 * temperature that is not positive and finite, a format sl_label_fmt_check
 * would refuse, views over SL_STORE_MAX_VIEWS. On success t->index is
 * set; nothing else is written, except that registering a teacher with
 * views in a schema-1 cache raises its schema to 2 in the same
 * transaction (an older build then refuses the cache instead of
 * misreading its 16-byte keys). */
int sl_store_register_teacher(sl_store *s, sl_store_teacher *t, sl_errmsg *why);

/* Remove the registration of teacher name, which must hold no record and
 * no shard state (it never produced anything): SL_EINVAL otherwise,
 * SL_ENOTFOUND for no such teacher. Its index is free again; the next
 * registration takes the lowest free index. One transaction. */
int sl_store_remove_teacher(sl_store *s, const char *name, sl_errmsg *why);
/* All registered teachers, in index order (model_sha256 in lowercase).
 * SL_ELIMIT when more than cap exist (cap SL_STORE_MAX_TEACHERS always
 * suffices); out[] is scratch on failure, *n is written only on success. */
int sl_store_teachers(sl_store *s, sl_store_teacher *out, size_t cap,
    size_t *n, sl_errmsg *why);

enum sl_shard_state {
	SL_SHARD_PENDING = 0, /* absent from the db */
	SL_SHARD_DONE = 1,
	SL_SHARD_QUARANTINED = 2,
};

typedef struct sl_shard_info {
	uint32_t state;
	uint32_t attempts;
	char worker[SL_STORE_MAX_NAME + 1];
	uint64_t committed_ms; /* Unix ms */
	char reason[256];      /* quarantined only */
} sl_shard_info;

/* state[i] (enum sl_shard_state) for shards 0..nshards of teacher, in one
 * read transaction. state is zeroed (pending) first. A shards entry at or
 * past nshards means the cache does not match the dataset: SL_EFORMAT. */
int sl_store_shard_states(sl_store *s, uint32_t teacher, uint8_t *state,
    uint64_t nshards, sl_errmsg *why);

/* --- writing ------------------------------------------------------------ */

/* Begin the write transaction; blocks while another thread or process
 * holds it (LMDB's writer lock), never on readers. SL_EINVAL read-only. */
int sl_store_write_begin(sl_store *s, sl_store_txn **txn, sl_errmsg *why);
/* Put nrows records (each rec_size bytes, back to back) for samples
 * first_row.. and mark the shard done with attempts, worker (NULL: "";
 * at most SL_STORE_MAX_NAME bytes) and the time. Records are stored as
 * given: check them first (sl_label_check). An existing shard is
 * overwritten. Does not allocate. */
int sl_store_put_shard(sl_store_txn *txn, uint32_t teacher, uint64_t shard,
    uint64_t first_row, uint32_t nrows, const void *records, size_t rec_size,
    const char *worker, uint32_t attempts, sl_errmsg *why);
/* The same for view `view` of the shard's rows, for a teacher with views:
 * the records go under 16-byte keys (teacher, sample, view), the done
 * state under unit = shard * V + view (the caller's numbering: the store
 * does not check V). view SL_STORE_NO_VIEW is sl_store_put_shard. */
int sl_store_put_shard_view(sl_store_txn *txn, uint32_t teacher,
    uint64_t unit, uint64_t first_row, uint32_t nrows, uint32_t view,
    const void *records, size_t rec_size, const char *worker,
    uint32_t attempts, sl_errmsg *why);
/* Mark a shard quarantined with its reason (cut to 255 bytes on a UTF-8
 * boundary; NULL: ""). Its records, if any, are left alone. */
int sl_store_put_quarantine(sl_store_txn *txn, uint32_t teacher,
    uint64_t shard, uint32_t attempts, const char *reason, sl_errmsg *why);
/* Delete a shard's records and state: it becomes pending again (used to
 * recompute shards whose records are corrupt). */
int sl_store_reset_shard(sl_store_txn *txn, uint32_t teacher, uint64_t shard,
    uint64_t first_row, uint32_t nrows, sl_errmsg *why);
/* The same for a unit of a teacher with views (records of view `view`,
 * the state of `unit`); SL_STORE_NO_VIEW is sl_store_reset_shard. */
int sl_store_reset_shard_view(sl_store_txn *txn, uint32_t teacher,
    uint64_t unit, uint64_t first_row, uint32_t nrows, uint32_t view,
    sl_errmsg *why);
/* Optional raw rows (each row_bytes, back to back) for samples
 * first_row.., for a cache that stands alone. */
int sl_store_put_inputs(sl_store_txn *txn, uint64_t first_row, uint32_t nrows,
    const void *rows, size_t row_bytes, sl_errmsg *why);
/* Commit (durable unless nosync) or abort; both free txn and NULL it.
 * Commit: SL_ELIMIT when the map is full, ENOSPC etc. from the disk, and
 * SL_EINVAL after an earlier write failed (the txn is aborted instead).
 * Abort accepts NULL. */
int sl_store_write_commit(sl_store_txn **txn, sl_errmsg *why);
void sl_store_write_abort(sl_store_txn **txn);

/* The broker's audit counters (meta "audit"), summed over its runs as of
 * its last commit: second opinions that agreed, disputes, disputes a third
 * opinion settled, those it could not (quarantined), worker identities
 * refused, shards deleted because their worker was refused. */
typedef struct sl_store_audit {
	uint64_t passed, disputed, settled, unsettled, refused, purged_shards;
} sl_store_audit;

/* Write the counters (replacing the previous ones). Does not allocate. */
int sl_store_put_audit(sl_store_txn *txn, const sl_store_audit *a,
    sl_errmsg *why);

/* --- reading ------------------------------------------------------------ */

/* A snapshot of the last commit; takes a reader slot (SL_ELIMIT when all
 * are taken) until read_end. Never blocks and never blocks the writer. */
int sl_store_read_begin(sl_store *s, sl_store_txn **txn, sl_errmsg *why);
/* See the writes committed since the transaction began (mdb_txn_reset +
 * renew): a long-lived reader calls this between passes. */
int sl_store_read_refresh(sl_store_txn *txn, sl_errmsg *why);
/* End (accepts NULL; NULLs *txn). Borrowed values die here. */
void sl_store_read_end(sl_store_txn **txn);

/* The record of (teacher, sample): *rec borrowed until the txn ends or is
 * refreshed. SL_ENOTFOUND when absent. Does not check the CRC
 * (sl_label_check does). Works in a write transaction too. */
int sl_store_get_label(sl_store_txn *txn, uint32_t teacher, uint64_t sample,
    const void **rec, size_t *len);
/* The record of view `view` of sample (16-byte key), for a teacher with
 * views; view SL_STORE_NO_VIEW is sl_store_get_label. As above. */
int sl_store_get_label_view(sl_store_txn *txn, uint32_t teacher,
    uint64_t sample, uint32_t view, const void **rec, size_t *len);
/* A shard's entry, copied out. SL_ENOTFOUND: pending. SL_EFORMAT: the
 * entry is malformed (why names the field). */
int sl_store_get_shard(sl_store_txn *txn, uint32_t teacher, uint64_t shard,
    sl_shard_info *out, sl_errmsg *why);

/* The counters sl_store_put_audit wrote; SL_ENOTFOUND (out zeroed) when
 * the cache has none (no broker audited), SL_EFORMAT when malformed.
 * Unknown keys in the map are skipped. */
int sl_store_get_audit(sl_store_txn *txn, sl_store_audit *out, sl_errmsg *why);

/* Walk labels of one teacher in sample order, from sample `from`.
 * fn returns 0 to go on, anything else to stop (returned as is). rec is
 * borrowed as for sl_store_get_label. A key that is not 12 bytes stops the
 * walk with SL_EFORMAT (a corrupt or foreign cache). */
typedef int (*sl_store_label_fn)(void *arg, uint64_t sample, const void *rec,
    size_t len);
int sl_store_each_label(sl_store_txn *txn, uint32_t teacher, uint64_t from,
    sl_store_label_fn fn, void *arg);
/* The same over the 16-byte keys of a teacher with views, in (sample,
 * view) order from (from, 0); a key of another size stops the walk with
 * SL_EFORMAT. */
typedef int (*sl_store_view_fn)(void *arg, uint64_t sample, uint32_t view,
    const void *rec, size_t len);
int sl_store_each_label_view(sl_store_txn *txn, uint32_t teacher,
    uint64_t from, sl_store_view_fn fn, void *arg);
/* Walk shards entries of one teacher (done and quarantined), in shard
 * order; a malformed entry or key stops the walk with SL_EFORMAT. */
typedef int (*sl_store_shard_fn)(void *arg, uint64_t shard,
    const sl_shard_info *info);
int sl_store_each_shard(sl_store_txn *txn, uint32_t teacher,
    sl_store_shard_fn fn, void *arg);

typedef struct sl_store_stat {
	uint64_t labels, shards, inputs; /* entries */
	uint64_t file_bytes;             /* data.mdb size */
	uint64_t used_bytes;             /* pages in use * page size */
	uint32_t readers_max, readers_used; /* reader slots; used counts the
	                                     * occupied ones (LMDB's
	                                     * me_numreaders is a high-water
	                                     * mark that never goes down) */
} sl_store_stat;

int sl_store_stat_get(sl_store *s, sl_store_stat *out, sl_errmsg *why);

/* Clear reader slots of dead processes (mdb_reader_check); *dead (may be
 * NULL) gets how many were cleared. Call it now and then in a long-lived
 * writer: a crashed reader's slot pins old pages until cleared. */
int sl_store_reader_check(sl_store *s, int *dead);

#endif

/* sl_reader.h - what a student reads from a logit cache, wherever it is:
 * a local LMDB store (a directory) or `softlabel serve` on another host
 * (tcp://HOST:PORT). Both implementations answer the same questions with
 * the same bytes, so targets computed from either are bit-identical.
 *
 *   job, teachers      as sl_store_get_job / sl_store_teachers give them
 *                      (preprocessing included)
 *   done shards        of one teacher, as runs (first, count), ascending
 *   records            of one teacher: a range of samples, in sample
 *                      order, or a list of samples, in list order; raw, as
 *                      stored (the caller checks them: sl_label_check)
 *   refresh            see commits made since the last refresh
 *
 * Snapshots. The local reader holds one LMDB read snapshot from open (or
 * the last refresh) on; everything it answers comes from that snapshot.
 * The remote reader's server takes a fresh snapshot for every request, so
 * a long walk may span commits: a caller that reads only records of shards
 * it saw done (as sl_target does) reads the same bytes either way, since a
 * done shard's records never change. refresh is then a no-op.
 *
 * The remote reader never gives up once a server has answered: a request
 * without a reply within timeout_ms is sent again on a new connection
 * after a back-off (SL_NET_RECONNECT_MIN_MS..MAX_MS), and a warning is
 * logged at most every 5 s while it waits, one line when it answers again.
 * Before the first answer, connect_timeout_s bounds the wait (ETIMEDOUT);
 * the stop flag, when given, ends any wait (EINTR).
 *
 * Records passed to a callback are borrowed until it returns. A callback
 * returns 0 to go on, anything else to stop (returned as is). A stored
 * record of the wrong size reaches a remote reader's callback with len 0
 * (so sl_label_check fails on it as it does locally).
 *
 * Thread-safety: one reader per thread. Return codes: as sl_store's, plus
 * ETIMEDOUT (remote, no first answer), EINTR (remote, stopped) and EPROTO (a server reply that
 * does not answer the request), with why saying what.
 */
#ifndef SL_READER_H
#define SL_READER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "sl_err.h"
#include "sl_store.h"

typedef struct sl_reader sl_reader;

typedef struct sl_reader_opts {
	const char *curve_secret; /* remote: our key (softlabel keygen .key);
	                           * NULL: plaintext */
	const char *curve_server; /* remote: the server's public key file */
	int connect_timeout_s;    /* remote: 0 waits forever for a first answer */
	uint32_t timeout_ms;      /* remote: per request; 0: 5000 */
	/* remote: when not NULL and set (a signal handler's flag), a request
	 * waiting for a server gives up with EINTR */
	volatile sig_atomic_t *stop;
} sl_reader_opts;

/* 1 when spec names a remote cache (tcp://, ipc://), 0 for a directory. */
int sl_reader_is_remote(const char *spec);

/* Open the cache at spec read-only: a directory, a remote spec, or a list
 * "a,b" of the parts of one job (sl_reader_union_open with every teacher
 * of the first part). o may be NULL (defaults). A local
 * directory without a cache is ENOENT (sl_store_open); a remote spec is
 * checked (sl_net_check_endpoint, keys loaded) but not contacted: the
 * first request waits for a server. *out is the caller's
 * (sl_reader_close). */
int sl_reader_open(const char *spec, const sl_reader_opts *o,
    sl_reader **out, sl_errmsg *why);
/* A local reader over a store the caller has open (one open per
 * directory and process: sl_store.h): it takes its own read snapshot and
 * leaves s open on close; s must outlive it. */
int sl_reader_from_store(sl_store *s, sl_reader **out, sl_errmsg *why);
/* Close; accepts NULL, NULLs *r. */
void sl_reader_close(sl_reader **r);

int sl_reader_job(sl_reader *r, sl_store_job *out, sl_errmsg *why);
int sl_reader_teachers(sl_reader *r, sl_store_teacher *out, size_t cap,
    size_t *n, sl_errmsg *why);
int sl_reader_refresh(sl_reader *r, sl_errmsg *why);

/* Done shards of teacher (index) as runs, in ascending order. */
typedef int (*sl_reader_run_fn)(void *arg, uint64_t first, uint64_t count);
int sl_reader_each_done(sl_reader *r, uint32_t teacher, sl_reader_run_fn fn,
    void *arg, sl_errmsg *why);

/* Records of teacher for samples in [from, to), present ones only, in
 * sample order. */
int sl_reader_each_label(sl_reader *r, uint32_t teacher, uint64_t from,
    uint64_t to, sl_store_label_fn fn, void *arg, sl_errmsg *why);
/* Records of teacher for samples[0..n), present ones only, in list order
 * (a sample listed twice is passed twice). */
int sl_reader_get_labels(sl_reader *r, uint32_t teacher,
    const uint64_t *samples, size_t n, sl_store_label_fn fn, void *arg,
    sl_errmsg *why);

/* --- several caches of one job read as one (sl_reader_union.c) ----------
 *
 * A job split by rows (softlabel-broker --rows A:B) leaves one cache per
 * range. A spec with commas, "a,b" (at most SL_READER_MAX_PARTS parts, in
 * any order), names such parts; they are one job when they hold the same
 * dataset fingerprint, row count and shard size, their row ranges are
 * disjoint, and every teacher of the committee is registered in each with
 * the same model, temperature and encoding. The union reader answers:
 *
 *   job        the first part's, rows_first/rows_end the least first and
 *              the greatest end of the parts (a gap between ranges is
 *              rows no part labels: no shard of it is ever done)
 *   teachers   the committee, as the first part registered it (its
 *              indices); another index is SL_ENOTFOUND
 *   done       each part's done shards within its own rows, merged
 *   records    each sample from the part whose rows hold it; samples in
 *              no part's rows are absent
 *
 * Records and runs come in the order sl_reader promises (sample order for
 * a range, list order for a list). refresh refreshes every part. */
#define SL_READER_MAX_PARTS 16

/* The jobs[0..n) of parts names[0..n) are one job (above): 0, or
 * SL_EINVAL with why saying which two parts differ or overlap
 * ("A (rows 0:2000) and B (rows 0:2000) overlap"). */
int sl_reader_parts_check(const char *const *names, const sl_store_job *jobs,
    int n, sl_errmsg *why);
/* The committee want[0..n) (as part first registered it) in part name's
 * registrations all[0..nall): the same names with the same model,
 * temperature and encoding into out[0..n), or SL_EINVAL naming the
 * teacher and the parts. */
int sl_reader_parts_match(const char *first, const char *name,
    const sl_store_teacher *want, int n, const sl_store_teacher *all,
    size_t nall, sl_store_teacher *out, sl_errmsg *why);
/* Open the parts of list ("a,b", each a directory or a remote spec) as one
 * reader. committee: teacher names "x,y" the parts must share, or NULL
 * for every teacher the first part registered. Errors: as sl_reader_open
 * (why names the part), SL_EINVAL when the parts are not one job or
 * the list is empty or too long, SL_ENOTFOUND for a committee name the
 * first part lacks. */
int sl_reader_union_open(const char *list, const char *committee,
    const sl_reader_opts *o, sl_reader **out, sl_errmsg *why);

/* Views (sl_store.h: a teacher registered with V >= 1 views keys its
 * records (teacher, sample, view)). These read those 16-byte keys; the
 * calls above read the 12-byte keys of a teacher without views.
 *
 * get_labels_view: the records of (samples[i], views[i]) for i < n,
 * present ones only, in list order (fn gets the sample; the caller knows
 * the view from the position). views NULL reads the 12-byte keys
 * (sl_reader_get_labels). each_label_view: the records of samples in
 * [from, to) in (sample, view) order. A remote reader asks softlabel
 * serve for the (sample, view) pairs (RECORDS with views, sl_proto.h);
 * its each_label_view asks all V views of each sample of the range. */
int sl_reader_get_labels_view(sl_reader *r, uint32_t teacher,
    const uint64_t *samples, const uint32_t *views, size_t n,
    sl_store_label_fn fn, void *arg, sl_errmsg *why);
int sl_reader_each_label_view(sl_reader *r, uint32_t teacher, uint64_t from,
    uint64_t to, sl_store_view_fn fn, void *arg, sl_errmsg *why);

/* --- implementations (sl_reader.c, sl_reader_remote.c) ------------------ */

struct sl_reader_ops {
	int (*job)(sl_reader *, sl_store_job *, sl_errmsg *);
	int (*teachers)(sl_reader *, sl_store_teacher *, size_t, size_t *,
	    sl_errmsg *);
	int (*refresh)(sl_reader *, sl_errmsg *);
	int (*each_done)(sl_reader *, uint32_t, sl_reader_run_fn, void *,
	    sl_errmsg *);
	int (*each_label)(sl_reader *, uint32_t, uint64_t, uint64_t,
	    sl_store_label_fn, void *, sl_errmsg *);
	int (*get_labels)(sl_reader *, uint32_t, const uint64_t *, size_t,
	    sl_store_label_fn, void *, sl_errmsg *);
	void (*close)(sl_reader *);
	int (*get_labels_view)(sl_reader *, uint32_t, const uint64_t *,
	    const uint32_t *, size_t, sl_store_label_fn, void *, sl_errmsg *);
	int (*each_label_view)(sl_reader *, uint32_t, uint64_t, uint64_t,
	    sl_store_view_fn, void *, sl_errmsg *);
};

/* Every implementation's handle starts with this. */
struct sl_reader {
	const struct sl_reader_ops *ops;
};

int sl_reader_remote_open(const char *ep, const sl_reader_opts *o,
    sl_reader **out, sl_errmsg *why);

#endif

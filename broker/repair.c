/* repair.c - --recompute-corrupt: find every record whose CRC or header
 * does not hold, and put its shard back to pending (records and state
 * deleted in one transaction), so that workers compute it again. LMDB keeps
 * no checksums of its own; the records' CRCs are what catch a flipped byte.
 */
#include "repair.h"
#include "sl_label.h"
#include "sl_log.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

typedef struct scan {
	const sl_store_teacher *t;
	uint32_t shard_rows;
	uint64_t nshards;  /* units: shards * V for a teacher with V views */
	uint8_t *bad;      /* (nshards) */
	uint64_t records, nbad;
} scan;

/* A teacher with views: the unit (shard * V + view) of a bad record. */
static int
check_view_record(void *arg, uint64_t sample, uint32_t view, const void *rec,
    size_t len)
{
	scan *sc = arg;
	const uint32_t V = sc->t->views;
	sl_errmsg why = { "" };
	const uint64_t unit = sample / sc->shard_rows * V + view;

	sc->records++;
	if (view >= V || unit >= sc->nshards)
		return 0;
	if (sl_label_check(rec, len, &sc->t->fmt, NULL, &why) != 0) {
		if (!sc->bad[unit])
			sl_warn("teacher %s sample %" PRIu64 " view %u: %s; unit %"
			    PRIu64 " (shard %" PRIu64 ", view %u) will be "
			    "recomputed", sc->t->name, sample, view, why.text,
			    unit, unit / V, view);
		sc->bad[unit] = 1;
		sc->nbad++;
	}
	return 0;
}

static int
check_record(void *arg, uint64_t sample, const void *rec, size_t len)
{
	scan *sc = arg;
	sl_errmsg why = { "" };
	const uint64_t shard = sample / sc->shard_rows;

	sc->records++;
	if (shard >= sc->nshards)
		return 0;
	if (sl_label_check(rec, len, &sc->t->fmt, NULL, &why) != 0) {
		if (!sc->bad[shard])
			sl_warn("teacher %s sample %" PRIu64 ": %s; shard %" PRIu64
			    " will be recomputed", sc->t->name, sample, why.text,
			    shard);
		sc->bad[shard] = 1;
		sc->nbad++;
	}
	return 0;
}

int
broker_recompute_corrupt(sl_store *s, const sl_store_job *job,
    uint64_t nshards)
{
	sl_store_teacher ts[SL_STORE_MAX_TEACHERS];
	sl_errmsg why = { "" };
	size_t n;
	uint8_t *bad = NULL;
	int rc;

	if ((rc = sl_store_teachers(s, ts, SL_STORE_MAX_TEACHERS, &n, &why)) != 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		const uint32_t V = ts[i].views ? ts[i].views : 1;
		const uint64_t nunits = nshards * V;
		scan sc = { &ts[i], job->shard_rows, nunits, NULL, 0, 0 };
		sl_store_txn *txn = NULL;
		uint64_t reset = 0;

		free(bad);
		if ((bad = calloc(nunits ? nunits : 1, 1)) == NULL) {
			rc = sl_errmsg_set(&why, SL_ENOMEM, "out of memory");
			goto fail;
		}
		sc.bad = bad;
		if ((rc = sl_store_read_begin(s, &txn, &why)) != 0)
			goto fail;
		rc = ts[i].views ? sl_store_each_label_view(txn, ts[i].index, 0,
		    check_view_record, &sc) : sl_store_each_label(txn,
		    ts[i].index, 0, check_record, &sc);
		sl_store_read_end(&txn);
		if (rc != 0) {
			sl_errmsg_set(&why, rc, "teacher %s: cannot walk its records",
			    ts[i].name);
			goto fail;
		}
		if ((rc = sl_store_write_begin(s, &txn, &why)) != 0)
			goto fail;
		for (uint64_t u = 0; rc == 0 && u < nunits; u++) {
			const uint64_t first = u / V * job->shard_rows;
			const uint64_t rows = job->dataset.rows - first <
			    job->shard_rows ? job->dataset.rows - first :
			    job->shard_rows;

			if (!bad[u])
				continue;
			rc = sl_store_reset_shard_view(txn, ts[i].index, u, first,
			    (uint32_t)rows, ts[i].views ? (uint32_t)(u % V) :
			    SL_STORE_NO_VIEW, &why);
			reset++;
		}
		if (rc == 0)
			rc = sl_store_write_commit(&txn, &why);
		else
			sl_store_write_abort(&txn);
		if (rc != 0)
			goto fail;
		sl_info("teacher %s: %" PRIu64 " records checked, %" PRIu64
		    " corrupt, %" PRIu64 " %s back to pending", ts[i].name,
		    sc.records, sc.nbad, reset, ts[i].views ?
		    "(shard, view) units" : "shards");
	}
	free(bad);
	return 0;
fail:
	sl_error("--recompute-corrupt: %s", why.text);
	free(bad);
	return rc;
}

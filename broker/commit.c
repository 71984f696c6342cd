#include "commit.h"
#include "audit.h"
#include "metrics.h"
#include "session.h"
#include "sl_log.h"
#include "sl_net.h"
#include "sl_progress.h"

static void
update_rate(teacher_sched *ts, uint64_t samples)
{
	const uint64_t now = sl_net_now_ms();

	ts->rate_samples += samples;
	if (now - ts->rate_t_ms >= 1000) {
		const double r = (double)ts->rate_samples * 1000.0 /
		    (double)(now - ts->rate_t_ms);

		ts->rate = ts->rate == 0 ? r : 0.7 * ts->rate + 0.3 * r;
		ts->rate_t_ms = now;
		ts->rate_samples = 0;
	}
}

/* Commit the group and the quarantines in one transaction, then ACK. */
void
commit_group(broker *b)
{
	sl_store_txn *txn = NULL;
	sl_errmsg why = { "" };
	double t0;
	int rc;

	if (b->ngroup == 0 && b->nquarantine == 0)
		return;
	t0 = sl_now_s();
	rc = sl_store_write_begin(b->store, &txn, &why);
	for (uint32_t i = 0; rc == 0 && i < b->ngroup; i++) {
		pending_result *p = &b->group[i];
		teacher_sched *ts = &b->teachers[p->teacher];
		worker *w = session_by_token(b, p->token);

		rc = sl_store_put_shard_view(txn, p->teacher, p->shard,
		    broker_unit_first(b, ts, p->shard), p->nrows,
		    broker_unit_view(ts, p->shard), p->blob, ts->rec_size,
		    w ? w->name : "", ts->lease.slots[p->shard].attempts, &why);
	}
	if (rc == 0 && b->audit_dirty) {
		sl_store_audit a;

		audit_total(b, &a);
		rc = sl_store_put_audit(txn, &a, &why);
	}
	for (uint32_t i = 0; rc == 0 && i < b->nquarantine; i++) {
		quarantine *q = &b->quarantined[i];

		rc = sl_store_put_quarantine(txn, q->teacher, q->shard,
		    q->attempts, q->reason, &why);
	}
	if (rc == 0)
		rc = sl_store_write_commit(&txn, &why);
	else
		sl_store_write_abort(&txn);
	metrics_observe_commit(b, sl_now_s() - t0);

	if (rc != 0) {
		/* A full disk fails every commit until space is freed: one
		 * line per 10 s, the count in status. */
		if (sl_log_limit_allow(&b->store_log, sl_net_now_ms()))
			sl_error("commit of %u results failed: %s; the workers keep "
			    "them and resend", b->ngroup, why.text);
		b->rejected[REJ_STORE] += b->ngroup;
	} else {
		b->commits++;
		b->committed_results += b->ngroup;
		b->audit_dirty = 0; /* stored with the group */
	}
	for (uint32_t i = 0; i < b->ngroup; i++) {
		pending_result *p = &b->group[i];
		teacher_sched *ts = &b->teachers[p->teacher];
		worker *w = session_by_token(b, p->token);

		if (rc == 0) {
			lease_committed(&ts->lease, p->shard, 1);
			lease_done_by(&ts->lease, p->shard, p->ident,
			    audit_wanted(b, p->ident, p->teacher, p->shard));
			if (p->ident != 0 && p->ident <= b->nidents)
				b->idents[p->ident - 1].results++;
			update_rate(ts, p->nrows);
			ts->committed_samples += p->nrows;
			if (w != NULL) {
				w->results++;
				w->samples += p->nrows;
			}
			broker_ack(b, p->id, p->idlen, p->shard, SL_ACK_STORED, NULL);
		} else {
			/* The result is good, the store is not: its worker
			 * keeps it and resends after a back-off, under a lease
			 * again (no one computes the shard twice). */
			lease_commit_retry(&ts->lease, p->shard, w ? w->token : 0,
			    sl_net_now_ms() + (uint64_t)b->cfg->lease_timeout_s *
			    1000);
			if (w != NULL)
				w->nleases++;
			broker_ack(b, p->id, p->idlen, p->shard, SL_ACK_RETRY,
			    why.text);
		}
		zmq_msg_close(&p->frame);
	}
	b->ngroup = 0;
	b->nquarantine = 0;
	if (rc == 0) {
		/* Before anyone is told DONE: a refused worker's shards go
		 * back to the queue first. */
		audit_purge(b);
		broker_dispatch_all(b);
	}
}

/* metrics.c - see metrics.h. */
#include "metrics.h"
#include "sl_net.h"

#include <inttypes.h>
#include <stdio.h>

/* Upper bounds of the commit histogram's buckets, seconds: an fsync'd
 * commit on a disk takes 1-50 ms, with --nosync well under 1 ms. */
const double metrics_commit_le[METRICS_COMMIT_BUCKETS] = {
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
	5, 10,
};

void
metrics_observe_commit(broker *b, double seconds)
{
	int i = 0;

	while (i < METRICS_COMMIT_BUCKETS && seconds > metrics_commit_le[i])
		i++;
	b->commit_hist[i]++; /* [METRICS_COMMIT_BUCKETS] is +Inf alone */
	b->commit_seconds_sum += seconds;
}

static void
teacher_metrics(broker *b, sl_metrics_text *t)
{
	static const char *const states[] = { "done", "leased", "pending",
	    "quarantined" };

	sl_metrics_family(t, "softlabel_shards", "gauge",
	    "Shards of a teacher by state.");
	for (uint32_t i = 0; i < b->nteachers; i++) {
		const teacher_sched *ts = &b->teachers[i];
		const lease_table *l = &ts->lease;
		double n[4];

		if (l->slots == NULL)
			continue;
		n[0] = (double)l->ndone;
		n[1] = (double)l->nleased;
		n[2] = (double)(l->nshards - l->ndone - l->nleased -
		    l->nquarantined); /* units for a teacher with views */
		n[3] = (double)l->nquarantined;
		for (int s = 0; s < 4; s++)
			sl_metrics_sample(t, "softlabel_shards", (const char *[]){
			    "teacher", ts->info.name, "state", states[s], NULL }, n[s]);
	}
	sl_metrics_family(t, "softlabel_samples_per_second", "gauge",
	    "Samples committed per second, smoothed (as softlabel status).");
	for (uint32_t i = 0; i < b->nteachers; i++)
		if (b->teachers[i].lease.slots != NULL)
			sl_metrics_sample(t, "softlabel_samples_per_second",
			    (const char *[]){ "teacher", b->teachers[i].info.name,
			    NULL }, b->teachers[i].rate);
	sl_metrics_family(t, "softlabel_eta_seconds", "gauge",
	    "Seconds until the teacher's shards are done at the current rate "
	    "(absent while the rate is 0).");
	for (uint32_t i = 0; i < b->nteachers; i++) {
		const teacher_sched *ts = &b->teachers[i];
		const double left = (double)(ts->lease.nshards -
		    ts->lease.ndone - ts->lease.nquarantined) *
		    b->job.shard_rows;

		if (ts->lease.slots != NULL && ts->rate > 0)
			sl_metrics_sample(t, "softlabel_eta_seconds",
			    (const char *[]){ "teacher", ts->info.name, NULL },
			    left / ts->rate);
	}
	sl_metrics_family(t, "softlabel_samples_committed_total", "counter",
	    "Samples committed since this broker started.");
	for (uint32_t i = 0; i < b->nteachers; i++)
		if (b->teachers[i].lease.slots != NULL)
			sl_metrics_sample(t, "softlabel_samples_committed_total",
			    (const char *[]){ "teacher", b->teachers[i].info.name,
			    NULL }, (double)b->teachers[i].committed_samples);
}

static void
worker_family(broker *b, sl_metrics_text *t, const char *name,
    const char *type, const char *help, int which, uint64_t now)
{
	sl_metrics_family(t, name, type, help);
	for (int i = 0; i < b->nslots; i++) {
		const worker *w = &b->workers[i];
		char session[16];
		double v, secs;

		if (!w->used)
			continue;
		secs = (double)(now - w->hello_ms) / 1000;
		switch (which) {
		case 0: v = secs > 0 ? (double)w->samples / secs : 0; break;
		case 1: v = (double)w->samples; break;
		case 2: v = w->nleases; break;
		default: v = (double)(now - w->last_seen_ms) / 1000; break;
		}
		snprintf(session, sizeof session, "%" PRIu32, w->token);
		sl_metrics_sample(t, name, (const char *[]){ "worker", w->name,
		    "teacher", b->teachers[w->teacher].info.name,
		    "session", session, NULL }, v);
	}
}

static void
counter(sl_metrics_text *t, const char *name, const char *help, double v)
{
	sl_metrics_family(t, name, "counter", help);
	sl_metrics_sample(t, name, NULL, v);
}

static void
gauge(sl_metrics_text *t, const char *name, const char *help, double v)
{
	sl_metrics_family(t, name, "gauge", help);
	sl_metrics_sample(t, name, NULL, v);
}

void
metrics_render(broker *b)
{
	sl_metrics_text *t = &b->mtext;
	const uint64_t now = sl_net_now_ms();
	uint64_t cum = 0;
	int nworkers = 0;
	char le[32];

	sl_metrics_text_reset(t);
	teacher_metrics(b, t);
	worker_family(b, t, "softlabel_worker_samples_per_second", "gauge",
	    "A worker's samples committed per second since its HELLO.", 0, now);
	worker_family(b, t, "softlabel_worker_samples_total", "counter",
	    "A worker's samples committed in this session.", 1, now);
	worker_family(b, t, "softlabel_worker_leases", "gauge",
	    "Shards a worker holds leased now.", 2, now);
	worker_family(b, t, "softlabel_worker_last_seen_seconds", "gauge",
	    "Seconds since the worker's last message.", 3, now);
	for (int i = 0; i < b->nslots; i++)
		nworkers += b->workers[i].used;
	gauge(t, "softlabel_workers", "Worker sessions.", nworkers);

	sl_metrics_family(t, "softlabel_rejected_total", "counter",
	    "Messages refused, by reason.");
	for (int r = 0; r < REJ_COUNT_; r++)
		sl_metrics_sample(t, "softlabel_rejected_total", (const char *[]){
		    "reason", broker_reject_names[r], NULL },
		    (double)b->rejected[r]);
	sl_metrics_family(t, "softlabel_auth_refused_total", "counter",
	    "Connections and sessions refused by CURVE, by reason.");
	for (int r = 0; r < AUTH_COUNT_; r++)
		sl_metrics_sample(t, "softlabel_auth_refused_total",
		    (const char *[]){ "reason", broker_auth_names[r], NULL },
		    (double)b->auth_refused[r]);

	sl_metrics_family(t, "softlabel_busy_total", "counter",
	    "HELLOs answered BUSY (the worker retries after a back-off), by "
	    "reason: every slot taken, or a limit per source address.");
	{
		const uint64_t peer = b->peer_refused[PEER_RATE] +
		    b->peer_refused[PEER_SESSIONS] + b->peer_refused[PEER_FULL];
		const char *const why[] = { "slots", "peer_rate",
		    "peer_sessions", "peer_table_full" };
		const double v[] = { (double)(b->busy - peer),
		    (double)b->peer_refused[PEER_RATE],
		    (double)b->peer_refused[PEER_SESSIONS],
		    (double)b->peer_refused[PEER_FULL] };

		for (int i = 0; i < 4; i++)
			sl_metrics_sample(t, "softlabel_busy_total",
			    (const char *[]){ "reason", why[i], NULL }, v[i]);
	}

	sl_metrics_family(t, "softlabel_commit_duration_seconds", "histogram",
	    "Time of one LMDB write transaction (a group of results).");
	for (int i = 0; i <= METRICS_COMMIT_BUCKETS; i++) {
		cum += b->commit_hist[i];
		if (i < METRICS_COMMIT_BUCKETS)
			snprintf(le, sizeof le, "%g", metrics_commit_le[i]);
		else
			snprintf(le, sizeof le, "+Inf");
		sl_metrics_sample(t, "softlabel_commit_duration_seconds_bucket",
		    (const char *[]){ "le", le, NULL }, (double)cum);
	}
	sl_metrics_sample(t, "softlabel_commit_duration_seconds_sum", NULL,
	    b->commit_seconds_sum);
	sl_metrics_sample(t, "softlabel_commit_duration_seconds_count", NULL,
	    (double)cum);

	counter(t, "softlabel_commits_total", "Commit transactions that "
	    "succeeded.", (double)b->commits);
	counter(t, "softlabel_results_committed_total", "Shard results "
	    "committed.", (double)b->committed_results);
	counter(t, "softlabel_duplicates_total", "Results for shards already "
	    "done, acknowledged and dropped.", (double)b->duplicates);
	counter(t, "softlabel_resets_total", "RESETs sent.", (double)b->resets);
	gauge(t, "softlabel_connections_open", "TCP connections open.",
	    b->nopen);
	gauge(t, "softlabel_rows", "Rows of the dataset.",
	    (double)sl_dataset_rows(b->ds));
	gauge(t, "softlabel_shards_total", "Shards of the job (per teacher).",
	    (double)b->nshards);
	gauge(t, "softlabel_uptime_seconds", "Seconds since this broker "
	    "started.", (double)(now - b->start_ms) / 1000);
}

void
metrics_serve(broker *b)
{
	uint64_t gen = sl_metrics_begin(b->metrics);

	if (gen == 0)
		return;
	metrics_render(b);
	if (b->mtext.oom) {
		if (sl_log_limit_allow(&b->store_log, sl_net_now_ms()))
			sl_error("metrics: out of memory rendering the text");
		return;
	}
	(void)sl_metrics_publish(b->metrics, gen, b->mtext.p, b->mtext.len);
}

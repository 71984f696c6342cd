/* status.c - the broker's status as JSON, for `softlabel status` and probes.
 *
 *   {"rows", "shards", "shard_rows", "uptime_s", "commits", "duplicates",
 *    "resets", "teachers": [{"name", "index", "views"[, "view_recipe",
 *    "view_seed"], "units" (shards, or (shard, view) units with views),
 *    "done", "leased", "pending",
 *    "quarantined", "samples_per_s", "eta_s", "quarantined_shards": [..]}],
 *    "workers": [{"name", "teacher", "leases", "results", "samples",
 *    "samples_per_s", "last_heartbeat_ms"}],
 *    "rejected": {"reason": count, ...}, "connections": {"open", "max",
 *    "idle_closed", "excess_closed", "sessions_closed", "busy" (every BUSY
 *    answer), "peer_rate_refused", "peer_sessions_refused", "peer_table_full"
 *    (the BUSY answers of the limits per address), "peer_pending_closed"
 *    (connections closed at once: their address had its share without a
 *    session), "peers" (addresses tracked), "peers_evicted"},
 *    "curve": bool,
 *    "auth_refused": {"plaintext", "unknown_key", "handshake_failed",
 *    "revoked"}, "audit": {"rate", "passed", "disputed", "settled",
 *    "unsettled", "open", "disputes_held", "refused", "purged_shards",
 *    "refused_workers": [identity, ..], "all_runs": {the same counters,
 *    earlier runs' (the cache's meta "audit") included}}, "workers_total", "workers_listed",
 *    "quarantined_listed_max", "truncated": bool}
 *
 * It always fits SL_PROTO_MAX_JSON (1 MiB), whatever the peers did: when
 * the whole text would not (4,096 workers with 128-byte names, hundreds of
 * teachers with many quarantined shards), it is made again with half as
 * many workers listed and half as many quarantined shards per teacher,
 * until it fits; "truncated" says so, the totals stay exact.
 */
#include "broker.h"
#include "audit.h"
#include "sl_net.h"

#include <cJSON.h>
#include <stdlib.h>
#include <string.h>

/* Room left under SL_PROTO_MAX_JSON for the message's own keys. */
#define STATUS_MAX_BYTES (SL_PROTO_MAX_JSON - 1024)
#define STATUS_MAX_QUARANTINED 1000 /* listed per teacher at most */

static cJSON *
teacher_json(const broker *b, const teacher_sched *ts, int max_listed)
{
	cJSON *o = cJSON_CreateObject(), *q = cJSON_CreateArray();
	/* A teacher with V views counts units (shard, view): V per shard. */
	const uint64_t V = ts->info.views ? ts->info.views : 1;
	const uint64_t pending = ts->lease.nshards - ts->lease.ndone -
	    ts->lease.nleased - ts->lease.nquarantined;
	const double left = (double)(ts->lease.nshards - ts->lease.ndone -
	    ts->lease.nquarantined) *
	    b->job.shard_rows;
	char recipe[SL_VIEW_RECIPE_TEXT];

	cJSON_AddStringToObject(o, "name", ts->info.name);
	cJSON_AddNumberToObject(o, "index", ts->info.index);
	cJSON_AddStringToObject(o, "model_sha256", ts->info.model_sha256);
	cJSON_AddNumberToObject(o, "temperature", (double)ts->info.temperature);
	cJSON_AddNumberToObject(o, "classes", ts->info.fmt.classes);
	cJSON_AddNumberToObject(o, "views", (double)ts->info.views);
	if (ts->info.views) {
		sl_view_recipe_format(recipe, sizeof recipe, &ts->info.view_recipe);
		cJSON_AddStringToObject(o, "view_recipe", recipe);
		cJSON_AddNumberToObject(o, "view_seed", (double)ts->info.view_seed);
	}
	cJSON_AddNumberToObject(o, "units", (double)(ts->lease.nshards -
	    b->nskip * V));
	/* Shards outside --rows are done in the table, not in the counts. */
	cJSON_AddNumberToObject(o, "done", (double)(ts->lease.ndone -
	    b->nskip * V));
	cJSON_AddNumberToObject(o, "leased", (double)ts->lease.nleased);
	cJSON_AddNumberToObject(o, "pending", (double)pending);
	cJSON_AddNumberToObject(o, "quarantined", (double)ts->lease.nquarantined);
	cJSON_AddNumberToObject(o, "disputed", (double)ts->lease.ndisputed);
	cJSON_AddNumberToObject(o, "audits_open", (double)ts->lease.naudits);
	cJSON_AddNumberToObject(o, "samples_per_s", ts->rate);
	if (ts->rate > 0)
		cJSON_AddNumberToObject(o, "eta_s", left / ts->rate);
	else
		cJSON_AddNullToObject(o, "eta_s");
	for (uint64_t s = 0; s < ts->lease.nshards &&
	    cJSON_GetArraySize(q) < max_listed; s++)
		if (ts->lease.slots[s].state == SHARD_QUARANTINED)
			cJSON_AddItemToArray(q, cJSON_CreateNumber((double)s));
	cJSON_AddItemToObject(o, "quarantined_shards", q);
	return o;
}

/* The status with at most max_workers workers and max_q quarantined
 * shards per teacher listed; NULL on no memory. */
static char *
status_text(const broker *b, int max_workers, int max_q)
{
	cJSON *root = cJSON_CreateObject(), *ts = cJSON_CreateArray();
	cJSON *ws = cJSON_CreateArray(), *rej = cJSON_CreateObject();
	const uint64_t now = sl_net_now_ms();
	int total = 0, listed = 0;
	char *text;

	if (root == NULL || ts == NULL || ws == NULL || rej == NULL) {
		cJSON_Delete(root);
		cJSON_Delete(ts);
		cJSON_Delete(ws);
		cJSON_Delete(rej);
		return NULL;
	}
	cJSON_AddStringToObject(root, "dataset", b->job.dataset_path);
	cJSON_AddNumberToObject(root, "rows", (double)sl_dataset_rows(b->ds));
	cJSON_AddNumberToObject(root, "shards", (double)(b->nshards - b->nskip));
	cJSON_AddNumberToObject(root, "rows_first", (double)b->job.rows_first);
	cJSON_AddNumberToObject(root, "rows_end", (double)b->job.rows_end);
	cJSON_AddNumberToObject(root, "shard_rows", b->job.shard_rows);
	cJSON_AddNumberToObject(root, "uptime_s", (double)(now - b->start_ms) / 1000);
	cJSON_AddNumberToObject(root, "commits", (double)b->commits);
	cJSON_AddNumberToObject(root, "committed_results", (double)b->committed_results);
	cJSON_AddNumberToObject(root, "duplicates", (double)b->duplicates);
	cJSON_AddNumberToObject(root, "resets", (double)b->resets);
	for (uint32_t t = 0; t < b->nteachers; t++)
		if (b->teachers[t].lease.slots != NULL)
			cJSON_AddItemToArray(ts, teacher_json(b, &b->teachers[t],
			    max_q));
	cJSON_AddItemToObject(root, "teachers", ts);
	for (int i = 0; i < b->nslots; i++) {
		const worker *w = &b->workers[i];
		cJSON *o;
		double secs;

		if (!w->used)
			continue;
		if (total++ >= max_workers)
			continue;
		listed++;
		o = cJSON_CreateObject();
		secs = (double)(now - w->hello_ms) / 1000;
		cJSON_AddStringToObject(o, "name", w->name);
		cJSON_AddStringToObject(o, "teacher", b->teachers[w->teacher].info.name);
		cJSON_AddNumberToObject(o, "leases", w->nleases);
		cJSON_AddBoolToObject(o, "stalled", w->stalled);
		cJSON_AddNumberToObject(o, "results", (double)w->results);
		cJSON_AddNumberToObject(o, "samples", (double)w->samples);
		cJSON_AddNumberToObject(o, "samples_per_s",
		    secs > 0 ? (double)w->samples / secs : 0);
		cJSON_AddNumberToObject(o, "last_heartbeat_ms",
		    (double)(now - w->last_seen_ms));
		if (w->key.z85[0] != '\0')
			cJSON_AddStringToObject(o, "key", w->key.z85);
		cJSON_AddBoolToObject(o, "revoked", w->revoked);
		cJSON_AddBoolToObject(o, "trusted", w->ident > 0 &&
		    w->ident <= b->nidents && b->idents[w->ident - 1].trusted);
		cJSON_AddBoolToObject(o, "connected", !w->disconnected);
		cJSON_AddItemToArray(ws, o);
	}
	cJSON_AddItemToObject(root, "workers", ws);
	cJSON_AddNumberToObject(root, "workers_total", total);
	cJSON_AddNumberToObject(root, "workers_listed", listed);
	cJSON_AddNumberToObject(root, "quarantined_listed_max", max_q);
	cJSON_AddBoolToObject(root, "truncated", listed < total ||
	    max_q < STATUS_MAX_QUARANTINED);
	for (int r = 0; r < REJ_COUNT_; r++)
		cJSON_AddNumberToObject(rej, broker_reject_names[r],
		    (double)b->rejected[r]);
	cJSON_AddItemToObject(root, "rejected", rej);
	cJSON *conns = cJSON_AddObjectToObject(root, "connections");
	if (conns != NULL) {
		cJSON_AddNumberToObject(conns, "open", b->nopen);
		cJSON_AddNumberToObject(conns, "max", b->max_conns);
		cJSON_AddNumberToObject(conns, "idle_closed", (double)b->idle_closed);
		cJSON_AddNumberToObject(conns, "excess_closed",
		    (double)b->excess_closed);
		cJSON_AddNumberToObject(conns, "sessions_closed",
		    (double)b->sessions_closed);
		cJSON_AddNumberToObject(conns, "busy", (double)b->busy);
		cJSON_AddNumberToObject(conns, "peer_rate_refused",
		    (double)b->peer_refused[PEER_RATE]);
		cJSON_AddNumberToObject(conns, "peer_sessions_refused",
		    (double)b->peer_refused[PEER_SESSIONS]);
		cJSON_AddNumberToObject(conns, "peer_table_full",
		    (double)b->peer_refused[PEER_FULL]);
		cJSON_AddNumberToObject(conns, "peer_pending_closed",
		    (double)b->peer_refused[PEER_PENDING]);
		cJSON_AddNumberToObject(conns, "peers", b->peers.n);
		cJSON_AddNumberToObject(conns, "peers_evicted",
		    (double)b->peers.evicted);
	}
	cJSON *audit = cJSON_AddObjectToObject(root, "audit");
	if (audit != NULL) {
		uint64_t open = 0, held = 0;
		cJSON *refused = cJSON_AddArrayToObject(audit, "refused_workers");

		for (uint32_t t = 0; t < b->nteachers; t++) {
			open += b->teachers[t].lease.naudits;
			held += b->teachers[t].lease.ndisputed;
		}
		cJSON_AddNumberToObject(audit, "rate", (double)b->cfg->audit_rate);
		cJSON_AddNumberToObject(audit, "passed", (double)b->audits_passed);
		cJSON_AddNumberToObject(audit, "disputed",
		    (double)b->audits_disputed);
		cJSON_AddNumberToObject(audit, "settled", (double)b->audits_settled);
		cJSON_AddNumberToObject(audit, "unsettled",
		    (double)b->audits_unsettled);
		cJSON_AddNumberToObject(audit, "open", (double)open);
		cJSON_AddNumberToObject(audit, "disputes_held", (double)held);
		cJSON_AddNumberToObject(audit, "refused", (double)b->idents_refused);
		cJSON_AddNumberToObject(audit, "purged_shards",
		    (double)b->purged_shards);
		sl_store_audit all;
		cJSON *runs = cJSON_AddObjectToObject(audit, "all_runs");

		audit_total(b, &all);
		if (runs != NULL) {
			cJSON_AddNumberToObject(runs, "passed", (double)all.passed);
			cJSON_AddNumberToObject(runs, "disputed",
			    (double)all.disputed);
			cJSON_AddNumberToObject(runs, "settled", (double)all.settled);
			cJSON_AddNumberToObject(runs, "unsettled",
			    (double)all.unsettled);
			cJSON_AddNumberToObject(runs, "refused", (double)all.refused);
			cJSON_AddNumberToObject(runs, "purged_shards",
			    (double)all.purged_shards);
		}
		/* Listed like quarantined shards: halved when status is too big. */
		for (uint32_t i = 0; refused != NULL && i < b->nidents &&
		    cJSON_GetArraySize(refused) < max_q; i++)
			if (b->idents[i].refused)
				cJSON_AddItemToArray(refused,
				    cJSON_CreateString(b->idents[i].id));
	}
	cJSON_AddBoolToObject(root, "curve", b->allow != NULL);
	cJSON *auth = cJSON_AddObjectToObject(root, "auth_refused");
	for (int r = 0; auth != NULL && r < AUTH_COUNT_; r++)
		cJSON_AddNumberToObject(auth, broker_auth_names[r],
		    (double)b->auth_refused[r]);
	text = cJSON_PrintUnformatted(root);
	cJSON_Delete(root);
	return text;
}

char *
broker_status_json(const broker *b)
{
	int max_workers = BROKER_MAX_WORKERS, max_q = STATUS_MAX_QUARANTINED;
	char *text;

	/* Each round halves both lists; at zero the text is the teachers'
	 * and the counters' alone, which fits (<= 256 teachers of < 1 KiB). */
	for (;;) {
		text = status_text(b, max_workers, max_q);
		if (text == NULL || strlen(text) <= STATUS_MAX_BYTES ||
		    (max_workers == 0 && max_q == 0))
			return text;
		free(text);
		max_workers /= 2;
		max_q /= 2;
	}
}

/* metrics.h - the broker's numbers in Prometheus text format, served by
 * sl_metrics (common/sl_metrics.h) on --metrics-bind.
 *
 * The HTTP server runs in libmicrohttpd's thread and never reads the
 * broker: a scrape wakes the broker's loop through sl_metrics_fd(), and the
 * loop renders the text on its own thread (metrics_serve) and hands it
 * over. So every number of one scrape comes from the same instant, and the
 * broker's state needs no lock. The families:
 *
 *   softlabel_shards{teacher,state}            gauge: done leased pending quarantined
 *   softlabel_samples_per_second{teacher}      gauge: committed samples/s (smoothed, as status)
 *   softlabel_eta_seconds{teacher}             gauge: only while the rate is > 0
 *   softlabel_samples_committed_total{teacher} counter: this run
 *   softlabel_worker_samples_per_second{worker,teacher,session}   gauge
 *   softlabel_worker_samples_total{worker,teacher,session}        counter
 *   softlabel_worker_leases{worker,teacher,session}               gauge
 *   softlabel_worker_last_seen_seconds{worker,teacher,session}    gauge: since its last message
 *   softlabel_workers                          gauge: sessions
 *   softlabel_rejected_total{reason}           counter: status "rejected"
 *   softlabel_auth_refused_total{reason}       counter: status "auth_refused"
 *   softlabel_commit_duration_seconds          histogram: one LMDB write txn
 *   softlabel_commits_total, softlabel_results_committed_total,
 *   softlabel_duplicates_total, softlabel_resets_total      counters
 *   softlabel_connections_open, softlabel_rows, softlabel_shards_total,
 *   softlabel_uptime_seconds                   gauges
 *
 * "session" is the broker's session number: two workers may share a name.
 * All on the broker's thread.
 */
#ifndef BROKER_METRICS_H
#define BROKER_METRICS_H

#include "broker.h"

/* Count one commit transaction that took seconds. */
void metrics_observe_commit(broker *b, double seconds);
/* The wake descriptor is readable: render and publish the text. */
void metrics_serve(broker *b);
/* Render the text into b->mtext (also for tests). */
void metrics_render(broker *b);

#endif

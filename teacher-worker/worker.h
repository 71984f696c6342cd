/* worker.h - a teacher worker: leases shards from the broker, runs the
 * teacher over their rows in batches, and sends the soft labels back.
 *
 * Two threads. The compute thread runs the forward passes, one batch at a
 * time handed to it by the main thread (rows in, records out, into the
 * active task's result blob). The main thread alone touches the ZeroMQ
 * socket (libzmq sockets are not thread-safe): it polls it and a pipe the
 * compute thread writes when a batch is done, so it answers acks and new
 * tasks and sends heartbeats every heartbeat interval however long a batch
 * takes. Every result is kept, encoded, until the broker acknowledges it,
 * and sent again after a reconnect or a broker restart: ZeroMQ drops
 * messages silently when a connection breaks. With credit 2 the broker keeps
 * a second shard queued here, so the network works while the CPU computes.
 *
 * Lease renewal. A heartbeat lists the shards of the queued tasks, which
 * renews their leases, only if the teacher is progressing: the compute
 * thread is not inside a batch, or it has finished a graph node
 * (sl_graph_progress advanced) or a batch since the previous renewing
 * heartbeat. Otherwise the heartbeat lists no shard: the session stays
 * alive, the leases run out, and the broker gives the shards to others (and
 * no new ones to this worker until it renews again or sends a result). So
 * a batch of any length keeps its leases as long as nodes keep finishing,
 * and a compute thread stuck inside one node for about a lease period
 * (--lease-timeout; heartbeats every 500 ms) loses them, even though the
 * process, its main thread and libzmq are all alive. A HELLO after a
 * reconnect, which moves the leases to the new session, lists the tasks
 * unless the last heartbeat found the teacher stalled. While it holds no
 * task the worker repeats READY with each heartbeat (the broker, which
 * takes a worker heard from that lets a lease expire for stalled, leases
 * it nothing until then). A stall that lasts half a lease is logged, and
 * so is its end.
 *
 * Views. When WELCOME names V > 0 views (the teacher's registration), a
 * TASK's shard number is a unit u = shard * V + view: the worker applies
 * view u % V to every row (sl_view_draw with the registration's recipe
 * and seed, sample = the row's dataset index; sl_view_apply on the raw
 * row, before preprocessing), runs the teacher on the views, and sends
 * their records as the result of unit u.
 */
#ifndef WORKER_H
#define WORKER_H

#include <signal.h>
#include <stdint.h>

typedef struct worker_cfg {
	const char *connect, *model, *encoding, *dataset;
	const char *name;        /* teacher name in the cache */
	const char *worker_name; /* this process, for status and logs */
	const char *curve_secret, *curve_server; /* both or neither */
	float temperature;
	/* Preprocessing: NAN where not given (the model's metadata, else the
	 * default for the dataset's dtype, decides). */
	float input_scale;
	const char *input_mean, *input_std; /* lists: one, or one a channel */
	int batch, threads, credit, max_held;
	int connect_timeout_s;   /* no broker ever answered: give up; 0: never */
	/* Views the worker insists on (--views, --view-recipe, --view-seed):
	 * sent in HELLO, so a broker registering other ones refuses it.
	 * views 0: the worker takes the teacher's from WELCOME. */
	int views;
	const char *view_recipe;
	int64_t view_seed;
} worker_cfg;

/* Run until the broker says every shard is done (exit 0), a fatal refusal
 * or error (1), no broker answering within cfg->connect_timeout_s of the
 * start (1; once welcomed, a lost broker is waited for without limit: the
 * held results must reach it), or *stop and the held results are
 * acknowledged (0).
 * Returns the exit status; logs its own errors. */
int worker_run(const worker_cfg *cfg, volatile sig_atomic_t *stop);

#endif

/* worker.h - a teacher worker: leases shards from the broker, runs the
 * teacher over their rows in batches, and sends the soft labels back.
 *
 * One thread. Between batches it services the socket: heartbeats (which
 * renew its leases, so a hung computation stops renewing them), acks, new
 * tasks. Every result is kept, encoded, until the broker acknowledges it,
 * and sent again after a reconnect or a broker restart: ZeroMQ drops
 * messages silently when a connection breaks. With credit 2 the broker keeps
 * a second shard queued here, so the network works while the CPU computes.
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
	float input_scale, input_mean, input_std;
	int batch, threads, credit, max_held;
} worker_cfg;

/* Run until the broker says every shard is done (exit 0), a fatal refusal
 * or error (1), or *stop and the held results are acknowledged (0).
 * Returns the exit status; logs its own errors. */
int worker_run(const worker_cfg *cfg, volatile sig_atomic_t *stop);

#endif

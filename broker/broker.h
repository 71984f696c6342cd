/* broker.h - the broker's state: the job, one scheduler per teacher, the
 * workers it knows, and the group of results waiting for their commit.
 *
 * One thread runs everything (broker_run): messages are drained from the
 * socket in bursts, every valid result of a burst is committed in one LMDB
 * write transaction, and only then acknowledged. The files:
 *
 *   lease.c    a teacher's shards and leases, a pure state machine
 *   session.c  the workers: sessions, HELLO, handover after a reconnect
 *   peer.c     limits per source address (sessions, HELLO rate), pure
 *   auth.c     CURVE: keys, the ZAP handler, the socket monitor, SIGHUP
 *   commit.c   a group of results and quarantines in one transaction
 *   audit.c    --audit: identities, second and third opinions, refusals
 *   broker.c   the job, scheduling, the other messages, the loop
 *   status.c   status as JSON
 *   metrics.c  the same numbers in Prometheus text format (--metrics-bind)
 *
 * Leases live in memory only: after a restart every shard that is not DONE
 * or QUARANTINED in the cache is PENDING again, and workers re-claim the
 * results they still hold in their HELLO.
 */
#ifndef BROKER_H
#define BROKER_H

#include <signal.h>
#include <stdint.h>
#include <zmq.h>

#include "lease.h"
#include "peer.h"
#include "sl_curve.h"
#include "sl_data.h"
#include "sl_log.h"
#include "sl_metrics.h"
#include "sl_proto.h"
#include "sl_store.h"
#include "sl_view.h"

#define BROKER_MAX_WORKERS 4096
#define BROKER_MAX_GROUP 256  /* results per commit transaction */
#define BROKER_GRANTS 64      /* shards a worker may answer for */
#define BROKER_MAX_PEERS BROKER_MAX_WORKERS /* source addresses tracked */
#define METRICS_COMMIT_BUCKETS 14 /* commit histogram (metrics.c) */

typedef struct broker_cfg {
	const char *store, *dataset, *bind, *status_bind;
	const char *curve_secret, *allow_keys; /* both or neither */
	int shard_rows, lease_timeout_s, max_attempts, exit_when_done, nosync;
	int recompute_corrupt;
	int hello_timeout_s;  /* a connection silent this long is closed */
	const char *teachers; /* --teacher NAME[=SHA256][,...]: the operator's
	                         teachers, the only ones HELLO may name */
	int max_teachers;     /* without --teacher: teachers the cache may hold */
	int max_workers;      /* sessions at once, <= BROKER_MAX_WORKERS */
	int max_sessions_per_peer; /* live sessions per source address, 0 off */
	int max_pending_per_peer;  /* connections without a session, 0 off */
	float hello_rate_per_peer; /* HELLOs/s per source address, 0 off */
	int hello_burst_per_peer;  /* ... in a burst (the bucket's size) */
	int64_t max_msg_bytes;
	int64_t map_size_bytes; /* the cache's LMDB map (address space) */
	float audit_rate;     /* --audit: share of shards given a second opinion */
	int64_t audit_seed;   /* --audit-seed: which shards; -1 random */
	const char *trusted_keys; /* --trusted-keys DIR: keys never audited */
	const char *rows;       /* --rows A:B, NULL: the whole dataset */
	/* --views V, --view-recipe R, --view-seed S: the views of a teacher
	 * this broker registers (views 0: none; a teacher already in the
	 * cache keeps its own, and with views > 0 must have these). */
	int views;
	const char *view_recipe;
	int64_t view_seed;
	sl_view_recipe recipe; /* view_recipe parsed (main.c) */
} broker_cfg;

typedef struct teacher_sched {
	sl_store_teacher info;
	size_t rec_size;
	lease_table lease;    /* its shards; lease.slots NULL until loaded */
	uint64_t done_at_start;
	double rate;          /* committed samples/s, smoothed */
	uint64_t rate_t_ms, rate_samples;
	uint64_t committed_samples; /* this run */
} teacher_sched;

typedef struct worker {
	int used;
	uint8_t id[256];
	size_t idlen;
	uint32_t token;       /* unique per session, never reused */
	char name[SL_PROTO_MAX_NAME + 1];
	uint32_t teacher;     /* index into broker.teachers */
	int ship_rows;        /* no local dataset: TASKs carry the rows */
	uint32_t credit, nleases;
	uint64_t last_seen_ms, hello_ms;
	uint64_t results, samples;
	uint64_t granted[BROKER_GRANTS]; /* ring of shards it may answer for */
	uint32_t ngranted;
	int fd;               /* its connection's socket (libzmq's), -1 unknown */
	int32_t peer;         /* its source address in broker.peers while the
	                         session is live, else -1 (session_end_peer) */
	int disconnected;     /* that connection closed (conn.c) */
	sl_curve_key key;     /* CURVE public key of its session ("" without) */
	uint32_t ident;       /* its identity (audit.c): key, or name without
	                         CURVE; never 0 */
	int revoked;          /* its key left the allow-list: no leases, and
	                         its next message is refused */
	int stopping;         /* said READY with credit 0: finishing what it
	                       * holds, then leaving; takes no audit */
	int stalled;          /* heard from, yet let a lease expire: its teacher
	                         is stuck (the worker renews only while its
	                         compute thread progresses); no new leases
	                         until a heartbeat renews one, a result or a
	                         READY (an idle worker's) comes */
} worker;

/* Connections and sessions refused by CURVE and ZAP, counted in status
 * under "auth_refused". None of them reaches the protocol logic. */
enum auth_reason {
	AUTH_PLAINTEXT,       /* no CURVE (ZAP mechanism NULL, or a ZMTP
	                         mechanism mismatch seen by the monitor) */
	AUTH_UNKNOWN_KEY,     /* CURVE with a key not on the allow-list */
	AUTH_HANDSHAKE,       /* handshake failed (e.g. wrong server key) */
	AUTH_REVOKED,         /* message of a session whose key was removed */
	AUTH_COUNT_
};

extern const char *const broker_auth_names[AUTH_COUNT_];

/* Why a message was refused; each has a counter in status. */
enum reject_reason {
	REJ_MALFORMED,
	REJ_OVERSIZE,
	REJ_BAD_HELLO,
	REJ_BAD_NAME,         /* a name outside SL_PROTO_NAME_CHARS */
	REJ_UNREGISTERED,     /* a teacher the operator did not register, or
	                         one past --max-teachers */
	REJ_PROVENANCE,
	REJ_DATASET,
	REJ_WRONG_TEACHER,
	REJ_UNKNOWN_SHARD,
	REJ_NOT_LEASED,
	REJ_QUARANTINED,
	REJ_WRONG_ROWS,
	REJ_WRONG_SIZE,
	REJ_BAD_RECORD,
	REJ_STORE,
	REJ_REFUSED,          /* a HELLO of an identity an audit proved wrong */
	REJ_COUNT_
};

extern const char *const broker_reject_names[REJ_COUNT_];

/* Other lines a remote peer can cause, one a event: each kind, like each
 * reject reason, is rate-limited in the log (sl_log_limit). */
enum remote_event {
	EV_DUPLICATE,         /* a duplicate result dropped */
	EV_JOINED,            /* a worker's HELLO welcomed */
	EV_FORGOTTEN,         /* a silent worker forgotten */
	EV_REVOKED,           /* a message of a revoked key */
	EV_SEND_FAILED,       /* a reply that could not be sent */
	EV_REGISTER_FAILED,   /* a teacher the cache could not register */
	EV_SIGHUP,            /* an allow-list reload (or a SIGHUP ignored) */
	EV_CONN_CLOSED,       /* connections closed: silent, or over the limit */
	EV_BUSY,              /* a HELLO refused for now: every slot taken */
	EV_PEER_RATE,         /* ... its address said HELLO too often */
	EV_PEER_SESSIONS,     /* ... its address holds its share of sessions */
	EV_PEER_FULL,         /* ... the table of addresses is all live */
	EV_PEER_PENDING,      /* a connection closed: its address has its
	                         share of pending connections */
	EV_COUNT_
};

typedef struct pending_result {
	zmq_msg_t frame;      /* owns the blob until the commit */
	uint8_t id[256];
	size_t idlen;
	uint32_t token;
	uint32_t ident;       /* whose result (audit.c) */
	uint32_t teacher;
	uint64_t shard;
	const uint8_t *blob;
	uint32_t nrows;
} pending_result;

/* Who computed a result, as audits see it: "key Z85" under CURVE (the
 * session's public key), "name NAME" in plaintext (the worker's name,
 * which any client can claim). Numbered from 1 in the broker's table. */
#define BROKER_MAX_IDENTS 65536
#define BROKER_IDENT_BYTES (8 + SL_PROTO_MAX_NAME)
#define BROKER_IDENT_HASH (2 * BROKER_MAX_IDENTS) /* a power of two */
typedef struct identity {
	char id[BROKER_IDENT_BYTES + 1];
	char name[SL_PROTO_MAX_NAME + 1]; /* the last worker name it used */
	uint8_t trusted;      /* --trusted-keys: never audited */
	uint8_t refused;      /* proven wrong: no HELLO, its shards purged */
	uint8_t purge;        /* refused, shards not purged yet */
	uint64_t results;     /* results of it stored in this run */
	uint64_t passed, failed; /* audits of its results */
} identity;

/* Two results of one shard that disagree, held out of the cache until a
 * third opinion settles them (audit.c). */
#define BROKER_MAX_DISPUTES 64
typedef struct dispute {
	int used;
	uint32_t teacher;
	uint64_t shard;
	uint32_t nrows;
	uint8_t *first, *second; /* (nrows * rec_size) each, malloc'd */
} dispute;

/* A teacher the operator registered (--teacher): its name, and the model's
 * SHA-256 that workers must run ("" for any; the first HELLO's is kept). */
#define BROKER_MAX_OPERATOR_TEACHERS 64
typedef struct operator_teacher {
	char name[SL_PROTO_MAX_NAME + 1];
	char sha256[65];
} operator_teacher;

typedef struct quarantine {
	uint32_t teacher;
	uint64_t shard;
	uint32_t attempts;
	char reason[128];
} quarantine;

/* A TCP connection behind the ROUTER (conn.c), indexed by its fd. */
typedef struct conn {
	uint64_t accepted_ms;
	uint8_t open;
	uint8_t heard;        /* a valid message came on it */
	uint8_t session;      /* a HELLO on it was welcomed */
	int32_t peer;         /* its entry in peers while pending, or -1 */
} conn;

typedef struct broker {
	const broker_cfg *cfg;
	sl_store *store;
	sl_dataset *ds;
	sl_store_job job;
	uint64_t nshards;
	size_t row_bytes;
	void *zctx, *sock, *status_sock;
	void *zap;            /* CURVE only: the ZAP handler's REP socket */
	void *monitor;        /* the ROUTER's events (conn.c) */
	conn *conns;          /* (nconn_fds) by fd */
	int nconn_fds;
	uint32_t nopen, max_conns;
	uint64_t idle_closed, excess_closed, sessions_closed, busy;
	peer_table peers;     /* per source address (session.c) */
	uint64_t peer_refused[PEER_VERDICT_COUNT_]; /* BUSY by verdict */
	sl_curve_allow *allow;
	sl_curve_key secret, pub;
	uint64_t auth_refused[AUTH_COUNT_];
	uint64_t auth_logged_ms[AUTH_COUNT_]; /* refusals log once per 10 s */
	volatile sig_atomic_t *reload; /* SIGHUP: re-read --allow-keys */
	sl_proto_buf out;

	operator_teacher op[BROKER_MAX_OPERATOR_TEACHERS];
	uint32_t nop;         /* 0: open registration (up to max_teachers) */
	teacher_sched teachers[SL_STORE_MAX_TEACHERS];
	uint32_t nteachers;
	worker *workers;      /* (BROKER_MAX_WORKERS) */
	int nslots;           /* slots ever used: scans stop here, not at the max */
	uint32_t next_token;

	pending_result group[BROKER_MAX_GROUP];
	uint32_t ngroup;
	quarantine quarantined[BROKER_MAX_GROUP];
	uint32_t nquarantine;

	uint64_t rejected[REJ_COUNT_];
	sl_log_limit reject_log[REJ_COUNT_]; /* lines per reject reason */
	sl_log_limit event_log[EV_COUNT_];   /* lines per remote_event */
	sl_log_limit store_log;              /* failed commits: 1 per 10 s */
	uint64_t duplicates, resets, commits, committed_results;
	uint64_t hellos;      /* workers welcomed in this run */

	identity *idents;     /* (nidents), identity i + 1 at [i] */
	uint32_t nidents, cap_idents;
	uint32_t *ident_hash; /* (BROKER_IDENT_HASH) identity numbers by the
	                         hash of their text, 0 empty; linear probing */
	sl_curve_allow *trusted; /* --trusted-keys */
	uint64_t audit_seed;
	dispute disputes[BROKER_MAX_DISPUTES];
	uint64_t audits_passed, audits_disputed, audits_settled;
	uint64_t audits_unsettled; /* third opinions that agreed with neither */
	uint64_t idents_refused, purged_shards;
	int purge_pending;
	sl_store_audit audit_base; /* the cache's counters from earlier runs */
	int audit_dirty;      /* counters changed since they were stored */
	uint64_t start_ms;
	volatile sig_atomic_t *stop;

	sl_metrics *metrics;  /* --metrics-bind (main owns it), or NULL */
	sl_metrics_text mtext; /* its text, rendered on this thread */
	uint64_t commit_hist[METRICS_COMMIT_BUCKETS + 1]; /* last: +Inf */
	double commit_seconds_sum;
	int failed; /* a fatal error (the dataset changed): leave with exit 1 */
	/* Shards outside the job's row range (--rows): restored as done in
	 * every lease table and left out of status counts. */
	uint64_t shard_first, shard_end, nskip;
} broker;

/* Open the store and dataset, create or resume the job, bind. Logs its own
 * errors; returns 0, or 1 (runtime) / 2 (usage) as an exit status. */
int broker_open(broker *b, const broker_cfg *cfg, volatile sig_atomic_t *stop);
/* Serve until done (with exit_when_done) or *stop. Exit status. */
int broker_run(broker *b);
void broker_close(broker *b);

/* Status as a JSON text, malloc'd (caller frees); NULL on no memory. */
char *broker_status_json(const broker *b);

/* Between the broker's own files (broker.c), all on the broker's thread. */

/* Send m to a peer; a peer gone away is not an error (it resends). */
void broker_reply(broker *b, void *sock, const void *id, size_t idlen,
    const sl_msg *m);
/* A REFUSE, RESET or DONE with reason (cut to SL_PROTO_MAX_REASON). */
void broker_reply_reason(broker *b, void *sock, const void *id, size_t idlen,
    enum sl_msg_type type, const char *reason);
/* An ACK of shard with status (and reason, NULL for none). */
void broker_ack(broker *b, const void *id, size_t idlen, uint64_t shard,
    enum sl_ack_status status, const char *reason);
/* Count a refused message under r and log it. */
void broker_reject(broker *b, enum reject_reason r, const char *who,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A leased shard goes back to the queue, or to quarantine (logged, and
 * recorded for the next commit) after max_attempts leases. */
void broker_return_shard(broker *b, teacher_sched *ts, uint64_t s,
    const char *why_back);
/* 1 if the line of a remote-caused event may be written now (each kind
 * rate-limited; broker_run writes the "suppressed N" summaries). */
int broker_log_allow(broker *b, enum remote_event e);
/* Lease to every worker with credit left. */
void broker_dispatch_all(broker *b);
/* Rows of shard s (the last one may be short). */
uint32_t broker_shard_nrows(const broker *b, uint64_t shard);

/* Units: a teacher with V views leases unit u = shard * V + view (its
 * lease table, shards entries and the wire's shard numbers count units);
 * a teacher without views has unit = shard. */
uint64_t broker_unit_shard(const teacher_sched *ts, uint64_t unit);
/* The view of unit (SL_STORE_NO_VIEW for a teacher without views). */
uint32_t broker_unit_view(const teacher_sched *ts, uint64_t unit);
/* How log lines name a unit: "shard 4", or "unit 18 (shard 4, view 2)"
 * for a teacher with views. Returns buf. */
#define BROKER_UNIT_NAME 72
const char *broker_unit_name(const teacher_sched *ts, uint64_t unit,
    char buf[BROKER_UNIT_NAME]);
/* Rows of unit's shard, and its first row. */
uint32_t broker_unit_nrows(const broker *b, const teacher_sched *ts,
    uint64_t unit);
uint64_t broker_unit_first(const broker *b, const teacher_sched *ts,
    uint64_t unit);
/* Send w the TASK of shard s. */
void broker_send_task(broker *b, worker *w, uint64_t s);
/* A valid result of w for shard s (already COMMITTING) joins the commit
 * group; frame (holding m) is moved into it. */
void broker_group_add(broker *b, const worker *w, zmq_msg_t *frame,
    const sl_msg *m, uint64_t s);
/* Load a teacher's shard states from the cache into its scheduler. */
int broker_load_teacher(broker *b, const sl_store_teacher *t);

#endif

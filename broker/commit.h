/* commit.h - the results of a burst and the quarantines decided since the
 * last commit go into the cache in one LMDB write transaction; only then
 * are the results acknowledged (nothing is acknowledged that a crash could
 * lose). On the broker's thread. */
#ifndef COMMIT_H
#define COMMIT_H

#include "broker.h"

/* Commit b->group and b->quarantined, ACK each result (stored, or rejected
 * when the transaction failed: the shard is pending again), empty both. */
void commit_group(broker *b);

#endif

/* repair.h - recompute shards whose records fail their check. */
#ifndef REPAIR_H
#define REPAIR_H

#include <stdint.h>

#include "sl_store.h"

/* Check every record of every teacher; reset (delete records and state of)
 * each shard holding a bad one, so it is leased and computed again. Logs
 * one line per bad shard and a summary per teacher. Returns 0 or an error
 * code (logged). */
int broker_recompute_corrupt(sl_store *s, const sl_store_job *job,
    uint64_t nshards);

#endif

#!/usr/bin/python3
"""Wait until WORKER (or any worker, for "*") has stored at least N shards of
TEACHER in a cache that a broker is filling (read through softlabel.Cache's
snapshots).

    cache_wait.py CACHE TEACHER WORKER N SECS

Exit 0 when it has; 1 when every shard of the job is done first (the job
ended before the moment the caller wanted); 124 after SECS seconds. The
loop is bounded in count and time.
"""
import sys
import time

import softlabel

path, teacher, worker, n, secs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
c = softlabel.Cache(path)
end = time.monotonic() + secs
for _ in range(int(secs * 50) + 1):
    if teacher in c.teachers:
        sh = c.shards(teacher)
        mine = sum(1 for v in sh.values() if worker in ("*", v.get("worker")) and v.get("state") == 1)
        if mine >= n:
            print(f"{worker}: {mine} shards of {teacher} stored, {len(sh)}/{c.nshards} done")
            sys.exit(0)
        if len(sh) == c.nshards and worker != "*":
            print(f"every shard of {teacher} is done; {worker} stored {mine}")
            sys.exit(1)
    if time.monotonic() > end:
        break
    time.sleep(0.02)
    c.refresh()
sys.exit(124)

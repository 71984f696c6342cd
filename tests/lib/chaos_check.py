#!/usr/bin/python3
"""The accounting of a chaos run, in the manner of Jepsen's total-queue:

    chaos_check.py CACHE TEACHER ROWS DIRECT.npy BROKER_LOGS WORKER_LOGS

Every sample 0..ROWS-1 of TEACHER is a message the job must deliver once:
  lost        samples with no record in the cache
  unexpected  records that are not one of those (another teacher index, a
              sample past ROWS, a key of the wrong size)
  duplicated  shards acknowledged as stored (ACK "stored": in the cache,
              from that worker) more often than once plus the audits that
              withheld them (each dispute deletes the stored result, so a
              third result is stored after it); read from the honest
              workers' debug lines "shard N stored" and the broker's
              "audit: teacher T shard N: workers ... disagree" lines
  mismatched  records whose distribution differs from DIRECT (the teacher
              computed apart, same tiling) by more than 1e-6
BROKER_LOGS and WORKER_LOGS are comma-separated file lists. Prints one line
of counts; exit 1 unless all four are 0.
"""
import re
import struct
import sys
from collections import Counter

import lmdb
import numpy as np

import softlabel

path, teacher, rows, direct, blogs, wlogs = sys.argv[1:7]
rows = int(rows)
c = softlabel.Cache(path)
index = c.teacher(teacher).index
env = lmdb.open(path, readonly=True, lock=False, max_dbs=8)
labels = env.open_db(b"labels", create=False)
seen = np.zeros(rows, bool)
unexpected = 0
with env.begin() as txn:
    for k, _ in txn.cursor(labels):
        if len(k) != 12:
            unexpected += 1
            continue
        t, s = struct.unpack(">IQ", k)
        if t != index or s >= rows:
            unexpected += 1
        else:
            seen[s] = True  # LMDB keys are unique: one record per key
lost = int((~seen).sum())

stored, disputes = Counter(), Counter()
for f in wlogs.split(","):
    for m in re.finditer(r" shard (\d+) stored$", open(f, errors="replace").read(), re.M):
        stored[int(m.group(1))] += 1
pat = re.compile(r"audit: teacher " + re.escape(teacher) + r" shard (\d+): workers .* disagree")
for f in blogs.split(","):
    for line in open(f, errors="replace"):
        m = pat.search(line)
        if m:
            disputes[int(m.group(1))] += 1
duplicated = sum(max(0, n - 1 - disputes[s]) for s, n in stored.items())

got = c.export(teacher)
ref = np.load(direct)
ok = ~np.isnan(got).any(axis=1)
mismatched = int((np.abs(got[ok] - ref[ok]).max(axis=1) > 1e-6).sum())
print(f"chaos accounting: {rows} samples, {len(stored)} shards acknowledged as stored "
      f"({sum(stored.values())} acks), {sum(disputes.values())} disputes: lost {lost}, "
      f"duplicated {duplicated}, unexpected {unexpected}, mismatched {mismatched}")
sys.exit(0 if lost == duplicated == unexpected == mismatched == 0 else 1)

#!/usr/bin/env python3
"""Check that a copy of a cache is a consistent snapshot of the final one.

    copy_check.py COPY FINAL SHARD_ROWS ROWS

Every record of the copy equals the final cache's record of the same key,
every shard the copy holds as done is done in the final cache, the copy's
meta (job, teachers) equals the final's, and the copy holds records for its
done shards and for nothing else (a shard and its records commit together,
so a snapshot never shows one without the other). Prints the counts; exit 1
on the first difference. Debian's python3-lmdb.
"""
import struct
import sys

import lmdb

copy_dir, final_dir = sys.argv[1], sys.argv[2]
shard_rows, rows = int(sys.argv[3]), int(sys.argv[4])


def items(env, name):
    db = env.open_db(name.encode(), create=False)
    with env.begin(db=db) as txn:
        return dict(txn.cursor().iternext())


def open_env(path):
    return lmdb.open(path, readonly=True, lock=False, max_dbs=4)


c, f = open_env(copy_dir), open_env(final_dir)
cm, fm = items(c, "meta"), items(f, "meta")
if cm != fm:
    sys.exit(f"meta differs: copy {sorted(cm)} final {sorted(fm)}")
cl, fl = items(c, "labels"), items(f, "labels")
for k, v in cl.items():
    if fl.get(k) != v:
        t, s = struct.unpack(">IQ", k)
        sys.exit(f"teacher {t} sample {s}: the copy's record differs from the final cache's")
# Every shards entry is a done one here (the tests that use this quarantine
# nothing); its value (state, attempts, worker, time) must be the final's.
fs = items(f, "shards")
done = set()
for k, v in items(c, "shards").items():
    t, s = struct.unpack(">IQ", k)
    if fs.get(k) != v:
        sys.exit(f"teacher {t} shard {s}: the copy's entry differs from the final cache's")
    done.add((t, s))
want = set()
for t, s in done:
    for i in range(s * shard_rows, min(rows, (s + 1) * shard_rows)):
        want.add(struct.pack(">IQ", t, i))
if set(cl) != want:
    extra, missing = len(set(cl) - want), len(want - set(cl))
    sys.exit(f"the copy's records do not match its done shards: {extra} extra, {missing} missing")
print(f"copy: {len(cl)} records in {len(done)} done shards, all equal to the "
      f"final cache's ({len(fl)} records in {len(fs)} shards)")

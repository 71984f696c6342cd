#!/usr/bin/python3
"""softlabel.Cache against the C reader (run by tests/integration/python_cache.sh).

    test_cache.py CACHE DIR DATASET.npy TEACHER.safetensors

DIR holds what the C tools wrote from CACHE: export-NAME-T.npy (softlabel
export at T = 0 (stored), 1 and 4.5), get-NAME-SAMPLE (softlabel get) and
inspect (softlabel inspect), for teachers full (f32), half (f16), top3
(topk:3). Every check compares values; any difference fails.
"""
import hashlib
import os
import re
import shutil
import struct
import sys

import lmdb
import numpy as np

import softlabel
from softlabel import data as sldata

cache_dir, out, x_path, model = sys.argv[1:5]
c = softlabel.Cache(cache_dir)
checks = 0


def ok(cond, what):
    global checks
    if not cond:
        sys.exit(f"FAIL: {what}")
    checks += 1


# --- teachers, job and coverage against `softlabel inspect` ------------------
inspect = open(os.path.join(out, "inspect")).read()
ok(list(c.teachers) == ["full", "half", "top3"], f"teachers {list(c.teachers)}")
sha = hashlib.sha256(open(model, "rb").read()).hexdigest()
for name, enc, nbytes in (("full", "f32", 52), ("half", "f16", 32), ("top3", "topk:3", 34)):
    t = c.teacher(name)
    line = re.search(rf"teacher (\d+) +{name}: model sha256 (\w+), T=(\S+), (\S+), "
                     rf"(\d+) classes, (\d+) bytes/record; (\d+)/(\d+) shards done", inspect)
    ok(line is not None, f"inspect has no line for {name}")
    idx, isha, it, ienc, icls, ibytes, done, total = line.groups()
    ok(t.index == int(idx) and t.model_sha256 == isha == sha, f"{name}: index/sha")
    ok(t.temperature == float(it) == 2.0, f"{name}: T {t.temperature} vs {it}")
    ok(t.encoding == ienc == enc and t.classes == int(icls) == 10, f"{name}: format")
    ok(t.record_bytes == int(ibytes) == nbytes, f"{name}: record bytes {t.record_bytes}")
    ok(t.preproc is not None and abs(t.preproc["scale"] - 1 / 255) < 1e-9
       and t.preproc["mean"] == [0.0] and t.preproc["std"] == [1.0] and t.preproc["channels"] == 1,
       f"{name}: preproc {t.preproc}")
    cov = c.coverage(name)
    ok(cov["done"] == int(done) == 3 and cov["shards"] == int(total) == 3, f"{name}: {cov}")
    ok(cov["records"] == 3000 and cov["fraction"] == 1.0 and cov["pending"] == 0, f"{cov}")
try:
    c.teacher()
    ok(False, "teacher() with three teachers should ask for a name")
except ValueError as e:
    ok("3 teachers" in str(e), str(e))
try:
    c.teacher("nope")
    ok(False, "an unknown teacher should raise")
except KeyError as e:
    ok("full, half, top3" in str(e), str(e))

x = sldata.load(x_path)
fp = sldata.fingerprint(x)
ok(c.rows == 3000 and c.dataset["shape"] == (3000, 28, 28) and c.dataset["dtype"] == "uint8",
   f"dataset {c.dataset}")
ok(c.dataset["sha256"] == fp["sha256"], "dataset fingerprint differs from the cache's")
ok(c.shard_rows == 1024 and c.nshards == 3, f"shards {c.shard_rows} {c.nshards}")

# --- distributions against `softlabel export` -----------------------------
for name in ("full", "half", "top3"):
    for temp in ("0", "1", "4.5"):
        ref = np.load(os.path.join(out, f"export-{name}-{temp}.npy"))
        mine = c.export(name, None if temp == "0" else float(temp))
        ok(mine.dtype == np.float32 and mine.shape == ref.shape == (3000, 10), "export shape")
        ok(not np.isnan(ref).any(), "C export has absent rows")
        np.testing.assert_array_max_ulp(mine, ref, maxulp=1)
        exact = float((mine == ref).mean())
        sums = np.abs(mine.astype(np.float64).sum(axis=1) - 1).max()
        ok(sums < 1e-5, f"{name} T={temp}: rows sum to 1 within {sums}")
        print(f"{name:5s} T={temp:3s}: equals softlabel export within 1 ulp "
              f"({exact:.4%} bit-identical), rows sum to 1 within {sums:.2g}")
        checks += 1
    # Re-softening changes the distribution: T=1 is sharper than T=4.5.
    p1, p45 = c.export(name, 1.0), c.export(name, 4.5)
    ok((p1.max(axis=1) >= p45.max(axis=1)).all(), f"{name}: T=1 not sharper than T=4.5")

# --- `softlabel get` ---------------------------------------------------------
for name in ("full", "half", "top3"):
    for s in (0, 1234, 2999):
        text = open(os.path.join(out, f"get-{name}-{s}")).read()
        ref = np.array([float(v) for v in text.split(":", 1)[1].split()])
        mine = c.probs([s], name)[0]
        ok(np.abs(mine - ref).max() <= 5.000001e-7, f"get {name} {s}: {mine} vs {ref}")
print("softlabel get: 9 distributions equal to its 6 decimals")

# --- batch reads by ids -----------------------------------------------------
rng = np.random.default_rng(1)
ids = rng.integers(0, 3000, 500)
ids[:3] = [2999, 0, 2999]  # unsorted, repeated, both ends
for name in ("full", "half", "top3"):
    full = c.export(name, 3.0)
    ok(np.array_equal(c.probs(ids, name, 3.0), full[ids]), f"{name}: batch read by ids")
    ok(np.array_equal(c.probs(np.array([], int), name).shape, (0, 10)), "empty batch")
# Dense records give back logits and their stored values.
v = c.values(ids, "full")
ok(np.array_equal(c.logits(ids, "full"), v * np.float32(2.0)), "logits = T * values")
e = np.exp(v.astype(np.float64) - v.max(axis=1, keepdims=True))
ok(np.abs(e / e.sum(axis=1, keepdims=True) - c.probs(ids, "full")).max() < 1e-6,
   "softmax(values) is the stored distribution")
try:
    c.values([0], "top3")
    ok(False, "values of a top-k record should raise")
except ValueError:
    checks += 1
for bad in (-1, 3000):
    try:
        c.probs([bad], "full")
        ok(False, f"sample {bad} should be out of range")
    except IndexError as e:
        ok("3000 rows" in str(e), str(e))
ok(c.record(5, "half") is not None and len(c.record(5, "half")) == 32, "record bytes")
ok(c.present([0, 1, 2999], "top3").all(), "present")
# A child of fork() that closes (or drops) the parent's Cache must leave the
# parent's reader slot alone: LMDB's lock file is shared.
before = c._env.readers()
ok(str(os.getpid()) in before, f"no reader slot of ours: {before}")
pid = os.fork()
if pid == 0:
    try:
        c.close()
        del c
        import gc
        gc.collect()
    finally:
        os._exit(0)
os.waitpid(pid, 0)
after = c._env.readers()
ok(after == before, f"a child's close changed the parent's reader slot:\n{before}\n{after}")
ok(np.array_equal(c.probs([1, 2], "full"), c.export("full")[[1, 2]]), "reads after the fork")
c.close()

# --- a damaged and a missing record, in a copy of the cache -----------------
bad = os.path.join(out, "damaged")
os.mkdir(bad)
shutil.copy(os.path.join(cache_dir, "data.mdb"), bad)
env = lmdb.open(bad, max_dbs=4)
labels = env.open_db(b"labels", create=False)
with env.begin(write=True) as w:
    for ti, s in ((0, 77), (2, 78)):
        key = struct.pack(">IQ", ti, s)
        rec = bytearray(w.get(key, db=labels))
        rec[14] ^= 0x40  # inside the body: the CRC no longer matches
        w.put(key, bytes(rec), db=labels)
    w.delete(struct.pack(">IQ", 1, 100), db=labels)
env.close()
d = softlabel.Cache(bad)
for name, s in (("full", 77), ("top3", 78)):
    try:
        d.probs([76, s, 79], name)
        ok(False, f"{name}: a corrupted record was read without error")
    except softlabel.CorruptRecordError as e:
        ok(e.corrupt and e.teacher == name and e.sample == s and "crc32" in str(e), str(e))
        print(f"corrupted record: {e}")
    try:
        d.export(name)
        ok(False, "export of a corrupted cache should raise")
    except softlabel.CorruptRecordError:
        checks += 1
try:
    d.probs([99, 100], "half")
    ok(False, "a missing record should raise")
except softlabel.MissingRecordError as e:
    ok(e.samples == [100] and "sample(s) 100" in str(e), str(e))
p = d.probs([99, 100, 101], "half", missing="nan")
ok(np.isnan(p[1]).all() and not np.isnan(p[[0, 2]]).any(), "missing='nan'")
p, have = d.probs([99, 100, 101], "half", missing="mask")
ok(have.tolist() == [True, False, True] and (p[1] == 0).all(), "missing='mask'")
ok(d.coverage("half")["records"] == 2999, "coverage counts records")
d.close()
try:
    softlabel.Cache(os.path.join(out, "nowhere"))
    ok(False, "a directory without a cache should raise")
except softlabel.CacheError as e:
    ok("no cache at" in str(e), str(e))
print(f"{checks} checks passed")

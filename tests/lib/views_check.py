#!/usr/bin/python3
"""Check a views cache against Python (softlabel.views) and PyTorch.

    views_check.py make STORE TEACHER DATA.npy PAIRS OUT_VIEWS.npy OUT_PAIRS.npy [--seed 1] [--add S:V]
        Read TEACHER's registration (views V, recipe, seed) from the cache,
        draw PAIRS (sample, view) pairs (seeded, without repeats; --add
        puts (S, V) first, in place of a drawn one), compute
        each view with softlabel.views.Recipe.apply on the raw row (u8), and
        write the views (PAIRS, H, W) and the pairs (PAIRS, 2) as .npy.

    views_check.py check STORE TEACHER ROWS OUT_PAIRS.npy REF.npy T [--atol 1e-5]
        Walk every label key of TEACHER (raw LMDB, db "labels"): each must
        be 16 bytes (u32 BE teacher, u64 BE sample, u32 BE view), and the
        keys must be exactly (sample, view) for sample < ROWS, view < V,
        once each. Then for each sampled pair the checked dense record's
        softmax(values) must equal REF's row (PyTorch's softmax(z/T) on
        the view computed here) within atol. Exit 1 with a reason.
"""
import struct
import sys

import lmdb
import numpy as np

from softlabel import record as rec
from softlabel.cache import Cache
from softlabel.views import Recipe


def die(msg):
    print("views_check: " + msg, file=sys.stderr)
    sys.exit(1)


def opt(args, name, default):
    if name in args:
        i = args.index(name)
        v = args[i + 1]
        del args[i:i + 2]
        return type(default)(v)
    return default


def teacher_of(store, name):
    with Cache(store) as c:
        t = c.teacher(name)
        if t.views < 1:
            die(f"teacher {name} has no views")
        return t.index, t.views, Recipe.parse(t.view_recipe), t.view_seed, t.format


def cmd_make(a):
    seed = opt(a, "--seed", 1)
    add = opt(a, "--add", "")
    store, name, data, npairs, out_views, out_pairs = a
    npairs = int(npairs)
    _, V, recipe, vseed, _ = teacher_of(store, name)
    rows = np.load(data)
    n = rows.shape[0]
    g = np.random.default_rng(seed)
    flat = g.choice(n * V, size=npairs, replace=False)
    pairs = np.stack([flat // V, flat % V], axis=1).astype(np.int64)
    if add:
        s, v = (int(x) for x in add.split(":"))
        keep = [i for i in range(npairs) if (pairs[i] != (s, v)).any()]
        pairs = np.concatenate([[[s, v]], pairs[keep][:npairs - 1]]).astype(np.int64)
    views = np.stack([recipe.apply(rows[s], vseed, int(s), int(v))
                      for s, v in pairs]).astype(rows.dtype)
    changed = sum(int(not np.array_equal(views[i], rows[pairs[i, 0]]))
                  for i in range(npairs))
    if changed == 0:
        die("no sampled view differs from its row: the recipe did nothing")
    np.save(out_views, views)
    np.save(out_pairs, pairs)
    print(f"{npairs} (sample, view) pairs of {n} x {V}, recipe {recipe}, "
          f"seed {vseed}: {changed} views differ from their row")


def cmd_check(a):
    atol = opt(a, "--atol", 1e-5)
    store, name, nrows, pairs_f, ref_f, T = a
    nrows, T = int(nrows), float(T)
    index, V, _, _, fmt = teacher_of(store, name)
    env = lmdb.open(store, readonly=True, lock=False, max_dbs=4)
    labels = env.open_db(b"labels", create=False)
    seen = np.zeros((nrows, V), np.uint8)
    recs = {}
    pairs = np.load(pairs_f)
    want = {(int(s), int(v)) for s, v in pairs}
    prefix = struct.pack(">I", index)
    with env.begin(db=labels) as txn:
        cur = txn.cursor()
        if cur.set_range(prefix):
            for k, val in cur:
                if k[:4] != prefix:
                    break
                if len(k) != 16:
                    die(f"a key of {len(k)} bytes for a teacher with views")
                _, s, v = struct.unpack(">IQI", k)
                if s >= nrows or v >= V:
                    die(f"record ({s}, {v}) outside {nrows} rows x {V} views")
                if seen[s, v]:
                    die(f"record ({s}, {v}) twice")
                seen[s, v] = 1
                if (s, v) in want:
                    recs[(s, v)] = bytes(val)
    missing = np.argwhere(seen == 0)
    if len(missing):
        die(f"{len(missing)} (sample, view) records missing, first "
            f"{tuple(int(x) for x in missing[0])}")
    ref = np.load(ref_f)
    worst = 0.0
    for i, (s, v) in enumerate(pairs):
        raw = recs[(int(s), int(v))]
        rec.check(raw, fmt)
        p = rec.probs([raw], fmt, T, T)[0]
        d = float(np.abs(p.astype(np.float64) - ref[i]).max())
        worst = max(worst, d)
        if d > atol:
            die(f"record ({s}, {v}) differs from PyTorch on its view by {d:.3g} "
                f"(atol {atol:g})")
    print(f"{nrows * V} records, one per (sample, view); {len(pairs)} sampled "
          f"equal PyTorch on their views within {atol:g} (worst {worst:.3g})")


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("make", "check"):
        die(__doc__)
    (cmd_make if sys.argv[1] == "make" else cmd_check)(sys.argv[2:])


if __name__ == "__main__":
    main()

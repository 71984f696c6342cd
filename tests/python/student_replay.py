#!/usr/bin/python3
"""A student replaying a views cache (SOFTLABEL_STUDENT_DUMP_INPUTS) against
the cache and softlabel.views: for every row of the first batch of every
epoch (train.c: dump_batch),

  - its view is (epoch + offset) mod V, offset = seed_of(view_seed,
    2^64 - 1, 0) mod V (augment.h), with V, recipe and seed the cache
    teacher's registration;
  - its float32 input equals, byte for byte, the preprocessed view that
    softlabel.views computes for (view_seed, sample, view): the pixels the
    worker labeled;
  - where it has a target, the target equals, within 1e-6, the teacher's
    distribution of that (sample, view) record re-softened to T (read with
    softlabel.cache, which shares no code with the trainer).

    student_replay.py DUMP DATA.npy STORE TEACHER T SCALE MEAN STD EPOCHS

Prints what it checked (and how many targets differ from view 0's, the
proof that views were read); exits 1 with the first difference.
"""
import sys

import numpy as np

from softlabel.cache import Cache
from softlabel.views import Recipe, seed_of

dump, data, store, name = sys.argv[1:5]
T = float(sys.argv[5])
f = np.float32
scale, mean, std = f(float(sys.argv[6])), f(float(sys.argv[7])), f(float(sys.argv[8]))
epochs = int(sys.argv[9])
rows = np.load(data)
if rows.ndim == 3:
    rows = rows[:, None]
N, C, H, W = rows.shape
D = C * H * W
with Cache(store) as c:
    t = c.teacher(name)
    V, recipe, vseed = t.views, Recipe.parse(t.view_recipe), t.view_seed
    if V < 1:
        sys.exit("teacher %s has no views" % name)
    offset = seed_of(vseed, 2**64 - 1, 0) % V
    buf = open(dump, "rb").read()
    off, seen, checked, targets, other = 0, [], 0, 0, 0
    while off < len(buf):
        epoch, B, D_, K = (int(v) for v in np.frombuffer(buf, "<u4", 4, off))
        off += 16
        if D_ != D:
            sys.exit("dump: rows of %d values, the dataset's have %d" % (D_, D))
        samples = np.frombuffer(buf, "<u8", B, off).astype(np.int64)
        off += 8 * B
        views = np.frombuffer(buf, "<u4", B, off)
        off += 4 * B
        x = np.frombuffer(buf, "<f4", B * D, off).reshape(B, C, H, W)
        off += 4 * B * D
        p = np.frombuffer(buf, "<f4", B * K, off).reshape(B, K)
        off += 4 * B * K
        has = np.frombuffer(buf, "u1", B, off)
        off += B
        seen.append(epoch)
        want_view = (epoch + offset) % V
        if not (views == want_view).all():
            sys.exit("epoch %d: views %s, want all %d" % (epoch, sorted(set(views.tolist())), want_view))
        for j in range(B):
            i, v = int(samples[j]), int(views[j])
            want = (recipe.apply(rows[i], vseed, i, v).astype(f) * scale - mean) / std
            if want.tobytes() != x[j].tobytes():
                sys.exit("epoch %d sample %d view %d: the input is not the labeled view" % (epoch, i, v))
            checked += 1
            if not has[j]:
                continue
            q = c.probs([i], name, temperature=T, view=v)[0]
            if np.abs(q - p[j]).max() > 1e-6:
                sys.exit("epoch %d sample %d view %d: target differs from the record by %g" %
                         (epoch, i, v, np.abs(q - p[j]).max()))
            q0 = c.probs([i], name, temperature=T, view=0)[0]
            other += np.abs(q0 - p[j]).max() > 1e-6
            targets += 1
if seen != list(range(epochs)):
    sys.exit("dumped epochs %s, want 0..%d" % (seen, epochs - 1))
print("%d rows of %d epochs replayed views (V %d, offset %d) of %s; %d targets equal "
      "their (sample, view) record, %d of them differ from view 0's" %
      (checked, epochs, V, offset, recipe, targets, other))
print("other %d" % other)

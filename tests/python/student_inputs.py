#!/usr/bin/python3
"""The inputs softlabel-student trained on (SOFTLABEL_STUDENT_DUMP_INPUTS)
against softlabel.views, an independent implementation of the views: for
every row of the first batch of every epoch (train.c: dump_batch), the view index must be
view_of(epoch) = epoch (no views cache), and the float32 input must equal,
byte for byte, ((float32(view) * scale) - mean) / std of the view
softlabel.views computes for (seed, sample, view).

    student_inputs.py DUMP DATA.npy RECIPE SEED SCALE MEAN STD EPOCHS

RECIPE "none": the rows as stored. Prints what it checked; exits 1 with the
first difference.
"""
import sys

import numpy as np

from softlabel.views import Recipe

dump, data, recipe, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
f = np.float32
scale, mean, std = f(float(sys.argv[5])), f(float(sys.argv[6])), f(float(sys.argv[7]))
epochs = int(sys.argv[8])
rows = np.load(data)
if rows.ndim == 3:
    rows = rows[:, None]
N, C, H, W = rows.shape
D = C * H * W
r = Recipe.parse(recipe)
buf = open(dump, "rb").read()
off, seen, changed, checked = 0, [], 0, 0
while off < len(buf):
    epoch, B, D_, C_ = (int(v) for v in np.frombuffer(buf, "<u4", 4, off))
    off += 16
    if D_ != D:
        sys.exit("dump: rows of %d values, the dataset's have %d" % (D_, D))
    samples = np.frombuffer(buf, "<u8", B, off)
    off += 8 * B
    views = np.frombuffer(buf, "<u4", B, off)
    off += 4 * B
    x = np.frombuffer(buf, "<f4", B * D, off).reshape(B, C, H, W)
    off += 4 * B * D + 4 * B * C_ + B  # then targets and has
    seen.append(int(epoch))
    if not (views == epoch).all():
        sys.exit("epoch %d: views %s, want all %d" % (epoch, sorted(set(views.tolist())), epoch))
    for j in range(B):
        i = int(samples[j])
        if i >= N:
            sys.exit("epoch %d: sample %d of %d rows" % (epoch, i, N))
        v = r.apply(rows[i], seed, i, int(views[j])) if recipe != "none" else rows[i]
        want = (v.astype(f) * scale - mean) / std
        if want.tobytes() != x[j].tobytes():
            d = np.abs(want.astype(np.float64) - x[j])
            sys.exit("epoch %d sample %d view %d: %d of %d inputs differ, max %g" %
                     (epoch, i, views[j], int((d != 0).sum()), D, d.max()))
        plain = (rows[i].astype(f) * scale - mean) / std
        changed += plain.tobytes() != x[j].tobytes()
        checked += 1
if seen != list(range(epochs)):
    sys.exit("dumped epochs %s, want 0..%d" % (seen, epochs - 1))
print("%d rows of %d epochs equal to softlabel.views (%s, seed %d); %d differ from the stored row" %
      (checked, epochs, recipe, seed, changed))
print("changed %d" % changed)

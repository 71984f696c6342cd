#!/usr/bin/python3
"""Two SOFTLABEL_STUDENT_DUMP_INPUTS dumps of runs that should train on the
same rows with the same targets (a cached and an online run): the same
samples, views and inputs byte for byte, every row with a target, and the
targets within TOL (absolute, probabilities). Prints the largest
difference and how many targets differ at all.

    compare_targets.py A.dump B.dump TOL
"""
import sys

import numpy as np


def batches(path):
    buf = open(path, "rb").read()
    off, out = 0, []
    while off < len(buf):
        epoch, B, D, C = (int(v) for v in np.frombuffer(buf, "<u4", 4, off))
        off += 16
        s = np.frombuffer(buf, "<u8", B, off); off += 8 * B
        v = np.frombuffer(buf, "<u4", B, off); off += 4 * B
        x = np.frombuffer(buf, "<f4", B * D, off); off += 4 * B * D
        p = np.frombuffer(buf, "<f4", B * C, off).reshape(B, C); off += 4 * B * C
        h = np.frombuffer(buf, "u1", B, off); off += B
        out.append((epoch, s, v, x, p, h))
    return out


a, b, tol = batches(sys.argv[1]), batches(sys.argv[2]), float(sys.argv[3])
if len(a) != len(b) or not a:
    sys.exit("dumps of %d and %d batches" % (len(a), len(b)))
worst, differ, n = 0.0, 0, 0
for (ea, sa, va, xa, pa, ha), (eb, sb, vb, xb, pb, hb) in zip(a, b):
    if ea != eb or not (sa == sb).all() or not (va == vb).all() or xa.tobytes() != xb.tobytes():
        sys.exit("epoch %d: the batches differ in rows, views or inputs" % ea)
    if not ha.all() or not hb.all():
        sys.exit("epoch %d: rows without a target (%d, %d)" % (ea, int((ha == 0).sum()), int((hb == 0).sum())))
    if not np.allclose(pa.sum(1), 1, atol=1e-5):
        sys.exit("epoch %d: targets that are not distributions" % ea)
    d = np.abs(pa.astype(np.float64) - pb)
    worst = max(worst, float(d.max()))
    differ += int((d != 0).sum())
    n += d.size
print("targets of %d rows: %d of %d values differ, by at most %.3g (tolerance %g)" %
      (sum(len(t[1]) for t in a), differ, n, worst, tol))
if worst > tol:
    sys.exit("targets differ by %.3g > %g" % (worst, tol))

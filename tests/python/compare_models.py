#!/usr/bin/python3
"""Two safetensors files of the same architecture: the largest difference
of any parameter relative to that tensor's largest magnitude, printed, and
checked against TOL.

    compare_models.py A.safetensors B.safetensors TOL
"""
import json
import struct
import sys

import numpy as np


def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    head.pop("__metadata__", None)
    out = {}
    for k, t in head.items():
        a, b = t["data_offsets"]
        dt = {"F32": "<f4", "I64": "<i8"}[t["dtype"]]
        out[k] = np.frombuffer(raw[8 + n + a:8 + n + b], dt).reshape(t["shape"])
    return out


a, b, tol = load(sys.argv[1]), load(sys.argv[2]), float(sys.argv[3])
if a.keys() != b.keys():
    sys.exit("different tensors: %s / %s" % (sorted(a), sorted(b)))
worst, where = 0.0, ""
for k in a:
    x, y = a[k].astype(np.float64), b[k].astype(np.float64)
    r = float(np.abs(x - y).max() / max(np.abs(x).max(), 1e-30))
    if r > worst:
        worst, where = r, k
print("largest relative parameter difference %.3g (%s), tolerance %g" % (worst, where, tol))
if worst > tol:
    sys.exit("the models differ by %.3g > %g" % (worst, tol))

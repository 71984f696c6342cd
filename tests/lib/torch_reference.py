#!/usr/bin/python3
"""A cache against PyTorch: every record of TEACHER must equal the PyTorch
teacher's softmax(z / T) within TOL, one record per sample.

    torch_reference.py CACHE TEACHER MODEL.safetensors X.npy T TOL

The teacher is nn.Sequential built from the file (as torch_teacher.py
builds it), run on the rows preprocessed by the file's metadata (or x/255).
Prints the largest error; exit 1 on any difference above TOL or a missing
record.
"""
import sys

import numpy as np
import torch

import softlabel
from softlabel import data as sldata
from softlabel.safetensors import metadata
from softlabel.torch import load_file

path, name, model_path, x_path, T, tol = sys.argv[1:7]
T, tol = float(T), float(tol)
torch.set_num_threads(2)
sd = load_file(model_path)
idx = sorted({int(k.split(".")[0]) for k in sd})
layers = []
for j, i in enumerate(idx):
    w = sd[f"{i}.weight"]
    layers.append(torch.nn.Linear(w.shape[1], w.shape[0]))
    if j < len(idx) - 1:
        layers.append(torch.nn.ReLU())
model = torch.nn.Sequential(*layers).eval()
model.load_state_dict({f"{2 * j}.{p}": sd[f"{i}.{p}"].float() for j, i in enumerate(idx)
                       for p in ("weight", "bias")})
meta = metadata(model_path)
pre = sldata.preproc_fill(float(meta["input_scale"]) if "input_scale" in meta else None,
                         meta.get("input_mean"), meta.get("input_std"), np.uint8)
x = sldata.load(x_path)
xf = sldata.to_f32(x.reshape(len(x), -1), *pre)
with torch.no_grad():
    ref = torch.softmax(model(torch.from_numpy(xf)) / T, 1).numpy()
c = softlabel.Cache(path)
cov = c.coverage(name)
got = c.export(name)
missing = int(np.isnan(got).any(axis=1).sum())
err = float(np.nanmax(np.abs(got - ref)))
print(f"teacher {name}: {cov['records']} records for {c.rows} rows, {cov['done']}/{cov['shards']} "
      f"shards done; max abs error against PyTorch {err:.3g}")
if missing or cov["records"] != c.rows or err > tol:
    sys.exit(f"FAIL: {missing} rows missing, error {err} (tolerance {tol})")

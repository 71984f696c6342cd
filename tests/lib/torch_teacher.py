#!/usr/bin/python3
"""A PyTorch teacher labeling through softlabel.worker (for the tests, and
an example of the README's GPU teacher):

    torch_teacher.py CONNECT MODEL.safetensors NAME T ENCODING WORKER_NAME [SECRET SERVER]

Builds nn.Sequential(Linear, ReLU, ..., Linear) from the file's tensor
shapes, loads it with softlabel.torch.load_file and labels with
softlabel.worker.Worker: the same teacher (model SHA-256, preprocessing from
the file's metadata, T, encoding) as `softlabel-teacher --model` of that
file, so both kinds of worker serve one teacher name. Exit: Worker.run's.
SL_TEST_STALL_S=S makes the first batch hang S seconds inside the teacher.
"""
import os
import sys
import time

import torch

from softlabel.safetensors import metadata
from softlabel.torch import load_file
from softlabel.worker import Worker, torch_teacher

ep, path, name, T, enc, wname = sys.argv[1:7]
curve = sys.argv[7:9] or [None, None]
torch.set_num_threads(1)
sd = load_file(path)
idx = sorted({int(k.split(".")[0]) for k in sd})
layers = []
for j, i in enumerate(idx):
    w = sd[f"{i}.weight"]
    layers.append(torch.nn.Linear(w.shape[1], w.shape[0]))
    if j < len(idx) - 1:
        layers.append(torch.nn.ReLU())
model = torch.nn.Sequential(*layers)
model.load_state_dict({f"{2 * j}.{p}": sd[f"{i}.{p}"].float() for j, i in enumerate(idx)
                       for p in ("weight", "bias")})
meta = metadata(path)
pre = tuple(float(meta[k]) if k in meta else None
            for k in ("input_scale", "input_mean", "input_std"))
fn = torch_teacher(model)
stall = float(os.environ.get("SL_TEST_STALL_S", "0"))
if stall > 0:
    # Tests of the lease rule: the first batch hangs in the teacher.
    inner, first = fn, [True]

    def fn(x):
        if first[0]:
            first[0] = False
            time.sleep(stall)
        return inner(x)
w = Worker(ep, teacher=name, fn=fn, model_file=path,
           classes=model[-1].out_features, input_shape=(model[0].in_features,),
           temperature=float(T), encoding=enc, preproc=pre, name=wname, batch=250,
           curve_secret=curve[0], curve_server=curve[1])
sys.exit(w.run())

#!/usr/bin/python3
"""A PyTorch teacher labeling through softlabel.worker (for the tests, and
an example of the README's GPU teacher):

    torch_teacher.py CONNECT MODEL NAME T ENCODING WORKER_NAME
        [--curve-secret F --curve-server F] [--input-mean M[,M..]] [--input-std S[,S..]]
        [--dataset LOCAL_COPY] [--connect-timeout S]

MODEL.safetensors: nn.Sequential(Linear, ReLU, ..., Linear) built from the
file's tensor shapes and loaded with softlabel.torch.load_file, the
preprocessing from its metadata. MODEL.onnx: the PyTorch module that
tests/lib/onnx_models.py exported it from (MODEL.pt beside it), rows shaped
as the module takes them ([3, 28, 28] for "rgb", [1, 28, 28] otherwise).
Either way the worker sends MODEL's SHA-256, so it serves the same teacher
as `softlabel-teacher --model MODEL` with the same T, encoding and
preprocessing. SL_TEST_STALL_S=S makes the first batch hang S seconds inside
the teacher; SL_TEST_LIE=1 makes it a lying worker: confident garbage (a
one-hot logit of 20 on the class after the teacher's choice) under the real
teacher's name and model SHA-256, SL_TEST_LIE_DELAY_S=S seconds per batch.
Exit: Worker.run's.
"""
import argparse
import os
import sys
import time

import torch

from softlabel.safetensors import metadata
from softlabel.torch import load_file
from softlabel.worker import Worker, torch_teacher

ap = argparse.ArgumentParser()
for a in ("connect", "model", "name", "T", "encoding", "worker_name"):
    ap.add_argument(a)
ap.add_argument("--curve-secret")
ap.add_argument("--curve-server")
ap.add_argument("--input-mean")
ap.add_argument("--input-std")
ap.add_argument("--dataset")
ap.add_argument("--connect-timeout", type=float, default=300)
a = ap.parse_args()
torch.set_num_threads(1)
if a.model.endswith(".onnx"):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import onnx_models
    model, st = onnx_models.load_module(a.model)
    shape = (3, 28, 28) if st["kind"] == "rgb" else (1, 28, 28)
    classes = 10
    pre = (None, a.input_mean, a.input_std)
else:
    sd = load_file(a.model)
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
    meta = metadata(a.model)
    pre = (float(meta["input_scale"]) if "input_scale" in meta else None,
           a.input_mean or meta.get("input_mean"), a.input_std or meta.get("input_std"))
    shape, classes = (model[0].in_features,), model[-1].out_features
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
if os.environ.get("SL_TEST_LIE") == "1":
    honest, delay = fn, float(os.environ.get("SL_TEST_LIE_DELAY_S", "0"))

    def fn(x):
        time.sleep(delay)
        z = honest(x)
        lie = torch.zeros_like(torch.as_tensor(z))
        lie[torch.arange(len(lie)), (torch.as_tensor(z).argmax(1) + 1) % lie.shape[1]] = 20
        return lie.numpy() if not isinstance(z, torch.Tensor) else lie
w = Worker(a.connect, teacher=a.name, fn=fn, model_file=a.model, classes=classes,
           input_shape=shape, temperature=float(a.T), encoding=a.encoding, preproc=pre,
           name=a.worker_name, batch=250, curve_secret=a.curve_secret,
           curve_server=a.curve_server, dataset=a.dataset,
           connect_timeout_s=a.connect_timeout)
sys.exit(w.run())

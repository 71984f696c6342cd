#!/usr/bin/python3
"""A convolutional student softlabel wrote, in PyTorch (Debian's python3-torch).

    torch_cnn.py MODULE.py MODEL.safetensors IMAGES.idx.gz OURS_PROBS.npy OURS_PRED.npy STEPS

Runs the Python that softlabel-student --print-torch wrote (it defines
`model`), loads the file's state_dict into it with strict=True (every name,
shape and buffer must match: running_mean, running_var,
num_batches_tracked), applies the preprocessing in the file's metadata,
and compares model.eval()'s softmax on every image with softlabel's
--evaluate --probs: argmax identical and probabilities within 1e-5.
num_batches_tracked must equal STEPS, the training steps softlabel took.
The file is read with softlabel.torch.load_file, as the README's snippet
does (Debian 12 has no safetensors module).
"""
import gzip
import struct
import sys

import numpy as np
import torch

from softlabel.safetensors import metadata
from softlabel.torch import load_file


def read_images(path):
    data = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    n, r, c = struct.unpack(">III", data[4:16])
    return torch.frombuffer(bytearray(data[16:]), dtype=torch.uint8).reshape(n, 1, r, c)


def main(module_py, model_path, images, probs_path, pred_path, steps):
    scope = {}
    exec(open(module_py).read(), scope)
    model = scope["model"]
    tensors, meta = load_file(model_path), metadata(model_path)
    assert meta.get("format") == "softlabel-cnn", meta
    model.load_state_dict(tensors, strict=True)
    bn = [k for k in tensors if k.endswith("num_batches_tracked")]
    assert bn, "no BatchNorm in the test model"
    for k in bn:
        assert int(tensors[k]) == steps, f"{k} = {int(tensors[k])}, trained {steps} steps"
    model.eval()
    scale = float(meta["input_scale"])
    mean = torch.tensor([float(v) for v in meta["input_mean"].split(",")]).reshape(1, -1, 1, 1)
    std = torch.tensor([float(v) for v in meta["input_std"].split(",")]).reshape(1, -1, 1, 1)
    x = (read_images(images).float() * scale - mean) / std
    with torch.no_grad():
        probs = torch.cat([torch.softmax(model(x[i:i + 500]), 1) for i in range(0, len(x), 500)]).numpy()
    ours = np.load(probs_path)
    ours_pred = np.load(pred_path)
    assert ours.shape == probs.shape, (ours.shape, probs.shape)
    diff = float(np.abs(ours - probs).max())
    same = int((probs.argmax(1) == ours_pred).sum())
    print(f"pytorch vs softlabel on {len(x)} images: argmax identical on {same}, "
          f"max |p - p'| = {diff:.3g}")
    ok = same == len(x) and diff <= 1e-5
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main(*sys.argv[1:6], int(sys.argv[6]))

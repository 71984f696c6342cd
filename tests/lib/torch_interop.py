#!/usr/bin/python3
"""PyTorch interop, both ways, with the real torch (Debian's python3-torch).

    torch_interop.py load  MODEL.safetensors IMAGES.idx.gz OURS_PRED.npy
        Build nn.Sequential(Linear, ReLU, ..., Linear) from the file's shapes,
        load_state_dict(strict=True), apply the preprocessing in the metadata,
        predict, and compare with softlabel-student's predictions.

    torch_interop.py write OUT.safetensors IMAGES.idx.gz TORCH_PRED.npy DTYPE
        Make a PyTorch model with a Dropout module inside (so the Linear
        indices are 0, 3, 6), save its state_dict in safetensors exactly as
        safetensors.torch.save_file lays it out (metadata {"format": "pt"}),
        in DTYPE (float32, float16 or bfloat16), and write torch's predictions.

The safetensors writer is inlined because Debian 12 does not package the
safetensors module; the layout it writes is the format's, byte for byte.
"""
import gzip
import json
import struct
import sys

import numpy as np
import torch

DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_images(path):
    data = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    n, r, c = struct.unpack(">III", data[4:16])
    return torch.frombuffer(bytearray(data[16:]), dtype=torch.uint8).reshape(n, r * c)


def load_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    body = bytearray(raw[8 + n:])
    tensors = {}
    for name, t in header.items():
        b, e = t["data_offsets"]
        tensors[name] = torch.frombuffer(body[b:e], dtype=DT[t["dtype"]]).reshape(t["shape"]).clone()
    return tensors, meta


def save_safetensors(path, tensors):
    names = sorted(tensors)  # safetensors orders by dtype then name; one dtype here
    header, offset, blobs = {}, 0, []
    for name in names:
        t = tensors[name].contiguous()
        blob = t.view(torch.uint8).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        dtype = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16"}[t.dtype]
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def sequential_from(tensors):
    idx = sorted({int(k.split(".")[0]) for k in tensors})
    mods = []
    for j, i in enumerate(idx):
        out_f, in_f = tensors[f"{i}.weight"].shape
        while len(mods) < i:
            mods.append(torch.nn.ReLU() if len(mods) % 2 else torch.nn.Identity())
        mods.append(torch.nn.Linear(in_f, out_f))
    model = torch.nn.Sequential(*mods)
    model.load_state_dict({k: v.float() for k, v in tensors.items()}, strict=True)
    return model


def cmd_load(model_path, images, ours_path):
    tensors, meta = load_safetensors(model_path)
    assert meta.get("format") == "softlabel-mlp", meta
    idx = sorted({int(k.split(".")[0]) for k in tensors})
    assert idx == list(range(0, 2 * len(idx), 2)), idx  # Linear, ReLU, Linear, ...
    layers = []
    for i in idx:
        layers += [torch.nn.Linear(tensors[f"{i}.weight"].shape[1], tensors[f"{i}.weight"].shape[0]), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    model.load_state_dict(tensors, strict=True)
    scale, mean, std = (float(meta[k]) for k in ("input_scale", "input_mean", "input_std"))
    x = (read_images(images).float() * scale - mean) / std
    with torch.no_grad():
        pred = model(x).argmax(1).numpy()
    ours = np.load(ours_path)
    agree = int((pred == ours).sum())
    print(f"pytorch loaded {model_path} ({meta['arch']}); predictions agree on {agree}/{len(pred)}")
    # Different summation orders may flip an exact near-tie, nothing more.
    if agree < len(pred) - 2:
        sys.exit("too many disagreements")


def cmd_write(out, images, pred_path, dtype):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                                torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.1),
                                torch.nn.Linear(32, 10)).eval()
    dt = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[dtype]
    sd = {k: v.to(dt) for k, v in model.state_dict().items()}
    save_safetensors(out, sd)
    # Predict with the weights as stored (rounded to dtype), in float32.
    model.load_state_dict({k: v.float() for k, v in sd.items()})
    x = read_images(images).float() / 255.0
    with torch.no_grad():
        pred = model(x).argmax(1).numpy().astype(np.int32)
    np.save(pred_path, pred)
    print(f"pytorch wrote {out} ({dtype}, keys {sorted(sd)})")


if __name__ == "__main__":
    if sys.argv[1] == "load":
        cmd_load(*sys.argv[2:5])
    else:
        cmd_write(*sys.argv[2:6])

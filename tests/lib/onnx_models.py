#!/usr/bin/python3
"""Whole models built in PyTorch, exported to ONNX, as references for
softlabel's graph engine (issue 10). Debian's python3-torch 1.13,
python3-onnx 1.12, python3-numpy and python3-lmdb; nothing else.

    onnx_models.py export KIND OUT.onnx [--opset 13|13,17|13-17] [--seed 1]
                   [--data IDX.gz|.npy] [--labels IDX.gz|.npy] [--train-steps N]
                   [--input-mean 0] [--input-std 1] [--state EARLIER.pt]
                   [--torch-fold-bn]
        KIND: mlp, resnet, mobilenet, vit, rgb (a small CNN on three
        channels, [N, 3, 28, 28]), slow (a deliberately slow chain
        of 2048-wide Gemms, --depth 64 by default), or mlp-safetensors (a Linear/ReLU MLP written
        as a softlabel safetensors model, for checking caches of today's
        teachers). Weights are random (seeded); BatchNorm layers get
        non-trivial running statistics (forward passes in train mode, on
        --data when given, on noise otherwise) and random affine
        parameters, so that folding BN into a Conv is really exercised.
        --train-steps trains with Adam on --data/--labels first. The
        PyTorch module's state goes next to the model, OUT.pt (kind, seed,
        hyper-parameters, state_dict): `predict` rebuilds the module from
        it, so the reference never comes from the ONNX file. --state
        re-exports the weights of an earlier export (another opset);
        --torch-fold-bn lets torch fold BatchNorm into Conv as its default
        export does (without it the BatchNormalization nodes stay). Several
        opsets at once: OUT holds {opset} (m-{opset}.onnx, m-{opset}.pt).

    onnx_models.py ops [--detail] FILE.onnx...
        Op types with counts and the opset of each file; --detail adds
        the attributes that matter to an engine (Conv groups/dilations,
        Clip bounds as inputs or attributes, Gemm transB, Softmax axis...).

    onnx_models.py predict MODEL DATA OUT.npy [--temperature 1]
                   [--input-scale 1/255] [--input-mean 0] [--input-std 1]
                   [--logits Z.npy] [--batch 500] [--threads 2]
        PyTorch's softmax(z/T) (float32 [N, classes]) for DATA (IDX[.gz] or
        .npy of uint8 rows [N, 28, 28] or [N, C, 28, 28]), with the C side's
        preprocessing x = (pixel * scale - mean[c]) / std[c] in float32
        (--input-mean and --input-std: one value, or a list, one a channel). MODEL is
        the .onnx or .safetensors `export` wrote (its .pt is read) or the
        .pt itself.

    onnx_models.py run-onnx MODEL.onnx DATA OUT.npy [--temperature 1] [--dump DIR] ...
    onnx_models.py check-export DATA MODEL.onnx... [--temperature 1] ...
        A plain reference interpreter of the ONNX graph (ONNX semantics
        written out, node by node, on torch tensors): run-onnx writes its
        softmax(z/T) (and with --dump every node's output for the first
        batch, to find where an engine goes wrong); check-export compares
        each file with its PyTorch module at batch 500, 7 and 1. This checks
        the exports; softlabel is checked against the module itself.

    onnx_models.py compare REF.npy OURS.npy [--atol 1e-5]
        Max abs difference and argmax agreement of two probability arrays.
        Exit 1 with a one-line reason on failure.

    onnx_models.py check-cache STORE TEACHER REF.npy T [--atol 1e-5]
        Read the logit cache (LMDB, db "labels", keys u32 BE teacher index +
        u64 BE sample), decode every dense f32 record of TEACHER (an index,
        or a name looked up in meta), check header and CRC, and compare
        softmax(values) with REF. Exactly one record per sample 0..N-1 and
        no other record of that teacher. Exit 1 with a reason on failure.

Exit codes: 0 success, 1 failed check or runtime error, 2 bad usage.
"""
import argparse
import gzip
import os
import struct
import sys
import time
import warnings
import zlib

import numpy as np
import torch
from torch import nn

CLASSES = 10
KINDS = ("mlp", "resnet", "mobilenet", "vit", "slow", "mlp-safetensors", "rgb")


def die(msg, code=1):
    print(f"onnx_models: {msg}", file=sys.stderr)
    sys.exit(code)


# ---------------------------------------------------------------------------
# Data: IDX[.gz] (as MNIST ships it) or .npy, uint8 rows.

def read_idx(path):
    """An IDX ubyte file (gzipped or not) as a numpy array."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        die(f"{path}: not an IDX ubyte file")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    return body[:int(np.prod(shape))].reshape(shape)


def read_rows(path, limit=None):
    """uint8 images [N, C, 28, 28] from IDX[.gz] or .npy ([N,28,28] or
    [N,C,28,28], C 1 or 3)."""
    a = np.load(path) if path.endswith(".npy") else read_idx(path)
    if a.dtype != np.uint8:
        die(f"{path}: dtype {a.dtype}, expected uint8 images")
    if a.ndim == 3:
        a = a[:, None]
    if a.ndim != 4 or a.shape[1] not in (1, 3) or a.shape[2:] != (28, 28):
        die(f"{path}: shape {a.shape}, expected [N, 28, 28] or [N, C, 28, 28]")
    return a[:limit] if limit else a


def floats(text):
    """'0.485,0.456,0.406' (or one value): a float32 list for argparse."""
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of numbers")


def read_labels(path):
    a = np.load(path) if path.endswith(".npy") else read_idx(path)
    return a.astype(np.int64).reshape(-1)


def preprocess(rows, scale, mean, std):
    """Exactly the C side's float32 arithmetic: ((float)x * scale - mean[c]) /
    std[c], c the channel (rows [N, C, H, W]); one mean or std for all."""
    def per_channel(v):
        v = np.asarray(v if isinstance(v, (list, tuple)) else [v], dtype=np.float32)
        return v.reshape(1, -1, 1, 1) if rows.ndim == 4 else v.reshape(-1)[0]
    x = rows.astype(np.float32) * np.float32(scale)
    x = (x - per_channel(mean)) / per_channel(std)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


# ---------------------------------------------------------------------------
# The models. Small widths (the machine has 2 cores), faithful structure.

class RGB(nn.Sequential):
    """A small CNN on three channels, [B, 3, 28, 28]: what per-channel
    preprocessing (ImageNet-style mean and std lists) is for."""
    def __init__(self):
        super().__init__(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, CLASSES))


class MLP(nn.Module):
    """Flatten, Linear, BatchNorm1d, ReLU, Dropout, ...: the BatchNorm1d MLP
    that today's safetensors loader refuses (num_batches_tracked)."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(128, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(64, CLASSES))

    def forward(self, x):  # (B, 1, 28, 28) -> (B, 10)
        return self.net(x)


class BasicBlock(nn.Module):
    """ResNet-18's block: conv3x3-BN-ReLU-conv3x3-BN, + identity or a
    downsample branch, ReLU. groups/dilation go to the first (groups) and
    second (dilation) conv; avg_down puts AvgPool2d before the 1x1 conv
    (ResNet-D, as timm's avg_down does) instead of striding the conv."""

    def __init__(self, cin, cout, stride=1, groups=1, dilation=1, avg_down=False):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            if avg_down:
                self.downsample = nn.Sequential(
                    nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False),
                    nn.Conv2d(cin, cout, 1, 1, bias=False), nn.BatchNorm2d(cout))
            else:
                self.downsample = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + idt)


class ResNet(nn.Module):
    """ResNet-18-style for 1x28x28: stem conv3x3+BN+ReLU+MaxPool (28->14),
    three stages of two BasicBlocks (16@14, 32@7, 64@4), one grouped conv
    (groups=4), two dilated convs (dilation 2), downsample branches 1x1
    stride-2 conv+BN and AvgPool2d(ceil)+1x1 conv+BN, GlobalAveragePool,
    Flatten, Linear (Gemm)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1))                                    # 16 x 14 x 14
        self.layer1 = nn.Sequential(BasicBlock(16, 16), BasicBlock(16, 16, dilation=2))
        self.layer2 = nn.Sequential(BasicBlock(16, 32, stride=2),    # 32 x 7 x 7
                                    BasicBlock(32, 32, groups=4))
        self.layer3 = nn.Sequential(BasicBlock(32, 64, stride=2, avg_down=True),  # 64 x 4 x 4
                                    BasicBlock(64, 64, dilation=2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(64, CLASSES)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.flatten(self.pool(x)))


class SqueezeExcite(nn.Module):
    """torchvision's SqueezeExcitation as MobileNetV3 uses it: global pool,
    1x1 conv, ReLU, 1x1 conv, Hardsigmoid, scale."""

    def __init__(self, c, squeeze):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(squeeze, c, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x):
        return x * self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expand + BN + act, 3x3 depthwise (groups=C)
    + BN + act, [squeeze-excite], 1x1 project + BN, residual when shapes
    allow. act is ReLU6 (exported as Clip) or Hardswish (V3 blocks)."""

    def __init__(self, cin, cout, stride, expand, act, se=False):
        super().__init__()
        hid = cin * expand
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hid, 1, bias=False), nn.BatchNorm2d(hid), act()]
        layers += [nn.Conv2d(hid, hid, 3, stride, 1, groups=hid, bias=False),
                   nn.BatchNorm2d(hid), act()]
        if se:
            layers.append(SqueezeExcite(hid, max(8, hid // 4)))
        layers += [nn.Conv2d(hid, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.block(x)
        return x + y if self.residual else y


class MobileNet(nn.Module):
    """MobileNetV2/V3-style: stem conv s2 + BN + Hardswish (28->14), inverted
    residuals with ReLU6 (14, 7), then Hardswish ones with squeeze-excite
    (4), 1x1 conv + BN + Hardswish, GlobalAveragePool, Linear, Hardswish,
    Dropout, Linear."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.Hardswish(),
            InvertedResidual(16, 16, 1, 1, nn.ReLU6),                 # 16 x 14 x 14
            InvertedResidual(16, 24, 2, 4, nn.ReLU6),                 # 24 x 7 x 7
            InvertedResidual(24, 24, 1, 4, nn.ReLU6),
            InvertedResidual(24, 40, 2, 4, nn.Hardswish, se=True),    # 40 x 4 x 4
            InvertedResidual(40, 40, 1, 4, nn.Hardswish, se=True),
            nn.Conv2d(40, 96, 1, bias=False), nn.BatchNorm2d(96), nn.Hardswish())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(96, 64), nn.Hardswish(), nn.Dropout(0.2),
            nn.Linear(64, CLASSES))

    def forward(self, x):
        return self.classifier(self.pool(self.features(x)))


class ViT(nn.Module):
    """ViT: Conv2d patch embedding (kernel = stride = 7: 16 patches),
    flatten + transpose to tokens, class token concat, learned positional
    embedding, nn.TransformerEncoder (pre-norm, GELU, batch_first, 2
    layers, d_model 64, 4 heads, FFN 128), final LayerNorm, head on the
    class token."""

    def __init__(self, d=64, patch=7):
        super().__init__()
        n = (28 // patch) ** 2
        self.patch = nn.Conv2d(1, d, patch, patch)
        self.cls = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        self.pos = nn.Parameter(torch.randn(1, n + 1, d) * 0.02)
        self.drop = nn.Dropout(0.1)
        layer = nn.TransformerEncoderLayer(d_model=d, nhead=4, dim_feedforward=128,
                                           dropout=0.1, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, CLASSES)
        # TransformerEncoder deep-copies one layer: both would start equal
        # (and the exporter would share their initializers through Identity
        # nodes). Draw each layer's weights afresh, and give the LayerNorms
        # non-trivial affine parameters.
        with torch.no_grad():
            for name, p in self.named_parameters():
                if not name.startswith("encoder.") and not name.startswith("norm."):
                    continue
                if "norm" in name:
                    p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
                elif p.dim() > 1:
                    nn.init.xavier_uniform_(p)
                else:
                    p.normal_(0, 0.05)

    def forward(self, x):                                   # (B, 1, 28, 28)
        t = self.patch(x).flatten(2).transpose(1, 2)        # (B, 16, d)
        t = torch.cat([self.cls.expand(t.shape[0], -1, -1), t], dim=1)  # (B, 17, d)
        t = self.encoder(self.drop(t + self.pos))
        return self.head(self.norm(t)[:, 0])


class Slow(nn.Module):
    """A deliberately slow but valid teacher for lease tests: Flatten,
    Linear(784, W), then one W x W Linear applied `depth` times (shared
    weights keep the file small: one W x W initializer, used depth times;
    the exporter emits depth Gemm/MatMul nodes), ReLU between, Linear(W, 10).
    The shared layer's init keeps activations finite over the chain (the
    outputs end up near-uniform: a lease test needs time, not confidence).
    PyTorch, batch 256, 2 threads: depth 64 took 2.8 s per batch on this
    2-core machine under load (load average 7); depth 16, 0.27 s nearly idle.
    Grow --depth (the file stays 23 MB) for longer batches."""

    def __init__(self, width=2048, depth=64):
        super().__init__()
        self.depth = depth
        self.inp = nn.Linear(784, width)
        self.mid = nn.Linear(width, width)
        self.out = nn.Linear(width, CLASSES)
        with torch.no_grad():
            # Orthogonal times sqrt(2): ReLU halves the energy, this restores it.
            nn.init.orthogonal_(self.mid.weight, gain=2 ** 0.5)
            self.mid.bias.zero_()

    def forward(self, x):
        h = torch.relu(self.inp(x.flatten(1)))
        for _ in range(self.depth):
            h = torch.relu(self.mid(h))
        return self.out(h)


class PlainMLP(nn.Sequential):
    """nn.Sequential(Linear, ReLU, Linear, ReLU, Linear): the one MLP today's
    safetensors loader takes ("0.weight", "2.weight", ...)."""

    def __init__(self, sizes=(784, 128, 64, 10)):
        mods = []
        for i in range(len(sizes) - 1):
            mods.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                mods.append(nn.ReLU())
        super().__init__(*mods)
        self.sizes = tuple(sizes)

    def forward(self, x):
        return super().forward(x.flatten(1))


def build(kind, hparams):
    if kind == "mlp":
        return MLP()
    if kind == "resnet":
        return ResNet()
    if kind == "mobilenet":
        return MobileNet()
    if kind == "vit":
        return ViT()
    if kind == "slow":
        return Slow(hparams.get("width", 2048), hparams.get("depth", 64))
    if kind == "rgb":
        return RGB()
    if kind == "mlp-safetensors":
        return PlainMLP(tuple(hparams.get("sizes", (784, 128, 64, 10))))
    die(f"unknown model kind {kind!r} (one of {', '.join(KINDS)})", 2)


# ---------------------------------------------------------------------------
# Making the weights non-trivial: BN statistics, optional brief training.

def calibrate_bn(model, x, seed):
    """Give every BatchNorm random affine parameters and running statistics
    measured on x in train mode (cumulative average over a few batches), so
    that mean != 0, var != 1, gamma != 1, beta != 0 everywhere."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    g = torch.Generator().manual_seed(seed + 1000)
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(0.5 + torch.rand(bn.num_features, generator=g))
            bn.bias.copy_(0.2 * torch.randn(bn.num_features, generator=g))
            bn.reset_running_stats()
            bn.momentum = None          # cumulative moving average
        model.train()
        for i in range(0, min(len(x), 1024), 256):
            model(x[i:i + 256])
        for bn in bns:
            bn.momentum = 0.1
    model.eval()


def train(model, x, y, steps, seed, batch=64, lr=2e-3):
    """A few Adam steps of cross-entropy, so the outputs are confident."""
    g = torch.Generator().manual_seed(seed + 2000)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    t0, loss = time.time(), float("nan")
    for step in range(steps):
        idx = torch.randint(0, len(x), (batch,), generator=g)
        opt.zero_grad()
        out = model(x[idx])
        l = nn.functional.cross_entropy(out, y[idx])
        l.backward()
        opt.step()
        loss = float(l)
    model.eval()
    with torch.no_grad():
        acc = float((model(x[:2000]).argmax(1) == y[:2000]).float().mean())
    print(f"trained {steps} steps in {time.time() - t0:.1f}s: last loss {loss:.3f}, "
          f"train accuracy {acc:.3f} on {min(2000, len(x))} rows", file=sys.stderr)


def sidecar(path):
    """Where the module's state lives: M.onnx / M.safetensors -> M.pt."""
    return path if path.endswith(".pt") else os.path.splitext(path)[0] + ".pt"


def save_safetensors(path, model, mean, std):
    """A PlainMLP as softlabel's safetensors MLP: "<i>.weight" [out, in] and
    "<i>.bias" [out] in float32, the preprocessing in __metadata__."""
    import json
    sd = model.state_dict()
    header, blobs, off = {}, [], 0
    for name in sorted(sd, key=lambda k: (int(k.split(".")[0]), k)):
        b = sd[name].contiguous().float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(sd[name].shape),
                        "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    header["__metadata__"] = {
        "format": "pt", "arch": "-".join(str(s) for s in model.sizes), "activation": "relu",
        "input_scale": "%.9g" % (1 / 255), "input_mean": ",".join("%.9g" % v for v in mean),
        "input_std": ",".join("%.9g" % v for v in std), "input_dtype": "uint8"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def cmd_export(a):
    torch.set_num_threads(2)
    if a.state:
        # The same weights again (another opset, BN folded or not): no
        # calibration, no training; the provenance of the first export stays.
        state = torch.load(a.state)
        if state["kind"] != a.kind:
            die(f"{a.state} holds a {state['kind']}, not a {a.kind}", 2)
        model = build(a.kind, state["hparams"])
        model.load_state_dict(state["state_dict"], strict=True)
        x = torch.zeros(2, 3 if a.kind == "rgb" else 1, 28, 28)
    else:
        torch.manual_seed(a.seed)
        hp = {"width": a.width, "depth": a.depth} if a.kind == "slow" else \
             {"sizes": [784, 128, 64, CLASSES]} if a.kind == "mlp-safetensors" else {}
        model = build(a.kind, hp)
        if a.data:
            x = preprocess(read_rows(a.data, 20000), 1 / 255, a.input_mean, a.input_std)
        else:
            g = torch.Generator().manual_seed(a.seed)
            x = preprocess(np.asarray(torch.randint(0, 256, (1024, 3 if a.kind == "rgb" else 1, 28, 28),
                                                    generator=g, dtype=torch.uint8)),
                           1 / 255, a.input_mean, a.input_std)
        calibrate_bn(model, x, a.seed)  # before training too: sane statistics at step 0
        if a.train_steps:
            if not (a.data and a.labels):
                die("--train-steps needs --data and --labels", 2)
            y = torch.from_numpy(read_labels(a.labels)[:len(x)])
            train(model, x, y, a.train_steps, a.seed)  # leaves its own running stats
        state = {"kind": a.kind, "seed": a.seed, "hparams": hp,
                 "input_mean": a.input_mean, "input_std": a.input_std,
                 "train_steps": a.train_steps}
    model.eval()
    if a.kind == "mlp-safetensors":
        if not a.out.endswith(".safetensors"):
            die("mlp-safetensors writes a .safetensors file", 2)
        state.update(state_dict=model.state_dict())
        torch.save(state, sidecar(a.out))
        save_safetensors(a.out, model, a.input_mean, a.input_std)
        print(f"wrote {a.out} and {sidecar(a.out)}")
        return
    opsets = parse_opsets(a.opset)
    if len(opsets) > 1 and "{opset}" not in a.out:
        die("several opsets need {opset} in the output name", 2)
    for opset in opsets:
        out = a.out.replace("{opset}", str(opset))
        state.update(opset=opset, state_dict=model.state_dict())
        torch.save(state, sidecar(out))
        write_onnx(model, x[:2].clone(), out, opset, a.torch_fold_bn)


def parse_opsets(text):
    """"13" or "13,15,17" or "13-17" -> a list of opsets within 13..17."""
    try:
        if "-" in text:
            lo, hi = (int(v) for v in text.split("-"))
            ops = list(range(lo, hi + 1))
        else:
            ops = [int(v) for v in text.split(",")]
    except ValueError:
        die(f"--opset {text!r}: not like 13, 13,17 or 13-17", 2)
    if not ops or any(o < 13 or o > 17 for o in ops):
        die(f"--opset {text!r}: opsets 13..17 only", 2)
    return ops


def write_onnx(model, dummy, out, opset, torch_fold_bn):
    import onnx
    t0 = time.time()
    # Not under no_grad: with grad enabled nn.TransformerEncoderLayer takes
    # its plain path (the fused _transformer_encoder_layer_fwd has no ONNX
    # symbolic). TrainingMode.PRESERVE on an eval() module exports inference
    # graphs but skips torch's eval peephole, which would fold every
    # BatchNormalization into its Conv: the engine's own folding is what we
    # test. --torch-fold-bn gives torch's default (EVAL) export.
    mode = torch.onnx.TrainingMode.EVAL if torch_fold_bn else torch.onnx.TrainingMode.PRESERVE
    torch.onnx.export(model, dummy, out, input_names=["input"],
                      output_names=["logits"], opset_version=opset,
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      do_constant_folding=True, training=mode)
    m = onnx.load(out)
    onnx.checker.check_model(m)
    ins = [(i.name, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim])
           for i in m.graph.input]
    outs = [(o.name, [d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim])
            for o in m.graph.output]
    if ins != [("input", ["batch", dummy.shape[1], 28, 28])] or outs != [("logits", ["batch", CLASSES])]:
        die(f"{out}: unexpected graph inputs {ins} / outputs {outs}")
    nparams = sum(p.numel() for p in model.parameters())
    print(f"wrote {out} ({type(model).__name__}, opset {opset}, {nparams} parameters, "
          f"{len(m.graph.node)} nodes, "
          f"{sum(n.op_type == 'BatchNormalization' for n in m.graph.node)} BatchNormalization, "
          f"{os.path.getsize(out)} bytes, "
          f"exported in {time.time() - t0:.1f}s) and {sidecar(out)}")


# ---------------------------------------------------------------------------
# Op inventory.

def attr_value(at):
    import onnx
    v = onnx.helper.get_attribute_value(at)
    if isinstance(v, bytes):
        v = v.decode()
    if isinstance(v, float):
        v = float("%.6g" % v)
    if isinstance(v, list):
        v = [float("%.6g" % e) if isinstance(e, float) else e for e in v]
    if isinstance(v, onnx.TensorProto):
        t = onnx.numpy_helper.to_array(v)
        v = f"{t.dtype}{list(t.shape)}" + (f"={t.tolist()}" if t.size <= 8 else "")
    return v


def describe(node, consts):
    """A short text of what an engine needs to know about one node."""
    attrs = {at.name: attr_value(at) for at in node.attribute}
    op = node.op_type
    if op == "Conv":
        w = consts.get(node.input[1])
        return (f"k={attrs.get('kernel_shape')} s={attrs.get('strides')} "
                f"p={attrs.get('pads')} d={attrs.get('dilations')} g={attrs.get('group', 1)}"
                + (f" W{list(w.shape)}" if w is not None else "")
                + (" +bias" if len(node.input) > 2 else ""))
    if op == "Clip":
        ins = [consts[i].tolist() if i in consts else (i or "-") for i in node.input[1:]]
        return f"attrs={attrs} min/max inputs={ins}" if attrs else f"min/max as inputs {ins}"
    if op in ("Unsqueeze", "Squeeze", "ReduceMean", "Slice", "Reshape", "Expand", "Gather",
              "Concat", "Where", "Equal", "ConstantOfShape", "Shape", "Cast", "Transpose"):
        ins = [f"{consts[i].tolist()}" if i in consts and consts[i].size <= 8
               else ("const" if i in consts else "dyn") for i in node.input]
        return f"{attrs} inputs={ins}".replace("{}", "").strip()
    if op == "Constant":
        return f"{attrs.get('value', attrs)}"
    return f"{attrs}" if attrs else ""


def cmd_ops(a):
    import collections
    import onnx
    from onnx import numpy_helper
    for path in a.files:
        m = onnx.load(path)
        opset = [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")]
        counts = collections.Counter(n.op_type for n in m.graph.node)
        print(f"{path}: opset {opset[0] if opset else '?'}, {len(m.graph.node)} nodes, "
              f"{len(m.graph.initializer)} initializers")
        print("  " + ", ".join(f"{op} {n}" for op, n in sorted(counts.items())))
        if a.detail:
            consts = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
            for n in m.graph.node:
                if n.op_type == "Constant" and n.attribute:
                    consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t) \
                        if n.attribute[0].type == onnx.AttributeProto.TENSOR else None
            consts = {k: v for k, v in consts.items() if v is not None}
            seen = collections.Counter()
            for n in m.graph.node:
                seen[(n.op_type, describe(n, consts))] += 1
            for (op, d), c in sorted(seen.items()):
                if d:
                    print(f"    {op} x{c}: {d}")


# ---------------------------------------------------------------------------
# Reference probabilities from the PyTorch module.

def load_module(path):
    p = sidecar(path)
    if not os.path.exists(p):
        die(f"{p}: no PyTorch state next to {path} (made by `export`)")
    st = torch.load(p)
    model = build(st["kind"], st["hparams"])
    model.load_state_dict(st["state_dict"], strict=True)
    return model.eval(), st


def cmd_predict(a):
    torch.set_num_threads(a.threads)
    model, st = load_module(a.model)
    rows = read_rows(a.data, a.rows)
    x = preprocess(rows, a.input_scale, a.input_mean, a.input_std)
    t0 = time.time()
    zs = []
    with torch.no_grad():
        for i in range(0, len(x), a.batch):
            zs.append(model(x[i:i + a.batch]))
    z = torch.cat(zs).double()
    if not torch.isfinite(z).all():
        die("PyTorch's logits are not all finite")
    p = torch.softmax(z / a.temperature, dim=1).float().numpy()
    np.save(a.out, p)
    if a.logits:
        np.save(a.logits, z.float().numpy())
    top = p.max(1)
    print(f"pytorch {st['kind']}: {len(p)} rows in {time.time() - t0:.2f}s, softmax(z/{a.temperature:g}) "
          f"max prob mean {top.mean():.3f} min {top.min():.3f}, logit range "
          f"[{float(z.min()):.2f}, {float(z.max()):.2f}] -> {a.out}")


# ---------------------------------------------------------------------------
# A plain reference interpreter of the ONNX graph, node by node, with torch
# tensors (float32, int64) and ONNX's semantics written out. Not the
# reference for softlabel (PyTorch's module is): it proves that an exported
# file computes what the module computes, so that a difference found by the
# tests is the engine's, and it dumps every node's output (--dump) for
# finding the first node where the engine goes wrong.

ONNX_DT = {1: torch.float32, 6: torch.int32, 7: torch.int64, 9: torch.bool, 11: torch.float64}


def _pads2d(x, pads, value=0.0):
    """ONNX pads [top, left, bottom, right] applied explicitly."""
    if pads and any(pads):
        t, l, b, r = pads
        x = nn.functional.pad(x, (l, r, t, b), value=value)
    return x


def _slice(x, starts, ends, axes=None, steps=None):
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    idx = [slice(None)] * x.dim()
    for s, e, ax, st in zip(starts, ends, axes, steps):
        n = x.shape[ax]
        idx[ax] = slice(*slice(int(s), int(e), int(st)).indices(n))
    if any(st < 0 for st in steps):  # torch cannot step backwards: numpy can
        return torch.from_numpy(np.ascontiguousarray(x.numpy()[tuple(idx)]))
    return x[tuple(idx)]


def run_node(op, ins, at):
    """Outputs (a list) of one node: ins are tensors (None for an empty
    name), at the attributes as Python values."""
    F = nn.functional
    x = ins[0] if ins else None
    if op in ("Add", "Sub", "Mul", "Pow", "Equal"):
        f = {"Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Pow": torch.pow,
             "Equal": torch.eq}[op]
        return [f(ins[0], ins[1])]
    if op == "Div":
        a, b = ins
        if a.dtype.is_floating_point:
            return [a / b]
        return [torch.div(a, b, rounding_mode="trunc")]
    if op == "Where":
        return [torch.where(ins[0], ins[1], ins[2])]
    if op in ("Sqrt", "Erf", "Relu", "Sigmoid", "Tanh", "Exp", "Neg", "Abs", "Log"):
        return [getattr(torch, op.lower())(x)]
    if op in ("Identity", "Dropout"):
        return [x]
    if op == "Softmax":
        return [torch.softmax(x, dim=at.get("axis", -1))]
    if op == "Clip":
        lo = ins[1] if len(ins) > 1 and ins[1] is not None else at.get("min")
        hi = ins[2] if len(ins) > 2 and ins[2] is not None else at.get("max")
        lo = float(lo) if lo is not None else None
        hi = float(hi) if hi is not None else None
        return [torch.clamp(x, lo, hi)]
    if op == "HardSigmoid":
        return [torch.clamp(at.get("alpha", 0.2) * x + at.get("beta", 0.5), 0, 1)]
    if op == "HardSwish":
        return [x * torch.clamp(x / 6 + 0.5, 0, 1)]
    if op == "Conv":
        assert at.get("auto_pad", "NOTSET") == "NOTSET", "auto_pad"
        y = F.conv2d(_pads2d(x, at.get("pads")), ins[1], ins[2] if len(ins) > 2 else None,
                     stride=at.get("strides", 1), dilation=at.get("dilations", 1),
                     groups=at.get("group", 1))
        return [y]
    if op == "MaxPool":
        y = F.max_pool2d(_pads2d(x, at.get("pads"), float("-inf")), at["kernel_shape"],
                         at.get("strides", 1), 0, at.get("dilations", 1),
                         ceil_mode=bool(at.get("ceil_mode", 0)))
        return [y]
    if op == "AveragePool":
        p = at.get("pads", [0, 0, 0, 0])
        assert p[0] == p[2] and p[1] == p[3], "asymmetric AveragePool pads"
        return [F.avg_pool2d(x, at["kernel_shape"], at.get("strides", 1), (p[0], p[1]),
                             ceil_mode=bool(at.get("ceil_mode", 0)),
                             count_include_pad=bool(at.get("count_include_pad", 0)))]
    if op == "GlobalAveragePool":
        return [x.mean(dim=tuple(range(2, x.dim())), keepdim=True)]
    if op == "BatchNormalization":
        sh = [1, -1] + [1] * (x.dim() - 2)
        scale, bias, mean, var = (t.reshape(sh) for t in ins[1:5])
        return [(x - mean) / torch.sqrt(var + at.get("epsilon", 1e-5)) * scale + bias]
    if op == "LayerNormalization":
        ax = at.get("axis", -1) % x.dim()
        dims = tuple(range(ax, x.dim()))
        mu = x.mean(dim=dims, keepdim=True)
        var = ((x - mu) ** 2).mean(dim=dims, keepdim=True)
        y = (x - mu) / torch.sqrt(var + at.get("epsilon", 1e-5)) * ins[1]
        return [y + ins[2] if len(ins) > 2 and ins[2] is not None else y]
    if op == "Flatten":
        ax = at.get("axis", 1) % max(x.dim(), 1)
        return [x.reshape(int(np.prod(x.shape[:ax])), -1)]
    if op == "Gemm":
        a = ins[0].t() if at.get("transA", 0) else ins[0]
        b = ins[1].t() if at.get("transB", 0) else ins[1]
        y = at.get("alpha", 1.0) * (a @ b)
        if len(ins) > 2 and ins[2] is not None:
            y = y + at.get("beta", 1.0) * ins[2]
        return [y]
    if op == "MatMul":
        return [torch.matmul(ins[0], ins[1])]
    if op == "Reshape":
        shape = [int(s) for s in ins[1]]
        if not at.get("allowzero", 0):
            shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return [x.reshape(shape)]
    if op == "Transpose":
        return [x.permute(at.get("perm", list(range(x.dim()))[::-1]))]
    if op == "Shape":
        return [torch.tensor(list(x.shape), dtype=torch.int64)]
    if op == "Gather":
        return [torch.from_numpy(np.asarray(np.take(x.numpy(), ins[1].numpy(), axis=at.get("axis", 0))))]
    if op == "Unsqueeze":
        axes = [int(a) for a in (ins[1] if len(ins) > 1 else at["axes"])]
        n = x.dim() + len(axes)
        for a in sorted(a % n for a in axes):
            x = x.unsqueeze(a)
        return [x]
    if op == "Squeeze":
        axes = [int(a) for a in (ins[1] if len(ins) > 1 else at.get("axes", []))]
        if not axes:
            return [x.squeeze()]
        for a in sorted((a % x.dim() for a in axes), reverse=True):
            x = x.squeeze(a)
        return [x]
    if op == "Concat":
        return [torch.cat([t for t in ins if t is not None], dim=at["axis"])]
    if op == "Slice":
        v = [None if t is None else [int(e) for e in t] for t in ins[1:]] + [None] * 4
        return [_slice(x, v[0], v[1], v[2], v[3])]
    if op == "Cast":
        return [x.to(ONNX_DT[at["to"]])]
    if op == "ConstantOfShape":
        v = at.get("value")
        fill = torch.from_numpy(v.copy()) if v is not None else torch.zeros(1)
        return [fill.reshape(()).expand([int(s) for s in x]).clone()]
    if op == "Expand":
        shape = torch.broadcast_shapes(tuple(x.shape), tuple(int(s) for s in ins[1]))
        return [x.expand(shape).clone()]
    if op == "ReduceMean":
        axes = at.get("axes") if len(ins) < 2 else [int(a) for a in ins[1]]
        axes = tuple(axes) if axes else tuple(range(x.dim()))
        return [x.mean(dim=axes, keepdim=bool(at.get("keepdims", 1)))]
    raise NotImplementedError(f"reference interpreter: no op {op}")


def run_onnx(path, x, dump=None):
    """The graph's outputs for input x (B, 1, 28, 28) float32."""
    import onnx
    from onnx import numpy_helper
    m = onnx.load(path)
    env = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in m.graph.initializer}
    env[m.graph.input[0].name] = x
    for i, n in enumerate(m.graph.node):
        at = {}
        for a in n.attribute:
            v = onnx.helper.get_attribute_value(a)
            if isinstance(v, onnx.TensorProto):
                v = numpy_helper.to_array(v)
            at[a.name] = v.decode() if isinstance(v, bytes) else v
        if n.op_type == "Constant":
            outs = [torch.from_numpy(np.array(at["value"]).copy())]
        else:
            outs = run_node(n.op_type, [env[name] if name else None for name in n.input], at)
        for name, t in zip(n.output, outs):
            env[name] = t
            if dump is not None:
                np.save(os.path.join(dump, f"{i:04d}_{n.op_type}.npy"), t.numpy())
    return [env[o.name] for o in m.graph.output]


def cmd_run_onnx(a):
    torch.set_num_threads(a.threads)
    rows = read_rows(a.data, a.rows)
    x = preprocess(rows, a.input_scale, a.input_mean, a.input_std)
    if a.dump:
        os.makedirs(a.dump, exist_ok=True)
    t0 = time.time()
    zs = []
    with torch.no_grad():
        for i in range(0, len(x), a.batch):
            zs.append(run_onnx(a.model, x[i:i + a.batch], a.dump if i == 0 else None)[0])
    z = torch.cat(zs).double()
    p = torch.softmax(z / a.temperature, dim=1).float().numpy()
    np.save(a.out, p)
    print(f"reference interpreter: {a.model}: {len(p)} rows in {time.time() - t0:.2f}s -> {a.out}")


def cmd_check_export(a):
    """Each file's graph (reference interpreter) against its PyTorch module,
    on all rows at batch --batch and on the first rows at small batches
    (the batch axis is dynamic: 1 and an odd size must work too)."""
    torch.set_num_threads(a.threads)
    x = preprocess(read_rows(a.data, a.rows), a.input_scale, a.input_mean, a.input_std)
    small = [int(b) for b in a.small_batches.split(",") if b]
    failed = []
    for path in a.models:
        model, _ = load_module(path)
        with torch.no_grad():
            ref = torch.softmax(torch.cat([model(x[i:i + a.batch]) for i in
                                           range(0, len(x), a.batch)]).double() / a.temperature, 1)
            ref = ref.float().numpy()
            runs = [(a.batch, len(x))] + [(b, min(len(x), 2 * b + 1)) for b in small]
            for b, n in runs:
                z = torch.cat([run_onnx(path, x[i:min(i + b, n)])[0] for i in range(0, n, b)])
                p = torch.softmax(z.double() / a.temperature, 1).float().numpy()
                err = check_probs(ref[:n], p, a.atol, f"{os.path.basename(path)} batch {b} ({n} rows)")
                if err:
                    print(err, file=sys.stderr)
                    failed.append(f"{os.path.basename(path)}@{b}")
    if failed:
        die(f"exports differ from their PyTorch modules: {' '.join(failed)}")


# ---------------------------------------------------------------------------
# Comparisons.

def check_probs(ref, ours, atol, what):
    """None if ours equals ref within atol, else the reason (one line)."""
    if ref.shape != ours.shape:
        return f"{what}: shape {ours.shape}, reference {ref.shape}"
    if ref.ndim != 2 or ref.shape[0] == 0:
        return f"{what}: shape {ref.shape}, expected [N>0, classes]"
    bad = ~np.isfinite(ours).all(axis=1)
    if bad.any():
        return f"{what}: {int(bad.sum())} rows not finite, first row {int(np.argmax(bad))}"
    sums = np.abs(ours.astype(np.float64).sum(1) - 1)
    if sums.max() > 1e-4:
        return f"{what}: row {int(sums.argmax())} sums to {1 + sums.max():.6f}, not 1"
    d = np.abs(ref.astype(np.float64) - ours.astype(np.float64))
    r, c = np.unravel_index(int(d.argmax()), d.shape)
    # Argmax may flip on an exact near-tie (gap under 2 atol); nowhere else.
    srt = np.sort(ref, axis=1)
    tie = (srt[:, -1] - srt[:, -2]) <= 2 * atol
    disagree = (ref.argmax(1) != ours.argmax(1)) & ~tie
    msg = (f"{what}: max abs diff {d.max():.3g} (row {r}, class {c}: ref {ref[r, c]:.7g} ours "
           f"{ours[r, c]:.7g}), argmax agrees on {int((ref.argmax(1) == ours.argmax(1)).sum())}"
           f"/{len(ref)} rows ({int(tie.sum())} near-ties), ref max prob mean {srt[:, -1].mean():.3f}")
    if d.max() > atol:
        return msg + f" > atol {atol:g}"
    if disagree.any():
        return msg + f"; {int(disagree.sum())} rows disagree on argmax, first {int(np.argmax(disagree))}"
    print(msg + f" <= atol {atol:g}: OK")
    return None


def cmd_compare(a):
    ref, ours = np.load(a.ref), np.load(a.ours)
    err = check_probs(ref, ours, a.atol, os.path.basename(a.ours))
    if err:
        die(err)


def cmd_check_cache(a):
    import lmdb
    ref = np.load(a.ref)
    n, classes = ref.shape
    env = lmdb.open(a.store, readonly=True, max_dbs=8, subdir=True, lock=True)
    meta, labels = env.open_db(b"meta", create=False), env.open_db(b"labels", create=False)
    try:
        tix = int(a.teacher)
        tname = None
    except ValueError:
        tix, tname = None, a.teacher
    with env.begin() as txn:
        # The teacher's registration (msgpack); checked when python3-msgpack is there.
        reg = None
        try:
            import msgpack
            for k, v in txn.cursor(meta):
                if k.startswith(b"teacher/"):
                    r = msgpack.unpackb(v, raw=False)
                    name = k[8:].decode()
                    if (tname is not None and name == tname) or (tix is not None and r["index"] == tix):
                        reg, tname, tix = r, name, r["index"]
            if reg is None:
                die(f"{a.store}: no teacher {a.teacher} in meta")
            if reg["classes"] != classes:
                die(f"teacher {tname}: {reg['classes']} classes, reference has {classes}")
            if abs(reg["temperature"] - a.temperature) > 1e-6 * a.temperature:
                die(f"teacher {tname}: registered at T={reg['temperature']}, expected {a.temperature}")
        except ImportError:
            if tix is None:
                die("a teacher name needs python3-msgpack; give the index")
        vals = np.full((n, classes), np.nan, dtype=np.float32)
        seen = np.zeros(n, dtype=np.int64)
        extra = 0
        cur = txn.cursor(labels)
        prefix = struct.pack(">I", tix)
        ok = cur.set_range(prefix)
        while ok:
            k, v = cur.key(), cur.value()
            if not k.startswith(prefix):
                break
            if len(k) != 12:
                die(f"key {k.hex()}: {len(k)} bytes, expected 12")
            (s,) = struct.unpack(">Q", k[4:])
            if s >= n:
                extra += 1
                ok = cur.next()
                continue
            if len(v) != 12 + 4 * classes:
                die(f"sample {s}: record of {len(v)} bytes, dense f32 of {classes} "
                    f"classes is {12 + 4 * classes}")
            enc, zero, k_, cls, crc = struct.unpack("<BBHII", v[:12])
            if enc != 1 or zero != 0 or k_ != 0 or cls != classes:
                die(f"sample {s}: header encoding {enc} pad {zero} k {k_} classes {cls}, "
                    f"expected dense f32 (1, 0, 0, {classes})")
            if zlib.crc32(v[12:]) != crc:
                die(f"sample {s}: crc32 {zlib.crc32(v[12:]):08x}, record says {crc:08x}")
            vals[s] = np.frombuffer(v, dtype="<f4", offset=12)
            seen[s] += 1
            ok = cur.next()
    env.close()
    missing = int((seen == 0).sum())
    print(f"teacher {tix}{' (' + tname + ')' if tname else ''}: {int(seen.sum())} records for "
          f"{n} samples, {missing} missing, {extra} beyond the last sample")
    if missing:
        die(f"{missing} samples have no record, first {int(np.argmax(seen == 0))}")
    if extra:
        die(f"{extra} records beyond sample {n - 1}")
    if (seen > 1).any():  # impossible in LMDB without dupsort; kept as a guard
        die(f"{int((seen > 1).sum())} samples have more than one record")
    if not np.isfinite(vals).all():
        die("non-finite values in the cache")
    v = vals.astype(np.float64)
    e = np.exp(v - v.max(1, keepdims=True))
    probs = (e / e.sum(1, keepdims=True)).astype(np.float32)
    err = check_probs(ref, probs, a.atol, f"cache {os.path.basename(a.store.rstrip('/'))}")
    if err:
        die(err)


# ---------------------------------------------------------------------------

def main():
    # torch.onnx warns about constant folding in PRESERVE mode even for a
    # module in eval mode (the case it means is a module in train mode).
    warnings.filterwarnings("ignore", message="It is recommended that constant folding")
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)

    e = sub.add_parser("export", help="build a model in PyTorch and export it")
    e.add_argument("kind", choices=KINDS)
    e.add_argument("out")
    e.add_argument("--opset", default="13", help="13..17; several (13,17 or 13-17) "
                   "with {opset} in OUT write one file each, same weights")
    e.add_argument("--seed", type=int, default=1)
    e.add_argument("--data", help="images for BN statistics and training (IDX[.gz] or .npy)")
    e.add_argument("--labels", help="labels for --train-steps")
    e.add_argument("--train-steps", type=int, default=0)
    e.add_argument("--input-mean", type=floats, default=[0.0])
    e.add_argument("--input-std", type=floats, default=[1.0])
    e.add_argument("--state", help="weights from an earlier export's .pt instead of new ones")
    e.add_argument("--torch-fold-bn", action="store_true",
                   help="let torch fold BatchNorm into Conv (its default export); "
                   "without it BatchNormalization nodes stay for the engine to fold")
    e.add_argument("--width", type=int, default=2048, help="slow: layer width")
    e.add_argument("--depth", type=int, default=64, help="slow: how many times the W x W layer runs")

    o = sub.add_parser("ops", help="op types, counts and opset of ONNX files")
    o.add_argument("--detail", action="store_true")
    o.add_argument("files", nargs="+")

    p = sub.add_parser("predict", help="PyTorch's softmax(z/T) for a dataset")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("out")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--input-scale", type=float, default=1 / 255)
    p.add_argument("--input-mean", type=floats, default=[0.0])
    p.add_argument("--input-std", type=floats, default=[1.0])
    p.add_argument("--logits", help="also save the raw logits (.npy float32)")
    p.add_argument("--rows", type=int, help="only the first ROWS rows")
    p.add_argument("--batch", type=int, default=500)
    p.add_argument("--threads", type=int, default=2)

    r = sub.add_parser("run-onnx", help="softmax(z/T) of the ONNX graph by a plain "
                       "reference interpreter (checks the export, not softlabel)")
    r.add_argument("model")
    r.add_argument("data")
    r.add_argument("out")
    r.add_argument("--temperature", type=float, default=1.0)
    r.add_argument("--input-scale", type=float, default=1 / 255)
    r.add_argument("--input-mean", type=floats, default=[0.0])
    r.add_argument("--input-std", type=floats, default=[1.0])
    r.add_argument("--rows", type=int, help="only the first ROWS rows")
    r.add_argument("--batch", type=int, default=500)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--dump", metavar="DIR", help="save every node's output for the "
                   "first batch as DIR/NNNN_Op.npy (node order of the file)")

    x = sub.add_parser("check-export", help="ONNX graphs (reference interpreter) "
                       "against their PyTorch modules")
    x.add_argument("data")
    x.add_argument("models", nargs="+")
    x.add_argument("--temperature", type=float, default=1.0)
    x.add_argument("--input-scale", type=float, default=1 / 255)
    x.add_argument("--input-mean", type=float, default=0.0)
    x.add_argument("--input-std", type=float, default=1.0)
    x.add_argument("--rows", type=int, help="only the first ROWS rows")
    x.add_argument("--batch", type=int, default=500)
    x.add_argument("--small-batches", default="7,1", help="also these batch sizes, on 2B+1 rows")
    x.add_argument("--atol", type=float, default=1e-5)
    x.add_argument("--threads", type=int, default=2)

    c = sub.add_parser("compare", help="REF.npy vs OURS.npy")
    c.add_argument("ref")
    c.add_argument("ours")
    c.add_argument("--atol", type=float, default=1e-5)

    k = sub.add_parser("check-cache", help="a logit cache against PyTorch's probabilities")
    k.add_argument("store")
    k.add_argument("teacher", help="teacher index, or name")
    k.add_argument("ref")
    k.add_argument("temperature", type=float)
    k.add_argument("--atol", type=float, default=1e-5)

    a = ap.parse_args()
    {"export": cmd_export, "ops": cmd_ops, "predict": cmd_predict, "run-onnx": cmd_run_onnx,
     "check-export": cmd_check_export, "compare": cmd_compare, "check-cache": cmd_check_cache}[a.cmd](a)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""PyTorch's side of bench_cnn.sh: train the module softlabel-student
--print-torch printed, on the same rows, with the same rule of
initialisation (PyTorch's defaults, which softlabel copies), Adam, batch,
epochs and preprocessing; print one line per epoch with the training rate
and the test accuracy in evaluation mode.

    bench_cnn_torch.py MODULE.py TRAIN.npy LABELS.npy TEST.idx.gz TEST_LABELS.idx.gz \
        LR BATCH EPOCHS THREADS MEAN STD
"""
import gzip
import struct
import sys
import time

import numpy as np
import torch


def idx(path):
    d = gzip.open(path).read() if path.endswith(".gz") else open(path, "rb").read()
    nd = d[3]
    dims = struct.unpack(">" + "I" * nd, d[4:4 + 4 * nd])
    return np.frombuffer(d[4 + 4 * nd:], dtype=np.uint8).reshape(dims)


def main(module, xs, ys, tx, ty, lr, batch, epochs, threads, mean, std):
    torch.set_num_threads(int(threads))
    torch.manual_seed(1)
    scope = {}
    exec(open(module).read(), scope)
    model = scope["model"]
    m, s = float(mean), float(std)
    x = (torch.tensor(np.load(xs)).float().unsqueeze(1) / 255.0 - m) / s
    y = torch.tensor(np.load(ys)).long()
    tx = (torch.tensor(idx(tx).copy()).float().unsqueeze(1) / 255.0 - m) / s
    ty = torch.tensor(idx(ty).copy()).long()
    opt = torch.optim.Adam(model.parameters(), lr=float(lr))
    B = int(batch)
    for e in range(int(epochs)):
        model.train()
        perm = torch.randperm(len(x))
        t0 = time.perf_counter()
        total = 0.0
        for i in range(0, len(x), B):
            idx_ = perm[i:i + B]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx_]), y[idx_])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx_)
        rate = len(x) / (time.perf_counter() - t0)
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(tx[i:i + 500]).argmax(1) for i in range(0, len(tx), 500)])
        acc = (pred == ty).float().mean().item()
        print(f"epoch {e + 1}: loss {total / len(x):.4f} test_accuracy {acc:.4f} train: {rate:.0f} samples/s")


if __name__ == "__main__":
    main(*sys.argv[1:12])

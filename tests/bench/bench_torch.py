#!/usr/bin/python3
"""PyTorch on the networks and batch sizes of bench_nn, for the ratios that
tests/bench/bench_nn.sh prints. Figures, never thresholds.

    bench_torch.py --threads N

Run it under the same OpenBLAS kernel as softlabel (OPENBLAS_CORETYPE set
to what softlabel chose): Debian's python3-torch does its float GEMMs in the
system BLAS, which is OpenBLAS. Its best setting on a CPU, set by the
caller: torch.set_num_threads(N) (here), OPENBLAS_NUM_THREADS=N and
OMP_WAIT_POLICY=PASSIVE so that neither thread pool spins while the other
works. Each figure is the median of 7 rounds of 0.5 s, like bench_nn.
"""
import argparse
import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

ROUNDS = 7


def timed(budget_s, fn, batch):
    t0 = time.perf_counter()
    it = 0
    while True:
        fn()
        it += 1
        el = time.perf_counter() - t0
        if el >= budget_s:
            return it * batch / el


def median_rate(fn, batch):
    fn()  # warm: allocations, thread pools
    return statistics.median(timed(0.5, fn, batch) for _ in range(ROUNDS))


def mlp(sizes, dropout):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def bench_forward(sizes, batch):
    m = mlp(sizes, 0.0).eval()
    x = torch.rand(batch, sizes[0]) - 0.5

    def step():
        with torch.inference_mode():
            m(x)
    return median_rate(step, batch)


def bench_train(sizes, batch, dropout):
    m = mlp(sizes, dropout).train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    x = torch.rand(batch, sizes[0]) - 0.5
    y = torch.arange(batch) % sizes[-1]

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(m(x), y).backward()
        opt.step()
    return median_rate(step, batch)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    torch.manual_seed(1)
    torch.set_num_threads(a.threads)
    teacher, student = [784, 1200, 1200, 10], [784, 128, 10]
    print(f"torch {torch.__version__}, threads: {torch.get_num_threads()}",
          flush=True)
    print("torch forward 784-1200-1200-10 batch 256: "
          f"{bench_forward(teacher, 256):.0f} samples/s", flush=True)
    print("torch train step 784-128-10 batch 128 (adam): "
          f"{bench_train(student, 128, 0.0):.0f} samples/s", flush=True)
    print("torch train step 784-1200-1200-10 batch 128 (adam, dropout 0.5): "
          f"{bench_train(teacher, 128, 0.5):.0f} samples/s", flush=True)


if __name__ == "__main__":
    main()

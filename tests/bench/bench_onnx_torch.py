#!/usr/bin/python3
"""PyTorch's side of the ONNX engine benchmark (issue 10): the forward
throughput of the same models softlabel's engine runs, measured in the
same run as softlabel's own numbers.

    OMP_WAIT_POLICY=PASSIVE bench_onnx_torch.py run [--dir DIR]
        [--models resnet,vit] [--batch 256] [--threads 2] [--seconds 3]
        One line per model:
          torch resnet b256 threads2 samples/s 1234.5 ms/batch 207.4 eager 1200.1 frozen 1234.5
        samples/s is the better of two ways PyTorch runs the module:
        eager (module.eval() under torch.inference_mode) and frozen
        (torch.jit.trace + torch.jit.optimize_for_inference, which folds
        BatchNorm into Conv as softlabel's engine does). With --dir, the
        weights are those of DIR/KIND.pt written by `export`, so both
        sides run the very same model; without it, fresh seeded weights
        (speed does not depend on their values).

    bench_onnx_torch.py export DIR [--models resnet,vit] [--opset 17]
        Write DIR/KIND.onnx (and DIR/KIND.pt, the module's state) for
        softlabel's bench to run: tests/lib/onnx_models.py export KIND.

Any model kind of tests/lib/onnx_models.py works (slow too: its line
gives the per-batch time the lease tests rely on). OMP_WAIT_POLICY must be
set by the caller (OpenMP reads it once, at start); without PASSIVE a
warning is printed, since idle OpenMP threads that spin steal the core a
2-thread measurement needs.
"""
import argparse
import os
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(HERE, "..", "lib")
sys.path.insert(0, LIB)
import onnx_models as om  # noqa: E402

FMNIST = os.environ.get("FMNIST", "/usr/share/datasets/fashion-mnist")


def inputs(batch):
    """A batch of real Fashion-MNIST test images, preprocessed as the tests do."""
    path = os.path.join(FMNIST, "t10k-images-idx3-ubyte.gz")
    if os.path.exists(path):
        rows = om.read_rows(path, batch)
        if len(rows) == batch:
            return om.preprocess(rows, 1 / 255, 0.286, 0.353)
    return torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(0))


def module(kind, directory):
    if directory and os.path.exists(os.path.join(directory, kind + ".pt")):
        model, _ = om.load_module(os.path.join(directory, kind + ".pt"))
        return model
    torch.manual_seed(1)
    return om.build(kind, {}).eval()


def timed(fn, x, seconds):
    """samples/s of fn(x): warm-up (3 calls), then calls for `seconds`
    (at least 3), total rows over total wall time."""
    for _ in range(3):
        fn(x)
    n, t0 = 0, time.perf_counter()
    while n < 3 or time.perf_counter() - t0 < seconds:
        fn(x)
        n += 1
    dt = time.perf_counter() - t0
    return n * x.shape[0] / dt, 1000 * dt / n


def cmd_run(a):
    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        print("bench_onnx_torch: warning: OMP_WAIT_POLICY is not PASSIVE "
              "(set it in the caller: OpenMP reads it at start)", file=sys.stderr)
    torch.set_num_threads(a.threads)
    x = inputs(a.batch)
    for kind in a.models.split(","):
        model = module(kind, a.dir)
        with torch.inference_mode():
            eager, eager_ms = timed(model, x, a.seconds)
        with torch.no_grad():
            frozen_mod = torch.jit.optimize_for_inference(torch.jit.trace(model, x[:2]).eval())
            frozen, frozen_ms = timed(frozen_mod, x, a.seconds)
            # The frozen module computes the same function (a guard against
            # timing something that is not the model).
            err = float((frozen_mod(x[:8]) - model(x[:8])).abs().max())
        if err > 1e-3:
            print(f"bench_onnx_torch: {kind}: frozen module differs by {err:.3g}", file=sys.stderr)
            frozen, frozen_ms = 0.0, float("inf")
        best, ms = (eager, eager_ms) if eager >= frozen else (frozen, frozen_ms)
        print(f"torch {kind} b{a.batch} threads{a.threads} samples/s {best:.1f} "
              f"ms/batch {ms:.1f} eager {eager:.1f} frozen {frozen:.1f}", flush=True)


def cmd_export(a):
    os.makedirs(a.dir, exist_ok=True)
    for kind in a.models.split(","):
        out = os.path.join(a.dir, kind + ".onnx")
        r = subprocess.run([sys.executable, os.path.join(LIB, "onnx_models.py"), "export",
                            kind, out, "--opset", str(a.opset), "--seed", "1"])
        if r.returncode != 0:
            sys.exit(f"bench_onnx_torch: exporting {kind} failed")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="PyTorch forward throughput")
    r.add_argument("--dir", help="weights from DIR/KIND.pt (written by export)")
    r.add_argument("--models", default="resnet,vit")
    r.add_argument("--batch", type=int, default=256)
    r.add_argument("--threads", type=int, default=2)
    r.add_argument("--seconds", type=float, default=3.0)
    e = sub.add_parser("export", help="write DIR/KIND.onnx for softlabel's bench")
    e.add_argument("dir")
    e.add_argument("--models", default="resnet,vit")
    e.add_argument("--opset", type=int, default=17)
    a = ap.parse_args()
    {"run": cmd_run, "export": cmd_export}[a.cmd](a)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Write a deliberately slow ONNX teacher for the lease tests.

    slow_model.py --out FILE.onnx [--width W] [--layers N] [--gram K] [--seed S]

Input "x" float [batch, 1, 28, 28], output "logits" float [batch, 10]:
Flatten, Gemm 784->W + Relu, N x (Gemm W->W + Relu), the first hidden
layer added back, Gemm W->10. The N hidden Gemms share one weight, so the
file stays small. Each costs 2*W*W flops per row, so a batch of B rows
takes about 2*B*N*W*W flops spread over 2N+5 nodes, each short: a long
batch whose graph progress advances all the time (sl_graph_progress counts
nodes). On a 2-core test machine W=1024, N=300 takes about 5 s per batch
of 256 rows on one thread.

--gram K adds one node whose time grows with the square of the batch: the
Gram matrix g g^T of g = Gemm(x, 784->K) over the batch (a Gemm with
transB=1, 2*B*B*K flops), averaged per row, multiplied by 0 and added to
the logits. The logits do not change (they stay per-row and the same at
every batch size), but a worker with a large --batch spends a long time
inside that single node, where the graph's progress does not advance,
while one with a small batch passes it quickly: a real stall with no test
hook, for the same model file (same SHA-256, so the same teacher name).

Weights: He-normal from numpy's default_rng(seed), biases 0.01; float32.
Needs Debian's python3-onnx and numpy (no torch).
"""
import argparse
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def build(width, layers, gram, seed):
    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def dense(name, inp, fan_in, fan_out, relu):
        w = (rng.standard_normal((fan_in, fan_out)) *
             np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = np.full((fan_out,), 0.01, dtype=np.float32)
        inits.append(numpy_helper.from_array(w, name + ".W"))
        inits.append(numpy_helper.from_array(b, name + ".b"))
        out = name + ".y"
        nodes.append(helper.make_node("Gemm", [inp, name + ".W", name + ".b"],
                                      [out], name=name))
        if not relu:
            return out
        nodes.append(helper.make_node("Relu", [out], [name + ".r"],
                                      name=name + ".relu"))
        return name + ".r"

    nodes.append(helper.make_node("Flatten", ["x"], ["flat"], axis=1,
                                  name="flatten"))
    h = dense("fc0", "flat", 784, width, True)
    # The N hidden layers share one orthogonal weight and one bias: the
    # file stays small however long the chain, and since ||relu(Qh + b)||
    # <= ||h|| + ||b|| the activations stay finite (no overflow to NaN, no
    # decay into denormals: the bias keeps them away from 0).
    if layers:
        q, _ = np.linalg.qr(rng.standard_normal((width, width)))
        inits.append(numpy_helper.from_array(q.astype(np.float32), "fc.W"))
        inits.append(numpy_helper.from_array(
            np.full((width,), 0.01, dtype=np.float32), "fc.b"))
    for i in range(layers):
        name = f"fc{i + 1}"
        nodes.append(helper.make_node("Gemm", [h, "fc.W", "fc.b"],
                                      [name + ".y"], name=name))
        nodes.append(helper.make_node("Relu", [name + ".y"], [name + ".r"],
                                      name=name + ".relu"))
        h = name + ".r"
    out = "logits"
    # The head reads the first hidden layer too, so that the labels depend
    # on the input however long the chain (which converges to a fixed point).
    if layers:
        nodes.append(helper.make_node("Add", [h, "fc0.r"], ["skip"],
                                      name="skip"))
        h = "skip"
    z = dense("head", h, width, 10, False)
    if gram:
        g = dense("gram_in", "flat", 784, gram, False)
        nodes.append(helper.make_node("Gemm", [g, g], ["gram"], transB=1,
                                      name="gram"))
        nodes.append(helper.make_node("ReduceMean", ["gram"], ["gram_mean"],
                                      axes=[1], keepdims=1, name="gram_mean"))
        inits.append(numpy_helper.from_array(np.zeros((1,), np.float32),
                                             "zero"))
        nodes.append(helper.make_node("Mul", ["gram_mean", "zero"],
                                      ["gram_zero"], name="gram_zero"))
        nodes.append(helper.make_node("Add", [z, "gram_zero"], [out],
                                      name="logits"))
    else:
        nodes.append(helper.make_node("Identity", [z], [out], name="logits"))
    graph = helper.make_graph(
        nodes, "slow_teacher",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                       ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT,
                                       ["batch", 10])],
        inits)
    model = helper.make_model(graph, producer_name="softlabel slow_model.py",
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", required=True)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--gram", type=int, default=0, metavar="K")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.width < 1 or a.layers < 0 or a.gram < 0:
        ap.error("--width >= 1, --layers >= 0, --gram >= 0")
    onnx.save(build(a.width, a.layers, a.gram, a.seed), a.out)
    flops = 2 * (784 * a.width + a.layers * a.width * a.width + a.width * 10)
    print(f"{a.out}: {a.layers} x Gemm {a.width}x{a.width}, "
          f"{flops / 1e6:.1f} MFLOP per row"
          + (f"; gram node 2*B*B*{a.gram} flops" if a.gram else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())

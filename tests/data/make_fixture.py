#!/usr/bin/env python3
"""Generate the safetensors fixtures for tests/unit/test_model.c.

Writes, next to this script:

  fixture_mlp.safetensors       float32, the bytes PyTorch's
                                safetensors.torch.save_file(model.state_dict())
                                writes for nn.Sequential(Linear(6, 5), ReLU(),
                                Linear(5, 4), ReLU(), Linear(4, 3))
  fixture_mlp_f16.safetensors   the same weights rounded to float16
  fixture_mlp_bf16.safetensors  the same weights rounded to bfloat16
                                (round to nearest, ties to even)
  fixture_mlp.expected.txt      inputs and the expected logits of all three

The layout copies what the safetensors library writes: compact JSON with
"__metadata__": {"format": "pt"} first, tensors ordered by name (so biases
come before weights in the byte buffer), the header padded with spaces so
that the data starts at a multiple of 8.

Standard library only (struct, json). The C test never runs this script; the
generated files are committed. To regenerate, from the repository root:

    python3 tests/data/make_fixture.py

expected.txt format (whitespace separated, '#' lines are comments):

    B IN OUT
    B*IN inputs, row-major
    B*OUT logits for the float32 file
    B*OUT logits for the float16 file
    B*OUT logits for the bfloat16 file

The logits are computed here in float64 from the (rounded) float32, float16
or bfloat16 weights, so each file is checked against its own weights.
"""

import json
import os
import struct

SIZES = [6, 5, 4, 3]  # in, hidden, hidden, classes
HERE = os.path.dirname(os.path.abspath(__file__))


def lcg(seed):
    """Numerical Recipes LCG; yields floats in [-1, 1)."""
    state = seed & 0xFFFFFFFF
    while True:
        state = (1664525 * state + 1013904223) & 0xFFFFFFFF
        yield state / 2147483648.0 - 1.0


def to_f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def to_f16(x):
    return struct.unpack("<e", struct.pack("<e", x))[0]


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def bf16_bits(x):
    b = f32_bits(x)
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF


def from_bf16_bits(h):
    return struct.unpack("<f", struct.pack("<I", h << 16))[0]


def make_params():
    """{module index: (weight rows, bias)} in float32, PyTorch-like bounds."""
    rnd = lcg(20240611)
    params = {}
    for l in range(len(SIZES) - 1):
        fan_in, fan_out = SIZES[l], SIZES[l + 1]
        bound = 1.0 / fan_in ** 0.5
        w = [[to_f32(next(rnd) * bound) for _ in range(fan_in)]
             for _ in range(fan_out)]
        b = [to_f32(next(rnd) * bound) for _ in range(fan_out)]
        params[2 * l] = (w, b)
    return params


def rounded(params, fn):
    return {i: ([[fn(v) for v in row] for row in w], [fn(v) for v in b])
            for i, (w, b) in params.items()}


def forward(params, x):
    h = x
    idx = sorted(params)
    for k, i in enumerate(idx):
        w, b = params[i]
        h = [sum(wi * hi for wi, hi in zip(row, h)) + bo
             for row, bo in zip(w, b)]
        if k + 1 < len(idx):
            h = [v if v > 0.0 else 0.0 for v in h]
    return h


def encode(values, dtype):
    if dtype == "F32":
        return b"".join(struct.pack("<f", v) for v in values)
    if dtype == "F16":
        return b"".join(struct.pack("<e", v) for v in values)
    if dtype == "BF16":
        return b"".join(struct.pack("<H", bf16_bits(v)) for v in values)
    raise ValueError(dtype)


def write_safetensors(path, params, dtype):
    tensors = {}
    for i, (w, b) in params.items():
        tensors["%d.weight" % i] = ([len(w), len(w[0])],
                                    [v for row in w for v in row])
        tensors["%d.bias" % i] = ([len(b)], b)
    header = {"__metadata__": {"format": "pt"}}
    data = b""
    for name in sorted(tensors):
        shape, values = tensors[name]
        raw = encode(values, dtype)
        header[name] = {"dtype": dtype, "shape": shape,
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def main():
    params = make_params()
    p16 = rounded(params, to_f16)
    pbf = rounded(params, lambda v: from_bf16_bits(bf16_bits(v)))

    # Inputs exactly representable in float32; negatives included so the
    # ReLUs both pass and block.
    xs = [[((r * 7 + c * 3) % 11 - 5) / 4.0 for c in range(SIZES[0])]
          for r in range(4)]

    write_safetensors(os.path.join(HERE, "fixture_mlp.safetensors"),
                      params, "F32")
    write_safetensors(os.path.join(HERE, "fixture_mlp_f16.safetensors"),
                      p16, "F16")
    write_safetensors(os.path.join(HERE, "fixture_mlp_bf16.safetensors"),
                      pbf, "BF16")

    with open(os.path.join(HERE, "fixture_mlp.expected.txt"), "w") as f:
        f.write("# generated by tests/data/make_fixture.py; do not edit\n")
        f.write("%d %d %d\n" % (len(xs), SIZES[0], SIZES[-1]))
        f.write("# inputs\n")
        for x in xs:
            f.write(" ".join(repr(v) for v in x) + "\n")
        for label, p in (("f32", params), ("f16", p16), ("bf16", pbf)):
            f.write("# logits %s\n" % label)
            for x in xs:
                f.write(" ".join("%.17g" % v for v in forward(p, x)) + "\n")


if __name__ == "__main__":
    main()

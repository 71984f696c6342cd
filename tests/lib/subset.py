#!/usr/bin/env python3
"""Write the first N rows of an IDX (optionally gzipped) file as a .npy file.

    subset.py SRC N OUT.npy [LABELED]

For label files (1-D), LABELED keeps the first LABELED labels and writes -1
(unlabeled) for the rest, as int64. Standard library only.
"""
import gzip
import struct
import sys


def read_idx(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"{path}: not an IDX ubyte file")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    return shape, data[4 + 4 * ndim:]


def npy_header(descr, shape):
    dims = ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "")
    h = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (descr, dims)
    pad = 64 - (10 + len(h) + 1) % 64
    h += " " * (pad % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode()


def main():
    src, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    labeled = int(sys.argv[4]) if len(sys.argv) > 4 else None
    shape, body = read_idx(src)
    n = min(n, shape[0])
    row = 1
    for d in shape[1:]:
        row *= d
    with open(out, "wb") as f:
        if len(shape) == 1:
            vals = list(body[:n])
            if labeled is not None:
                vals = [v if i < labeled else -1 for i, v in enumerate(vals)]
            f.write(npy_header("<i8", (n,)))
            f.write(struct.pack("<%dq" % n, *vals))
        else:
            f.write(npy_header("|u1", (n,) + tuple(shape[1:])))
            f.write(body[:n * row])


if __name__ == "__main__":
    main()

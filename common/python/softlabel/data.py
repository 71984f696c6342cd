"""Datasets as softlabel reads them: NumPy .npy (uint8 or float32, C order)
and IDX (MNIST's format), plain or gzip; and the fingerprint the cache keeps
(rows, shape, dtype and the SHA-256 of the sample bytes), so a dataset can
be checked against the cache it was labeled into.
"""
import gzip
import hashlib
import os
import struct

import numpy as np

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4",
              0x0D: ">f4", 0x0E: ">f8"}


def load(path, mmap=True):
    """The array in a .npy, IDX or IDX.gz file (.npy memory-mapped)."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    if magic[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as f:
            data = f.read()
    elif magic[:2] == b"\x00\x00":
        with open(path, "rb") as f:
            data = f.read()
    else:
        raise ValueError(f"{path}: not .npy, IDX or gzip")
    if len(data) < 4 or data[0] or data[1] or data[2] not in _IDX_TYPES:
        raise ValueError(f"{path}: not an IDX file")
    nd = data[3]
    if nd < 1 or len(data) < 4 + 4 * nd:
        raise ValueError(f"{path}: IDX header truncated")
    shape = struct.unpack(f">{nd}I", data[4:4 + 4 * nd])
    dt = np.dtype(_IDX_TYPES[data[2]])
    want = int(np.prod(shape)) * dt.itemsize
    body = data[4 + 4 * nd:]
    if len(body) != want:
        raise ValueError(f"{path}: IDX holds {len(body)} bytes, its header says {want}")
    a = np.frombuffer(body, dt).reshape(shape)
    return a.astype(dt.newbyteorder("=")) if dt.byteorder == ">" else a


def fingerprint(a):
    """{rows, shape, dtype, sha256} as the cache's meta 'dataset' holds it."""
    a = np.ascontiguousarray(a)
    if a.dtype not in (np.uint8, np.float32):
        raise ValueError(f"dataset dtype {a.dtype}: softlabel reads uint8 or float32")
    h = hashlib.sha256()
    flat = a.reshape(-1).view(np.uint8) if a.dtype == np.uint8 else a.astype("<f4").reshape(-1).view(np.uint8)
    step = 1 << 24
    for i in range(0, flat.size, step):
        h.update(flat[i:i + step])
    return {"rows": a.shape[0], "shape": tuple(a.shape), "dtype": str(a.dtype),
            "sha256": h.hexdigest()}


def preproc_default(dtype):
    """(scale, mean, std) a program uses when nothing else is said:
    1/255, 0, 1 for uint8 rows, 1, 0, 1 for float32 (sl_preproc_default)."""
    return (np.float32(1.0) / np.float32(255.0) if np.dtype(dtype) == np.uint8
            else np.float32(1.0), np.float32(0.0), np.float32(1.0))


def to_f32(rows, scale, mean, std):
    """(x * scale - mean) / std in float32, operation by operation as
    sl_rows_f32 computes it (no fused multiply-add)."""
    x = np.asarray(rows).astype(np.float32)
    return (x * np.float32(scale) - np.float32(mean)) / np.float32(std)

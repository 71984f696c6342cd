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


MAX_CHANNELS = 16  # SL_PREPROC_MAX_CHANNELS


def preproc_default(dtype):
    """(scale, mean, std) a program uses when nothing else is said:
    1/255, 0, 1 for uint8 rows, 1, 0, 1 for float32 (sl_preproc_default)."""
    return (np.float32(1.0) / np.float32(255.0) if np.dtype(dtype) == np.uint8
            else np.float32(1.0), np.float32(0.0), np.float32(1.0))


def _floats(v):
    if v is None:
        return [None]
    if isinstance(v, str):
        return [float(t) for t in v.split(",")]
    if np.ndim(v) == 0:
        return [v]
    return list(v)


def preproc_channels(mean, std):
    """Pair means and stds as sl_preproc_set does: one value goes with
    every channel of the other list, else as many of each. Returns
    (means, stds) lists of one length C in 1..16 (None stays None: the
    dtype's default)."""
    m, s = _floats(mean), _floats(std)
    c = max(len(m), len(s))
    if c > MAX_CHANNELS or not m or not s:
        raise ValueError(f"{len(m)} means and {len(s)} stds: 1 to {MAX_CHANNELS} channels")
    if len(m) != len(s) and len(m) != 1 and len(s) != 1:
        raise ValueError(f"{len(m)} means and {len(s)} stds do not pair: give as many "
                         f"of each, or one for every channel")
    m = m * c if len(m) == 1 else m
    s = s * c if len(s) == 1 else s
    if any(v is not None and float(v) == 0.0 for v in s):
        raise ValueError("a std of 0 divides by 0")
    return m, s


def preproc_pack(scale, mean, std):
    """The wire and cache form (sl_preproc_pack): float32 LE scale,
    mean[C], std[C]; None is NaN (the broker fills in the default)."""
    m, s = preproc_channels(mean, std)
    nan = float("nan")
    vals = [nan if scale is None else scale] + [nan if v is None else v for v in m + s]
    return np.asarray(vals, "<f4").tobytes()


def preproc_unpack(raw):
    """(scale, means, stds) from 4 * (1 + 2C) bytes; ValueError otherwise."""
    if len(raw) < 12 or len(raw) > 4 * (1 + 2 * MAX_CHANNELS) or (len(raw) - 4) % 8:
        raise ValueError(f"preprocessing of {len(raw)} bytes: not 4 * (1 + 2 * channels)")
    v = np.frombuffer(raw, "<f4")
    c = (len(v) - 1) // 2
    return float(v[0]), [float(x) for x in v[1:1 + c]], [float(x) for x in v[1 + c:]]


def preproc_fill(scale, mean, std, dtype):
    """NaN or None entries replaced by the dtype's default
    (sl_preproc_fill); returns float32 (scale, means, stds)."""
    ds, dm, dd = preproc_default(dtype)
    bad = lambda v: v is None or (isinstance(v, float) and np.isnan(v)) or np.isnan(np.float32(v))
    m, s = preproc_channels(mean, std)
    return (ds if bad(scale) else np.float32(scale),
            [dm if bad(v) else np.float32(v) for v in m],
            [dd if bad(v) else np.float32(v) for v in s])


def to_f32(rows, scale, mean, std):
    """(x * scale - mean[c]) / std[c] in float32, operation by operation as
    sl_rows_f32 computes it (no fused multiply-add). mean and std are one
    value, or one per channel for channel-major rows: value j of a row of D
    values is in channel j / (D / C), as PyTorch's NCHW. Keeps the shape."""
    x = np.asarray(rows)
    m, s = preproc_channels(mean, std)
    c = len(m)
    if c == 1:
        return (x.astype(np.float32) * np.float32(scale) - np.float32(m[0])) / np.float32(s[0])
    n = x.shape[0]
    d = int(np.prod(x.shape[1:]))
    if d % c:
        raise ValueError(f"{c} channels do not divide rows of {d} values")
    xf = x.reshape(n, c, d // c).astype(np.float32)
    mv = np.asarray(m, np.float32).reshape(1, c, 1)
    sv = np.asarray(s, np.float32).reshape(1, c, 1)
    return ((xf * np.float32(scale) - mv) / sv).reshape(x.shape)

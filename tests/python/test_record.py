#!/usr/bin/python3
"""softlabel.record against common/sl_label.c itself (tests/integration/python_record.sh).

    test_record.py LIBSLLABEL.so

The C encoder, checker and decoder are called through ctypes on the same
inputs as the Python ones:
- encode: byte-identical records for random logits (spreads from 1e-3 to
  1e3, ties, f32 / f16 / top-k with k 1..C-1), and the same refusals
  (non-finite logits, values half cannot hold);
- check: 3000 mutated records (a byte flipped or changed, truncated,
  extended) accepted or refused alike, CRC failures flagged as corrupt;
- probs: equal (within one float32 ulp) at the stored and other
  temperatures, top-k rows whose kept mass rounds over 1 included.
"""
import ctypes
import sys

import numpy as np

from softlabel import record as R

lib = ctypes.CDLL(sys.argv[1])


class Fmt(ctypes.Structure):
    _fields_ = [("encoding", ctypes.c_int), ("classes", ctypes.c_uint32), ("k", ctypes.c_uint16)]


lib.sl_label_encode.argtypes = [ctypes.POINTER(Fmt), ctypes.c_void_p, ctypes.c_float,
                                ctypes.c_void_p, ctypes.c_void_p]
lib.sl_label_check.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.POINTER(Fmt),
                               ctypes.POINTER(Fmt), ctypes.c_void_p]
lib.sl_label_probs.argtypes = [ctypes.c_void_p, ctypes.c_float, ctypes.c_float, ctypes.c_void_p]
lib.sl_label_probs.restype = None
SL_ECORRUPT = None
checks = 0


def ok(cond, what):
    global checks
    if not cond:
        sys.exit(f"FAIL: {what}")
    checks += 1


def c_encode(fmt, z, T):
    f = Fmt(fmt.encoding, fmt.classes, fmt.k)
    z = np.ascontiguousarray(z, np.float32)
    scratch = np.zeros(2 * fmt.classes, np.float32)
    out = ctypes.create_string_buffer(fmt.size)
    rc = lib.sl_label_encode(ctypes.byref(f), z.ctypes.data, T, scratch.ctypes.data, out)
    return rc, out.raw


def c_check(buf, fmt):
    f = Fmt(fmt.encoding, fmt.classes, fmt.k)
    b = ctypes.create_string_buffer(bytes(buf), max(1, len(buf)))
    why = ctypes.create_string_buffer(4096)
    return lib.sl_label_check(b, len(buf), ctypes.byref(f), None, why)


def c_probs(rec, classes, ts, t):
    p = np.zeros(classes, np.float32)
    b = ctypes.create_string_buffer(rec, len(rec))
    lib.sl_label_probs(b, ts, t, p.ctypes.data)
    return p


rng = np.random.default_rng(3)
fmts = []
for C in (2, 3, 10, 100, 1000):
    fmts += [R.Format(R.F32, C), R.Format(R.F16, C)]
    fmts += [R.Format(R.TOPK, C, k) for k in sorted({1, min(2, C - 1), min(5, C - 1), min(C - 1, 1024)})]
recs = []
for fmt in fmts:
    for trial in range(12):
        scale = 10.0 ** rng.uniform(-3, 3)
        z = (rng.standard_normal(fmt.classes) * scale).astype(np.float32)
        if trial % 4 == 1:
            z[: fmt.classes // 2] = z[0]  # ties
        if trial % 4 == 2:
            z = np.round(z)  # many equal values
        T = float(np.float32(10.0 ** rng.uniform(-1, 1)))
        rc, cbytes = c_encode(fmt, z, T)
        try:
            py = R.encode(z[None, :], fmt, T)
            ok(rc == 0 and py == cbytes, f"{fmt} T={T}: encoder bytes differ (C rc {rc})")
            recs.append((fmt, py, T))
        except ValueError:
            ok(rc != 0, f"{fmt} T={T}: Python refused what C encodes")
for bad in (np.inf, np.nan):
    z = np.zeros(10, np.float32)
    z[3] = bad
    for fmt in (R.Format(R.F32, 10), R.Format(R.TOPK, 10, 3)):
        rc, _ = c_encode(fmt, z, 1.0)
        try:
            R.encode(z[None, :], fmt, 1.0)
            ok(False, "non-finite logits encoded")
        except ValueError:
            ok(rc != 0, "C encodes non-finite logits")
z = np.zeros(10, np.float32)
z[0] = 70000.0
for fmt, refused in ((R.Format(R.F32, 10), False), (R.Format(R.F16, 10), True),
                     (R.Format(R.TOPK, 10, 2), True)):
    rc, _ = c_encode(fmt, z, 1.0)
    try:
        R.encode(z[None, :], fmt, 1.0)
        ok(not refused and rc == 0, f"{fmt}: 70000 encoded")
    except ValueError:
        ok(refused and rc != 0, f"{fmt}: 70000 refused")
print(f"encode: {len(recs)} records byte-identical to sl_label_encode, refusals alike")

# --- check on mutated records ---------------------------------------------------
agree = corrupt = 0
for i in range(3000):
    fmt, rec, _ = recs[rng.integers(len(recs))]
    b = bytearray(rec)
    kind = i % 5
    if kind == 0:
        j = rng.integers(len(b))
        b[j] ^= 1 << rng.integers(8)
    elif kind == 1:
        b[rng.integers(min(12, len(b)))] = rng.integers(256)
    elif kind == 2:
        b = b[:rng.integers(len(b))]
    elif kind == 3:
        b += bytes(rng.integers(0, 256, rng.integers(1, 5)).tolist())
    # kind 4: unchanged
    crc_rc = c_check(b, fmt)
    try:
        R.check(bytes(b), fmt)
        ok(crc_rc == 0, f"Python accepts a record C refuses ({crc_rc})")
    except R.RecordError as e:
        ok(crc_rc != 0, f"Python refuses a record C accepts: {e}")
        corrupt += e.corrupt
    agree += 1
ok(corrupt > 300, f"only {corrupt} CRC failures flagged as corrupt")
print(f"check: {agree} mutated records accepted or refused as sl_label_check does "
      f"({corrupt} as CRC failures)")

# --- probs ------------------------------------------------------------------------
worst = 0
for fmt, rec, ts in recs:
    for t in (ts, 1.0, 0.25, 7.5):
        t = float(np.float32(t))
        a = R.probs([rec], fmt, ts, t)[0]
        b = c_probs(rec, fmt.classes, ts, t)
        np.testing.assert_array_max_ulp(a, b, maxulp=1)
        worst = max(worst, int(np.max(np.abs(a.view(np.int32).astype(np.int64) -
                                             b.view(np.int32).astype(np.int64)))))
        checks += 1
print(f"probs: {len(recs) * 4} distributions equal to sl_label_probs (max {worst} ulp)")
print(f"{checks} checks passed")

"""Soft-label records: the values of the cache's ``labels`` database and of
a RESULT message's blob, byte for byte as ``common/sl_label.c`` writes them.

A record, little-endian::

    u8  encoding   1 dense f32, 2 dense f16, 3 top-k
    u8  0          reserved
    u16 k          top-k only (0 for dense)
    u32 classes
    u32 crc32      zlib's, of every byte after this field
    dense:  classes values of z / T (f32 or f16)
    top-k:  f32 lse, k u32 class indices, k f16 values of z / T, largest first

:func:`check` mirrors ``sl_label_check`` rule for rule; :func:`probs`
mirrors ``sl_label_probs`` operation for operation (float64 arithmetic on
the stored float32 / float16 values, sums in class order, one rounding to
float32 at the end), so a distribution read here equals the one
``softlabel export`` and ``softlabel-student`` compute from the same record.
:func:`encode` mirrors ``sl_label_encode`` (used by the Python worker).
"""
import struct
import zlib

import numpy as np

F32, F16, TOPK = 1, 2, 3
HEADER_BYTES = 12
MAX_CLASSES = 65536
MAX_K = 1024
F16_MAX = 65504.0

_HEAD = struct.Struct("<BBHII")


class RecordError(ValueError):
    """A record that fails its check: bad header, size, CRC or values.

    ``corrupt`` is True when the CRC does not match the bytes (a damaged
    record on disk), False for any other malformation."""

    def __init__(self, message, corrupt=False):
        super().__init__(message)
        self.corrupt = corrupt


class Format:
    """How the records of one teacher are written: encoding, classes, k."""

    __slots__ = ("encoding", "classes", "k")

    def __init__(self, encoding, classes, k=0):
        self.encoding, self.classes, self.k = int(encoding), int(classes), int(k)
        if not valid(self.encoding, self.classes, self.k):
            raise ValueError(f"invalid record format: encoding {self.encoding}, "
                             f"classes {self.classes}, k {self.k}")

    @classmethod
    def parse(cls, text, classes):
        """"f32", "f16" or "topk:K" (as ``--encoding`` takes it)."""
        if text == "f32":
            return cls(F32, classes, 0)
        if text == "f16":
            return cls(F16, classes, 0)
        if text.startswith("topk:") and text[5:].isdigit() and text[5:].isascii():
            k = int(text[5:])
            if 1 <= k <= MAX_K:
                return cls(TOPK, classes, k)
        raise ValueError(f"encoding '{text}' is not f32, f16 or topk:K")

    @property
    def name(self):
        return {F32: "f32", F16: "f16"}.get(self.encoding, f"topk:{self.k}")

    @property
    def size(self):
        """Bytes of one record, header included."""
        return size_of(self.encoding, self.classes, self.k)

    def __eq__(self, other):
        return (isinstance(other, Format) and self.encoding == other.encoding
                and self.classes == other.classes and self.k == other.k)

    def __repr__(self):
        return f"Format({self.name}, classes={self.classes})"


def valid(encoding, classes, k):
    if classes < 2 or classes > MAX_CLASSES:
        return False
    if encoding in (F32, F16):
        return k == 0
    if encoding == TOPK:
        return 1 <= k < classes and k <= MAX_K
    return False


def size_of(encoding, classes, k):
    if encoding == F32:
        return HEADER_BYTES + 4 * classes
    if encoding == F16:
        return HEADER_BYTES + 2 * classes
    return HEADER_BYTES + 4 + 6 * k


def _finite_f16(h):
    return (h & 0x7C00) != 0x7C00


def check(buf, expect=None):
    """Check one record as ``sl_label_check`` does; return its Format.

    Raises RecordError (``corrupt`` set for a CRC mismatch) naming the field.
    With ``expect`` (a Format) the header must equal it."""
    buf = bytes(buf)
    n = len(buf)
    if n < HEADER_BYTES:
        raise RecordError(f"label record of {n} bytes is shorter than its "
                          f"{HEADER_BYTES}-byte header")
    enc, res, k, classes, crc = _HEAD.unpack_from(buf)
    if enc not in (F32, F16, TOPK):
        raise RecordError(f"label encoding {enc} is not 1 (f32), 2 (f16) or 3 (topk)")
    if res != 0:
        raise RecordError(f"label reserved byte is {res}, not 0")
    if classes < 2 or classes > MAX_CLASSES:
        raise RecordError(f"label classes {classes} outside [2, {MAX_CLASSES}]")
    if not valid(enc, classes, k):
        if enc != TOPK:
            raise RecordError(f"label k is {k} in a dense record, not 0")
        raise RecordError(f"label k {k} outside [1, min(classes - 1 = "
                          f"{classes - 1}, {MAX_K})]")
    if expect is not None:
        if expect.encoding != enc:
            raise RecordError(f"label encoding {enc}, expected {expect.encoding}")
        if expect.classes != classes:
            raise RecordError(f"label classes {classes}, expected {expect.classes}")
        if expect.k != k:
            raise RecordError(f"label k {k}, expected {expect.k}")
    want = size_of(enc, classes, k)
    if n != want:
        raise RecordError(f"label record is {n} bytes, its header says {want}")
    got = zlib.crc32(buf[HEADER_BYTES:]) & 0xFFFFFFFF
    if got != crc:
        raise RecordError(f"label crc32 {crc:08x} does not match its bytes "
                          f"({got:08x})", corrupt=True)
    body = buf[HEADER_BYTES:]
    if enc == F32:
        v = np.frombuffer(body, "<f4")
        bad = np.flatnonzero(~np.isfinite(v))
        if bad.size:
            raise RecordError(f"label value {bad[0]} is not finite")
    elif enc == F16:
        h = np.frombuffer(body, "<u2")
        bad = np.flatnonzero((h & 0x7C00) == 0x7C00)
        if bad.size:
            raise RecordError(f"label value {bad[0]} is not finite")
    else:
        (lse,) = struct.unpack_from("<f", body)
        if not np.isfinite(lse):
            raise RecordError("label lse is not finite")
        idx = np.frombuffer(body, "<u4", k, 4)
        h = np.frombuffer(body, "<u2", k, 4 + 4 * k)
        seen = set()
        prev = 0.0
        for j in range(k):
            c = int(idx[j])
            if c >= classes:
                raise RecordError(f"label top-k index {j} is class {c} of {classes}")
            if c in seen:
                raise RecordError(f"label top-k class {c} appears twice")
            seen.add(c)
            if not _finite_f16(int(h[j])):
                raise RecordError(f"label top-k value {j} is not finite")
            x = float(h[j:j + 1].view("<f2")[0])
            if j > 0 and x > prev:
                raise RecordError(f"label top-k value {j} ({x:g}) above value "
                                  f"{j - 1} ({prev:g}): not largest first")
            if j == 0 and np.float32(lse) < x:
                raise RecordError(f"label lse {lse:g} below the largest value {x:g}")
            prev = x
    return Format(enc, classes, k)


# ---- decoding many records of one format at once -------------------------

def _body(recs, fmt):
    """(n, size - 12) uint8 bodies of n records of one format, back to back."""
    a = np.frombuffer(b"".join(recs), np.uint8).reshape(len(recs), fmt.size)
    return a[:, HEADER_BYTES:]


def values(recs, fmt):
    """The stored z / T_stored of dense records, (n, classes) float32."""
    if fmt.encoding == TOPK:
        raise ValueError("a top-k record keeps only its k largest values")
    body = np.ascontiguousarray(_body(recs, fmt))
    dt = "<f4" if fmt.encoding == F32 else "<f2"
    return body.view(dt).astype(np.float32).reshape(len(recs), fmt.classes)


def topk_parts(recs, fmt):
    """lse (n,) float32, indices (n, k) uint32, values (n, k) float32."""
    body = np.ascontiguousarray(_body(recs, fmt))
    n, k = len(recs), fmt.k
    lse = body[:, 0:4].copy().view("<f4").reshape(n)
    idx = body[:, 4:4 + 4 * k].copy().view("<u4").reshape(n, k)
    val = body[:, 4 + 4 * k:].copy().view("<f2").astype(np.float32).reshape(n, k)
    return lse, idx, val


def _seqsum(a):
    """Row sums in column order (as the C loops add), float64."""
    return np.add.accumulate(a, axis=1)[:, -1]


def probs(recs, fmt, t_stored, t):
    """Distributions at temperature t from records stored at t_stored.

    ``sl_label_probs`` line for line: dense records are re-softened exactly,
    softmax(v * t_stored / t) max-subtracted; top-k records treat every
    unkept class as having the one value that carries the mass they did not
    keep (exact at t == t_stored). Returns (n, classes) float32."""
    t_stored = float(np.float32(t_stored))
    t = float(np.float32(t))
    if not (t_stored > 0 and t > 0):
        raise ValueError("temperatures must be > 0")
    s = t_stored / t
    n = len(recs)
    if n == 0:
        return np.zeros((0, fmt.classes), np.float32)
    if fmt.encoding != TOPK:
        v = values(recs, fmt).astype(np.float64)
        m = v.max(axis=1, keepdims=True)
        e = np.exp((v - m) * s)
        return (e / _seqsum(e)[:, None]).astype(np.float32)
    lse32, idx, val32 = topk_parts(recs, fmt)
    lse = lse32.astype(np.float64)[:, None]
    val = val32.astype(np.float64)
    others = float(fmt.classes - fmt.k)
    kept = _seqsum(np.exp(val - lse))
    r = np.where(kept < 1.0, 1.0 - kept, 0.0)
    m = val[:, 0].copy()
    pos = r > 0.0
    with np.errstate(divide="ignore"):
        u = np.where(pos, lse[:, 0] + np.log(np.where(pos, r, 1.0) / others), 0.0)
    m = np.where(pos & (u > m), u, m)
    ek = np.exp((val - m[:, None]) * s)
    z = _seqsum(ek)
    q = np.where(pos, np.exp((u - m) * s), 0.0)
    z = z + others * q
    out = np.empty((n, fmt.classes), np.float32)
    out[:] = (q / z).astype(np.float32)[:, None]
    rows = np.repeat(np.arange(n), fmt.k)
    out[rows, idx.reshape(-1)] = (ek / z[:, None]).astype(np.float32).reshape(-1)
    return out


# ---- encoding --------------------------------------------------------------

def encode(logits, fmt, t):
    """Records for a (n, classes) array of logits at temperature t, as
    ``sl_label_encode`` writes them (z / T in float32, f16 round to nearest
    even, top-k largest first with ties to the lower class, lse in float64
    lifted to the largest kept half). Returns n * fmt.size bytes.

    Raises ValueError for non-finite logits, a z / T that overflows float,
    or a value half cannot hold where the encoding stores it as half."""
    z = np.asarray(logits, dtype=np.float32)
    if z.ndim != 2 or z.shape[1] != fmt.classes:
        raise ValueError(f"logits of shape {z.shape}, want (n, {fmt.classes})")
    t32 = np.float32(t)
    if not (np.isfinite(t32) and t32 > 0):
        raise ValueError("temperature must be positive and finite")
    with np.errstate(over="ignore", invalid="ignore"):
        v = z / t32
    bad = ~(np.isfinite(z).all(axis=1) & np.isfinite(v).all(axis=1))
    if bad.any():
        raise ValueError(f"row {int(np.flatnonzero(bad)[0])}: logits not "
                         f"finite, or z / T overflows float")
    n, C = z.shape
    if fmt.encoding == F32:
        body = v.astype("<f4").view(np.uint8).reshape(n, 4 * C)
    elif fmt.encoding == F16:
        big = (np.abs(v) > F16_MAX).any(axis=1)
        if big.any():
            raise ValueError(f"row {int(np.flatnonzero(big)[0])}: |z / T| > "
                             f"65504 does not fit f16")
        body = v.astype("<f2").view(np.uint8).reshape(n, 2 * C)
    else:
        k = fmt.k
        # Stable sort of -v: largest first, ties in class order.
        order = np.argsort(-v, axis=1, kind="stable")[:, :k]
        top = np.take_along_axis(v, order, axis=1)
        big = (np.abs(top) > F16_MAX).any(axis=1)
        if big.any():
            raise ValueError(f"row {int(np.flatnonzero(big)[0])}: a kept |z / T| "
                             f"> 65504 does not fit f16")
        m = top[:, :1].astype(np.float64)
        lse = (m[:, 0] + np.log(_seqsum(np.exp(v.astype(np.float64) - m)))).astype(np.float32)
        h = top.astype("<f2")
        lse = np.maximum(lse, h[:, 0].astype(np.float32))
        if not np.isfinite(lse).all():
            raise ValueError("lse overflows float")
        body = np.concatenate([lse.astype("<f4").view(np.uint8).reshape(n, 4),
                               order.astype("<u4").view(np.uint8).reshape(n, 4 * k),
                               h.view(np.uint8).reshape(n, 2 * k)], axis=1)
    body = np.ascontiguousarray(body)
    out = bytearray(n * fmt.size)
    for i in range(n):
        b = body[i].tobytes()
        o = i * fmt.size
        out[o:o + HEADER_BYTES] = _HEAD.pack(fmt.encoding, 0, fmt.k, fmt.classes,
                                             zlib.crc32(b) & 0xFFFFFFFF)
        out[o + HEADER_BYTES:o + fmt.size] = b
    return bytes(out)

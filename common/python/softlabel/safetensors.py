"""safetensors files in pure Python with NumPy: no pip package needed
(Debian 12 does not package ``safetensors``).

The format: an 8-byte little-endian header length N, N bytes of JSON
(``{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__":
{str: str}}``, padded with spaces to a multiple of 8), then the raw
little-endian tensor bytes. Files written here are laid out as
``safetensors.torch.save_file`` lays them out (tensors ordered by alignment,
then name); files from any writer load.

    from softlabel.safetensors import load_file, save_file, load
    tensors = load_file("student.safetensors")     # {name: np.ndarray}
    tensors, metadata = load("student.safetensors")
    save_file(tensors, "out.safetensors", metadata={"format": "pt"})

BF16 has no NumPy type: ``load`` widens it to float32 exactly (bfloat16 is
the top half of a float32); ``softlabel.torch.load_file`` keeps it bfloat16.
"""
import json
import os
import struct

import numpy as np

MAX_HEADER_BYTES = 100 * 1024 * 1024  # the reference implementation's limit

_NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
       "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2",
       "U8": "u1", "BOOL": "?"}
_SIZE = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2,
         "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1}
_FROM_NP = {np.dtype(v).newbyteorder("<") if np.dtype(v).itemsize > 1 else np.dtype(v): k
            for k, v in _NP.items()}


class SafetensorsError(ValueError):
    """The file is not valid safetensors (names the file and the field)."""


def read_header(raw, path="<bytes>"):
    """Parse and check the header of a whole file's bytes: returns
    (entries {name: (dtype, shape, begin, end)}, metadata, data offset).
    Every tensor must lie inside the file, have as many bytes as its shape
    says, and no two may overlap."""
    if len(raw) < 8:
        raise SafetensorsError(f"{path}: {len(raw)} bytes, shorter than the "
                               f"8-byte header length")
    (n,) = struct.unpack_from("<Q", raw)
    if n > MAX_HEADER_BYTES or n > len(raw) - 8:
        raise SafetensorsError(f"{path}: header of {n} bytes in a file of "
                               f"{len(raw)}: not a safetensors file")
    try:
        header = json.loads(bytes(raw[8:8 + n]).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise SafetensorsError(f"{path}: header is not JSON: {e}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                             for k, v in meta.items()):
        raise SafetensorsError(f"{path}: __metadata__ is not a map of strings")
    body = len(raw) - 8 - n
    entries, spans = {}, []
    for name, e in header.items():
        try:
            dt, shape, (b, end) = e["dtype"], [int(d) for d in e["shape"]], e["data_offsets"]
            b, end = int(b), int(end)
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(f"{path}: tensor '{name}' lacks dtype, shape "
                                   f"or data_offsets") from None
        if dt not in _SIZE:
            raise SafetensorsError(f"{path}: tensor '{name}' has dtype {dt}")
        if any(d < 0 for d in shape) or not 0 <= b <= end <= body:
            raise SafetensorsError(f"{path}: tensor '{name}': offsets [{b}, {end}] "
                                   f"outside the {body} data bytes")
        want = int(np.prod(shape, dtype=np.int64)) * _SIZE[dt]
        if end - b != want:
            raise SafetensorsError(f"{path}: tensor '{name}' of shape {shape} "
                                   f"{dt} needs {want} bytes, has {end - b}")
        entries[name] = (dt, tuple(shape), b, end)
        spans.append((b, end, name))
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise SafetensorsError(f"{path}: tensors '{n0}' and '{n1}' overlap")
    return entries, meta, 8 + n


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _bf16_to_f32(u16):
    return (u16.astype(np.uint32) << 16).view(np.float32)


def load(path):
    """(tensors {name: np.ndarray}, metadata {str: str}) from a file.
    Arrays are native-endian copies, owned by the caller."""
    path = os.fspath(path)
    raw = _read(path)
    entries, meta, off = read_header(raw, path)
    out = {}
    for name, (dt, shape, b, e) in entries.items():
        buf = raw[off + b:off + e]
        if dt == "BF16":
            a = _bf16_to_f32(np.frombuffer(buf, "<u2"))
        else:
            a = np.frombuffer(buf, _NP[dt])
        out[name] = a.astype(a.dtype.newbyteorder("=")).reshape(shape)
    return out, meta


def load_file(path):
    """{name: np.ndarray}, like ``safetensors.numpy.load_file``."""
    return load(path)[0]


def metadata(path):
    """The ``__metadata__`` map alone."""
    path = os.fspath(path)
    return read_header(_read(path), path)[1]


def serialize(tensors, metadata=None, dtypes=None):
    """The bytes of a safetensors file. tensors: {name: array-like};
    dtypes: optional {name: "BF16"} for arrays given as uint16 bit patterns
    (what softlabel.torch passes for bfloat16 tensors)."""
    dtypes = dtypes or {}
    items = []
    for name, t in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"tensor name {name!r} is not a string")
        a = np.ascontiguousarray(t)
        if name in dtypes:
            dt = dtypes[name]
        else:
            key = a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype
            if key not in _FROM_NP:
                raise TypeError(f"tensor '{name}': dtype {a.dtype} has no safetensors type")
            dt = _FROM_NP[key]
        le = a.astype(a.dtype.newbyteorder("<")) if a.dtype.itemsize > 1 else a
        items.append((name, dt, a.shape, le.tobytes()))
    # safetensors' order: larger alignment first, then by name.
    items.sort(key=lambda it: (-_SIZE[it[1]], it[0]))
    header, offset = {}, 0
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("metadata must map str to str")
        header["__metadata__"] = dict(metadata)  # first, as safetensors writes it
    for name, dt, shape, blob in items:
        header[name] = {"dtype": dt, "shape": list(shape),
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(it[3] for it in items)


def save_file(tensors, path, metadata=None):
    """Write {name: array} (and optional {str: str} metadata) to path,
    atomically (a temporary file renamed over it)."""
    data = serialize(tensors, metadata)
    path = os.fspath(path)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)

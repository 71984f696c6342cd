#!/usr/bin/env python3
"""Write the fuzz seed corpora into tests/fuzz/corpus/<target>/.

Python standard library only. Every seed is a small *valid* input in the
format its decoder reads (except where noted), so the fuzzer starts from the
accepting paths and mutates outward. Deterministic: running it again writes
the same bytes (gzip mtime 0). Run from the repository root:

    python3 tests/fuzz/make_corpus.py
"""
import gzip
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


# --- a minimal msgpack packer ------------------------------------------------

def mp(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, F32):
        return b"\xca" + struct.pack(">f", v.x)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, int):
        if 0 <= v < 128:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if 0 <= v < 1 << 8:
            return b"\xcc" + struct.pack(">B", v)
        if 0 <= v < 1 << 16:
            return b"\xcd" + struct.pack(">H", v)
        if 0 <= v < 1 << 32:
            return b"\xce" + struct.pack(">I", v)
        if 0 <= v:
            return b"\xcf" + struct.pack(">Q", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, str):
        b = v.encode()
        if len(b) < 32:
            return bytes([0xA0 | len(b)]) + b
        if len(b) < 256:
            return b"\xd9" + bytes([len(b)]) + b
        return b"\xda" + struct.pack(">H", len(b)) + b
    if isinstance(v, bytes):
        if len(v) < 256:
            return b"\xc4" + bytes([len(v)]) + v
        if len(v) < 65536:
            return b"\xc5" + struct.pack(">H", len(v)) + v
        return b"\xc6" + struct.pack(">I", len(v)) + v
    if isinstance(v, list):
        head = bytes([0x90 | len(v)]) if len(v) < 16 else \
            b"\xdc" + struct.pack(">H", len(v))
        return head + b"".join(mp(x) for x in v)
    if isinstance(v, dict):
        head = bytes([0x80 | len(v)]) if len(v) < 16 else \
            b"\xde" + struct.pack(">H", len(v))
        return head + b"".join(mp(k) + mp(x) for k, x in v.items())
    raise TypeError(type(v))


class F32:
    def __init__(self, x):
        self.x = x


# --- soft-label records (common/sl_label.h) ----------------------------------

def f16(x):
    return struct.pack("<e", x)


def record(enc, classes, values, k=0, lse=None, idx=None):
    if enc == 1:
        body = b"".join(struct.pack("<f", v) for v in values)
    elif enc == 2:
        body = b"".join(f16(v) for v in values)
    else:
        body = struct.pack("<f", lse) + \
            b"".join(struct.pack("<I", i) for i in idx) + \
            b"".join(f16(v) for v in values)
    crc = zlib.crc32(body) & 0xFFFFFFFF
    return struct.pack("<BBHII", enc, 0, k, classes, crc) + body


def records():
    return {
        "f32_c3": record(1, 3, [0.5, -1.0, 2.0]),
        "f32_c10": record(1, 10, [0.1 * i - 0.4 for i in range(10)]),
        "f16_c4": record(2, 4, [1.0, 0.5, -0.25, 3.0]),
        "f16_c2_equal": record(2, 2, [0.0, 0.0]),
        "topk_c10_k3": record(3, 10, [2.0, 1.0, 0.5], k=3, lse=2.5,
                              idx=[7, 2, 9]),
        "topk_c5_k1": record(3, 5, [0.0], k=1, lse=0.0, idx=[4]),
    }


# --- wire messages (common/sl_proto.c) ----------------------------------------

def msg(t, **kv):
    d = {"v": 1, "t": t}
    d.update(kv)
    return mp(d)


# sl_view_recipe_pack of "rrc=0.35:1,crop=4,flip": version 1, flip, pad 4.
VRECIPE = struct.pack("<BBHff", 1, 1, 4, 0.35, 1.0)


def messages():
    blob = record(1, 3, [0.5, -1.0, 2.0]) + record(1, 3, [0.0, 1.0, -2.0])
    return {
        "hello": msg(1, worker="w1", teacher="mlp", model="ab" * 32,
                     temp=F32(4.0), enc=3, classes=10, k=3, dim=784,
                     dataset=b"", pre=b"\x00\x00\xc0\x7f" * 3, held=[1, 5]),
        "hello_local": msg(1, worker="w2", teacher="t", model="0" * 64,
                           temp=2.0, enc=1, classes=3, k=0, dim=4,
                           dataset=bytes(range(32)),
                           pre=bytes(12), held=[]),
        "welcome": msg(2, teacher=0, hb_ms=1000, lease_ms=30000,
                       rows=60000, shard_rows=1024, row_bytes=784, dtype=1,
                       max_msg=67108864),
        # views (issue 12): the optional keys
        "hello_views": msg(1, worker="w3", teacher="cnn", model="cd" * 32,
                           temp=F32(4.0), enc=1, classes=10, k=0, dim=784,
                           dataset=b"", pre=b"\x00\x00\xc0\x7f" * 3, held=[9],
                           views=8, vrecipe=VRECIPE, vseed=7),
        "welcome_views": msg(2, teacher=1, hb_ms=500, lease_ms=2000,
                             rows=60000, shard_rows=250, row_bytes=784, dtype=1,
                             max_msg=67108864, views=8, vrecipe=VRECIPE,
                             vseed=7, vh=28, vw=28),
        "refuse": msg(3, reason="model hash differs"),
        "ready": msg(4, credit=4),
        "task": msg(5, shard=3, first=3072, n=2, data=bytes(8)),
        "task_nodata": msg(5, shard=0, first=0, n=1024, data=b""),
        "heartbeat": msg(6, held=[3, 4, 70000]),
        "result": msg(7, shard=3, teacher=0, n=2, blob=blob),
        "ack": msg(8, shard=3, status=1, reason=""),
        "reset": msg(9, reason="unknown worker"),
        "status": msg(10),
        "status_reply": msg(11, json='{"rows":10,"shards":[1,2]}'),
        "done": msg(12, reason="all shards done"),
        # the read service (softlabel serve)
        "meta": msg(14),
        "meta_reply": msg(15, meta=list(metas().values())[0]),
        "shards": msg(16, teacher=0, **{"from": 0}),
        "shards_reply": msg(17, teacher=0, next=90, last=0,
                            runs=struct.pack("<4Q", 17, 3, 40, 50),
                            **{"from": 17}),
        "records_list": msg(18, teacher=1, first=0, n=3,
                            samples=struct.pack("<3Q", 9, 1, 9)),
        "records_range": msg(18, teacher=0, first=1000, n=4096, samples=b""),
        "records_views": msg(18, teacher=1, first=0, n=3,
                             samples=struct.pack("<3Q", 9, 9, 4),
                             views=struct.pack("<3I", 0, 7, 2)),
        "records_reply": msg(19, teacher=0, first=0, n=3,
                             state=bytes([1, 0, 2]),
                             blob=record(1, 3, [0.5, -1.0, 2.0])),
        "error": msg(20, code=31996, reason="no job in the cache yet"),
    }


# --- META_REPLY's blob (common/sl_meta.h): keys in this order ----------------

def mp_ordered(pairs):
    return bytes([0x80 | len(pairs)]) + b"".join(mp(k) + v for k, v in pairs)


def meta_job(rows=60000, shape=(60000, 28, 28)):
    return mp_ordered([("path", mp("/data/train-images-idx3-ubyte.gz")),
                       ("rows", mp(rows)), ("shape", mp(list(shape))),
                       ("dtype", mp(1)), ("sha256", mp(bytes(range(32)))),
                       ("shard_rows", mp(1024)), ("first", mp(0)), ("end", mp(rows))])


def meta_teacher(index, name, enc, classes, k, pre=b"", views=0):
    pairs = [("index", mp(index)), ("name", mp(name)),
             ("model", mp("ab" * 32)), ("temp", mp(F32(4.0))),
             ("enc", mp(enc)), ("classes", mp(classes)),
             ("k", mp(k)), ("pre", mp(pre))]
    if views:
        pairs += [("views", mp(views)), ("vrecipe", mp(VRECIPE)),
                  ("vseed", mp(7))]
    return mp_ordered(pairs)


def metas():
    pre3 = struct.pack("<7f", 1 / 255, 0.485, 0.456, 0.406, 0.229, 0.224,
                       0.225)
    return {
        "one_teacher": mp_ordered([("job", meta_job()), ("teachers", bytes(
            [0x91]) + meta_teacher(0, "mlp", 1, 10, 0))]),
        "three_teachers": mp_ordered([("job", meta_job()), ("teachers", bytes(
            [0x93]) + meta_teacher(0, "a", 3, 1000, 5, pre3) +
            meta_teacher(2, "b.v2", 2, 10, 0, struct.pack("<3f", 1, 0, 1)) +
            meta_teacher(9, "c@x:1", 1, 2, 0))]),
        "views_teacher": mp_ordered([("job", meta_job()), ("teachers", bytes(
            [0x92]) + meta_teacher(0, "plain", 1, 10, 0) +
            meta_teacher(1, "cnn", 3, 10, 5, views=8))]),
        "no_teacher": mp_ordered([("job", meta_job(5, (5, 3))),
                                  ("teachers", bytes([0x90]))]),
    }


def msgpack_values():
    return {
        "nested": mp({"a": [1, -3, 300, 70000, 1 << 40, -(1 << 40)],
                      "b": {"c": [True, False, None]},
                      "f": [F32(1.5), 2.25], "s": "x" * 40,
                      "bin": bytes(300)}),
        "deep": mp([[[[[[[[1]]]]]]]]),
        "ext": b"\xd4\x01\x02" + b"\xc7\x03\x05abc" + b"\xd5\x7f\x00\x01",
        "str16": mp("y" * 300),
        "array16": mp(list(range(20))),
        "map16": mp({str(i): i for i in range(17)}),
    }


# --- .npy and IDX (common/sl_data.h) ------------------------------------------

def npy(descr, shape, data):
    sh = "(" + "".join("%d," % s for s in shape) + ")" if len(shape) == 1 \
        else "(" + ", ".join(str(s) for s in shape) + ")"
    h = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, sh)
    pad = 64 - (10 + len(h) + 1) % 64
    h = h + " " * (pad % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h.encode() + data


def idx(code, shape, data):
    return bytes([0, 0, code, len(shape)]) + \
        b"".join(struct.pack(">I", s) for s in shape) + data


def npys():
    return {
        "u1_2x2x3": npy("|u1", (2, 2, 3), bytes(range(12))),
        "f4_3x2": npy("<f4", (3, 2),
                      struct.pack("<6f", 0, 1, -1, 0.5, 2, 3)),
        "i8_labels": npy("<i8", (4,), struct.pack("<4q", 0, 1, -1, 9)),
        "i4_col": npy("<i4", (3, 1), struct.pack("<3i", 2, 0, 1)),
        "u1_empty": npy("|u1", (0, 4), b""),
    }


def idxs():
    img = idx(0x08, (2, 3, 3), bytes(range(18)))
    lab = idx(0x08, (4,), bytes([1, 0, 9, 3]))
    flt = idx(0x0D, (2, 2), struct.pack(">4f", 0.5, -1, 2, 3))
    out = {"images_u8": img, "labels_u8": lab, "f32_2x2": flt}
    for name, b in list(out.items()):
        out[name + ".gz"] = gzip.compress(b, mtime=0)
    return out


# --- checkpoint (student-trainer/checkpoint.h) --------------------------------
# The fuzz target decodes into a 4-3-2 MLP (23 parameters) with SGD or Adam,
# an all-zero digest and no cache mask: these seeds match it.

def checkpoint(kind, version=1):
    sizes = [4, 3, 2]
    n = sum(sizes[i] * sizes[i + 1] + sizes[i + 1] for i in range(2))
    b = b"SLCKPT\x00" + bytes([version]) + struct.pack("<I", 2)
    b += b"".join(struct.pack("<I", s) for s in sizes)
    b += struct.pack("<I6fQ", kind, 0.01, 0.9, 0.9, 0.999, 1e-8, 0.0, 17)
    b += struct.pack("<4Q", 1, 2, 3, 0x9E3779B97F4A7C15)
    b += struct.pack("<IQQ", 1, 5, 17)
    if version >= 2:  # the epoch's partial loss sums, then the settings
        b += struct.pack("<dQ", 12.5, 40)
        b += bytes(32) + struct.pack("<I", 6) + b"--lr=1"
    else:
        b += bytes(32)
    b += struct.pack("<I", 0)
    vecs = 3 if kind == 2 else 2
    b += b"".join(struct.pack("<f", (i % 7) * 0.125 - 0.25)
                  for i in range(vecs * n))
    return b + struct.pack("<I", zlib.crc32(b) & 0xFFFFFFFF)


# --- ONNX models (common/graph/onnx.h) -----------------------------------------
# Small node-test models copied from Debian's libonnx-testdata (ONNX's own
# backend tests: one op each), and three whole graphs written here with a
# minimal protobuf encoder: an MLP, a CNN block and the Shape -> Gather ->
# Concat -> Reshape chain exporters emit for a dynamic batch.

ONNX_TESTDATA = "/usr/share/libonnx-testdata/data/node"
ONNX_NODE_TESTS = [
    "test_relu", "test_add_bcast", "test_sub", "test_mul", "test_div",
    "test_pow", "test_sqrt", "test_erf", "test_matmul_2d",
    "test_gemm_all_attributes", "test_conv_with_strides_padding",
    "test_maxpool_2d_pads", "test_averagepool_2d_pads",
    "test_globalaveragepool", "test_batchnorm_epsilon",
    "test_layer_normalization_2d_axis0", "test_softmax_example",
    "test_reshape_reordered_all_dims", "test_flatten_axis0",
    "test_transpose_default", "test_gather_0", "test_concat_2d_axis_0",
    "test_unsqueeze_axis_0", "test_slice", "test_shape", "test_constant",
    "test_clip", "test_hardswish", "test_where_example", "test_equal",
    "test_reduce_mean_default_axes_keepdims_example", "test_identity",
    "test_dropout_default", "test_cast_FLOAT_to_DOUBLE",
]


def pb_varint(v):
    v &= (1 << 64) - 1
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def pb_int(field, v):
    return pb_varint(field << 3) + pb_varint(v)


def pb_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return pb_varint(field << 3 | 2) + pb_varint(len(b)) + b


def pb_float(field, x):
    return pb_varint(field << 3 | 5) + struct.pack("<f", x)


def onnx_tensor(name, dims, floats=None, ints=None):
    b = b"".join(pb_int(1, d) for d in dims)
    if ints is not None:
        b += pb_int(2, 7) + pb_bytes(9, struct.pack("<%dq" % len(ints), *ints))
    else:
        b += pb_int(2, 1) + pb_bytes(9, struct.pack("<%df" % len(floats),
                                                    *floats))
    return b + pb_bytes(8, name)


def onnx_attr(name, v):
    b = pb_bytes(1, name)
    if isinstance(v, float):
        return b + pb_float(2, v) + pb_int(20, 1)
    if isinstance(v, int):
        return b + pb_int(3, v) + pb_int(20, 2)
    return b + b"".join(pb_int(8, x) for x in v) + pb_int(20, 7)


def onnx_node(op, ins, outs, name, **attrs):
    b = b"".join(pb_bytes(1, x) for x in ins)
    b += b"".join(pb_bytes(2, x) for x in outs)
    b += pb_bytes(3, name) + pb_bytes(4, op)
    return b + b"".join(pb_bytes(5, onnx_attr(k, v)) for k, v in attrs.items())


def onnx_value(name, dims, elem=1):
    shape = b"".join(pb_bytes(1, pb_bytes(2, d) if isinstance(d, str)
                              else pb_int(1, d)) for d in dims)
    tensor = pb_int(1, elem) + pb_bytes(2, shape)
    return pb_bytes(1, name) + pb_bytes(2, pb_bytes(1, tensor))


def onnx_model(nodes, inits, inputs, outputs, opset=13):
    g = b"".join(pb_bytes(1, n) for n in nodes) + pb_bytes(2, "g")
    g += b"".join(pb_bytes(5, t) for t in inits)
    g += b"".join(pb_bytes(11, v) for v in inputs)
    g += b"".join(pb_bytes(12, v) for v in outputs)
    return (pb_int(1, 8) + pb_bytes(2, "make_corpus") + pb_bytes(7, g) +
            pb_bytes(8, pb_bytes(1, "") + pb_int(2, opset)))


def ramp(n, scale=0.1):
    return [((i * 7) % 11 - 5) * scale for i in range(n)]


def onnx_models():
    out = {}
    if os.path.isdir(ONNX_TESTDATA):
        for case in ONNX_NODE_TESTS:
            path = os.path.join(ONNX_TESTDATA, case, "model.onnx")
            if os.path.exists(path):
                with open(path, "rb") as fh:
                    out[case + ".onnx"] = fh.read()
    else:
        print("make_corpus: %s missing (libonnx-testdata): fuzz_onnx gets "
              "only the generated models" % ONNX_TESTDATA)
    out["mlp.onnx"] = onnx_model(
        [onnx_node("MatMul", ["x", "w1"], ["h"], "fc1"),
         onnx_node("Add", ["h", "b1"], ["hb"], "bias1"),
         onnx_node("Relu", ["hb"], ["a"], "relu1"),
         onnx_node("Gemm", ["a", "w2", "b2"], ["z"], "fc2", transB=1),
         onnx_node("Softmax", ["z"], ["y"], "softmax", axis=1)],
        [onnx_tensor("w1", [6, 5], ramp(30)), onnx_tensor("b1", [5], ramp(5)),
         onnx_tensor("w2", [3, 5], ramp(15)), onnx_tensor("b2", [3], ramp(3))],
        [onnx_value("x", ["N", 6])], [onnx_value("y", ["N", 3])])
    out["cnn.onnx"] = onnx_model(
        [onnx_node("Conv", ["x", "cw", "cb"], ["c"], "conv", kernel_shape=[3, 3],
                   pads=[1, 1, 1, 1], strides=[1, 1]),
         onnx_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["n"],
                   "bn", epsilon=1e-5),
         onnx_node("Relu", ["n"], ["r"], "relu"),
         onnx_node("MaxPool", ["r"], ["p"], "pool", kernel_shape=[2, 2],
                   strides=[2, 2]),
         onnx_node("GlobalAveragePool", ["p"], ["gp"], "gap"),
         onnx_node("Flatten", ["gp"], ["f"], "flatten", axis=1),
         onnx_node("Gemm", ["f", "fw", "fb"], ["y"], "fc", transB=1)],
        [onnx_tensor("cw", [2, 1, 3, 3], ramp(18)),
         onnx_tensor("cb", [2], ramp(2)), onnx_tensor("s", [2], [1.0, 0.5]),
         onnx_tensor("bb", [2], [0.0, 0.1]), onnx_tensor("m", [2], [0.1, 0.2]),
         onnx_tensor("v", [2], [1.0, 2.0]),
         onnx_tensor("fw", [3, 2], ramp(6)), onnx_tensor("fb", [3], ramp(3))],
        [onnx_value("x", ["N", 1, 6, 6])], [onnx_value("y", ["N", 3])])
    out["shape_chain.onnx"] = onnx_model(
        [onnx_node("Shape", ["x"], ["s"], "shape"),
         onnx_node("Gather", ["s", "zero"], ["n"], "gather", axis=0),
         onnx_node("Unsqueeze", ["n", "axes"], ["n1"], "unsqueeze"),
         onnx_node("Concat", ["n1", "rest"], ["shp"], "concat", axis=0),
         onnx_node("Reshape", ["x", "shp"], ["xr"], "reshape"),
         onnx_node("Transpose", ["xr"], ["y"], "transpose", perm=[0, 2, 1])],
        [onnx_tensor("zero", [], ints=[0]), onnx_tensor("axes", [1], ints=[0]),
         onnx_tensor("rest", [2], ints=[3, 4])],
        [onnx_value("x", ["N", 12])], [onnx_value("y", ["N", 4, 3])])
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    data = os.path.join(here, "..", "data")
    models = {}
    for f in sorted(os.listdir(data)):
        if f.endswith(".safetensors"):
            with open(os.path.join(data, f), "rb") as fh:
                models[f] = fh.read()
    sets = {
        "fuzz_proto": messages(),
        "fuzz_label": records(),
        "fuzz_model": models,
        "fuzz_npy": npys(),
        "fuzz_idx": idxs(),
        "fuzz_checkpoint": {"sgd": checkpoint(1), "adam": checkpoint(2),
                            "sgd_v2": checkpoint(1, 2),
                            "adam_v2": checkpoint(2, 2)},
        "fuzz_msgpack": dict(msgpack_values(), **messages()),
        "fuzz_onnx": onnx_models(),
        "fuzz_meta": metas(),
    }
    for target, seeds in sets.items():
        d = os.path.join(ROOT, target)
        # Keep crash reproducers (crash-*) that were added by hand.
        if os.path.isdir(d):
            for f in os.listdir(d):
                if not f.startswith("crash-"):
                    os.remove(os.path.join(d, f))
        os.makedirs(d, exist_ok=True)
        for name, b in seeds.items():
            with open(os.path.join(d, name), "wb") as fh:
                fh.write(b)


if __name__ == "__main__":
    main()

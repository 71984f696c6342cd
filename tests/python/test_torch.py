#!/usr/bin/python3
"""softlabel.torch and softlabel.safetensors (run by tests/integration/python_torch.sh).

    test_torch.py LIBSLLOSS.so CACHE X.npy Y.npy DIR

1. kd_loss against the C sl_loss_kd itself (common/sl_loss.c built as a
   shared object, called through ctypes): loss and gradient on random
   batches over temperatures, alphas, masks and unknown labels.
2. CacheDataset against softlabel.Cache on a real cache (teacher "t",
   f32): inputs preprocessed as the C programs do, targets at T, labels,
   masks for rows without a record, committees, batches, DataLoader workers.
3. A PyTorch student trained from the dataset with kd_loss agrees with its
   teacher more than one trained on the labels of a few rows alone.
4. safetensors: the fixtures load with their dtypes (f32, f16, bf16),
   their logits equal the fixture's expected values, and saving them again
   gives the fixture files byte for byte.
"""
import ctypes
import os
import shutil
import struct
import sys

import lmdb
import numpy as np
import torch

import softlabel
from softlabel import data as sldata
from softlabel import safetensors as st
from softlabel.torch import CacheDataset, kd_loss, load_file, save_file

so, cache_dir, x_path, y_path, out = sys.argv[1:6]
root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
torch.manual_seed(0)
checks = 0


def ok(cond, what):
    global checks
    if not cond:
        sys.exit(f"FAIL: {what}")
    checks += 1


# --- 1. kd_loss against sl_loss_kd ------------------------------------------
lib = ctypes.CDLL(so)
f = lib.sl_loss_kd
f.restype = ctypes.c_float
f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
              ctypes.c_int, ctypes.c_int, ctypes.c_float, ctypes.c_float,
              ctypes.c_void_p, ctypes.POINTER(ctypes.c_int)]


def c_kd(z, pt, has, y, T, alpha):
    B, C = z.shape
    z = np.ascontiguousarray(z, np.float32)
    dz = np.zeros_like(z)
    n = ctypes.c_int(-1)
    ptr = lambda a: None if a is None else a.ctypes.data
    pt = None if pt is None else np.ascontiguousarray(pt, np.float32)
    has = None if has is None else np.ascontiguousarray(has, np.uint8)
    y = None if y is None else np.ascontiguousarray(y, np.int32)
    loss = f(ptr(z), ptr(pt), ptr(has), ptr(y), B, C, T, alpha, ptr(dz), ctypes.byref(n))
    return loss, dz, n.value


rng = np.random.default_rng(7)
worst_l = worst_g = 0.0
cases = 0
for T in (1.0, 2.5, 4.0):
    for alpha in (0.0, 0.3, 0.9, 1.0):
        for kind in ("both", "soft-only", "hard-only", "sparse", "none"):
            B, C = 48, 10
            z = (rng.standard_normal((B, C)) * 3).astype(np.float32)
            zt = (rng.standard_normal((B, C)) * 4).astype(np.float32)
            pt = torch.softmax(torch.from_numpy(zt) / T, 1).numpy()
            pt[0, :3] = 0.0  # zero-probability classes (top-k spreads, but
            pt[0] /= pt[0].sum()  # a committee or a user's target may have them)
            has = rng.random(B) < 0.7
            y = rng.integers(-1, C, B).astype(np.int32)
            if kind == "soft-only":
                y = None
            elif kind == "hard-only":
                pt, has = None, None
            elif kind == "sparse":
                y[:] = -1
                y[:3] = 2
                has[:] = False
                has[5] = True
            elif kind == "none":
                y[:] = -1
                has[:] = False
            cl, cdz, cn = c_kd(z, pt, has, y, T, alpha)
            zt_ = torch.from_numpy(z.copy()).requires_grad_(True)
            loss = kd_loss(zt_, None if pt is None else torch.from_numpy(pt),
                           None if y is None else torch.from_numpy(y.astype(np.int64)),
                           None if has is None else torch.from_numpy(has),
                           temperature=T, alpha=alpha)
            loss.backward()
            g = zt_.grad.numpy()
            dl = abs(float(loss) - cl) / max(1.0, abs(cl))
            dg = float(np.abs(g - cdz).max())
            worst_l, worst_g = max(worst_l, dl), max(worst_g, dg)
            ok(dl <= 1e-5, f"T={T} alpha={alpha} {kind}: loss {float(loss)} vs C {cl}")
            ok(dg <= 1e-6, f"T={T} alpha={alpha} {kind}: gradient differs by {dg}")
            if kind == "none":
                ok(cn == 0 and cl == 0.0 and float(loss) == 0.0 and not g.any(), "no terms")
            cases += 1
# A wrong loss must be caught by the same comparison: T^2 left out.
z = (rng.standard_normal((16, 10)) * 3).astype(np.float32)
pt = torch.softmax(torch.randn(16, 10), 1).numpy()
cl, _, _ = c_kd(z, pt, None, None, 4.0, 1.0)
wrong = float(kd_loss(torch.from_numpy(z), torch.from_numpy(pt), temperature=4.0, alpha=1.0)) / 16
ok(abs(wrong - cl) / cl > 1e-5, "the comparison cannot tell a loss without T^2")
print(f"kd_loss equals sl_loss_kd on {cases} batches: loss rel. error <= {worst_l:.2g}, "
      f"gradient abs. error <= {worst_g:.2g}")

# --- 2. CacheDataset ----------------------------------------------------------
x = sldata.load(x_path)
y = np.load(y_path)
c = softlabel.Cache(cache_dir)
ds = CacheDataset(cache_dir, x_path, labels=y_path, temperature=3.0)
ok(len(ds) == 3000 and ds.teachers == ["t"] and ds.classes == 10, "dataset size")
xi, ti, yi, mi = ds[17]
ok(xi.dtype == torch.float32 and xi.shape == (28, 28), f"input {xi.shape}")
ref_x = (x[17].astype(np.float32) * np.float32(1 / 255) - np.float32(0)) / np.float32(1)
ok(np.array_equal(xi.numpy(), ref_x), "input preprocessing (x / 255)")
ok(np.array_equal(ti.numpy(), c.probs([17], "t", 3.0)[0]), "target at T=3")
ok(int(yi) == int(y[17]) and bool(mi), "label and mask")
ids = [5, 2999, 0, 5]
xb, tb, yb, mb = ds[ids]
ok(xb.shape == (4, 28, 28) and tb.shape == (4, 10) and mb.all(), "batch shapes")
ok(np.array_equal(tb.numpy(), c.probs(ids, "t", 3.0)), "batch targets")
ok(yb.tolist() == [int(v) for v in y[ids]], "batch labels")
ok(int(ds[2000][2]) == -1, "rows past the labeled ones are -1")
# Stored temperature by default.
ok(np.array_equal(CacheDataset(cache_dir, x)[3][1].numpy(), c.probs([3], "t")[0]), "stored T")
# DataLoader with two worker processes: each opens its own cache.
dl = torch.utils.data.DataLoader(
    ds, sampler=torch.utils.data.BatchSampler(torch.utils.data.SequentialSampler(ds), 500, False),
    batch_size=None, num_workers=2)
got = torch.cat([b[1] for b in dl]).numpy()
ok(np.array_equal(got, c.probs(np.arange(3000), "t", 3.0)), "DataLoader workers read the same")
# A dataset that is not the cache's is refused.
x2 = x.copy()
x2[0, 0, 0] ^= 1
try:
    CacheDataset(cache_dir, x2)
    ok(False, "other samples accepted")
except ValueError as e:
    ok("SHA-256" in str(e), str(e))
try:
    CacheDataset(cache_dir, x[:100])
    ok(False, "another shape accepted")
except ValueError as e:
    ok("shape" in str(e), str(e))
try:
    CacheDataset(cache_dir, x, labels=np.zeros(3001, np.int64))
    ok(False, "more labels than rows accepted")
except ValueError as e:
    ok("3001 labels" in str(e), str(e))
c.close()

# Rows without a record: a copy of the cache with a second teacher "u"
# (the same records, index 1) missing rows 10..19, and "t" missing row 30.
part = os.path.join(out, "partial")
os.mkdir(part)
shutil.copy(os.path.join(cache_dir, "data.mdb"), part)
env = lmdb.open(part, max_dbs=4)
meta, labels = env.open_db(b"meta", create=False), env.open_db(b"labels", create=False)
import msgpack  # noqa: E402
with env.begin(write=True) as w:
    m = msgpack.unpackb(w.get(b"teacher/t", db=meta))
    m["index"] = 1
    w.put(b"teacher/u", msgpack.packb(m), db=meta)
    for s in range(3000):
        if not 10 <= s < 20:
            w.put(struct.pack(">IQ", 1, s), w.get(struct.pack(">IQ", 0, s), db=labels), db=labels)
    w.delete(struct.pack(">IQ", 0, 30), db=labels)
env.close()
pu = CacheDataset(part, x, teacher="u")
_, tb, _, mb = pu[list(range(8, 22))]
ok(mb.tolist() == [True] * 2 + [False] * 10 + [True] * 2, f"mask {mb.tolist()}")
ok((tb[2:12] == 0).all() and (tb[[0, 1, 12, 13]].sum(1) - 1).abs().max() < 1e-5, "zero targets")
com = CacheDataset(part, x, teacher=["t", "u"], weights=[1, 3])
_, tb, _, mb = com[[9, 10, 30, 31]]
ok(mb.tolist() == [True, False, False, True], f"committee mask {mb.tolist()}")
ok(np.array_equal(tb[0].numpy(), CacheDataset(part, x, teacher="t")[9][1].numpy()),
   "a committee of one teacher's copies equals that teacher")
print("CacheDataset: inputs, targets, labels, masks, committees and workers as the cache holds them")

# --- 3. a PyTorch student trained with the Dataset and kd_loss ---------------
def train(use_kd, epochs=3):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    few = np.full(3000, -1, np.int64)
    few[:100] = y[:100]  # 100 labeled rows; the teacher labels all 3000
    d = CacheDataset(cache_dir, x, labels=few, temperature=4.0)
    loader = torch.utils.data.DataLoader(
        d, sampler=torch.utils.data.BatchSampler(torch.utils.data.RandomSampler(d), 64, False),
        batch_size=None)
    for _ in range(epochs):
        for xb, tb, yb, mb in loader:
            loss = kd_loss(model(xb), tb, yb, mb if use_kd else torch.zeros_like(mb),
                           temperature=4.0, alpha=0.9)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        xs, ts, _, _ = d[list(range(3000))]
        return float((model(xs).argmax(1) == ts.argmax(1)).float().mean())


fid_kd, fid_ce = train(True), train(False)
print(f"student fidelity to its teacher: {fid_kd:.3f} with kd_loss, {fid_ce:.3f} on 100 labels alone")
ok(fid_kd > fid_ce + 0.05 and fid_kd > 0.8, "distillation from the cache did not teach the student")

# --- 4. safetensors -----------------------------------------------------------
fx = os.path.join(root, "tests", "data")
lines = [l for l in open(os.path.join(fx, "fixture_mlp.expected.txt")) if not l.startswith("#")]
nums = np.array(" ".join(lines).split(), np.float64)
B, IN, OUT = (int(v) for v in nums[:3])
inp = nums[3:3 + B * IN].reshape(B, IN)
exp = nums[3 + B * IN:].reshape(3, B, OUT)
for i, (name, dt) in enumerate((("fixture_mlp", torch.float32), ("fixture_mlp_f16", torch.float16),
                                ("fixture_mlp_bf16", torch.bfloat16))):
    path = os.path.join(fx, name + ".safetensors")
    sd = load_file(path)
    ok(all(t.dtype == dt for t in sd.values()), f"{name}: dtype {dt}")
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 4),
                                torch.nn.ReLU(), torch.nn.Linear(4, 3)).double()
    model.load_state_dict({k: v.double() for k, v in sd.items()})
    with torch.no_grad():
        z = model(torch.from_numpy(inp)).numpy()
    ok(np.abs(z - exp[i]).max() < 1e-12, f"{name}: logits differ by {np.abs(z - exp[i]).max()}")
    # numpy loader agrees (bf16 widened exactly to f32).
    arrays = st.load_file(path)
    ok(all(np.array_equal(arrays[k].astype(np.float64), sd[k].double().numpy()) for k in sd),
       f"{name}: numpy and torch loaders differ")
    save_file(sd, os.path.join(out, name + ".again"), metadata={"format": "pt"})
    ok(open(os.path.join(out, name + ".again"), "rb").read() == open(path, "rb").read(),
       f"{name}: saved again, the bytes differ from the fixture")
for bad, what in ((b"\x05\x00", "shorter"), (struct.pack("<Q", 1 << 40) + b"{}", "header of"),
                  (struct.pack("<Q", 2) + b"[]", "JSON object"),
                  (struct.pack("<Q", 64) + b'{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'.ljust(64), "outside")):
    p = os.path.join(out, "bad.safetensors")
    open(p, "wb").write(bad)
    try:
        st.load(p)
        ok(False, f"a bad file ({what}) loaded")
    except st.SafetensorsError as e:
        ok(what in str(e), str(e))
print("safetensors: fixtures load in f32, f16 and bf16 with their expected logits and save back byte for byte")
print(f"{checks} checks passed")

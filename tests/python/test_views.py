#!/usr/bin/python3
"""softlabel.views against sl_view itself (build/bin-test/view_dump): for
each recipe, dtype and shape, every drawn parameter and every byte of every
view of every row must be equal; then the recipe texts and packed bytes.

    test_views.py VIEW_DUMP TMPDIR FASHION_MNIST_IDX_GZ
"""
import gzip
import subprocess
import sys

import numpy as np

from softlabel.views import Recipe, seed_of

dump, tmp, fmnist = sys.argv[1], sys.argv[2], sys.argv[3]

with gzip.open(fmnist, "rb") as f:
    raw = f.read()
images = np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 28, 28)[:40]
rng = np.random.default_rng(5)
cases = [
    ("fashion-mnist u8", images[:, None], "u8"),
    ("random u8 3x17x9", rng.integers(0, 256, (12, 3, 17, 9), dtype=np.uint8), "u8"),
    ("random f32 1x28x28", rng.standard_normal((12, 1, 28, 28)).astype(np.float32), "f32"),
    ("random f32 3x8x30", rng.standard_normal((12, 3, 8, 30)).astype(np.float32), "f32"),
]
recipes = ["none", "flip", "crop=2", "crop=4,flip", "rrc=0.08:1",
           "rrc=0.35:1,crop=2,flip", "rrc=0.9:1", "rrc=0.5:0.5,flip"]
VIEWS, SEED = 5, 123456789012345
checked = 0
for name, rows, dt in cases:
    n, C, H, W = rows.shape
    src = "%s/in.raw" % tmp
    rows.tofile(src)
    for text in recipes:
        out = "%s/out.raw" % tmp
        lines = subprocess.run([dump, text, str(SEED), dt, str(C), str(H), str(W), str(n), str(VIEWS), src, out],
                               check=True, capture_output=True, text=True).stdout.split("\n")
        cviews = np.fromfile(out, rows.dtype).reshape(n, VIEWS, C, H, W)
        r = Recipe.parse(text)
        for i in range(n):
            for v in range(VIEWS):
                p = r.draw(SEED, i, v, H, W)
                want = tuple(int(t) for t in lines[i * VIEWS + v].split())
                got = (i, v) + p.astuple()
                if got != want:
                    sys.exit("%s %s (%d, %d): params %s, C drew %s" % (name, text, i, v, got, want))
                x = r.apply(rows[i], SEED, i, v)
                if x.dtype != rows.dtype or x.tobytes() != cviews[i, v].tobytes():
                    diff = np.abs(x.astype(np.float64) - cviews[i, v].astype(np.float64))
                    sys.exit("%s %s (%d, %d): %d values differ, max %g" %
                             (name, text, i, v, int((diff != 0).sum()), diff.max()))
                checked += 1
    print("%s: %d recipes x %d rows x %d views equal, params and bytes" % (name, len(recipes), n, VIEWS))

# Texts and packed bytes as the C code writes them (view_dump parses the
# same texts; the packed form is checked against sl_view_recipe_pack's
# documented layout).
assert str(Recipe.parse("flip,crop=4")) == "crop=4,flip"
assert str(Recipe.parse("rrc=0.35:1,crop=2,flip")) == "rrc=0.349999994:1,crop=2,flip"
assert Recipe.parse("rrc=0.25:0.75,crop=3,flip").pack() == bytes([1, 1, 3, 0]) + np.array([0.25, 0.75], "<f4").tobytes()
for bad in ["", "crop", "crop=0", "crop=65", "flip,flip", "rrc=0.5", "rrc=0.8:0.3", "mirror", "none,flip"]:
    try:
        Recipe.parse(bad)
    except ValueError:
        continue
    sys.exit("Recipe.parse(%r) accepted" % bad)
    # view_dump refuses the same texts
assert seed_of(1, 2, 3) != seed_of(1, 3, 2)

# The documented meaning: rrc is PyTorch's bilinear resize of the box
# (align_corners=False), crop/flip are a zero-padded window and a mirror.
import torch
import torch.nn.functional as F

r = Recipe.parse("rrc=0.08:1")
x = rng.standard_normal((3, 28, 28)).astype(np.float32)
worst = 0.0
for i in range(200):
    p = r.draw(SEED, i, 0, 28, 28)
    box = torch.from_numpy(x[None, :, p.box_top:p.box_top + p.box_h, p.box_left:p.box_left + p.box_w].copy())
    ref = F.interpolate(box, size=(28, 28), mode="bilinear", align_corners=False)[0].numpy()
    worst = max(worst, float(np.abs(r.apply(x, SEED, i, 0) - ref).max()))
assert worst < 1e-5, "rrc differs from F.interpolate by %g" % worst
r = Recipe.parse("crop=3,flip")
for i in range(50):
    p = r.draw(SEED, i, 0, 28, 28)
    pad = np.pad(x, ((0, 0), (3, 3), (3, 3)))
    ref = pad[:, 3 + p.dy:3 + p.dy + 28, 3 + p.dx:3 + p.dx + 28]
    if p.flip:
        ref = ref[:, :, ::-1]
    assert np.array_equal(r.apply(x, SEED, i, 0), ref), "crop/flip (%d)" % i
print("rrc equals F.interpolate(bilinear, align_corners=False) within %.2g; crop and flip "
      "equal numpy's pad, slice and mirror" % worst)
print("softlabel.views equals sl_view: %d views compared byte for byte" % checked)

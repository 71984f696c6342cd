#!/usr/bin/python3
"""Run the README's Python code as written (tests/integration/python_readme.sh).

    test_readme.py README.md WORKDIR MODELDIR
    test_readme.py README.md --worker-block OUT.py ENDPOINT

WORKDIR holds cache/ (teacher "big", f32, T=4, every row), train.npy,
labels.npy and export.npy (softlabel export of the cache); MODELDIR holds
student.safetensors (784-128-10, written by softlabel-student), x.npy and
probs.npy (softlabel-student --evaluate --probs at T=1). The code blocks of
the section "Python: the softlabel package" run in WORKDIR, in order, in
one namespace; the model-loading lines of "Files users bring" run in
MODELDIR. Their results are compared with what the C programs wrote.
With --worker-block, the GPU teacher script of that section is written to
OUT.py with its endpoint replaced by ENDPOINT, for the caller to run.
"""
import os
import sys
import textwrap

import numpy as np

readme = sys.argv[1]
text = open(readme).read().split("\n")


def blocks(lines):
    """Indented (4 spaces) code blocks, each as dedented source."""
    out, cur = [], []
    lines = lines + ["end"]
    for k, line in enumerate(lines):
        # A blank line inside a block belongs to it when the block goes on.
        inside = line == "" and cur and lines[k + 1].startswith("    ")
        if line.startswith("    ") or inside:
            cur.append(line)
        elif cur:
            out.append(textwrap.dedent("\n".join(cur)))
            cur = []
    return out


def section(title):
    start = text.index(f"## {title}")
    end = next(i for i in range(start + 1, len(text)) if text[i].startswith("## "))
    return text[start:end]


if sys.argv[2] == "--worker-block":
    # The GPU teacher script, with the README's endpoint replaced by the
    # test broker's (the only change), written to a file to run.
    out, ep = sys.argv[3:5]
    gpu = [b for b in blocks(section("Python: the softlabel package"))
           if b.startswith("# gpu_teacher.py")]
    if len(gpu) != 1 or "tcp://broker:5555" not in gpu[0]:
        sys.exit("FAIL: no GPU teacher block with tcp://broker:5555 in the README")
    open(out, "w").write(gpu[0].replace("tcp://broker:5555", ep) + "\n")
    sys.exit(0)

work, modeldir = sys.argv[2:4]
py = [b for b in blocks(section("Python: the softlabel package")) if b.startswith("import")]
if len(py) != 2:
    sys.exit(f"FAIL: want 2 code blocks in the Python section, found {len(py)}")

os.chdir(work)
ns = {}
exec(compile(py[0], "README: reading a cache", "exec"), ns)
ref = np.load("export.npy")
assert ns["p"].shape == (3, 10) and np.array_equal(ns["p"], ref[[0, 5, 7]]), "c.probs"
assert ns["p3"].shape == (3000, 10) and ns["have"].all(), "missing='mask'"
assert np.array_equal(ns["p3"], ref), "the whole cache"
assert ns["p2"].shape == (100, 10) and not np.array_equal(ns["p2"], ref[:100]), "re-softened"
assert ns["z"].shape == (3, 10) and ns["t"].name == "big", "logits, teacher"
print("README block 1 (reading a cache) ran; its results equal softlabel export")
import torch  # noqa: E402
torch.manual_seed(0)  # the README's code draws its batches from torch's RNG
exec(compile(py[1], "README: training a PyTorch student", "exec"), ns)
assert os.path.getsize("student.safetensors") > 784 * 128 * 4, "no student written"
print(f"README block 2 (training a PyTorch student) ran; last loss {float(ns['loss']):.4f}")

files = section("Files users bring")
i = next(i for i, l in enumerate(files) if "a softlabel model loads with" in l)
snippet = blocks(files[i:])[0]
os.chdir(modeldir)
ms = {}
exec(compile(snippet, "README: loading a softlabel model", "exec"), ms)
x = np.load("x.npy").reshape(-1, 784).astype(np.float32) / np.float32(255)
with torch.no_grad():
    p = torch.softmax(ms["model"](torch.from_numpy(x)), 1).numpy()
c = np.load("probs.npy")
err = float(np.abs(p - c).max())
assert err < 1e-5, f"the loaded model differs from softlabel-student --evaluate by {err}"
print(f"README model snippet ran; the model equals softlabel-student --evaluate within {err:.2g}")

#!/bin/sh
# The README's Python code runs on Debian 12 as written (no pip package):
# reading a cache, training a PyTorch student with CacheDataset and kd_loss
# (the student it saves is then evaluated by softlabel-student), and
# loading a softlabel model into PyTorch (tests/python/test_readme.py).
. "$(dirname "$0")/../lib/common.sh"
sl_tmpdir; T=$SL_TMP
$DPY -c 'import torch' 2>/dev/null || { echo "SKIP: python3-torch is not installed"; exit 77; }
mkdir "$T/work" "$T/model"
sl_subset "$FMNIST/t10k-images-idx3-ubyte.gz" 3000 "$T/work/train.npy"
sl_subset "$FMNIST/t10k-labels-idx1-ubyte.gz" 3000 "$T/work/labels.npy" 300
sl_subset "$FMNIST/t10k-labels-idx1-ubyte.gz" 3000 "$T/ytest.npy"
sl_make_teacher "$T/teacher.safetensors"
sl_label_all "$T/work/cache" "$T/work/train.npy" "$T/teacher.safetensors" big 4 1
"$BIN/softlabel" export "$T/work/cache" --teacher big --out "$T/work/export.npy" >/dev/null ||
    sl_fail "export"
"$BIN/softlabel-student" --dataset "$T/work/train.npy" --labels "$T/ytest.npy" \
    --arch 784-128-10 --epochs 1 --out "$T/model/student.safetensors" 2>"$T/s.log" ||
    sl_fail "softlabel-student: $(tail -2 "$T/s.log")"
cp "$T/work/train.npy" "$T/model/x.npy"
"$BIN/softlabel-student" --evaluate --model "$T/model/student.safetensors" \
    --test-data "$T/model/x.npy" --probs "$T/model/probs.npy" --threads 1 2>/dev/null >/dev/null ||
    sl_fail "--evaluate --probs"
PYTHONPATH="$ROOT/common/python" OMP_NUM_THREADS=1 $DPY "$ROOT/tests/python/test_readme.py" \
    "$ROOT/README.md" "$T/work" "$T/model" || sl_fail "the README's Python code"
# The PyTorch student the README trains (300 labels, the teacher on all
# 3000 rows) loads in softlabel-student and has learnt.
"$BIN/softlabel-student" --evaluate --model "$T/work/student.safetensors" \
    --test-data "$T/work/train.npy" --test-labels "$T/ytest.npy" >"$T/eval" 2>"$T/eval.log" ||
    sl_fail "softlabel-student cannot evaluate the PyTorch student: $(tail -2 "$T/eval.log")"
"$BIN/softlabel-student" --evaluate --model "$T/teacher.safetensors" \
    --test-data "$T/work/train.npy" --test-labels "$T/ytest.npy" >"$T/teval" 2>/dev/null ||
    sl_fail "evaluating the teacher"
acc=$(sed -n 's/^accuracy \([0-9.]*\).*/\1/p' "$T/eval")
tacc=$(sed -n 's/^accuracy \([0-9.]*\).*/\1/p' "$T/teval")
echo "PyTorch student accuracy $acc, its teacher $tacc"
$DPY -c "import sys; sys.exit(0 if float('$acc') > float('$tacc') - 0.1 else 1)" ||
    sl_fail "the README's PyTorch student reaches only $acc (teacher $tacc)"
# The README's GPU teacher script labels a cache through a real broker
# (on the CPU here), with a teacher.pt saved by PyTorch.
mkdir "$T/gpu"
$DPY - "$T/gpu/teacher.pt" <<'PY'
import sys, torch
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 1200), torch.nn.ReLU(),
                            torch.nn.Linear(1200, 1200), torch.nn.ReLU(), torch.nn.Linear(1200, 10))
torch.save(model.state_dict(), sys.argv[1])
PY
BROKER_PORT=$(sl_free_port)
sl_start_broker "$T/gpu/cache" "$T/work/train.npy" "$T/gpu/broker.log" --exit-when-done --shard-rows 500
$DPY "$ROOT/tests/python/test_readme.py" "$ROOT/README.md" --worker-block "$T/gpu/gpu_teacher.py" \
    "$BROKER_EP" || sl_fail "the README's GPU teacher script"
(cd "$T/gpu" && PYTHONPATH="$ROOT/common/python" exec $DPY gpu_teacher.py 2>"$T/gpu/worker.log") &
GPU_PID=$!
SL_PIDS="$SL_PIDS $GPU_PID"
set +e; sl_wait_pid "$GPU_PID" 120; rc=$?; set -e
sl_check "$rc -eq 0" "the README's GPU teacher script exited $rc: $(tail -3 "$T/gpu/worker.log")"
sl_wait_pid "$BROKER_PID" 30 || sl_fail "the broker did not finish: $(tail -3 "$T/gpu/broker.log")"
PYTHONPATH="$ROOT/common/python" $DPY - "$T/gpu" "$T/work/train.npy" <<'PY' || sl_fail "the GPU teacher's cache"
import os, sys, numpy as np, torch, softlabel
c = softlabel.Cache(os.path.join(sys.argv[1], "cache"))
model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 1200), torch.nn.ReLU(),
                            torch.nn.Linear(1200, 1200), torch.nn.ReLU(), torch.nn.Linear(1200, 10))
model.load_state_dict(torch.load(os.path.join(sys.argv[1], "teacher.pt")))
x = np.load(sys.argv[2]).astype(np.float32) / np.float32(255)
with torch.no_grad():
    ref = torch.softmax(model(torch.from_numpy(x).reshape(-1, 1, 28, 28)) / 4, 1).numpy()
t = c.teacher("big")
got = c.export("big")
err = float(np.abs(got - ref).max())
import hashlib
sha = hashlib.sha256(open(os.path.join(sys.argv[1], "teacher.pt"), "rb").read()).hexdigest()
print(f"README GPU teacher: {c.coverage('big')['records']} records, max abs error {err:.3g}")
assert t.model_sha256 == sha and t.temperature == 4.0 and t.encoding == "f32"
assert not np.isnan(got).any() and err <= 1e-5
PY
echo "the README's Python code runs as written"

"""PyTorch side of softlabel (needs python3-torch).

    from softlabel.torch import CacheDataset, kd_loss, load_file, save_file

    ds = CacheDataset("cache/", "train.npy", labels="labels.npy", temperature=4)
    x, target, label, mask = ds[0]
    loss = kd_loss(model(x_batch), target, label, mask, temperature=4, alpha=0.9)

``kd_loss`` is the loss softlabel-student minimises (common/sl_loss.c):
per row, alpha * T^2 * KL(teacher_T || student_T) where the row has a
teacher target, plus (1 - alpha) * CE(student, y) where its label is known
(weight 1 when the row has only a label), averaged over the rows that have
either term.

``load_file``/``save_file`` read and write safetensors as
``safetensors.torch`` does, in pure Python (softlabel.safetensors).
"""
import os

import numpy as np
import torch

from . import data as _data
from . import safetensors as _st
from .cache import Cache, MissingRecordError

_TORCH = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
          "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32,
          "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
_FROM_TORCH = {v: k for k, v in _TORCH.items()}


def load_file(path, device="cpu"):
    """{name: torch.Tensor} from a safetensors file, dtypes kept (bfloat16
    included); what ``safetensors.torch.load_file`` returns."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    entries, _, off = _st.read_header(raw, path)
    out = {}
    for name, (dt, shape, b, e) in entries.items():
        if dt not in _TORCH:
            raise _st.SafetensorsError(f"{path}: tensor '{name}': dtype {dt} "
                                       f"has no torch type here")
        buf = bytearray(raw[off + b:off + e])
        t = torch.frombuffer(buf, dtype=_TORCH[dt]) if buf else torch.empty(0, dtype=_TORCH[dt])
        out[name] = t.reshape(shape).to(device)
    return out


def save_file(tensors, path, metadata=None):
    """Write {name: torch.Tensor} as safetensors (what
    ``safetensors.torch.save_file`` writes; bfloat16 kept)."""
    arrays, dtypes = {}, {}
    for name, t in tensors.items():
        t = t.detach().to("cpu").contiguous()
        if t.dtype not in _FROM_TORCH:
            raise TypeError(f"tensor '{name}': dtype {t.dtype} has no safetensors type")
        if t.dtype == torch.bfloat16:
            arrays[name] = t.view(torch.int16).numpy().view(np.uint16)
            dtypes[name] = "BF16"
        else:
            arrays[name] = t.numpy()
    data = _st.serialize(arrays, metadata, dtypes)
    path = os.fspath(path)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def kd_loss(student_logits, target, label=None, mask=None, temperature=1.0, alpha=0.5):
    """The distillation loss of sl_loss_kd, differentiable.

    student_logits: (B, C); target: (B, C) teacher distributions at T (or
    None); label: (B,) int, -1 unknown (or None); mask: (B,) bool, which rows
    have a target (None: all, when target is given). Rows with neither
    term add nothing; the result is the mean over the others (0 when there
    are none, still attached to the graph). The gradient with respect to the
    logits is alpha * T * (softmax(z / T) - p) / n plus the CE part, as the C
    code computes it."""
    z = student_logits
    B, C = z.shape
    T = float(temperature)
    alpha = float(alpha)
    dev = z.device
    if target is not None:
        soft = (torch.ones(B, dtype=torch.bool, device=dev) if mask is None
                else mask.to(dev, torch.bool).reshape(B))
    else:
        soft = torch.zeros(B, dtype=torch.bool, device=dev)
    if label is not None:
        y = label.to(dev).reshape(B).long()
        if bool(((y >= C)).any()):
            raise ValueError(f"a label is >= the {C} classes")
        hard = y >= 0
    else:
        y = torch.zeros(B, dtype=torch.long, device=dev)
        hard = torch.zeros(B, dtype=torch.bool, device=dev)
    li = z.sum(dim=1) * 0.0  # attached to the graph even when no term applies
    if target is not None and alpha > 0.0:
        p = target.to(dev, z.dtype)
        lq = torch.log_softmax(z / T, dim=1)
        pos = p > 0
        logp = torch.log(torch.where(pos, p, torch.ones_like(p)))
        kl = torch.where(pos, p * (logp - lq), torch.zeros_like(p)).sum(dim=1)
        li = li + torch.where(soft, alpha * T * T * kl, torch.zeros_like(kl))
    if label is not None:
        w = torch.where(soft, torch.full_like(li, 1.0 - alpha), torch.ones_like(li))
        ce = torch.nn.functional.cross_entropy(z, y.clamp(min=0), reduction="none")
        li = li + torch.where(hard, w * ce, torch.zeros_like(ce))
    n = int((soft | hard).sum())
    if n == 0:
        return li.sum()
    return li.sum() / n


class CacheDataset(torch.utils.data.Dataset):
    """(input, soft target, label, mask) for every row of a dataset, the
    targets read from a logit cache per item (memory does not grow with
    rows x classes).

    cache: a cache directory; dataset: the rows (.npy, IDX, IDX.gz path, or
    an array) the cache was labeled from, checked against the cache's
    fingerprint (row count, shape, dtype and SHA-256; verify=False skips the
    hash); labels: optional labels (path or array, -1 unlabeled, rows past
    its end unlabeled); teacher: a name, a list of names (a committee,
    averaged with weights like softlabel-student --teacher-weights) or None
    for the only one; temperature: the targets' T (None: the teacher's);
    preproc: (scale, mean, std) applied as (x * scale - mean[c]) / std[c],
    mean and std one value or one per channel of [C, H, W] rows (None:
    1/255, 0, 1 for uint8 rows, 1, 0, 1 for float32); transform: optional
    callable on the float32 input tensor.

    Items: input float32 of the row's shape, target (classes,) float32
    (zeros where the row has no target yet), label int64 (-1 unknown), mask
    bool (True when every teacher has a record for the row). A row's target
    is read from the snapshot the dataset holds: call refresh() to see newer
    commits (a student started while labeling runs). Indexing with a list
    of ids returns a batch (stacked tensors), so
    ``DataLoader(ds, sampler=BatchSampler(RandomSampler(ds), 128, False),
    batch_size=None)`` reads one batch per LMDB pass. Works with DataLoader
    workers: each process opens its own cache."""

    def __init__(self, cache, dataset, labels=None, teacher=None, temperature=None,
                 weights=None, preproc=None, transform=None, verify=True):
        self.cache_path = os.fspath(cache)
        x = _data.load(dataset) if isinstance(dataset, (str, os.PathLike)) else np.asarray(dataset)
        self.x = x
        c = Cache(self.cache_path)
        try:
            if tuple(x.shape) != c.dataset["shape"] or str(x.dtype) != c.dataset["dtype"]:
                raise ValueError(f"dataset of shape {tuple(x.shape)} {x.dtype}, the cache "
                                 f"was labeled from {c.dataset['shape']} {c.dataset['dtype']}")
            if verify and _data.fingerprint(x)["sha256"] != c.dataset["sha256"]:
                raise ValueError("dataset's SHA-256 differs from the one the cache was "
                                 "labeled from (same shape, other samples)")
            names = [teacher] if teacher is None or isinstance(teacher, str) else list(teacher)
            self.teachers = [c.teacher(n).name for n in names]
            classes = {c.teacher(n).classes for n in self.teachers}
            if len(classes) != 1:
                raise ValueError(f"teachers {self.teachers} differ in classes")
            self.classes = classes.pop()
        finally:
            c.close()
        w = np.ones(len(self.teachers)) if weights is None else np.asarray(weights, np.float64)
        if w.shape != (len(self.teachers),) or not (np.isfinite(w) & (w >= 0)).all() or w.sum() <= 0:
            raise ValueError("weights: one finite value >= 0 per teacher, not all 0")
        self.weights = (w / w.sum()).astype(np.float32)
        self.temperature = temperature
        if labels is None:
            self.labels = np.full(len(x), -1, np.int64)
        else:
            lab = _data.load(labels) if isinstance(labels, (str, os.PathLike)) else np.asarray(labels)
            lab = np.asarray(lab).reshape(len(lab), -1)[:, 0].astype(np.int64)
            if len(lab) > len(x):
                raise ValueError(f"{len(lab)} labels for {len(x)} rows")
            if lab.size and (lab.max() >= self.classes or lab.min() < -1):
                raise ValueError(f"labels must be -1 or in [0, {self.classes})")
            self.labels = np.full(len(x), -1, np.int64)
            self.labels[:len(lab)] = lab
        self.preproc = tuple(_data.preproc_default(x.dtype)) if preproc is None else tuple(preproc)
        self.transform = transform
        self._cache, self._pid = None, None

    def __len__(self):
        return len(self.x)

    def __getstate__(self):
        st = dict(self.__dict__)
        st["_cache"], st["_pid"] = None, None
        return st

    def _c(self):
        if self._cache is None or self._pid != os.getpid():
            self._cache, self._pid = Cache(self.cache_path), os.getpid()
        return self._cache

    def refresh(self):
        """Move the snapshot to the last commit."""
        if self._cache is not None and self._pid == os.getpid():
            self._cache.refresh()

    def targets(self, ids):
        """(targets (n, classes) float32, mask (n,) bool) for row ids."""
        c = self._c()
        p = np.zeros((len(ids), self.classes), np.float32)
        have = np.ones(len(ids), bool)
        for name, w in zip(self.teachers, self.weights):
            pi, hi = c.probs(ids, name, self.temperature, missing="mask")
            p += w * pi
            have &= hi
        p[~have] = 0.0
        return p, have

    def __getitem__(self, i):
        batch = not np.isscalar(i) and not (isinstance(i, torch.Tensor) and i.dim() == 0)
        ids = np.asarray(i.tolist() if isinstance(i, torch.Tensor) else i, np.int64).reshape(-1)
        if ids.size and (ids.min() < -len(self) or ids.max() >= len(self)):
            raise IndexError(f"row outside the {len(self)} rows")
        ids = ids % len(self) if ids.size else ids
        x = torch.from_numpy(_data.to_f32(self.x[ids], *self.preproc))
        if self.transform is not None:
            x = self.transform(x)
        p, have = self.targets(ids)
        out = (x, torch.from_numpy(p), torch.from_numpy(self.labels[ids]),
               torch.from_numpy(have))
        return out if batch else tuple(t[0] for t in out)


__all__ = ["CacheDataset", "kd_loss", "load_file", "save_file", "MissingRecordError"]

"""Read a softlabel logit cache (an LMDB directory) from Python.

The format is the one the README documents and ``common/sl_store.c``
writes. Reading never blocks the broker: LMDB readers see a snapshot, and
``Cache.refresh()`` moves the snapshot to the last commit.

    >>> c = softlabel.Cache("cache/")
    >>> c.teachers                       # {name: Teacher}
    >>> t = c.teacher()                  # the only one (or c.teacher("big"))
    >>> c.coverage()                     # shards done, records, rows
    >>> p = c.probs([0, 5, 7], temperature=2.0)   # (3, classes) float32
    >>> p, have = c.probs(range(100), missing="mask")

Every record is CRC-checked and validated as ``softlabel verify`` does; a
damaged one raises :class:`CorruptRecordError` naming teacher and sample.
"""
import os
import struct

import lmdb
import msgpack
import numpy as np

from . import data as _data
from . import record as _rec
from .record import Format, RecordError

SCHEMA = 2            # written by this version of softlabel
SCHEMAS = (1, 2)      # read: 1 is a cache from before views (none in it)
_DTYPES = {1: "uint8", 2: "float32"}
_KEY = struct.Struct(">IQ")
_VKEY = struct.Struct(">IQI")  # the labels key of a teacher with views


# Handles of caches opened before a fork(), held by the child so that
# their destructors never run there (see Cache.close).
_FORKED = []


class CacheError(Exception):
    """The directory is not a softlabel cache this package can read."""


class CorruptRecordError(RecordError):
    """A record failed its check (CRC or format): ``teacher``, ``sample``."""

    def __init__(self, teacher, sample, why, corrupt):
        super().__init__(f"teacher {teacher} sample {sample}: {why}", corrupt)
        self.teacher, self.sample = teacher, sample


class MissingRecordError(KeyError):
    """No record (yet) for these samples: ``teacher``, ``samples``."""

    def __init__(self, teacher, samples):
        more = f" and {len(samples) - 5} more" if len(samples) > 5 else ""
        super().__init__(f"teacher {teacher} has no record for sample(s) "
                         f"{', '.join(map(str, samples[:5]))}{more}")
        self.teacher, self.samples = teacher, samples


class Teacher:
    """A registered teacher, as its ``meta`` entry ``teacher/<name>`` holds it.

    name, index, classes, temperature (the stored T, a float32 value),
    encoding ("f32", "f16", "topk:K"), k, format (a record.Format),
    model_sha256 (hex), preproc (the registered input preprocessing,
    {scale, mean: [C], std: [C], channels}, or None when the cache predates
    it), views (V, 0 for a teacher of the plain rows), view_recipe (its
    canonical text, "none" without views), view_seed, record_bytes, meta (the raw
    msgpack map, every key, so fields added later are visible)."""

    def __init__(self, name, meta):
        self.name = name
        self.meta = meta
        try:
            self.index = int(meta["index"])
            self.temperature = float(meta["temperature"])
            self.format = Format(meta["encoding"], meta["classes"], meta["k"])
            sha = meta["model_sha256"]
        except (KeyError, TypeError, ValueError) as e:
            raise CacheError(f"corrupt cache: meta 'teacher/{name}': {e}") from None
        self.classes = self.format.classes
        self.k = self.format.k
        self.encoding = self.format.name
        self.record_bytes = self.format.size
        self.model_sha256 = bytes(sha).hex()
        self.preproc = _decode_preproc(meta.get("preproc"))
        self.views = int(meta.get("views", 0))
        self.view_seed = int(meta.get("view_seed", 0))
        self.view_recipe = "none"
        if self.views:
            from . import views as _views
            try:
                self.view_recipe = _views.Recipe.unpack(
                    bytes(meta["view_recipe"])).format()
            except (KeyError, TypeError, ValueError) as e:
                raise CacheError(f"corrupt cache: meta 'teacher/{name}' "
                                 f"view_recipe: {e}") from None

    def key(self, sample, view=None):
        """The labels key of (sample[, view]): 12 bytes without views, 16
        with (view None is view 0)."""
        if self.views:
            v = 0 if view is None else int(view)
            if not 0 <= v < self.views:
                raise IndexError(f"view {v} outside teacher {self.name}'s "
                                 f"{self.views} views")
            return _VKEY.pack(self.index, int(sample), v)
        if view not in (None, 0):
            raise IndexError(f"teacher {self.name} has no views")
        return _KEY.pack(self.index, int(sample))

    def __repr__(self):
        return (f"Teacher({self.name!r}, index={self.index}, T={self.temperature:g}, "
                f"{self.encoding}, {self.classes} classes)")


def _decode_preproc(raw):
    """The registered preprocessing as {scale, mean: [C], std: [C],
    channels}, from its 4 * (1 + 2C) bytes of float32 (12 for one channel).
    A value of another shape is returned under "raw" untouched, so a newer
    cache still opens."""
    if raw is None:
        return None
    if isinstance(raw, (bytes, bytearray)):
        try:
            s, m, d = _data.preproc_unpack(bytes(raw))
            return {"scale": s, "mean": m, "std": d, "channels": len(m)}
        except ValueError:
            pass
    return {"raw": raw}


class Cache:
    """A logit cache opened read-only.

    path: the cache directory. Opening takes a reader slot until close()
    (also a context manager). Not to be used across fork(): a child
    process opens its own Cache (LMDB's rule); one inherited from the
    parent is left alone by close() and its destructor, so the parent's
    snapshot stays protected."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self._pid = os.getpid()
        if not os.path.isfile(os.path.join(self.path, "data.mdb")):
            raise CacheError(f"no cache at {self.path} (no data.mdb)")
        try:
            self._env = lmdb.open(self.path, readonly=True, max_dbs=4,
                                  subdir=True, lock=True)
        except lmdb.Error as e:
            raise CacheError(f"{self.path}: {e}") from None
        self._env.reader_check()
        try:
            self._meta = self._env.open_db(b"meta", create=False)
            self._shards = self._env.open_db(b"shards", create=False)
            self._labels = self._env.open_db(b"labels", create=False)
            self._inputs = self._env.open_db(b"inputs", create=False)
        except lmdb.NotFoundError:
            self._env.close()
            raise CacheError(f"{self.path}: not a softlabel cache "
                             f"(missing one of meta, shards, labels, inputs)") from None
        self._txn = self._env.begin(buffers=False)
        self._load_meta()

    # -- lifecycle --------------------------------------------------------

    def close(self):
        if getattr(self, "_pid", None) not in (None, os.getpid()):
            # Inherited across fork(): aborting the read transaction here
            # would free the parent's reader slot in the shared lock file
            # (LMDB's caveat), so the handles are kept, never touched.
            _FORKED.append((getattr(self, "_txn", None), getattr(self, "_env", None)))
            self._txn = self._env = None
            return
        if getattr(self, "_txn", None) is not None:
            self._txn.abort()
            self._txn = None
        if getattr(self, "_env", None) is not None:
            self._env.close()
            self._env = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def refresh(self):
        """See what was committed since the snapshot began (a long-lived
        reader should call this now and then: a snapshot pins pages)."""
        self._txn.abort()
        self._txn = self._env.begin(buffers=False)
        self._load_meta()

    # -- meta ---------------------------------------------------------------

    def _get_meta(self, key):
        raw = self._txn.get(key.encode(), db=self._meta)
        if raw is None:
            return None
        try:
            return msgpack.unpackb(raw, raw=False, strict_map_key=False)
        except Exception as e:
            raise CacheError(f"corrupt cache: meta '{key}': {e}") from None

    def _load_meta(self):
        schema = self._get_meta("schema")
        if schema is None:
            raise CacheError(f"{self.path}: cache holds no job yet")
        self.schema = schema
        if schema not in SCHEMAS:
            raise CacheError(f"cache schema {schema}, this package reads "
                             f"{SCHEMAS[0]} to {SCHEMAS[-1]}")
        ds = self._get_meta("dataset")
        sr = self._get_meta("shard_rows")
        if not isinstance(ds, dict) or not isinstance(sr, int) or sr < 1:
            raise CacheError("corrupt cache: meta 'dataset' or 'shard_rows'")
        try:
            self.dataset = {
                "path": ds["path"], "rows": int(ds["rows"]),
                "shape": tuple(int(d) for d in ds["shape"]),
                "dtype": _DTYPES[ds["dtype"]], "sha256": bytes(ds["sha256"]).hex(),
            }
        except (KeyError, TypeError, ValueError) as e:
            raise CacheError(f"corrupt cache: meta 'dataset': {e}") from None
        self.rows = self.dataset["rows"]
        self.shard_rows = sr
        self.nshards = (self.rows + sr - 1) // sr
        teachers = {}
        with self._txn.cursor(db=self._meta) as cur:
            if cur.set_range(b"teacher/"):
                for k, v in cur:
                    if not k.startswith(b"teacher/"):
                        break
                    name = k[len(b"teacher/"):].decode("utf-8", "replace")
                    try:
                        meta = msgpack.unpackb(v, raw=False)
                    except Exception as e:
                        raise CacheError(f"corrupt cache: meta '{k.decode()}': {e}") from None
                    teachers[name] = Teacher(name, meta)
        self.teachers = dict(sorted(teachers.items(), key=lambda kv: kv[1].index))

    def teacher(self, name=None):
        """The Teacher called name; without a name, the only one."""
        if isinstance(name, Teacher):
            return name
        if name is None:
            if len(self.teachers) == 1:
                return next(iter(self.teachers.values()))
            raise ValueError(f"the cache has {len(self.teachers)} teachers "
                             f"({', '.join(self.teachers) or 'none'}): name one")
        try:
            return self.teachers[name]
        except KeyError:
            raise KeyError(f"no teacher '{name}' in the cache "
                           f"({', '.join(self.teachers) or 'none registered'})") from None

    # -- shards and coverage --------------------------------------------------

    def shards(self, teacher=None):
        """{shard: {state, attempts, worker, committed_ms[, reason]}} for the
        shards done or quarantined (state 1 done, 2 quarantined); absent
        shards are pending."""
        t = self.teacher(teacher)
        out = {}
        lo = _KEY.pack(t.index, 0)
        with self._txn.cursor(db=self._shards) as cur:
            if cur.set_range(lo):
                for k, v in cur:
                    if len(k) != 12:
                        raise CacheError("corrupt cache: a shards key is not 12 bytes")
                    ti, s = _KEY.unpack(k)
                    if ti != t.index:
                        break
                    out[s] = msgpack.unpackb(v, raw=False)
        return out

    def coverage(self, teacher=None):
        """How far labeling has come for one teacher: a dict with
        shards (total), done, quarantined, pending, records (rows with a
        record), rows (dataset rows) and fraction (records / rows)."""
        t = self.teacher(teacher)
        sh = self.shards(t)
        done = sum(1 for v in sh.values() if v.get("state") == 1)
        quar = sum(1 for v in sh.values() if v.get("state") == 2)
        records = 0
        with self._txn.cursor(db=self._labels) as cur:
            if cur.set_range(_KEY.pack(t.index, 0)):
                for k in cur.iternext(keys=True, values=False):
                    if k[:4] != _KEY.pack(t.index, 0)[:4]:
                        break
                    records += 1
        return {"teacher": t.name, "shards": self.nshards, "done": done,
                "quarantined": quar, "pending": self.nshards - done - quar,
                "records": records, "rows": self.rows,
                "fraction": records / self.rows if self.rows else 0.0}

    # -- records --------------------------------------------------------------

    def _ids(self, samples):
        ids = np.asarray(samples, dtype=np.int64).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= self.rows):
            bad = ids[(ids < 0) | (ids >= self.rows)][0]
            raise IndexError(f"sample {int(bad)} outside the dataset's "
                             f"{self.rows} rows")
        return ids

    def record(self, sample, teacher=None, view=None):
        """The checked bytes of one record, or None when absent; view: of
        a teacher with views (None: view 0)."""
        t = self.teacher(teacher)
        raw = self._txn.get(t.key(sample, view), db=self._labels)
        if raw is not None:
            self._check(t, int(sample), raw)
        return raw

    def _check(self, t, sample, raw):
        try:
            _rec.check(raw, t.format)
        except RecordError as e:
            raise CorruptRecordError(t.name, sample, str(e), e.corrupt) from None

    def records(self, samples, teacher=None, view=None):
        """(list of checked record bytes, present mask) for sample ids;
        absent samples get None. view: of a teacher with views (None:
        view 0); one for all samples."""
        t = self.teacher(teacher)
        ids = self._ids(samples)
        out, have = [], np.zeros(ids.size, bool)
        get, db = self._txn.get, self._labels
        for i, s in enumerate(ids.tolist()):
            raw = get(t.key(s, view), db=db)
            if raw is not None:
                self._check(t, s, raw)
                have[i] = True
            out.append(raw)
        return out, have

    def _gather(self, samples, teacher, missing, decode, width, fill, view=None):
        t = self.teacher(teacher)
        recs, have = self.records(samples, t, view)
        if missing not in ("raise", "nan", "mask"):
            raise ValueError("missing must be 'raise', 'nan' or 'mask'")
        if missing == "raise" and not have.all():
            ids = self._ids(samples)
            raise MissingRecordError(t.name, ids[~have].tolist())
        out = np.full((len(recs), width), fill, np.float32)
        if have.any():
            out[have] = decode(t, [r for r in recs if r is not None])
        return (out, have) if missing == "mask" else out

    def probs(self, samples, teacher=None, temperature=None, missing="raise", view=None):
        """Teacher distributions for sample ids, (n, classes) float32;
        view: that view of each sample, for a teacher with views (None:
        view 0).

        temperature: None for the stored T, else re-softened to it (dense:
        exact; top-k: the remaining mass spread as sl_label_probs does).
        missing: "raise" (MissingRecordError), "nan" (NaN rows, like
        ``softlabel export``) or "mask" (returns (probs, present), absent
        rows zero)."""
        def dec(t, recs):
            T = t.temperature if temperature is None else temperature
            return _rec.probs(recs, t.format, t.temperature, T)
        t = self.teacher(teacher)
        return self._gather(samples, t, missing, dec, t.classes,
                            0.0 if missing == "mask" else np.nan, view)

    def values(self, samples, teacher=None, missing="raise"):
        """The stored z / T of dense records, (n, classes) float32."""
        t = self.teacher(teacher)
        return self._gather(samples, t, missing, lambda t, r: _rec.values(r, t.format),
                            t.classes, 0.0 if missing == "mask" else np.nan)

    def logits(self, samples, teacher=None, missing="raise"):
        """The teacher's logits T * values (dense records), float32."""
        t = self.teacher(teacher)
        out = self.values(samples, t, missing)
        if missing == "mask":
            return out[0] * np.float32(t.temperature), out[1]
        return out * np.float32(t.temperature)

    def export(self, teacher=None, temperature=None):
        """Every row's distribution, NaN rows where absent: what
        ``softlabel export`` writes (rows, classes) float32."""
        return self.probs(np.arange(self.rows), teacher, temperature, missing="nan")

    def present(self, samples, teacher=None):
        """Boolean mask: which samples have a record (not checked)."""
        t = self.teacher(teacher)
        ids = self._ids(samples)
        get, db = self._txn.get, self._labels
        return np.fromiter((get(t.key(s), db=db) is not None
                            for s in ids.tolist()), bool, ids.size)

    def inputs(self, samples):
        """Raw rows stored in the optional ``inputs`` database, shaped like
        the dataset's rows; KeyError when a row is not stored."""
        ids = self._ids(samples)
        shape, dt = self.dataset["shape"][1:], np.dtype(self.dataset["dtype"])
        out = np.empty((ids.size,) + shape, dt)
        for i, s in enumerate(ids.tolist()):
            raw = self._txn.get(struct.pack(">Q", s), db=self._inputs)
            if raw is None:
                raise KeyError(f"the cache stores no input row {s}")
            out[i] = np.frombuffer(raw, dt).reshape(shape)
        return out

    def __repr__(self):
        return (f"Cache({self.path!r}: {self.rows} rows, {self.nshards} shards, "
                f"teachers {list(self.teachers)})")

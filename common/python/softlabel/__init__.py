"""softlabel: the Python face of the softlabel logit cache.

    import softlabel
    c = softlabel.Cache("cache/")              # teachers, coverage, records
    p = c.probs(ids, temperature=2.0)          # (n, classes) float32

    from softlabel.torch import CacheDataset, kd_loss     # PyTorch (optional)
    from softlabel.safetensors import load_file, save_file  # no pip package
    from softlabel.worker import Worker        # label with any Python teacher

Pure Python on Debian 12's python3-lmdb, python3-numpy and python3-msgpack
(python3-zmq for the worker, python3-torch for softlabel.torch).
"""
from .cache import (Cache, CacheError, CorruptRecordError, MissingRecordError,
                    Teacher)
from .record import Format, RecordError

__version__ = "0.1.0"
__all__ = ["Cache", "CacheError", "CorruptRecordError", "MissingRecordError",
           "Teacher", "Format", "RecordError"]

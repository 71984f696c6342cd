"""A teacher worker in Python: any callable ``logits = f(rows)`` labels into
a softlabel broker, beside the C ``softlabel-teacher`` workers (needs
python3-zmq).

    import torch
    from softlabel.worker import Worker, torch_teacher

    model = ...                                  # any torch.nn.Module, on a GPU or not
    w = Worker("tcp://broker:5555", teacher="big", fn=torch_teacher(model, "cuda"),
               model_sha256=sha_of_the_weights, classes=10, input_shape=(1, 28, 28),
               temperature=4.0, encoding="f32")
    raise SystemExit(w.run())                    # 0 when the job is done

``f`` gets a float32 array (batch, *input_shape) of preprocessed rows,
(x * scale - mean) / std as the C worker computes it, and returns (batch,
classes) logits (a NumPy array or a tensor). It runs on a thread of its
own, so heartbeats keep flowing through a long batch; a batch should take
well under the broker's lease timeout (``--lease-timeout``, 30 s by
default), since leases are renewed only by heartbeats that follow a
finished batch (or an idle teacher): a teacher stuck inside ``f`` lets its
leases expire and its shards go to other workers, as a stalled C teacher
does.

The wire protocol is the one ``common/sl_proto.c`` defines (version 1) and
``teacher-worker/worker.c`` speaks: one HELLO per socket (name, teacher,
model SHA-256, T, encoding, classes, k, input size, local dataset's
fingerprint or none, preprocessing, the shards whose results it holds);
READY with its credit after WELCOME and with each heartbeat while idle,
READY with credit 0 when it stops (the broker then leases it nothing more);
HEARTBEAT every ``hb_ms`` listing the shards in progress; RESULT per shard,
kept and sent again after every reconnect until its ACK; RESET answered
with HELLO; BUSY (every worker slot of the broker taken, or a limit per
source address) answered with HELLO after a back-off, and counted as the
broker's answer for ``connect_timeout_s``; a broker silent for 6 heartbeats is presumed gone
(new socket, back-off 100 ms doubling to 5 s with jitter); no broker
answering within ``connect_timeout_s`` (300) of the start ends run() with
1. Teacher and worker names take A-Z a-z 0-9 . _ - + : @. CURVE when
``curve_secret``/``curve_server`` (the files ``softlabel keygen`` writes)
are given.
"""
import hashlib
import logging
import math
import os
import queue
import random
import signal
import socket
import sys
import threading
import time

import msgpack
import numpy as np
import zmq

from . import data as _data
from .record import Format, encode
from .views import Recipe

PROTO_VERSION = 1
(HELLO, WELCOME, REFUSE, READY, TASK, HEARTBEAT, RESULT, ACK, RESET, STATUS, STATUS_REPLY, DONE,
 BUSY) = range(1, 14)
ACK_STORED, ACK_DUPLICATE, ACK_REJECTED = 1, 2, 3
HEARTBEAT_MS = 500        # SL_NET_HEARTBEAT_MS
LIVENESS = 6              # SL_NET_LIVENESS
ZMTP_HEARTBEAT_MS = 10000 # SL_NET_ZMTP_HEARTBEAT_MS: libzmq's PING/PONG
ZMTP_TIMEOUT_MS = 30000   # SL_NET_ZMTP_TIMEOUT_MS
RECONNECT_MIN_MS = 100    # SL_NET_RECONNECT_MIN_MS
RECONNECT_MAX_MS = 5000   # SL_NET_RECONNECT_MAX_MS
MAX_HELD_LIST = 64        # SL_PROTO_MAX_HELD
MAX_TASKS = 8
DEFAULT_MAX_MSG = 64 << 20
STOP_WAIT_S = 10.0
DTYPE_U8, DTYPE_F32 = 1, 2
NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-+:@")
DEFAULT_CONNECT_TIMEOUT_S = 300  # softlabel-teacher --connect-timeout


def name_error(what, name):
    """Why name is no valid teacher or worker name (sl_proto_name_valid:
    1 to 128 characters of A-Z a-z 0-9 . _ - + : @), or None."""
    if not 1 <= len(name.encode()) <= 128:
        return f"{what} must be 1 to 128 characters, not {len(name.encode())} bytes"
    for i, ch in enumerate(name):
        if ch not in NAME_CHARS:
            return (f"{what} {name!r} has {ch!r} at {i}: names take A-Z a-z 0-9 . _ - + : @")
    return None


class WorkerError(Exception):
    """A fatal error: refused by the broker, a failing teacher, bad setup."""


def sha256_file(path):
    """The model SHA-256 the C worker sends for a model file (its bytes)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def torch_teacher(model, device="cpu", dtype=None):
    """Wrap a torch.nn.Module as ``f``: eval mode, no autograd, rows moved
    to device (and cast to dtype, e.g. torch.float16, if given), float32
    logits back on the CPU."""
    import torch

    model = model.eval().to(device)

    def f(x):
        with torch.no_grad():
            t = torch.from_numpy(x).to(device)
            if dtype is not None:
                t = t.to(dtype)
            return model(t).float().cpu().numpy()
    return f


def _log():
    log = logging.getLogger("softlabel.worker")
    if not log.handlers:
        h = logging.StreamHandler(sys.stderr)

        class Fmt(logging.Formatter):
            # The C programs' line: time, pid, program, level, message.
            def format(self, r):
                t = time.gmtime(r.created)
                lvl = {"WARNING": "WARN"}.get(r.levelname, r.levelname)
                return (time.strftime("%Y-%m-%dT%H:%M:%S", t) + ".%03dZ %d softlabel.worker %s %s"
                        % (int(r.msecs), os.getpid(), lvl, r.getMessage()))
        h.setFormatter(Fmt())
        log.addHandler(h)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log


def _pack(t, **keys):
    # "v" and "t" first, as the decoder requires; floats as float32.
    m = {"v": PROTO_VERSION, "t": t}
    m.update(keys)
    return msgpack.packb(m, use_bin_type=True, use_single_float=True)


class _Task:
    __slots__ = ("shard", "first", "n", "rows", "done", "records")

    def __init__(self, shard, first, n, rows):
        self.shard, self.first, self.n, self.rows = shard, first, n, rows
        self.done = 0
        self.records = []


class Worker:
    """One teacher worker. Arguments:

    connect       the broker's endpoint ("tcp://host:5555")
    teacher       the teacher's name in the cache
    fn            logits = fn(rows): rows float32 (b, *input_shape), logits (b, classes)
    model_sha256  64 hex digits identifying the teacher's weights (the
                  cache's provenance: every worker of one teacher sends the
                  same); or model_file: a file whose SHA-256 it is
    classes       the number of logits per row
    input_shape   the shape of one row as fn takes it (its product must be
                  the dataset's values per row)
    temperature   T (default 1); encoding "f32", "f16" or "topk:K"
    preproc       (scale, mean, std) applied to the rows as
                  (x * scale - mean[c]) / std[c]: mean and std one value, or
                  one per channel (up to 16) for channel-major rows [C, ...]
                  (PyTorch's NCHW; one value pairs with every channel of the
                  other list); None entries (or None) take the dataset
                  dtype's default (1/255, 0, 1 for uint8; 1, 0, 1 for
                  float32), as the C worker does
    dataset       optional local copy of the dataset (.npy / IDX path or
                  array): then only row ranges travel
    name          this worker in status and logs (default host-pid)
    batch         rows per call of fn (256); credit: shards leased at once
                  (2); max_held: unacknowledged results before computing
                  pauses (8)
    curve_secret, curve_server   key files for a CURVE broker (together)
    max_msg_bytes largest message accepted from the broker
    connect_timeout_s  give up (run() returns 1) when no broker has answered
                  within this many seconds of the start (0: wait forever);
                  once connected, a lost broker is waited for without limit
    """

    def __init__(self, connect, teacher, fn, classes, input_shape, model_sha256=None,
                 model_file=None, temperature=1.0, encoding="f32", preproc=None,
                 dataset=None, name=None, batch=256, credit=2, max_held=8,
                 curve_secret=None, curve_server=None, max_msg_bytes=DEFAULT_MAX_MSG,
                 connect_timeout_s=DEFAULT_CONNECT_TIMEOUT_S):
        if not callable(fn):
            raise TypeError("fn must be callable: logits = fn(rows)")
        if (model_sha256 is None) == (model_file is None):
            raise ValueError("give model_sha256 or model_file (one of them)")
        sha = sha256_file(model_file) if model_file is not None else str(model_sha256).lower()
        if len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha):
            raise ValueError("model_sha256 must be 64 hex digits")
        if name_error("teacher name", teacher):
            raise ValueError(name_error("teacher name", teacher))
        self.connect_ep, self.teacher, self.fn, self.sha = connect, teacher, fn, sha
        self.fmt = Format.parse(encoding, int(classes))
        self.encoding = encoding
        self.temperature = float(np.float32(temperature))
        if not (math.isfinite(self.temperature) and 0 < self.temperature <= 1e4):
            raise ValueError("temperature must be in (0, 1e4]")
        self.input_shape = tuple(int(d) for d in input_shape)
        self.dim = int(np.prod(self.input_shape))
        if self.dim < 1:
            raise ValueError("input_shape must hold at least one value")
        pre = (None, None, None) if preproc is None else tuple(preproc)
        if len(pre) != 3:
            raise ValueError("preproc is (scale, mean, std)")
        self.pre_req = pre
        self.pre_wire = _data.preproc_pack(*pre)  # checks the pairing too
        channels = len(_data.preproc_channels(pre[1], pre[2])[0])
        if self.dim % channels:
            raise ValueError(f"{channels} preprocessing channels do not divide rows of "
                             f"{self.dim} values")
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        if name_error("worker name", self.name):
            raise ValueError(name_error("worker name", self.name))
        self.connect_timeout_s = float(connect_timeout_s)
        self.batch, self.credit, self.max_held = int(batch), int(credit), int(max_held)
        if not (1 <= self.credit <= 64 and self.batch >= 1 and 1 <= self.max_held <= 64):
            raise ValueError("batch >= 1, credit 1..64, max_held 1..64")
        self.ds = None
        self.ds_sha = b""
        if dataset is not None:
            a = _data.load(dataset) if isinstance(dataset, (str, os.PathLike)) else np.asarray(dataset)
            self.ds = np.ascontiguousarray(a).reshape(len(a), -1)
            self.ds_sha = bytes.fromhex(_data.fingerprint(a)["sha256"])
        if (curve_secret is None) != (curve_server is None):
            raise ValueError("curve_secret and curve_server go together")
        self.curve = None
        if curve_secret is not None:
            sec = _read_key(curve_secret, secret=True)
            pub = zmq.curve_public(sec)
            pair = str(curve_secret)[:-4] + ".pub" if str(curve_secret).endswith(".key") else None
            if pair and os.path.exists(pair) and _read_key(pair) != pub:
                raise ValueError(f"{curve_secret} and {pair} are not one key pair")
            self.curve = (pub, sec, _read_key(curve_server))
        self.max_msg_bytes = int(max_msg_bytes)
        self.log = _log()
        self.stop_requested = False
        self.shards_done = self.samples_done = 0
        self.views = 0  # from WELCOME: a views job's V

    # --- messages --------------------------------------------------------

    def _send(self, frame):
        try:
            self.sock.send(frame, zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def _held_list(self):
        out = list(self.held)[:MAX_HELD_LIST]
        if self.stalled_since == 0:
            out += [t.shard for t in self.tasks if t.shard not in out][:MAX_HELD_LIST - len(out)]
        return out

    def _hello(self):
        self._send(_pack(HELLO, worker=self.name, teacher=self.teacher, model=self.sha,
                         temp=self.temperature, enc=self.fmt.encoding,
                         classes=self.fmt.classes, k=self.fmt.k, dim=self.dim,
                         dataset=self.ds_sha, pre=self.pre_wire,
                         held=self._held_list()))
        self.welcomed = False

    def _may_renew(self, now):
        # The renewal rule of worker.c: leases are renewed while the
        # teacher is idle or has finished a batch since the last renewal.
        busy = self.future is not None
        if not busy or self.batches != self.renew_batches:
            if self.stall_logged:
                self.log.info("the teacher is progressing again after %d ms: heartbeats "
                              "renew the leases", now - self.stalled_since)
            self.renew_batches = self.batches
            self.stalled_since = 0
            self.stall_logged = False
            return True
        if self.stalled_since == 0:
            self.stalled_since = now
        if not self.stall_logged and now - self.stalled_since >= self.lease_ms / 2:
            self.stall_logged = True
            self.log.warning("the teacher has finished no batch for %d ms or more: heartbeats "
                             "stop renewing the leases until it does", now - self.stalled_since)
        return False

    def _heartbeat(self, now):
        self.last_hb = now
        held = [t.shard for t in self.tasks][:MAX_HELD_LIST] if self._may_renew(now) else []
        self._send(_pack(HEARTBEAT, held=held))

    def _ready(self, credit=None):
        self._send(_pack(READY, credit=self.credit if credit is None else credit))

    def _backoff(self):
        # sl_net_backoff_ms: 100 ms doubling to 5 s, plus up to a quarter
        # of jitter so that workers cut off together come back apart.
        d = RECONNECT_MIN_MS if self.backoff_ms == 0 else self.backoff_ms * 2
        self.backoff_ms = d = min(d, RECONNECT_MAX_MS)
        return d + self.rng.randint(0, d // 4)

    def _connect(self):
        if getattr(self, "sock", None) is not None:
            self.poller.unregister(self.sock)
            self.sock.close(0)
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.MAXMSGSIZE, self.max_msg_bytes * 2)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.HEARTBEAT_IVL, ZMTP_HEARTBEAT_MS)
        s.setsockopt(zmq.HEARTBEAT_TIMEOUT, ZMTP_TIMEOUT_MS)
        s.setsockopt(zmq.HEARTBEAT_TTL, ZMTP_TIMEOUT_MS)
        s.setsockopt(zmq.RECONNECT_IVL, RECONNECT_MIN_MS)
        s.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_MAX_MS)
        s.setsockopt(zmq.SNDTIMEO, 0)
        if self.curve is not None:
            pub, sec, server = self.curve
            s.curve_publickey, s.curve_secretkey, s.curve_serverkey = pub, sec, server
        try:
            s.connect(self.connect_ep)
        except zmq.ZMQError as e:
            s.close(0)
            raise WorkerError(f"connect {self.connect_ep}: {e}") from None
        self.sock = s
        self.poller.register(s, zmq.POLLIN)
        self.last_heard = _now_ms()
        self._hello()

    def _welcome_views(self, m):
        # A views job: task shard u is (shard u // V, view u % V), and each
        # raw row is transformed (softlabel.views, sl_view's pixels) before
        # the preprocessing, as teacher-worker/worker.c does.
        self.views = m.get("views", 0)
        if not self.views:
            return
        try:
            self.recipe = Recipe.unpack(m["vrecipe"])
        except ValueError as e:
            raise WorkerError(f"the broker's view recipe: {e}") from None
        self.view_seed, h, w = m["vseed"], m["vh"], m["vw"]
        if h * w == 0 or self.dim % (h * w):
            raise WorkerError(f"views of {h} x {w} images do not divide rows of "
                              f"{self.dim} values")
        self.view_shape = (self.dim // (h * w), h, w)
        self.log.info("views: %d per row, recipe %s, seed %d, rows of %d x %d x %d",
                      self.views, self.recipe, self.view_seed, *self.view_shape)

    def _view_rows(self, rows, first, view):
        x = rows.reshape((len(rows),) + self.view_shape)
        return np.stack([self.recipe.apply(x[i], self.view_seed, first + i, view)
                         for i in range(len(rows))]).reshape(rows.shape)

    def _on_welcome(self, m):
        self._welcome_views(m)
        elem = 1 if m["dtype"] == DTYPE_U8 else 4
        self.teacher_index = m["teacher"]
        self.hb_ms = m["hb_ms"] or HEARTBEAT_MS
        self.lease_ms = m["lease_ms"]
        self.row_bytes, self.shard_rows, self.dtype = m["row_bytes"], m["shard_rows"], m["dtype"]
        if self.row_bytes != self.dim * elem:
            raise WorkerError(f"broker rows have {self.row_bytes} bytes; the teacher takes "
                              f"{self.dim} values")
        self.pre = _data.preproc_fill(*self.pre_req,
                                      np.uint8 if self.dtype == DTYPE_U8 else np.float32)
        self.welcomed = self.ever_welcomed = True
        self.backoff_ms = 0
        for frame in self.held.values():
            self._send(frame)
        self.log.info("ready connected=%s teacher=%s index=%d model=%s... encoding=%s T=%g "
                      "resent=%d", self.connect_ep, self.teacher, self.teacher_index,
                      self.sha[:12], self.encoding, self.temperature, len(self.held))
        if not self.stop_requested:
            self._ready()

    def _on_task(self, m):
        shard, first, n, data = m["shard"], m["first"], m["n"], m["data"]
        if self.stop_requested:
            # Only a task already on its way when READY with credit 0 went
            # out gets here: declined, its lease goes back when it times out.
            self.log.info("task for shard %d declined: stopping (the broker re-leases it "
                          "after its lease timeout)", shard)
            return
        if any(t.shard == shard for t in self.tasks):
            self.log.info("task for shard %d is already here", shard)
            return
        if len(self.tasks) >= MAX_TASKS or n > self.shard_rows:
            self.log.warning("task for shard %d dropped (%s)", shard,
                             "queue full" if len(self.tasks) >= MAX_TASKS else "more rows than a shard")
            return
        if not data:
            if self.ds is None:
                self.log.error("task for shard %d came without rows and there is no local "
                               "dataset", shard)
                return
            if first + n > len(self.ds):
                self.log.error("task for shard %d is past the local dataset", shard)
                return
            rows = self.ds[first:first + n]
        else:
            if len(data) != n * self.row_bytes:
                self.log.error("task for shard %d: %d bytes of rows, want %d", shard,
                               len(data), n * self.row_bytes)
                return
            rows = np.frombuffer(data, np.uint8 if self.dtype == DTYPE_U8 else "<f4").reshape(n, self.dim)
        self.tasks.append(_Task(shard, first, n, rows))

    def _on_ack(self, m):
        shard = m["shard"]
        if self.held.pop(shard, None) is None:
            return
        if m["status"] == ACK_REJECTED:
            self.log.error("broker rejected shard %d: %s", shard, m["reason"])
        elif m["status"] == ACK_DUPLICATE:
            self.log.info("shard %d was already stored by another worker", shard)

    def _receive(self):
        while True:
            try:
                frame = self.sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self.last_heard = _now_ms()
            try:
                m = msgpack.unpackb(frame, raw=False)
                if not isinstance(m, dict) or m.get("v") != PROTO_VERSION:
                    raise ValueError(f"version {m.get('v') if isinstance(m, dict) else '?'}")
                t = m["t"]
            except Exception as e:
                self.log.warning("malformed message from the broker: %s", e)
                continue
            try:
                if t == WELCOME:
                    self._on_welcome(m)
                elif t == REFUSE:
                    raise WorkerError(f"broker refused this worker: {m['reason']}")
                elif t == TASK:
                    self._on_task(m)
                elif t == ACK:
                    self._on_ack(m)
                elif t == RESET:
                    self.log.info("broker does not know this session: saying HELLO")
                    self._hello()
                elif t == DONE:
                    self.done = True
                elif t == BUSY:
                    # Not a refusal of this worker: the broker is full for
                    # now. HELLO again after a back-off.
                    d = self._backoff()
                    self.ever_busy = True
                    self.log.warning("broker busy: %s; saying HELLO again in %d ms",
                                     m["reason"], d)
                    self.hello_at = _now_ms() + d
                elif t != HEARTBEAT:
                    self.log.warning("unexpected message type %s from the broker", t)
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                self.log.warning("malformed message of type %s from the broker: %s: %s",
                                 t, type(e).__name__, e)

    # --- computing -----------------------------------------------------------

    def _current(self):
        if self.active is None and self.tasks:
            self.active = min(self.tasks, key=lambda t: t.shard)
        return self.active

    def _compute(self, rows, first, view):
        # On the compute thread: rows -> (their view) -> floats -> fn -> records.
        if view is not None:
            rows = self._view_rows(rows, first, view)
        x = _data.to_f32(rows, *self.pre).reshape((len(rows),) + self.input_shape)
        z = self.fn(x)
        if hasattr(z, "detach"):
            z = z.detach().cpu().numpy()
        z = np.asarray(z, np.float32)
        if z.shape != (len(rows), self.fmt.classes):
            raise WorkerError(f"the teacher returned logits of shape {z.shape}, want "
                              f"({len(rows)}, {self.fmt.classes})")
        return encode(z, self.fmt, self.temperature)

    def _hand(self, t):
        b = min(self.batch, t.n - t.done)
        rows = t.rows[t.done:t.done + b]
        self.future_task, self.future_rows = t, b
        self.future = self.pool_submit(rows, t.first + t.done,
                                       t.shard % self.views if self.views else None)

    def pool_submit(self, rows, first, view):
        fut = {"done": False, "result": None, "error": None}

        def run():
            try:
                fut["result"] = self._compute(rows, first, view)
            except BaseException as e:  # reported on the main thread
                fut["error"] = e
            fut["done"] = True
            try:
                os.write(self.wake_w, b"x")
            except OSError:
                pass
        self.jobs.put(run)
        return fut

    def _collect(self):
        f = self.future
        if f is None or not f["done"]:
            return
        self.future = None
        self.batches += 1
        if f["error"] is not None:
            e = f["error"]
            raise WorkerError(f"shard {self.future_task.shard}: the teacher failed: "
                              f"{type(e).__name__}: {e}")
        t = self.future_task
        t.records.append(f["result"])
        t.done += self.future_rows
        if t.done < t.n:
            return
        frame = _pack(RESULT, shard=t.shard, teacher=self.teacher_index, n=t.n,
                      blob=b"".join(t.records))
        self.held[t.shard] = frame
        if self.welcomed:
            self._send(frame)
        self.shards_done += 1
        self.samples_done += t.n
        self.tasks.remove(t)
        self.active = None

    def _compute_loop(self):
        while True:
            job = self.jobs.get()
            if job is None:
                return
            job()

    # --- main loop -------------------------------------------------------------

    def request_stop(self, *_):
        """Finish the queued shards, wait (at most 10 s) for their
        acknowledgements, then return from run(). Tasks that arrive after
        the request are declined (their leases expire at the broker). Safe
        from a signal handler."""
        self.stop_requested = True

    def run(self, install_signals=True):
        """Label until the broker says every shard of this teacher is done
        (returns 0), or stop_requested (0 when nothing was left unsent,
        else 1). A refusal or a failing teacher is logged and returns 1."""
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.request_stop)
            signal.signal(signal.SIGINT, self.request_stop)
        self.ctx = zmq.Context()
        self.poller = zmq.Poller()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.poller.register(self.wake_r, zmq.POLLIN)
        self.jobs = queue.Queue()
        thread = threading.Thread(target=self._compute_loop, name="softlabel-compute", daemon=True)
        thread.start()
        self.sock = None
        self.tasks, self.held, self.active, self.future = [], {}, None, None
        self.welcomed = self.done = False
        self.hb_ms, self.lease_ms = HEARTBEAT_MS, 30000
        self.last_hb = self.backoff_ms = self.stalled_since = 0
        self.batches = self.renew_batches = 0
        self.stall_logged = False
        self.rng = random.Random(os.getpid())
        self.ever_welcomed = False
        self.ever_busy = False  # a broker said BUSY: it is there, only full
        self.hello_at = 0
        t0 = _now_ms()
        if self.connect_timeout_s > 0:
            self.log.info("connecting to %s as %s (teacher %s); giving up if no broker "
                          "answers within %g s", self.connect_ep, self.name, self.teacher,
                          self.connect_timeout_s)
        else:
            self.log.info("connecting to %s as %s (teacher %s); waiting for a broker "
                          "without limit", self.connect_ep, self.name, self.teacher)
        status, stop_at, reconnect_at = 1, 0, 0
        try:
            self._connect()
            while True:
                hb = self.hb_ms
                now = _now_ms()
                wait = hb // 2
                if self.welcomed and self.last_hb + hb > now:
                    wait = min(wait, self.last_hb + hb - now)
                self.poller.poll(max(0, wait))
                try:
                    while os.read(self.wake_r, 64):
                        pass
                except BlockingIOError:
                    pass
                self._receive()
                self._collect()
                now = _now_ms()
                if self.stop_requested and stop_at == 0:
                    stop_at = now
                    self.log.info("stopping: finishing %d queued shard(s), waiting for %d "
                                  "acknowledgement(s)", len(self.tasks), len(self.held))
                    if self.welcomed:
                        self._ready(0)  # lease me nothing more
                left = len(self.tasks) + len(self.held)
                if stop_at and (left == 0 or now - stop_at > STOP_WAIT_S * 1000):
                    status = 0 if left == 0 else 1
                    break
                if self.done and left == 0:
                    self.log.info("every shard is done; %d shards, %d samples from this worker",
                                  self.shards_done, self.samples_done)
                    status = 0
                    break
                if (not self.ever_welcomed and not self.ever_busy
                        and self.connect_timeout_s > 0
                        and now - t0 >= self.connect_timeout_s * 1000):
                    raise WorkerError(f"no broker answered at {self.connect_ep} within "
                                      f"{self.connect_timeout_s:g} s (connect_timeout_s; 0 "
                                      f"waits forever): is it running, and is this its endpoint?")
                if now - self.last_heard <= hb * LIVENESS:
                    reconnect_at = 0
                elif reconnect_at == 0:
                    d = self._backoff()
                    if self.ever_welcomed:
                        self.log.warning("broker silent for %d ms; reconnecting in %d ms",
                                         now - self.last_heard, d)
                    else:
                        self.log.info("no broker answers at %s yet (%d s); trying again in "
                                      "%d ms", self.connect_ep, (now - t0) // 1000, d)
                    reconnect_at = now + d
                elif now >= reconnect_at:
                    reconnect_at = 0
                    self._connect()
                    continue
                if self.hello_at and now >= self.hello_at and not self.welcomed:
                    self.hello_at = 0
                    self._hello()
                if self.welcomed and now - self.last_hb >= hb:
                    self._heartbeat(now)
                    if not self.tasks and not self.stop_requested:
                        self._ready()
                t = self._current()
                if t is not None and self.future is None and len(self.held) < self.max_held:
                    self._hand(t)
            self.log.info("exiting: %d shards, %d samples, %.0f samples/s", self.shards_done,
                          self.samples_done, self.samples_done * 1000.0 / (_now_ms() - t0 + 1))
        except WorkerError as e:
            self.log.error("%s", e)
            status = 1
        finally:
            self.jobs.put(None)
            # Leaving with a batch in progress (a REFUSE mid-shard): let it
            # end first (bounded), so that the interpreter does not exit
            # with the compute thread inside the teacher (PyTorch may then
            # abort) and its wake-up write does not hit a closed, perhaps
            # reused, descriptor.
            thread.join(COMPUTE_JOIN_S)
            if self.sock is not None:
                self.sock.close(0)
            self.ctx.term()
            os.close(self.wake_r)
            os.close(self.wake_w)
        return status


COMPUTE_JOIN_S = 30  # run() waits this long for a batch in progress at exit


def _now_ms():
    return int(time.monotonic() * 1000)


def _read_key(path, secret=False):
    """A Z85 key file as softlabel keygen writes it (40 characters, an
    optional trailing newline). A secret key must be the user's with no
    group or other bits, or root's with at most group read (the C
    programs' rule, sl_curve_load_key)."""
    if secret:
        st = os.stat(path)
        mine = st.st_uid == os.geteuid() and not st.st_mode & 0o077
        roots = st.st_uid == 0 and not st.st_mode & 0o037
        if not (mine or roots):
            raise ValueError(f"{path}: a secret key must be yours with mode 0600 or less "
                             f"(chmod 600 {path}), or root's with mode 0640 or less")
    with open(path, "rb") as f:
        k = f.read().rstrip(b"\r\n")
    if len(k) != 40:
        raise ValueError(f"{path}: a CURVE key is 40 Z85 characters, this file has {len(k)}")
    return k

#!/usr/bin/python3
"""A hostile client for softlabel-broker, speaking the real wire protocol
(one msgpack map per ZeroMQ frame, see common/sl_proto.c) over a real DEALER
socket. It registers as a teacher, leases a shard, and then sends everything a
broken or malicious peer could: garbage, truncated msgpack, a header claiming
gigabytes, wrong class counts, NaN and Inf, unknown and unleased shards, a
duplicate, an oversize frame, and a HELLO that claims its teacher name with
another model. It prints what it sent and what came back, and exits non-zero
if the broker answered anything unexpectedly (or stopped answering).

    hostile_client.py ENDPOINT MAX_MSG_BYTES
"""
import struct
import sys
import time
import zlib

import msgpack
import zmq

EP, MAX_MSG = sys.argv[1], int(sys.argv[2])
CLASSES, T = 10, 2.0
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.connect(EP)


def send(d):
    s.send(msgpack.packb({"v": 1, **d}, use_bin_type=True))


def recv(timeout_ms=5000):
    if not s.poll(timeout_ms):
        sys.exit("FAIL: the broker stopped answering")
    return msgpack.unpackb(s.recv(), raw=False)


def expect(kind, want_status=None, note=""):
    while True:
        m = recv()
        if m["t"] == 6:  # heartbeat replies: skip
            continue
        if m["t"] == 5 and kind != 5:  # stray task
            continue
        break
    ok = m["t"] == kind and (want_status is None or m.get("status") == want_status)
    print(f"{note:45s} -> t={m['t']} status={m.get('status')} reason={m.get('reason', '')!r}")
    if not ok:
        sys.exit(f"FAIL: {note}: got {m}")
    return m


def record(values, classes=CLASSES, enc=1):
    body = struct.pack("<%df" % len(values), *values)
    return struct.pack("<BBHI", enc, 0, 0, classes) + struct.pack("<I", zlib.crc32(body)) + body


def blob(n, values=None, classes=CLASSES):
    v = values or [0.1 * i for i in range(classes)]
    return b"".join(record(v, classes) for _ in range(n))


def hello(model="a" * 64, teacher="hostile"):
    send({"t": 1, "worker": "hostile", "teacher": teacher, "model": model,
          "temp": T, "enc": 1, "classes": CLASSES, "k": 0, "dim": 784,
          "dataset": b"", "pre": b"\x00\x00\xc0\x7f" * 3, "held": []})


def heartbeat_ping(note):
    """The broker still serves: a heartbeat gets its reply."""
    send({"t": 6, "held": []})
    m = recv()
    while m["t"] != 6:
        m = recv()
    print(f"{note:45s} -> broker alive")


# Register and lease one shard.
hello()
w = expect(2, note="HELLO as teacher 'hostile'")
tidx, shard_rows = w["teacher"], w["shard_rows"]
send({"t": 4, "credit": 1})
task = expect(5, note="READY credit 1")
shard, n = task["shard"], task["n"]

def result(sh=shard, nn=n, b=None, teacher=tidx):
    return {"t": 7, "shard": sh, "teacher": teacher, "n": nn, "blob": b if b is not None else blob(nn)}

# Bytes that are not a message at all: no reply, counted as malformed.
s.send(b"\x00garbage\xff\xfe")
s.send(msgpack.packb({"v": 1, "t": 7, "shard": shard})[:-3])           # truncated
s.send(b"\xdf\xff\xff\xff\xff")                                        # map32 claiming 4e9 entries
s.send(b"\x85\xa1v\x01\xa1t\x07\xc6\xff\xff\xff\xf0")                   # bin32 claiming 4 GB
s.send(b"\xde\x00\x02\xa1v\x02\xa1t\x07")                              # protocol version 2
heartbeat_ping("garbage, truncated, 4e9-entry map, 4 GB bin")

send(result(b=blob(n, classes=5, values=[0.0] * 5)))
expect(8, 3, "wrong class count")
nan = [0.0] * CLASSES; nan[3] = float("nan")
send(result(b=blob(n, values=nan)))
expect(8, 3, "NaN in a record (CRC correct)")
inf = [0.0] * CLASSES; inf[0] = float("inf")
send(result(b=blob(n, values=inf)))
expect(8, 3, "Inf in a record (CRC correct)")
bad_crc = bytearray(blob(n)); bad_crc[40] ^= 1
send(result(b=bytes(bad_crc)))
expect(8, 3, "flipped byte (CRC fails)")
send(result(nn=n - 1, b=blob(n - 1)))
expect(8, 3, "wrong row count")
send(result(sh=10**9))
expect(8, 3, "unknown shard")
send(result(teacher=tidx + 7))
expect(8, 3, "another teacher's index")
# The rejections above returned the shard to the queue; lease it again.
send({"t": 4, "credit": 1})
task = expect(5, note="READY again")
shard = task["shard"]
other = (shard + 1) % (w["rows"] // shard_rows)
send(result(sh=other, nn=shard_rows))
expect(8, 3, "shard never leased to this worker")
send(result(sh=shard))
expect(8, 1, "a valid result")
send(result(sh=shard))
expect(8, 2, "the same result again (duplicate)")
s.send(b"\x00" * (MAX_MSG + 1024))
heartbeat_ping("a frame over the size limit")

# Another client claims the registered name with another model.
s2 = ctx.socket(zmq.DEALER); s2.setsockopt(zmq.LINGER, 0); s2.connect(EP)
s2.send(msgpack.packb({"v": 1, "t": 1, "worker": "impostor", "teacher": "hostile",
                       "model": "b" * 64, "temp": T, "enc": 1, "classes": CLASSES,
                       "k": 0, "dim": 784, "dataset": b"", "pre": b"\x00\x00\xc0\x7f" * 3, "held": []}, use_bin_type=True))
if not s2.poll(5000):
    sys.exit("FAIL: no answer to the impostor")
m = msgpack.unpackb(s2.recv(), raw=False)
print(f"{'HELLO: same teacher name, another model':45s} -> t={m['t']} reason={m.get('reason')!r}")
if m["t"] != 3 or "model" not in m.get("reason", ""):
    sys.exit(f"FAIL: impostor not refused: {m}")
heartbeat_ping("after all of it")
print("hostile client: every case answered as expected")

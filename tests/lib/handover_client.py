#!/usr/bin/python3
"""A worker's two sessions, spoken by hand over real DEALER sockets (one
msgpack map per frame, see common/sl_proto.c), to show what the broker does
when a worker comes back on a new connection:

  session 1: HELLO as worker "hand", READY credit 3: tasks A, B, C
  session 2: HELLO as "hand" again, holding only A and B (C's TASK "lost")

The broker must move A and B to session 2 (its results are stored, status
shows one "hand" with 2 leases) and put C back in the queue at once (a
result for C from session 2 is refused as not leased to it).

    handover_client.py ENDPOINT STATUS-JSON-COMMAND...
"""
import json
import struct
import subprocess
import sys
import zlib

import msgpack
import zmq

EP, STATUS = sys.argv[1], sys.argv[2:]
CLASSES = 10
ctx = zmq.Context()


def session():
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(EP)
    return s


def send(s, d):
    s.send(msgpack.packb({"v": 1, **d}, use_bin_type=True))


def expect(s, kind, note):
    while True:
        if not s.poll(5000):
            sys.exit(f"FAIL: {note}: no answer")
        m = msgpack.unpackb(s.recv(), raw=False)
        if m["t"] != 6:  # heartbeat replies
            break
    print(f"{note:50s} -> t={m['t']} status={m.get('status')} "
          f"shard={m.get('shard')} reason={m.get('reason', '')!r}")
    if m["t"] != kind:
        sys.exit(f"FAIL: {note}: expected t={kind}, got {m}")
    return m


def hello(s, held):
    send(s, {"t": 1, "worker": "hand", "teacher": "hand", "model": "c" * 64,
             "temp": 1.0, "enc": 1, "classes": CLASSES, "k": 0, "dim": 784,
             "dataset": b"", "pre": b"\x00\x00\xc0\x7f" * 3, "held": held})


def blob(n):
    body = struct.pack("<%df" % CLASSES, *[0.1] * CLASSES)
    rec = struct.pack("<BBHI", 1, 0, 0, CLASSES) + struct.pack("<I", zlib.crc32(body)) + body
    return rec * n


def status():
    return json.loads(subprocess.run(STATUS, check=True, capture_output=True).stdout)


s1 = session()
hello(s1, [])
w = expect(s1, 2, "session 1: HELLO")
send(s1, {"t": 4, "credit": 3})
tasks = [expect(s1, 5, f"session 1: task {i + 1} of 3") for i in range(3)]
(a, na), (b, nb), (c, nc) = [(t["shard"], t["n"]) for t in tasks]

s2 = session()
hello(s2, [a, b])
expect(s2, 2, f"session 2: HELLO holding shards {a} and {b}, not {c}")
st = status()
hands = [x for x in st["workers"] if x["name"] == "hand"]
print(f"status: {len(hands)} session(s) of 'hand', leases {[x['leases'] for x in hands]}, "
      f"pending {st['teachers'][0]['pending']}")
if [x["leases"] for x in hands] != [2]:
    sys.exit("FAIL: session 2 did not take over exactly the two leases it holds")

for sh, n in ((a, na), (b, nb)):
    send(s2, {"t": 7, "shard": sh, "teacher": w["teacher"], "n": n, "blob": blob(n)})
    m = expect(s2, 8, f"session 2: result for shard {sh}")
    if m.get("status") != 1:
        sys.exit(f"FAIL: shard {sh} not stored: {m}")
send(s2, {"t": 7, "shard": c, "teacher": w["teacher"], "n": nc, "blob": blob(nc)})
m = expect(s2, 8, f"session 2: result for shard {c}, never received")
if m.get("status") != 3 or "not leased" not in m.get("reason", ""):
    sys.exit(f"FAIL: shard {c} was not back in the queue: {m}")
print("handover: held leases moved to the new session, the lost one re-queued")

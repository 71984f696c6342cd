#!/usr/bin/python3
"""HELLOs whose worker or teacher name carries a newline (a forged log
line) or a terminal escape (ESC ] 0 ; title BEL), over a real DEALER socket
and the real wire protocol: each must be refused with a reason that names
the bad byte. A valid HELLO after them must still be welcomed.

    names_client.py ENDPOINT
"""
import sys
import time

import msgpack
import zmq

EP = sys.argv[1]
FORGED = "x\n2026-01-01T00:00:00.000Z 1 softlabel-broker INFO all shards finished"
TITLE = "t\x1b]0;pwned\x07"
ctx = zmq.Context()


def hello(worker, teacher):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(EP)
    s.send(msgpack.packb({"v": 1, "t": 1, "worker": worker, "teacher": teacher,
                          "model": "a" * 64, "temp": 2.0, "enc": 1, "classes": 10,
                          "k": 0, "dim": 784, "dataset": b"",
                          "pre": b"\x00\x00\xc0\x7f" * 3, "held": []},
                         use_bin_type=True))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not s.poll(int((deadline - time.monotonic()) * 1000) + 1):
            break
        m = msgpack.unpackb(s.recv(), raw=False)
        if m["t"] in (2, 3):  # WELCOME, REFUSE
            s.close()
            return m
    sys.exit(f"FAIL: no answer to HELLO {worker!r}/{teacher!r}")


fails = 0
for worker, teacher, why in [(FORGED, "names", "a newline in the worker name"),
                             ("w", TITLE, "ESC ] 0 ; ... BEL in the teacher name"),
                             (TITLE, "names", "ESC in the worker name"),
                             ("w", "a b", "a space in the teacher name")]:
    m = hello(worker, teacher)
    reason = m.get("reason", "")
    print(f"{why:40s} -> t={m['t']} reason={reason!r}")
    if m["t"] != 3 or "names are 1 to 128 characters" not in reason:
        print(f"FAIL: {why}: not refused with the rule: {m}")
        fails += 1
    if any(c in reason for c in "\n\x1b\x07"):
        print(f"FAIL: {why}: the reason carries a control byte")
        fails += 1
m = hello("good-worker_1.a:b@c+d", "names")
print(f"{'a valid HELLO':40s} -> t={m['t']}")
if m["t"] != 2:
    print(f"FAIL: a valid HELLO was not welcomed: {m}")
    fails += 1
sys.exit(1 if fails else 0)

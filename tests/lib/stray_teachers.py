#!/usr/bin/python3
"""HELLOs for COUNT distinct teacher names (stray-0, stray-1, ...), one DEALER
socket each, as finding 1 of issue 15 sent them. Prints how many were
welcomed and how many refused (and the first refusal's reason); exits 0.
Every wait is bounded (10 s per HELLO).

    stray_teachers.py ENDPOINT COUNT [MODEL_SHA256 [TEACHER]]
      with TEACHER: COUNT HELLOs all naming TEACHER with MODEL_SHA256
"""
import sys

import msgpack
import zmq

EP, COUNT = sys.argv[1], int(sys.argv[2])
SHA = sys.argv[3] if len(sys.argv) > 3 else "a" * 64
ONE = sys.argv[4] if len(sys.argv) > 4 else None
ctx = zmq.Context()
welcomed = refused = 0
first = None
for i in range(COUNT):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(EP)
    s.send(msgpack.packb({"v": 1, "t": 1, "worker": f"w{i}", "teacher": ONE or f"stray-{i}",
                          "model": SHA, "temp": 2.0, "enc": 1, "classes": 10, "k": 0,
                          "dim": 784, "dataset": b"", "pre": b"\x00\x00\xc0\x7f" * 3,
                          "held": []}, use_bin_type=True))
    if not s.poll(10000):
        sys.exit(f"FAIL: no answer to HELLO {i}")
    m = msgpack.unpackb(s.recv(), raw=False)
    if m["t"] == 2:
        welcomed += 1
    elif m["t"] == 3:
        refused += 1
        first = first or m.get("reason")
    s.close()
print(f"welcomed {welcomed} refused {refused}")
print(f"first refusal: {first}")

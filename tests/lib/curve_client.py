#!/usr/bin/python3
"""A client the CURVE broker must refuse: it connects over a real ZeroMQ
DEALER, sends a valid HELLO (the real wire protocol, see common/sl_proto.c)
and a STATUS, and expects no answer at all within the wait: the broker's
logic never sees its messages.

    curve_client.py ENDPOINT MODE BROKER_PUB [WAIT_S]

MODE: plaintext    no CURVE at all
      unknown      CURVE with the right server key, a key not on the list
      wrongserver  CURVE with a key on no list and another server key
Exit 0 when nothing came back, 1 when the broker answered.
"""
import sys

import msgpack
import zmq

EP, MODE, BROKER_PUB = sys.argv[1], sys.argv[2], sys.argv[3]
WAIT_S = float(sys.argv[4]) if len(sys.argv) > 4 else 2.0
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
if MODE != "plaintext":
    pub, sec = zmq.curve_keypair()
    server = open(BROKER_PUB, "rb").read().strip()
    if MODE == "wrongserver":
        server, _ = zmq.curve_keypair()
    elif MODE != "unknown":
        sys.exit(f"unknown mode {MODE}")
    s.curve_serverkey, s.curve_publickey, s.curve_secretkey = server, pub, sec
s.connect(EP)
s.send(msgpack.packb({"v": 1, "t": 1, "worker": "intruder-" + MODE,
                      "teacher": "intruder", "model": "a" * 64, "temp": 1.0,
                      "enc": 1, "classes": 10, "k": 0, "dim": 784,
                      "dataset": b"", "pre": b"\x00\x00\xc0\x7f" * 3, "held": []}, use_bin_type=True))
s.send(msgpack.packb({"v": 1, "t": 10}, use_bin_type=True))
if s.poll(int(WAIT_S * 1000)):
    print(f"{MODE}: FAIL: the broker answered: {s.recv()[:80]!r}")
    sys.exit(1)
print(f"{MODE}: no answer in {WAIT_S:g} s")

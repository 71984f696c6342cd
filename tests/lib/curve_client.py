#!/usr/bin/python3
"""A client the CURVE broker must refuse: it connects over a real ZeroMQ
DEALER, sends a valid HELLO (the real wire protocol, see common/sl_proto.c)
and a STATUS, and expects no answer at all within the wait: the broker's
logic never sees its messages.

    curve_client.py ENDPOINT MODE BROKER_PUB [WAIT_S]

MODE: plaintext    no CURVE at all
      greeting     a raw ZMTP 3.0 greeting offering NULL over TCP, then
                   listen WAIT_S: the broker always reads our mechanism
                   (libzmq's own plaintext client may close on the
                   mismatch first, its RST racing the server's read, and
                   the server then logs no reason)
      unknown      CURVE with the right server key, a key not on the list
      wrongserver  CURVE with a key on no list and another server key
Exit 0 when nothing came back, 1 when the broker answered.
"""
import sys

import msgpack
import zmq

EP, MODE, BROKER_PUB = sys.argv[1], sys.argv[2], sys.argv[3]
WAIT_S = float(sys.argv[4]) if len(sys.argv) > 4 else 2.0
if MODE == "greeting":
    import socket
    import time

    host, port = EP[len("tcp://"):].rsplit(":", 1)
    # Signature, version 3.0, mechanism "NULL" (20 bytes), as-server 0,
    # 31 filler bytes: 64 bytes (ZMTP 3.0, RFC 23).
    greeting = (b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" +
                b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31)
    with socket.create_connection((host, int(port)), timeout=WAIT_S) as c:
        c.sendall(greeting)
        got, end = b"", time.monotonic() + WAIT_S
        while time.monotonic() < end:
            try:
                chunk = c.recv(4096)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            got += chunk
    # The server's greeting (64 bytes) names CURVE; nothing after it.
    if len(got) > 64:
        print(f"greeting: FAIL: the broker sent {len(got)} bytes")
        sys.exit(1)
    print(f"greeting: {len(got)} bytes back (at most the broker's greeting), "
          "then the connection closed or stayed silent")
    sys.exit(0)
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

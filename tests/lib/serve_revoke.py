#!/usr/bin/python3
"""A reader whose key is revoked while its connection stays up: over CURVE
with KEY_FILE (a softlabel keygen .key), it asks META (answered), then
creates FLAG_FILE and waits for GO_FILE (the test removes its key from the
allow-list and sends SIGHUP to softlabel serve meanwhile), then asks META
again on the same connection, which must be refused with an ERROR naming
the allow-list.

    serve_revoke.py ENDPOINT KEY_FILE SERVER_PUB FLAG_FILE GO_FILE
"""
import os
import sys
import time

import msgpack
import zmq

EP, KEY, PUB, FLAG, GO = sys.argv[1:6]
sec = open(KEY, "rb").read().strip()
ctx = zmq.Context()
s = ctx.socket(zmq.DEALER)
s.setsockopt(zmq.LINGER, 0)
s.curve_secretkey = sec
s.curve_publickey = zmq.curve_public(sec)
s.curve_serverkey = open(PUB, "rb").read().strip()
s.connect(EP)


def meta(note):
    s.send(msgpack.packb({"v": 1, "t": 14}))
    if not s.poll(10000):
        sys.exit(f"FAIL: {note}: no answer")
    m = msgpack.unpackb(s.recv(), raw=False)
    print(f"{note}: t={m['t']} reason={m.get('reason', '')!r}")
    return m


if meta("before the reload")["t"] != 15:
    sys.exit("FAIL: an allowed key was not answered")
open(FLAG, "w").close()
end = time.monotonic() + 30
while not os.path.exists(GO):
    if time.monotonic() > end:
        sys.exit("FAIL: the test never said go")
    time.sleep(0.05)
m = meta("after the reload")
if m["t"] != 20 or "allow-list" not in m["reason"]:
    sys.exit(f"FAIL: a revoked key was answered: {m}")

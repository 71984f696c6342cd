#!/usr/bin/python3
"""One host flooding the broker with sessions and HELLOs, from one source
address (the per-peer limits of issue 15). Every wait is bounded.

    peer_flood.py EP SRC N STOPFILE MAX_S [KEYDIR]

N DEALER sockets connect to EP from source address SRC (libzmq's
"tcp://SRC:0;HOST:PORT" binds the local side). Each says HELLO for teacher
"squat" under a throwaway worker name, a new one every time, until it is
welcomed: after BUSY it says HELLO again 10 ms later. A welcomed socket
sends a HEARTBEAT every second, so the broker never forgets its session for
its silence. Until STOPFILE exists or
MAX_S seconds have passed. Once a second (and at the end) it prints

    flood: W sessions, H HELLOs, B busy, R refused

W: sockets holding a session (welcomed). With KEYDIR, every socket speaks
CURVE with KEYDIR/attacker.key (on the broker's allow-list) and the server
key KEYDIR/broker.pub. Exit 0; 1 if no HELLO was ever answered.
"""
import os
import sys
import time

import msgpack
import zmq

EP, SRC, N, STOPFILE, MAX_S = (sys.argv[1], sys.argv[2], int(sys.argv[3]),
                               sys.argv[4], float(sys.argv[5]))
KEYDIR = sys.argv[6] if len(sys.argv) > 6 else None
host_port = EP[len("tcp://"):]

ctx = zmq.Context()
ctx.set(zmq.MAX_SOCKETS, N + 16)
socks = []
for _ in range(N):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    if KEYDIR:
        s.curve_serverkey = open(os.path.join(KEYDIR, "broker.pub"), "rb").read().strip()
        s.curve_publickey = open(os.path.join(KEYDIR, "attacker.pub"), "rb").read().strip()
        s.curve_secretkey = open(os.path.join(KEYDIR, "attacker.key"), "rb").read().strip()
    s.connect(f"tcp://{SRC}:0;{host_port}")
    socks.append(s)

poller = zmq.Poller()
for s in socks:
    poller.register(s, zmq.POLLIN)
state = {s: {"welcomed": False, "hello_at": 0.0, "beat_at": 0.0} for s in socks}
hellos = busy = refused = answers = 0
serial = 0


def hello(s):
    global hellos, serial
    serial += 1
    s.send(msgpack.packb({"v": 1, "t": 1, "worker": f"throwaway{serial}",
                          "teacher": "squat", "model": "a" * 64, "temp": 2.0,
                          "enc": 1, "classes": 10, "k": 0, "dim": 784,
                          "dataset": b"", "pre": b"\x00\x00\xc0\x7f" * 3,
                          "held": []}, use_bin_type=True), zmq.NOBLOCK)
    hellos += 1


def report():
    w = sum(1 for st in state.values() if st["welcomed"])
    print(f"flood: {w} sessions, {hellos} HELLOs, {busy} busy, {refused} refused",
          flush=True)


end = time.monotonic() + MAX_S
next_report = time.monotonic() + 1
while time.monotonic() < end and not os.path.exists(STOPFILE):
    now = time.monotonic()
    for s in socks:
        st = state[s]
        try:
            if not st["welcomed"] and now >= st["hello_at"]:
                hello(s)
                st["hello_at"] = now + 1.0  # until its answer comes
            if st["welcomed"] and now >= st["beat_at"]:
                s.send(msgpack.packb({"v": 1, "t": 6, "held": []},
                                     use_bin_type=True), zmq.NOBLOCK)
                st["beat_at"] = now + 1.0
        except zmq.Again:
            pass
    for s, _ in poller.poll(10):
        while True:
            try:
                m = msgpack.unpackb(s.recv(zmq.NOBLOCK), raw=False)
            except zmq.Again:
                break
            answers += 1
            st = state[s]
            t = m.get("t")
            if t == 2:
                st["welcomed"] = True
            elif t == 13:
                busy += 1
                st["hello_at"] = time.monotonic() + 0.01
            elif t == 3:
                refused += 1
                st["hello_at"] = time.monotonic() + 0.5
    if time.monotonic() >= next_report:
        report()
        next_report = time.monotonic() + 1
report()
for s in socks:
    s.close()
ctx.term()
sys.exit(0 if answers > 0 else 1)

#!/usr/bin/python3
"""Peers that take connections and sessions and then do nothing (findings
4 and 5 of issue 15). Every wait is bounded.

    idle_client.py zmtp EP N STOPFILE MAX_S
        N DEALER sockets connect (ZMTP handshake done, libzmq reconnects
        them if the broker closes them) and never send; held until
        STOPFILE exists or MAX_S seconds pass.
    idle_client.py greeting HOST PORT N
        N raw TCP connections send a ZMTP 3.0 NULL greeting and READY, then
        nothing; exits 0 once the broker has closed every one (EOF), 1 if
        one is still open after 60 s.
    idle_client.py pending HOST PORT SRC N WAIT_S
        N raw TCP connections from source address SRC send the greeting
        and READY, then nothing; after WAIT_S seconds (under the broker's
        15 s ZMTP heartbeat timeout, which closes silent peers) prints how many
        the broker has closed ("pending: C of N closed, O open") at once
        and exits 0.
    idle_client.py hello EP N STOPFILE MAX_S [long]
        N DEALER sockets each say HELLO (teacher "squat") and wait for
        WELCOME; held, silent, until STOPFILE exists or MAX_S seconds.
        With "long", every name (worker and teacher) is 128 bytes.
"""
import os
import socket
import struct
import sys
import time

MODE = sys.argv[1]


def hold(stopfile, max_s):
    end = time.monotonic() + max_s
    while not os.path.exists(stopfile) and time.monotonic() < end:
        time.sleep(0.1)


GREETING = (b"\xff" + b"\x00" * 8 + b"\x7f" + b"\x03\x00" +
            b"NULL".ljust(20, b"\x00") + b"\x00" + b"\x00" * 31)
_PROP = b"\x0bSocket-Type" + struct.pack(">I", 6) + b"DEALER"
READY = b"\x04" + bytes([len(b"\x05READY" + _PROP)]) + b"\x05READY" + _PROP


def closed_by_peer(c, end):
    """Read c until EOF (True) or until end passes (False)."""
    while time.monotonic() < end:
        c.settimeout(max(0.1, end - time.monotonic()))
        try:
            chunk = c.recv(4096)
        except socket.timeout:
            return False
        except OSError:  # reset: closed too
            return True
        if not chunk:
            return True
    return False


if MODE == "pending":
    host, port, src, n, wait_s = (sys.argv[2], int(sys.argv[3]), sys.argv[4],
                                  int(sys.argv[5]), float(sys.argv[6]))
    conns = []
    for _ in range(n):
        c = socket.create_connection((host, port), timeout=10, source_address=(src, 0))
        c.sendall(GREETING + READY)
        conns.append(c)
    time.sleep(wait_s)
    closed = 0
    for c in conns:  # EOF (or a reset) by now, without waiting
        c.setblocking(False)
        try:
            while c.recv(4096):
                pass
            closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    print(f"pending: {closed} of {n} closed, {n - closed} open")
    sys.exit(0)

if MODE == "greeting":
    host, port, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    conns = []
    for _ in range(n):
        c = socket.create_connection((host, port), timeout=10)
        c.sendall(GREETING + READY)
        conns.append(c)
    end = time.monotonic() + 60
    closed = sum(closed_by_peer(c, end) for c in conns)
    print(f"greeting: {closed} of {n} connections closed by the broker")
    sys.exit(0 if closed == n else 1)

import msgpack  # noqa: E402
import zmq  # noqa: E402

ep, n, stopfile, max_s = sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
LONG = len(sys.argv) > 6 and sys.argv[6] == "long"


def name(base):
    return base.ljust(128, "x") if LONG else base
ctx = zmq.Context()
ctx.set(zmq.MAX_SOCKETS, n + 16)
socks = []


def connect():
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(ep)
    socks.append(s)
    return s


if MODE == "zmtp":
    for _ in range(n):
        connect()
    print(f"zmtp: {n} idle connections", flush=True)
    hold(stopfile, max_s)
elif MODE == "hello":
    # Each says HELLO as soon as it is connected: a connection silent for
    # --hello-timeout is closed by the broker.
    for i in range(n):
        s = connect()
        s.send(msgpack.packb({"v": 1, "t": 1, "worker": name(f"squat{i}-"),
                              "teacher": name("squat"),
                              "model": "a" * 64, "temp": 2.0, "enc": 1, "classes": 10,
                              "k": 0, "dim": 784, "dataset": b"",
                              "pre": b"\x00\x00\xc0\x7f" * 3, "held": []},
                             use_bin_type=True))
        if not s.poll(10000):
            sys.exit(f"FAIL: no answer to HELLO {i}")
        m = msgpack.unpackb(s.recv(), raw=False)
        if m["t"] != 2:
            sys.exit(f"FAIL: HELLO {i} not welcomed: {m}")
    print(f"hello: {n} sessions welcomed", flush=True)
    hold(stopfile, max_s)
for s in socks:
    s.close()
ctx.term()

#!/usr/bin/python3
"""Garbage over raw TCP, as finding 3 of issue 15 sent it: ROUNDS
connections, each writing b"\\x02\\x00\\xc0" * 100000. libzmq reads an
unversioned peer as ZMTP 1.0: the first 3 bytes are its identity, every 3
after them one message (msgpack nil) that the broker refuses as
malformed: 99,999 refusals per connection. Each connection stays
open until status counts them (libzmq drops what it has not read from a
peer that is gone), at most 60 s; then the next one. Prints the total.

    flood_client.py HOST PORT ROUNDS
"""
import json
import socket
import sys
import time

import msgpack
import zmq

HOST, PORT, ROUNDS = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
PER = 99999
GARBAGE = b"\x02\x00\xc0" * PER
ctx = zmq.Context()
st = ctx.socket(zmq.DEALER)
st.setsockopt(zmq.LINGER, 0)
st.connect(f"tcp://{HOST}:{PORT}")


def malformed():
    st.send(msgpack.packb({"v": 1, "t": 10}, use_bin_type=True))
    if not st.poll(10000):
        sys.exit("FAIL: the broker does not answer status during the flood")
    m = msgpack.unpackb(st.recv(), raw=False)
    return json.loads(m["json"])["rejected"]["malformed"]


base = malformed()
for r in range(ROUNDS):
    with socket.create_connection((HOST, PORT), timeout=10) as s:
        # An identity of its own per connection: ROUTER ignores a new
        # peer with the identity of one it has not yet seen leave.
        s.sendall(bytes([2, 0, 0x41 + r % 60]) + GARBAGE)
        deadline = time.monotonic() + 60
        while malformed() < base + (r + 1) * PER:
            if time.monotonic() > deadline:
                sys.exit(f"FAIL: round {r}: {malformed() - base} refusals counted")
            time.sleep(0.05)
print(f"sent {ROUNDS * (3 + len(GARBAGE))} bytes in {ROUNDS} connections; "
      f"{malformed() - base} refusals counted")

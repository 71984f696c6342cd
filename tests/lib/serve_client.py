#!/usr/bin/python3
"""A hostile reader for softlabel serve, over a real DEALER socket with the
real wire protocol (one msgpack map per frame, common/sl_proto.c): garbage,
a request of another version, a worker's message, a sample list over the
limit, a list whose length disagrees with n, a range that overflows, an
unknown teacher, a multi-frame request, a frame over --max-request-bytes.
Each must get an ERROR (or, for the oversize frame, a dropped connection)
and the server must keep answering: after each, a META must come back.
Then the bounded reply: a list of many present samples is answered by a
prefix of exactly floor(MAX_REPLY / record size) samples, and asking for
the rest completes it.

    serve_client.py ENDPOINT MAX_REQUEST_BYTES MAX_REPLY_BYTES RECORD_BYTES
Exit 0 when every answer was the expected one.
"""
import struct
import sys

import msgpack
import zmq

EP, MAX_REQ, MAX_REPLY, REC = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
ctx = zmq.Context()


def sock():
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.MAXMSGSIZE, 1 << 28)
    s.connect(EP)
    return s


s = sock()


def pack(d):
    return msgpack.packb({"v": 1, **d}, use_bin_type=True)


def ask(frame, note, want_t, timeout_ms=10000, multi=None):
    if multi:
        s.send_multipart(multi)
    else:
        s.send(frame)
    if not s.poll(timeout_ms):
        sys.exit(f"FAIL: {note}: no answer")
    m = msgpack.unpackb(s.recv(), raw=False)
    print(f"{note:48s} -> t={m['t']} code={m.get('code')} reason={m.get('reason', '')[:90]!r}")
    if m["t"] != want_t:
        sys.exit(f"FAIL: {note}: want type {want_t}, got {m}")
    return m


def alive(note):
    ask(pack({"t": 14}), "  META after " + note, 15)


cases = [
    (b"\xc1garbage", "garbage bytes", "want a map"),
    (pack({"t": 14, "v": 2}) if False else msgpack.packb({"v": 2, "t": 14}), "protocol version 2", "protocol version 2"),
    (pack({"t": 4, "credit": 1}), "a worker's READY", "not READY"),
    (pack({"t": 18, "teacher": 0, "first": 0, "n": (1 << 20) + 1, "samples": b""}), "RECORDS n over the limit", "limit 1048576"),
    (pack({"t": 18, "teacher": 0, "first": 0, "n": 5, "samples": b"\0" * 16}), "RECORDS list shorter than n", "want 0 or 8 * n"),
    (pack({"t": 18, "teacher": 0, "first": (1 << 64) - 2, "n": 5, "samples": b""}), "RECORDS range overflow", "overflows"),
    (pack({"t": 18, "teacher": 77, "first": 0, "n": 5, "samples": b""}), "RECORDS of an unknown teacher", "no teacher of index 77"),
    (pack({"t": 16, "teacher": 0, "from": 0, "x": 1}), "SHARDS with an unknown key", "unknown key 'x'"),
]
for frame, note, want in cases:
    m = ask(frame, note, 20)
    if want not in m["reason"]:
        sys.exit(f"FAIL: {note}: reason {m['reason']!r} lacks {want!r}")
    alive(note)

m = ask(None, "a request of two frames", 20, multi=[pack({"t": 14}), pack({"t": 14})])
if "one frame" not in m["reason"]:
    sys.exit(f"FAIL: two frames: {m}")
alive("two frames")

# A frame over --max-request-bytes: libzmq drops the connection, no reply.
s.send(pack({"t": 18, "teacher": 0, "first": 0, "n": 1, "samples": b"\0" * MAX_REQ}))
if s.poll(1500):
    sys.exit("FAIL: an oversize request got an answer")
print(f"{'an oversize request (' + str(MAX_REQ) + ' B)':48s} -> no answer (connection dropped)")
s.close()
s = sock()
alive("an oversize request")

# SHARDS of a teacher with none: no runs, last.
m = ask(pack({"t": 16, "teacher": 200, "from": 0}), "SHARDS of a teacher with no shard", 17)
if m["runs"] != b"" or m["last"] != 1:
    sys.exit(f"FAIL: {m}")

# The bounded reply: many present samples (sample 0, listed again and again).
n = MAX_REPLY // REC + 1000
m = ask(pack({"t": 18, "teacher": 0, "first": 0, "n": n, "samples": struct.pack("<Q", 0) * n}),
        f"RECORDS of {n} present samples", 19)
want = MAX_REPLY // REC
if m["n"] != want or len(m["blob"]) != want * REC or m["state"] != b"\1" * want:
    sys.exit(f"FAIL: prefix of {m['n']} samples, {len(m['blob'])} bytes; want {want}")
rest = n - m["n"]
m2 = ask(pack({"t": 18, "teacher": 0, "first": 0, "n": rest, "samples": struct.pack("<Q", 0) * rest}),
         f"RECORDS of the {rest} left", 19)
if m2["n"] != rest or m2["blob"][:REC] != m["blob"][:REC]:
    sys.exit(f"FAIL: the rest: {m2['n']} of {rest}")
print(f"bounded reply: {want} of {n} samples ({want * REC} bytes), the rest on the next request")

# A flood of bad requests: every one answered with an ERROR (the log is
# rate-limited, the replies are not).
FLOOD = 300
for i in range(FLOOD):
    s.send(b"\xc1flood")
got = 0
while got < FLOOD and s.poll(10000):
    m = msgpack.unpackb(s.recv(), raw=False)
    if m["t"] != 20:
        sys.exit(f"FAIL: flood reply {got}: {m}")
    got += 1
if got != FLOOD:
    sys.exit(f"FAIL: {got} of {FLOOD} flood requests answered")
print(f"flood: {FLOOD} bad requests, {got} ERROR replies")

#!/usr/bin/env python3
"""Flip one byte inside soft-label records in an LMDB data.mdb, for tests.

    flip_record.py DATA.MDB CLASSES COUNT

Finds dense f32 record headers (01 00 0000, classes as u32 LE) and flips a
value byte (offset 20) of COUNT of them, spread over the file. LMDB keeps old
page copies, so several are flipped to be sure a live one is hit. Prints how
many were flipped. Standard library only.
"""
import struct
import sys

path, classes, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = bytearray(open(path, "rb").read())
pat = bytes([1, 0, 0, 0]) + struct.pack("<I", classes)
hits, i = [], data.find(pat)
while i >= 0:
    hits.append(i)
    i = data.find(pat, i + 1)
if not hits:
    sys.exit("no records found")
step = max(1, len(hits) // count)
chosen = hits[::step][:count]
for off in chosen:
    data[off + 20] ^= 0x40
open(path, "r+b").write(data)
print(len(chosen))

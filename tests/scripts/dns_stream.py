#!/usr/bin/env python3
"""Asks a DNS server a paced stream of distinct names, once each, over UDP, as a pupil's
device would, and prints a line per answer as it comes: `<unix time> <name> <rcode>`
(flushed), so a test can count the names that were answered even if this is killed.

    dns_stream.py SERVER PREFIX COUNT RATE

Names are PREFIX<i>.instagram.com. An answer that arrives late still counts: the device got it.
"""
import select
import socket
import struct
import sys
import time

server, prefix, count, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.setblocking(False)


def query(i, name):
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + labels + b"\0\0\x01\0\x01"


def read_answers(until):
    while True:
        left = until - time.monotonic()
        if left <= 0:
            return
        ready, _, _ = select.select([sock], [], [], left)
        if not ready:
            return
        try:
            data, _ = sock.recvfrom(4096)
        except OSError:
            continue
        if len(data) < 12:
            continue
        qid, flags = struct.unpack(">HH", data[:4])
        if qid < count and flags & 0x8000:
            print(f"{time.time():.3f} {prefix}{qid}.instagram.com {flags & 0xF}", flush=True)


start = time.monotonic()
for i in range(count):
    try:
        sock.sendto(query(i, f"{prefix}{i}.instagram.com"), (server, 53))
    except OSError:
        pass
    read_answers(start + (i + 1) / rate)
read_answers(time.monotonic() + 2)
print("done", flush=True)

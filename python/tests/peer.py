# SPDX-License-Identifier: MIT
"""A peer process for the cross-process tests: one role on a queue, then
a report on stdout. Usage: peer.py ROLE PATH [ARGS...]

  produce PATH N SIZE [close|abort|hang]
        send N tagged messages of SIZE bytes, then close, abort, or print
        "sent" and sleep (for the test to SIGKILL it)
  consume PATH
        receive until EndOfStream and print "got N ok" if every message
        carried its sequence number and intact payload
"""
from __future__ import annotations

import hashlib
import struct
import sys
import time

import shmq


def payload(i: int, size: int) -> bytes:
    """Message i: its number, then bytes derived from it, then a digest."""
    head = struct.pack("<Q", i)
    body = (head * (size // 8 + 1))[: max(0, size - 16)]
    return (head + body + hashlib.blake2b(head + body,
                                          digest_size=8).digest())[:size]


def check(i: int, data: bytes, size: int) -> bool:
    return data == payload(i, size)


def produce(path: str, n: int, size: int, how: str) -> None:
    with shmq.Queue(path, create=True) as q:
        p = q.producer()
        for i in range(n):
            p.send(payload(i, size))
        if how == "abort":
            p.abort()
        elif how == "hang":
            print("sent", flush=True)
            time.sleep(600)
        else:
            p.close()
    print("done", flush=True)


def consume(path: str, size: int) -> None:
    with shmq.Queue(path, create=True) as q, q.consumer() as c:
        print("attached", flush=True)
        n = 0
        for data in c:
            if not check(n, data, size):
                print(f"bad message {n}", flush=True)
                sys.exit(1)
            n += 1
        print(f"got {n} ok", flush=True)


def main() -> None:
    role, path = sys.argv[1], sys.argv[2]
    if role == "produce":
        produce(path, int(sys.argv[3]), int(sys.argv[4]),
                sys.argv[5] if len(sys.argv) > 5 else "close")
    elif role == "consume":
        consume(path, int(sys.argv[3]))
    else:
        sys.exit(f"peer.py: unknown role {role}")


if __name__ == "__main__":
    main()

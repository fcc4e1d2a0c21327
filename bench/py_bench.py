#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/py_bench.py - messages between two Python processes (issue 14).

One producer process (forked) and one consumer (this process) move N
messages of 64 B and 64 KiB through:

  shmq-plain  Producer.send() / Consumer.recv(), one message per call
  shmq-many   Producer.send_many() / Consumer.recv_many(): the package's
              fastest documented calls
  mp-queue    multiprocessing.Queue put() / get()
  mp-pipe     multiprocessing.Pipe send_bytes() / recv_bytes()
  os-pipe     os.write() / os.read() of fixed-size messages

Every configuration runs REPS times, interleaved (rep 1 of all in a
shuffled order, then rep 2...); printed per configuration: the median and
min-max of messages/s and MB/s, and the ratio of medians against
multiprocessing.Queue. The clock runs from the producer's "go" to the
consumer's last message. Nothing asserts on time: the targets (64 B:
shmq-many >= 10x mp-queue, shmq-plain >= 3x) print met or MISSED.

Usage: py_bench.py [--quick] [--reps N] [--only REGEX]
Env: SHMQ_LIBRARY (the libshmq.so.1 to load), PYTHONPATH (the package),
BENCH_DIR (queue files; /dev/shm), BENCH_QUICK=1.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List, Tuple

import shmq

SIZES = (64, 65536)
TRANSPORTS = ("shmq-plain", "shmq-many", "mp-queue", "mp-pipe", "os-pipe")
BATCH = 256


def count(transport: str, size: int, quick: bool) -> int:
    """Messages per run: about 0.1-0.5 s on a small VM."""
    fast = transport.startswith("shmq")
    n = (400_000 if fast else 60_000) if size == 64 else \
        (20_000 if fast else 6_000)
    return n // 8 if quick else n


# Each runner forks the producer with fork_producer(), then receives N
# messages and returns the seconds from "go" to the last one.

def fork_producer(body: Callable[[], None]) -> Tuple[int, int]:
    """Fork a child that runs body() once the parent says go. Returns
    (pid, go_fd); the child signals readiness by closing ready's end."""
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            os.close(ready_r)
            os.close(go_w)
            prepare = body()	# returns the sending function
            os.close(ready_w)
            os.read(go_r, 1)
            prepare()
            status = 0
        finally:
            os._exit(status)
    os.close(ready_w)
    os.close(go_r)
    os.read(ready_r, 1)	# EOF once the child is ready
    os.close(ready_r)
    return pid, go_w


def reap(pid: int) -> None:
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise RuntimeError(f"producer exited with status {status:#x}")


def run_shmq(size: int, n: int, many: bool, qdir: str) -> float:
    path = os.path.join(qdir, "q")
    msg = b"m" * size
    with shmq.Queue(path, create=True, size=4 << 20,
                    max_message=65536) as q, q.consumer() as c:
        batch = max(1, min(BATCH, (256 << 10) // size))

        def body():
            q2 = shmq.Queue(path, create=False)
            p = q2.producer()

            def send():
                if many:
                    msgs = [msg] * batch
                    left = n
                    while left:
                        k = min(left, batch)
                        p.send_many(msgs if k == batch else msgs[:k])
                        left -= k
                else:
                    s = p.send
                    for _ in range(n):
                        s(msg)
                p.close()
            return send

        pid, go = fork_producer(body)
        t0 = time.perf_counter()
        os.write(go, b"g")
        got = 0
        if many:
            rm = c.recv_many
            while got < n:
                got += len(rm(BATCH))
        else:
            r = c.recv
            for _ in range(n):
                r()
            got = n
        t1 = time.perf_counter()
        os.close(go)
        reap(pid)
    os.unlink(path)
    return t1 - t0


def run_mp_queue(size: int, n: int) -> float:
    ctx = mp.get_context("fork")
    mq = ctx.Queue()
    msg = b"m" * size

    def body():
        def send():
            put = mq.put
            for _ in range(n):
                put(msg)
            mq.close()
            mq.join_thread()
        return send

    pid, go = fork_producer(body)
    t0 = time.perf_counter()
    os.write(go, b"g")
    get = mq.get
    for _ in range(n):
        get()
    t1 = time.perf_counter()
    os.close(go)
    reap(pid)
    mq.close()
    return t1 - t0


def run_mp_pipe(size: int, n: int) -> float:
    ctx = mp.get_context("fork")
    rd, wr = ctx.Pipe(duplex=False)
    msg = b"m" * size

    def body():
        def send():
            s = wr.send_bytes
            for _ in range(n):
                s(msg)
        return send

    pid, go = fork_producer(body)
    wr.close()
    t0 = time.perf_counter()
    os.write(go, b"g")
    r = rd.recv_bytes
    for _ in range(n):
        r()
    t1 = time.perf_counter()
    os.close(go)
    reap(pid)
    rd.close()
    return t1 - t0


def run_os_pipe(size: int, n: int) -> float:
    rfd, wfd = os.pipe()
    msg = b"m" * size

    def body():
        os.close(rfd)

        def send():
            w = os.write
            for _ in range(n):
                off = w(wfd, msg)
                while off < size:	# more than a pipe's worth
                    off += w(wfd, msg[off:])
        return send

    pid, go = fork_producer(body)
    os.close(wfd)
    t0 = time.perf_counter()
    os.write(go, b"g")
    r = os.read
    for _ in range(n):
        d = r(rfd, size)
        left = size - len(d)
        while left:	# a message read in pieces
            left -= len(r(rfd, left))
    t1 = time.perf_counter()
    os.close(go)
    reap(pid)
    os.close(rfd)
    return t1 - t0


def run(transport: str, size: int, n: int, qdir: str) -> float:
    if transport == "shmq-plain":
        return run_shmq(size, n, False, qdir)
    if transport == "shmq-many":
        return run_shmq(size, n, True, qdir)
    if transport == "mp-queue":
        return run_mp_queue(size, n)
    if transport == "mp-pipe":
        return run_mp_pipe(size, n)
    return run_os_pipe(size, n)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    default=os.environ.get("BENCH_QUICK") == "1")
    ap.add_argument("--reps", type=int,
                    default=int(os.environ.get("BENCH_REPS", "5")))
    ap.add_argument("--only", default="")
    a = ap.parse_args()

    configs = [(t, s) for s in SIZES for t in TRANSPORTS
               if re.search(a.only, f"{t} {s}")]
    base = os.environ.get("BENCH_DIR", "/dev/shm")
    if not os.access(base, os.W_OK):
        base = None
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f
                       if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print(f"py_bench: python {platform.python_version()}, "
          f"libshmq {shmq.library_path()}, nproc={os.cpu_count()} "
          f"cpu={cpu} kernel={platform.release()}, load "
          f"{' '.join(open('/proc/loadavg').read().split()[:3])}")
    print(f"  {len(configs)} configurations x {a.reps} reps, interleaved"
          f"{' (quick)' if a.quick else ''}")
    rates: Dict[Tuple[str, int], List[float]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory(prefix="shmq-pybench.",
                                     dir=base) as qdir:
        for rep in range(a.reps):
            order = configs[:]
            random.shuffle(order)
            for t, s in order:
                n = count(t, s, a.quick)
                rates[(t, s)].append(n / run(t, s, n, qdir))
            print(f"  rep {rep + 1}/{a.reps} done", flush=True)

    print()
    print(f"{'transport':<12} {'size':>6}  {'msgs/s median [min-max]':<34}"
          f"{'MB/s median':>12}  {'vs mp-queue':>11}")
    med = {c: statistics.median(v) for c, v in rates.items()}
    for t, s in configs:
        v = rates[(t, s)]
        ref = med.get(("mp-queue", s))
        ratio = f"{med[(t, s)] / ref:10.2f}x" if ref else "        n/a"
        print(f"{t:<12} {('64K' if s == 65536 else str(s)):>6}  "
              f"{med[(t, s)]:10.4g} [{min(v):9.4g} - {max(v):9.4g}]  "
              f"{med[(t, s)] * s / 1e6:12.4g}  {ratio}")
    print()
    print("targets at 64 B (issue 14; ratios of medians of this run):")
    ref = med.get(("mp-queue", 64))
    for t, target in (("shmq-many", 10), ("shmq-plain", 3)):
        if ref and (t, 64) in med:
            r = med[(t, 64)] / ref
            print(f"  {t} / mp-queue 64 B: {r:.3g}x   target >= {target}x "
                  f"({'met' if r >= target else 'MISSED'})")
        else:
            print(f"  {t} / mp-queue 64 B: n/a (not measured in this run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

# SPDX-License-Identifier: MIT
"""Adversarial tests of the Python package (issue 14 review): handles
collected in cycles, aiter() waiters when the consumer is closed under
them, several tasks iterating one consumer. Each wait is bounded
(asyncio.wait_for), so a lost wake-up fails instead of hanging."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import shmq

CYCLE = r"""
import gc, sys
import shmq
gc.disable()
q = shmq.Queue(sys.argv[1], create=True, size=1 << 16)
c = q.consumer()
p = q.producer()
p.send(b"x")
# Reference cycles: the garbage collector finalizes the queue and its
# handles in one pass, in no particular order (PEP 442).
q.me, c.me, p.me = q, c, p
del q, c, p
gc.collect()
print("collected")
"""


def test_queue_and_handles_collected_in_one_cycle(qpath):
    """A Queue collected in the same garbage cycle as its consumer and
    producer: whichever finalizer runs first, none may use a freed
    handle (it crashed with SIGSEGV)."""
    env = dict(os.environ)
    r = subprocess.run([sys.executable, "-c", CYCLE, qpath], env=env,
                       capture_output=True, timeout=30)
    assert r.returncode == 0, (r.returncode, r.stderr.decode()[-2000:])
    assert r.stdout.strip() == b"collected"


async def _collect(c):
    out = []
    async for data in c.aiter():
        out.append(data)
    return out


def test_close_wakes_a_waiting_aiter(qpath):
    """A consumer closed while a task waits in aiter(): the task must
    end (with the closed consumer's ValueError), not wait for ever on a
    descriptor that no longer exists."""
    async def main():
        with shmq.Queue(qpath, create=True, size=1 << 16) as q:
            c = q.consumer()
            t = asyncio.create_task(_collect(c))
            await asyncio.sleep(0.1)
            c.close()
            try:
                await asyncio.wait_for(t, 5)
            except ValueError:
                return "closed"
            return "ended"
    assert asyncio.run(main()) in ("closed", "ended")


def test_two_tasks_iterate_one_consumer(qpath):
    """Two tasks in aiter() over the same consumer: every message goes to
    one of them, and both see the end of the stream (one registration of
    the descriptor must not silently replace the other's)."""
    async def main():
        with shmq.Queue(qpath, create=True, size=1 << 16) as q, \
                q.consumer() as c:
            t1 = asyncio.create_task(_collect(c))
            t2 = asyncio.create_task(_collect(c))
            await asyncio.sleep(0.1)
            with q.producer() as p:
                for i in range(20):
                    p.send(b"%d" % i)
                    await asyncio.sleep(0.005)
            r1, r2 = await asyncio.wait_for(asyncio.gather(t1, t2), 5)
            return sorted(int(x) for x in r1 + r2)
    assert asyncio.run(main()) == list(range(20))

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


async def _first(c):
    async for data in c.aiter():
        return data


def test_two_tasks_iterate_one_consumer(qpath):
    """Two tasks in aiter() over the same consumer, each taking one
    message: the second message must reach the task that did not get the
    first (a second add_reader() replaced the first task's callback, and
    the first task to leave removed the registration of both: the other
    hung). An end of session goes to one task only (it is delivered once
    per consumer), so each task here stops after one message."""
    async def main():
        with shmq.Queue(qpath, create=True, size=1 << 16) as q, \
                q.consumer() as c, q.producer() as p:
            t1 = asyncio.create_task(_first(c))
            await asyncio.sleep(0.05)
            t2 = asyncio.create_task(_first(c))
            await asyncio.sleep(0.05)
            p.send(b"0")
            await asyncio.sleep(0.1)
            p.send(b"1")
            r = await asyncio.wait_for(asyncio.gather(t1, t2), 5)
            return sorted(r)
    assert asyncio.run(main()) == [b"0", b"1"]

# SPDX-License-Identifier: MIT
"""Between processes (peer.py run with subprocess): every message intact
and in order, the end of stream, a producer SIGKILLed, an abort."""
from __future__ import annotations

import os
import signal

import pytest

import shmq
from peer import check


@pytest.mark.parametrize("size", [64, 65536])
def test_a_python_producer_feeds_a_python_consumer(qpath, peers, size):
    with shmq.Queue(qpath, create=True, size=1 << 20):
        pass
    cons = peers.start("consume", qpath, str(size))
    assert cons.stdout.readline() == b"attached\n"
    n = 20000 if size == 64 else 500
    prod = peers.run("produce", qpath, str(n), str(size))
    assert prod.returncode == 0, prod.stderr
    out, err = cons.communicate(timeout=60)
    assert cons.returncode == 0, err
    assert out == b"got %d ok\n" % n


def test_this_process_reads_what_another_sent(qpath, peers):
    with shmq.Queue(qpath, create=True, size=1 << 20) as q, \
            q.consumer() as c:
        prod = peers.run("produce", qpath, "3000", "100")
        assert prod.returncode == 0, prod.stderr
        n = 0
        while True:
            try:
                batch = c.recv_many(100, timeout=10)
            except shmq.EndOfStream:
                break
            for data in batch:
                assert check(n, data, 100)
                n += 1
        assert n == 3000


def test_a_producer_killed_by_sigkill_is_reported_as_died(qpath, peers):
    with shmq.Queue(qpath, create=True, size=1 << 20) as q, \
            q.consumer() as c:
        prod = peers.start("produce", qpath, "50", "64", "hang")
        assert prod.stdout.readline() == b"sent\n"
        os.kill(prod.pid, signal.SIGKILL)
        prod.wait(timeout=10)
        got = []
        with pytest.raises(shmq.ProducerDied) as e:
            for data in c:	# iteration raises, it does not stop quietly
                got.append(data)
        assert len(got) == 50
        assert all(check(i, d, 64) for i, d in enumerate(got))
        assert isinstance(e.value, shmq.Error)
        # Once: the same handle then waits for the next session.
        with pytest.raises(shmq.Timeout):
            c.recv(0.05)


def test_a_consumer_waiting_in_recv_sees_the_death(qpath, peers):
    with shmq.Queue(qpath, create=True, size=1 << 20) as q, \
            q.consumer() as c:
        prod = peers.start("produce", qpath, "1", "64", "hang")
        assert prod.stdout.readline() == b"sent\n"
        assert check(0, c.recv(timeout=10), 64)
        os.kill(prod.pid, signal.SIGKILL)
        with pytest.raises(shmq.ProducerDied):
            c.recv(timeout=20)


def test_an_aborting_producer_is_reported_as_aborted(qpath, peers):
    with shmq.Queue(qpath, create=True, size=1 << 20) as q, \
            q.consumer() as c:
        prod = peers.run("produce", qpath, "5", "64", "abort")
        assert prod.returncode == 0, prod.stderr
        assert len(c.recv_many(10, timeout=10)) == 5
        with pytest.raises(shmq.Aborted):
            c.recv(timeout=10)

# SPDX-License-Identifier: MIT
"""The API in one process: round trips, metadata, batches, timeouts,
errors and closed handles."""
from __future__ import annotations

import errno
import time

import pytest

import shmq


def test_a_message_sent_is_received_as_bytes(qpath):
    with shmq.Queue(qpath, create=True, size=1 << 16) as q:
        with q.consumer() as c:
            with q.producer() as p:
                p.send(b"hello")
                p.send(bytearray(b"from a bytearray"))
                p.send(memoryview(b"xxsliced")[2:])
                p.send(b"")
            assert c.recv() == b"hello"
            assert c.recv() == b"from a bytearray"
            assert c.recv() == b"sliced"
            assert c.recv() == b""
            with pytest.raises(shmq.EndOfStream):
                c.recv()


def test_queue_attaches_by_path_and_reports_its_geometry(qpath):
    with shmq.Queue(qpath, create=True, size=1 << 16, max_message=1000) as q:
        i = q.info()
        assert i.created and i.capacity == 1 << 16
        assert q.max_message == 1000
    with shmq.Queue(qpath, create=False) as q2:
        assert not q2.info().created and q2.max_message == 1000
    with pytest.raises(shmq.Error) as e:
        shmq.Queue(qpath + ".missing", create=False)
    assert e.value.errno == errno.ENOENT


def test_recv_msg_gives_sequence_numbers(qpath):
    with shmq.Queue(qpath, size=1 << 16) as q, q.consumer() as c:
        with q.producer() as p:
            for i in range(3):
                p.send(b"m%d" % i)
        msgs = [c.recv_msg() for _ in range(3)]
        assert [m.data for m in msgs] == [b"m0", b"m1", b"m2"]
        assert [m.seq for m in msgs] == [msgs[0].seq + i for i in range(3)]
        assert all(m.lost == 0 and not m.redelivered for m in msgs)


def test_send_many_and_recv_many_keep_order_and_content(qpath):
    msgs = [bytes([i % 251]) * (i % 300) for i in range(1000)]
    with shmq.Queue(qpath, size=1 << 20) as q, q.consumer() as c:
        with q.producer() as p:
            assert p.send_many(msgs[:500]) == 500
            assert p.send_many([bytearray(m) for m in msgs[500:]]) == 500
        got = []
        while len(got) < len(msgs):
            batch = c.recv_many(64)
            assert 1 <= len(batch) <= 64
            got += batch
        assert got == msgs
        with pytest.raises(shmq.EndOfStream):
            c.recv_many()


def test_send_many_sends_large_messages_in_place(qpath):
    msgs = [bytes([i]) * 20000 for i in range(5)] + [bytearray(b"z" * 9000)]
    with shmq.Queue(qpath, size=1 << 20) as q, q.consumer() as c:
        with q.producer() as p:
            assert p.send_many(msgs) == 6
        assert list(c) == [bytes(m) for m in msgs]


def test_iteration_ends_at_the_end_of_stream(qpath):
    with shmq.Queue(qpath) as q, q.consumer() as c:
        with q.producer() as p:
            for i in range(10):
                p.send(b"%d" % i)
        assert list(c) == [b"%d" % i for i in range(10)]
        # The next session continues on the same handle.
        with q.producer() as p:
            p.send(b"again")
        assert list(c) == [b"again"]


def test_abort_is_raised_not_a_quiet_end(qpath):
    with shmq.Queue(qpath) as q, q.consumer() as c:
        p = q.producer()
        p.send(b"partial")
        p.abort()
        it = iter(c)
        assert next(it) == b"partial"
        with pytest.raises(shmq.Aborted) as e:
            next(it)
        assert not isinstance(e.value, shmq.EndOfStream)
        assert e.value.errno == errno.ECANCELED


def test_recv_times_out_and_zero_polls(qpath):
    with shmq.Queue(qpath) as q, q.consumer() as c, q.producer():
        with pytest.raises(shmq.Timeout) as e:
            c.recv(0)
        assert isinstance(e.value, TimeoutError)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError):
            c.recv(0.2)
        assert time.monotonic() - t0 >= 0.19
        with pytest.raises(shmq.Timeout):
            c.recv_many(10, timeout=0.05)
        with pytest.raises(shmq.Timeout):
            c.recv_msg(timeout=0)


def test_send_times_out_on_a_full_ring(qpath):
    with shmq.Queue(qpath, size=1 << 16, max_message=1024) as q, \
            q.consumer() as c, q.producer() as p:
        n = 0
        with pytest.raises(shmq.Timeout) as e:
            for n in range(1000):
                p.send(b"x" * 1000, timeout=0)
        assert n > 10
        # The library names what holds the producer back.
        assert e.value.detail
        t0 = time.monotonic()
        with pytest.raises(shmq.Timeout):
            p.send(b"x" * 1000, timeout=0.1)
        assert time.monotonic() - t0 >= 0.09
        with pytest.raises(shmq.Timeout):
            p.send_many([b"y" * 1000] * 3, timeout=0)
        c.recv()
        p.send(b"x" * 10, timeout=1)


def test_errors_carry_errno_and_classes(qpath):
    with shmq.Queue(qpath, max_message=100) as q:
        with q.producer() as p:
            with pytest.raises(shmq.Busy) as e:
                q.producer()
            assert e.value.errno == errno.EBUSY and "pid" in str(e.value)
            with pytest.raises(shmq.Error) as e:
                p.send(b"z" * 101)
            assert e.value.errno == errno.EMSGSIZE
            with pytest.raises(TypeError):
                p.send("text is not bytes")
        with q.consumer(name="n1"):
            with pytest.raises(shmq.Busy):
                q.consumer(name="n1")
        with pytest.raises(ValueError):
            q.consumer(name="a", group="b")


def test_closed_handles_raise_instead_of_crashing(qpath):
    q = shmq.Queue(qpath)
    p = q.producer()
    c = q.consumer()
    p.close()
    c.close()
    with pytest.raises(ValueError):
        p.send(b"x")
    with pytest.raises(ValueError):
        p.send_many([b"x"])
    with pytest.raises(ValueError):
        c.recv()
    with pytest.raises(ValueError):
        c.recv_many()
    with pytest.raises(ValueError):
        c.peek().__enter__()
    q.close()
    with pytest.raises(ValueError):
        q.info()
    with pytest.raises(ValueError):
        q.consumer()


def test_closing_the_queue_closes_its_roles(qpath):
    q = shmq.Queue(qpath)
    p = q.producer()
    c = q.consumer()
    q.close()
    assert p.closed and c.closed and q.closed


def test_groups_share_and_observers_count_losses(qpath):
    with shmq.Queue(qpath, size=1 << 16, max_message=1024) as q:
        a = q.consumer(group="g")
        b = q.consumer(group="g")
        with q.producer() as p:
            for i in range(10):
                p.send(b"%d" % i)
        got = a.recv_many(3) + b.recv_many(3)
        got += [x for x in a] + [x for x in b]
        assert sorted(got, key=int) == [b"%d" % i for i in range(10)]
    with shmq.Queue(qpath + "2", size=1 << 16, max_message=1024,
                    when_full="overwrite") as q:
        o = q.consumer(observe=True)
        with q.producer() as p:
            for i in range(500):
                p.send(b"%d" % i * 50)
        m = o.recv_msg()
        assert m.lost > 0
        rest = o.recv_many(1000)
        assert len(rest) >= 1
        with pytest.raises(shmq.EndOfStream):
            while True:
                o.recv_many(1000)


def test_an_anonymous_queue_attaches_by_descriptor():
    with shmq.Queue.anonymous(size=1 << 16) as q:
        with shmq.Queue.from_fd(q.fd) as q2, q2.consumer() as c:
            with q.producer() as p:
                p.send(b"over the fd")
            assert c.recv() == b"over the fd"

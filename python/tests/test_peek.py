# SPDX-License-Identifier: MIT
"""Zero-copy views from peek(): read-only, released on leaving, never
usable after their record is released, and a record that stays held (and
intact) while anything still refers to its memory."""
from __future__ import annotations

import errno
import gc
import pickle
import weakref

import pytest

import shmq


def fill_until_full(p) -> int:
    """Send until the ring is full; return how many were sent."""
    n = 0
    while True:
        try:
            p.send(b"F" * 1000, timeout=0)
        except shmq.Timeout:
            return n
        n += 1


def small_queue(qpath):
    return shmq.Queue(qpath, size=1 << 16, max_message=1024)


def test_the_view_is_the_message_read_only_and_dies_on_release(qpath):
    with small_queue(qpath) as q, q.consumer() as c, q.producer() as p:
        p.send(b"in place")
        p.send(b"next")
        with c.peek() as view:
            assert isinstance(view, memoryview)
            assert view.readonly
            assert bytes(view) == b"in place"
            with pytest.raises(TypeError):
                view[0] = 0
            with pytest.raises(BufferError):
                c.recv(0)	# would release the record under the view
        with pytest.raises(ValueError):
            view[0]
        with pytest.raises(ValueError):
            bytes(view)
        assert c.recv() == b"next"


def test_a_slice_alive_at_exit_raises_and_keeps_the_record(qpath):
    with small_queue(qpath) as q, q.consumer() as c, q.producer() as p:
        p.send(b"A" * 1000)
        p.send(b"second")
        with pytest.raises(BufferError):
            with c.peek() as view:
                part = view[10:20]
        # The record is still held: the producer cannot reuse its bytes,
        # however much it tries, and the slice still reads them.
        fill_until_full(p)
        assert bytes(part) == b"A" * 10
        with pytest.raises(BufferError):
            c.recv(0)
        with pytest.raises(BufferError):
            c.recv_many()
        del part
        # Gone: the next call releases the record and goes on.
        assert c.recv() == b"second"


def test_an_export_of_the_view_raises_and_keeps_the_record(qpath):
    with small_queue(qpath) as q, q.consumer() as c, q.producer() as p:
        p.send(b"B" * 1000)
        p.send(b"second")
        with pytest.raises(BufferError):
            with c.peek() as view:
                exported = pickle.PickleBuffer(view)	# as an array would
        fill_until_full(p)
        assert bytes(exported.raw()[:4]) == b"BBBB"
        assert bytes(view[:2]) == b"BB"	# still valid: never released
        exported.release()
        with pytest.raises(BufferError):
            c.recv(0)	# the view itself is still alive
        view.release()
        assert c.recv() == b"second"


def test_a_cast_view_counts_as_a_slice(qpath):
    with small_queue(qpath) as q, q.consumer() as c, q.producer() as p:
        p.send(b"\x01\x00\x00\x00" * 4)
        with pytest.raises(BufferError):
            with c.peek() as view:
                ints = view.cast("I")
        assert list(ints) == [1, 1, 1, 1]
        del ints
        with pytest.raises(shmq.Timeout):
            c.recv(0)


def test_a_held_view_keeps_consumer_and_mapping_alive(qpath):
    q = small_queue(qpath)
    c = q.consumer()
    with q.producer() as p:
        p.send(b"C" * 500)
    with pytest.raises(BufferError):
        with c.peek() as view:
            part = view[100:]
    with pytest.raises(BufferError):
        c.close()
    with pytest.raises(BufferError):
        q.close()
    assert not q.closed
    cref = weakref.ref(c)
    del c, q, view
    gc.collect()
    assert cref() is not None	# held by the slice's owner
    assert bytes(part) == b"C" * 400	# the mapping is still there
    del part
    gc.collect()
    assert cref() is None


def test_closing_after_the_exports_are_gone_releases(qpath):
    with small_queue(qpath) as q:
        c = q.consumer()
        with q.producer() as p:
            p.send(b"D")
        with pytest.raises(BufferError):
            with c.peek() as view:
                part = view[:]
        del part
        c.close()
        assert c.closed


def test_peek_raises_the_end_and_observers_cannot_peek(qpath):
    with small_queue(qpath) as q, q.consumer() as c:
        o = q.consumer(observe=True)
        with q.producer() as p:
            p.send(b"x")
        with c.peek() as view:
            assert bytes(view) == b"x"
        with pytest.raises(shmq.EndOfStream):
            with c.peek():
                pass
        with pytest.raises(shmq.Timeout):
            with c.peek(timeout=0.05):
                pass
        with pytest.raises(shmq.Error) as e:
            with o.peek():
                pass
        assert e.value.errno == errno.EINVAL

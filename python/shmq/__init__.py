# SPDX-License-Identifier: MIT
"""shmq: a shared-memory message queue that lives in a file, from Python.

Binds the installed libshmq (``libshmq.so.1``) with cffi in ABI mode:
nothing is compiled. One producer, any number of consumers (broadcast,
groups that share the stream, observers), attached by path::

    import shmq
    with shmq.Queue("/dev/shm/q", create=True, size=1 << 20) as q:
        with q.producer() as p:
            p.send(b"hello")
        with q.consumer() as c:
            print(c.recv())            # b'hello'
            for data in c:             # ends at the end of stream
                ...

docs/python.md is the manual: the API, the exceptions, how long a
``peek()`` view lives, and how to install. Handles are not thread-safe:
use each Queue, Producer and Consumer from one thread at a time (blocking
calls release the GIL, so other threads run meanwhile).
"""
from __future__ import annotations

import asyncio
import errno as _errno
import sys
import time
import weakref
from array import array
from itertools import accumulate
from typing import (Any, AsyncIterator, Iterable, Iterator, List, NamedTuple,
                    Optional, Sequence, Union)

from ._ffi import ffi, lib

__all__ = [
    "Queue", "Producer", "Consumer", "Message", "Info",
    "Error", "Timeout", "Busy", "EndOfStream", "ProducerDied", "Aborted",
    "Evicted", "FOREVER", "library_path",
]
__version__ = "0.1.0"

BytesLike = Union[bytes, bytearray, memoryview]

# Return codes (include/shmq.h): negative errno values.
_EOF = -_errno.ESHUTDOWN
_EDIED = -_errno.EOWNERDEAD
_EABORTED = -_errno.ECANCELED
_EVICTED = -_errno.ECONNRESET

_OPEN_CREATE = 0x1
_OPEN_RDONLY = 0x2
_OPEN_ANY_OWNER = 0x4
_INFO_CREATED = 0x1
_INFO_CFG_DIFFERS = 0x2
_MSG_REDELIVERED = 0x1

FOREVER = None
"""The timeout that waits without a bound (the default)."""

_NOWAIT = 0
_FOREVER_NS = -1
_NULL = ffi.NULL
# The lowest 32 bits of the 64-bit word that holds shmq_msg.flags.
_FLAGS_SHIFT = 0 if sys.byteorder == "little" else 32
# Messages one recv_many()/peek_many() call takes at most.
_BATCH = 256
# send_many() joins messages up to this average size into one buffer.
_JOIN_MAX_AVG = 2048
# recv_many() holds at most about this many bytes at once (its batch
# follows the sizes it last saw): a batch that holds much of the ring
# keeps the producer waiting while it is copied out.
_MANY_BYTES = 256 << 10


def library_path() -> str:
    """Return the name or path libshmq was loaded from."""
    from ._ffi import library_name
    return library_name()


# ---- exceptions ---------------------------------------------------------

class Error(OSError):
    """A libshmq call failed.

    ``errno`` is the positive errno value (the C call returned
    ``-errno``); ``strerror`` is ``shmq_strerror()``'s text and
    ``detail`` the library's detail for this failure
    (``shmq_errdetail()``, possibly ``""``), which ``str()`` includes.
    """

    detail: str = ""


class Timeout(Error, TimeoutError):
    """The timeout passed (``-ETIMEDOUT``), or ``timeout=0`` found nothing
    to read or no room to write (``-EAGAIN``). Also a ``TimeoutError``."""


class Busy(Error):
    """The role is taken (``-EBUSY``): another live producer, or a live
    consumer with that name."""


class EndOfStream(Error):
    """The producer closed its session and everything in it was read
    (``SHMQ_EOF``). Raised once per session end; iteration stops there.
    The same consumer continues with the next producer's session."""


class ProducerDied(Error):
    """The producer died without closing and everything it published was
    read (``SHMQ_EDIED``). Raised by ``recv`` and by iteration, once per
    session end; the consumer continues with the next session."""


class Aborted(Error):
    """The producer gave up deliberately (``shmq_producer_abort()``,
    ``Producer.abort()``) and everything it published was read
    (``SHMQ_EABORTED``). Not an ``EndOfStream``: the stream was cut, so
    iteration raises it instead of stopping quietly (as for
    ``ProducerDied``). Raised once per session end."""


class Evicted(Error):
    """This consumer was evicted for making no progress (``SHMQ_EVICTED``);
    a named one must be removed (``Queue.remove_consumer``) before it can
    attach again."""


_CLASSES = {
    -_errno.ETIMEDOUT: Timeout,
    -_errno.EAGAIN: Timeout,
    -_errno.EBUSY: Busy,
    _EOF: EndOfStream,
    _EDIED: ProducerDied,
    _EABORTED: Aborted,
    _EVICTED: Evicted,
}


def _error(rc: int, detail: bool = False) -> Error:
    """Build the exception for the return code ``rc`` (< 0). With
    ``detail``, add this thread's ``shmq_errdetail()``: only for calls that
    set or clear it (opening, and a send that found the ring full); the
    per-message calls leave an older call's detail in place."""
    cls = _CLASSES.get(rc, Error)
    text = ffi.string(lib.shmq_strerror(rc)).decode("utf-8", "replace")
    why = ""
    if detail:
        why = ffi.string(lib.shmq_errdetail()).decode("utf-8", "replace")
        if why == text:
            why = ""
    e = cls(-rc, f"{text}: {why}" if why else text)
    e.detail = why
    return e


def _deadline(timeout: float) -> int:
    """The absolute CLOCK_MONOTONIC deadline (ns) of the *_until() calls
    for a bounded timeout in seconds (time.monotonic_ns() reads the same
    clock as shmq_now_ns())."""
    return time.monotonic_ns() + int(timeout * 1e9)


class _Closed:
    """Stands in for a C call on a handle that was closed: calling it raises
    instead of passing a freed pointer to C."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __call__(self, *args: Any) -> Any:
        raise ValueError(f"I/O operation on a closed shmq {self.what}")


# ---- the queue ----------------------------------------------------------

class Info(NamedTuple):
    """Geometry and state of a queue (``shmq_info()``)."""
    version: int
    capacity: int
    file_size: int
    max_message: int
    slots: int
    when_full: str
    checksum: str
    evict_after_ms: int
    created: bool
    cfg_differs: bool
    readonly: bool
    sync_error: int
    write_pos: int
    durable_pos: int


_WHEN_FULL = {"block": 0, "overwrite": 1}
_CHECKSUM = {"auto": 0, "header": 1, "full": 2}
_SYNC = {"none": 0, "batch": 1, "every": 2}
_START = {"oldest": 0, "latest": 1}


def _check(rc: int) -> int:
    """Return ``rc``, or raise its exception (with the detail) if < 0."""
    if rc < 0:
        raise _error(rc, True)
    return rc


class Queue:
    """An attached queue.

    ``Queue(path, create=True, size=...)`` attaches to the queue file at
    ``path``, creating it when it does not exist and ``create`` is true
    (two racing creators end on the same queue). The geometry arguments
    apply only when this call creates the file; ``info().cfg_differs``
    says whether an existing queue differs from them. ``Queue.anonymous()``
    makes a queue without a path and ``Queue.from_fd()`` attaches to one
    by descriptor (``Queue.fd`` of another handle, inherited or passed).

    Use it as a context manager, or call ``close()``: closing a queue
    closes the producer and consumers made from it first.

    :param path: the queue file (``str`` or ``bytes``), e.g. ``/dev/shm/q``.
    :param create: create the file if it does not exist.
    :param size: ring bytes (rounded up to a power of two; default 1 MiB).
    :param max_message: largest message, bytes (default 64 KiB, capped to
        a quarter of the ring).
    :param slots: consumer slots (default 64).
    :param mode: file mode bits (default 0o600).
    :param when_full: ``"block"`` (default) or ``"overwrite"``.
    :param checksum: ``"auto"`` (default), ``"header"`` or ``"full"``.
    :param evict_after_ms: evict a consumer that holds the producer back
        this long (0: never, the default).
    :param any_owner: accept a file another user owns.
    :param readonly: map read-only (info and sync only).
    :raises Error: ``shmq_open()`` failed (``FileNotFoundError`` is not
        raised: ``Error`` with ``errno.ENOENT``).
    """

    def __init__(self, path: Union[str, bytes, None], create: bool = True,
                 size: Optional[int] = None, *,
                 max_message: Optional[int] = None,
                 slots: Optional[int] = None, mode: Optional[int] = None,
                 when_full: str = "block", checksum: str = "auto",
                 evict_after_ms: int = 0, any_owner: bool = False,
                 readonly: bool = False, _fd: Optional[int] = None,
                 _anon: bool = False) -> None:
        self._q = _NULL
        self._children: "weakref.WeakSet[Any]" = weakref.WeakSet()
        # Producers and consumers open on this queue. The garbage
        # collector may finalize a queue before the handles that hold it
        # when they are in one reference cycle (PEP 442: the order is
        # arbitrary, and weak references are cleared first): then the
        # last handle's finalizer detaches the queue (_handle_gone).
        self._nhandles = 0
        self._orphaned = False
        self.path = path
        out = ffi.new("struct shmq **")
        flags = (_OPEN_RDONLY if readonly else 0) | \
            (_OPEN_ANY_OWNER if any_owner else 0)
        if _fd is not None:
            _check(lib.shmq_open_fd(_fd, flags, out))
        else:
            cfg = ffi.new("struct shmq_config *")
            cfg.capacity = size or 0
            cfg.max_message = max_message or 0
            cfg.slots = slots or 0
            cfg.mode = mode or 0
            cfg.when_full = _WHEN_FULL[when_full]
            cfg.checksum = _CHECKSUM[checksum]
            cfg.evict_after_ms = evict_after_ms
            if _anon:
                _check(lib.shmq_create_anon(cfg, out))
            else:
                if path is None:
                    raise TypeError("Queue() needs a path "
                                    "(or Queue.anonymous())")
                p = path.encode() if isinstance(path, str) else bytes(path)
                if create:
                    flags |= _OPEN_CREATE
                _check(lib.shmq_open(p, flags, cfg, out))
        self._q = out[0]
        addr = ffi.new("const void **")
        length = ffi.new("size_t *")
        lib.shmq_map_range(self._q, addr, length)
        # The whole mapping as one buffer: recv_many() slices messages out
        # of it by address (one copy, no cdata per message). It is never
        # handed out; it lives until close(), like the mapping.
        self._base = int(ffi.cast("uintptr_t", addr[0]))
        self._map = ffi.buffer(ffi.cast("char *", addr[0]), length[0])
        self._info = self.info()

    @classmethod
    def anonymous(cls, size: Optional[int] = None, **kw: Any) -> "Queue":
        """Create a queue without a path (a sealed memfd,
        ``shmq_create_anon()``). Share it by descriptor: ``Queue.fd``
        inherited by a child (clear FD_CLOEXEC or use ``pass_fds``), then
        ``Queue.from_fd()`` there. Takes ``Queue()``'s geometry keywords."""
        return cls(None, size=size, _anon=True, **kw)

    @classmethod
    def from_fd(cls, fd: int, *, readonly: bool = False,
                any_owner: bool = False) -> "Queue":
        """Attach to the queue open as descriptor ``fd``
        (``shmq_open_fd()``); ``fd`` stays the caller's. After ``fork()``
        a child attaches afresh this way, with the parent's ``Queue.fd``:
        handles inherited across fork() are dead in the child."""
        return cls(None, readonly=readonly, any_owner=any_owner, _fd=fd)

    # -- roles --
    def producer(self, *, fifo: bool = False, sync: str = "none",
                 sync_every_n: int = 0, sync_every_ms: int = 0,
                 accept_loss: bool = False) -> "Producer":
        """Take the producer role (one live producer per queue).

        :param fifo: ``send`` raises ``Error(EPIPE)`` once every consumer
            is gone.
        :param sync: ``"none"``, ``"batch"`` or ``"every"``
            (docs/durability.md).
        :param accept_loss: recover even if that cuts durable data.
        :raises Busy: another live producer holds the role.
        """
        return Producer(self, fifo, sync, sync_every_n, sync_every_ms,
                        accept_loss)

    def consumer(self, name: Optional[str] = None,
                 group: Optional[str] = None, observe: bool = False,
                 start: str = "oldest", durable: bool = False) -> "Consumer":
        """Attach a consumer.

        :param name: a named broadcast consumer keeps its position in the
            file and resumes after the last message it released; ``None``
            (default): anonymous.
        :param group: join the consumer group of this name instead: each
            message goes to one member.
        :param observe: an observer never holds the producer back; when
            lapped it skips ahead and ``Message.lost`` counts what it
            missed. Observers receive by copy only (no ``peek``).
        :param start: ``"oldest"`` or ``"latest"`` (a named consumer
            resumes where it was).
        :param durable: read only what is durable (docs/durability.md).
        :raises Busy: a live consumer has that name.
        """
        return Consumer(self, name, group, observe, start, durable)

    # -- state --
    @property
    def fd(self) -> int:
        """The queue's descriptor (``shmq_fd()``), to hand to another
        process; it belongs to this Queue and is close-on-exec."""
        self._live()
        return lib.shmq_fd(self._q)

    @property
    def max_message(self) -> int:
        """The largest message this queue takes, in bytes."""
        return self._info.max_message

    @property
    def capacity(self) -> int:
        """Ring bytes."""
        return self._info.capacity

    def info(self) -> Info:
        """Geometry, checksum mode and sync state (``shmq_info()``)."""
        self._live()
        i = ffi.new("struct shmq_info *")
        _check(lib.shmq_info(self._q, i, ffi.sizeof("struct shmq_info")))
        wf = {v: k for k, v in _WHEN_FULL.items()}
        ck = {v: k for k, v in _CHECKSUM.items()}
        return Info(i.version, i.capacity, i.file_size, i.max_message,
                    i.slots, wf.get(i.when_full, str(i.when_full)),
                    ck.get(i.checksum, str(i.checksum)), i.evict_after_ms,
                    bool(i.flags & _INFO_CREATED),
                    bool(i.flags & _INFO_CFG_DIFFERS),
                    bool(i.flags & 0x4), i.sync_error, i.write_pos,
                    i.durable_pos)

    def sync(self) -> None:
        """Make every message committed so far durable (``shmq_sync()``)."""
        self._live()
        _check(lib.shmq_sync(self._q))

    def remove_consumer(self, name: str) -> None:
        """Drop the named consumer ``name`` (not attached) from the slot
        table, so that it stops holding the producer back."""
        self._live()
        _check(lib.shmq_consumer_remove(self._q, name.encode()))

    def set_evict_after(self, ms: int) -> None:
        """Change the eviction policy (0: never)."""
        self._live()
        _check(lib.shmq_set_evict_after(self._q, ms))

    def _live(self) -> None:
        if self._q == _NULL:
            raise ValueError("I/O operation on a closed shmq Queue")

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run."""
        return self._q == _NULL

    def close(self) -> None:
        """Close the producer and consumers made from this queue, then
        detach. A consumer whose ``peek()`` view is still exported raises
        ``BufferError`` and the queue stays attached (its memory must stay
        mapped while the view lives)."""
        if self._q == _NULL:
            return
        for h in list(self._children):
            h.close()
        q, self._q = self._q, _NULL
        self._map = None
        lib.shmq_close(q)

    def _handle_gone(self) -> None:
        """A producer or consumer of this queue was closed."""
        self._nhandles -= 1
        if self._nhandles == 0 and self._orphaned and self._q != _NULL:
            q, self._q = self._q, _NULL
            self._map = None
            lib.shmq_close(q)

    def __enter__(self) -> "Queue":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        # Children hold the queue: one still open here is in the same
        # garbage cycle, and its finalizer may not have run yet. It
        # detaches the queue when it is gone (_handle_gone).
        if getattr(self, "_q", _NULL) == _NULL:
            return
        if getattr(self, "_nhandles", 0) > 0:
            self._orphaned = True
            return
        lib.shmq_close(self._q)
        self._q = _NULL

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<shmq.Queue {self.path!r} {state}>"


# ---- the producer -------------------------------------------------------

class Producer:
    """The producer role on a queue (``Queue.producer()``).

    Closing it (or leaving its ``with`` block) ends the session: consumers
    get ``EndOfStream`` after the last message; ``abort()`` ends it with
    ``Aborted`` instead. A process that dies while producing leaves its
    consumers ``ProducerDied``.
    """

    def __init__(self, queue: Queue, fifo: bool, sync: str,
                 sync_every_n: int, sync_every_ms: int,
                 accept_loss: bool) -> None:
        queue._live()
        self._p = _NULL
        self._queue = queue
        opts = ffi.new("struct shmq_producer_opts *")
        opts.flags = (0x1 if fifo else 0) | (0x2 if accept_loss else 0)
        opts.sync_mode = _SYNC[sync]
        opts.sync_every_n = sync_every_n
        opts.sync_every_ms = sync_every_ms
        out = ffi.new("struct shmq_producer **")
        _check(lib.shmq_producer_open(queue._q, opts, out))
        self._p = out[0]
        queue._nhandles += 1
        # Cached for the per-call path: one attribute load each.
        self._send = lib.shmq_send
        self._send_batch = lib.shmq_send_batch
        queue._children.add(self)

    def send(self, data: BytesLike, timeout: Optional[float] = None) -> None:
        """Copy one message into the queue and publish it.

        Blocks while the ring is full (``timeout=None``), at most
        ``timeout`` seconds, or not at all (``timeout=0``).

        :param data: ``bytes`` (passed without a copy to C), or any
            contiguous buffer (``bytearray``, ``memoryview``...).
        :raises Timeout: the ring stayed full.
        :raises Error: ``EMSGSIZE`` (larger than ``Queue.max_message``),
            ``EPIPE`` (fifo and no consumer left), ``ESTALE``, ``EIO``...
        """
        if timeout is None:
            try:
                rc = self._send(self._p, data, len(data), _FOREVER_NS)
            except TypeError:
                b = ffi.from_buffer(data)
                rc = self._send(self._p, b, len(b), _FOREVER_NS)
            if rc == 0:
                return
            if rc != -_errno.EINTR:
                raise _error(rc, True)
        self._send_slow(data, timeout)

    def _send_slow(self, data: BytesLike, timeout: Optional[float]) -> None:
        if not isinstance(data, bytes):
            data = ffi.from_buffer(data)
        n = len(data)
        if timeout is not None and timeout <= 0:
            rc = self._send(self._p, data, n, _NOWAIT)
            if rc < 0:
                raise _error(rc, True)
            return
        # -EINTR: a signal arrived; returning to Python runs its handler
        # (which may raise, e.g. KeyboardInterrupt), then wait again.
        deadline = -1 if timeout is None else _deadline(timeout)
        while True:
            rc = lib.shmq_send_until(self._p, data, n, deadline)
            if rc == 0:
                return
            if rc != -_errno.EINTR:
                raise _error(rc, True)

    def send_many(self, messages: Sequence[BytesLike],
                  timeout: Optional[float] = None) -> int:
        """Send the messages in order: the fastest way to send many small
        messages. Small ones (up to 2 KiB on average) are copied and
        published together (``shmq_send_batch()``: one publish for the
        batch); larger ones one by one, each published once copied. Returns
        how many were sent: all of them, unless the timeout passed (then
        the first ones; ``Timeout`` if none); ``timeout`` bounds the
        whole call.

        :param messages: a sequence of ``bytes`` (or other buffers of bytes).
        """
        n = len(messages)
        if n == 0:
            return 0
        lens = array("Q", map(len, messages))
        if sum(lens) // n > _JOIN_MAX_AVG:
            # Large messages gain nothing from one publish for all: sent
            # one by one, each is published as soon as it is copied, and
            # the consumer copies it out meanwhile.
            end = None if timeout is None or timeout <= 0 else \
                _deadline(timeout)
            for i, m in enumerate(messages):
                if end is not None:
                    timeout = max(0, end - time.monotonic_ns()) / 1e9
                try:
                    self.send(m, timeout)
                except Timeout:
                    if i:
                        return i
                    raise
            return n
        # One copy of everything into one buffer, then the iovec array
        # built by C-level array operations (no cdata per message): its
        # 64-bit words are (address, length) pairs.
        blob = b"".join(messages)
        if sum(lens) != len(blob):	# items of buffers that are not bytes
            lens = array("Q", (memoryview(m).nbytes for m in messages))
        keep = ffi.from_buffer(blob)
        base = int(ffi.cast("uintptr_t", keep))
        iov = array("Q", bytes(16 * n))
        iov[0::2] = array("Q", accumulate(lens[:-1], initial=base))
        iov[1::2] = lens
        vec = ffi.from_buffer("struct iovec[]", iov)
        sent = 0
        t = _FOREVER_NS if timeout is None else \
            (_NOWAIT if timeout <= 0 else None)
        deadline = None if t is not None else _deadline(timeout)
        while sent < n:
            if deadline is not None:
                t = max(0, deadline - time.monotonic_ns())
            rc = self._send_batch(self._p, vec + sent, n - sent, t)
            if rc > 0:
                sent += rc
            elif rc == -_errno.EINTR:
                continue
            elif sent and rc in (-_errno.EAGAIN, -_errno.ETIMEDOUT):
                break
            else:
                raise _error(rc, True)
        del keep
        return sent

    @property
    def closed(self) -> bool:
        """True once ``close()`` or ``abort()`` has run."""
        return self._p == _NULL

    def close(self) -> None:
        """Publish what is sealed, end the session (consumers get
        ``EndOfStream`` after draining) and give up the role."""
        self._end(lib.shmq_producer_close)

    def abort(self) -> None:
        """Give up deliberately: what was published stays, and consumers
        get ``Aborted`` at the end instead of ``EndOfStream``."""
        self._end(lib.shmq_producer_abort)

    def _end(self, fn: Any) -> None:
        if self._p == _NULL:
            return
        p, self._p = self._p, _NULL
        self._send = self._send_batch = _Closed("Producer")
        self._queue._children.discard(self)
        try:
            _check(fn(p))
        finally:
            self._queue._handle_gone()

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_p", _NULL) != _NULL:
            lib.shmq_producer_close(self._p)
            self._p = _NULL
            self._queue._handle_gone()


# ---- the consumer -------------------------------------------------------

class Message(NamedTuple):
    """One received message (``Consumer.recv_msg()``)."""
    data: bytes
    """The payload (a copy)."""
    seq: int
    """The producer's sequence number."""
    lost: int
    """Messages an observer skipped before this one (lapped); 0 otherwise."""
    redelivered: bool
    """A group member got it after the member that claimed it died."""


class _PeekState:
    """The life of one ``peek()``: ``done`` turns true when the last
    buffer export over the record is gone (a cffi destructor, called when
    the memory's owner object is freed). It holds the consumer, so that
    the consumer, its queue and the mapping outlive every view."""

    __slots__ = ("consumer", "done", "active")

    def __init__(self, consumer: "Consumer") -> None:
        self.consumer = consumer
        self.done = False
        self.active = True

    def gone(self, _cdata: Any) -> None:
        self.done = True


class _Peek:
    """The context manager ``Consumer.peek()`` returns."""

    __slots__ = ("_c", "_timeout", "_state", "_root", "_view")

    def __init__(self, consumer: "Consumer", timeout: Optional[float]):
        self._c = consumer
        self._timeout = timeout
        self._state: Optional[_PeekState] = None

    def __enter__(self) -> memoryview:
        c = self._c
        if self._state is not None:
            raise RuntimeError("this peek() was already entered")
        c._settle()
        msg = c._msg1
        t = self._timeout
        if t is None or t > 0:
            deadline = -1 if t is None else _deadline(t)
            while True:
                rc = lib.shmq_peek_until(c._c, msg, deadline)
                if rc != -_errno.EINTR:
                    break
        else:
            rc = lib.shmq_peek(c._c, msg, _NOWAIT)
        if rc < 0:
            raise _error(rc)
        state = _PeekState(c)
        # The buffer's owner is a cdata with a destructor: it is freed, and
        # state.done set, only when nothing holds the memory any more: not
        # this view, not a slice of it, not an array over it.
        w = c._m1w
        owner = ffi.gc(ffi.cast("char *", w[0]), state.gone, 0)
        root = memoryview(ffi.buffer(owner, w[1]))
        view = root.toreadonly()
        del owner
        self._state, self._root, self._view = state, root, view
        c._pending = state
        c._blocked = True
        return view

    def __exit__(self, *exc: Any) -> None:
        state = self._state
        if state is None or not state.active:
            return
        state.active = False
        c = self._c
        view, root = self._view, self._root
        self._view = self._root = None
        # Nothing here may keep a reference past this call (an exception's
        # traceback holds this frame): drop each view once released.
        root.release()
        root = None
        try:
            # Refused while the view itself is exported (an array or a
            # PickleBuffer over it): the record stays held.
            view.release()
            exported = False
        except BufferError:
            exported = True
        view = None
        if exported:
            raise BufferError(
                "shmq: leaving peek() while its view is exported (an "
                "array over it?): the record stays held until the view "
                "and its exports are released")
        # Slices of the view hold the memory without being exports of it;
        # the destructor tells whether any is left.
        if not state.done:
            raise BufferError(
                "shmq: leaving peek() while a slice of its view is alive: "
                "the record stays held until it is released")
        c._settle()


class Consumer:
    """A consumer of a queue (``Queue.consumer()``).

    Receive by copy (``recv``, ``recv_msg``, ``recv_many``, iteration,
    ``aiter``) or in place (``peek``). At the end of a producer's session
    ``recv`` raises ``EndOfStream`` (closed), ``ProducerDied`` (died) or
    ``Aborted`` (aborted), once; then the same consumer waits for the next
    session. Iteration stops at ``EndOfStream`` and raises the others.
    """

    def __init__(self, queue: Queue, name: Optional[str],
                 group: Optional[str], observe: bool, start: str,
                 durable: bool) -> None:
        queue._live()
        self._c = _NULL
        self._queue = queue
        if group is not None and (name is not None or observe):
            raise ValueError("group excludes name and observe")
        if observe and name is not None:
            raise ValueError("an observer has no name")
        opts = ffi.new("struct shmq_consumer_opts *")
        opts.kind = 1 if group is not None else (2 if observe else 0)
        opts.start = _START[start]
        opts.flags = 0x1 if durable else 0
        label = group if group is not None else name
        cname = ffi.new("char[]", label.encode()) if label is not None \
            else _NULL
        opts.name = cname
        out = ffi.new("struct shmq_consumer **")
        _check(lib.shmq_consumer_open(queue._q, opts, out))
        self._c = out[0]
        queue._nhandles += 1
        self.name = name
        self.group = group
        self.observer = observe
        self._fd = -1
        # aiter() tasks waiting for the descriptor, and the loop that
        # watches it for them (one add_reader for all: a second would
        # replace the first's callback).
        self._waiters: List["asyncio.Future[None]"] = []
        self._wloop: Optional[asyncio.AbstractEventLoop] = None
        # recv(): one preallocated buffer the size of the largest message,
        # and a cffi buffer over it whose slice is the returned bytes.
        self._cap = queue.max_message
        self._buf = ffi.new("char[]", max(self._cap, 1))
        self._bufb = ffi.buffer(self._buf)
        # shmq_msg arrays as 64-bit words (8 per message: data, len, seq,
        # flags|reserved0, lost, ...), read with C-level slicing.
        self._m1w = array("Q", bytes(64))
        self._msg1 = ffi.from_buffer("struct shmq_msg[]", self._m1w)
        self._mw = array("Q", bytes(64 * _BATCH))
        self._msgs = ffi.from_buffer("struct shmq_msg[]", self._mw)
        self._many_bytes = min(_MANY_BYTES, queue.capacity // 4)
        self._many_cap = _BATCH
        self._recv = lib.shmq_recv
        self._peek_many = lib.shmq_peek_many
        self._release_n = lib.shmq_release_n
        # _blocked: the fast paths must not run (closed, a peek held, an
        # end of session to deliver); _settle() says why.
        self._blocked = False
        self._pending: Optional[_PeekState] = None
        self._owed = 0		# an end an observer's recv_many() met
        queue._children.add(self)

    # -- state --
    def _settle(self) -> None:
        """Run before any call when _blocked: raise for a closed consumer
        or a peek whose view is still held; release a peeked record whose
        views are all gone; deliver an owed end of session."""
        if self._c == _NULL:
            raise ValueError("I/O operation on a closed shmq Consumer")
        st = self._pending
        if st is not None:
            if st.active:
                raise BufferError("shmq: a peek() view is open: leave its "
                                  "with block first")
            if not st.done:
                raise BufferError("shmq: a view from peek() is still "
                                  "exported: release it first")
            self._pending = None
            _check(lib.shmq_release(self._c))
        if self._owed:
            rc, self._owed = self._owed, 0
            self._blocked = False
            raise _error(rc)
        self._blocked = False

    # -- copy --
    def recv(self, timeout: Optional[float] = None) -> bytes:
        """Receive the next message (a copy).

        :param timeout: ``None`` waits without a bound, ``0`` polls,
            else seconds.
        :raises Timeout: nothing arrived in time (also a ``TimeoutError``).
        :raises EndOfStream: the producer closed and all was read.
        :raises ProducerDied: the producer died and all was read.
        :raises Aborted: the producer aborted and all was read.
        :raises Evicted: this consumer was evicted.
        """
        if timeout is None and not self._blocked:
            n = self._recv(self._c, self._buf, self._cap, _NULL, _FOREVER_NS)
            if n >= 0:
                return self._bufb[0:n]
            if n != -_errno.EINTR:
                raise _error(n)
        return self._recv_slow(_NULL, timeout)

    def _recv_slow(self, msg: Any, timeout: Optional[float]) -> bytes:
        if self._blocked:
            self._settle()
        if timeout is not None and timeout <= 0:
            n = self._recv(self._c, self._buf, self._cap, msg, _NOWAIT)
        else:
            deadline = -1 if timeout is None else _deadline(timeout)
            while True:
                n = lib.shmq_recv_until(self._c, self._buf, self._cap, msg,
                                        deadline)
                if n != -_errno.EINTR:
                    break
        if n < 0:
            raise _error(n)
        return self._bufb[0:n]

    def recv_msg(self, timeout: Optional[float] = None) -> Message:
        """As ``recv()``, with the message's metadata: a ``Message``
        (``data``, ``seq``, ``lost``, ``redelivered``)."""
        data = self._recv_slow(self._msg1, timeout)
        w = self._m1w
        return Message(data, w[2], w[4],
                       bool((w[3] >> _FLAGS_SHIFT) & _MSG_REDELIVERED))

    def recv_many(self, n: int = _BATCH,
                  timeout: Optional[float] = None) -> List[bytes]:
        """Receive up to ``n`` messages (copies) in one call: waits (as
        ``recv``) for the first, then takes those already published
        after it, without waiting. The fastest way to receive. Returns a
        list of at least one message; raises as ``recv()`` (an end of
        session is raised by the call after the messages before it).
        A group member gets one message per call."""
        if n < 1:
            raise ValueError("n must be at least 1")
        if self.observer:
            return self._recv_many_copy(n, timeout)
        if self._blocked:
            self._settle()
        n = min(n, self._many_cap)
        if timeout is None:
            k = self._peek_many(self._c, self._msgs, n, _FOREVER_NS)
        elif timeout <= 0:
            k = self._peek_many(self._c, self._msgs, n, _NOWAIT)
        else:
            k = -_errno.EINTR
            deadline = _deadline(timeout)
        while k == -_errno.EINTR:
            t = _FOREVER_NS if timeout is None else \
                max(0, deadline - time.monotonic_ns())
            k = self._peek_many(self._c, self._msgs, n, t)
        if k < 0:
            raise _error(k)
        # Every message is sliced out of the queue's mapping by address:
        # one copy each, and no cdata object per message.
        w = self._mw
        m = self._queue._map
        base = self._queue._base
        out = [m[a - base:a - base + n_]
               for a, n_ in zip(w[0:8 * k:8], w[1:8 * k:8])]
        rc = self._release_n(self._c, k)
        if rc < 0:
            raise _error(rc)
        if k > 1 or self._many_cap < _BATCH:
            avg = sum(w[1:8 * k:8]) // k + 64	# + a record header
            self._many_cap = max(1, min(_BATCH, self._many_bytes // avg))
        return out

    def _recv_many_copy(self, n: int,
                        timeout: Optional[float]) -> List[bytes]:
        # Observers receive by copy only: one recv() per message. An end of
        # session met after some messages is owed to the next call.
        out = [self._recv_slow(_NULL, timeout)]
        recv, c, buf, cap, b = self._recv, self._c, self._buf, self._cap, \
            self._bufb
        while len(out) < n:
            k = recv(c, buf, cap, _NULL, _NOWAIT)
            if k >= 0:
                out.append(b[0:k])
                continue
            if k not in (-_errno.EAGAIN, -_errno.EINTR):
                self._owed = k
                self._blocked = True
            break
        return out

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            return self.recv()
        except EndOfStream:
            raise StopIteration from None

    # -- zero copy --
    def peek(self, timeout: Optional[float] = None) -> _Peek:
        """Wait for the next message and give it in place, zero copy::

            with c.peek() as view:     # a read-only memoryview into the ring
                header = bytes(view[:8])

        Leaving the ``with`` block releases the view and the record
        (``shmq_release()``). The view can never outlive the record: once
        released, any use of it raises ``ValueError``. If the view is still
        exported when the block is left (an array over it, a slice of it
        still alive), leaving raises ``BufferError`` and the record stays
        held, and readable through those exports, until they are gone;
        the consumer's next call then releases it (until then every call
        raises ``BufferError``). Not for observers (``Error(EINVAL)``).

        :raises: as ``recv()``, when entering.
        """
        return _Peek(self, timeout)

    # -- event loops --
    def fileno(self) -> int:
        """The consumer's pollable descriptor (``shmq_consumer_fd()``):
        readable when there is something to receive (a message, an end of
        session, the producer's death, eviction). After it polls
        readable, receive with ``timeout=0`` until ``Timeout``; that
        re-arms it. It belongs to the consumer (closed with it)."""
        if self._fd >= 0:
            return self._fd
        if self._c == _NULL:
            raise ValueError("I/O operation on a closed shmq Consumer")
        try:
            fn = lib.shmq_consumer_fd
        except AttributeError:
            raise Error(_errno.ENOSYS, "this libshmq has no "
                        "shmq_consumer_fd()") from None
        self._fd = _check(fn(self._c))
        return self._fd

    async def aiter(self) -> AsyncIterator[bytes]:
        """Receive in an asyncio loop, without a thread::

            async for data in c.aiter():
                ...

        Ends at ``EndOfStream``; raises ``ProducerDied``, ``Aborted``,
        ``Evicted`` as iteration does. Waits through
        ``loop.add_reader(c.fileno(), ...)``, registered only while it waits,
        so that a loop busy elsewhere never spins on a readable descriptor.
        """
        loop = asyncio.get_running_loop()
        fd = self.fileno()
        while True:
            try:
                batch = self.recv_many(_BATCH, 0)
            except Timeout:
                await self._readable(loop, fd)
                continue
            except EndOfStream:
                return
            for data in batch:
                yield data

    async def _readable(self, loop: asyncio.AbstractEventLoop,
                        fd: int) -> None:
        """Wait until the descriptor polls readable (or close()). Tasks of
        one loop share one registration; each is woken."""
        if self._waiters and self._wloop is not loop:
            raise RuntimeError("shmq: aiter() of one consumer in two "
                               "event loops")
        fut = loop.create_future()
        if not self._waiters:
            loop.add_reader(fd, self._wake_all)
            self._wloop = loop
        self._waiters.append(fut)
        try:
            await fut
        finally:
            # Cancelled, or woken by something else: deregister.
            if fut in self._waiters:
                self._waiters.remove(fut)
                if not self._waiters and self._wloop is not None:
                    self._wloop.remove_reader(fd)
                    self._wloop = None

    def _wake_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        if self._wloop is not None:
            self._wloop.remove_reader(self._fd)
            self._wloop = None
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    # -- closing --
    @property
    def closed(self) -> bool:
        """True once ``close()`` has run."""
        return self._c == _NULL

    def close(self) -> None:
        """Detach (an anonymous consumer's slot is freed; a named one keeps
        its position). Raises ``BufferError``, and stays attached, while a
        ``peek()`` view is still exported."""
        if self._c == _NULL:
            return
        st = self._pending
        if st is not None:
            if st.active or not st.done:
                raise BufferError("shmq: cannot close a consumer while a "
                                  "peek() view is held or exported")
            self._pending = None
            lib.shmq_release(self._c)
        # Waiting aiter() tasks: deregistered before the descriptor is
        # closed, and woken (they raise the closed consumer's ValueError).
        self._wake_all()
        c, self._c = self._c, _NULL
        self._fd = -1
        self._blocked = True
        self._recv = self._peek_many = self._release_n = _Closed("Consumer")
        self._queue._children.discard(self)
        lib.shmq_consumer_close(c)
        self._queue._handle_gone()

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        # A held peek keeps this object alive (through _PeekState), so a
        # consumer collected here has no view left.
        if getattr(self, "_c", _NULL) != _NULL:
            lib.shmq_consumer_close(self._c)
            self._c = _NULL
            self._queue._handle_gone()


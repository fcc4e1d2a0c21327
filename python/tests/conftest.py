# SPDX-License-Identifier: MIT
"""Shared set-up of the Python tests: a watchdog on every test, a queue
path in a fresh directory, and the peer process runner.

Run from the build: meson test -C build python (sets SHMQ_LIBRARY to the
built libshmq.so.1 and PYTHONPATH to python/). By hand:
SHMQ_LIBRARY=build/lib/libshmq.so.1 PYTHONPATH=python pytest-3 python/tests
"""
from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
from typing import Iterator, List

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.join(HERE, "peer.py")

# Per test: SIGALRM fails the test (a blocked shmq call returns -EINTR and
# the binding runs the handler); if even that does not come back, the
# faulthandler kills the process with every thread's traceback.
TEST_TIMEOUT = int(os.environ.get("SHMQ_PYTEST_TIMEOUT", "60"))


class WatchdogExpired(Exception):
    pass


def _alarm(signum, frame):
    raise WatchdogExpired(f"test took more than {TEST_TIMEOUT} s")


@pytest.fixture(autouse=True)
def watchdog() -> Iterator[None]:
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TEST_TIMEOUT)
    faulthandler.dump_traceback_later(TEST_TIMEOUT + 30, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture
def qpath(tmp_path) -> str:
    """A path for a new queue file in this test's own directory."""
    return str(tmp_path / "q")


class Peers:
    """Starts peer.py processes and makes sure none outlives the test."""

    def __init__(self) -> None:
        self.procs: List[subprocess.Popen] = []

    def start(self, *args: str) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, PEER, *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.procs.append(p)
        return p

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        p = self.start(*args)
        out, err = p.communicate(timeout=timeout)
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)
            for f in (p.stdout, p.stderr):
                if f:
                    f.close()


@pytest.fixture
def peers() -> Iterator[Peers]:
    ps = Peers()
    try:
        yield ps
    finally:
        ps.close()

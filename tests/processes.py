"""What every process a test starts shares: it dies with the test run.

A test stops what it starts in a ``finally``; a test past its time limit is
cancelled, so those blocks run (``tests/conftest.py``). Should the run itself be
killed, even with SIGKILL, each child started from the main thread is sent
SIGTERM by the kernel (``PR_SET_PDEATHSIG``), so no ``redis-server`` or worker
outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import signal
import threading
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl
"""Looked up here: a child forked from a process with threads must not call the loader."""


def _die_with_parent() -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def dies_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that ends the child with the test run; None off the main thread,
    whose end (a pool thread's) would end the child too early."""
    return _die_with_parent if threading.current_thread() is threading.main_thread() else None


async def reaped(process: asyncio.subprocess.Process) -> None:
    """Kill ``process`` if it still runs, and wait for it."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()

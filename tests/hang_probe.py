"""Tests that hang, run by ``tests/test_hangs.py`` in a pytest of their own with short time
limits: each must fail naming itself and stop the process it started. Not collected by
the suite itself (its name is no ``test_*``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

from tests.processes import dies_with_parent


def _started(name: str) -> subprocess.Popen[bytes]:
    """A process that would run ten minutes; its pid in ``$HANG_PROBE_DIR/<name>``."""
    process = subprocess.Popen(["sleep", "600"], preexec_fn=dies_with_parent())
    (Path(os.environ["HANG_PROBE_DIR"]) / name).write_text(str(process.pid))
    return process


async def test_an_async_test_that_hangs() -> None:
    process = _started("async")
    try:
        await asyncio.Event().wait()
    finally:
        process.kill()
        process.wait()


def test_a_blocking_test_that_hangs() -> None:
    process = _started("blocking")
    try:
        time.sleep(600)
    finally:
        process.kill()
        process.wait()

"""Fixtures for tests that need a Redis server of each kind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from store.redis import RedisBackend
from tests.harness import Harness
from tests.servers import RedisProcess, free_ports


def redis_backend(h: Harness) -> RedisBackend:
    assert isinstance(h.backend, RedisBackend)
    return h.backend


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A server of this test's own, which it may restart, flush or stop."""
    process = RedisProcess(free_ports(1)[0], tmp_path / "private")
    process.start()
    try:
        yield process
    finally:
        process.stop()

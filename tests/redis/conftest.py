"""Fixtures for tests that need a Redis server of each kind."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from store.redis import RedisBackend
from tests.harness import Harness, HarnessFactory
from tests.servers import RedisProcess, free_ports

SERVER_KINDS = {
    "redis": "redis_factory",
    "embedded": "embedded_factory",
    "cluster": "cluster_factory",
}


@pytest.fixture(params=list(SERVER_KINDS))
def server_factory(request: pytest.FixtureRequest) -> HarnessFactory:
    factory: HarnessFactory = request.getfixturevalue(SERVER_KINDS[request.param])
    return factory


@pytest.fixture
async def server(server_factory: HarnessFactory) -> AsyncIterator[Harness]:
    async with server_factory() as h:
        yield h


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

"""What the tests of MCP servers share: the example server's settings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import unique


@pytest.fixture
def env(redis_url: str) -> Iterator[dict[str, str]]:
    """The example's settings: the test Redis, under a key prefix and queue of its own."""
    run = unique("mcpex")
    yield {
        "TASKSTORE_REDIS_URL": redis_url,
        "TASKSTORE_KEY_PREFIX": f"{run}-ts",
        "TASKSTORE_QUEUE_NAME": f"{run}:queue",
        "TASKSTORE_ALLOW_ANONYMOUS": "true",
        "TASKSTORE_MCP_LEASE_S": "1",
    }
    import redis

    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{run}*", count=1000):
        client.delete(key)
    client.close()

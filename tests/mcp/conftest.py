"""What the tests of MCP servers share: the example server's settings."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from tests.harness import unique
from tests.leftovers import drop_run_keys


@pytest.fixture
async def env(redis_url: str) -> AsyncIterator[dict[str, str]]:
    """The example's settings: the test Redis, under a key prefix and queue of its own."""
    run = unique("mcpex")
    queue, prefix = f"{run}:queue", f"{run}-ts"
    yield {
        "TASKSTORE_REDIS_URL": redis_url,
        "TASKSTORE_KEY_PREFIX": prefix,
        "TASKSTORE_QUEUE_NAME": queue,
        "TASKSTORE_ALLOW_ANONYMOUS": "true",
        "TASKSTORE_MCP_LEASE_S": "1",
    }
    async with Redis.from_url(redis_url) as client:
        await drop_run_keys(client, queue, prefix)

"""One harness per backend kind, so the contract suite is written once.

A harness gives a fresh backend with its own key prefix, the backend's own
notion of "now", and a way to let time pass: a fake clock for the in-memory
backend, real sleeping for servers that judge expiry by their own clock.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from store import InMemoryBackend, StorageBackend, VersionConflict, clock
from store.clock import wall_clock_ms
from store.redis import RedisBackend


@dataclass
class Harness:
    backend: StorageBackend
    now_ms: Callable[[], Awaitable[int]]
    advance: Callable[[int], Awaitable[None]]
    kind: str
    clock: Callable[[], int] = wall_clock_ms


HarnessFactory = Callable[[], AbstractAsyncContextManager[Harness]]


class FakeClock:
    def __init__(self, start_ms: int = 1_700_000_000_000) -> None:
        self.ms = start_ms

    def __call__(self) -> int:
        return self.ms


@asynccontextmanager
async def memory_harness() -> AsyncIterator[Harness]:
    clock = FakeClock()

    async def now() -> int:
        return clock.ms

    async def advance(ms: int) -> None:
        clock.ms += ms

    async with InMemoryBackend(clock=clock) as backend:
        yield Harness(backend, now, advance, "memory", clock)


async def until(check: Callable[[], Any], timeout_s: float = 15) -> None:
    """Poll ``check`` (plain or async) until it holds; fail after ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.05)


async def sleep_ms(ms: int) -> None:
    await asyncio.sleep(ms / 1000)


def unique(label: str = "o") -> str:
    """An id no other test uses, so tests never see each other's records."""
    return f"{label}-{uuid.uuid4().hex[:12]}"


async def drop_keys(backend: RedisBackend) -> None:
    """Delete every key under the backend's prefix: only what the test made."""
    client = backend.client
    # scan_iter walks every primary of a cluster.
    found = [key async for key in client.scan_iter(match=f"{backend.keys.prefix}:*", count=1000)]
    for key in found:
        await client.unlink(key)


def nested(depth: int) -> object:
    """A JSON value ``depth`` lists deep, for the limits on nesting."""
    value: object = "leaf"
    for _ in range(depth):
        value = [value]
    return value


async def server_ms(backend: RedisBackend) -> int:
    return await clock.server_ms(backend.client)


@asynccontextmanager
async def redis_harness(url: str, kind: str, **options: Any) -> AsyncIterator[Harness]:
    backend = await RedisBackend.from_url(url, prefix=unique("test"), **options)

    async def now() -> int:
        return await server_ms(backend)

    try:
        yield Harness(backend, now, sleep_ms, kind)
    finally:
        await drop_keys(backend)
        await backend.aclose()


async def cas_increment(backend: StorageBackend, key: str) -> int:
    """Add one to the integer in ``key`` by read + compare-and-swap, retrying on conflict."""
    while True:
        record = await backend.get(key)
        try:
            return await backend.put_if_version(
                key, str(int(record.data) + 1).encode(), record.version
            )
        except VersionConflict:
            continue

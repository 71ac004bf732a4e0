"""Raw job payloads pushed by hand: each fails typed, the worker lives, the store is untouched."""

from __future__ import annotations

import asyncio
import json
import pickle
import time
import uuid
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from store import make_key
from tests.harness import unique
from tests.security.conftest import keyspace
from worker.producer.client import TaskStoreClient
from worker.protocol.keys import QueueKeys
from worker.protocol.serialization import deserialize
from worker.protocol.settings import Settings


def _job(function: Any, args: Any = (), kwargs: Any = None) -> bytes:
    body = {"t": 1, "f": function, "a": args, "k": kwargs or {}, "et": int(time.time() * 1000)}
    return json.dumps(body).encode()


BAD_PAYLOADS = [
    b"",
    b"{",
    _job("put")[:-7],
    b"[1, 2, 3]",
    b'"just a string"',
    b"\xff\xfe\x00garbage",
    b"[" * 100_000,
    _job("put", "o:t"),
    _job("put", [], []),
    _job("put", ["o:t", "not bytes"]),
    _job("put", ["o:{t}", {"__bytes__": "eA=="}]),
    _job("put", ["o:t", {"__bytes__": "not base64!"}]),
    _job("put_if_version", ["o:t", {"__bytes__": "eA=="}, "1"]),
    _job("put_if_version", ["o:t", {"__bytes__": "eA=="}, -3]),
    _job("create_task", [None, 5]),
    _job("set_variables", ["t", "o", {"deep": [[[[[[[[[[[["x"]]]]]]]]]]]]}]),
    _job("apply_batch", [[{"key": "o:t"}]]),
    _job("no_such_job", ["o:t"]),
    _job(42),
    pickle.dumps({"t": 1, "f": "put", "a": ["o:t", b"x"], "k": {}, "et": 0}),
]


async def _push_and_wait(redis: Redis, queue: str, payload: bytes) -> dict[str, Any]:
    job_id = uuid.uuid4().hex
    await redis.set(f"arq:job:{job_id}", payload, px=60_000)
    await redis.zadd(queue, {job_id: int(time.time() * 1000)})
    # As the enqueue script does, so the idle worker looks at once.
    await cast(Any, redis).lpush(QueueKeys(queue).wake, "1")
    for _ in range(200):
        result = await redis.get(f"arq:result:{job_id}")
        if result is not None:
            decoded: dict[str, Any] = deserialize(result)
            return decoded
        await asyncio.sleep(0.02)
    raise AssertionError(f"no result for {payload[:60]!r}")


def _failed(result: dict[str, Any]) -> bool:
    """arq's own failure, or our typed error envelope."""
    if result["s"] is False:
        return True
    return isinstance(result["r"], dict) and result["r"].get("ok") is False


async def test_bad_payloads_fail_and_change_nothing(
    fuzz_client: TaskStoreClient, fuzz_settings: Settings
) -> None:
    owner = unique()
    await fuzz_client.put(make_key(owner, "kept"), b"valid")
    redis = Redis.from_url(fuzz_settings.queue_url)
    before = await keyspace(redis, fuzz_settings.key_prefix)
    try:
        for payload in BAD_PAYLOADS:
            assert _failed(await _push_and_wait(redis, fuzz_settings.queue_name, payload))
        assert await keyspace(redis, fuzz_settings.key_prefix) == before
        assert await fuzz_client.put(make_key(owner, "after"), b"x") == 1
    finally:
        await redis.aclose()


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=st.binary(max_size=200))
async def test_random_bytes_on_the_queue_fail_and_change_nothing(
    fuzz_client: TaskStoreClient, fuzz_settings: Settings, payload: bytes
) -> None:
    redis = Redis.from_url(fuzz_settings.queue_url)
    try:
        before = await keyspace(redis, fuzz_settings.key_prefix)
        assert _failed(await _push_and_wait(redis, fuzz_settings.queue_name, payload))
        assert await keyspace(redis, fuzz_settings.key_prefix) == before
    finally:
        await redis.aclose()

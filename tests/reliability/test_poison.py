"""Jobs that cannot run, or fail the same way on every try, are answered, each on its own:
one that keeps failing stops after max_tries; junk on the queue, through the enqueue
script or written by hand, never keeps its neighbours from their answers."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from store import BackendError, InvalidArgument, make_key
from tests.harness import unique
from tests.servers import RedisProcess, free_ports
from tests.worker.conftest import drop_test_keys, isolated_settings, raw_redis, running_worker
from worker.producer.client import TaskStoreClient
from worker.producer.queue import enqueue, job_payload, wait_reply
from worker.protocol.keys import QueueKeys, job_keys
from worker.protocol.serialization import serialize
from worker.protocol.settings import Settings
from worker.runtime.context import state


async def test_a_job_failing_every_try_stops_after_max_tries(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisProcess(free_ports(1)[0], tmp_path / "store")
    store.start()
    settings = isolated_settings(
        redis_url,
        "poison",
        store_url=store.url,
        max_tries=3,
        reply_timeout_s=30,
    )
    try:
        async with running_worker(settings) as worker, TaskStoreClient.connect(settings) as client:
            store.stop()  # from now on every storage call of the job fails
            with (
                caplog.at_level(logging.WARNING, logger="taskstore.jobs"),
                pytest.raises(BackendError),
            ):
                await client.put(make_key(unique(), "t"), b"x")
            metrics = state(worker.ctx).metrics
            assert metrics.value("taskstore_backend_errors_total", job="put") == 3
            assert metrics.value("taskstore_jobs_total", job="put", outcome="BackendError") == 1
            retries = [r for r in caplog.records if "will retry" in r.getMessage()]
            assert len(retries) == 2
            assert worker.main_task is not None
            assert not worker.main_task.done()
    finally:
        store.stop()
        await drop_test_keys(settings)


# -- Every job answers on its own, whatever a producer put on the queue ------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
NAMES = st.sampled_from(
    ["put", "ops", "apply_batch", "create_task", "cancel_task", "ops put", "refuse", "run_tool",
     "sweep_expired", "reap_orphans", ""]
) | st.text(max_size=12)  # fmt: skip
JOB_LIKE = st.fixed_dictionaries(
    {"f": NAMES},
    optional={
        "v": st.sampled_from(["1.4", "1.0", "2.0", "one"]) | JSON,
        "a": st.just([]) | JSON,
        "k": st.just({}) | st.just({"key": "poison:k", "data": {"__bytes__": "eA=="}}) | JSON,
        "et": st.sampled_from([0, 2**53, -1, 1.5, float("inf"), float("nan")]) | JSON,
        "t": JSON,
        "q": st.just({"t": 2**52}) | JSON,
        "wait_ms": JSON,
        "tc": JSON,
    },
)
WELL_SHAPED = st.fixed_dictionaries(
    {"v": st.sampled_from(["1.4", "1.0"]), "f": NAMES, "a": st.just([]) | JSON, "k": JSON,
     "et": st.integers(0, 2**53 - 1)},
    optional={"wait_ms": JSON, "tc": JSON, "q": JSON, "t": JSON},
)  # fmt: skip
"""Jobs of the right shape whose name or arguments are wrong: they reach the worker's planning."""
PAYLOADS = (
    st.binary(max_size=80)
    | JSON.map(lambda v: json.dumps(v).encode())
    | JOB_LIKE.map(lambda j: json.dumps(j).encode())
    | WELL_SHAPED.map(lambda j: json.dumps(j).encode())
)
ROUTES = st.sampled_from(["script", "writes", "queue"])
"""Through the enqueue script, or written by hand onto either sorted set."""


@pytest.mark.slow
async def test_every_job_answers_on_its_own_and_its_neighbours_apply_once(redis_url: str) -> None:
    settings = isolated_settings(redis_url, "poisonous", keep_result_s=60)
    try:
        async with running_worker(settings):
            await asyncio.to_thread(_every_job_answers, settings)
    finally:
        await drop_test_keys(settings)


@hsettings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(junk=st.lists(st.tuples(ROUTES, PAYLOADS), min_size=1, max_size=6), split=st.integers(0, 6))
def _every_job_answers(settings: Settings, junk: list[tuple[str, bytes]], split: int) -> None:
    asyncio.run(_answered(settings, junk[:split], junk[split:]))


async def _answered(settings: Settings, before: list[Any], after: list[Any]) -> None:
    """Junk jobs around three well-formed puts: every job on the queue answers within a
    lease of the last one sent, and each put applies once."""
    redis = raw_redis(settings)
    keys = QueueKeys(settings.queue_name)
    owner = unique("neighbour")
    waiting: list[str] = []

    async def send(route: str, payload: bytes) -> None:
        job_id = unique("job")
        if route == "script":
            try:
                await enqueue(redis, settings.queue_name, job_id, payload)  # type: ignore[arg-type]
            except InvalidArgument:
                return  # refused, naming why: nothing was queued, nothing to wait for
        else:
            now_s, micros = await redis.time()
            await redis.set(job_keys(job_id).job, payload, px=60_000)
            queue = keys.writes if route == "writes" else keys.queue
            await redis.zadd(queue, {job_id: now_s * 1000 + micros // 1000})
            await redis.lpush(keys.wake, 1)  # type: ignore[misc]
        waiting.append(job_id)

    try:
        for route, payload in before:
            await send(route, payload)
        puts = {unique("put"): make_key(owner, f"k{i}") for i in range(3)}
        for job_id, key in puts.items():
            payload = job_payload("put", serialize([key, b"x"]), b"{}")
            assert (await enqueue(redis, settings.queue_name, job_id, payload)).added  # type: ignore[arg-type]
        for route, payload in after:
            await send(route, payload)
        deadline = asyncio.get_running_loop().time() + settings.lease_s
        for job_id in [*puts, *waiting]:
            left = max(deadline - asyncio.get_running_loop().time(), 0.01)
            reply = await wait_reply(redis, settings.queue_name, job_id, left)  # type: ignore[arg-type]
            assert isinstance(reply, dict), (job_id, reply)
            assert isinstance(reply.get("ok"), bool), (job_id, reply)
            if job_id in puts:
                assert reply == {"ok": True, "value": 1}, reply
        async with TaskStoreClient.connect(settings) as client:
            for key in puts.values():
                assert (await client.get(key)).version == 1
    finally:
        await redis.aclose()


NEIGHBOURS = 5


@pytest.mark.parametrize(
    "poison",
    [
        b'{"v":"1.4","f":"ops put","a":[[]],"k":{},"et":0}',  # a name holding two batch names
        b'{"v":"1.4","f":"put","a":[],"k":{"key":"p:k","data":{"__bytes__":"eA=="}},"et":1e400}',
        b'{"v":"1.4","f":"put","a":[],"k":{"key":"p:k","data":{"__bytes__":"eA=="}},"et":NaN}',
        b'{"v":"1.4","f":"ops","a":[[{"op":"put","id":"x","args":{}}]],"k":{},"et":0,"t":99}',
    ],
    ids=["two-names", "et-overflows", "et-nan", "tries-given"],
)
async def test_a_poison_job_is_answered_at_once_and_its_batch_runs_on(
    redis_url: str, poison: bytes
) -> None:
    """The enqueue script refuses each of these, naming the field; written by hand beside
    well-formed jobs, each is answered on its first try and its neighbours are applied."""
    settings = isolated_settings(redis_url, "poison-case")
    redis = raw_redis(settings)
    keys = QueueKeys(settings.queue_name)
    owner = unique()
    try:
        with pytest.raises(InvalidArgument):
            await enqueue(redis, settings.queue_name, unique("job"), poison)  # type: ignore[arg-type]
        bad = unique("job")
        await redis.set(job_keys(bad).job, poison, px=60_000)
        await redis.zadd(keys.writes, {bad: 0})
        puts = {unique("put"): make_key(owner, f"k{i}") for i in range(NEIGHBOURS)}
        for job_id, key in puts.items():
            payload = job_payload("put", serialize([key, b"x"]), b"{}")
            assert (await enqueue(redis, settings.queue_name, job_id, payload)).added  # type: ignore[arg-type]
        async with running_worker(settings):
            answer = await wait_reply(redis, settings.queue_name, bad, settings.lease_s)  # type: ignore[arg-type]
            for job_id in puts:
                reply = await wait_reply(redis, settings.queue_name, job_id, settings.lease_s)  # type: ignore[arg-type]
                assert reply == {"ok": True, "value": 1}
        assert answer is not None
        assert isinstance(answer["ok"], bool), answer
        assert int(await redis.get(job_keys(bad).tries) or 0) <= 1  # answered on its first try
    finally:
        await redis.aclose()
        await drop_test_keys(settings)

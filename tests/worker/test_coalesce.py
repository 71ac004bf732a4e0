"""Coalesced jobs: many callers' writes in one job, each caller with its own outcome."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import pytest

from store import (
    CapacityExceeded,
    InvalidArgument,
    InvalidKey,
    VersionConflict,
    VersionedRecord,
    make_key,
)
from store.tasks import InvalidTransition, TaskNotFound, TaskRecord, TaskStatus
from tests.harness import unique
from tests.worker.conftest import queue_settings, raw_redis
from worker.producer.client import TaskStoreClient
from worker.producer.queue import wait_reply
from worker.protocol.keys import QueueKeys, job_keys
from worker.protocol.settings import Settings


@pytest.fixture(params=["redis", "embedded", "cluster-store"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """As everywhere in tests/worker, and once more with the store on a Redis Cluster."""
    return queue_settings(request, tmp_path, request.param)


async def _settled(*calls: Awaitable[Any]) -> list[Any]:
    return list(await asyncio.gather(*calls, return_exceptions=True))


async def test_mixed_writes_in_one_job_each_get_their_own_outcome(
    client: TaskStoreClient,
) -> None:
    owner = unique()
    full = unique()
    cas = make_key(owner, "cas")
    await client.put(cas, b"1")
    await client.put(make_key(full, "only"), b"x", max_records_per_owner=1)
    task = await client.create_task(owner, "tools/call")
    done = await client.create_task(owner, "tools/call")
    await client.cancel_task(done.task_id, owner)

    handles: list[Any] = await asyncio.gather(
        client.enqueue_put(make_key(owner, "new"), b"n"),
        client.enqueue_put_if_version(cas, b"2", 1),
        client.enqueue_put_if_version(make_key(owner, "stale"), b"x", 5),
        client.enqueue_put(make_key(full, "second"), b"x", max_records_per_owner=1),
        client.enqueue_put("no-separator", b"x"),
        client.enqueue_put(make_key(owner, "typed"), "not bytes"),  # type: ignore[arg-type]
        client.enqueue_update_status(task.task_id, owner, "input_required", "which file?"),
        client.enqueue_cancel_task(done.task_id, owner),
        client.enqueue_set_variables(unique("t"), owner, {"a": 1}),
        client.enqueue_create_task(owner, "tools/call", 60_000),
        client.enqueue_delete(make_key(owner, "never-was")),
    )
    assert len({h.job_id for h in handles}) == 1, "the writes travelled as one job"
    assert len({h.op_id for h in handles}) == len(handles)
    outcomes = await _settled(*(h.result() for h in handles))

    assert outcomes[0] == 1
    assert outcomes[1] == 2
    assert isinstance(outcomes[2], VersionConflict)
    assert (outcomes[2].expected, outcomes[2].actual) == (5, 0)
    assert isinstance(outcomes[3], CapacityExceeded)
    assert (outcomes[3].owner_id, outcomes[3].limit) == (full, 1)
    assert isinstance(outcomes[4], InvalidKey)
    assert isinstance(outcomes[5], InvalidArgument)
    assert outcomes[6].status == TaskStatus.INPUT_REQUIRED
    assert outcomes[6].task.status_message == "which file?"
    assert isinstance(outcomes[7], InvalidTransition)
    assert isinstance(outcomes[8], TaskNotFound)
    assert outcomes[9].status == TaskStatus.WORKING
    assert outcomes[10] is False
    assert await client.get(cas) == VersionedRecord(b"2", 2)
    assert await client.count(full) == 1


async def test_a_conflict_carries_the_current_data_through_the_queue(
    client: TaskStoreClient,
) -> None:
    key = make_key(unique(), "t")
    await client.put(key, b"first")
    await client.put(key, b"\x00second\xff")
    with pytest.raises(VersionConflict) as err:
        await client.put_if_version(key, b"x", 1)
    assert err.value.current_data == b"\x00second\xff"
    assert (err.value.key, err.value.expected, err.value.actual) == (key, 1, 2)


async def test_same_key_writes_apply_in_issue_order(client: TaskStoreClient) -> None:
    owner = unique()
    key = make_key(owner, "k")
    task = await client.create_task(owner, "tools/call")
    calls: list[Awaitable[Any]] = [client.put(key, str(i).encode()) for i in range(30)]
    calls += [
        client.update_status(task.task_id, owner, "input_required"),
        client.update_status(task.task_id, owner, "working"),
        client.set_variables(task.task_id, owner, {"step": 1}),
        client.set_variables(task.task_id, owner, {"step": 2}),
        client.complete_with_result(task.task_id, owner, "completed", {"ok": True}),
    ]
    outcomes = await asyncio.gather(*calls)
    assert outcomes[:30] == list(range(1, 31))
    assert await client.get(key) == VersionedRecord(b"29", 30)
    statuses = [o.status for o in outcomes[30:]]
    assert statuses == ["input_required", "working", "working", "working", "completed"]
    final = await client.get_task(task.task_id, owner)
    assert final.variables == {"step": 2}
    assert await client.get_result(task.task_id, owner) == {"ok": True}


async def test_a_redelivered_job_applies_nothing_twice(
    client: TaskStoreClient, settings: Settings
) -> None:
    owner = unique()
    keys = [make_key(owner, f"k{i}") for i in range(5)]
    task = await client.create_task(owner, "tools/call")
    handles: list[Any] = await asyncio.gather(
        *(client.enqueue_put(k, b"v") for k in keys),
        client.enqueue_put_if_version(keys[0], b"cas", 1),
        client.enqueue_update_status(task.task_id, owner, "input_required"),
        client.enqueue_create_task(owner, "tools/call"),
    )
    job_id = handles[0].job_id
    first = await _settled(*(h.result() for h in handles))
    redis = raw_redis(settings)
    try:
        # arq records the result just after the job has pushed its reply.
        for _ in range(200):
            payload = await redis.get(job_keys(job_id).result)
            if payload is not None:
                break
            await asyncio.sleep(0.05)
        assert payload is not None
        # Put the job back as arq does after a crash: its record and its queue entry.
        from worker.protocol.serialization import deserialize, serialize

        result = deserialize(payload)
        job = {"t": None, "f": result["f"], "a": result["a"], "k": result["k"], "et": 0}
        await redis.delete(job_keys(job_id).result, QueueKeys(settings.queue_name).reply(job_id))
        await redis.set(job_keys(job_id).job, serialize(job), px=60_000)
        await redis.zadd(settings.queue_name, {job_id: int(time.time() * 1000)})
        again = await wait_reply(client.pool, settings.queue_name, job_id, 20)
    finally:
        await redis.aclose()
    replayed = [e["value"] if e["ok"] else e["error"]["type"] for e in again["value"]]
    assert replayed[:6] == first[:6] == [1, 1, 1, 1, 1, 2]
    assert TaskRecord.model_validate(replayed[6]).task_id == task.task_id
    assert TaskRecord.model_validate(replayed[7]) == first[7]
    assert await client.get(keys[0]) == VersionedRecord(b"cas", 2)
    assert await client.count(owner) == 7  # 5 keys and 2 tasks, none twice
    assert (await client.get_task(task.task_id, owner)).status == "input_required"


async def test_coalesce_false_sends_a_write_alone(client: TaskStoreClient) -> None:
    owner = unique()
    alone = await asyncio.gather(
        *(client.enqueue_put(make_key(owner, f"a{i}"), b"x", coalesce=False) for i in range(3))
    )
    assert len({h.job_id for h in alone}) == 3
    assert all(h.job_id.startswith(f"{h.op_id}.") for h in alone)
    assert [await h.result() for h in alone] == [1, 1, 1]
    # Alone or coalesced, an op id is the same operation.
    key = make_key(owner, "same")
    assert await client.put(key, b"a", op_id="once", coalesce=False) == 1
    assert await client.put(key, b"b", op_id="once") == 1
    assert await client.put(key, b"c", op_id="once", coalesce=False) == 1
    assert await client.get(key) == VersionedRecord(b"a", 1)


async def test_wrong_arguments_fail_in_the_caller_before_anything_is_sent(
    client: TaskStoreClient,
) -> None:
    with pytest.raises(InvalidArgument, match="colour"):
        await client.put(make_key(unique(), "t"), b"x", colour="red")  # type: ignore[call-arg]
    with pytest.raises(InvalidArgument, match="not JSON"):
        await client.set_result("t", unique(), object())
    # Its neighbours in the same turn of the loop are untouched.
    owner = unique()
    outcomes = await _settled(
        client.put(make_key(owner, "a"), b"x"),
        client.set_result("t", owner, object()),
        client.put(make_key(owner, "b"), b"x"),
    )
    assert outcomes[0] == outcomes[2] == 1
    assert isinstance(outcomes[1], InvalidArgument)

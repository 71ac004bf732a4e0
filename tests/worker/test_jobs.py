"""Every job end to end through TaskStoreClient and an in-process worker."""

from __future__ import annotations

import asyncio
import os
import pickle
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from arq.jobs import Job, JobStatus

from store import (
    BatchOp,
    CapacityExceeded,
    InvalidArgument,
    InvalidKey,
    NotFound,
    RecordTooLarge,
    VersionConflict,
    VersionedRecord,
    make_key,
)
from store.tasks import InvalidParams, InvalidTransition, NotReady, TaskNotFound, TaskStatus
from tests.harness import unique
from tests.worker.conftest import raw_redis
from worker.producer.client import TaskStoreClient
from worker.protocol.keys import job_keys
from worker.protocol.serialization import deserialize
from worker.protocol.settings import Settings


async def test_raw_writes_and_reads(client: TaskStoreClient) -> None:
    owner = unique()
    key = make_key(owner, "t")
    assert await client.put(key, b"\x00binary\xff") == 1
    assert await client.put_if_version(key, b"two", 1) == 2
    assert await client.get(key) == VersionedRecord(b"two", 2)
    assert await client.count(owner) == 1
    page = await client.list_page(owner)
    assert [k for k, _ in page.items] == [key]
    assert await client.delete(key) is True
    assert await client.delete(key) is False
    with pytest.raises(NotFound):
        await client.get(key)


async def test_conflicts_come_back_as_version_conflict(client: TaskStoreClient) -> None:
    key = make_key(unique(), "t")
    await client.put(key, b"a")
    await client.put(key, b"b")
    with pytest.raises(VersionConflict) as err:
        await client.put_if_version(key, b"x", 1)
    assert (err.value.key, err.value.expected, err.value.actual) == (key, 1, 2)
    with pytest.raises(VersionConflict) as err:
        await client.put_if_version(make_key(unique(), "none"), b"x", 3)
    assert (err.value.expected, err.value.actual) == (3, 0)


async def test_capacity_comes_back_as_capacity_exceeded(client: TaskStoreClient) -> None:
    owner = unique()
    await client.put(make_key(owner, "a"), b"x", max_records_per_owner=1)
    with pytest.raises(CapacityExceeded) as err:
        await client.put(make_key(owner, "b"), b"x", max_records_per_owner=1)
    assert (err.value.owner_id, err.value.limit) == (owner, 1)


async def test_task_lifecycle_through_the_worker(client: TaskStoreClient) -> None:
    owner = unique()
    task = await client.create_task(owner, "tools/call", 60_000)
    assert task.status == TaskStatus.WORKING
    assert (await client.get_task(task.task_id, owner)) == task
    task = await client.update_status(task.task_id, owner, "input_required", "which file?")
    assert task.task.status_message == "which file?"
    task = await client.update_status(task.task_id, owner, TaskStatus.WORKING)
    task = await client.set_variables(task.task_id, owner, {"file": "a.txt"})
    task = await client.set_result(task.task_id, owner, {"partial": True})
    with pytest.raises(NotReady):
        await client.get_result(task.task_id, owner)
    done = await client.complete_with_result(task.task_id, owner, "completed", {"content": []})
    assert done.variables == {"file": "a.txt"}
    assert await client.get_result(task.task_id, owner) == {"content": []}
    with pytest.raises(InvalidTransition) as err:
        await client.cancel_task(task.task_id, owner)
    assert (err.value.source, err.value.target) == ("completed", "cancelled")
    assert err.value.code == -32602
    other = await client.create_task(owner, "tools/call")
    assert (await client.cancel_task(other.task_id, owner)).status == TaskStatus.CANCELLED
    listed = await client.list_tasks(owner)
    assert [t.task_id for t in listed.tasks] == [other.task_id, task.task_id]
    with pytest.raises(TaskNotFound):
        await client.update_status(task.task_id, unique(), "failed")


async def test_two_hundred_concurrent_producer_calls(client: TaskStoreClient) -> None:
    owner = unique()
    keys = [make_key(owner, f"t{i}") for i in range(200)]
    versions = await asyncio.gather(*(client.put(k, k.encode()) for k in keys))
    assert versions == [1] * 200
    versions = await asyncio.gather(
        *(client.put_if_version(k, b"v2:" + k.encode(), 1) for k in keys)
    )
    assert versions == [2] * 200
    for key in keys:
        assert await client.get(key) == VersionedRecord(b"v2:" + key.encode(), 2)


async def test_enqueue_returns_a_handle_to_await_later(client: TaskStoreClient) -> None:
    key = make_key(unique(), "t")
    handles = [await client.enqueue_put(key, str(i).encode()) for i in range(5)]
    assert sorted([await h.result() for h in handles]) == [1, 2, 3, 4, 5]
    assert await handles[0].result() == await handles[0].result()


async def test_an_op_id_applies_once_and_is_private_to_its_key(client: TaskStoreClient) -> None:
    owner = unique()
    key = make_key(owner, "t")
    assert await client.put(key, b"a", op_id="same") == 1
    assert await client.put(key, b"b", op_id="same") == 1
    assert await client.get(key) == VersionedRecord(b"a", 1)
    # Another owner's identical op id is another operation.
    assert await client.put(make_key(unique(), "t"), b"x", op_id="same") == 1
    task = await client.create_task(owner, "m", op_id="create")
    assert (await client.create_task(owner, "m", op_id="create")).task_id == task.task_id
    assert await client.count(owner) == 2


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda c: c.put("no-separator", b"x"), InvalidKey),
        (lambda c: c.put("o:{t}", b"x"), InvalidKey),
        (lambda c: c.put(make_key("o", "t"), "text"), InvalidArgument),
        (lambda c: c.put(make_key("o", "t"), b"x", expires_at_ms="soon"), InvalidArgument),
        (lambda c: c.put_if_version(make_key("o", "t"), b"x", "1"), InvalidArgument),
        (lambda c: c.put_if_version(make_key("o", "t"), b"x", 0), InvalidArgument),
        (lambda c: c.put(make_key("o", "t"), b"x" * (4 * 1024 * 1024 + 1)), RecordTooLarge),
        (lambda c: c.create_task("o", "m", "60000"), InvalidParams),
        (lambda c: c.put(make_key("o", "t"), {1, 2}), InvalidArgument),
    ],
)
async def test_bad_input_fails_clearly_and_changes_nothing(
    client: TaskStoreClient, call: object, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await call(client)  # type: ignore[operator]
    assert await client.count("o") == 0


async def _raw_job(settings: Settings, name: str, *args: object, **kwargs: Any) -> Job:
    from arq.connections import ArqRedis

    from worker.protocol.serialization import serialize

    redis = raw_redis(settings)
    pool = ArqRedis(connection_pool=redis.connection_pool, job_serializer=serialize)
    job = await pool.enqueue_job(name, *args, _queue_name=settings.queue_name, **kwargs)
    assert job is not None
    return Job(job.job_id, pool, settings.queue_name, _deserializer=deserialize)


async def _finished(job: Job) -> object:
    for _ in range(200):
        if await job.status() == JobStatus.complete:
            info = await job.result_info()
            assert info is not None
            return info
        await asyncio.sleep(0.05)
    raise AssertionError("job did not finish")


async def test_unknown_jobs_and_wrong_arguments_fail_and_the_worker_goes_on(
    client: TaskStoreClient, settings: Settings
) -> None:
    info = await _finished(await _raw_job(settings, "drop_everything"))
    assert info.success is False  # type: ignore[attr-defined]
    info = await _finished(await _raw_job(settings, "put", "o:t", b"x", colour="red"))
    assert info.result["error"]["type"] == "InvalidArgument"  # type: ignore[attr-defined]
    info = await _finished(await _raw_job(settings, "delete"))
    assert info.result["error"]["type"] == "InvalidArgument"  # type: ignore[attr-defined]
    assert await client.put(make_key(unique(), "t"), b"still working") == 1


async def test_a_pickled_job_is_failed_without_being_run(
    client: TaskStoreClient, settings: Settings, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    job_id = uuid.uuid4().hex
    payload = pickle.dumps(
        {"t": 1, "f": "put", "a": [Exploit()], "k": {}, "et": int(time.time() * 1000)}
    )
    redis = raw_redis(settings)
    await redis.set(job_keys(job_id).job, payload, px=60_000)
    await redis.zadd(settings.queue_name, {job_id: int(time.time() * 1000)})
    for _ in range(100):
        if await redis.exists(job_keys(job_id).result):
            break
        await asyncio.sleep(0.05)
    result = deserialize(await redis.get(f"arq:result:{job_id}"))
    await redis.aclose()
    assert result["s"] is False
    assert not marker.exists()
    assert await client.put(make_key(unique(), "t"), b"still working") == 1


async def test_a_batch_runs_in_one_job_with_an_outcome_per_op(client: TaskStoreClient) -> None:
    owner = unique()
    key = make_key(owner, "cas")
    await client.put(key, b"1")
    ops = [BatchOp(make_key(owner, f"t{i}"), b"x") for i in range(100)]
    ops += [BatchOp(key, b"2", expected_version=1), BatchOp(key, b"3", expected_version=1)]
    ops += [BatchOp("no-separator", b"x")]
    outcomes = await client.apply_batch(ops)
    assert outcomes[:101] == [1] * 100 + [2]
    assert isinstance(outcomes[101], VersionConflict)
    assert outcomes[101].actual == 2
    assert isinstance(outcomes[102], InvalidKey)
    assert await client.count(owner) == 101
    # The same op id again is the same batch: nothing is applied twice.
    handle = await client.enqueue_apply_batch(ops[:2], op_id="batch-1")
    assert await handle.result() == [2, 2]
    assert await client.apply_batch(ops[:2], op_id="batch-1") == [2, 2]


async def test_a_malformed_batch_is_refused(client: TaskStoreClient, settings: Settings) -> None:
    for ops in ([{"key": "o:t"}], [{"key": "o:t", "data": b"x", "colour": 1}], "x"):
        info = await _finished(await _raw_job(settings, "apply_batch", ops))
        assert info.result["error"]["type"] == "InvalidArgument"  # type: ignore[attr-defined]

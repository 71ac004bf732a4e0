"""The batch path: jobs enqueued before a worker starts are claimed, run and finished together."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis, create_pool

from store import OpWithdrawn, make_key
from tests.harness import unique
from tests.servers import RedisProcess, free_ports
from tests.worker.conftest import drop_test_keys, isolated_settings, running_worker
from worker.producer.client import TaskStoreClient
from worker.producer.queue import enqueue, job_payload, wait_reply
from worker.protocol.connections import queue_redis_settings
from worker.protocol.keys import QueueKeys, job_keys
from worker.protocol.scripts import CLAIM, ClaimArgs, ClaimKeys
from worker.protocol.serialization import deserialize, serialize
from worker.protocol.settings import Settings
from worker.runtime import batch, jobs
from worker.runtime.batch import BatchPath
from worker.runtime.context import state


@pytest.fixture
async def settings(redis_url: str) -> AsyncIterator[Settings]:
    settings = isolated_settings(redis_url, "batch", reply_timeout_s=20, keep_result_s=30)
    yield settings
    await drop_test_keys(settings)


@pytest.fixture
async def pool(settings: Settings) -> AsyncIterator[ArqRedis]:
    redis_settings, _ = queue_redis_settings(settings, ride_out_outages=False)
    pool = await create_pool(
        redis_settings,
        default_queue_name=settings.queue_name,
        job_serializer=serialize,
        job_deserializer=deserialize,
    )
    yield pool
    await pool.aclose()


def job(function: str, *args: Any, **kwargs: Any) -> bytes:
    return job_payload(function, serialize(list(args)), serialize(kwargs))


async def enqueue_all(pool: ArqRedis, settings: Settings, payloads: Sequence[bytes]) -> list[str]:
    """Each payload as a job of its own, in order; their ids, which sort in that order too
    (the queue orders jobs of one millisecond by id)."""
    run = unique("job")
    ids = [f"{run}-{i:04d}" for i in range(len(payloads))]
    for job_id, payload in zip(ids, payloads, strict=True):
        assert (await enqueue(pool, settings.queue_name, job_id, payload)).added
    return ids


async def replies(pool: ArqRedis, settings: Settings, ids: Sequence[str]) -> list[Any]:
    return [await wait_reply(pool, settings.queue_name, i, 10) for i in ids]


def batch_sizes(caplog: pytest.LogCaptureFixture) -> list[int]:
    return [r.jobs for r in caplog.records if r.getMessage().startswith("batch of ")]  # type: ignore[attr-defined]


def error(reply: Any) -> str:
    assert reply["ok"] is False, reply
    return str(reply["error"]["type"])


async def test_each_job_of_a_mixed_batch_gets_its_own_answer(
    settings: Settings, pool: ArqRedis, caplog: pytest.LogCaptureFixture
) -> None:
    owner, small = unique(), unique()
    payloads = [
        job("put", make_key(owner, "a"), b"x"),  # applied
        job("put_if_version", make_key(owner, "b"), b"x", 5),  # a conflict
        job("put", make_key(small, "a"), b"x", max_records_per_owner=1),  # fills its owner
        job("put", make_key(small, "b"), b"x", max_records_per_owner=1),  # refused: capacity
        job("put", make_key(owner, "d"), b"x", nope=1),  # an unknown argument
        job("put"),  # missing arguments
        job("ops", [{"op": "frobnicate", "id": "op-1", "args": {}}]),  # an unknown write
        job("ops", [], deadline=1),  # an unknown argument of ops
        job("apply_batch", "not a list"),  # a wrong type
        b'{"v":"1.0","f":"put","a":[{"__bytes__":"!!"}],"k":{},"et":1}',  # does not decode
        b'{"v":"2.0","f":"put","a":[],"k":{},"et":1}',  # another major version
    ]
    ids = await enqueue_all(pool, settings, payloads)
    with caplog.at_level(logging.INFO, logger="taskstore.jobs"):
        async with running_worker(settings):
            got = await replies(pool, settings, ids)
    assert got[0] == {"ok": True, "value": 1}
    assert error(got[1]) == "VersionConflict"
    assert got[1]["error"]["fields"]["actual"] == 0
    assert got[2] == {"ok": True, "value": 1}
    assert error(got[3]) == "CapacityExceeded"
    assert error(got[4]) == "InvalidArgument"
    assert "nope" in got[4]["error"]["message"]
    assert error(got[5]) == "InvalidArgument"
    assert got[6]["ok"] is True
    assert error(got[6]["value"][0]) == "InvalidArgument"
    assert "frobnicate" in got[6]["value"][0]["error"]["message"]
    assert error(got[7]) == "InvalidArgument"
    assert "deadline" in got[7]["error"]["message"]
    assert error(got[8]) == "InvalidArgument"
    assert error(got[9]) == "InvalidArgument"
    assert error(got[10]) == "InvalidArgument"
    assert "2.0" in got[10]["error"]["message"]
    assert batch_sizes(caplog)[0] == len(payloads)


async def test_same_key_writes_of_one_batch_apply_in_queue_order(
    settings: Settings, pool: ArqRedis, caplog: pytest.LogCaptureFixture
) -> None:
    key = make_key(unique(), "k")
    payloads = [
        job("put", key, b"1"),
        job("put_if_version", key, b"2", 1),
        job("put_if_version", key, b"3", 2),
        job("delete", key),
        job("put", key, b"again"),
        job("put_if_version", key, b"4", 1),
    ]
    ids = await enqueue_all(pool, settings, payloads)
    with caplog.at_level(logging.INFO, logger="taskstore.jobs"):
        async with running_worker(settings), TaskStoreClient.connect(settings) as client:
            got = await replies(pool, settings, ids)
            record = await client.get(key)
    assert [r["value"] for r in got] == [1, 2, 3, True, 1, 2]
    assert (record.data, record.version) == (b"4", 2)
    assert batch_sizes(caplog)[0] == len(payloads)


async def test_a_batch_delivered_again_by_hand_replays_and_applies_nothing_twice(
    settings: Settings, pool: ArqRedis
) -> None:
    owner = unique()
    keys = [make_key(owner, f"k{i}") for i in range(5)]
    payloads = [job("put", k, b"first") for k in keys]
    payloads.append(job("create_task", owner, "tools/call"))
    ids = await enqueue_all(pool, settings, payloads)
    async with running_worker(settings), TaskStoreClient.connect(settings) as client:
        first = await replies(pool, settings, ids)
        # The same jobs again, under their ids, as a queue that forgot it answered them.
        for job_id in ids:
            await pool.delete(job_keys(job_id).result, QueueKeys(settings.queue_name).reply(job_id))
        for job_id, payload in zip(ids, payloads, strict=True):
            assert (await enqueue(pool, settings.queue_name, job_id, payload)).added
        again = await replies(pool, settings, ids)
        records = [await client.get(k) for k in keys]
        tasks = await client.list_tasks(owner)
    assert again == first
    assert [r.version for r in records] == [1] * len(keys)
    assert len(tasks.tasks) == 1


async def test_a_deadline_withdraws_only_its_own_job_of_a_batch(
    settings: Settings, pool: ArqRedis
) -> None:
    owner = unique()
    past, future = int(time.time() * 1000) - 1000, int(time.time() * 1000) + 60_000

    def ops(name: str, deadline_ms: int) -> bytes:
        args = {"key": make_key(owner, name), "data": b"x"}
        return job(
            "ops", [{"op": "put", "id": f"op-{name}", "args": args}], deadline_ms=deadline_ms
        )

    ids = await enqueue_all(pool, settings, [ops("late", past), ops("on-time", future)])
    # Jobs run again after their worker died, past their deadline: one whose write the
    # first try applied replays it; one whose write it did not is withdrawn, not run.
    applied, unapplied = unique("job"), unique("job")
    for rerun, name in ((applied, "applied"), (unapplied, "unapplied")):
        await pool.set(job_keys(rerun).tries, 1)
        assert (await enqueue(pool, settings.queue_name, rerun, ops(name, past))).added
    async with TaskStoreClient.connect(settings) as client:
        assert await client.stores.backend.put(make_key(owner, "applied"), b"x", op_id="op-applied")
        async with running_worker(settings):
            late, on_time, again, fenced = await replies(pool, settings, [*ids, applied, unapplied])
        assert error(late["value"][0]) == "DeadlineExceeded"
        assert on_time["value"][0] == {"ok": True, "value": 1}
        assert again["value"][0] == {"ok": True, "value": 1}
        assert error(fenced["value"][0]) == "DeadlineExceeded"
        assert {key for key, _ in (await client.list_page(owner)).items} == {
            make_key(owner, "on-time"),
            make_key(owner, "applied"),
        }
        # Withdrawn in the store: no later try of those attempts can apply them.
        for name in ("late", "unapplied"):
            with pytest.raises(OpWithdrawn):
                await client.stores.backend.put(make_key(owner, name), b"x", op_id=f"op-{name}")


async def test_arq_speaking_producers_are_served(settings: Settings, pool: ArqRedis) -> None:
    key = make_key(unique(), "k")
    async with running_worker(settings), TaskStoreClient.connect(settings) as client:
        queued = await pool.enqueue_job("put", key, b"from arq", _queue_name=settings.queue_name)
        assert queued is not None
        assert await queued.result(timeout=10) == {"ok": True, "value": 1}
        info = await queued.info()
        assert info is not None
        assert (info.function, info.job_try, info.success) == ("put", 1, True)  # type: ignore[attr-defined]
        assert (await client.get(key)).data == b"from arq"


async def test_a_client_has_more_than_one_coalesced_job_in_flight(settings: Settings) -> None:
    owner = unique()
    async with TaskStoreClient.connect(settings) as client:
        first = await client.enqueue_put(make_key(owner, "a"), b"x")
        second = await client.enqueue_put(make_key(owner, "b"), b"x")
        assert first.job_id != second.job_id
        # Both sent before either was answered: no worker runs yet.
        assert await client.pool.zcard(QueueKeys(settings.queue_name).writes) == 2
        async with running_worker(settings):
            assert [await first.result(), await second.result()] == [1, 1]


@pytest.mark.slow
async def test_a_job_and_a_batch_longer_than_a_lease_keep_their_claims_and_run_once(
    redis_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = RedisProcess(free_ports(1)[0], tmp_path / "store")
    store.start()
    settings = isolated_settings(
        redis_url, "lease", store_url=store.url, lease_s=1, reply_timeout_s=30
    )
    admin = store.client()
    try:
        async with (
            running_worker(settings) as one,
            running_worker(settings) as two,
            TaskStoreClient.connect(settings) as client,
        ):
            owner = unique()
            for size in (1, 5):  # a job alone, then a batch of five
                keys = [make_key(owner, f"{size}-{i}") for i in range(size)]
                # Every store write waits 2 s (two leases) once its job is claimed.
                admin.execute_command("CLIENT", "PAUSE", 2000, "ALL")  # type: ignore[no-untyped-call]
                handles = [await client.enqueue_put(k, b"x", coalesce=False) for k in keys]
                with caplog.at_level(logging.WARNING, logger="taskstore.jobs"):
                    assert [await h.result() for h in handles] == [1] * size
                for h in handles:
                    result = deserialize(await client.pool.get(job_keys(h.job_id).result))
                    assert result["t"] == 1  # claimed once: no other worker took it over
            ran = sum(
                state(w.ctx).metrics.value("taskstore_jobs_total", job="put", outcome="ok")
                for w in (one, two)
            )
            assert ran == 6
        assert not [r for r in caplog.records if "lost the lease" in r.getMessage()]
    finally:
        admin.close()
        store.stop()
        await drop_test_keys(settings)


BAD_CALLS: dict[str, list[tuple[list[Any], dict[str, Any], str]]] = {
    # Per job kind: positional and keyword arguments, and what the answer must name.
    "put": [([], {"key": "o:t", "data": b"x", "nope": 1}, "nope"), ([], {}, "key")],
    "put_if_version": [([], {"key": "o:t", "data": b"x"}, "expected_version")],
    "delete": [([], {"key": "o:t", "deadline": 1}, "deadline"), ([5], {}, "")],
    "create_task": [([], {"owner_id": "o"}, "request_method"), ([], {"owner_id": "o",
                    "request_method": "tools/call", "ttl_ms": "soon"}, "ttl_ms")],
    "update_status": [([], {"task_id": "t", "owner_id": "o"}, "status")],
    "set_variables": [([], {"task_id": "t", "owner_id": "o", "variables": 5}, "variables")],
    "set_result": [([], {"task_id": "t", "owner_id": "o"}, "result")],
    "complete_with_result": [([], {"task_id": "t", "owner_id": "o", "status": "done",
                             "result": {}}, "status")],
    "cancel_task": [([], {"task_id": "t"}, "owner_id")],
    "ops": [([[]], {"deadline": 1}, "deadline"), ([], {}, "ops"), (["x"], {}, "ops")],
    "apply_batch": [([[]], {"deadline_ms": 1}, "deadline_ms"), ([5], {}, "apply_batch")],
}  # fmt: skip


async def test_every_job_kind_answers_bad_arguments_within_a_second(
    settings: Settings, pool: ArqRedis
) -> None:
    assert set(BAD_CALLS) == set(jobs.BATCH_JOBS)
    cases = [(name, a, k, named) for name, calls in BAD_CALLS.items() for a, k, named in calls]
    async with running_worker(settings), TaskStoreClient.connect(settings) as client:
        task = await client.create_task("o", "tools/call")  # the task the task jobs name

        def payload(name: str, a: list[Any], k: dict[str, Any]) -> bytes:
            return job(name, *a, **{**k, **({"task_id": task.task_id} if "task_id" in k else {})})

        ids = await enqueue_all(pool, settings, [payload(name, a, k) for name, a, k, _ in cases])
        for job_id, (name, _, _, named) in zip(ids, cases, strict=True):
            reply = await wait_reply(pool, settings.queue_name, job_id, 1.0)
            assert reply is not None, f"{name}: no answer within a second"
            assert error(reply) in {"InvalidArgument", "InvalidParams", "InvalidKey"}, reply
            assert named in reply["error"]["message"], (name, reply)


async def test_a_reply_and_a_result_are_kept_keep_result_s_and_no_longer(
    settings: Settings, pool: ArqRedis
) -> None:
    [job_id] = await enqueue_all(pool, settings, [job("put", make_key(unique(), "k"), b"x")])
    async with running_worker(settings):
        assert (await replies(pool, settings, [job_id]))[0] == {"ok": True, "value": 1}
    keep_ms = settings.keep_result_s * 1000
    for key in (QueueKeys(settings.queue_name).reply(job_id), job_keys(job_id).result):
        assert 0 < await pool.pttl(key) <= keep_ms, key


async def test_a_claim_its_own_finish_removed_is_not_called_a_lost_lease(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A renewal that meets a batch between its finish and its letting go of the jobs (here,
    forced: one renewal right after every finish) says nothing of lost leases."""
    renewals = 0
    report = BatchPath._report

    async def renew_then_report(path: BatchPath, *args: Any) -> None:
        nonlocal renewals
        await path.renew_leases()
        renewals += 1
        await report(path, *args)

    monkeypatch.setattr(BatchPath, "_report", renew_then_report)
    async with running_worker(settings), TaskStoreClient.connect(settings) as client:
        owner = unique()
        with caplog.at_level(logging.WARNING, logger="taskstore.jobs"):
            for i in range(5):
                assert await client.put(make_key(owner, f"k{i}"), b"x", coalesce=False) == 1
    assert renewals >= 5
    assert not [r for r in caplog.records if "lost the lease" in r.getMessage()]


async def test_a_backlog_of_deferred_jobs_is_not_looked_at_by_a_claim(
    settings: Settings, pool: ArqRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jobs due in an hour wait where they are: claims pass over them without reading them
    (only the script judges readiness; the worker just leaves out what cannot be due)."""
    later_ms = int(time.time() * 1000) + 3_600_000
    deferred = {f"later-{unique()}": later_ms + i for i in range(500)}
    await pool.zadd(settings.queue_name, deferred)
    looked_at: list[str] = []

    class Spied:
        """The claim script, noting the candidates each call is given."""

        async def run(self, redis: Any, keys: ClaimKeys, args: ClaimArgs) -> Any:
            looked_at.extend(c[1:] for c in args.candidates)
            return await CLAIM.run(redis, keys, args)

    monkeypatch.setattr(batch, "CLAIM", Spied())
    async with running_worker(settings), TaskStoreClient.connect(settings) as client:
        owner = unique()
        for i in range(3):
            assert await client.put(make_key(owner, f"k{i}"), b"x", coalesce=False) == 1
    assert looked_at  # the spy saw the claims
    assert not set(looked_at) & set(deferred)
    assert await pool.zcard(settings.queue_name) >= len(deferred)  # left where they were

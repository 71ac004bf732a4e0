"""TaskStore on every backend: lifecycle, limits, races, paging, expiry, replay."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from store import OpIdReused, make_key
from store.tasks import (
    ConcurrentModification,
    InvalidParams,
    InvalidTransition,
    NotReady,
    ResourceExhausted,
    SecurityConfig,
    StoreConfig,
    TaskNotFound,
    TaskStatus,
    TaskStore,
    VariableSizeExceeded,
)
from tests.harness import Harness, nested, unique
from tests.tasks.conftest import task_store

KIB = 1024


async def test_lifecycle_create_work_complete_and_fetch_the_result(tasks: TaskStore) -> None:
    owner = unique()
    task = await tasks.create(owner, "tools/call", ttl_ms=60_000)
    assert task.status == TaskStatus.WORKING
    assert task.task.ttl == 60_000
    assert task.expires_at_ms == task.task.created_at.timestamp() * 1000 + 60_000
    with pytest.raises(NotReady):
        await tasks.get_result(task.task_id, owner)
    await tasks.set_variables(task.task_id, owner, {"step": 1, "drop": True})
    await tasks.set_variables(task.task_id, owner, {"step": 2, "drop": None})
    done = await tasks.complete_with_result(task.task_id, owner, "completed", {"answer": 42})
    assert done.status == TaskStatus.COMPLETED
    assert done.variables == {"step": 2}
    assert await tasks.get_result(task.task_id, owner) == {"answer": 42}
    assert await tasks.get(task.task_id, owner) == done
    wire = done.to_wire()
    assert wire["taskId"] == task.task_id
    assert wire["status"] == "completed"
    assert "statusMessage" not in wire
    assert "_meta" not in wire


async def test_set_result_before_completion_is_kept(tasks: TaskStore) -> None:
    owner = unique()
    task = await tasks.create(owner, "tools/call")
    await tasks.set_result(task.task_id, owner, [1, 2, 3])
    with pytest.raises(NotReady):
        await tasks.get_result(task.task_id, owner)
    await tasks.update_status(task.task_id, owner, "failed", "boom")
    assert await tasks.get_result(task.task_id, owner) == [1, 2, 3]


async def test_cancelled_task_has_no_result(tasks: TaskStore) -> None:
    owner = unique()
    task = await tasks.create(owner, "tools/call")
    cancelled = await tasks.cancel(task.task_id, owner)
    assert cancelled.status == TaskStatus.CANCELLED
    with pytest.raises(NotReady) as err:
        await tasks.get_result(task.task_id, owner)
    assert err.value.data["status"] == "cancelled"


async def _refused_unchanged(
    tasks: TaskStore, owner: str, task_id: str, call: Awaitable[object]
) -> InvalidParams:
    """Await ``call``, expect it refused, and check the stored bytes did not change."""
    key = make_key(owner, task_id)
    before = await tasks.backend.get(key)
    with pytest.raises(InvalidParams) as err:
        await call
    assert await tasks.backend.get(key) == before
    return err.value


async def test_limits_hold_at_their_boundaries(harness: Harness) -> None:
    config = StoreConfig(max_variables_bytes=200 * KIB)
    tasks = task_store(harness, config)
    owner = unique()
    task_id = (await tasks.create(owner, "tools/call")).task_id

    await tasks.set_variables(task_id, owner, {"deep": nested(10)})
    err = await _refused_unchanged(
        tasks, owner, task_id, tasks.set_variables(task_id, owner, {"deeper": nested(11)})
    )
    assert isinstance(err, VariableSizeExceeded)
    assert (err.name, err.limit, err.actual) == ("deeper", 10, 11)

    await tasks.set_variables(task_id, owner, {"s": "x" * 64 * KIB})
    err = await _refused_unchanged(
        tasks, owner, task_id, tasks.set_variables(task_id, owner, {"t": "é" * (32 * KIB) + "x"})
    )
    assert isinstance(err, VariableSizeExceeded)
    assert (err.name, err.limit, err.actual) == ("t", 64 * KIB, 64 * KIB + 1)

    # Merged size: 64 KiB already stored, two more of 64 KiB fit, a third does not.
    await tasks.set_variables(task_id, owner, {"a": "x" * 64 * KIB, "b": "x" * 64 * KIB})
    err = await _refused_unchanged(
        tasks, owner, task_id, tasks.set_variables(task_id, owner, {"c": "x" * 64 * KIB})
    )
    assert isinstance(err, VariableSizeExceeded)
    assert err.limit == 200 * KIB
    # Deleting one makes room again: the limit applies after the merge.
    await tasks.set_variables(task_id, owner, {"a": None, "c": "x" * 64 * KIB})

    for bad in ({"n": float("nan")}, {"o": object()}, {"k": {1: 2}}, {"": 1}, ["not", "a", "map"]):
        await _refused_unchanged(tasks, owner, task_id, tasks.set_variables(task_id, owner, bad))  # type: ignore[arg-type]
    await _refused_unchanged(
        tasks, owner, task_id, tasks.complete_with_result(task_id, owner, "completed", nested(11))
    )


async def test_ttl_maximum_is_accepted_and_above_it_refused(tasks: TaskStore) -> None:
    owner = unique()
    top = tasks.config.max_ttl_ms
    assert top == 24 * 3600 * 1000
    assert (await tasks.create(owner, "m", ttl_ms=top)).task.ttl == top
    for bad in (top + 1, 0, -5, "60000", 1.5, True):
        with pytest.raises(InvalidParams):
            await tasks.create(owner, "m", ttl_ms=bad)  # type: ignore[arg-type]
    assert (await tasks.list(owner)).tasks[0].task.ttl == top
    assert len((await tasks.list(owner)).tasks) == 1


async def test_capacity_holds_under_fifty_concurrent_creates(harness: Harness) -> None:
    tasks = task_store(harness, security=SecurityConfig(max_tasks_per_owner=10))
    owner = unique()
    outcomes = await asyncio.gather(
        *(tasks.create(owner, "m") for _ in range(50)), return_exceptions=True
    )
    created = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, ResourceExhausted)]
    assert (len(created), len(refused)) == (10, 40)
    assert refused[0].code == -32603
    assert await tasks.backend.count(owner) == 10


async def test_complete_racing_cancel_has_exactly_one_winner(tasks: TaskStore) -> None:
    for _ in range(10):
        owner = unique()
        task_id = (await tasks.create(owner, "m")).task_id
        done, cancelled = await asyncio.gather(
            tasks.complete_with_result(task_id, owner, "completed", {"r": 1}),
            tasks.cancel(task_id, owner),
            return_exceptions=True,
        )
        losers = [o for o in (done, cancelled) if isinstance(o, InvalidTransition)]
        assert len(losers) == 1
        final = await tasks.get(task_id, owner)
        if isinstance(cancelled, InvalidTransition):
            assert final.status == TaskStatus.COMPLETED
            assert final.result == {"r": 1}
        else:
            assert final.status == TaskStatus.CANCELLED
            assert final.result is None


async def test_contention_beyond_the_retry_bound_is_concurrent_modification(
    server: Harness,
) -> None:
    # On a server, reads and writes of concurrent calls interleave.
    tasks = task_store(server, StoreConfig(max_retries=0))
    owner = unique()
    task_id = (await tasks.create(owner, "m")).task_id
    outcomes = await asyncio.gather(
        *(tasks.set_variables(task_id, owner, {f"v{i}": i}) for i in range(20)),
        return_exceptions=True,
    )
    applied = {i for i, o in enumerate(outcomes) if not isinstance(o, BaseException)}
    failed = [o for o in outcomes if isinstance(o, ConcurrentModification)]
    assert len(applied) + len(failed) == 20
    assert failed
    assert set((await tasks.get(task_id, owner)).variables) == {f"v{i}" for i in applied}


async def test_pages_of_37_walk_a_thousand_tasks_once_newest_first(harness: Harness) -> None:
    tasks = task_store(harness, security=SecurityConfig(max_tasks_per_owner=5000))
    owner = unique()
    created = []
    for chunk in range(10):
        created += await asyncio.gather(*(tasks.create(owner, f"m{chunk}") for _ in range(100)))
    expected = {t.task_id for t in created}

    async def keep_creating() -> None:
        for _ in range(40):
            await tasks.create(owner, "late")

    seen: list[str] = []
    stamps = []
    cursor: str | None = None
    creator = asyncio.create_task(keep_creating())
    while True:
        page = await tasks.list(owner, cursor, limit=37)
        assert len(page.tasks) <= 37
        seen += [t.task_id for t in page.tasks]
        stamps += [t.task.created_at for t in page.tasks]
        cursor = page.next_cursor
        if cursor is None:
            break
    await creator
    assert len(seen) == len(set(seen))
    assert expected <= set(seen)
    assert stamps == sorted(stamps, reverse=True)


async def test_expired_task_is_gone_from_every_method(harness: Harness) -> None:
    tasks = task_store(harness)
    owner = unique()
    task_id = (await tasks.create(owner, "m", ttl_ms=300)).task_id
    other = (await tasks.create(owner, "m")).task_id
    await harness.advance(600)
    for call in (
        tasks.get(task_id, owner),
        tasks.get_result(task_id, owner),
        tasks.update_status(task_id, owner, "completed"),
        tasks.set_variables(task_id, owner, {"a": 1}),
        tasks.set_result(task_id, owner, 1),
        tasks.complete_with_result(task_id, owner, "completed", 1),
        tasks.cancel(task_id, owner),
    ):
        with pytest.raises(TaskNotFound):
            await call
    assert [t.task_id for t in (await tasks.list(owner)).tasks] == [other]
    assert await tasks.cleanup_expired() >= 1
    assert await tasks.backend.count(owner) == 1


async def test_op_id_applies_a_mutation_once(tasks: TaskStore) -> None:
    owner = unique()
    first = await tasks.create(owner, "m", op_id="create-1")
    again = await tasks.create(owner, "m", op_id="create-1")
    assert again == first
    assert await tasks.backend.count(owner) == 1
    key = make_key(owner, first.task_id)

    done = await tasks.complete_with_result(first.task_id, owner, "completed", 1, op_id="done")
    # A re-run after the task became terminal returns the record, not an error.
    rerun = await tasks.complete_with_result(first.task_id, owner, "completed", 1, op_id="done")
    assert rerun == done
    assert (await tasks.backend.get(key)).version == 2


async def test_set_variables_rerun_does_not_undo_a_later_write(tasks: TaskStore) -> None:
    owner = unique()
    task_id = (await tasks.create(owner, "m")).task_id
    await tasks.set_variables(task_id, owner, {"x": 1}, op_id="first")
    await tasks.set_variables(task_id, owner, {"x": 2})
    await tasks.set_variables(task_id, owner, {"x": 1}, op_id="first")
    assert (await tasks.get(task_id, owner)).variables == {"x": 2}


@pytest.mark.parametrize("owner", ["", "local"])
async def test_anonymous_owners_are_refused_unless_allowed(harness: Harness, owner: str) -> None:
    with pytest.raises(InvalidParams):
        await task_store(harness).create(owner, "m")
    anonymous = task_store(harness, security=SecurityConfig(allow_anonymous=True))
    task = await anonymous.create(owner, "m")
    assert task.owner_id == "local"
    await anonymous.cancel(task.task_id, owner)


@pytest.mark.parametrize("task_id", ["", "a:b", "{x}", "\n", "x" * 300, 5])
async def test_malformed_task_ids_are_not_found(tasks: TaskStore, task_id: str) -> None:
    with pytest.raises(TaskNotFound):
        await tasks.get(task_id, unique())
    with pytest.raises(TaskNotFound):
        await tasks.cancel(task_id, unique())


async def test_bad_status_and_request_method_are_refused(tasks: TaskStore) -> None:
    owner = unique()
    task_id = (await tasks.create(owner, "m")).task_id
    for status in ("done", "", None, 3):
        with pytest.raises(InvalidParams):
            await tasks.update_status(task_id, owner, status)  # type: ignore[arg-type]
    with pytest.raises(InvalidParams):
        await tasks.complete_with_result(task_id, owner, "working", 1)
    for method in ("", None, "m" * 300):
        with pytest.raises(InvalidParams):
            await tasks.create(owner, method)  # type: ignore[arg-type]


async def test_raw_data_under_a_task_key_is_no_task(tasks: TaskStore) -> None:
    owner = unique()
    key = make_key(owner, "raw")
    await tasks.backend.put(key, b"not a task record")
    for call in (
        tasks.get("raw", owner),
        tasks.set_variables("raw", owner, {"a": 1}),
        tasks.cancel("raw", owner),
    ):
        with pytest.raises(TaskNotFound):
            await call
    assert (await tasks.list(owner)).tasks == []
    assert (await tasks.backend.get(key)).data == b"not a task record"


async def test_a_record_whose_stored_owner_is_another_is_no_task_of_the_key_s_owner(
    tasks: TaskStore,
) -> None:
    alice, bob = unique("alice"), unique("bob")
    theirs = await tasks.create(bob, "tools/call")
    # Bob's record copied under Alice's key: the key says Alice, the record says Bob.
    await tasks.backend.put(make_key(alice, theirs.task_id), theirs.to_bytes())
    with pytest.raises(TaskNotFound):
        await tasks.get(theirs.task_id, alice)
    for change in (
        tasks.cancel(theirs.task_id, alice),
        tasks.set_variables(theirs.task_id, alice, {"x": 1}),
        tasks.complete_with_result(theirs.task_id, alice, "completed", {"r": 1}),
    ):
        with pytest.raises(TaskNotFound):
            await change
    assert (await tasks.list(alice)).tasks == []
    assert (await tasks.get(theirs.task_id, bob)).status is TaskStatus.WORKING


async def test_an_op_id_names_one_operation(tasks: TaskStore) -> None:
    owner = unique()
    assert await tasks.backend.put(make_key(owner, "raw"), b"x", op_id="op-1") == 1
    with pytest.raises(OpIdReused) as err:
        await tasks.create(owner, "tools/call", op_id="op-1")
    assert (err.value.first, err.value.attempted) == ("put", "create_task")
    task = await tasks.create(owner, "tools/call", op_id="op-2")
    assert (await tasks.create(owner, "tools/call", op_id="op-2")).task_id == task.task_id
    with pytest.raises(OpIdReused) as err:
        await tasks.cancel(task.task_id, owner, op_id="op-2")
    assert (err.value.first, err.value.attempted) == ("create_task", "cancel_task")
    assert (await tasks.get(task.task_id, owner)).status is TaskStatus.WORKING
    assert (await tasks.list(owner)).tasks == [await tasks.get(task.task_id, owner)]

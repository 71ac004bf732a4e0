"""The status state machine, pair by pair, on every backend."""

from __future__ import annotations

import itertools

import pytest

from store.tasks import InvalidTransition, TaskStatus, TaskStore, can_transition
from tests.harness import unique

W, IR, C, F, X = (
    TaskStatus.WORKING,
    TaskStatus.INPUT_REQUIRED,
    TaskStatus.COMPLETED,
    TaskStatus.FAILED,
    TaskStatus.CANCELLED,
)
ALLOWED = {(W, IR), (W, C), (W, F), (W, X), (IR, W), (IR, C), (IR, F), (IR, X)}
PAIRS = list(itertools.product(TaskStatus, repeat=2))
TERMINAL = [C, F, X]


def test_the_table_has_exactly_the_allowed_pairs() -> None:
    assert len(PAIRS) == 25
    assert {pair for pair in PAIRS if can_transition(*pair)} == ALLOWED


async def _task_in(tasks: TaskStore, owner: str, status: TaskStatus) -> str:
    task = await tasks.create(owner, "tools/call")
    if status == IR:
        await tasks.update_status(task.task_id, owner, IR)
    elif status != W:
        await tasks.update_status(task.task_id, owner, status)
    return task.task_id


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
async def test_each_pair_moves_only_if_allowed(
    tasks: TaskStore, source: TaskStatus, target: TaskStatus
) -> None:
    owner = unique()
    task_id = await _task_in(tasks, owner, source)
    before = await tasks.backend.get(f"{owner}:{task_id}")
    if (source, target) in ALLOWED:
        moved = await tasks.update_status(task_id, owner, target, "why")
        assert moved.status == target
        assert moved.task.status_message == "why"
        assert (await tasks.get(task_id, owner)) == moved
    else:
        with pytest.raises(InvalidTransition) as err:
            await tasks.update_status(task_id, owner, target)
        assert (err.value.source, err.value.target) == (source.value, target.value)
        assert err.value.action
        assert err.value.code == -32602
        assert await tasks.backend.get(f"{owner}:{task_id}") == before


@pytest.mark.parametrize("status", TERMINAL)
async def test_terminal_tasks_are_immutable_through_every_mutation(
    tasks: TaskStore, status: TaskStatus
) -> None:
    owner = unique()
    task_id = await _task_in(tasks, owner, status)
    before = await tasks.backend.get(f"{owner}:{task_id}")
    for attempt in (
        tasks.update_status(task_id, owner, W),
        tasks.set_variables(task_id, owner, {"a": 1}),
        tasks.set_result(task_id, owner, {"r": 1}),
        tasks.complete_with_result(task_id, owner, C, {"r": 1}),
        tasks.cancel(task_id, owner),
    ):
        with pytest.raises(InvalidTransition):
            await attempt
    assert await tasks.backend.get(f"{owner}:{task_id}") == before

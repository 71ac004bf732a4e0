"""Owner isolation end to end: through the client and the worker, B never reaches A's data."""

from __future__ import annotations

import unicodedata
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import InvalidKey, NotFound, VersionConflict, make_key
from store.tasks import InvalidParams, TaskNotFound
from tests.harness import unique
from tests.worker.conftest import isolated_settings, served_client
from worker.producer.client import TaskStoreClient

NEAR_MISSES: list[Callable[[str], str]] = [
    str.upper,
    str.swapcase,
    lambda s: unicodedata.normalize("NFD", s),
    lambda s: s + " ",
    lambda s: s[:-1],
    lambda s: s + "x",
]

Op = Callable[[TaskStoreClient, str, str], Any]
OPS: list[Op] = [
    lambda c, b, t: c.get_task(t, b),
    lambda c, b, t: c.get_result(t, b),
    lambda c, b, t: c.update_status(t, b, "completed"),
    lambda c, b, t: c.set_variables(t, b, {"stolen": True}),
    lambda c, b, t: c.set_result(t, b, "forged"),
    lambda c, b, t: c.complete_with_result(t, b, "failed", "forged"),
    lambda c, b, t: c.cancel_task(t, b),
    lambda c, b, t: c.get(make_key(b, t)),
    lambda c, b, t: c.put_if_version(make_key(b, t), b"forged", 1),
    lambda c, b, t: c.delete(make_key(b, t)),
]
REFUSALS = (TaskNotFound, InvalidParams, NotFound, VersionConflict, InvalidKey)


@pytest.fixture
async def iso_client(redis_url: str) -> AsyncIterator[TaskStoreClient]:
    async with served_client(isolated_settings(redis_url, "iso")) as client:
        yield client


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    suffix=st.text(
        alphabet=st.characters(exclude_categories=("Cc", "Cs"), exclude_characters=":{}"),
        min_size=1,
        max_size=12,
    ),
    near=st.sampled_from(NEAR_MISSES),
    ops=st.lists(st.sampled_from(range(len(OPS))), min_size=1, max_size=6),
)
async def test_no_sequence_of_another_owners_calls_reaches_a_task(
    iso_client: TaskStoreClient, suffix: str, near: Callable[[str], str], ops: list[int]
) -> None:
    owner_a = unique("A") + suffix
    owner_b = near(owner_a)
    if owner_b == owner_a:
        return
    task = await iso_client.create_task(owner_a, "tools/call")
    await iso_client.set_variables(task.task_id, owner_a, {"secret": 1})
    key_a = make_key(owner_a, task.task_id)
    before = await iso_client.get(key_a)
    refusals: list[Exception] = []
    for index in ops:
        try:
            outcome = await OPS[index](iso_client, owner_b, task.task_id)
        except REFUSALS as exc:
            refusals.append(exc)
        else:
            assert outcome is False  # only delete answers without an error: "nothing there"
    assert all(getattr(exc, "actual", 0) == 0 for exc in refusals)
    for listing in (iso_client.list_tasks(owner_b), iso_client.count(owner_b)):
        try:
            seen = await listing
        except REFUSALS:
            continue
        assert seen in (0,) or getattr(seen, "tasks", None) == []
    assert await iso_client.get(key_a) == before
    assert (await iso_client.get_task(task.task_id, owner_a)).variables == {"secret": 1}

"""Property tests of the domain: owner isolation and canonical serialization."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import make_key
from store.tasks import InvalidParams, TaskNotFound, TaskRecord
from store.tasks.record import Task
from tests.harness import Harness, unique
from tests.tasks.conftest import task_store

owner_suffixes = st.text(
    alphabet=st.one_of(
        st.sampled_from("*?[]\\ ._-\u200b\uff5b\uff5d\u00e9e\u0301AaÅå"),
        st.characters(exclude_categories=("Cc", "Cs"), exclude_characters=":{}"),
    ),
    min_size=1,
    max_size=20,
)
NEAR_MISSES: list[Callable[[str], str]] = [
    str.upper,
    str.lower,
    str.swapcase,
    lambda s: unicodedata.normalize("NFD", s),
    lambda s: unicodedata.normalize("NFC", s),
    lambda s: s + " ",
    lambda s: s[:-1],
    lambda s: s + "x",
]


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(suffix=owner_suffixes, near=st.sampled_from(NEAR_MISSES))
async def test_another_owner_can_neither_see_nor_touch_a_task(
    harness: Harness, suffix: str, near: Callable[[str], str]
) -> None:
    tasks = task_store(harness)
    owner_a = unique("A") + suffix
    owner_b = near(owner_a)
    if owner_b == owner_a:
        return
    task = await tasks.create(owner_a, "tools/call")
    key = make_key(owner_a, task.task_id)
    before = await tasks.backend.get(key)
    for attempt in (
        tasks.get(task.task_id, owner_b),
        tasks.get_result(task.task_id, owner_b),
        tasks.update_status(task.task_id, owner_b, "completed"),
        tasks.set_variables(task.task_id, owner_b, {"x": 1}),
        tasks.set_result(task.task_id, owner_b, 1),
        tasks.complete_with_result(task.task_id, owner_b, "completed", 1),
        tasks.cancel(task.task_id, owner_b),
    ):
        # Not found, never "forbidden": B learns nothing about A's task.
        with pytest.raises((TaskNotFound, InvalidParams)) as err:
            await attempt
        assert not isinstance(err.value, TaskNotFound) or err.value.data == {"taskId": task.task_id}
    try:
        page = await tasks.list(owner_b)
    except InvalidParams:
        pass
    else:
        assert page.tasks == []
    assert await tasks.backend.get(key) == before


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(
    variables=st.dictionaries(st.text(min_size=1), json_values, max_size=5),
    result=json_values,
    message=st.none() | st.text(),
    created=instants,
    ttl=st.none() | st.integers(1, 10**9),
)
def test_records_serialize_canonically_and_round_trip(
    variables: dict[str, object],
    result: object,
    message: str | None,
    created: datetime,
    ttl: int | None,
) -> None:
    record = TaskRecord(
        task=Task(
            task_id="t",
            status="working",
            status_message=message,
            created_at=created,
            last_updated_at=created,
            ttl=ttl,
            poll_interval=500,
        ),
        owner_id="o",
        request_method="tools/call",
        variables=variables,
        result=result,
        expires_at=created,
    )
    data = record.to_bytes()
    again = TaskRecord.from_bytes(data)
    assert again == record
    assert again.to_bytes() == data
    reordered = record.model_copy(update={"variables": dict(reversed(list(variables.items())))})
    assert reordered.to_bytes() == data
    wire = record.to_wire(include_variables=True)
    assert wire["createdAt"].endswith("Z")
    assert len(wire["createdAt"]) == len("2025-11-25T10:00:00.000Z")
    assert ("statusMessage" in wire) == (message is not None)
    assert wire["ttl"] == ttl
    assert wire["_meta"] == {"variables": variables}


def test_task_errors_carry_jsonrpc_codes() -> None:
    from store.tasks import (
        ConcurrentModification,
        NotReady,
        ResourceExhausted,
        StoreError,
        TaskExpired,
        VariableSizeExceeded,
    )

    assert TaskNotFound("t").to_jsonrpc()["code"] == -32602
    assert TaskExpired("t").code == NotReady("t", "working").code == -32602
    assert VariableSizeExceeded("m", name="v", limit=1, actual=2).data == {
        "variable": "v",
        "limit": 1,
        "actual": 2,
    }
    assert ConcurrentModification("t", 6).code == -32603
    assert ResourceExhausted("o", 1).code == StoreError("x").code == -32603

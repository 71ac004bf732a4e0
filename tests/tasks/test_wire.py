"""Both wire forms of a task, and the domain behind the later one: errors and input requests."""

from __future__ import annotations

import pytest

from store.tasks import (
    InvalidParams,
    InvalidTransition,
    TaskRecord,
    TaskStore,
    wire_2026,
)
from tests.harness import unique

ELICIT = {
    "method": "elicitation/create",
    "params": {
        "mode": "form",
        "message": "Your name?",
        "requestedSchema": {"type": "object", "properties": {"name": {"type": "string"}}},
    },
}
TASK_FIELDS = {"taskId", "status", "createdAt", "lastUpdatedAt", "ttlMs", "pollIntervalMs"}
PAYLOADS = {"result", "error", "inputRequests"}


def payload(wire: dict[str, object]) -> set[str]:
    return PAYLOADS & set(wire)


async def test_a_tool_call_answered_as_a_task(tasks: TaskStore) -> None:
    task = await tasks.create(unique(), "tools/call", ttl_ms=60_000)
    handle = wire_2026.created(task)
    assert handle["resultType"] == "task"
    assert set(handle) == TASK_FIELDS | {"resultType"}
    assert handle["ttlMs"] == 60_000
    assert handle["pollIntervalMs"] == task.task.poll_interval
    assert handle["createdAt"] == task.to_wire()["createdAt"]


async def test_each_status_inlines_exactly_its_payload(tasks: TaskStore) -> None:
    owner = unique()
    working = await tasks.create(owner, "tools/call")
    assert payload(wire_2026.detailed(working)) == set()

    waiting = await tasks.request_input(working.task_id, owner, [ELICIT], "needs a name")
    shown = wire_2026.detailed(waiting)
    assert shown["resultType"] == "complete"
    assert shown["statusMessage"] == "needs a name"
    assert payload(shown) == {"inputRequests"}
    assert list(shown["inputRequests"].values()) == [ELICIT]

    done = await tasks.complete_with_result(
        working.task_id, owner, "completed", {"content": [], "isError": False}
    )
    shown = wire_2026.detailed(done)
    assert payload(shown) == {"result"}
    assert shown["result"] == {"content": [], "isError": False}
    assert shown["lastUpdatedAt"] == done.to_wire()["lastUpdatedAt"]
    assert "_meta" not in shown

    failed = await tasks.create(owner, "tools/call")
    error = {"code": -32603, "message": "the tool raised", "data": {"type": "RuntimeError"}}
    failed = await tasks.fail(failed.task_id, owner, error, "it broke")
    assert payload(wire_2026.detailed(failed)) == {"error"}
    assert wire_2026.detailed(failed)["error"] == error

    cancelled = await tasks.cancel((await tasks.create(owner, "tools/call")).task_id, owner)
    assert payload(wire_2026.detailed(cancelled)) == set()


async def test_the_earlier_wire_keeps_its_shape(tasks: TaskStore) -> None:
    owner = unique()
    task = await tasks.create(owner, "tools/call", ttl_ms=60_000)
    task = await tasks.set_variables(task.task_id, owner, {"progress": 0.5})
    shown = task.to_wire(include_variables=True)
    assert {"ttl", "pollInterval", "_meta"} <= set(shown)
    assert not {"ttlMs", "pollIntervalMs", "resultType"} & set(shown)


async def test_answers_are_kept_partially_once_and_only_for_outstanding_keys(
    tasks: TaskStore,
) -> None:
    owner = unique()
    task = await tasks.create(owner, "tools/call")
    waiting = await tasks.request_input(task.task_id, owner, [ELICIT, ELICIT])
    first, second = waiting.input_requests
    assert first != second

    answer = {"action": "accept", "content": {"name": "Ada"}}
    partial = await tasks.respond(task.task_id, owner, {first: answer, "never-issued": answer})
    assert partial.input_responses == {first: answer}
    assert list(wire_2026.outstanding(partial)) == [second]
    assert partial.status.value == "input_required"

    # The same answer again, or another answer to an answered key: nothing is written.
    again = await tasks.respond(task.task_id, owner, {first: {"action": "decline"}})
    assert again == partial
    assert await tasks.get(task.task_id, owner) == partial

    answered = await tasks.respond(task.task_id, owner, {second: answer})
    assert answered.input_responses == {first: answer, second: answer}
    assert wire_2026.outstanding(answered) == {}

    # Resuming settles the requests; later answers to them are ignored.
    resumed = await tasks.update_status(task.task_id, owner, "working")
    assert (resumed.input_requests, resumed.input_responses) == ({}, {})
    assert await tasks.respond(task.task_id, owner, {first: answer}) == resumed

    # Keys are never reused within a task.
    again_waiting = await tasks.request_input(task.task_id, owner, [ELICIT])
    assert not set(again_waiting.input_requests) & {first, second}


async def test_bad_errors_and_requests_are_refused_and_change_nothing(tasks: TaskStore) -> None:
    owner = unique()
    task = await tasks.create(owner, "tools/call")
    for error in ({"message": "no code"}, {"code": "1", "message": "x"}, {"code": 1, "extra": 1}):
        with pytest.raises(InvalidParams):
            await tasks.fail(task.task_id, owner, error)
    for requests in ([], "not a list", [float("nan")]):
        with pytest.raises(InvalidParams):
            await tasks.request_input(task.task_id, owner, requests)  # type: ignore[arg-type]
    with pytest.raises(InvalidParams):
        await tasks.respond(task.task_id, owner, ["not", "an", "object"])  # type: ignore[arg-type]
    assert await tasks.get(task.task_id, owner) == task
    done = await tasks.complete_with_result(task.task_id, owner, "completed", {"content": []})
    with pytest.raises(InvalidTransition):
        await tasks.request_input(task.task_id, owner, [ELICIT])
    assert await tasks.get(task.task_id, owner) == done


def test_a_record_without_the_new_fields_reads_and_writes_back_the_same() -> None:
    old = (
        b'{"expiresAt":null,"ownerId":"o","requestMethod":"tools/call","result":null,'
        b'"task":{"createdAt":"2026-01-01T00:00:00.000Z","lastUpdatedAt":"2026-01-01T00:00:00.000Z",'
        b'"pollInterval":500,"status":"working","taskId":"t","ttl":null},"variables":{}}'
    )
    assert TaskRecord.from_bytes(old).to_bytes() == old

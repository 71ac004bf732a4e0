"""Tasks of protocol 2025-11-25 (SEP-1686) beside the 2026-07-28 extension, from one store.

The SDK's own client negotiates 2025-11-25 (``mode="legacy"``) but validates a
``tools/call`` answer as a ``CallToolResult``, so it cannot take a
``CreateTaskResult``: these tests send their task requests raw, on the
client's JSON-RPC dispatcher. ``test_typescript_client.py`` runs a client
that speaks these tasks natively.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, ElicitRequestParams, ElicitResult, TextContent

from store import InMemoryBackend
from store.tasks import TaskStore
from tests.harness import until
from tests.mcp.poller import MODERN, Poller, get_task, start_task
from worker.mcp_tasks import TaskStoreTasks, elicit
from worker.mcp_tasks.owner import ANONYMOUS

RELATED = "io.modelcontextprotocol/related-task"


def build_server(store: TaskStore) -> MCPServer:
    tasks = TaskStoreTasks(store, allow_anonymous=True)
    server = MCPServer("taskstore-2025", extensions=[tasks], middleware=[tasks.middleware])

    @server.tool()
    @tasks.task()
    async def sleep_then_echo(text: str, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return text

    @server.tool()
    @tasks.task(mode="required")
    async def only_as_task(text: str) -> str:
        return text

    @server.tool()
    async def never_a_task(text: str) -> str:
        return text

    @server.tool()
    @tasks.task()
    async def ask_name() -> str:
        answer = await elicit("Your name?", {"type": "object", "properties": {"name": {}}})
        return f"hello {answer['name']}"

    @server.tool()
    @tasks.task()
    async def reports_an_error() -> CallToolResult:
        return CallToolResult(content=[TextContent(type="text", text="bad input")], is_error=True)

    return server


@pytest.fixture
def store() -> TaskStore:
    return TaskStore(InMemoryBackend())


async def answer_name(context: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
    assert params.meta is not None
    assert RELATED in params.model_dump(by_alias=True)["_meta"]
    return ElicitResult(action="accept", content={"name": "Ada"})


def legacy(server: MCPServer) -> Client:
    return Client(server, mode="legacy", elicitation_callback=answer_name)


async def send(c: Client, method: str, params: dict[str, Any] | None = None) -> Any:
    """One request, raw, as a client of SEP-1686 sends it."""
    return await c.session._dispatcher.send_raw_request(method, params, None)


async def create(c: Client, tool: str, arguments: dict[str, Any], ttl: int = 60_000) -> str:
    answer = await send(
        c, "tools/call", {"name": tool, "arguments": arguments, "task": {"ttl": ttl}}
    )
    assert set(answer) == {"task"}
    assert answer["task"]["status"] == "working"
    assert answer["task"]["ttl"] == ttl
    return str(answer["task"]["taskId"])


async def code_of(call: Any) -> int:
    with pytest.raises(MCPError) as err:
        await call
    return err.value.error.code


async def test_the_tasks_capability_and_each_tool_s_task_support(store: TaskStore) -> None:
    async with legacy(build_server(store)) as c:
        assert c.session.protocol_version == "2025-11-25"
        capabilities = c.server_capabilities
        assert capabilities is not None
        assert capabilities.tasks is not None
        dumped = capabilities.tasks.model_dump(by_alias=True, exclude_none=True)
        assert dumped == {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
        tools = {t.name: t.execution for t in (await c.list_tools()).tools}
        support = {name: e.task_support if e else None for name, e in tools.items()}
        assert support == {
            "sleep_then_echo": "optional",
            "only_as_task": "required",
            "never_a_task": "forbidden",
            "ask_name": "optional",
            "reports_an_error": "optional",
        }
    # A client of 2026-07-28 sees neither.
    async with Client(build_server(store), mode=MODERN) as c:
        assert c.server_capabilities is None or c.server_capabilities.tasks is None


async def test_a_task_augmented_call_runs_to_its_result(store: TaskStore) -> None:
    async with legacy(build_server(store)) as c:
        task_id = await create(c, "sleep_then_echo", {"text": "later", "seconds": 0.2})
        assert (await send(c, "tasks/get", {"taskId": task_id}))["status"] == "working"
        result = await send(c, "tasks/result", {"taskId": task_id})  # blocks until it ends
        assert result["content"][0]["text"] == "later"
        assert result["_meta"][RELATED] == {"taskId": task_id}
        state = await send(c, "tasks/get", {"taskId": task_id})
        assert state["status"] == "completed"
        assert {"taskId", "status", "createdAt", "lastUpdatedAt", "ttl", "pollInterval"} <= set(
            state
        )
        # A plain call of an optional tool runs inline, as before.
        plain = await c.call_tool("sleep_then_echo", {"text": "now", "seconds": 0})
        assert plain.content[0].model_dump()["text"] == "now"


async def test_task_support_is_enforced_both_ways(store: TaskStore) -> None:
    async with legacy(build_server(store)) as c:
        assert await code_of(c.call_tool("only_as_task", {"text": "x"})) == -32601
        plain = {"name": "never_a_task", "arguments": {"text": "x"}, "task": {}}
        assert await code_of(send(c, "tools/call", plain)) == -32601
        task_id = await create(c, "only_as_task", {"text": "as a task"})
        result = await send(c, "tasks/result", {"taskId": task_id})
        assert result["content"][0]["text"] == "as a task"


async def test_input_is_asked_for_on_tasks_result(store: TaskStore) -> None:
    async with legacy(build_server(store)) as c:
        task_id = await create(c, "ask_name", {})

        async def waiting() -> bool:
            state = await send(c, "tasks/get", {"taskId": task_id})
            return bool(state["status"] == "input_required")

        await until(waiting)
        result = await send(c, "tasks/result", {"taskId": task_id})
        assert result["content"][0]["text"] == "hello Ada"


async def test_a_tool_error_is_a_failed_task_whose_result_is_the_error(store: TaskStore) -> None:
    server = build_server(store)
    async with legacy(server) as c, Client(server, mode=MODERN, extensions=[Poller()]) as m:
        task_id = await create(c, "reports_an_error", {})
        result = await send(c, "tasks/result", {"taskId": task_id})
        assert result["isError"] is True
        assert (await send(c, "tasks/get", {"taskId": task_id}))["status"] == "failed"
        # SEP-2663 names the same record completed, its result carrying isError.
        assert (await get_task(m.session, task_id))["status"] == "completed"


async def test_cancel_list_and_the_errors_of_sep_1686(store: TaskStore) -> None:
    async with legacy(build_server(store)) as c:
        task_id = await create(c, "sleep_then_echo", {"text": "never", "seconds": 60})
        cancelled = await send(c, "tasks/cancel", {"taskId": task_id})
        assert (cancelled["taskId"], cancelled["status"]) == (task_id, "cancelled")
        assert await code_of(send(c, "tasks/cancel", {"taskId": task_id})) == -32602
        assert await code_of(send(c, "tasks/result", {"taskId": task_id})) == -32603
        foreign = await store.create("someone-else", "tools/call")
        for method in ("tasks/get", "tasks/result", "tasks/cancel"):
            for unknown in ("no-such-task", foreign.task_id, "bad:id"):
                assert await code_of(send(c, method, {"taskId": unknown})) == -32602
        assert await code_of(send(c, "tasks/list", {"cursor": "not a cursor"})) == -32602
        # tasks/update belongs to 2026-07-28 only.
        update = {"taskId": task_id, "inputResponses": {}}
        assert await code_of(send(c, "tasks/update", update)) == -32601


async def test_without_anonymous_callers_every_task_method_refuses_one(store: TaskStore) -> None:
    """As on the 2026 surface: no token, no task; not even the tasks anonymous callers made
    when the server still allowed them."""
    tasks = TaskStoreTasks(store)  # no anonymous callers
    server = MCPServer("taskstore-2025-auth", extensions=[tasks], middleware=[tasks.middleware])

    @server.tool()
    @tasks.task()
    async def echo(text: str) -> str:
        return text

    earlier = await store.create(ANONYMOUS, "tools/call")
    async with legacy(server) as c:
        calls = [
            send(c, "tools/call", {"name": "echo", "arguments": {"text": "x"}, "task": {}}),
            send(c, "tasks/get", {"taskId": earlier.task_id}),
            send(c, "tasks/result", {"taskId": earlier.task_id}),
            send(c, "tasks/cancel", {"taskId": earlier.task_id}),
            send(c, "tasks/list"),
        ]
        for call in calls:
            with pytest.raises(MCPError) as err:
                await call
            assert (err.value.error.code, err.value.error.message) == (
                -32602,
                "tasks need an authenticated caller",
            )
    assert (await store.get(earlier.task_id, ANONYMOUS)).status.value == "working"


async def test_tasks_list_pages_the_caller_s_tasks(store: TaskStore) -> None:
    made = {(await store.create("anonymous", "tools/call")).task_id for _ in range(55)}
    await store.create("someone-else", "tools/call")
    async with legacy(build_server(store)) as c:
        first = await send(c, "tasks/list")
        second = await send(c, "tasks/list", {"cursor": first["nextCursor"]})
    assert (len(first["tasks"]), len(second["tasks"])) == (50, 5)
    assert "nextCursor" not in second
    assert {t["taskId"] for t in first["tasks"] + second["tasks"]} == made


async def test_a_task_reads_through_either_generation(store: TaskStore) -> None:
    server = build_server(store)
    async with (
        legacy(server) as old,
        Client(server, mode=MODERN, extensions=[Poller(wait=False)]) as new,
    ):
        made_old = await create(old, "sleep_then_echo", {"text": "from 2025", "seconds": 0.1})
        made_new = await start_task(new, "sleep_then_echo", {"text": "from 2026", "seconds": 0.1})

        async def both_done() -> bool:
            states = [await get_task(new.session, t) for t in (made_old, made_new)]
            return all(s["status"] == "completed" for s in states)

        await until(both_done)
        seen_new = await get_task(new.session, made_old)
        assert seen_new["result"]["content"][0]["text"] == "from 2025"
        seen_old = await send(old, "tasks/get", {"taskId": made_new})
        assert seen_old["status"] == "completed"
        # One record, two shapes: ttl and pollInterval are ttlMs and pollIntervalMs.
        same = await get_task(new.session, made_new)
        assert (seen_old["ttl"], seen_old["pollInterval"]) == (
            same["ttlMs"],
            same["pollIntervalMs"],
        )
        assert seen_old["createdAt"] == same["createdAt"]
        result = await send(old, "tasks/result", {"taskId": made_new})
        assert result["content"][0]["text"] == "from 2026"

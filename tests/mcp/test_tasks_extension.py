"""MCP servers keep their tasks in taskstore: the official ``mcp.Client`` and ``TaskStoreTasks``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from mcp import Client
from mcp.client.extension import ClientExtension
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from store import InMemoryBackend
from store.redis import RedisBackend
from store.tasks import TaskStore
from tests.harness import drop_keys, unique, until
from tests.mcp.poller import (
    MODERN,
    Poller,
    acknowledged,
    cancel_task,
    get_task,
    start_task,
    text,
    update_task,
)
from worker.mcp_tasks import InputDeclined, TaskStoreTasks, elicit


def build_server(store: TaskStore) -> tuple[MCPServer, TaskStoreTasks]:
    tasks = TaskStoreTasks(store, allow_anonymous=True)
    server = MCPServer("taskstore-test", extensions=[tasks])

    @server.tool()
    @tasks.task()
    async def sleep_then_echo(text: str, seconds: float) -> str:
        await asyncio.sleep(seconds)
        return text

    @server.tool()
    @tasks.task()
    async def ask_name() -> str:
        try:
            answer = await elicit("Your name?", {"type": "object", "properties": {"name": {}}})
        except InputDeclined:
            return "no name"
        return f"hello {answer['name']}"

    @server.tool()
    @tasks.task()
    async def always_fails() -> str:
        raise MCPError(-32603, "always fails")

    @server.tool()
    @tasks.task(mode="required")
    async def only_as_task(text: str) -> str:
        return text

    return server, tasks


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[TaskStore]:
    if request.param == "memory":
        yield TaskStore(InMemoryBackend())
        return
    backend = await RedisBackend.from_url(
        request.getfixturevalue("redis_url"), prefix=unique("mcp")
    )
    try:
        yield TaskStore(backend)
    finally:
        await drop_keys(backend)
        await backend.aclose()


def client(server: MCPServer, extension: ClientExtension | None = None) -> Client:
    return Client(server, mode=MODERN, extensions=[extension] if extension else None)


async def test_a_tool_call_becomes_a_task_polled_to_its_result(store: TaskStore) -> None:
    server, _ = build_server(store)
    poller = Poller()
    async with client(server, poller) as c:
        result = await c.call_tool("sleep_then_echo", {"text": "hi", "seconds": 0.2})
    assert text(result) == "hi"
    [handle] = poller.handles
    assert handle.status == "working"
    assert poller.seen[0]["status"] == "working"
    last = poller.seen[-1]
    assert last["status"] == "completed"
    assert last["resultType"] == "complete"
    assert {"result", "error", "inputRequests"} & set(last) == {"result"}
    assert "variables" not in str(last.get("_meta", {}))


async def test_a_json_rpc_error_ends_the_task_failed_with_that_error(store: TaskStore) -> None:
    server, _ = build_server(store)
    poller = Poller()
    async with client(server, poller) as c:
        result = await c.call_tool("always_fails", {})
    assert result.is_error
    last = poller.seen[-1]
    assert last["status"] == "failed"
    assert last["error"] == {"code": -32603, "message": "always fails"}
    assert "result" not in last


async def test_input_goes_round_through_tasks_update(store: TaskStore) -> None:
    server, _ = build_server(store)
    asked: list[dict[str, Any]] = []

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        asked.append(request)
        return {"action": "accept", "content": {"name": "Ada"}}

    poller = Poller(answer)
    async with client(server, poller) as c:
        result = await c.call_tool("ask_name", {})
    assert text(result) == "hello Ada"
    assert asked[0]["method"] == "elicitation/create"
    assert asked[0]["params"]["message"] == "Your name?"
    assert any(s["status"] == "input_required" for s in poller.seen)


async def test_cancel_stops_a_running_tool_and_is_acknowledged_once_finished(
    store: TaskStore,
) -> None:
    server, tasks = build_server(store)
    async with client(server, Poller(wait=False)) as c:
        task_id = await start_task(c, "sleep_then_echo", {"text": "late", "seconds": 30})
        assert acknowledged(await cancel_task(c.session, task_id))
        await until(lambda: tasks_running(tasks) == 0)
        state = await get_task(c.session, task_id)
        assert state["status"] == "cancelled"
        assert {"result", "error", "inputRequests"} & set(state) == set()
        # A finished task: cancel is acknowledged, nothing changes.
        assert acknowledged(await cancel_task(c.session, task_id))
        assert (await get_task(c.session, task_id))["status"] == "cancelled"


async def test_unknown_and_foreign_tasks_are_one_not_found(store: TaskStore) -> None:
    server, _ = build_server(store)
    foreign = await store.create("someone-else", "tools/call")
    async with client(server, Poller()) as c:
        for task_id in ("no-such-task", foreign.task_id, "bad:id"):
            for call in (get_task, cancel_task):
                with pytest.raises(MCPError) as err:
                    await call(c.session, task_id)
                assert (err.value.error.code, err.value.error.message) == (-32602, "task not found")
    assert (await store.get(foreign.task_id, "someone-else")).status.value == "working"


async def test_a_client_without_the_extension_runs_inline_or_is_refused(store: TaskStore) -> None:
    server, _ = build_server(store)
    async with client(server) as c:
        result = await c.call_tool("sleep_then_echo", {"text": "inline", "seconds": 0})
        assert text(result) == "inline"
        with pytest.raises(MCPError) as err:
            await c.call_tool("only_as_task", {"text": "x"})
        assert err.value.error.code == -32021
        with pytest.raises(MCPError) as err:
            await get_task(c.session, "anything")
        assert err.value.error.code == -32021


async def test_two_servers_on_one_store_answer_each_others_tasks(store: TaskStore) -> None:
    first, _ = build_server(store)
    second, _ = build_server(store)
    async with client(first, Poller(wait=False)) as a, client(second, Poller()) as b:
        task_id = await start_task(a, "sleep_then_echo", {"text": "shared", "seconds": 0.1})

        async def done() -> bool:
            state = await get_task(b.session, task_id)
            return bool(state["status"] == "completed")

        await until(done)
        state = await get_task(b.session, task_id)
        assert state["result"]["content"][0]["text"] == "shared"


def tasks_running(tasks: TaskStoreTasks) -> int:
    return len(tasks._running)


@contextlib.contextmanager
def signed_in(subject: str) -> Iterator[None]:
    """Requests sent while this is open come with ``subject``'s access token, as each
    request over streamable HTTP carries its caller's token."""
    token = AccessToken(token=f"t-{subject}", client_id="app", scopes=[], subject=subject)
    reset = auth_context_var.set(AuthenticatedUser(token))
    try:
        yield
    finally:
        auth_context_var.reset(reset)


async def test_two_signed_in_callers_cannot_reach_each_others_tasks(store: TaskStore) -> None:
    tasks = TaskStoreTasks(store)  # no anonymous callers
    server = MCPServer("taskstore-owners", extensions=[tasks])

    @server.tool()
    @tasks.task()
    async def ask_name() -> str:
        answer = await elicit("Your name?", {"type": "object", "properties": {"name": {}}})
        return f"hello {answer['name']}"

    async with client(server, Poller(wait=False)) as c:
        with pytest.raises(MCPError) as err:
            await start_task(c, "ask_name", {})  # no token, no anonymous callers
        assert err.value.error.code == -32602
        with signed_in("alice"):
            task_id = await start_task(c, "ask_name", {})

            async def waiting() -> bool:
                state = await get_task(c.session, task_id)
                return bool(state["status"] == "input_required")

            await until(waiting)
            [key] = (await get_task(c.session, task_id))["inputRequests"]
        with signed_in("bob"):
            answer = {key: {"action": "accept", "content": {"name": "Mallory"}}}
            for call in (get_task, cancel_task, lambda s, t: update_task(s, t, answer)):
                with pytest.raises(MCPError) as err:
                    await call(c.session, task_id)
                assert (err.value.error.code, err.value.error.message) == (
                    -32602,
                    "task not found",
                )
        with signed_in("alice"):
            assert (await get_task(c.session, task_id))["status"] == "input_required"
            answer = {key: {"action": "accept", "content": {"name": "Alice"}}}
            await update_task(c.session, task_id, answer)

            async def completed() -> bool:
                state = await get_task(c.session, task_id)
                return bool(state["status"] == "completed")

            await until(completed)
            state = await get_task(c.session, task_id)
        assert state["result"]["content"][0]["text"] == "hello Alice"

"""MCP tasks in the caller's trace: a tool's work, on the server or the worker, under its
``tools/call``; each ``tasks/get`` a trace of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from mcp import Client
from mcp.server.mcpserver import MCPServer
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan

from tests.harness import unique
from tests.mcp.durable_tools import counted_sleep
from tests.mcp.poller import MODERN, Poller
from tests.tracing import ended, recorded
from tests.worker.conftest import drop_test_keys, isolated_settings, running_worker
from worker.mcp_tasks import TaskStoreTasks
from worker.producer.client import TaskStoreClient
from worker.protocol.settings import Settings

TRACER = trace.get_tracer("tests")


@pytest.fixture
async def settings(redis_url: str) -> AsyncIterator[Settings]:
    settings = isolated_settings(redis_url, "mcptrace", mcp_tool_modules="tests.mcp.durable_tools")
    yield settings
    await drop_test_keys(settings)


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_tool_work_runs_under_its_tools_call_on_the_server_and_the_worker(
    settings: Settings,
) -> None:
    with recorded() as spans:
        async with running_worker(settings), TaskStoreClient.connect(settings) as client:
            tasks = TaskStoreTasks(client.stores.tasks, allow_anonymous=True, queue=client)
            server = MCPServer("traced", extensions=[tasks])
            server.tool()(counted_sleep)
            tasks.enable_durable(counted_sleep)

            @server.tool()
            @tasks.task()
            async def in_process() -> str:
                with TRACER.start_as_current_span("tool work"):
                    return "done"

            async with Client(server, mode=MODERN, extensions=[Poller()]) as c:
                await c.call_tool("counted_sleep", {"marker": unique(), "seconds": 0})
                await c.call_tool("in_process", {})
            durable_call = await ended(spans, lambda s: s.name == "tools/call counted_sleep")
            run = await ended(spans, lambda s: s.name == "execute_tool counted_sleep")
            local_call = await ended(spans, lambda s: s.name == "tools/call in_process")
            work = await ended(spans, lambda s: s.name == "tool work")
            polls = [s for s in spans.get_finished_spans() if s.name.startswith("tasks/get")]
    assert run.context.trace_id == durable_call.context.trace_id
    assert parent_of(run) == durable_call.context.span_id
    assert parent_of(work) == local_call.context.span_id
    assert polls
    calls = {durable_call.context.trace_id, local_call.context.trace_id}
    assert not {p.context.trace_id for p in polls} & calls

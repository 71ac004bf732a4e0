"""Durable tools: run as a job on the taskstore worker, not in the MCP server process.

A function decorated ``@durable`` (at module level, so the worker can import
it) and registered with ``TaskStoreTasks.enable_durable`` becomes a task
whose work is a ``run_tool`` job on the worker's queue. The MCP server
process may stop or restart mid-task: the worker stores the outcome in the
task, and any server process reading the store serves it. While the tool
runs, its job holds its claim as a lease renewed like a write job's, so no
other worker starts it; it also holds the task's runner lease, as a tool
running in a server does. A tool that runs past ``JOB_TIMEOUT_S`` is stopped,
its task failed with an error naming the limit, and its job recorded as failed
(arq's own timeout for the job is ``GRACE_S`` longer, so the task is failed
first). A worker that dies mid-job is replaced within ``LEASE_S`` and runs the
tool again (a tool that is not
idempotent should not be durable); a job whose task is already finished runs
nothing. The worker runs only tools it imported itself, from the modules in
``MCP_TOOL_MODULES``, never a function a job names.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolResult, TextContent
from mcp_types.jsonrpc import METHOD_NOT_FOUND
from opentelemetry.trace import SpanKind

from store.tasks.leases import RunnerLeases
from worker.mcp_tasks.running import TaskRun
from worker.protocol import tracing
from worker.runtime.context import state
from worker.runtime.liveness import lease

JOB = "run_tool"
GRACE_S = 10.0
"""How much longer than ``JOB_TIMEOUT_S`` arq lets the job run: time to fail its task."""
REGISTRY: dict[str, Callable[..., Any]] = {}
F = TypeVar("F", bound=Callable[..., Any])


def ref(fn: Callable[..., Any]) -> str:
    """The name a durable tool goes by in jobs: its function's name (a module run as
    ``__main__`` by the server is the same module the worker imports by path)."""
    return fn.__name__


def durable(fn: F) -> F:
    """Make ``fn`` a durable tool that a worker importing its module may run."""
    known = REGISTRY.get(ref(fn))
    if known is not None and known.__qualname__ != fn.__qualname__:
        raise ValueError(f"two durable tools are named {ref(fn)!r}")
    REGISTRY[ref(fn)] = fn
    return fn


def load(modules: Sequence[str]) -> None:
    """Import the modules whose durable tools this worker runs: dotted names or ``.py`` paths."""
    for module in modules:
        if module.endswith(".py"):
            path = Path(module).resolve()
            spec = importlib.util.spec_from_file_location(path.stem, path)
            if spec is None or spec.loader is None:
                raise ImportError(f"cannot import {module}")
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = loaded
            spec.loader.exec_module(loaded)
        else:
            importlib.import_module(module)


async def run_tool(
    ctx: dict[str, Any],
    task_id: str,
    owner_id: str,
    tool: str,
    arguments: dict[str, Any],
    trace: dict[str, str] | None = None,
) -> None:
    """The worker's job: run the durable tool ``tool`` for the task and store its outcome,
    in the trace of the ``tools/call`` that started it."""
    with tracing.TRACER.start_as_current_span(
        f"execute_tool {tool}",
        context=tracing.context_of(trace),
        kind=SpanKind.CONSUMER,
        attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool},
    ):
        await _run_tool(ctx, task_id, owner_id, tool, arguments)


async def _run_tool(
    ctx: dict[str, Any], task_id: str, owner_id: str, tool: str, arguments: dict[str, Any]
) -> None:
    worker = state(ctx)
    tasks = worker.stores.tasks
    record = await tasks.get(task_id, owner_id)
    if record.status.terminal:  # stored by an earlier run whose worker died just after
        return
    poll_s = (record.task.poll_interval or 500) / 1000
    lease_ms = int(worker.settings.mcp_lease_s * 1000)
    limit_s = worker.settings.job_timeout_s
    run = TaskRun(tasks, RunnerLeases(tasks), task_id, owner_id, poll_s, lease_ms, limit_s)
    fn = REGISTRY.get(tool)

    async def work() -> CallToolResult:
        if fn is None:
            raise MCPError(METHOD_NOT_FOUND, f"this worker runs no durable tool {tool!r}")
        try:
            result = await Tool.from_function(fn).run(arguments, None, convert_result=True)  # type: ignore[arg-type]
        except ToolError as exc:  # as MCPServer answers a tool that raised
            return CallToolResult(content=[TextContent(type="text", text=str(exc))], is_error=True)
        if not isinstance(result, CallToolResult):
            raise MCPError(METHOD_NOT_FOUND, f"durable tool {tool!r} asked for input")
        return result

    async with lease(ctx, worker.settings.lease_s):
        await run.execute(work)

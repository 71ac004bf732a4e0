"""Tasks for clients of protocol 2025-11-25 (SEP-1686), from the same store as the extension.

The official TypeScript SDK 1.x, which most MCP hosts are built on, speaks
this generation; the Python SDK 2.x leaves its ``tasks/*`` out of its
2025-11-25 surface, so they are served here:

- ``TaskStoreTasks.middleware`` (pass it as ``MCPServer(middleware=[...])``)
  adds the ``tasks`` capability to ``initialize``, ``execution.taskSupport``
  to each tool of ``tools/list`` (from its ``@tasks.task(mode=...)``), and
  answers a ``tools/call`` carrying ``task: {ttl}`` with a ``CreateTaskResult``
  at once, the tool running on as it does for 2026 clients (in process under
  a lease, or durable on the worker). It runs before the SDK's per-version
  result check, which knows no ``CreateTaskResult``.
- ``tasks/result`` blocks until the task ends, then answers what the tool
  call itself would have: its result, or its JSON-RPC error. While the task
  waits for input it sends the tool's requests (``elicitation/create``) to
  the caller on that request, as SEP-1686 lays out, and stores the answers.
- ``tasks/list`` pages the caller's tasks with the store's cursor;
  ``tasks/get`` and ``tasks/cancel`` answer the task object (see
  ``TaskStoreTasks``, which serves both generations).

Errors are SEP-1686's: an unknown, expired or foreign task id, or a bad
cursor, is ``-32602``; cancelling a finished task is ``-32602``. No
``notifications/tasks/status`` are sent: they are optional, and the tool runs
apart from the request that started it; clients poll.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal, Protocol

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import ElicitRequest, ElicitRequestFormParams, ElicitResult, RequestParams
from mcp_types.jsonrpc import INVALID_PARAMS, METHOD_NOT_FOUND

from store.tasks import TaskPage, TaskRecord, TaskStatus, TaskStore, wire_2025, wire_2026
from worker.mcp_tasks.owner import owner_of

Tool = Callable[[], Coroutine[Any, Any, HandlerResult]]
Starter = Callable[
    [ServerRequestContext[Any, Any], str, str, dict[str, Any], int | None, Tool],
    Awaitable[TaskRecord],
]


class Tasks(Protocol):
    """What this surface needs of ``TaskStoreTasks``, which serves both generations."""

    store: TaskStore
    allow_anonymous: bool
    ttl_ms: int | None

    def mode(self, tool_name: object) -> Literal["optional", "required", "forbidden"]: ...

    @property
    def start(self) -> Starter:
        """Create the task and start its tool (context, owner, tool name, arguments, TTL)."""
        ...

    async def read(self, task_id: str, owner: str) -> TaskRecord: ...

    async def respond(self, task_id: str, owner: str, answers: dict[str, Any]) -> None: ...

    async def page(self, owner: str, cursor: str | None) -> TaskPage: ...


class ListTasksParams(RequestParams):
    cursor: str | None = None


class Surface2025:
    """The SEP-1686 methods and middleware of one ``TaskStoreTasks``."""

    def __init__(self, tasks: Tasks) -> None:
        self.tasks = tasks

    async def middleware(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        if ctx.method == "initialize":
            answer = await call_next(ctx)
            if isinstance(answer, dict) and answer.get("protocolVersion") == _VERSION:
                answer["capabilities"] = {**answer.get("capabilities", {}), "tasks": _CAPABILITY}
            return answer
        if ctx.protocol_version != _VERSION:
            return await call_next(ctx)
        if ctx.method == "tools/list":
            answer = await call_next(ctx)
            for tool in answer.get("tools", []) if isinstance(answer, dict) else []:
                mode = self.tasks.mode(tool.get("name"))
                tool["execution"] = {**tool.get("execution", {}), "taskSupport": mode}
            return answer
        if ctx.method == "tools/call":
            return await self._call_tool(ctx, call_next)
        return await call_next(ctx)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        params = ctx.params or {}
        name, task = params.get("name"), params.get("task")
        mode = self.tasks.mode(name)
        if task is None:
            if mode == "required":
                raise MCPError(METHOD_NOT_FOUND, f"tool {name!r} runs only as a task")
            return await call_next(ctx)
        if mode == "forbidden":
            raise MCPError(METHOD_NOT_FOUND, f"tool {name!r} does not run as a task")
        ttl = task.get("ttl") if isinstance(task, dict) else None
        if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0):
            raise MCPError(INVALID_PARAMS, "task.ttl must be a positive number of milliseconds")
        owner = owner_of(self.tasks.allow_anonymous)
        arguments = params.get("arguments") or {}

        async def tool() -> HandlerResult:
            return await call_next(ctx)

        record = await self.tasks.start(ctx, owner, str(name), arguments, self._ttl(ttl), tool)
        return wire_2025.created(record)

    def _ttl(self, requested: int | None) -> int | None:
        """The requested TTL, lowered to the store's maximum (SEP-1686 lets a receiver)."""
        if requested is None:
            return self.tasks.ttl_ms
        longest = self.tasks.store.config.max_ttl_ms
        return requested if longest is None else min(requested, longest)

    # -- methods served at 2025-11-25 only -----------------------------------------

    async def result(self, ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        """``tasks/result``: wait for the end, asking the caller for input on the way."""
        owner = owner_of(self.tasks.allow_anonymous)
        while True:
            record = await self.tasks.read(params.task_id, owner)
            if record.status.terminal:
                result, error = wire_2025.outcome(record)
                if error is not None:
                    raise MCPError(error["code"], error["message"], error.get("data"))
                return result
            if record.status is TaskStatus.INPUT_REQUIRED and wire_2026.outstanding(record):
                await self._ask(ctx, record, owner)
                continue
            # Working, or answered and not yet resumed: look again a poll interval on.
            await asyncio.sleep((record.task.poll_interval or 500) / 1000)

    async def _ask(
        self, ctx: ServerRequestContext[Any, Any], record: TaskRecord, owner: str
    ) -> None:
        """Send the task's open requests to the caller; store each answer as it comes."""
        for key, request in wire_2026.outstanding(record).items():
            params = request.get("params", {}) if isinstance(request, dict) else {}
            try:
                answer = await ctx.session.send_request(
                    ElicitRequest(
                        params=ElicitRequestFormParams(
                            message=str(params.get("message", "")),
                            requested_schema=params.get("requestedSchema", {}),
                            _meta=wire_2025.related(record.task_id),
                        )
                    ),
                    ElicitResult,
                    metadata=ServerMessageMetadata(related_request_id=ctx.request_id),
                )
                reply = answer.model_dump(by_alias=True, mode="json", exclude_none=True)
            except MCPError:
                reply = {"action": "cancel"}  # a caller that cannot answer declines
            await self.tasks.respond(record.task_id, owner, {key: reply})

    async def list(self, ctx: ServerRequestContext[Any, Any], params: Any) -> HandlerResult:
        """``tasks/list``: a page of the caller's tasks, newest first."""
        owner = owner_of(self.tasks.allow_anonymous)
        page = await self.tasks.page(owner, params.cursor)
        answer: dict[str, Any] = {"tasks": [t.to_wire() for t in page.tasks]}
        if page.next_cursor is not None:
            answer["nextCursor"] = page.next_cursor
        return answer


_VERSION = wire_2025.PROTOCOL_VERSION
_CAPABILITY = wire_2025.CAPABILITY

"""``TaskStoreTasks``: the ``io.modelcontextprotocol/tasks`` extension on a ``TaskStore``.

- Tools opt in (``@tasks.task()`` under ``@server.tool()``, or ``enable``):
  ``optional`` ones run as a task for a client that declared the extension
  and inline for one that did not; ``required`` ones refuse such a client
  with ``-32021``.
- A call that becomes a task is answered at once with the task
  (``resultType: "task"``); the tool runs on in this process (``running``),
  under a lease: if the process dies, the worker fails the task. A durable
  tool (``enable_durable``) runs as a job on the worker instead, and outlives
  the server process.
- ``tasks/get``, ``tasks/update`` and ``tasks/cancel`` are served at protocol
  2026-07-28, from the store: any server process on it answers for a task
  any other created. An unknown task, an expired one and another owner's
  look the same: ``-32602``. Cancelling a finished task is acknowledged.
- Clients of protocol 2025-11-25 get SEP-1686's tasks from the same store
  (``surface_2025``; pass ``middleware=[tasks.middleware]`` to ``MCPServer``):
  a task either generation created reads through the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Literal, TypeVar

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.extension import Extension, MethodBinding
from mcp.server.mcpserver.server import require_client_extension
from mcp.shared.exceptions import MCPError
from mcp_types import CallToolRequestParams, RequestParams
from mcp_types.jsonrpc import INVALID_PARAMS
from pydantic import Field, JsonValue

from store.tasks import (
    InvalidTransition,
    TaskError,
    TaskNotFound,
    TaskPage,
    TaskRecord,
    TaskStore,
    wire_2025,
)
from store.tasks.leases import RunnerLeases
from store.tasks.wire_2026 import EXTENSION, PROTOCOL_VERSION, created, detailed
from worker.mcp_tasks import durable
from worker.mcp_tasks.owner import owner_of
from worker.mcp_tasks.running import TaskRun
from worker.mcp_tasks.surface_2025 import ListTasksParams, Surface2025
from worker.producer.client import TaskStoreClient
from worker.producer.queue import enqueue, job_payload
from worker.protocol import tracing
from worker.protocol.serialization import serialize

Mode = Literal["optional", "required"]
F = TypeVar("F", bound=Callable[..., Any])


class TaskIdParams(RequestParams):
    task_id: str = Field(alias="taskId")


class UpdateTaskParams(TaskIdParams):
    input_responses: dict[str, JsonValue] = Field(alias="inputResponses")


class TaskStoreTasks(Extension):
    identifier = EXTENSION

    def __init__(
        self,
        store: TaskStore,
        *,
        allow_anonymous: bool = False,
        ttl_ms: int | None = None,
        lease_s: float = 15.0,
        queue: TaskStoreClient | None = None,
    ) -> None:
        self.store = store
        self.queue = queue
        self.allow_anonymous = allow_anonymous
        self.ttl_ms = ttl_ms
        self.leases = RunnerLeases(store)
        self.lease_ms = int(lease_s * 1000)
        self._modes: dict[str, Mode] = {}
        self._durable: dict[str, str] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._legacy = Surface2025(self)
        self.middleware = self._legacy.middleware
        """For ``MCPServer(middleware=[...])``: tasks for clients of 2025-11-25."""

    def enable(self, tool_name: str, mode: Mode = "optional") -> None:
        """Run the tool named ``tool_name`` as a task."""
        if mode not in ("optional", "required"):
            raise ValueError(f"mode is optional or required, not {mode!r}")
        self._modes[tool_name] = mode

    def enable_durable(self, fn: Callable[..., Any], mode: Mode = "optional") -> None:
        """Run the tool ``fn`` (decorated ``@durable``) as a task whose work is a worker job."""
        if durable.REGISTRY.get(durable.ref(fn)) is not fn:
            raise ValueError(f"{fn.__qualname__} is not decorated @durable")
        if self.queue is None:
            raise ValueError("durable tools need the queue: TaskStoreTasks(..., queue=client)")
        self.enable(fn.__name__, mode)
        self._durable[fn.__name__] = durable.ref(fn)

    def task(self, mode: Mode = "optional") -> Callable[[F], F]:
        """Decorator under ``@server.tool()``: run this tool (by its function's name) as a task."""

        def register(fn: F) -> F:
            self.enable(fn.__name__, mode)
            return fn

        return register

    def mode(self, tool_name: object) -> Literal["optional", "required", "forbidden"]:
        """How the tool runs as a task: ``forbidden`` for a tool that was not enabled."""
        return (
            self._modes.get(tool_name, "forbidden") if isinstance(tool_name, str) else "forbidden"
        )

    def methods(self) -> Sequence[MethodBinding]:
        modern, legacy = frozenset({PROTOCOL_VERSION}), frozenset({wire_2025.PROTOCOL_VERSION})
        return (
            MethodBinding("tasks/get", TaskIdParams, self._get, modern | legacy),
            MethodBinding("tasks/cancel", TaskIdParams, self._cancel, modern | legacy),
            MethodBinding("tasks/update", UpdateTaskParams, self._update, modern),
            MethodBinding("tasks/result", TaskIdParams, self._legacy.result, legacy),
            MethodBinding("tasks/list", ListTasksParams, self._legacy.list, legacy),
        )

    async def intercept_tool_call(
        self,
        params: CallToolRequestParams,
        ctx: ServerRequestContext[Any, Any],
        call_next: CallNext,
    ) -> HandlerResult:
        mode = self._modes.get(params.name)
        if mode is None or ctx.protocol_version == wire_2025.PROTOCOL_VERSION:
            return await call_next(ctx)  # at 2025-11-25, the middleware has decided
        if ctx.protocol_version != PROTOCOL_VERSION or not _declared(ctx):
            if mode == "required":
                require_client_extension(ctx, EXTENSION)
            return await call_next(ctx)
        owner = owner_of(self.allow_anonymous)

        async def tool() -> HandlerResult:
            return await call_next(ctx)

        arguments = params.arguments or {}
        return created(await self.start(ctx, owner, params.name, arguments, self.ttl_ms, tool))

    async def start(
        self,
        ctx: ServerRequestContext[Any, Any],
        owner: str,
        tool_name: str,
        arguments: dict[str, Any],
        ttl_ms: int | None,
        tool: Callable[[], Coroutine[Any, Any, HandlerResult]],
    ) -> TaskRecord:
        """Create the task and start its tool: a job on the worker if durable, else ``tool()``
        in this process under a lease."""
        record = await _answered(self.store.create(owner, "tools/call", ttl_ms))
        tool_ref = self._durable.get(tool_name)
        if tool_ref is not None:
            await self._enqueue(record.task_id, owner, tool_ref, arguments)
            return record
        poll_s = (record.task.poll_interval or 500) / 1000
        run = TaskRun(self.store, self.leases, record.task_id, owner, poll_s, self.lease_ms)
        # The run starts from a copy of this context, where it marks itself current.
        running = asyncio.create_task(run.execute(tool), context=contextvars.copy_context())
        self._running.add(running)
        running.add_done_callback(self._running.discard)
        return record

    async def read(self, task_id: str, owner: str) -> TaskRecord:
        return await _answered(self.store.get(task_id, owner))

    async def respond(self, task_id: str, owner: str, answers: dict[str, Any]) -> None:
        await _answered(self.store.respond(task_id, owner, answers))

    async def page(self, owner: str, cursor: str | None) -> TaskPage:
        return await _answered(self.store.list(owner, cursor))

    async def _get(
        self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams
    ) -> HandlerResult:
        owner = self._caller(ctx)
        record = await self.read(params.task_id, owner)
        if ctx.protocol_version == wire_2025.PROTOCOL_VERSION:
            return record.to_wire()
        return detailed(record)

    async def _update(
        self, ctx: ServerRequestContext[Any, Any], params: UpdateTaskParams
    ) -> HandlerResult:
        owner = self._caller(ctx)
        await _answered(self.store.respond(params.task_id, owner, params.input_responses))
        return {}

    async def _cancel(
        self, ctx: ServerRequestContext[Any, Any], params: TaskIdParams
    ) -> HandlerResult:
        owner = self._caller(ctx)
        if ctx.protocol_version == wire_2025.PROTOCOL_VERSION:
            try:  # SEP-1686: a finished task cannot be cancelled, and says so
                return (await _answered(self.store.cancel(params.task_id, owner))).to_wire()
            except InvalidTransition as exc:
                raise MCPError(INVALID_PARAMS, f"task is already {exc.source}") from None
        with contextlib.suppress(InvalidTransition):  # finished already: acknowledged all the same
            await _answered(self.store.cancel(params.task_id, owner))
        return {}

    async def _enqueue(
        self, task_id: str, owner: str, tool_ref: str, arguments: dict[str, Any]
    ) -> None:
        """The worker's ``run_tool`` job for a durable tool's task; its id follows the task's."""
        assert self.queue is not None  # enable_durable saw to it
        kwargs = {
            "task_id": task_id,
            "owner_id": owner,
            "tool": tool_ref,
            "arguments": arguments,
            "trace": tracing.carrier(),  # the tools/call span, which the worker's run continues
        }
        payload = job_payload(durable.JOB, b"[]", serialize(kwargs))
        await enqueue(self.queue.pool, self.queue.settings.queue_name, f"tool-{task_id}", payload)

    def _caller(self, ctx: ServerRequestContext[Any, Any]) -> str:
        if ctx.protocol_version != wire_2025.PROTOCOL_VERSION:  # 2025 clients have no extension
            require_client_extension(ctx, EXTENSION)
        return owner_of(self.allow_anonymous)

    async def aclose(self) -> None:
        """Stop the tools still running here (their tasks stay as they are in the store)."""
        for running in list(self._running):
            running.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)


def _declared(ctx: ServerRequestContext[Any, Any]) -> bool:
    capabilities = ctx.session.client_capabilities
    extensions = capabilities.extensions if capabilities else None
    return bool(extensions) and EXTENSION in extensions  # type: ignore[operator]


T = TypeVar("T")


async def _answered(call: Awaitable[T]) -> T:
    """The store's answer; its task errors as the JSON-RPC errors SEP-2663 asks for."""
    try:
        return await call
    except InvalidTransition:
        raise  # a finished task: the caller decides (cancel acknowledges it)
    except TaskNotFound:  # TaskExpired included
        # Unknown, expired and another owner's tasks must look alike.
        raise MCPError(INVALID_PARAMS, "task not found") from None
    except TaskError as exc:
        raise MCPError(exc.code, str(exc)) from exc

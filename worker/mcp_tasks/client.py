"""The client side of the tasks extension: call a tool as a task and poll it to its end.

The ``mcp`` SDK (2.3) serves extensions but ships no client for this one, so a
client that declares it would get ``resultType: "task"`` answers it cannot
read. ``TaskPoller`` is that client, on the SDK's ``ClientExtension``: it
claims the task answer of ``tools/call``, polls ``tasks/get`` every poll
interval, answers input requests through ``tasks/update`` (with ``answer``),
and gives the call the tool's ``CallToolResult``::

    async with Client(server, mode="2026-07-28", extensions=[TaskPoller()]) as client:
        result = await client.call_tool("greet", {})

``get_task``, ``update_task`` and ``cancel_task`` send the extension's
requests on a session by themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp_types import CallToolResult, Request, RequestParams, Result, TextContent
from pydantic import Field, TypeAdapter

from store.tasks.wire_2026 import EXTENSION

_ANY: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])
_ENDED = ("completed", "failed", "cancelled")


class TaskIdParams(RequestParams):
    task_id: str = Field(alias="taskId")


class UpdateParams(TaskIdParams):
    input_responses: dict[str, Any] = Field(alias="inputResponses")


class GetTask(Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    name_param: ClassVar[str | None] = "taskId"


class UpdateTask(Request[UpdateParams, Literal["tasks/update"]]):
    method: Literal["tasks/update"] = "tasks/update"
    name_param: ClassVar[str | None] = "taskId"


class CancelTask(Request[TaskIdParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    name_param: ClassVar[str | None] = "taskId"


class TaskHandle(Result):
    """A ``tools/call`` answered as a task."""

    result_type: Literal["task"] = Field(alias="resultType")
    task_id: str = Field(alias="taskId")
    status: str
    ttl_ms: int | None = Field(alias="ttlMs")
    poll_interval_ms: int | None = Field(default=None, alias="pollIntervalMs")


Answer = Callable[[dict[str, Any]], dict[str, Any]]
"""An answer to one input request (an ``elicitation/create``): ``{"action", "content"}``."""


class TaskPoller(ClientExtension):
    """Resolves a task answer by polling it to its end; remembers every state it saw.

    With ``wait=False`` the call returns at once, the task id as its text (and as
    ``structuredContent.result``), for a caller that polls by itself.
    """

    identifier = EXTENSION

    def __init__(self, answer: Answer | None = None, *, wait: bool = True) -> None:
        self.answer = answer
        self.wait = wait
        self.seen: list[dict[str, Any]] = []
        self.handles: list[TaskHandle] = []

    def claims(self) -> list[ResultClaim[Any]]:
        return [ResultClaim(result_type="task", model=TaskHandle, resolve=self.resolve)]

    async def resolve(self, handle: TaskHandle, ctx: ClaimContext) -> CallToolResult:
        self.handles.append(handle)
        if not self.wait:
            return CallToolResult(
                content=[TextContent(type="text", text=handle.task_id)],
                structured_content={"result": handle.task_id},
            )
        while True:
            state = await get_task(ctx.session, handle.task_id)
            self.seen.append(state)
            if state["status"] == "input_required" and self.answer is not None:
                answers = {key: self.answer(r) for key, r in state["inputRequests"].items()}
                await update_task(ctx.session, handle.task_id, answers)
            if state["status"] in _ENDED:
                if "result" in state:
                    return CallToolResult.model_validate(state["result"])
                message = str(state.get("error", state["status"]))
                return CallToolResult(
                    content=[TextContent(type="text", text=message)], is_error=True
                )
            await asyncio.sleep((handle.poll_interval_ms or 100) / 1000)


async def get_task(session: Any, task_id: str) -> dict[str, Any]:
    """``tasks/get``: the task, with its result, error or input requests as it has them."""
    params = TaskIdParams(task_id=task_id)
    result: dict[str, Any] = await session.send_request(GetTask(params=params), _ANY)
    return result


async def update_task(session: Any, task_id: str, answers: dict[str, Any]) -> dict[str, Any]:
    """``tasks/update``: answers to the task's input requests, by their keys."""
    params = UpdateParams(task_id=task_id, input_responses=answers)
    result: dict[str, Any] = await session.send_request(UpdateTask(params=params), _ANY)
    return result


async def cancel_task(session: Any, task_id: str) -> dict[str, Any]:
    """``tasks/cancel``; acknowledged for a finished task too."""
    params = TaskIdParams(task_id=task_id)
    result: dict[str, Any] = await session.send_request(CancelTask(params=params), _ANY)
    return result

"""The client side of the tasks extension for the tests, on the SDK's ``ClientExtension``.

A ``resultType: "task"`` answer is polled with ``tasks/get`` until it ends,
answering input requests through ``tasks/update`` on the way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp_types import CallToolResult, Request, RequestParams, Result, TextContent
from pydantic import Field, TypeAdapter

from store.tasks.wire_2026 import EXTENSION

MODERN = "2026-07-28"
ANY: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


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
    result_type: Literal["task"] = Field(alias="resultType")
    task_id: str = Field(alias="taskId")
    status: str
    ttl_ms: int | None = Field(alias="ttlMs")
    poll_interval_ms: int | None = Field(default=None, alias="pollIntervalMs")


Answer = Callable[[dict[str, Any]], dict[str, Any]]


class Poller(ClientExtension):
    """Resolves a task answer by polling; remembers every state it saw."""

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
        if not self.wait:  # the caller takes the task id and polls by itself
            return CallToolResult(
                content=[TextContent(type="text", text=handle.task_id)],
                structured_content={"result": handle.task_id},  # the tools here return a str
            )
        while True:
            state = await get_task(ctx.session, handle.task_id)
            self.seen.append(state)
            if state["status"] == "input_required" and self.answer is not None:
                answers = {key: self.answer(r) for key, r in state["inputRequests"].items()}
                await update_task(ctx.session, handle.task_id, answers)
            if state["status"] in ("completed", "failed", "cancelled"):
                if "result" in state:
                    return CallToolResult.model_validate(state["result"])
                message = str(state.get("error", state["status"]))
                return CallToolResult(
                    content=[TextContent(type="text", text=message)], is_error=True
                )
            await asyncio.sleep((handle.poll_interval_ms or 100) / 1000)


async def get_task(session: Any, task_id: str) -> dict[str, Any]:
    params = TaskIdParams(task_id=task_id)
    result: dict[str, Any] = await session.send_request(GetTask(params=params), ANY)
    return result


async def update_task(session: Any, task_id: str, answers: dict[str, Any]) -> dict[str, Any]:
    params = UpdateParams(task_id=task_id, input_responses=answers)
    result: dict[str, Any] = await session.send_request(UpdateTask(params=params), ANY)
    return result


async def cancel_task(session: Any, task_id: str) -> dict[str, Any]:
    params = TaskIdParams(task_id=task_id)
    result: dict[str, Any] = await session.send_request(CancelTask(params=params), ANY)
    return result


def text(result: CallToolResult) -> str:
    [content] = result.content
    assert isinstance(content, TextContent)
    return content.text


async def start_task(c: Client, tool: str, arguments: dict[str, Any]) -> str:
    """The id of the task ``tool`` runs as (the client's poller must not wait)."""
    return text(await c.call_tool(tool, arguments))


def acknowledged(reply: dict[str, Any]) -> bool:
    """An empty result (the SDK stamps its serverInfo under ``_meta``)."""
    return {k: v for k, v in reply.items() if k != "_meta"} == {"resultType": "complete"}

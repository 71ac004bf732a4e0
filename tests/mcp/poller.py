"""The client side of the tasks extension for the tests: the package's own
(``worker.mcp_tasks.client``), and a few helpers."""

from __future__ import annotations

from typing import Any

from mcp import Client
from mcp_types import CallToolResult, TextContent

from worker.mcp_tasks.client import TaskPoller as Poller
from worker.mcp_tasks.client import cancel_task, get_task, update_task

__all__ = ["MODERN", "Poller", "acknowledged", "cancel_task", "get_task", "start_task", "text",
           "update_task"]  # fmt: skip

MODERN = "2026-07-28"


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

"""Tasks on the wire of MCP 2025-11-25 (SEP-1686): the task object, and what ``tasks/result`` gives.

The task object's fields are ``taskId``, ``status``, ``statusMessage``,
``createdAt``, ``lastUpdatedAt``, ``ttl`` and ``pollInterval``; the result
travels apart, through ``tasks/result``. A tool result with ``isError`` is a
``failed`` task at this version (SEP-1686), while the record (and SEP-2663)
says ``completed``: the same record reads right in both generations.
``store.tasks.wire_2026`` owns the later shape.
"""

from __future__ import annotations

from typing import Any

from store.tasks.errors import INTERNAL_ERROR
from store.tasks.record import TaskRecord
from store.tasks.status import TaskStatus

PROTOCOL_VERSION = "2025-11-25"
RELATED_TASK = "io.modelcontextprotocol/related-task"
CAPABILITY: dict[str, Any] = {"list": {}, "cancel": {}, "requests": {"tools": {"call": {}}}}
"""The server's ``tasks`` capability: listing, cancelling, and task-augmented tool calls."""


def created(record: TaskRecord) -> dict[str, Any]:
    """The ``CreateTaskResult`` a task-augmented ``tools/call`` answers with; the task
    object is ``TaskRecord.to_wire``."""
    return {"task": record.to_wire()}


def related(task_id: str) -> dict[str, Any]:
    """The ``_meta`` that ties a message to its task."""
    return {RELATED_TASK: {"taskId": task_id}}


def outcome(record: TaskRecord) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """What ``tasks/result`` answers for a terminal task: ``(result, None)`` or
    ``(None, error)``, exactly what the tool call itself would have answered."""
    if record.status is TaskStatus.COMPLETED:
        result = record.result if isinstance(record.result, dict) else {}
        meta = result.get("_meta")
        meta = meta if isinstance(meta, dict) else {}
        return {**result, "_meta": {**meta, **related(record.task_id)}}, None
    if record.status is TaskStatus.FAILED and record.error:
        return None, dict(record.error)
    message = record.task.status_message or f"the task was {record.status.value}"
    return None, {"code": INTERNAL_ERROR, "message": message}

"""Tasks on the wire of MCP 2026-07-28: the ``io.modelcontextprotocol/tasks`` extension (SEP-2663).

A tool call answered as a task returns ``created`` (``resultType: "task"``);
``tasks/get`` returns ``detailed`` (``resultType: "complete"``), which inlines
what the status calls for and nothing else: ``inputRequests`` while
``input_required``, ``result`` once ``completed``, ``error`` once ``failed``,
nothing more for ``working`` and ``cancelled``. Times are the record's own
(``lastUpdatedAt`` is when it last changed, not when it was read); there is
no ``_meta``. ``store.tasks.wire_2025`` owns the earlier shape.
"""

from __future__ import annotations

from typing import Any

from store.tasks.errors import INTERNAL_ERROR
from store.tasks.record import TaskRecord
from store.tasks.status import TaskStatus

EXTENSION = "io.modelcontextprotocol/tasks"
PROTOCOL_VERSION = "2026-07-28"


def created(record: TaskRecord) -> dict[str, Any]:
    """The ``CreateTaskResult`` a ``tools/call`` answers with."""
    return {"resultType": "task", **_task(record)}


def detailed(record: TaskRecord) -> dict[str, Any]:
    """The ``GetTaskResult`` of ``tasks/get``: the task and its status's payload."""
    wire = {"resultType": "complete", **_task(record)}
    status = record.status
    if status is TaskStatus.INPUT_REQUIRED:
        wire["inputRequests"] = outstanding(record)
    elif status is TaskStatus.COMPLETED:
        wire["result"] = record.result if isinstance(record.result, dict) else {}
    elif status is TaskStatus.FAILED:
        wire["error"] = record.error or {
            "code": INTERNAL_ERROR,
            "message": record.task.status_message or "the task failed",
        }
    return wire


def outstanding(record: TaskRecord) -> dict[str, Any]:
    """The input requests not answered yet, by key."""
    return {
        key: request
        for key, request in record.input_requests.items()
        if key not in record.input_responses
    }


def _task(record: TaskRecord) -> dict[str, Any]:
    shown = record.task.model_dump(mode="json", by_alias=True)
    wire: dict[str, Any] = {
        "taskId": shown["taskId"],
        "status": shown["status"],
        "createdAt": shown["createdAt"],
        "lastUpdatedAt": shown["lastUpdatedAt"],
        "ttlMs": shown["ttl"],
    }
    if "statusMessage" in shown:
        wire["statusMessage"] = shown["statusMessage"]
    if shown["pollInterval"] is not None:
        wire["pollIntervalMs"] = shown["pollInterval"]
    return wire

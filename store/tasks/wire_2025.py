"""Tasks on the wire of MCP 2025-11-25 (SEP-1686): the task object of ``tasks/get``.

Its fields are ``taskId``, ``status``, ``statusMessage``, ``createdAt``,
``lastUpdatedAt``, ``ttl`` and ``pollInterval``; the result travels apart,
through ``tasks/result``. ``store.tasks.wire_2026`` owns the later shape.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from store.tasks.record import TaskRecord


def task_object(record: TaskRecord, *, include_variables: bool = False) -> dict[str, Any]:
    """The task object; with ``include_variables``, the variables under ``_meta``."""
    wire: dict[str, Any] = record.task.model_dump(mode="json", by_alias=True)
    if include_variables:
        wire["_meta"] = {"variables": record.variables}
    return wire

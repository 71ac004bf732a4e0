"""Task errors, each with the JSON-RPC code and data an MCP server answers with."""

from __future__ import annotations

from typing import Any, ClassVar

INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603


class TaskError(Exception):
    """Base of every task error: ``code`` is the JSON-RPC error code, ``data`` its details."""

    code: ClassVar[int] = INTERNAL_ERROR

    def __init__(self, message: str, **data: Any) -> None:
        super().__init__(message)
        self.message = message
        self.data: dict[str, Any] = data

    def to_jsonrpc(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "data": self.data}


class InvalidParams(TaskError):
    """A request that can never succeed as made (bad id, TTL, variable, owner)."""

    code = INVALID_PARAMS


class TaskNotFound(InvalidParams):
    """No such task for this owner (also what another owner's task looks like)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(f"task not found: {task_id!r}", taskId=task_id)
        self.task_id = task_id


class TaskExpired(TaskNotFound):
    """The task's TTL has passed (the store treats it as gone)."""

    def __init__(self, task_id: str) -> None:
        InvalidParams.__init__(self, f"task expired: {task_id!r}", taskId=task_id)
        self.task_id = task_id


class InvalidTransition(InvalidParams):
    """The status change (or a change of any kind to a terminal task) is not allowed."""

    def __init__(self, task_id: str, source: str, target: str | None, action: str) -> None:
        change = f"{source} -> {target}" if target is not None else f"changing a {source} task"
        super().__init__(
            f"invalid transition for task {task_id!r}: {change}",
            taskId=task_id,
            fromStatus=source,
            toStatus=target,
            suggestedAction=action,
        )
        self.task_id = task_id
        self.source = source
        self.target = target
        self.action = action


class NotReady(InvalidParams):
    """The task has no result yet (not terminal, or terminal without one)."""

    def __init__(self, task_id: str, status: str) -> None:
        super().__init__(
            f"task {task_id!r} has no result ({status})", taskId=task_id, status=status
        )
        self.task_id = task_id
        self.status = status


class VariableSizeExceeded(InvalidParams):
    """A variable or result breaks a size, depth or length limit."""

    def __init__(self, message: str, *, name: str, limit: int, actual: int) -> None:
        super().__init__(message, variable=name, limit=limit, actual=actual)
        self.name = name
        self.limit = limit
        self.actual = actual


class ConcurrentModification(TaskError):
    """Other writers kept winning the compare-and-swap; the change was not applied."""

    def __init__(self, task_id: str, attempts: int) -> None:
        super().__init__(
            f"task {task_id!r} changed concurrently {attempts} times; not applied",
            taskId=task_id,
            attempts=attempts,
        )
        self.task_id = task_id
        self.attempts = attempts


class ResourceExhausted(TaskError):
    """The owner holds its maximum of live tasks."""

    def __init__(self, owner_id: str, limit: int) -> None:
        super().__init__(f"owner holds its limit of {limit} live tasks", limit=limit)
        self.owner_id = owner_id
        self.limit = limit


class StoreError(TaskError):
    """The storage backend failed; the storage error is ``__cause__``."""

"""The MCP task status state machine."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    WORKING = "working"
    INPUT_REQUIRED = "input_required"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})

_ALLOWED: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.WORKING: frozenset(
        {TaskStatus.INPUT_REQUIRED, TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
    ),
    TaskStatus.INPUT_REQUIRED: frozenset(
        {TaskStatus.WORKING, TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED}
    ),
    TaskStatus.COMPLETED: frozenset(),
    TaskStatus.FAILED: frozenset(),
    TaskStatus.CANCELLED: frozenset(),
}


def can_transition(source: TaskStatus, target: TaskStatus) -> bool:
    """Whether ``source -> target`` is allowed; a self-transition never is."""
    return target in _ALLOWED[source]


def suggested_action(source: TaskStatus, target: TaskStatus | None) -> str:
    """What a caller refused a change should do instead."""
    if source.terminal:
        return f"the task is {source.value} and can no longer change; create a new task"
    if source == target:
        return f"the task is already {source.value}; nothing to do"
    allowed = ", ".join(sorted(s.value for s in _ALLOWED[source]))
    return f"from {source.value} the task can move to: {allowed}"

"""The MCP task domain on top of a storage backend."""

from store.tasks.config import SecurityConfig, StoreConfig
from store.tasks.errors import (
    ConcurrentModification,
    InvalidParams,
    InvalidTransition,
    NotReady,
    ResourceExhausted,
    StoreError,
    TaskError,
    TaskExpired,
    TaskNotFound,
    VariableSizeExceeded,
)
from store.tasks.record import Task, TaskRecord
from store.tasks.status import TaskStatus, can_transition
from store.tasks.store import TaskPage, TaskStore

__all__ = [
    "ConcurrentModification",
    "InvalidParams",
    "InvalidTransition",
    "NotReady",
    "ResourceExhausted",
    "SecurityConfig",
    "StoreConfig",
    "StoreError",
    "Task",
    "TaskError",
    "TaskExpired",
    "TaskNotFound",
    "TaskPage",
    "TaskRecord",
    "TaskStatus",
    "TaskStore",
    "VariableSizeExceeded",
    "can_transition",
]

"""Outcomes of jobs as small typed JSON envelopes, never pickled exceptions.

``{"ok": true, "value": ...}`` or ``{"ok": false, "error": {"type", "message",
"attrs"}}``. Only the storage and task error classes listed here can be
rebuilt, each with the attributes a direct call would have given, so the
client raises exactly what calling the store in-process raises.
"""

from __future__ import annotations

from typing import Any

from store import errors as storage_errors
from store.tasks import TaskRecord
from store.tasks import errors as task_errors

Envelope = dict[str, Any]


def _error_classes() -> dict[str, type[Exception]]:
    found: dict[str, type[Exception]] = {}
    for module, base in (
        (storage_errors, storage_errors.StorageError),
        (task_errors, task_errors.TaskError),
    ):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, base):
                found[value.__name__] = value
    return found


ERRORS = _error_classes()


class RemoteError(Exception):
    """A failure the worker reported that is neither a storage nor a task error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def success(value: object) -> Envelope:
    if isinstance(value, TaskRecord):
        value = {"taskRecord": value.model_dump(mode="json", by_alias=True)}
    return {"ok": True, "value": value}


def failure(exc: Exception) -> Envelope:
    attrs = {k: v for k, v in vars(exc).items() if _plain(v)}
    return {"ok": False, "error": {"type": type(exc).__name__, "message": str(exc), "attrs": attrs}}


def open_envelope(envelope: object) -> Any:
    """The value of a success envelope; raise the error of a failure envelope."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("ok"), bool):
        raise RemoteError("BadEnvelope", f"not a job outcome: {envelope!r:.200}")
    if envelope["ok"]:
        value = envelope.get("value")
        if isinstance(value, dict) and set(value) == {"taskRecord"}:
            return TaskRecord.model_validate(value["taskRecord"])
        return value
    raise rebuild(envelope.get("error"))


def rebuild(error: object) -> Exception:
    if not isinstance(error, dict):
        return RemoteError("BadEnvelope", repr(error)[:200])
    kind, message = str(error.get("type")), str(error.get("message"))
    cls = ERRORS.get(kind)
    if cls is None:
        return RemoteError(kind, message)
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    attrs = error.get("attrs")
    if isinstance(attrs, dict):
        vars(exc).update(attrs)
    return exc


def _plain(value: object) -> bool:
    """JSON-safe attribute values; anything else (a key of a wrong type) is left out."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, str | int | float | bool)

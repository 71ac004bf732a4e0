"""Outcomes of jobs as small typed JSON envelopes, never pickled exceptions.

``{"ok": true, "value": ...}`` or ``{"ok": false, "error": {"type", "message",
"fields", "code"?}}``; ``{"ok": true, "elided": true}`` is a success whose value a
reply had no room for (``encoded_reply``): the write was applied, and sending it
again under its op id gives its outcome. ``fields`` are the error's constructor arguments by
name, so the client rebuilds it through its constructor and raises exactly
what calling the store in-process raises, every attribute included (bytes
travel as ``{"__bytes__": ...}`` like any other value). Only the classes in
``ERRORS`` are rebuilt; ``code`` is a task error's JSON-RPC code, for
producers in other languages.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Sequence
from typing import Any

from store import errors as s
from store.tasks import errors as t
from worker.protocol import errors as w
from worker.protocol.serialization import serialize

Envelope = dict[str, Any]

MAX_REPLY_BYTES = 8 * 1024 * 1024
"""The most a job's reply holds: past it, values are elided (``encoded_reply``)."""

ERRORS: dict[str, type[Exception]] = {
    cls.__name__: cls
    for cls in (
        s.StorageError,
        s.NotFound,
        s.VersionConflict,
        s.CapacityExceeded,
        s.OpIdReused,
        s.OpWithdrawn,
        s.InvalidArgument,
        s.InvalidKey,
        s.RecordTooLarge,
        s.BackendError,
        s.WriteNotConfirmed,
        t.TaskError,
        t.InvalidParams,
        t.TaskNotFound,
        t.TaskExpired,
        t.InvalidTransition,
        t.NotReady,
        t.VariableSizeExceeded,
        t.ConcurrentModification,
        t.ResourceExhausted,
        t.StoreError,
        w.WriteNotApplied,
        w.DeadlineExceeded,
        w.NoWorkerAlive,
        w.OutcomeUnknown,
        w.InternalError,
    )
}
"""Every error that crosses the queue whole, by the name the envelope carries."""


class RemoteError(Exception):
    """A failure the worker reported that is neither a storage nor a task error."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


def success(value: object) -> Envelope:
    return {"ok": True, "value": value}


def failure(exc: Exception) -> Envelope:
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if ERRORS.get(type(exc).__name__) is type(exc):
        error["fields"] = _arguments(exc)
    if isinstance(exc, t.TaskError):
        error["code"] = exc.code
    return {"ok": False, "error": error}


class Elided(Exception):
    """A success whose value the reply had no room for: send the write again to read it."""


def encoded_reply(outcomes: Sequence[Envelope], single: bool) -> bytes:
    """A job's reply as JSON: its one outcome, or a success holding one per write.

    A reply holds at most ``MAX_REPLY_BYTES`` (a reply past that could not be
    stored), the outcomes first in order: once they have filled it, a success
    whose value has no room left is elided, and a ``VersionConflict`` drops its
    ``current_data``. Errors stay; they are small.
    """
    whole = serialize(outcomes[0] if single else success(list(outcomes)))
    if len(whole) <= MAX_REPLY_BYTES:  # nearly always: one encoding, no elision
        return whole
    parts: list[bytes] = []
    size = 0
    for outcome in outcomes:
        part = serialize(outcome)
        if size + len(part) > MAX_REPLY_BYTES:
            part = serialize(_elided(outcome))
        parts.append(part)
        size += len(part)
    if single:
        return parts[0]
    return b'{"ok":true,"value":[' + b",".join(parts) + b"]}"


def _elided(outcome: Envelope) -> Envelope:
    if outcome["ok"]:
        return {"ok": True, "elided": True}
    fields = outcome["error"].get("fields")
    if isinstance(fields, dict) and fields.get("current_data") is not None:
        return {
            **outcome,
            "error": {**outcome["error"], "fields": {**fields, "current_data": None}},
        }
    return outcome


def label(envelope: Envelope) -> str:
    """``ok``, or the type of the error: how logs, metrics and the CLI name an outcome."""
    return "ok" if envelope["ok"] else str(envelope["error"]["type"])


def tally(reply: Envelope) -> dict[str, int]:
    """A job's reply as outcome counts: one per write of an ``ops`` or ``apply_batch`` reply."""
    value = reply.get("value")
    each = value if reply["ok"] and isinstance(value, list) else [reply]
    if not all(isinstance(e, dict) and isinstance(e.get("ok"), bool) for e in each):
        each = [reply]
    return dict(Counter(label(e) for e in each))


def open_envelope(envelope: object) -> Any:
    """The value of a success envelope; raise the error of a failure envelope."""
    if not isinstance(envelope, dict) or not isinstance(envelope.get("ok"), bool):
        raise RemoteError("BadEnvelope", f"not a job outcome: {envelope!r:.200}")
    if envelope["ok"]:
        if envelope.get("elided") is True:
            raise Elided()
        return envelope.get("value")
    raise rebuild(envelope.get("error"))


def rebuild(error: object) -> Exception:
    """The exception an error envelope describes, built through its constructor."""
    if not isinstance(error, dict):
        return RemoteError("BadEnvelope", repr(error)[:200])
    kind, message = str(error.get("type")), str(error.get("message"))
    cls, fields = ERRORS.get(kind), error.get("fields")
    if cls is None or not isinstance(fields, dict):
        return RemoteError(kind, message)
    params = _parameters(cls)
    kwargs: dict[str, Any] = {}
    for name, param in (params or {}).items():
        value = fields.get(name)
        if param.kind is param.VAR_KEYWORD and isinstance(value, dict):
            kwargs.update(value)
        elif name in fields:
            kwargs[name] = value
    try:
        return cls(**kwargs) if params is not None else cls(fields.get("message", message))
    except TypeError:
        return RemoteError(kind, message)


def _parameters(cls: type[Exception]) -> dict[str, inspect.Parameter] | None:
    """The constructor's parameters; None for ``Exception``'s own, which takes just a message."""
    init = next(
        (
            k.__dict__["__init__"]
            for k in cls.__mro__
            if inspect.isfunction(k.__dict__.get("__init__"))
        ),
        None,
    )
    if init is None:
        return None
    return dict(list(inspect.signature(init).parameters.items())[1:])


def field_names(cls: type[Exception]) -> list[str]:
    """The ``fields`` an error of ``cls`` carries: its constructor's arguments."""
    params = _parameters(cls)
    return ["message"] if params is None else list(params)


def _arguments(exc: Exception) -> dict[str, Any]:
    if _parameters(type(exc)) is None:
        return {"message": str(exc)}
    return {name: _plain(getattr(exc, name)) for name in field_names(type(exc))}


def _plain(value: object) -> object:
    """A constructor argument as JSON (bytes included); anything else as its repr."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool | bytes):
        return value
    return repr(value)

"""Every storage and task error crosses the queue whole: type, message and every field."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from store.errors import StorageError
from store.tasks.errors import TaskError
from worker.protocol.envelope import ERRORS, RemoteError, failure, open_envelope
from worker.protocol.serialization import deserialize, serialize


def _subclasses(base: type[Exception]) -> list[type[Exception]]:
    found = [base]
    for sub in base.__subclasses__():
        found += _subclasses(sub)
    return found


ALL_ERRORS = sorted(
    set(_subclasses(StorageError) + _subclasses(TaskError)), key=lambda c: c.__name__
)

SAMPLES: dict[str, Any] = {
    "str": "a:b\u00e9",
    "int": 7,
    "bytes": b"\x00\xff data",
    "object": "the value",
}


def _sample(annotation: str, name: str) -> Any:
    """A value of every field's type, never a default, so each field is seen to travel."""
    for kind, value in SAMPLES.items():
        if annotation.startswith(kind):
            return value if kind != "int" else value + len(name)
    raise AssertionError(f"no sample for {name}: {annotation}")


def _instance(cls: type[Exception]) -> Exception:
    init = next(k.__dict__["__init__"] for k in cls.__mro__ if "__init__" in k.__dict__)
    if not inspect.isfunction(init):
        return cls("just a message")
    args: dict[str, Any] = {}
    for name, param in list(inspect.signature(init).parameters.items())[1:]:
        if param.kind is param.VAR_KEYWORD:
            args.update({"taskId": "t-1", "nested": {"depth": [1, 2]}})
        else:
            args[name] = _sample(str(param.annotation), name)
    return cls(**args)


@pytest.mark.parametrize("cls", ALL_ERRORS, ids=lambda c: c.__name__)
def test_every_error_round_trips_through_its_constructor(cls: type[Exception]) -> None:
    assert ERRORS.get(cls.__name__) is cls, (
        f"{cls.__name__} is missing from worker.protocol.envelope.ERRORS"
    )
    original = _instance(cls)
    wire = deserialize(serialize(failure(original)))
    with pytest.raises(cls) as raised:
        open_envelope(wire)
    rebuilt = raised.value
    assert type(rebuilt) is cls
    assert str(rebuilt) == str(original)
    assert vars(rebuilt) == vars(original)
    if isinstance(original, TaskError):
        assert wire["error"]["code"] == original.code


def test_bytes_fields_survive_as_bytes() -> None:
    from store import VersionConflict

    wire = deserialize(serialize(failure(VersionConflict("o:t", 1, 2, b"\x00\xff"))))
    with pytest.raises(VersionConflict) as raised:
        open_envelope(wire)
    assert raised.value.current_data == b"\x00\xff"


@pytest.mark.parametrize(
    "error",
    [
        {"type": "NotFound", "message": "m", "fields": {"colour": "red"}},
        {"type": "SystemExit", "message": "m", "fields": {}},
        {"type": "NotFound", "message": "m"},
        "not an object",
    ],
)
def test_unknown_or_malformed_errors_come_back_as_remote_errors(error: object) -> None:
    with pytest.raises(RemoteError):
        open_envelope({"ok": False, "error": error})

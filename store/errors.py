"""Errors of the storage layer.

Every error a backend raises is a ``StorageError``; input that can never
succeed is an ``InvalidArgument`` (also a ``ValueError``) and is refused before
any I/O, so a refused call has changed nothing.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class of every error raised by a storage backend."""


class NotFound(StorageError):
    """The key is absent or its record has expired."""

    def __init__(self, key: str) -> None:
        super().__init__(f"record not found: {key!r}")
        self.key = key


class VersionConflict(StorageError):
    """A compare-and-swap saw another version; ``actual`` is 0 when the key is absent.

    ``current_data`` is the record at version ``actual`` when the backend could
    return it with the refusal, so a retry need not read it again.
    """

    def __init__(
        self, key: str, expected: int, actual: int, current_data: bytes | None = None
    ) -> None:
        super().__init__(f"version conflict on {key!r}: expected {expected}, found {actual}")
        self.key = key
        self.expected = expected
        self.actual = actual
        self.current_data = current_data


class CapacityExceeded(StorageError):
    """Creating the key would put the owner above its bound of live records."""

    def __init__(self, owner_id: str, limit: int) -> None:
        super().__init__(f"owner {owner_id!r} already holds its limit of {limit} live records")
        self.owner_id = owner_id
        self.limit = limit


class OpIdReused(StorageError):
    """The op id already names another operation's write; nothing was applied.

    An op id replays the first outcome of the same operation only, so a
    retried write is safe and a reused id is a caller's bug, not a replay.
    """

    def __init__(self, op_id: str, first: str, attempted: str) -> None:
        super().__init__(f"op id {op_id!r} names a {first}; it cannot name a {attempted} too")
        self.op_id = op_id
        self.first = first
        self.attempted = attempted


class OpWithdrawn(StorageError):
    """The op id was withdrawn (``withdraw_op``) and this attempt was sent before that.

    A caller that gave up on a write was told it was not applied; every copy
    of the attempt it gave up on is refused from then on, so that stays true.
    An attempt sent after the withdrawal, under the same op id, is a new one.
    """

    def __init__(self, op_id: str) -> None:
        super().__init__(f"op id {op_id!r} was withdrawn; this attempt of it can never apply")
        self.op_id = op_id


class InvalidArgument(StorageError, ValueError):
    """The call can never succeed as made: wrong type, out of range, malformed."""


class InvalidKey(InvalidArgument):
    """An owner id, task id or key that fails validation; it never reaches the server."""

    def __init__(self, value: object, reason: str) -> None:
        super().__init__(f"invalid key {_shorten(value)}: {reason}")
        self.value = value
        self.reason = reason


class RecordTooLarge(InvalidArgument):
    """The record's data is above the backend's ``max_record_bytes``."""

    def __init__(self, key: str, limit: int, actual: int) -> None:
        super().__init__(f"record for {key!r} is {actual} bytes, above the limit of {limit}")
        self.key = key
        self.limit = limit
        self.actual = actual


class BackendError(StorageError):
    """The server failed or could not be reached; the driver's error is ``__cause__``."""

    def __init__(self, key: str | None, message: str) -> None:
        where = f" (key {key!r})" if key is not None else ""
        super().__init__(f"{message}{where}")
        self.key = key
        self.message = message


def _shorten(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


class WriteNotConfirmed(BackendError):
    """The primary applied the write but no replica confirmed it in time (``durable_wait_ms``).

    The write may survive or may be lost if the primary fails now. Retrying
    with the same op id is safe: it replays the first outcome and waits again.
    """

    def __init__(self, key: str | None, wait_ms: int) -> None:
        super().__init__(key, f"no replica confirmed the write within {wait_ms} ms")
        self.wait_ms = wait_ms

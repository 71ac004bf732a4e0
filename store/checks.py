"""Argument checks shared by every backend, run before any I/O.

Python's type hints are not enforced at run time and job payloads arrive
from other processes, so each public backend method checks what it was given.
"""

from __future__ import annotations

from dataclasses import dataclass

from store.backend import BatchOp
from store.errors import InvalidArgument, RecordTooLarge
from store.keys import parse_key

DEFAULT_MAX_RECORD_BYTES = 4 * 1024 * 1024
DEFAULT_OP_TTL_MS = 24 * 3600 * 1000
MAX_PAGE_LIMIT = 1000
MAX_OP_ID_CHARS = 256
_MAX_MS = 2**52  # exact in a double, so Redis sorted-set scores keep it


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_data(key: str, data: object, max_bytes: int) -> bytes:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidArgument(f"data must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise RecordTooLarge(key, max_bytes, len(data))
    return data


def check_version(value: object) -> int:
    if not _is_int(value):
        raise InvalidArgument(f"expected_version must be an int, not {type(value).__name__}")
    assert isinstance(value, int)
    if not 1 <= value < _MAX_MS:
        raise InvalidArgument(f"expected_version must be at least 1, not {value}")
    return value


def check_ms(name: str, value: object) -> int | None:
    if value is None:
        return None
    if not _is_int(value):
        raise InvalidArgument(f"{name} must be an int of milliseconds, not {type(value).__name__}")
    assert isinstance(value, int)
    if not 0 <= value < _MAX_MS:
        raise InvalidArgument(f"{name} out of range: {value}")
    return value


def check_positive(name: str, value: object, maximum: int | None = None) -> int:
    if not _is_int(value):
        raise InvalidArgument(f"{name} must be an int, not {type(value).__name__}")
    assert isinstance(value, int)
    if value < 1 or (maximum is not None and value > maximum):
        bound = f" and at most {maximum}" if maximum is not None else ""
        raise InvalidArgument(f"{name} must be at least 1{bound}, not {value}")
    return value


def check_capacity(value: object) -> int | None:
    return None if value is None else check_positive("max_records_per_owner", value)


def check_op_name(value: object, default: str) -> str:
    """The name an op id is bound to: an identifier, ``default`` when not given."""
    if value is None:
        return default
    if not isinstance(value, str) or not value.isidentifier() or len(value) > 64:
        raise InvalidArgument(f"op_name must be an identifier of at most 64 chars: {value!r:.80}")
    return value


def check_op_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_OP_ID_CHARS:
        raise InvalidArgument(f"op_id must be a non-empty str of at most {MAX_OP_ID_CHARS} chars")
    return value


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """A put or CAS whose every argument has been checked."""

    key: str
    owner_id: str
    task_id: str
    data: bytes
    expected_version: int | None
    expires_at_ms: int | None
    created_at_ms: int | None
    op_id: str | None
    capacity: int | None
    op_name: str
    """The operation an op id is bound to (``put``, ``put_if_version``, a task operation)."""
    sent_at_ms: int | None
    """When this attempt of the op was sent; a withdrawal refuses attempts up to its own."""


def write_request(
    key: str,
    data: object,
    max_bytes: int,
    *,
    expected_version: int | None = None,
    expires_at_ms: object = None,
    created_at_ms: object = None,
    op_id: object = None,
    max_records_per_owner: object = None,
    op_name: object = None,
    sent_at_ms: object = None,
) -> WriteRequest:
    """Check a put, or a CAS (``expected_version`` from ``check_version``), for any backend."""
    owner_id, task_id = parse_key(key)
    default = "put" if expected_version is None else "put_if_version"
    return WriteRequest(
        key,
        owner_id,
        task_id,
        check_data(key, data, max_bytes),
        expected_version,
        check_ms("expires_at_ms", expires_at_ms),
        check_ms("created_at_ms", created_at_ms),
        check_op_id(op_id),
        check_capacity(max_records_per_owner),
        check_op_name(op_name, default),
        check_ms("sent_at_ms", sent_at_ms),
    )


def batch_request(op: object, max_bytes: int) -> WriteRequest:
    """``write_request`` for one op of a batch."""
    if not isinstance(op, BatchOp):
        raise InvalidArgument(f"a batch holds BatchOp items, not {type(op).__name__}")
    return write_request(
        op.key,
        op.data,
        max_bytes,
        expected_version=None
        if op.expected_version is None
        else check_version(op.expected_version),
        expires_at_ms=op.expires_at_ms,
        created_at_ms=op.created_at_ms,
        op_id=op.op_id,
        max_records_per_owner=op.max_records_per_owner,
        sent_at_ms=op.sent_at_ms,
    )


class CheckedWrites:
    """``put`` and ``put_if_version`` for every backend: check, then ``_apply_write``.

    A backend sets ``_max_record_bytes`` and implements ``_apply_write``; the
    arguments are checked here once, before any I/O.
    """

    _max_record_bytes: int

    async def _apply_write(self, w: WriteRequest) -> int:
        raise NotImplementedError

    async def put(
        self,
        key: str,
        data: bytes,
        *,
        expires_at_ms: int | None = None,
        created_at_ms: int | None = None,
        op_id: str | None = None,
        max_records_per_owner: int | None = None,
        op_name: str | None = None,
        sent_at_ms: int | None = None,
    ) -> int:
        return await self._apply_write(
            write_request(
                key,
                data,
                self._max_record_bytes,
                expires_at_ms=expires_at_ms,
                created_at_ms=created_at_ms,
                op_id=op_id,
                max_records_per_owner=max_records_per_owner,
                op_name=op_name,
                sent_at_ms=sent_at_ms,
            )
        )

    async def put_if_version(
        self,
        key: str,
        data: bytes,
        expected_version: int,
        *,
        expires_at_ms: int | None = None,
        created_at_ms: int | None = None,
        op_id: str | None = None,
        op_name: str | None = None,
        sent_at_ms: int | None = None,
    ) -> int:
        return await self._apply_write(
            write_request(
                key,
                data,
                self._max_record_bytes,
                expected_version=check_version(expected_version),
                expires_at_ms=expires_at_ms,
                created_at_ms=created_at_ms,
                op_id=op_id,
                op_name=op_name,
                sent_at_ms=sent_at_ms,
            )
        )

"""The stored task record and its MCP wire form.

Serialization is canonical (sorted keys, no whitespace, UTF-8), so one record
always gives the same bytes, and it round-trips exactly: timestamps are kept
to the millisecond, as the wire shows them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_serializer,
    field_validator,
    model_serializer,
)
from pydantic.alias_generators import to_camel

from store.tasks.status import TaskStatus


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(microsecond=(ms % 1000) * 1000)


def datetime_to_ms(value: datetime) -> int:
    return int(value.timestamp()) * 1000 + value.microsecond // 1000


def iso_ms(value: datetime) -> str:
    """ISO 8601 in UTC with milliseconds: ``2025-11-25T10:00:00.000Z``."""
    return (
        value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    )


def canonical_json(value: Any) -> bytes:
    """The one byte form of a JSON value; NaN and infinities are refused."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )


class Task(_Model):
    """The MCP task object (``tasks/get`` answers with it)."""

    task_id: str
    status: TaskStatus
    status_message: str | None = None
    created_at: datetime
    last_updated_at: datetime
    ttl: int | None = Field(description="milliseconds from creation; null when unlimited")
    poll_interval: int | None = None

    @field_validator("created_at", "last_updated_at")
    @classmethod
    def _utc_ms(cls, value: datetime) -> datetime:
        return ms_to_datetime(datetime_to_ms(value))

    @field_serializer("created_at", "last_updated_at")
    def _iso(self, value: datetime) -> str:
        return iso_ms(value)

    @model_serializer(mode="wrap")
    def _omit_empty_message(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if self.status_message is None:
            data.pop("statusMessage" if info.by_alias else "status_message", None)
        return data


class TaskRecord(_Model):
    """A task as stored: the wire task plus owner, request, variables and outcome.

    ``error`` is the JSON-RPC error of a failed task. ``input_requests`` are
    the server-to-client requests an ``input_required`` task waits on, by
    server-minted key, and ``input_responses`` the answers received so far.
    The three are left out of the stored bytes while empty, so records written
    before they existed read and write back unchanged.
    """

    task: Task
    owner_id: str
    request_method: str
    variables: dict[str, JsonValue] = Field(default_factory=dict)
    result: JsonValue = None
    error: dict[str, JsonValue] | None = None
    input_requests: dict[str, JsonValue] = Field(default_factory=dict)
    input_responses: dict[str, JsonValue] = Field(default_factory=dict)
    expires_at: datetime | None = None

    @model_serializer(mode="wrap")
    def _omit_empty_outcome(
        self, handler: SerializerFunctionWrapHandler, info: SerializationInfo
    ) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name, alias in _OPTIONAL_OUTCOME:
            if not getattr(self, name):
                data.pop(alias if info.by_alias else name, None)
        return data

    @field_validator("expires_at")
    @classmethod
    def _utc_ms(cls, value: datetime | None) -> datetime | None:
        return None if value is None else ms_to_datetime(datetime_to_ms(value))

    @field_serializer("expires_at")
    def _iso(self, value: datetime | None) -> str | None:
        return None if value is None else iso_ms(value)

    @classmethod
    def started(
        cls,
        task_id: str,
        owner_id: str,
        request_method: str,
        now_ms: int,
        ttl_ms: int | None,
        poll_interval_ms: int | None = None,
    ) -> TaskRecord:
        """A new task, ``working`` since ``now_ms``, expiring ``ttl_ms`` later (or never)."""
        now = ms_to_datetime(now_ms)
        return cls(
            task=Task(
                task_id=task_id,
                status=TaskStatus.WORKING,
                created_at=now,
                last_updated_at=now,
                ttl=ttl_ms,
                poll_interval=poll_interval_ms,
            ),
            owner_id=owner_id,
            request_method=request_method,
            expires_at=None if ttl_ms is None else ms_to_datetime(now_ms + ttl_ms),
        )

    @property
    def task_id(self) -> str:
        return self.task.task_id

    @property
    def status(self) -> TaskStatus:
        return self.task.status

    @property
    def expires_at_ms(self) -> int | None:
        return None if self.expires_at is None else datetime_to_ms(self.expires_at)

    def to_bytes(self) -> bytes:
        return canonical_json(self.model_dump(mode="json", by_alias=True))

    @classmethod
    def from_bytes(cls, data: bytes) -> TaskRecord:
        return cls.model_validate_json(data)

    def to_wire(self, *, include_variables: bool = False) -> dict[str, Any]:
        """The MCP task object of protocol 2025-11-25 (``store.tasks.wire_2025``); with
        ``include_variables``, the variables under ``_meta``.

        A tool result with ``isError`` is a ``failed`` task at that version (SEP-1686),
        while the record (and SEP-2663) says ``completed``.
        """
        wire: dict[str, Any] = self.task.model_dump(mode="json", by_alias=True)
        failed = isinstance(self.result, dict) and self.result.get("isError") is True
        if self.status is TaskStatus.COMPLETED and failed:
            wire["status"] = TaskStatus.FAILED.value
        if include_variables:
            wire["_meta"] = {"variables": self.variables}
        return wire


_OPTIONAL_OUTCOME = (
    ("error", "error"),
    ("input_requests", "inputRequests"),
    ("input_responses", "inputResponses"),
)

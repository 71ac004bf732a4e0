"""Opaque page cursors shared by every backend.

A cursor names the last record of a page by its place in the listing order,
``(created_at_ms, task_id)``, not by an offset, so records added or deleted
between two pages neither repeat nor skip any other record.
"""

from __future__ import annotations

import base64
import binascii

from store.errors import InvalidArgument
from store.keys import validate_id

_VERSION = "1"


def encode_cursor(created_at_ms: int, task_id: str) -> str:
    raw = f"{_VERSION}|{created_at_ms}|{task_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: object) -> tuple[int, str]:
    """``(created_at_ms, task_id)`` of a cursor, or ``InvalidArgument``."""
    if not isinstance(cursor, str) or not cursor or len(cursor) > 1024:
        raise InvalidArgument(f"malformed cursor: {cursor!r:.80}")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, created, task_id = raw.split("|", 2)
        if version != _VERSION or not created.isdecimal():
            raise ValueError(raw)
        return int(created), validate_id(task_id, "task id")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidArgument(f"malformed cursor: {cursor!r:.80}") from None

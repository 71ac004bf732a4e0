"""Keys are ``"<owner_id>:<task_id>"``; both ids are validated here, once.

The rules keep every id safe inside a Redis Cluster hash tag (no ``{`` ``}``),
unambiguous to split (no ``:``) and printable (no control characters).
"""

from __future__ import annotations

import re

from store.errors import InvalidKey

MAX_ID_BYTES = 256
SEPARATOR = ":"
# ':' '{' '}' and Unicode's control characters (category Cc is exactly these ranges).
_FORBIDDEN = re.compile("[:{}\x00-\x1f\x7f-\x9f]")


def validate_id(value: object, what: str = "id") -> str:
    """Return ``value`` if it is a valid owner or task id, else raise ``InvalidKey``."""
    if not isinstance(value, str):
        raise InvalidKey(value, f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise InvalidKey(value, f"{what} must not be empty")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKey(value, f"{what} is not valid Unicode (lone surrogate)") from None
    if size > MAX_ID_BYTES:
        raise InvalidKey(value, f"{what} is {size} bytes in UTF-8, above {MAX_ID_BYTES}")
    found = _FORBIDDEN.search(value)
    if found is not None:
        kind = "" if found.group() in ":{}" else "control character "
        raise InvalidKey(value, f"{what} must not contain {kind}{found.group()!r}")
    return value


def make_key(owner_id: str, task_id: str) -> str:
    """The storage key of one task of one owner."""
    return f"{validate_id(owner_id, 'owner id')}{SEPARATOR}{validate_id(task_id, 'task id')}"


def make_prefix(owner_id: str) -> str:
    """The prefix shared by every key of one owner, as ``list_by_prefix`` takes it."""
    return f"{validate_id(owner_id, 'owner id')}{SEPARATOR}"


def parse_key(key: object) -> tuple[str, str]:
    """Split a key into ``(owner_id, task_id)``, validating both."""
    if not isinstance(key, str):
        raise InvalidKey(key, f"key must be a str, not {type(key).__name__}")
    owner_id, sep, task_id = key.partition(SEPARATOR)
    if not sep:
        raise InvalidKey(key, "key must be '<owner_id>:<task_id>'")
    return validate_id(owner_id, "owner id"), validate_id(task_id, "task id")


def parse_prefix(prefix: object) -> str:
    """The owner id of a ``make_prefix`` prefix."""
    if not isinstance(prefix, str) or not prefix.endswith(SEPARATOR):
        raise InvalidKey(prefix, "prefix must be '<owner_id>:' as make_prefix returns it")
    return validate_id(prefix[: -len(SEPARATOR)], "owner id")

"""JSON job and result serialization for arq: never pickle.

A producer must not be able to make the worker run code, so payloads are
plain JSON. Bytes travel as ``{"__bytes__": "<base64>"}``; an exception that
arq itself puts in a result (a timeout, an unknown function) travels as
``{"__error__": {"type": ..., "message": ...}}``. Anything that does not decode
makes arq fail the job without running it.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

_BYTES = "__bytes__"
_ERROR = "__error__"


def _encode(value: object) -> object:
    if isinstance(value, bytes | bytearray | memoryview):
        return {_BYTES: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, BaseException):
        return {_ERROR: {"type": type(value).__name__, "message": str(value)}}
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _decode(obj: dict[str, Any]) -> object:
    if len(obj) == 1 and _BYTES in obj:
        encoded = obj[_BYTES]
        if not isinstance(encoded, str):
            raise ValueError("__bytes__ must hold a base64 string")
        try:
            return base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"bad base64 in __bytes__: {exc}") from None
    return obj


SUCCEEDED = b'{"s":true,'
"""How an arq result of a job that succeeded starts: ``serialize`` writes ``s`` first."""


def serialize(value: object) -> bytes:
    if isinstance(value, dict) and "s" in value:
        # An arq result: its outcome first, so who only needs that reads a prefix.
        value = {"s": value["s"], **value}
    return json.dumps(value, default=_encode, separators=(",", ":"), allow_nan=False).encode()


def deserialize(data: bytes) -> Any:
    """Decode a payload; raises ``ValueError`` on anything that is not our JSON."""
    value = json.loads(data.decode("utf-8"), object_hook=_decode)
    if not isinstance(value, dict):
        raise ValueError(f"a job or result must be an object, not {type(value).__name__}")
    # arq spreads "a" and "k" into the call: they must be a list and an object.
    if not isinstance(value.get("a", []), list) or not isinstance(value.get("k", {}), dict):
        raise ValueError("job arguments must be a list and keyword arguments an object")
    return value

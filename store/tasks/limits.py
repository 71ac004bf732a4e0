"""Checks of caller-supplied values against the StoreConfig limits.

Values are walked iteratively, so a nesting bomb cannot exhaust the stack.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from store.tasks.config import StoreConfig
from store.tasks.errors import InvalidParams, VariableSizeExceeded
from store.tasks.record import canonical_json


def check_result(name: str, value: Any, config: StoreConfig) -> None:
    """A tool's result or error: plain JSON, not too deep, at most ``max_result_bytes`` in all.

    Its strings are not bounded one by one: a tool returns files, pages and
    reports as one long text.
    """
    check_json_value(name, value, config, strings=False)
    size = len(canonical_json(value))
    if size > config.max_result_bytes:
        raise VariableSizeExceeded(
            f"{name!r} takes {size} bytes, above the limit of {config.max_result_bytes}",
            name=name,
            limit=config.max_result_bytes,
            actual=size,
        )


def check_json_value(name: str, value: Any, config: StoreConfig, *, strings: bool = True) -> None:
    """Refuse values that are not plain JSON, nest too deep or (``strings``) hold too long
    a string."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth + 1 > config.max_depth:
                raise VariableSizeExceeded(
                    f"{name!r} nests deeper than {config.max_depth} levels",
                    name=name,
                    limit=config.max_depth,
                    actual=depth + 1,
                )
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise InvalidParams(
                            f"{name!r} has a non-string key {key!r:.40}", variable=name
                        )
                    _check_string(name, key, config, strings)
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_string(name, item, config, strings)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidParams(f"{name!r} holds {item}, which JSON cannot carry", variable=name)
        elif item is not None and not isinstance(item, bool | int | float):
            raise InvalidParams(
                f"{name!r} holds a {type(item).__name__}, which is not JSON", variable=name
            )


def _check_string(name: str, text: str, config: StoreConfig, bounded: bool = True) -> None:
    size = len(text.encode("utf-8", "surrogatepass"))
    if bounded and size > config.max_string_bytes:
        raise VariableSizeExceeded(
            f"{name!r} holds a string of {size} bytes, above {config.max_string_bytes}",
            name=name,
            limit=config.max_string_bytes,
            actual=size,
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidParams(f"{name!r} holds a lone surrogate", variable=name) from None


def merge_variables(
    current: Mapping[str, Any], changes: object, config: StoreConfig
) -> dict[str, Any]:
    """``current`` updated by ``changes``; a None value deletes its variable."""
    if not isinstance(changes, Mapping):
        raise InvalidParams(f"variables must be an object, not {type(changes).__name__}")
    merged = dict(current)
    for name, value in changes.items():
        if not isinstance(name, str) or not name:
            raise InvalidParams(f"variable names must be non-empty strings: {name!r:.40}")
        _check_string(name, name, config)
        if value is None:
            merged.pop(name, None)
        else:
            check_json_value(name, value, config)
            merged[name] = value
    size = len(canonical_json(merged))
    if size > config.max_variables_bytes:
        raise VariableSizeExceeded(
            f"variables would take {size} bytes, above {config.max_variables_bytes}",
            name="*",
            limit=config.max_variables_bytes,
            actual=size,
        )
    return merged

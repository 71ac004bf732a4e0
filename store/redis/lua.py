"""Lua scripts described once in Python: name, KEYS, ARGV and reply.

A description names its KEYS and ARGV with NamedTuple types and its reply
with a NamedTuple (or a scalar type). Loading a script checks the ``-- KEYS:``,
``-- ARGV:`` and ``-- REPLY:`` header lines of its ``.lua`` file against that
description, so a script and its callers cannot drift apart: a mismatch fails
at import. A variable number of keys or arguments is a last field typed
``tuple[str, ...]`` and a header name ending in ``...``. Code shared by several
scripts comes before the body: ``header`` (text, such as constants generated from
Python declarations), then the ``prelude`` files. Calls flatten the
typed keys and arguments and come back as the typed reply, never as a list
read by index.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Coroutine, Sequence
from importlib import resources
from typing import Any, Generic, NamedTuple, TypeVar, cast, get_origin, get_type_hints

from opentelemetry import trace
from opentelemetry.trace import SpanKind
from redis.exceptions import NoScriptError

from store.tracing import recording

KeysT = TypeVar("KeysT", bound=tuple[Any, ...])
ArgsT = TypeVar("ArgsT", bound=tuple[Any, ...])
ReplyT = TypeVar("ReplyT")

_HEADER = re.compile(r"^-- (KEYS|ARGV|REPLY): (.*)$", re.MULTILINE)


class Script(Generic[KeysT, ArgsT, ReplyT]):
    """One script's description and text, checked against each other when loaded."""

    __slots__ = ("_flat_args", "_flat_keys", "_nkeys", "decode", "name", "sha", "source")

    def __init__(
        self,
        package: str,
        name: str,
        *,
        keys: type[KeysT],
        args: type[ArgsT],
        reply: type[ReplyT],
        prelude: str | tuple[str, ...] = (),
        header: str = "",
    ) -> None:
        files = resources.files(package)
        body = files.joinpath(f"{name}.lua").read_text(encoding="utf-8")
        headers = dict(_HEADER.findall(body))
        expected = {
            "KEYS": _declared(keys),
            "ARGV": _declared(args),
            "REPLY": _declared(reply) if _is_named_tuple(reply) else None,
        }
        for kind, names in expected.items():
            found = headers.get(kind)
            if found is None or (names is not None and _names(found) != names):
                raise RuntimeError(
                    f"{package}/{name}.lua declares {kind}: {found!r}; "
                    f"its description says {', '.join(names or ('one value',))}"
                )
        self.name = name
        shared = (prelude,) if isinstance(prelude, str) else prelude
        self.source = "\n".join(
            [
                *([header] if header else []),
                *(files.joinpath(p).read_text(encoding="utf-8") for p in shared),
                body,
            ]
        )
        self.sha = hashlib.sha1(self.source.encode("utf-8")).hexdigest()
        self._flat_keys = _is_variadic(keys)
        self._flat_args = _is_variadic(args)
        self._nkeys = len(_declared(keys))
        # The typed reply from what Redis answered; ``_make`` also checks the count.
        self.decode: Callable[[Any], ReplyT] = (
            cast(Any, reply)._make if _is_named_tuple(reply) else reply
        )

    def arguments(self, keys: KeysT, args: ArgsT) -> tuple[Any, ...]:
        """What follows the SHA (EVALSHA) or the source (EVAL): numkeys, KEYS, ARGV."""
        if not (self._flat_keys or self._flat_args):
            return (self._nkeys, *keys, *args)
        flat_keys = _flatten(keys) if self._flat_keys else keys
        flat_args = _flatten(args) if self._flat_args else args
        return (len(flat_keys), *flat_keys, *flat_args)

    async def run(self, client: Any, keys: KeysT, args: ArgsT) -> ReplyT:
        """EVALSHA on ``client``; a server that forgot the script (a restart, a promoted
        replica) is sent it once."""
        arguments = self.arguments(keys, args)
        with self.span(keys, 1):
            try:
                raw = await client.execute_command("EVALSHA", self.sha, *arguments)
            except NoScriptError:
                await client.script_load(self.source)
                raw = await client.execute_command("EVALSHA", self.sha, *arguments)
        return self.decode(raw)

    def span(self, keys: Sequence[Any], calls: int) -> Any:
        """The ``CLIENT`` span of ``calls`` calls of this script (database conventions): the
        script's name and the owner its keys belong to, never an argument."""
        if not recording():
            return contextlib.nullcontext()
        attributes: dict[str, Any] = {
            "db.system.name": "redis",
            "db.operation.name": "EVALSHA",
            "db.stored_procedure.name": self.name,
        }
        if calls > 1:
            attributes["db.operation.batch.size"] = calls
        owner = _owner(keys) if calls == 1 else None  # a pipeline may span owners
        if owner is not None:
            attributes["taskstore.owner"] = owner
        return _TRACER.start_as_current_span(
            f"EVALSHA {self.name}", kind=SpanKind.CLIENT, attributes=attributes
        )


class BoundScript(Generic[KeysT, ArgsT, ReplyT]):
    """A script on one client, for callers that always use the same client."""

    __slots__ = ("_client", "script")

    def __init__(self, client: Any, script: Script[KeysT, ArgsT, ReplyT]) -> None:
        self._client = client
        self.script = script

    def __call__(self, keys: KeysT, args: ArgsT) -> Coroutine[Any, Any, ReplyT]:
        return self.script.run(self._client, keys, args)

    async def load(self) -> None:
        """Load the script (on every primary of a cluster)."""
        await self._client.script_load(self.script.source)

    def queue(self, pipe: Any, keys: KeysT, args: ArgsT) -> None:
        """Add a call to a non-transactional pipeline; NOSCRIPT comes back as its result."""
        pipe.execute_command("EVALSHA", self.script.sha, *self.script.arguments(keys, args))


_TRACER = trace.get_tracer("taskstore.store")


def _owner(keys: Sequence[Any]) -> str | None:
    """The owner id in the hash tag of the first key that has one (``ts:{owner}:...``)."""
    for key in keys:
        if isinstance(key, str) and "{" in key:
            return key.partition("{")[2].partition("}")[0]
    return None


class NoArgs(NamedTuple):
    """ARGV of a script that takes none."""


def _is_named_tuple(kind: type[Any]) -> bool:
    return issubclass(kind, tuple) and hasattr(kind, "_fields")


def _is_variadic(kind: type[tuple[Any, ...]]) -> bool:
    fields: tuple[str, ...] = getattr(kind, "_fields", ())
    return bool(fields) and get_origin(get_type_hints(kind)[fields[-1]]) is tuple


def _declared(kind: type[Any]) -> tuple[str, ...]:
    fields: tuple[str, ...] = kind._fields
    if _is_variadic(kind):
        return (*fields[:-1], fields[-1] + "...")
    return fields


def _names(header: str) -> tuple[str, ...]:
    return () if header.strip() == "(none)" else tuple(n.strip() for n in header.split(","))


def _flatten(values: Sequence[Any]) -> tuple[Any, ...]:
    return (*values[:-1], *values[-1])

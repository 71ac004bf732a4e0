"""The Lua scripts, loaded from the ``.lua`` files beside this module.

Each script's header declares its KEYS and ARGV; ``load`` checks those
declarations against the names the Python caller passes, so a script and its
caller cannot drift apart silently: a mismatch fails at import.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

_HEADER = re.compile(r"^-- (KEYS|ARGV): (.*)$", re.MULTILINE)


@dataclass(frozen=True)
class ScriptSource:
    name: str
    keys: tuple[str, ...]
    argv: tuple[str, ...]
    text: str


def _read(filename: str) -> str:
    return resources.files(__package__).joinpath(filename).read_text(encoding="utf-8")


def _declared(header: str) -> tuple[str, ...]:
    return () if header.strip() == "(none)" else tuple(n.strip() for n in header.split(","))


def load(name: str, *, keys: tuple[str, ...], argv: tuple[str, ...]) -> ScriptSource:
    """Read ``<name>.lua``, check its header against ``keys`` and ``argv``, prepend the library."""
    body = _read(f"{name}.lua")
    declared = {kind: _declared(names) for kind, names in _HEADER.findall(body)}
    if declared.get("KEYS") != keys or declared.get("ARGV") != argv:
        raise RuntimeError(
            f"{name}.lua declares KEYS {declared.get('KEYS')} ARGV {declared.get('ARGV')}, "
            f"its caller passes KEYS {keys} ARGV {argv}"
        )
    return ScriptSource(name, keys, argv, _read("_lib.lua") + "\n" + body)


WRITE = load(
    "write", keys=("record", "index", "expiry", "op"), argv=("task_id", "data", "op_id", "options")
)
GET = load("get", keys=("record",), argv=())
DELETE = load(
    "delete", keys=("record", "index", "expiry", "op"), argv=("task_id", "op_id", "op_ttl_ms")
)
LIST = load(
    "list",
    keys=("index", "expiry"),
    argv=("record_prefix", "descending", "after_score", "after_task", "limit"),
)
COUNT = load("count", keys=("index", "expiry"), argv=())
SWEEP = load("sweep", keys=("index", "expiry"), argv=("record_prefix", "batch"))
REAP_INDEX = load("reap_index", keys=("index", "expiry"), argv=("record_prefix", "start", "count"))
REINDEX = load("reindex", keys=("record", "index", "expiry"), argv=("task_id",))


class BoundScript:
    """One script on one client: EVALSHA, loading the script again after NOSCRIPT.

    Leaner than redis-py's ``AsyncScript`` on the hot path (no per-call import
    or tuple building); a server restart or a promoted replica, which forget
    scripts, cost one SCRIPT LOAD.
    """

    __slots__ = ("_client", "_nkeys", "sha", "source")

    def __init__(self, client: Any, source: ScriptSource) -> None:
        self._client = client
        self.source = source
        self.sha = hashlib.sha1(source.text.encode("utf-8")).hexdigest()
        self._nkeys = len(source.keys)

    async def __call__(self, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
        try:
            return await self._client.execute_command(
                "EVALSHA", self.sha, self._nkeys, *keys, *args
            )
        except NoScriptError:
            await self.load()
            return await self._client.execute_command(
                "EVALSHA", self.sha, self._nkeys, *keys, *args
            )

    async def load(self) -> None:
        """Load the script (on every primary of a cluster)."""
        await self._client.script_load(self.source.text)

    def queue(self, pipe: Any, keys: Sequence[str], args: Sequence[Any] = ()) -> None:
        """Add a call to a non-transactional pipeline; NOSCRIPT comes back as its result."""
        pipe.execute_command("EVALSHA", self.sha, self._nkeys, *keys, *args)

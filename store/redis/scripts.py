"""The Lua scripts, loaded from the ``.lua`` files beside this module.

Each script's header declares its KEYS and ARGV; ``load`` checks those
declarations against the names the Python caller passes, so a script and its
caller cannot drift apart silently: a mismatch fails at import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

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
    "write",
    keys=("record", "index", "expiry", "op"),
    argv=(
        "task_id",
        "data",
        "expected_version",
        "expires_at_ms",
        "created_at_ms",
        "op_id",
        "capacity",
        "op_ttl_ms",
    ),
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

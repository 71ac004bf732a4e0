"""Redis key schema: every key of one owner shares the hash tag ``{owner}``.

Owner ids cannot contain ``{`` or ``}``, so the tag is exactly the owner id
and every script, which only touches keys of one owner, runs on one cluster
slot. With the default prefix ``ts``:

========================  ===========  ==========================================
key                       type         holds
========================  ===========  ==========================================
``ts:{o}:t:<task>``       hash         ``v`` version, ``d`` data, ``e`` expiry ms,
                                       ``c`` creation ms, ``o`` last op id;
                                       PEXPIREAT at the expiry
``ts:{o}:idx``            sorted set   task ids by creation ms
``ts:{o}:exp``            sorted set   task ids by expiry ms (expiring ones only)
``ts:{o}:op:<op_id>``     string       first outcome of an op id, expires
``ts:due``                sorted set   owner ids by their earliest expiry
``ts:reap``               hash         the reaper's SCAN cursor, one per node
========================  ===========  ==========================================
"""

from __future__ import annotations

from dataclasses import dataclass

from store.errors import InvalidArgument

_REMEMBERED_OWNERS = 10_000


def glob_escaped(text: str) -> str:
    """``text`` matched literally in a SCAN MATCH pattern."""
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True, slots=True)
class OwnerKeys:
    """The keys of one owner."""

    index: str
    expiry: str
    record_prefix: str
    op_prefix: str

    def record(self, task_id: str) -> str:
        return self.record_prefix + task_id

    def op(self, op_id: str | None) -> str:
        return self.op_prefix + (op_id or "")


@dataclass(frozen=True, slots=True)
class ParsedKey:
    owner_id: str
    kind: str  # "record", "index", "expiry" or "op"
    name: str  # task id or op id; empty for index and expiry


class KeySchema:
    def __init__(self, prefix: str = "ts") -> None:
        if (
            not isinstance(prefix, str)
            or not prefix
            or any(c in "{}" or not c.isprintable() for c in prefix)
        ):
            raise InvalidArgument(f"key prefix must be printable, without braces: {prefix!r}")
        self.prefix = prefix
        self.due = f"{prefix}:due"
        self.reap = f"{prefix}:reap"
        self._owner_start = f"{prefix}:{{"
        self._owners: dict[str, OwnerKeys] = {}

    def owner(self, owner_id: str) -> OwnerKeys:
        """The keys of one owner, remembered for the owners seen most recently."""
        keys = self._owners.get(owner_id)
        if keys is None:
            if len(self._owners) >= _REMEMBERED_OWNERS:
                self._owners.clear()
            tag = f"{self._owner_start}{owner_id}}}:"
            keys = OwnerKeys(f"{tag}idx", f"{tag}exp", f"{tag}t:", f"{tag}op:")
            self._owners[owner_id] = keys
        return keys

    def scan_pattern(self) -> str:
        """A SCAN MATCH pattern for every owner key under this prefix."""
        return f"{glob_escaped(self.prefix)}:{{*}}:*"

    def parse(self, key: str) -> ParsedKey | None:
        """The owner and kind of one of this schema's owner keys, else None."""
        if not key.startswith(self._owner_start):
            return None
        owner_id, sep, rest = key[len(self._owner_start) :].partition("}:")
        if not sep or not owner_id:
            return None
        if rest == "idx":
            return ParsedKey(owner_id, "index", "")
        if rest == "exp":
            return ParsedKey(owner_id, "expiry", "")
        kind, sep, name = rest.partition(":")
        if sep and name and kind in ("t", "op"):
            return ParsedKey(owner_id, "record" if kind == "t" else "op", name)
        return None

"""The soak test's history and its checker.

Producers log every operation they made, with what it returned. A task's
history is explained when some order of its acknowledged mutations, each
applied to the state the previous one left, gives exactly the state each
returned and, at the end, the state read back. Mutations whose outcome the
producer never learned (a timeout) may be placed anywhere or left out.

The state kept is what the operations can change: status, the names of the
variables (each set_variables adds one name no other call uses) and the
result (each completion's is unique), so a lost or doubled update shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from store.tasks import TaskRecord, TaskStatus
from store.tasks.status import can_transition

MUTATIONS = ("update_status", "set_variables", "complete", "cancel")


@dataclass(frozen=True)
class State:
    status: str
    variables: frozenset[str]
    result: str | None

    @classmethod
    def of(cls, record: TaskRecord) -> State:
        result = record.result if isinstance(record.result, str) else None
        return cls(record.status.value, frozenset(record.variables), result)

    def to_json(self) -> list[Any]:
        return [self.status, sorted(self.variables), self.result]

    @classmethod
    def from_json(cls, value: list[Any]) -> State:
        return cls(value[0], frozenset(value[1]), value[2])


@dataclass(frozen=True)
class Mutation:
    op: str
    arg: str  # the target status, the variable's name, or the result
    status: str | None = None  # complete's terminal status
    after: State | None = None  # what it returned; None when unknown

    def apply(self, state: State) -> State | None:
        """The state after this mutation, or None where the store must refuse it."""
        current = TaskStatus(state.status)
        if self.op == "set_variables":
            if current.terminal:
                return None
            return State(state.status, state.variables | {self.arg}, state.result)
        target = {"update_status": self.arg, "cancel": "cancelled"}.get(self.op, self.status)
        assert target is not None
        if not can_transition(current, TaskStatus(target)):
            return None
        result = self.arg if self.op == "complete" else state.result
        return State(target, state.variables, result)


def explains(
    start: State, acknowledged: list[Mutation], unknown: list[Mutation], final: State
) -> bool:
    """Whether some order of ``acknowledged`` (and any of ``unknown``) leads to ``final``."""
    seen: set[tuple[State, frozenset[int], frozenset[int]]] = set()

    def search(state: State, left: frozenset[int], optional: frozenset[int]) -> bool:
        if not left and state == final:
            return True
        if (state, left, optional) in seen:
            return False
        seen.add((state, left, optional))
        for i in left:
            after = acknowledged[i].apply(state)
            if (
                after is not None
                and after == acknowledged[i].after
                and search(after, left - {i}, optional)
            ):
                return True
        for i in optional:
            after = unknown[i].apply(state)
            if after is not None and search(after, left, optional - {i}):
                return True
        return False

    return search(start, frozenset(range(len(acknowledged))), frozenset(range(len(unknown))))


@dataclass(frozen=True)
class Entry:
    """One line of a producer's log."""

    op: str
    owner: str
    task: str | None
    outcome: str  # "ok", "refused" (a typed error: nothing changed) or "unknown"
    arg: str | None = None
    status: str | None = None
    state: State | None = None
    expires_ms: int | None = None
    seen: tuple[tuple[str, State], ...] = ()  # what a list returned

    def to_line(self) -> str:
        fields: dict[str, Any] = {
            "op": self.op,
            "owner": self.owner,
            "task": self.task,
            "outcome": self.outcome,
            "arg": self.arg,
            "status": self.status,
            "expires_ms": self.expires_ms,
            "state": None if self.state is None else self.state.to_json(),
            "seen": [[task, state.to_json()] for task, state in self.seen],
        }
        return json.dumps(fields) + "\n"

    @classmethod
    def from_line(cls, line: str) -> Entry:
        raw = json.loads(line)
        state = raw["state"]
        return cls(
            op=raw["op"],
            owner=raw["owner"],
            task=raw["task"],
            outcome=raw["outcome"],
            arg=raw["arg"],
            status=raw["status"],
            state=None if state is None else State.from_json(state),
            expires_ms=raw["expires_ms"],
            seen=tuple((task, State.from_json(s)) for task, s in raw["seen"]),
        )

    def mutation(self) -> Mutation:
        assert self.op in MUTATIONS
        assert self.arg is not None
        return Mutation(self.op, self.arg, self.status, self.state)


def read_logs(paths: Iterable[Path]) -> Iterator[Entry]:
    for path in paths:
        with path.open() as lines:
            yield from (Entry.from_line(line) for line in lines)


@dataclass
class TaskHistory:
    owner: str
    start: State
    expires_ms: int | None
    acknowledged: list[Mutation]
    unknown: list[Mutation]
    observed: list[State]  # what gets and lists returned


def histories(entries: Iterable[Entry]) -> dict[str, TaskHistory]:
    """Per created task, what happened to it; entries on tasks never created are dropped."""
    found: dict[str, TaskHistory] = {}
    rest: list[Entry] = []
    for entry in entries:
        if entry.op == "create" and entry.outcome == "ok":
            assert entry.task is not None
            assert entry.state is not None
            found[entry.task] = TaskHistory(entry.owner, entry.state, entry.expires_ms, [], [], [])
        else:
            rest.append(entry)
    for entry in rest:
        for task, state in entry.seen:
            if task in found:
                found[task].observed.append(state)
        history = found.get(entry.task or "")
        if history is None or entry.outcome == "refused":
            continue
        if entry.op in MUTATIONS:
            bucket = history.acknowledged if entry.outcome == "ok" else history.unknown
            bucket.append(entry.mutation())
        elif entry.op == "get" and entry.state is not None:
            history.observed.append(entry.state)
    return found

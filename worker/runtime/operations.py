"""Running the writes of one job: each with its own op id and its own outcome.

Puts and CAS ops go to Redis pipelined, through the backend's ``apply_batch``;
the other writes (deletes, task operations) run concurrently beside them.
Writes to the same key apply in the order they were issued: a write whose key
an earlier write of the job still has in flight starts the next stage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from store import StorageError
from store.tasks import TaskError
from worker.protocol.writes import Stores, Write

log = logging.getLogger("taskstore.jobs")


@dataclass(frozen=True, slots=True)
class Call:
    """One write of a job, its arguments bound by name, and when the job was sent."""

    write: Write[..., Any]
    args: dict[str, Any]
    op_id: str
    sent_at_ms: int | None


Result = object
"""A write's outcome: its value as JSON, or the exception it raised."""


@dataclass
class _Stage:
    pipelined: list[tuple[int, Call]] = field(default_factory=list)
    alone: list[tuple[int, Call]] = field(default_factory=list)
    pipelined_keys: set[str] = field(default_factory=set)
    alone_keys: set[str] = field(default_factory=set)

    def admits(self, call: Call) -> bool:
        key = call.write.lane(call.args)
        if key is None:
            return True
        if call.write.batch_op is not None:  # the batch keeps the order of its own ops
            return key not in self.alone_keys
        return key not in self.alone_keys and key not in self.pipelined_keys

    def add(self, index: int, call: Call) -> None:
        key = call.write.lane(call.args)
        pipelined = call.write.batch_op is not None
        (self.pipelined if pipelined else self.alone).append((index, call))
        if key is not None:
            (self.pipelined_keys if pipelined else self.alone_keys).add(key)


def stages(calls: Sequence[Call | Exception]) -> list[_Stage]:
    """The calls in stages that may run at once, same-key calls in issue order."""
    planned = [_Stage()]
    for index, call in enumerate(calls):
        if isinstance(call, Exception):
            continue
        if not planned[-1].admits(call):
            planned.append(_Stage())
        planned[-1].add(index, call)
    return planned


async def execute(stores: Stores, calls: Sequence[Call | Exception]) -> list[Result]:
    """Every call's outcome, in order; a call given as an exception keeps it as its outcome."""
    results: list[Result] = list(calls)
    for stage in stages(calls):
        batch, alone = await asyncio.gather(
            _pipelined(stores, [c for _, c in stage.pipelined]),
            asyncio.gather(*(_alone(stores, c) for _, c in stage.alone)),
        )
        for (i, _), outcome in zip(stage.pipelined, batch, strict=True):
            results[i] = outcome
        for (i, _), outcome in zip(stage.alone, alone, strict=True):
            results[i] = outcome
    return results


async def _pipelined(stores: Stores, calls: list[Call]) -> list[Result]:
    results: list[Result] = []
    ops = []
    for call in calls:
        assert call.write.batch_op is not None
        try:
            ops.append(call.write.batch_op(call.args, call.op_id, call.sent_at_ms))
            results.append(None)
        except StorageError as exc:
            results.append(exc)
    if not ops:
        return results
    try:
        outcomes: list[Result] = list(await stores.backend.apply_batch(ops))
    except StorageError as exc:
        outcomes = [exc] * len(ops)
    sent = iter(outcomes)
    return [next(sent) if r is None else r for r in results]


async def _alone(stores: Stores, call: Call) -> Result:
    try:
        return await call.write.run(stores, call.args, call.op_id, call.sent_at_ms)
    except (StorageError, TaskError) as exc:
        return exc
    except Exception as exc:  # a bug in one write must not fail its neighbours
        log.exception("%s %s failed", call.write.name, call.op_id)
        return exc

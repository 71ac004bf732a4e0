"""Running the writes of one batch: each with its own op id and its own outcome.

Puts and CAS ops go to Redis pipelined, through the backend's ``apply_batch``,
a few hundred per round trip so that no pipeline holds the event loop long;
the other writes (deletes, task operations) run concurrently beside them.
Writes to the same key apply in the order they were issued: a write whose key
an earlier write still has in flight starts the next stage, and once a write to
a key failed in a way a retry may mend, no later write to that key runs in this
batch, so the retry cannot be overtaken. A call taken after its job's deadline
(``late``) is settled in the store instead of run (``Write.settle``). Whatever
goes wrong with one write, a bug included, is that write's outcome alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from store import BackendError, StorageError
from store.tasks import TaskError
from worker.protocol.errors import DeadlineExceeded, InternalError
from worker.protocol.writes import RETRYABLE, Stores, Write

log = logging.getLogger("taskstore.jobs")

PIPELINE_OPS = 500
"""The most puts and CAS ops in one round trip: packing them holds the event loop."""


@dataclass(frozen=True, slots=True)
class Call:
    """One write of a job, its arguments bound by name, when the job was sent (on the
    clock its op ids are fenced by), and whether it was taken after its deadline."""

    write: Write[..., Any]
    args: dict[str, Any]
    op_id: str
    sent_at_ms: int | None
    late: bool = False

    @property
    def pipelined(self) -> bool:
        return self.write.batch_op is not None and not self.late


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
        if call.pipelined:  # the pipelines keep the order of their own ops
            return key not in self.alone_keys
        return key not in self.alone_keys and key not in self.pipelined_keys

    def add(self, index: int, call: Call) -> None:
        key = call.write.lane(call.args)
        (self.pipelined if call.pipelined else self.alone).append((index, call))
        if key is not None:
            (self.pipelined_keys if call.pipelined else self.alone_keys).add(key)


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


class _Failed:
    """The keys a write failed on in a way a retry may mend: no later write to them runs."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def holds_back(self, call: Call) -> Exception | None:
        key = call.write.lane(call.args)
        if key is None or key not in self.keys:
            return None
        return BackendError(key, "not run: an earlier write to this key failed, and is retried")

    def note(self, call: Call, outcome: Result) -> None:
        key = call.write.lane(call.args)
        if key is not None and isinstance(outcome, RETRYABLE):
            self.keys.add(key)


async def execute(stores: Stores, calls: Sequence[Call | Exception]) -> list[Result]:
    """Every call's outcome, in order; a call given as an exception keeps it as its outcome."""
    results: list[Result] = list(calls)
    failed = _Failed()
    for stage in stages(calls):
        alone = [(i, c) for i, c in stage.alone if not _held_back(results, i, c, failed)]
        _, ran = await asyncio.gather(
            _pipelined(stores, stage.pipelined, results, failed),
            asyncio.gather(*(_alone(stores, c) for _, c in alone)),
        )
        for (i, call), outcome in zip(alone, ran, strict=True):
            results[i] = outcome
            failed.note(call, outcome)
    return results


def _held_back(results: list[Result], index: int, call: Call, failed: _Failed) -> bool:
    held = failed.holds_back(call)
    if held is not None:
        results[index] = held
    return held is not None


async def _pipelined(
    stores: Stores, calls: list[tuple[int, Call]], results: list[Result], failed: _Failed
) -> None:
    """Run the stage's puts and CAS ops, ``PIPELINE_OPS`` to a round trip, in order."""
    for start in range(0, len(calls), PIPELINE_OPS):
        chunk = calls[start : start + PIPELINE_OPS]
        sent: list[tuple[int, Call]] = []
        ops = []
        for i, call in chunk:
            if _held_back(results, i, call, failed):
                continue
            try:
                assert call.write.batch_op is not None
                ops.append(call.write.batch_op(call.args, call.op_id, call.sent_at_ms))
                sent.append((i, call))
            except StorageError as exc:
                results[i] = exc
            except Exception as exc:  # a bug in one write must not fail its neighbours
                results[i] = _internal(call, exc)
        if not ops:
            continue
        try:
            outcomes: list[Result] = list(await stores.backend.apply_batch(ops))
        except StorageError as exc:
            outcomes = [exc] * len(ops)
        for (i, call), outcome in zip(sent, outcomes, strict=True):
            results[i] = outcome
            failed.note(call, outcome)


async def _alone(stores: Stores, call: Call) -> Result:
    try:
        if call.late:
            settled = call.write.settle(
                stores, call.args, call.op_id, call.sent_at_ms or 0, DeadlineExceeded(call.op_id)
            )
            return await settled
        return await call.write.run(stores, call.args, call.op_id, call.sent_at_ms)
    except (StorageError, TaskError) as exc:
        return exc
    except Exception as exc:  # a bug in one write must not fail its neighbours
        return _internal(call, exc)


def _internal(call: Call, exc: Exception) -> InternalError:
    log.error("%s %s failed inside the worker", call.write.name, call.op_id, exc_info=exc)
    return InternalError(call.op_id, f"{type(exc).__name__}: {exc!s:.200}")

"""Write jobs as the worker reads them: the calls each one makes, and how its reply is built.

- ``<write name>`` (``put``, ``create_task``, ...): one write, arguments as arq's
  args and kwargs, op id = the job id; the reply is its envelope.
- ``ops``: many writes coalesced by a client, ``[{"op", "id", "args"}, ...]``,
  each under its own op id, and an optional ``deadline_ms`` (protocol 1.3 and
  earlier); the reply is a success envelope holding one envelope per write, in order.
- ``apply_batch``: raw puts and CAS ops, op ``i`` under ``<job id>:<i>``.

These are the jobs the batch path (``worker.runtime.batch``) claims and runs many at
a time; ``TaskStoreClient`` sends only ``ops`` jobs, the others serve
producers that speak arq or PROTOCOL.md directly. Arguments are bound here,
never by a Python call, so a producer's wrong, missing or unknown arguments
become a typed ``InvalidArgument`` outcome that names them.

Times are the queue's (``worker.runtime.queue_clock``): a job taken after its
deadline (the queue's stamp plus its ``wait_ms``) applies nothing new, on any
try: each of its writes is withdrawn in the store first (``Call.late``), so no
later try can apply it, and answered ``DeadlineExceeded``, or its first outcome
if it was applied already.

arq's own path keeps ``refuse`` (``maintenance.refuse``): what the job decoder turns a job that
cannot run into, so that it too answers.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from store import InvalidArgument
from store.checks import check_op_id
from worker.protocol import envelope, writes
from worker.protocol import version as protocol
from worker.protocol.serialization import deserialize
from worker.protocol.writes import BATCH_FIELDS, MAX_OPS_PER_JOB, MAX_WAIT_MS, WRITES
from worker.runtime.arq_internals import whole_ms
from worker.runtime.operations import Call

log = logging.getLogger("taskstore.jobs")

JOB_FIELDS = frozenset({"f", "a", "k", "et"})
REFUSE = "refuse"


def _ops(ops: object, deadline_ms: object = None) -> None:
    """The arguments of an ``ops`` job."""


def _apply_batch(ops: object) -> None:
    """The arguments of an ``apply_batch`` job."""


_SIGNATURES = {"ops": inspect.signature(_ops), "apply_batch": inspect.signature(_apply_batch)}

BATCH_JOBS = frozenset({*WRITES, *_SIGNATURES})
"""The jobs the batch path runs; every other job (cron, durable tools) runs on arq's path."""


@dataclass(frozen=True, slots=True)
class Plan:
    """What one write job does: its calls, each an outcome already when it is an exception."""

    calls: list[Call | Exception]
    single: bool
    """The reply is the one call's envelope, not a list of envelopes."""

    def reply(self, outcomes: Sequence[envelope.Envelope]) -> envelope.Envelope:
        return outcomes[0] if self.single else envelope.success(list(outcomes))


def refusal(job: Mapping[str, Any]) -> str | None:
    """Why a decoded job cannot run at all (its version, its fields), or None."""
    reason = protocol.refusal(job.get("v"))
    if reason is None and not job.keys() >= JOB_FIELDS:
        reason = f"a job needs the fields {sorted(JOB_FIELDS)}"
    wait = job.get("wait_ms")
    if reason is None and wait is not None and not (type(wait) is int and 1 <= wait <= MAX_WAIT_MS):
        reason = f"wait_ms must be an integer of ms from 1 to {MAX_WAIT_MS}"
    return reason


_REPLY_TO = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def reply_to(job: Mapping[str, Any]) -> str | None:
    """The reply list of its producer that a job names (protocol 1.5), or None when it is
    answered on a list of its own (a job written by hand may name anything)."""
    value = job.get("reply_to")
    return value if isinstance(value, str) and _REPLY_TO.fullmatch(value) else None


def queue_time(job: Mapping[str, Any]) -> int | None:
    """When the queue took the job (its stamp), by the queue's clock; None if unstamped."""
    stamp = job.get("q")
    return whole_ms(stamp.get("t")) if isinstance(stamp, dict) else None


def sent_at(job: Mapping[str, Any]) -> int | None:
    """When this attempt was sent, on the clock its producer fences its op ids by: the
    queue's stamp from protocol 1.4, its producer's ``et`` before (None: unknown, which
    every fence refuses)."""
    if protocol.minor(job.get("v")) >= protocol.QUEUE_CLOCK:
        return queue_time(job)
    return job["et"] if type(job["et"]) is int else None


def deadline(job: Mapping[str, Any], deadline_ms: object = None) -> int | None:
    """When the job's producer stops waiting, by the queue's clock; None if it waits on.

    ``wait_ms`` counts from the queue's stamp. A 1.3 producer's ``deadline_ms`` is on
    its own clock, as its ``et`` is: their difference is the wait it meant."""
    taken = queue_time(job)
    wait = job.get("wait_ms")
    if type(wait) is int and taken is not None:
        return taken + wait
    if type(deadline_ms) is not int:
        return None
    sent = whole_ms(job.get("et"))
    return deadline_ms if taken is None or sent is None else taken + deadline_ms - sent


PLAN_SLICE = 500
"""Writes planned between two turns of the event loop: a job may hold 10,000."""


async def plan(job_id: str, job: Mapping[str, Any], now_ms: int) -> Plan:
    """The calls of write job ``job`` (a batch-path job that passed ``refusal``), taken at
    ``now_ms`` by the queue's clock; a long job lets the event loop run between slices."""
    name, args, kwargs = job["f"], job["a"], job["k"]
    taken = queue_time(job)
    try:
        if taken is not None and taken > now_ms:
            raise InvalidArgument("the job's stamp q says the queue took it in the future")
        sent = sent_at(job)
        write = WRITES.get(name)
        if write is not None:
            late = _late(deadline(job), now_ms)
            return Plan([Call(write, write.bind(args, kwargs), job_id, sent, late)], single=True)
        if name not in _SIGNATURES:
            raise InvalidArgument(f"no write job named {name!r:.80}; known: {sorted(BATCH_JOBS)}")
        bound = _bind(name, args, kwargs)
        ops = bound["ops"]
        if name == "apply_batch":
            _check_batch(ops)
            late = _late(deadline(job), now_ms)
            calls = [_batch_call(job_id, i, op, sent, late) for i, op in enumerate(ops)]
            return Plan(await _sliced(calls), single=False)
        if not isinstance(ops, list) or not 0 < len(ops) <= MAX_OPS_PER_JOB:
            raise InvalidArgument(f"ops takes a list of 1 to {MAX_OPS_PER_JOB} writes")
        late = _late(deadline(job, bound["deadline_ms"]), now_ms)
        return Plan(await _sliced(_call(op, sent, late) for op in ops), single=False)
    except InvalidArgument as exc:
        return Plan([exc], single=True)


def _late(deadline_ms: int | None, now_ms: int) -> bool:
    return deadline_ms is not None and now_ms > deadline_ms


def _bind(name: str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    try:
        bound = _SIGNATURES[name].bind(*args, **kwargs)
    except TypeError as exc:
        raise InvalidArgument(f"{name}: {exc}") from None
    bound.apply_defaults()
    return dict(bound.arguments)


def _call(op: object, sent: int | None, late: bool) -> Call | Exception:
    """One entry of an ``ops`` job as a call, or the error that refuses it."""
    try:
        if not isinstance(op, dict) or set(op) != {"op", "id", "args"}:
            raise InvalidArgument('each write is an object {"op", "id", "args"}')
        write = WRITES.get(op["op"]) if isinstance(op["op"], str) else None
        if write is None:
            raise InvalidArgument(f"unknown write {op['op']!r:.80}; known: {sorted(WRITES)}")
        if not isinstance(op["args"], dict):
            raise InvalidArgument(f"{write.name}: args must be an object")
        op_id = check_op_id(op["id"])
        if op_id is None:
            raise InvalidArgument("every write of an ops job needs its op id")
        return Call(write, write.bind((), op["args"]), op_id, sent, late)
    except InvalidArgument as exc:
        return exc


async def _sliced(calls: Iterable[Call | Exception]) -> list[Call | Exception]:
    """The calls, made ``PLAN_SLICE`` at a time with the event loop let go in between."""
    made: list[Call | Exception] = []
    for call in calls:
        made.append(call)
        if len(made) % PLAN_SLICE == 0:
            await asyncio.sleep(0)
    return made


def _check_batch(ops: object) -> None:
    """An ``apply_batch`` job's list: objects of ``BatchOp`` fields with a key and data."""
    if not isinstance(ops, list) or not all(
        isinstance(op, dict) and set(op) <= BATCH_FIELDS and {"key", "data"} <= set(op)
        for op in ops
    ):
        raise InvalidArgument(
            f"apply_batch takes a list of objects with fields {sorted(BATCH_FIELDS)}"
        )


def _batch_call(
    job_id: str, i: int, op: dict[str, Any], sent: int | None, late: bool
) -> Call | Exception:
    """Item ``i`` of an ``apply_batch`` job: a put or CAS under op id ``<job id>:<i>``."""
    try:
        return Call(*writes.batch_write(op), f"{job_id}:{i}", sent, late)
    except InvalidArgument as exc:
        return exc


class JobRefused(Exception):
    """arq records the refused job as failed with this."""


def job_deserializer(known: frozenset[str]) -> Callable[[bytes], Any]:
    """arq's job decoder: a job that cannot run on arq's path becomes a ``refuse`` job.

    arq fails an undecodable job, or one naming no function, without calling
    any of ours, so its caller would hear nothing until its deadline. Rewriting
    it into a call of ``refuse`` (with the reason) lets the worker push an error
    reply; nothing of the payload is run or kept. A write job reaches arq's
    path only when Redis could not decode it for the batch path.
    """

    def decode(data: bytes) -> Any:
        try:
            job = deserialize(data)
        except (ValueError, RecursionError) as exc:
            return _refusal(f"the job does not decode as JSON: {exc!s:.200}")
        if "s" in job:  # a result, not a job
            return job
        function = job.get("f")
        reason = refusal(job)
        if reason is None and function in BATCH_JOBS:
            reason = (
                "a write job the queue cannot read (not JSON to Redis's cjson, or larger "
                "than MAX_JOB_BYTES): send it with the enqueue script"
            )
        if reason is None and (function not in known or function == REFUSE):
            # ``refuse`` is what this decoder makes of a job, never one a producer sends.
            named = sorted((known - {REFUSE}) | BATCH_JOBS)
            reason = f"no job named {function!r:.80}; known: {named}"
        if reason is not None:
            return _refusal(reason)
        job.setdefault("t", None)  # arq's tries at enqueue, which producers need not send
        return job

    return decode


def _refusal(reason: str) -> dict[str, Any]:
    return {"t": None, "f": REFUSE, "a": [reason], "k": {}, "et": int(time.time() * 1000)}

"""The worker package's Lua scripts (``worker/*.lua``), each described once.

The descriptions work as the store's do (``store.redis.lua``): typed KEYS and
ARGV, a typed reply, and a header check when the module is imported.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from store.redis.lua import Script
from worker.protocol.writes import lua_constants


class EnqueueKeys(NamedTuple):
    job: str
    result: str
    queue: str
    writes: str
    wake: str
    reply: str


class EnqueueArgs(NamedTuple):
    job_id: str
    job: bytes
    resend_qt: int | str = ""
    """The qt of an earlier attempt this job sends again (``taskstore retry``); '' for none."""


class Enqueued(NamedTuple):
    added: int
    job_id: bytes
    qt: int
    """When the queue took the job, by its clock (ms): what its op ids are fenced by."""


class SettleKeys(NamedTuple):
    job: str
    in_progress: str
    retry: str
    result: str
    queue: str
    writes: str
    reply: str
    workers: str


class SettleArgs(NamedTuple):
    job_id: str
    alive_ms: int


class HeartbeatKeys(NamedTuple):
    workers: str
    running: str
    batches: str


class HeartbeatArgs(NamedTuple):
    worker_id: str
    forget_ms: int
    jobs: int
    in_flight: int


class LockKeys(NamedTuple):
    lock: str


class LockArgs(NamedTuple):
    token: str


class ClaimKeys(NamedTuple):
    writes: str
    queue: str
    lanes: str
    jobs: tuple[str, ...]
    """For each candidate: its job, claim and try-count keys."""


class ClaimArgs(NamedTuple):
    lease_ms: int
    limit: int
    max_writes: int
    max_bytes: int
    max_others: int
    worker: str
    candidates: tuple[str, ...]
    """Job ids in queue order, each after 'w' (on writes) or 'q' (on the queue)."""


class Claims(NamedTuple):
    claimed: list[Any]
    """[id, try, job, lanes] for each claimed job."""
    others: list[bytes]
    now: int
    """The queue's clock when it claimed them (ms)."""
    due_ms: int
    """How long until the next job not yet ready may start; -1 when none waits."""


class FinishKeys(NamedTuple):
    writes: str
    queue: str
    lanes: str
    wake: str
    tally: str
    failed: str
    records: str
    kept_jobs: str
    kinds: str
    jobs: tuple[str, ...]
    """For each job: its job, claim, try-count, result and reply keys."""


class FinishArgs(NamedTuple):
    keep_ms: int
    tally_keep_s: int
    failed_keep: int
    lanes_too: int
    rest_count: int
    rest_and_outcomes: tuple[Any, ...]
    """For each job finished by an earlier call: id, unfinished, lanes; then for each job:
    id, claim, verdict, result, reply, defer_ms, record, retry_job, lanes, latency."""


class RenewKeys(NamedTuple):
    claims: tuple[str, ...]


class RenewArgs(NamedTuple):
    lease_ms: int
    held: tuple[str, ...]
    """What each claim holds while this worker has it."""


class DeadLetterKeys(NamedTuple):
    failed: str
    records: str
    jobs: str
    kinds: str


class DeadLetterArgs(NamedTuple):
    job_id: str
    record: str
    failed_ms: int
    keep: int
    job: bytes


_JOBS = lua_constants()
"""What the scripts that read jobs know of the writes (``_jobs.lua``)."""

ENQUEUE = Script(
    __package__,
    "enqueue",
    keys=EnqueueKeys,
    args=EnqueueArgs,
    reply=Enqueued,
    prelude="_jobs.lua",
    header=_JOBS,
)
SETTLE = Script(__package__, "settle", keys=SettleKeys, args=SettleArgs, reply=bytes)
HEARTBEAT = Script(__package__, "heartbeat", keys=HeartbeatKeys, args=HeartbeatArgs, reply=int)
RELEASE_LOCK = Script(__package__, "release_lock", keys=LockKeys, args=LockArgs, reply=int)
DEAD_LETTER = Script(
    __package__,
    "dead_letter",
    keys=DeadLetterKeys,
    args=DeadLetterArgs,
    reply=int,
    prelude="_failed.lua",
)
CLAIM = Script(
    __package__,
    "claim",
    keys=ClaimKeys,
    args=ClaimArgs,
    reply=Claims,
    prelude="_jobs.lua",
    header=_JOBS,
)
FINISH = Script(
    __package__,
    "finish",
    keys=FinishKeys,
    args=FinishArgs,
    reply=list,
    prelude=("_failed.lua", "_jobs.lua"),
    header=_JOBS,
)
RENEW = Script(__package__, "renew", keys=RenewKeys, args=RenewArgs, reply=list)

"""The worker package's Lua scripts (``worker/*.lua``), each described once.

The descriptions work as the store's do (``store.redis.lua``): typed KEYS and
ARGV, a typed reply, and a header check when the module is imported.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from store.redis.lua import Script


class EnqueueKeys(NamedTuple):
    job: str
    result: str
    queue: str
    wake: str
    reply: str


class EnqueueArgs(NamedTuple):
    job_id: str
    job: bytes


class Enqueued(NamedTuple):
    added: int
    job_id: bytes


class SettleKeys(NamedTuple):
    job: str
    in_progress: str
    retry: str
    result: str
    queue: str
    reply: str
    workers: str


class SettleArgs(NamedTuple):
    job_id: str
    alive_ms: int


class HeartbeatKeys(NamedTuple):
    workers: str
    running: str


class HeartbeatArgs(NamedTuple):
    worker_id: str
    forget_ms: int
    jobs: int


class LockKeys(NamedTuple):
    lock: str


class LockArgs(NamedTuple):
    token: str


class ClaimKeys(NamedTuple):
    queue: str
    jobs: tuple[str, ...]
    """For each id: its job, claim and try-count keys."""


class ClaimArgs(NamedTuple):
    lease_ms: int
    limit: int
    functions: str
    ids: tuple[str, ...]


class Claims(NamedTuple):
    claimed: list[Any]
    """id, try, job for each claimed job."""
    others: list[bytes]


class FinishKeys(NamedTuple):
    queue: str
    tally: str
    failed: str
    records: str
    kept_jobs: str
    jobs: tuple[str, ...]
    """For each job: its job, claim, try-count, result and reply keys."""


class FinishArgs(NamedTuple):
    keep_ms: int
    tally_keep_s: int
    failed_keep: int
    outcomes: tuple[Any, ...]
    """For each job: id, verdict, result, reply, defer_ms, record, retry_job."""


class DeadLetterKeys(NamedTuple):
    failed: str
    records: str
    jobs: str


class DeadLetterArgs(NamedTuple):
    job_id: str
    record: str
    failed_ms: int
    keep: int
    job: bytes


ENQUEUE = Script(__package__, "enqueue", keys=EnqueueKeys, args=EnqueueArgs, reply=Enqueued)
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
CLAIM = Script(__package__, "claim", keys=ClaimKeys, args=ClaimArgs, reply=Claims)
FINISH = Script(
    __package__, "finish", keys=FinishKeys, args=FinishArgs, reply=int, prelude="_failed.lua"
)

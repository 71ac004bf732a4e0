"""The worker package's Lua scripts (``worker/*.lua``), each described once.

The descriptions work as the store's do (``store.redis.lua``): typed KEYS and
ARGV, a typed reply, and a header check when the module is imported.
"""

from __future__ import annotations

from typing import NamedTuple

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
    __package__, "dead_letter", keys=DeadLetterKeys, args=DeadLetterArgs, reply=int
)

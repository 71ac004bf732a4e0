"""Every key of one queue, arq's included, built in one place (PROTOCOL.md: Keys).

arq keeps a job's keys under global prefixes (``arq:job:<id>``, ...), so a
job id belongs to no queue by its name; a queue's own keys all start with
its name. ``QueueKeys("<queue>")`` with job id ``"<id>"`` gives the very
patterns PROTOCOL.md's table shows, which a test holds them to.

========================  ===========  ==========================================
key                       type         holds
========================  ===========  ==========================================
``arq:job:<id>``          string       the job (JSON), until it finishes
``arq:result:<id>``       string       arq's record of the finished job
``arq:in-progress:<id>``  string       the running job's lease (its claim)
``arq:retry:<id>``        string       the job's tries so far
``<queue>``               sorted set   arq's job ids by the time they may start (ms)
``<queue>:writes``        sorted set   write job ids by the time they may start (ms)
``<queue>:lanes``         hash         lane -> the unfinished write job holding it
``<queue>:wake``          list         a token that wakes an idle worker
``<queue>:reply:<id>``    list         the job's reply envelope
``<queue>:replies:<to>``  list         replies of jobs naming ``reply_to`` <to>
``<queue>:workers``       sorted set   worker ids by their last heartbeat (ms)
``<queue>:workers:running``  hash      jobs each worker runs
``<queue>:workers:batches``  hash      batches each worker holds
``<queue>:failed``        sorted set   kept failed job ids by failure time (ms)
``<queue>:failed:records``  hash       their records (JSON)
``<queue>:failed:jobs``   hash         their jobs, to retry
``<queue>:tally:<minute>``  hash       jobs finished in that minute, by outcome
``<queue>:lock:<name>``   string       a periodic job's lock
========================  ===========  ==========================================
"""

from __future__ import annotations

from typing import NamedTuple

from arq.constants import (
    in_progress_key_prefix,
    job_key_prefix,
    result_key_prefix,
    retry_key_prefix,
)

from store.redis.keyschema import glob_escaped

HEARTBEAT_S = 2.0
"""How often a worker refreshes its score on ``workers``."""
ALIVE_S = 3 * HEARTBEAT_S
"""A worker whose heartbeat is older than this is not alive."""


class JobKeys(NamedTuple):
    """arq's keys of one job."""

    job: str
    claim: str
    tries: str
    result: str


def job_keys(job_id: str) -> JobKeys:
    return JobKeys(
        job_key_prefix + job_id,
        in_progress_key_prefix + job_id,
        retry_key_prefix + job_id,
        result_key_prefix + job_id,
    )


class QueueKeys:
    """The keys of the queue named ``queue``, and of its jobs."""

    __slots__ = (
        "batches",
        "failed",
        "failed_jobs",
        "failed_kinds",
        "failed_records",
        "lanes",
        "queue",
        "running",
        "wake",
        "workers",
        "writes",
    )

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.writes = f"{queue}:writes"
        self.lanes = f"{queue}:lanes"
        self.wake = f"{queue}:wake"
        self.workers = f"{queue}:workers"
        self.running = f"{queue}:workers:running"
        self.batches = f"{queue}:workers:batches"
        self.failed = f"{queue}:failed"
        self.failed_records = f"{queue}:failed:records"
        self.failed_jobs = f"{queue}:failed:jobs"
        self.failed_kinds = f"{queue}:failed:kinds"

    def reply(self, job_id: str) -> str:
        """Where the worker pushes a job's reply envelope for the waiting caller."""
        return f"{self.queue}:reply:{job_id}"

    def replies(self, reply_to: str) -> str:
        """Where the worker pushes the replies of the jobs that name ``reply_to``, each
        ``<job id> <reply>``, for the one reader of their producer (protocol 1.5)."""
        return f"{self.queue}:replies:{reply_to}"

    def tally(self, now_ms: int) -> str:
        """The counts of the minute that holds ``now_ms`` (by the queue's clock)."""
        return f"{self.queue}:tally:{now_ms // 60_000}"

    def lock(self, name: str) -> str:
        return f"{self.queue}:lock:{name}"

    def own_pattern(self) -> str:
        """A SCAN MATCH pattern of every key above that starts with the queue's name."""
        return f"{glob_escaped(self.queue)}*"

    def protocol(self, job_id: str) -> dict[str, str]:
        """The keys a producer meets (PROTOCOL.md's table), by what each is."""
        job = job_keys(job_id)
        return {
            "job": job.job,
            "queue": self.queue,
            "writes": self.writes,
            "wake": self.wake,
            "reply": self.reply(job_id),
            "replies": self.replies("<to>"),
            "result": job.result,
            "claim": job.claim,
            "workers": self.workers,
        }

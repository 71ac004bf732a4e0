"""Jobs completed, failed and retried, per minute, kept in Redis for an hour.

The counts are written in the step that finishes a job (the batch path's
``finish.lua``, or arq's MULTI through ``ClaimPipeline``), so every worker
adds to them, a killed worker loses none, and ``taskstore stats`` sums the
last 60 minutes in one round trip.
"""

from __future__ import annotations

from typing import Any

from worker.protocol.keys import QueueKeys
from worker.runtime.liveness import text

OUTCOMES = ("completed", "failed", "retried")
MINUTES = 60
KEEP_S = (MINUTES + 2) * 60


def count(pipe: Any, queue_name: str, outcome: str, now_ms: int) -> None:
    """Queue on ``pipe`` one more ``outcome`` in the count of the minute of ``now_ms``
    (the queue's clock)."""
    key = QueueKeys(queue_name).tally(now_ms)
    pipe.hincrby(key, outcome, 1)
    pipe.expire(key, KEEP_S)


def read_last_hour(pipe: Any, queue_name: str, now_ms: int) -> None:
    """Queue on ``pipe`` the reads ``parse_last_hour`` sums (``MINUTES`` replies)."""
    minute = now_ms // 60_000
    for m in range(minute - MINUTES + 1, minute + 1):
        pipe.hgetall(QueueKeys(queue_name).tally(m * 60_000))


def parse_last_hour(replies: list[Any]) -> dict[str, int]:
    totals = dict.fromkeys(OUTCOMES, 0)
    for counts in replies:
        for name, n in counts.items():
            outcome = text(name)
            if outcome in totals:
                totals[outcome] += int(n)
    return totals

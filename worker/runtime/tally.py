"""Jobs completed, failed and retried, and how long they took, per minute, kept an hour.

The counts are written in the step that finishes a job (the batch path's
``finish.lua``, or arq's MULTI through ``ClaimPipeline``), so every worker
adds to them, a killed worker loses none, and ``taskstore stats`` and the
dashboard read the last 60 minutes in one round trip. A finished job also
counts in a latency bucket (``lat:<upper bound ms>``): from the time the
queue took it to the time it was answered, both by the queue's clock, so
each minute's p50 and p99 follow from the buckets.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.protocol.keys import QueueKeys
from worker.runtime.liveness import text

OUTCOMES = ("completed", "failed", "retried")
MINUTES = 60
KEEP_S = (MINUTES + 2) * 60
BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000)
"""Upper bounds of the latency buckets; a job slower than the last counts in ``inf``."""
LATENCY = "lat:"


def bucket(latency_ms: float) -> str:
    """The field a job of this latency counts in."""
    upper = next((b for b in BUCKETS_MS if latency_ms <= b), None)
    return f"{LATENCY}{upper if upper is not None else 'inf'}"


def count(pipe: Any, queue_name: str, outcome: str, now_ms: int, latency: str = "") -> None:
    """Queue on ``pipe`` one more ``outcome`` (and, for a finished job, its ``latency``
    bucket) in the count of the minute of ``now_ms`` (the queue's clock)."""
    key = QueueKeys(queue_name).tally(now_ms)
    pipe.hincrby(key, outcome, 1)
    if latency:
        pipe.hincrby(key, latency, 1)
    pipe.expire(key, KEEP_S)


def read_last_hour(pipe: Any, queue_name: str, now_ms: int) -> None:
    """Queue on ``pipe`` the reads ``parse_last_hour`` and ``per_minute`` take
    (``MINUTES`` replies, the oldest first)."""
    minute = now_ms // 60_000
    for m in range(minute - MINUTES + 1, minute + 1):
        pipe.hgetall(QueueKeys(queue_name).tally(m * 60_000))


def parse_last_hour(replies: list[Any]) -> dict[str, int]:
    totals = dict.fromkeys(OUTCOMES, 0)
    for minute in per_minute(replies):
        for outcome in OUTCOMES:
            totals[outcome] += minute.outcomes[outcome]
    return totals


@dataclass(frozen=True, slots=True)
class Minute:
    outcomes: dict[str, int]
    latency: dict[str, int] = field(default_factory=dict)
    """Finished jobs by latency bucket."""

    def percentile(self, p: float) -> float | None:
        """The upper bound (ms) of the bucket holding the ``p``th percentile; None when no
        job finished that minute (``inf`` when it was slower than every bucket)."""
        total = sum(self.latency.values())
        if not total:
            return None
        seen = 0
        for upper in (*BUCKETS_MS, "inf"):
            seen += self.latency.get(f"{LATENCY}{upper}", 0)
            if seen >= p / 100 * total:
                return float(upper)
        return float("inf")


def per_minute(replies: list[Any]) -> list[Minute]:
    """Each of the last ``MINUTES`` minutes, the oldest first."""
    minutes = []
    for counts in replies:
        fields = {text(name): int(n) for name, n in counts.items()}
        outcomes = {outcome: fields.get(outcome, 0) for outcome in OUTCOMES}
        latency = {name: n for name, n in fields.items() if name.startswith(LATENCY)}
        minutes.append(Minute(outcomes, latency))
    return minutes

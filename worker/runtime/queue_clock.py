"""The queue Redis's clock, as a worker carries it between two readings.

Every time the queue path compares (whether a job is ready, whether its deadline
passed, which minute a tally counts) is the queue server's ``TIME``, never this
machine's: producers and workers on machines whose clocks disagree then agree.
Each claim reads that clock in its script; in between, this process's monotonic
clock carries the last reading forward, which stays exact to a millisecond or so
however wrong this machine's wall clock is.
"""

from __future__ import annotations

import time
from typing import Any

from store.clock import server_ms


class QueueClock:
    def __init__(self) -> None:
        self._read_ms: int | None = None
        self._read_at = 0.0

    def observe(self, queue_ms: int) -> None:
        """A reading of the queue's clock (``TIME``, ms), taken just now."""
        self._read_ms, self._read_at = queue_ms, time.monotonic()

    async def read(self, redis: Any) -> int:
        """Read the queue's clock now (one round trip), and carry it from here."""
        now = await server_ms(redis)
        self.observe(now)
        return now

    def now_ms(self) -> int:
        """The queue's time now, from the last reading; this machine's before the first."""
        if self._read_ms is None:
            return time.time_ns() // 1_000_000
        return self._read_ms + int((time.monotonic() - self._read_at) * 1000)

    def from_local_ms(self, local_ms: float) -> float:
        """A time this machine's wall clock gave (as arq's own code reads it), in the queue's."""
        return local_ms + self.now_ms() - time.time() * 1000

    def to_local_ms(self, queue_ms: float) -> float:
        """A time of the queue's clock, as this machine's wall clock would give it to arq."""
        return queue_ms - self.now_ms() + time.time() * 1000

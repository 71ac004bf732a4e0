"""The one clock of the store's callers: integer milliseconds since the epoch.

Backends judge expiry by their own clock (Redis by its ``TIME``); this one
serves what runs beside them (the in-memory backend, the task domain,
leases), and is injectable so tests can move time.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000

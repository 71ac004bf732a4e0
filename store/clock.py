"""The clocks: integer milliseconds since the epoch.

Backends judge expiry by their own clock (Redis by its ``TIME``, read here
by ``server_ms``); the wall clock serves what runs beside them (the
in-memory backend, the task domain, leases), and is injectable so tests can
move time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Clock = Callable[[], int]


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


async def server_ms(client: Any) -> int:
    """A Redis server's clock (``TIME``), which its scripts judge expiry by."""
    seconds, micros = await client.time()
    return int(seconds) * 1000 + int(micros) // 1000

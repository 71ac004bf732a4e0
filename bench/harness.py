"""What every scenario shares: results, interleaved rounds, and the clock."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Bench:
    """One benchmark run: the Redis it owns and how big to make things."""

    url: str
    port: int
    quick: bool
    rounds: int = 5

    def size(self, quick: int, full: int) -> int:
        return quick if self.quick else full


@dataclass
class Result:
    scenario: str
    ours: float
    peer: float | None
    unit: str
    goal: str
    met: bool
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return None if not self.peer else self.ours / self.peer

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = None if self.ratio is None else round(self.ratio, 3)
        return data


def ratio_result(
    scenario: str, ours: float, peer: float, unit: str, at_least: float, **detail: Any
) -> Result:
    """A result whose goal is ``ours / peer >= at_least``."""
    return Result(
        scenario, ours, peer, unit, f"ratio >= {at_least}", ours / peer >= at_least, detail
    )


Sample = Callable[[], Awaitable[float]]


async def interleaved(rounds: int, ours: Sample, peer: Sample) -> tuple[float, float]:
    """Medians of ``rounds`` samples of each, taken A B A B ... so drift hits both alike."""
    a: list[float] = []
    b: list[float] = []
    for _ in range(rounds):
        a.append(await ours())
        b.append(await peer())
    return statistics.median(a), statistics.median(b)


async def rate(ops: int, run: Callable[[], Awaitable[Any]]) -> float:
    """Operations per second of ``run``, which performs ``ops`` operations."""
    started = time.perf_counter()
    await run()
    return ops / (time.perf_counter() - started)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

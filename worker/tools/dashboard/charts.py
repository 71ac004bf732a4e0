"""The dashboard's charts of the last hour, drawn as SVG from the per-minute tallies: no
chart library, nothing fetched from elsewhere."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from worker.runtime import tally

WIDTH, HEIGHT, PAD = 600, 150, 4


@dataclass(frozen=True, slots=True)
class Line:
    name: str
    path: str
    """An SVG path, the oldest minute at the left; a minute with no value is a gap."""
    dots: str
    """The values with a gap on both sides, as an SVG path of dots."""
    last: str
    """The latest minute's value, as shown beside the chart."""


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    unit: str
    top: str
    """The value the top of the chart stands for."""
    lines: list[Line]


def _scaled(series: Sequence[float | None], top: float) -> tuple[str, str]:
    """SVG paths of the runs of known values, and of the values alone between gaps (drawn
    as dots: zero-length lines with round caps)."""
    step = (WIDTH - 2 * PAD) / max(len(series) - 1, 1)
    runs: list[list[str]] = [[]]
    for i, value in enumerate(series):
        if value is None:
            runs.append([])
            continue
        y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * min(value, top) / top
        runs[-1].append(f"{PAD + i * step:.1f},{y:.1f}")
    lines = " ".join("M" + " L".join(run) for run in runs if len(run) > 1)
    dots = " ".join(f"M{run[0]} h0" for run in runs if len(run) == 1)
    return lines, dots


def _chart(title: str, unit: str, series: dict[str, list[float | None]]) -> Chart:
    finite = [v for values in series.values() for v in values if v is not None and v != math.inf]
    top = max([*finite, 1.0])
    lines = [
        Line(name, *_scaled(values, top), _shown(values[-1] if values else None))
        for name, values in series.items()
    ]
    return Chart(title, unit, _shown(top), lines)


def _shown(value: float | None) -> str:
    if value is None:
        return "-"
    if value == math.inf:
        return "> 60 s"
    return f"{value:,.0f}"


def last_hour(minutes: Sequence[tally.Minute]) -> list[Chart]:
    """Jobs per minute by outcome, and each minute's p50 and p99 latency."""
    jobs: dict[str, list[float | None]] = {
        outcome: [float(m.outcomes[outcome]) for m in minutes] for outcome in tally.OUTCOMES
    }
    latency: dict[str, list[float | None]] = {
        "p50": [m.percentile(50) for m in minutes],
        "p99": [m.percentile(99) for m in minutes],
    }
    return [
        _chart("Jobs per minute, by outcome", "jobs", jobs),
        _chart("Latency, enqueue to answer (upper bound of its bucket)", "ms", latency),
    ]

"""The last hour's charts, drawn from per-minute tallies."""

from __future__ import annotations

import math

from worker.runtime.tally import MINUTES, Minute
from worker.tools.dashboard.charts import HEIGHT, PAD, last_hour


def quiet() -> Minute:
    return Minute({"completed": 0, "failed": 0, "retried": 0})


def test_a_minute_with_no_job_is_a_gap_in_latency_and_a_lone_one_a_dot() -> None:
    minutes = [quiet() for _ in range(MINUTES)]
    minutes[10] = Minute({"completed": 4, "failed": 0, "retried": 0}, {"lat:2": 4})
    minutes[58] = Minute({"completed": 1, "failed": 0, "retried": 0}, {"lat:5": 1})
    minutes[59] = Minute({"completed": 2, "failed": 1, "retried": 0}, {"lat:50": 3})
    jobs, latency = last_hour(minutes)
    completed = jobs.lines[0]
    assert completed.name == "completed"
    assert completed.path.count("L") == MINUTES - 1  # counts are never missing
    assert completed.last == "2"
    assert jobs.top == "4"
    p50 = latency.lines[0]
    assert p50.path.count("M") == 1  # minutes 58 and 59, one line
    assert p50.path.count("L") == 1
    assert p50.dots.count("M") == 1  # minute 10, alone between gaps
    assert p50.last == "50"
    top_y = f",{PAD:.1f}"
    assert p50.path.endswith(top_y)  # the largest value reaches the top


def test_a_latency_past_every_bucket_shows_as_such_without_breaking_the_scale() -> None:
    minutes = [quiet() for _ in range(MINUTES)]
    minutes[-1] = Minute({"completed": 1, "failed": 0, "retried": 0}, {"lat:inf": 1})
    minutes[-2] = Minute({"completed": 1, "failed": 0, "retried": 0}, {"lat:10": 1})
    _, latency = last_hour(minutes)
    p99 = latency.lines[1]
    assert p99.last == "> 60 s"
    assert latency.top == "10"
    assert p99.path.endswith(f",{PAD:.1f}")  # drawn at the top, not past it
    assert math.isinf(minutes[-1].percentile(99) or 0)
    assert f",{HEIGHT - PAD:.1f}" not in p99.path  # no value drawn as zero

"""How the dashboard writes times and spans."""

from __future__ import annotations

import pytest

from worker.tools.dashboard.formats import duration, when


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (-3, "expired"),
        (0.176, "0.2 s"),
        (10, "10 s"),
        (61, "1 min 1 s"),
        (3599, "59 min 59 s"),
        (86_399.5, "23 h 59 min"),
        (86_400, "1 d"),
        (90_061, "1 d 1 h"),
    ],
)
def test_a_span_reads_in_its_two_largest_units(seconds: float | None, shown: str) -> None:
    assert duration(seconds) == shown


@pytest.mark.parametrize(
    ("iso", "shown"),
    [
        ("2026-12-05T12:46:45.898+00:00", "2026-12-05 12:46:45"),
        ("2027-01-15T08:00:00.000Z", "2027-01-15 08:00:00"),
        ("2026-12-05T13:46:45+01:00", "2026-12-05 12:46:45"),
        ("not a time", "not a time"),
    ],
)
def test_a_time_reads_in_utc_to_the_second(iso: str, shown: str) -> None:
    assert when(iso) == shown

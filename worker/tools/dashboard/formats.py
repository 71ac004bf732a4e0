"""How times and durations read on the dashboard's pages (Jinja filters)."""

from __future__ import annotations

from datetime import UTC, datetime


def when(iso: str) -> str:
    """An ISO 8601 time as ``2026-12-05 12:46:45`` (UTC, to the second); as given when it
    is not one."""
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def thousands(n: int) -> str:
    """A count with thousands separated: ``16,034``."""
    return f"{n:,}"


def duration(seconds: float | None) -> str:
    """A span in its two largest units: ``23 h 59 min``, ``4 min 10 s``, ``1 d``, ``0.2 s``; a TTL
    run out (a record the sweep has yet to remove) is ``expired``."""
    if seconds is None:
        return "-"
    if seconds < 0:
        return "expired"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    first = next(i for i, (n, _) in enumerate(units) if n)
    shown = [units[first], *[u for u in units[first + 1 : first + 2] if u[0]]]
    return " ".join(f"{n} {unit}" for n, unit in shown)

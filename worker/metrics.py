"""A small Prometheus registry and its ``/metrics`` endpoint.

Counters and histograms with labels, rendered in the text exposition format
by an asyncio server: what the worker needs, without a threaded client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

Labels = tuple[tuple[str, str], ...]
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(labels: Labels, extra: str = "") -> str:
    parts = [f'{k}="{_escape(v)}"' for k, v in labels]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _le(bound: str) -> str:
    return 'le="' + bound + '"'


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Counter:
    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self.values: dict[Labels, float] = defaultdict(float)

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        self.values[tuple(sorted(labels.items()))] += amount

    def value(self, **labels: str) -> float:
        return self.values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        lines += [f"{self.name}{_labels(k)} {v}" for k, v in sorted(self.values.items())]
        return lines


class Histogram:
    def __init__(self, name: str, help_text: str) -> None:
        self.name, self.help = name, help_text
        self.counts: dict[Labels, list[int]] = {}
        self.sums: dict[Labels, float] = defaultdict(float)

    def observe(self, seconds: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        counts = self.counts.setdefault(key, [0] * (len(BUCKETS) + 1))
        for i, bound in enumerate(BUCKETS):
            if seconds <= bound:
                counts[i] += 1
        counts[-1] += 1
        self.sums[key] += seconds

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for key, counts in sorted(self.counts.items()):
            bounds = [*(str(b) for b in BUCKETS), "+Inf"]
            for bound, count in zip(bounds, counts, strict=True):
                lines.append(f"{self.name}_bucket{_labels(key, _le(bound))} {count}")
            lines.append(f"{self.name}_sum{_labels(key)} {self.sums[key]}")
            lines.append(f"{self.name}_count{_labels(key)} {counts[-1]}")
        return lines


class Metrics:
    """Everything the worker counts."""

    def __init__(self) -> None:
        self.jobs = Counter("taskstore_jobs_total", "Jobs run, by job name and outcome.")
        self.job_seconds = Histogram("taskstore_job_duration_seconds", "Job run time.")
        self.cas_conflicts = Counter(
            "taskstore_cas_conflicts_total", "Compare-and-swap jobs answered with a conflict."
        )
        self.backend_errors = Counter(
            "taskstore_backend_errors_total", "Storage failures seen by jobs, by job name."
        )
        self.removed = Counter(
            "taskstore_maintenance_removed_total", "Records swept or entries reaped, by kind."
        )
        self.maintenance_seconds = Histogram(
            "taskstore_maintenance_duration_seconds", "Sweep and reap run time."
        )

    def render(self) -> str:
        lines: list[str] = []
        for metric in vars(self).values():
            lines += metric.render()
        return "\n".join(lines) + "\n"

    async def serve(self, port: int, host: str = "127.0.0.1") -> asyncio.Server:
        """Serve ``GET /metrics`` on ``host:port`` until the server is closed."""

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
                request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
                ok = request.startswith((b"GET /metrics ", b"GET / "))
                body = self.render().encode() if ok else b"not found\n"
                status = b"200 OK" if ok else b"404 Not Found"
                writer.write(
                    b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; version=0.0.4\r\n"
                    b"Content-Length: "
                    + str(len(body)).encode()
                    + b"\r\nConnection: close\r\n\r\n"
                    + body
                )
                await writer.drain()
            writer.close()

        return await asyncio.start_server(answer, host, port)

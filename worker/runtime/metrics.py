"""The worker's Prometheus metrics, on ``prometheus_client``.

Each worker has its own registry (tests run several workers in one process)
and serves it on ``METRICS_PORT`` with the library's HTTP server, in a
daemon thread, so a scrape never waits on the event loop. Queue-wide gauges
are refreshed every heartbeat from ``queue_stats.observe``.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from worker.runtime.queue_stats import QueueStats


class Metrics:
    """Everything the worker counts, and its own running jobs."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.running = 0
        r = self.registry
        self.jobs = Counter(
            "taskstore_jobs", "Writes run, by job name and outcome.", ["job", "outcome"], registry=r
        )
        self.job_seconds = Histogram(
            "taskstore_job_duration_seconds", "Job run time.", ["job"], registry=r
        )
        self.cas_conflicts = Counter(
            "taskstore_cas_conflicts", "Writes answered with a version conflict.", ["job"],
            registry=r,
        )  # fmt: skip
        self.backend_errors = Counter(
            "taskstore_backend_errors", "Storage failures seen by jobs, by job name.", ["job"],
            registry=r,
        )  # fmt: skip
        self.removed = Counter(
            "taskstore_maintenance_removed", "Records swept or entries reaped, by kind.", ["kind"],
            registry=r,
        )  # fmt: skip
        self.maintenance_seconds = Histogram(
            "taskstore_maintenance_duration_seconds", "Sweep and reap run time.", ["kind"],
            registry=r,
        )  # fmt: skip
        Gauge(
            "taskstore_jobs_in_progress", "Jobs this worker is running.", registry=r
        ).set_function(lambda: self.running)
        self.worker_up = Gauge(
            "taskstore_worker_up", "1 while this worker's last heartbeat reached Redis.",
            registry=r,
        )  # fmt: skip
        self.queue_depth = Gauge(
            "taskstore_queue_depth", "Jobs queued and not yet started, on every worker.",
            registry=r,
        )  # fmt: skip
        self.queue_in_progress = Gauge(
            "taskstore_queue_in_progress", "Jobs running on every live worker.", registry=r
        )
        self.oldest_queued_age = Gauge(
            "taskstore_oldest_queued_age_seconds", "How long the oldest waiting job has waited.",
            registry=r,
        )  # fmt: skip
        self.workers_alive = Gauge(
            "taskstore_workers_alive", "Workers with a fresh heartbeat.", registry=r
        )

    def observe_queue(self, stats: QueueStats) -> None:
        self.queue_depth.set(stats.queued)
        self.queue_in_progress.set(stats.in_progress)
        self.oldest_queued_age.set(stats.oldest_queued_age_s)
        self.workers_alive.set(len(stats.workers))

    def value(self, name: str, **labels: str) -> float:
        """One sample's value (0 when never set), as a scrape would show it."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def serve(self, port: int, host: str = "127.0.0.1") -> Any:
        """Serve ``GET /metrics`` on ``host:port``; ``shutdown()`` the returned server to stop."""
        server, _thread = start_http_server(port, host, registry=self.registry)
        return server

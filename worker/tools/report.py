"""What an operator reads of a deployment: the store's counts, the queue, the last hour and
the workers, read once for ``taskstore stats`` and the dashboard alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from store.backend import StoreStats
from store.redis import mask_url
from worker.protocol.settings import Settings
from worker.protocol.writes import Stores
from worker.runtime import queue_stats
from worker.runtime.queue_stats import QueueStats


@dataclass(frozen=True, slots=True)
class Report:
    settings: Settings
    store: StoreStats
    queue: QueueStats

    def as_json(self) -> dict[str, Any]:
        """``taskstore stats``' object (the operating page of the docs lists its fields)."""
        store, queue = self.store, self.queue
        return {
            "queue": self.settings.queue_name,
            "store": mask_url(self.settings.store_url_value),
            "tasks": store.records,
            "owners": store.owners,
            "owners_due_for_expiry": store.owners_due,
            "queued": queue.queued,
            "ready": queue.ready,
            "scheduled": queue.scheduled,
            "in_progress": queue.in_progress,
            "oldest_queued_age_s": queue.oldest_queued_age_s,
            "last_hour": queue.last_hour,
            "failed_jobs_kept": queue.failed_jobs_kept,
            "workers": [
                {
                    "id": worker_id,
                    "last_heartbeat_s": w.last_heartbeat_s,
                    "running": w.running,
                    "batches": w.batches,
                }
                for worker_id, w in sorted(queue.workers.items())
            ],
        }


async def gather(
    settings: Settings,
    stores: Stores,
    pool: Any,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    store = await stores.backend.stats(progress)
    return Report(settings, store, await queue_stats.observe(pool, settings.queue_name))

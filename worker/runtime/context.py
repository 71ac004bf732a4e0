"""What a worker's jobs share: one typed object in arq's ``ctx``.

arq hands every job a dict holding its own keys (``redis``, ``job_id``,
``job_try``) and whatever ``on_startup`` put there. Ours is a single
``WorkerState`` under ``STATE``, read with ``state(ctx)``, so a job sees the
settings, the stores and the metrics typed, not as loose string keys.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the jobs' modules import this one; it needs these only as types
    from worker.protocol.settings import Settings
    from worker.protocol.writes import Stores
    from worker.runtime.batch import BatchPath
    from worker.runtime.metrics import Metrics

STATE = "taskstore"


@dataclass
class WorkerState:
    settings: Settings
    stores: Stores
    metrics: Metrics
    worker_id: str
    background: list[asyncio.Task[None]] = field(default_factory=list)
    """Loops beside the jobs (heartbeats, queue gauges), cancelled at shutdown."""
    metrics_server: Any = None
    batches: BatchPath | None = None
    """The batch path, once the worker has started it."""


def state(ctx: dict[str, Any]) -> WorkerState:
    found: WorkerState = ctx[STATE]
    return found

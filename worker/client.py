"""``from worker.client import TaskStoreClient``: the producer's client (``worker.producer``)."""

from worker.producer.client import JobHandle, ReplyTimeout, TaskStoreClient

__all__ = ["JobHandle", "ReplyTimeout", "TaskStoreClient"]

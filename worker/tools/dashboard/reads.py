"""What the dashboard shows, read through the operator tools' own code (``report``,
``failed``) and the store: nothing here computes what ``taskstore stats`` or
``taskstore failed`` already do. Values of tasks never leave this module: a task is
shown by its id, status, times, and the type and size of its result."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from arq.connections import ArqRedis

from store.errors import InvalidArgument
from store.keys import validate_id
from store.redis import mask_url
from store.redis.connect import is_sentinel
from worker.protocol.connections import open_stores, queue_client, queue_redis_settings
from worker.protocol.settings import Settings
from worker.protocol.writes import Stores
from worker.tools import failed, report

FILTER = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
"""A job name or an error type, as a filter may name them."""
STATUS_SAMPLE = 1000
"""Tasks whose statuses an owner's counts cover: the newest this many."""


class BadRequest(ValueError):
    """A filter, an owner id, a cursor or a job id that cannot name anything."""


@dataclass(frozen=True, slots=True)
class TaskRow:
    task_id: str
    status: str
    created_at: str
    ttl_left_s: float | None
    result: str
    """The result's type and size, never its value ("" when it has none)."""


@dataclass(frozen=True, slots=True)
class OwnerTasks:
    owner_id: str
    live: int
    statuses: dict[str, int]
    sampled: int
    """How many of the newest tasks the status counts cover."""
    rows: list[TaskRow]
    next_cursor: str | None


class Deployment:
    """The queue and the store of one set of settings, opened on first use (a mounted app
    gets no start-up call) and closed with the app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._opened: tuple[ArqRedis, Stores, Any] | None = None
        self._lock = asyncio.Lock()

    async def opened(self) -> tuple[ArqRedis, Stores]:
        async with self._lock:
            if self._opened is None:
                # A page fails fast in an outage, rather than wait it out as a worker does.
                redis_settings, server = await asyncio.to_thread(
                    queue_redis_settings, self.settings, ride_out_outages=False
                )
                pool = queue_client(self.settings, redis_settings, ArqRedis)
                self._opened = (pool, await open_stores(self.settings), server)
        pool, stores, _ = self._opened
        return pool, stores

    async def aclose(self) -> None:
        if self._opened is not None:
            pool, stores, server = self._opened
            self._opened = None
            await stores.backend.aclose()
            await pool.aclose()
            if server is not None:
                await asyncio.to_thread(server.release)

    async def report(self) -> report.Report:
        pool, stores = await self.opened()
        return await report.gather(self.settings, stores, pool)

    async def failed(
        self, function: str | None, error: str | None, page: int, per_page: int = 50
    ) -> tuple[list[failed.FailedJob], int]:
        pool, _ = await self.opened()
        return await failed.find_failed(
            pool,
            self.settings.queue_name,
            function=_filter("job name", function),
            error=_filter("error type", error),
            offset=page * per_page,
            limit=per_page,
        )

    async def retry(self, job_id: str) -> None:
        pool, _ = await self.opened()
        await failed.retry(pool, self.settings.queue_name, _job_id(job_id))

    async def discard(self, job_id: str) -> None:
        pool, _ = await self.opened()
        await failed.discard(pool, self.settings.queue_name, _job_id(job_id))

    async def retry_matching(self, function: str | None, error: str | None) -> tuple[int, int]:
        """Retry every kept failed job that matches the filter; how many were, and how many
        could not be (refused jobs: there is nothing to run)."""
        pool, _ = await self.opened()
        matching, _ = await failed.find_failed(
            pool,
            self.settings.queue_name,
            function=_filter("job name", function),
            error=_filter("error type", error),
            limit=self.settings.failed_jobs_keep,
        )
        retryable = [job.job_id for job in matching if job.retryable]
        for job_id in retryable:
            await failed.retry(pool, self.settings.queue_name, job_id)
        return len(retryable), len(matching) - len(retryable)

    async def owner(self, owner_id: str, cursor: str | None) -> OwnerTasks:
        try:
            validate_id(owner_id, "owner id")
        except InvalidArgument as exc:
            raise BadRequest(str(exc)) from None
        _, stores = await self.opened()
        backend = stores.backend
        try:
            page = await backend.list_page(owner_id, cursor, 50)
        except InvalidArgument as exc:
            raise BadRequest(f"cursor: {exc}") from None
        now = await backend.now_ms()
        newest = await backend.list_page(owner_id, None, STATUS_SAMPLE)
        statuses: dict[str, int] = {}
        for key, record in newest.items:
            status = _row(key, record.data, now).status
            statuses[status] = statuses.get(status, 0) + 1
        rows = [_row(key, record.data, now) for key, record in page.items]
        live = await backend.count(owner_id)
        return OwnerTasks(owner_id, live, statuses, len(newest.items), rows, page.next_cursor)

    async def settings_in_force(self) -> list[tuple[str, str]]:
        """Each setting and its value, secrets masked; with Sentinel, the primary now."""
        shown = []
        for name, value in self.settings.model_dump().items():
            if hasattr(value, "get_secret_value"):
                secret = value.get_secret_value()
                value = mask_url(secret) if "://" in secret else "set (hidden)"
            shown.append((name.upper(), "unset" if value is None else str(value)))
        if is_sentinel(self.settings.queue_url):
            pool, _ = await self.opened()
            host, port = await pool.connection_pool.get_master_address()  # type: ignore[attr-defined]
            shown.append(("queue primary (from the sentinels)", f"{host}:{port}"))
        return shown


def _filter(what: str, value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not FILTER.fullmatch(value):
        raise BadRequest(f"a {what} filter is 1-128 characters of [A-Za-z0-9_.:-]")
    return value


def _job_id(value: str) -> str:
    if not re.fullmatch(r"[\w.:-]{1,200}", value, re.ASCII):
        raise BadRequest("a job id is 1-200 characters of [A-Za-z0-9_.:-]")
    return value


def _fields(data: bytes) -> dict[str, Any]:
    try:
        decoded = json.loads(data)
    except ValueError:
        return {}
    return decoded if isinstance(decoded, dict) else {}


NOT_A_TASK = "not a task"
"""The status shown for a record of the owner that the task store did not write."""


def _row(key: str, data: bytes, now_ms: int) -> TaskRow:
    """A task's row: what it is and how big its result is, never what it holds. A record
    that is not a task (the store is generic) shows as such, with its size."""
    task_id = key.partition(":")[2]
    record = _fields(data)
    task = record.get("task")
    if not isinstance(task, dict) or not isinstance(task.get("status"), str):
        return TaskRow(task_id, NOT_A_TASK, "", None, f"record of {len(data):,} B")
    expires = record.get("expiresAt")
    ttl_left = None
    if isinstance(expires, str):
        with contextlib.suppress(ValueError):  # a malformed time shows as unknown
            ttl_left = round(datetime.fromisoformat(expires).timestamp() - now_ms / 1000, 1)
    result = record.get("result")
    described = "" if result is None else f"{type(result).__name__}, {len(json.dumps(result)):,} B"
    return TaskRow(task_id, task["status"], str(task.get("createdAt", "")), ttl_left, described)

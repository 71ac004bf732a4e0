"""One reply wait per client, not one per job (PROTOCOL.md 1.5: Replies).

A job that names ``reply_to`` is answered on ``<queue>:replies:<reply_to>``,
a list the client alone reads, each entry ``<job id> <reply>``. One reader
serves every job the client has in flight, on one connection, taking all
that waits in one RPOP (or blocking in BRPOP when nothing does; both Redis
6.2), where a wait per job would hold a connection and a BLMOVE each. The
reader runs while some job is waited for and stops when none is, so an idle
client sends nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

from arq.connections import ArqRedis
from redis.exceptions import RedisError

from worker.producer.queue import back_off
from worker.protocol.keys import QueueKeys
from worker.protocol.serialization import deserialize

log = logging.getLogger("taskstore.client")

READ_S = 1.0
"""How long one read blocks: the longest a reader outlives the last job it waited for."""
READ_COUNT = 1000
"""The most entries one read takes."""


class SharedReplies:
    """The replies of one client's jobs, read from its own list."""

    def __init__(self, pool: ArqRedis, queue_name: str) -> None:
        self.reply_to = uuid.uuid4().hex
        self.key = QueueKeys(queue_name).replies(self.reply_to)
        self._pool = pool
        self._waiting: dict[str, asyncio.Future[Any]] = {}
        self._reader: asyncio.Task[None] | None = None

    def expect(self, job_id: str) -> None:
        """Wait for ``job_id``'s reply from now on: call it before the job is sent, so a
        reply that comes at once is not passed over."""
        if job_id not in self._waiting:
            self._waiting[job_id] = asyncio.get_running_loop().create_future()
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read())

    async def wait(self, job_id: str, timeout_s: float) -> Any:
        """The job's reply (decoded JSON), or None when none came within ``timeout_s``."""
        self.expect(job_id)
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(asyncio.shield(self._waiting[job_id]), timeout_s)
        return None

    def forget(self, job_id: str) -> None:
        """Stop waiting for ``job_id``: it settled, or its caller gave up."""
        self._waiting.pop(job_id, None)

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _read(self) -> None:
        redis: Any = self._pool
        away = 0
        while self._waiting:
            try:
                # All that waits, in one command; when nothing does, block for the next.
                got = await redis.rpop(self.key, READ_COUNT)
                if not got:
                    one = await redis.brpop([self.key], READ_S)
                    got = [one[1]] if one else []
            except RedisError as exc:  # the queue Redis is away: callers settle at deadlines
                away += 1
                log.debug("reading replies from %s: %s", self.key, exc)
                await back_off(away)
                continue
            away = 0
            for entry in got:
                self._deliver(entry)

    def _deliver(self, entry: bytes) -> None:
        job_id, _, reply = entry.partition(b" ")
        waiting = self._waiting.get(job_id.decode(errors="replace"))
        if waiting is None or waiting.done():
            return  # its caller settled it another way meanwhile
        try:
            waiting.set_result(deserialize(reply))
        except ValueError as exc:
            waiting.set_exception(exc)

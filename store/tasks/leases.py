"""Leases of running tasks: a process running a task says so until when; abandoned ones fail.

A process that runs a task's work itself (an MCP server running a tool in
process) holds a lease on the task and renews it while the work goes on. If
the process dies, the lease runs out, and ``fail_abandoned`` (the worker runs
it on a schedule) fails the task with a message saying so, instead of
leaving it ``working`` until its TTL. Leases are ordinary records of one
reserved owner, so they live in any backend; only running tasks hold one, so
reading them all stays cheap. Both sides read the store's clock
(``StorageBackend.now_ms``), never their own: an MCP server and a worker whose
machines disagree on the time still agree on whether a lease ran out.
"""

from __future__ import annotations

import hashlib
import json
import logging

from store.keys import make_key, make_prefix
from store.tasks.errors import INTERNAL_ERROR, InvalidTransition, TaskNotFound
from store.tasks.store import TaskStore

log = logging.getLogger("taskstore.leases")

LEASE_OWNER = "taskstore.leases"
ABANDONED = "the server process running this task stopped before it finished"
_KEEP_AFTER_MS = 3_600_000
"""A lease record outlives its lease by this much, so one nobody reaps is still removed."""


class RunnerLeases:
    def __init__(self, store: TaskStore) -> None:
        self.store = store

    async def hold(self, task_id: str, owner_id: str, lease_ms: int) -> None:
        """Take or renew the lease on the task for ``lease_ms`` from now (the store's now)."""
        until = await self.store.backend.now_ms() + lease_ms
        data = json.dumps({"owner": owner_id, "task": task_id, "until": until}).encode()
        key = _key(task_id, owner_id)
        await self.store.backend.put(key, data, expires_at_ms=until + _KEEP_AFTER_MS)

    async def release(self, task_id: str, owner_id: str) -> None:
        await self.store.backend.delete(_key(task_id, owner_id))

    async def fail_abandoned(self) -> int:
        """Fail every task whose lease ran out; how many were still running."""
        failed = 0
        now = await self.store.backend.now_ms()
        for key, record in await self.store.backend.list_by_prefix(make_prefix(LEASE_OWNER)):
            lease = json.loads(record.data)
            if lease["until"] > now:
                continue
            error = {"code": INTERNAL_ERROR, "message": ABANDONED}
            try:
                await self.store.fail(lease["task"], lease["owner"], error, ABANDONED)
                failed += 1
                log.warning("task %s failed: its lease ran out", lease["task"])
            except (InvalidTransition, TaskNotFound):
                pass  # it finished (or went) just in time
            await self.store.backend.delete(key)
        return failed


def _key(task_id: str, owner_id: str) -> str:
    digest = hashlib.sha256(f"{owner_id}\0{task_id}".encode()).hexdigest()[:40]
    return make_key(LEASE_OWNER, digest)

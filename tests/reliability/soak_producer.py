"""One soak producer: ``python -m tests.reliability.soak_producer INDEX OPS SEED LOG``.

Settings come from the environment, as for the worker. The producer runs OPS
mixed operations, CONCURRENCY at a time, on owners shared with the other
producers, and learns other producers' tasks from what it lists. Each
operation and what it returned goes to LOG as one JSON line (``soak.Entry``).
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Awaitable
from pathlib import Path

from store import BackendError, StorageError
from store.tasks import StoreError, TaskError, TaskRecord
from tests.reliability.soak import Entry, State
from worker.producer.client import ReplyTimeout, TaskStoreClient
from worker.protocol.errors import OutcomeUnknown
from worker.protocol.settings import load_settings

OWNERS = [f"soak-{n}" for n in range(4)]
CONCURRENCY = 16
WEIGHTS = {
    "create": 12,
    "update_status": 20,
    "set_variables": 20,
    "complete": 8,
    "cancel": 5,
    "get": 20,
    "list": 15,
}
SHORT_TTL_MS, LONG_TTL_MS = (1000, 3000), 600_000
# Checked first: failures after which the operation may or may not have happened.
UNKNOWN = (OutcomeUnknown, ReplyTimeout, BackendError, StoreError)
REFUSED = (TaskError, StorageError)  # any other typed error: the store changed nothing


class Producer:
    def __init__(self, client: TaskStoreClient, index: int, seed: int, log: Path) -> None:
        self.client = client
        self.name = f"p{index}"
        self.rng = random.Random(seed)
        self.tasks: dict[str, list[str]] = {owner: [] for owner in OWNERS}
        self.log = log.open("w")
        self.count = 0

    async def run(self, ops: int) -> None:
        async def lane() -> None:
            while self.count < ops:
                self.count += 1
                await self.one(self.count)

        await asyncio.gather(*(lane() for _ in range(CONCURRENCY)))
        self.log.close()

    async def one(self, n: int) -> None:
        op = self.rng.choices(list(WEIGHTS), list(WEIGHTS.values()))[0]
        owner = self.rng.choice(OWNERS)
        known = self.tasks[owner]
        if op == "create" or not known:
            await self.create(owner)
        elif op == "list":
            await self.listing(owner)
        else:
            await self.on_task(op, owner, self.rng.choice(known), f"{self.name}-{n}")

    async def create(self, owner: str) -> None:
        short = self.rng.random() < 0.3
        ttl = self.rng.randint(*SHORT_TTL_MS) if short else LONG_TTL_MS
        try:
            record = await self.client.create_task(owner, "tools/call", ttl)
        except UNKNOWN:
            self.write(Entry("create", owner, None, "unknown"))
            return
        except REFUSED as exc:
            self.write(Entry("create", owner, None, "refused", arg=type(exc).__name__))
            return
        self.tasks[owner].append(record.task_id)
        self.write(
            Entry(
                "create",
                owner,
                record.task_id,
                "ok",
                state=State.of(record),
                expires_ms=record.expires_at_ms,
            )
        )

    async def listing(self, owner: str) -> None:
        page = await self.client.list_tasks(owner, limit=100)
        seen = tuple((t.task_id, State.of(t)) for t in page.tasks)
        assert all(t.owner_id == owner for t in page.tasks), "a list crossed owners"
        known = set(self.tasks[owner])
        self.tasks[owner].extend(task for task, _ in seen if task not in known)
        self.write(Entry("list", owner, None, "ok", seen=seen))

    async def on_task(self, op: str, owner: str, task: str, unique: str) -> None:
        client, status, arg = self.client, None, unique
        call: Awaitable[TaskRecord]
        if op == "get":
            call = client.get_task(task, owner)
        elif op == "update_status":
            arg = self.rng.choice(["working", "input_required"])
            call = client.update_status(task, owner, arg)
        elif op == "set_variables":
            call = client.set_variables(task, owner, {unique: 1})
        elif op == "complete":
            status = self.rng.choice(["completed", "failed"])
            call = client.complete_with_result(task, owner, status, unique)
        else:
            call = client.cancel_task(task, owner)
        try:
            record = await call
        except UNKNOWN:
            self.write(Entry(op, owner, task, "unknown", arg=arg, status=status))
            return
        except REFUSED as exc:
            self.write(Entry(op, owner, task, "refused", arg=type(exc).__name__))
            return
        self.write(Entry(op, owner, task, "ok", arg=arg, status=status, state=State.of(record)))

    def write(self, entry: Entry) -> None:
        self.log.write(entry.to_line())


async def main(index: int, ops: int, seed: int, log: Path) -> None:
    async with TaskStoreClient.connect(load_settings()) as client:
        await Producer(client, index, seed, log).run(ops)


if __name__ == "__main__":
    index, ops, seed, log = sys.argv[1:5]
    asyncio.run(main(int(index), int(ops), int(seed), Path(log)))

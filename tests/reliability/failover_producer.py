"""One producer of the queue fault tests: ``python -m tests.reliability.failover_producer
INDEX LOG STOP``.

Settings come from the environment, as for the worker. Until the file STOP
exists it sends, under its own owner, coalesced puts, single-write jobs, CAS
increments on two counters, and task creations and cancellations, each on a
key of its own. A call that ends without a definite outcome is sent again
under the same op id, as a careful caller would, until one comes; each write
and its definite outcome go to LOG as one JSON line (``Entry``); what the
client settled in the store, for jobs the queue no longer held, goes to stderr.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

from store import BackendError, NotFound, StorageError, make_key
from store.tasks import StoreError, TaskError
from worker.producer.client import ReplyTimeout, TaskStoreClient
from worker.protocol.errors import OutcomeUnknown, WriteNotApplied
from worker.protocol.settings import load_settings

UNKNOWN = (OutcomeUnknown, ReplyTimeout, BackendError, StoreError)
"""After these the write may or may not have been applied: it is sent again."""
LANES = {"coalesced": 6, "single": 4, "counter": 2, "task": 2}


@dataclass
class Entry:
    """One write and its definite outcome: ``ok`` (with its value), ``not_applied`` or
    ``refused`` (with the error's type); ``unknown`` counts the sends that ended without."""

    kind: str
    key: str
    op_id: str
    outcome: str
    value: Any
    start: float
    end: float
    unknown: int

    @classmethod
    def from_line(cls, line: str) -> Entry:
        return cls(**json.loads(line))


def owner_of(index: int) -> str:
    return f"producer-{index}"


class Producer:
    def __init__(self, client: TaskStoreClient, index: int, log: TextIO, stop: Path) -> None:
        self.client, self.owner, self.log, self.stop = client, owner_of(index), log, stop

    async def run(self) -> None:
        lanes = {"coalesced": self.put, "single": self.put, "counter": self.count}
        await asyncio.gather(
            *(
                (lanes.get(kind) or self.task)(kind, lane)
                for kind, count in LANES.items()
                for lane in range(count)
            )
        )

    async def definite(
        self, kind: str, key: str, op_id: str, call: Callable[[], Awaitable[Any]]
    ) -> Entry:
        """Send ``call`` until it has a definite outcome; log it."""
        start, unknown = time.time(), 0
        while True:
            try:
                outcome, value = "ok", await call()
            except WriteNotApplied as exc:
                outcome, value = "not_applied", type(exc).__name__
            except UNKNOWN:
                unknown += 1
                await asyncio.sleep(0.05)
                continue
            except (StorageError, TaskError) as exc:
                outcome, value = "refused", type(exc).__name__
            entry = Entry(kind, key, op_id, outcome, value, start, time.time(), unknown)
            self.log.write(json.dumps(asdict(entry)) + "\n")
            self.log.flush()
            return entry

    async def put(self, kind: str, lane: int) -> None:
        n = 0
        while not self.stop.exists():
            n += 1
            name = f"{kind[0]}{lane}-{n}"
            key = make_key(self.owner, name)
            send = functools.partial(
                self.client.put, key, name.encode(), op_id=name, coalesce=kind == "coalesced"
            )
            await self.definite(kind, key, name, send)

    async def count(self, kind: str, lane: int) -> None:
        key, n = make_key(self.owner, f"counter{lane}"), 0
        while not self.stop.exists():
            n += 1
            name = f"n{lane}-{n}"
            version = await self._version(key)
            data = str(version + 1).encode()
            # A conflict would mean an earlier write of this lane's was reported wrongly:
            # it is logged as refused, and the test counts it.
            send = (
                functools.partial(self.client.put_if_version, key, data, version, op_id=name)
                if version
                else functools.partial(self.client.put, key, data, op_id=name)
            )
            await self.definite(kind, key, name, send)

    async def task(self, kind: str, lane: int) -> None:
        n = 0
        while not self.stop.exists():
            n += 1
            method = f"m{lane}-{n}"
            create = functools.partial(self._create, method, f"t{lane}-{n}")
            created = await self.definite("create", method, f"t{lane}-{n}", create)
            if created.outcome == "ok":
                task_id = str(created.value)
                cancel = functools.partial(self._cancel, task_id, f"x{lane}-{n}")
                await self.definite("cancel", task_id, f"x{lane}-{n}", cancel)

    async def _create(self, method: str, op_id: str) -> str:
        return (await self.client.create_task(self.owner, method, op_id=op_id)).task_id

    async def _cancel(self, task_id: str, op_id: str) -> str:
        record = await self.client.cancel_task(task_id, self.owner, op_id=op_id)
        return record.task.status.value

    async def _version(self, key: str) -> int:
        while True:
            try:
                return (await self.client.get(key)).version
            except NotFound:
                return 0
            except BackendError:
                await asyncio.sleep(0.05)


async def main(index: int, log: Path, stop: Path) -> None:
    # The client's word on jobs the queue lost, for the test to count.
    logging.basicConfig(format="%(message)s")
    logging.getLogger("taskstore.client").setLevel(logging.INFO)
    async with TaskStoreClient.connect(load_settings()) as client:
        with log.open("w") as out:
            await Producer(client, index, out, stop).run()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))

"""A reply of any size the limits allow finishes its batch: past ``MAX_REPLY_BYTES`` its
values are elided, and every caller still gets its write's outcome."""

from __future__ import annotations

import asyncio
from typing import Any

from store import VersionConflict, make_key
from store.tasks import TaskRecord
from tests.harness import unique
from worker.producer.client import TaskStoreClient
from worker.protocol.envelope import MAX_REPLY_BYTES

BIG = 4 * 1024 * 1024  # the largest record


async def test_a_reply_past_its_bound_finishes_and_every_caller_reads_its_outcome(
    client: TaskStoreClient,
) -> None:
    owner = unique()
    records = [make_key(owner, f"big{i}") for i in range(3)]
    for i, key in enumerate(records):
        await client.stores.backend.put(key, bytes([i]) * BIG)
    tasks = [await client.stores.tasks.create(owner, "tools/call") for _ in range(8)]
    bulk = {f"part{i}": "v" * 60_000 for i in range(15)}
    for task in tasks:  # each task's record now weighs about 0.9 MiB
        await client.stores.tasks.set_variables(task.task_id, owner, bulk)
    # One job (one turn): three conflicts, each carrying a 4 MiB record, and eight
    # writes each answered with its 0.9 MiB task: 24 MiB of values for one reply.
    outcomes: list[Any] = await asyncio.gather(
        *(client.put_if_version(key, b"x", 5) for key in records),
        *(client.set_variables(t.task_id, owner, {"n": i}) for i, t in enumerate(tasks)),
        return_exceptions=True,
    )
    conflicts, updated = outcomes[:3], outcomes[3:]
    assert all(isinstance(c, VersionConflict) and c.actual == 1 for c in conflicts)
    assert conflicts[0].current_data == bytes([0]) * BIG
    assert [c.current_data for c in conflicts[1:]] == [None, None]  # no room: read the key
    for i, record in enumerate(updated):
        assert isinstance(record, TaskRecord), record
        assert record.variables["n"] == i
    assert 3 * BIG > MAX_REPLY_BYTES

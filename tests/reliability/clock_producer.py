"""A producer for the clock tests, run as ``python -m tests.reliability.clock_producer`` under
``faketime``: its settings come from the environment; it prints one JSON line.

- ``puts OWNER N``: N puts, alternately coalesced and alone; each one's outcome and how
  long it took by the queue Redis's clock (``TIME`` before and after).
- ``given_up OWNER N``: N puts alone that no worker takes; each one's outcome (the
  caller is told it was not applied) and its job as the queue held it meanwhile.
- ``put KEY OP_ID``: one put alone under that op id: its job id, its job as the queue held
  it (null once answered) and its outcome.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from store import StorageError, make_key
from store.clock import server_ms
from worker.producer.client import TaskStoreClient
from worker.protocol.keys import job_keys


async def _outcome(call: Any) -> Any:
    try:
        return await call
    except StorageError as exc:
        return type(exc).__name__


async def puts(client: TaskStoreClient, owner: str, n: int) -> list[Any]:
    done = []
    for i in range(n):
        before = await server_ms(client.pool)
        outcome = await _outcome(client.put(make_key(owner, f"k{i}"), b"x", coalesce=i % 2 == 0))
        done.append([outcome, await server_ms(client.pool) - before])
    return done


async def given_up(client: TaskStoreClient, owner: str, n: int) -> list[Any]:
    handles = [
        await client.enqueue_put(make_key(owner, f"k{i}"), b"x", coalesce=False) for i in range(n)
    ]
    jobs = [(await client.pool.get(job_keys(h.job_id).job)).decode() for h in handles]
    outcomes = await asyncio.gather(*(_outcome(h.result()) for h in handles))
    return [[h.job_id, job, o] for h, job, o in zip(handles, jobs, outcomes, strict=True)]


async def put(client: TaskStoreClient, key: str, op_id: str) -> list[Any]:
    handle = await client.enqueue_put(key, b"x", op_id=op_id, coalesce=False)
    job = await client.pool.get(job_keys(handle.job_id).job)
    outcome = await _outcome(handle.result())
    return [handle.job_id, job.decode() if job is not None else None, outcome]


async def main(command: str, *args: str) -> None:
    async with TaskStoreClient.connect() as client:
        if command == "puts":
            found: Any = await puts(client, args[0], int(args[1]))
        elif command == "given_up":
            found = await given_up(client, args[0], int(args[1]))
        else:
            found = await put(client, args[0], args[1])
    print(json.dumps(found))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))

"""Two HTTP servers and two workers under 150 tasks, one of each SIGKILLed mid-run."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from mcp import Client
from redis.asyncio import Redis

from store.tasks.leases import ABANDONED
from tests.harness import until
from tests.mcp.poller import MODERN, Poller, get_task, start_task
from tests.mcp.test_example_server import EXAMPLE, http_server, worker_settings_of
from tests.worker.conftest import WorkerProcess, wait_for_worker
from worker.protocol.keys import job_keys
from worker.protocol.serialization import deserialize

IN_PROCESS, DURABLE = 100, 50


@pytest.mark.slow
async def test_tasks_through_two_servers_and_two_workers_survive_a_kill_of_each(
    env: dict[str, str], tmp_path: Path, measurements: list[str]
) -> None:
    settings = worker_settings_of(env, mcp_tool_modules=str(EXAMPLE), sweep_interval_s=1)
    workers = [WorkerProcess(settings, tmp_path / f"worker{i}.log") for i in range(2)]
    rng = random.Random(7)
    try:
        await wait_for_worker(settings, count=2)
        async with (
            http_server(env) as (doomed, first_url),
            http_server(env) as (_, second_url),
            Client(first_url, mode=MODERN, extensions=[Poller(wait=False)]) as first,
            Client(second_url, mode=MODERN, extensions=[Poller(wait=False)]) as second,
        ):
            clients = [first, second]
            jobs: list[tuple[str, Any, bool]] = []
            for i in range(IN_PROCESS + DURABLE):
                durable = i % 3 == 2 and sum(d for _, _, d in jobs) < DURABLE
                jobs.append((f"text-{i}", clients[i % 2], durable))

            async def start(text: str, c: Client, durable: bool) -> str:
                tool = "durable_sleep_then_echo" if durable else "sleep_then_echo"
                seconds = rng.uniform(0.5, 3.0)
                return await start_task(c, tool, {"text": text, "seconds": seconds})

            task_ids = await asyncio.gather(*(start(*job) for job in jobs))
            expected = dict(zip(task_ids, jobs, strict=True))
            assert sum(d for _, _, d in jobs) == DURABLE
            assert len(jobs) == IN_PROCESS + DURABLE

            # Each task read through the server that did not start it.
            for task_id, (_, c, _) in expected.items():
                other = second if c is first else first
                seen = await get_task(other.session, task_id)
                assert (seen["taskId"], seen["status"] in ("working", "completed")) == (
                    task_id,
                    True,
                )

            # Mid-run: which durable jobs are running now, then one server and one worker die.
            queue = Redis.from_url(settings.queue_url)
            durable_ids = [t for t, (_, _, d) in expected.items() if d]
            running = {
                t
                for t, held in zip(
                    durable_ids,
                    [await queue.exists(job_keys(f"tool-{t}").claim) for t in durable_ids],
                    strict=True,
                )
                if held
            }
            killed_at = time.monotonic()
            doomed.send_signal(signal.SIGKILL)
            workers[0].stop(signal.SIGKILL)

            async def state(task_id: str) -> dict[str, Any]:
                return await get_task(second.session, task_id)

            async def all_ended() -> bool:
                states = await asyncio.gather(*(state(t) for t in task_ids))
                return all(s["status"] in ("completed", "failed", "cancelled") for s in states)

            await until(all_ended, timeout_s=90)
            ended_after = time.monotonic() - killed_at
            completed = abandoned = 0
            for task_id, (text, c, durable) in expected.items():
                final = await state(task_id)
                if final["status"] == "completed":
                    assert final["result"]["content"][0]["text"] == text
                    completed += 1
                    continue
                # Only a tool running in the killed server may end failed, and only so.
                assert not durable, final
                assert c is first, final
                assert final["status"] == "failed"
                assert final["error"] == {"code": -32603, "message": ABANDONED}
                abandoned += 1
            # A durable tool starts once; a second time only if the killed worker ran it.
            twice = []
            for task_id in durable_ids:
                result = deserialize(await queue.get(job_keys(f"tool-{task_id}").result))
                assert result["s"] is True
                if result["t"] > 1:
                    assert task_id in running, task_id
                    twice.append(task_id)
            await queue.delete(*(k for t in durable_ids for k in job_keys(f"tool-{t}")))
            await queue.aclose()
    finally:
        for worker in workers:
            worker.stop()
    assert workers[1].output().count("Traceback") == 0
    measurements.append(
        f"MCP stress: {IN_PROCESS} in-process and {DURABLE} durable tasks through 2 HTTP "
        f"servers and 2 workers, one of each SIGKILLed: {completed} completed, "
        f"{abandoned} failed as abandoned, 0 left working; {len(twice)} durable tools ran "
        f"again after their worker died; the last task ended {ended_after:.1f} s after the kill"
    )

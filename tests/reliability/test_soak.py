"""Soak: 4 producer processes and 2 workers run mixed operations with sweeps every second.

Afterwards every task is read back and its history must be explainable by a
sequential execution of the acknowledged operations (``soak.explains``), no
read may have seen a write that later vanished, and no expired task may
remain listed or indexed. ``TASKSTORE_TEST_SOAK_OPS`` sets the size.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from store import RedisBackend
from store.tasks import TaskNotFound, TaskStatus
from tests.harness import server_ms
from tests.processes import dies_with_parent, reaped
from tests.reliability.soak import Mutation, State, explains, histories, read_logs
from tests.reliability.soak_producer import OWNERS
from tests.worker.conftest import (
    WorkerProcess,
    drop_test_keys,
    isolated_settings,
    settings_env,
    wait_for_worker,
)
from worker.producer.client import TaskStoreClient

PRODUCERS, WORKERS = 4, 2
OPS = int(os.environ.get("TASKSTORE_TEST_SOAK_OPS", "5000"))  # the full soak: 20000
SWEEP_SLACK_MS = 3000  # an expired entry may outlive its expiry by this, sweeping every second
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.soak
@pytest.mark.slow
async def test_soak_histories_are_sequential_and_nothing_expired_stays_listed(
    redis_url: str, tmp_path: Path, measurements: list[str]
) -> None:
    settings = isolated_settings(
        redis_url,
        "soak",
        sweep_interval_s=1,
        reap_interval_s=5,
        max_tasks_per_owner=100_000,
        reply_timeout_s=30,
        embedded_dir=tmp_path,
    )
    workers = [WorkerProcess(settings, tmp_path / f"worker{i}.log") for i in range(WORKERS)]
    logs = [tmp_path / f"producer{i}.jsonl" for i in range(PRODUCERS)]
    try:
        await wait_for_worker(settings, count=WORKERS)
        started = time.monotonic()
        producers = [
            await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "tests.reliability.soak_producer"),
                *(str(i), str(OPS // PRODUCERS), str(1000 + i), str(log)),
                env=settings_env(settings),
                cwd=ROOT,
                stderr=asyncio.subprocess.PIPE,
                preexec_fn=dies_with_parent(),
            )
            for i, log in enumerate(logs)
        ]
        try:
            for producer in producers:
                _, errors = await asyncio.wait_for(producer.communicate(), timeout=600)
                assert producer.returncode == 0, errors.decode()[-3000:]
        finally:
            for producer in producers:
                await reaped(producer)
        elapsed = time.monotonic() - started
        assert all(w.alive() for w in workers)
        await asyncio.sleep(SWEEP_SLACK_MS / 1000 + 1)

        entries = list(read_logs(logs))
        tasks = histories(entries)
        async with TaskStoreClient.connect(settings) as client:
            backend = client.stores.backend
            assert isinstance(backend, RedisBackend)
            now_ms = await server_ms(backend)
            gone = 0
            for task_id, history in tasks.items():
                try:
                    final = State.of(await client.get_task(task_id, history.owner))
                except TaskNotFound:
                    assert history.expires_ms is not None, f"{task_id} vanished"
                    assert history.expires_ms <= now_ms, f"{task_id} vanished before expiry"
                    gone += 1
                    continue
                assert explains(history.start, history.acknowledged, history.unknown, final), (
                    task_id,
                    history,
                    final,
                )
                for seen in history.observed:
                    assert seen.variables <= final.variables, (task_id, seen, final)
                    assert not TaskStatus(seen.status).terminal or seen == final, (task_id, seen)

            for owner in OWNERS:
                cursor = None
                while True:
                    page = await client.list_tasks(owner, cursor, 100)
                    for task in page.tasks:
                        assert task.expires_at_ms is None or task.expires_at_ms > now_ms
                    if (cursor := page.next_cursor) is None:
                        break
                redis: Any = backend.client
                expiry_index = backend.keys.owner(owner).expiry
                stale = await redis.zcount(expiry_index, "-inf", now_ms - SWEEP_SLACK_MS)
                assert stale == 0, f"{stale} expired tasks of {owner} still indexed"

        swept = sum(
            int(n) for w in workers for n in re.findall(r"sweep removed (\d+) ", w.output())
        )
        assert swept > 0
        outcomes = [e.outcome for e in entries]
        measurements.append(
            f"soak: {len(entries)} operations from {PRODUCERS} producers through {WORKERS} "
            f"workers in {elapsed:.1f} s ({len(entries) / elapsed:.0f}/s); {len(tasks)} tasks "
            f"({gone} expired), {outcomes.count('ok')} acknowledged, "
            f"{outcomes.count('refused')} refused, {outcomes.count('unknown')} unknown; "
            f"sweeps removed {swept}"
        )
    finally:
        for worker in workers:
            worker.stop()
        await drop_test_keys(settings)


# The checker itself, on histories made by hand: it must reject what is wrong.

START = State("working", frozenset(), None)


def test_the_checker_accepts_an_interleaving_and_rejects_a_lost_update() -> None:
    a = Mutation("set_variables", "a", after=State("working", frozenset("a"), None))
    b = Mutation("set_variables", "b", after=State("working", frozenset("ab"), None))
    done = Mutation("complete", "r", "completed", State("completed", frozenset("ab"), "r"))
    assert explains(START, [done, b, a], [], State("completed", frozenset("ab"), "r"))
    # b's write was acknowledged but is not in the final state: lost.
    assert not explains(START, [a, b], [], State("working", frozenset("a"), None))
    # Two completions cannot both have succeeded.
    other = Mutation("cancel", "x", after=State("cancelled", frozenset(), None))
    cancelled = State("cancelled", frozenset(), None)
    assert not explains(START, [other, done], [], cancelled)


def test_the_checker_places_unknown_outcomes_anywhere_or_nowhere() -> None:
    maybe = Mutation("set_variables", "m")
    assert explains(START, [], [maybe], START)
    assert explains(START, [], [maybe], State("working", frozenset("m"), None))
    assert not explains(START, [], [maybe], State("working", frozenset("z"), None))

"""Connections killed every 200 ms: every acknowledged increment is applied exactly once.

Each counter is incremented at least ``EACH`` times and until the connections
have been killed ``KILLS`` times, so the faults land however fast the path is.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from pathlib import Path

import pytest
from redis.asyncio import Redis

from store import BackendError, make_key
from tests.harness import unique
from tests.servers import RedisProcess, free_ports
from tests.worker.conftest import WorkerProcess, isolated_settings, wait_for_worker
from worker.producer.client import TaskStoreClient
from worker.protocol.errors import WriteNotApplied

KEYS, EACH, KILLS = 25, 200, 15  # 5,000 increments at least


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body: bytes = response.read()
    return body.decode()


@pytest.mark.slow
async def test_increments_survive_connections_killed_every_200_ms(tmp_path: Path) -> None:
    # A server of the test's own: CLIENT KILL TYPE normal reaches every client of it.
    server = RedisProcess(free_ports(1)[0], tmp_path / "redis")
    server.start()
    metrics_port = free_ports(1)[0]
    settings = isolated_settings(
        server.url,
        "drop",
        job_timeout_s=2,  # a job claimed by a killed connection is re-run 12 s later
        reply_timeout_s=3,
        metrics_port=metrics_port,
        embedded_dir=tmp_path,
    )
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    killer_client = Redis.from_url(server.url)
    kills = 0
    try:
        await wait_for_worker(settings)
        async with TaskStoreClient.connect(settings) as client:
            keys = [make_key(unique(), "counter") for _ in range(KEYS)]
            for key in keys:
                await client.put(key, b"0")
            acknowledged = dict.fromkeys(keys, 0)

            async def increments(key: str) -> None:
                i = 0
                while i < EACH or kills < KILLS:
                    op_id = f"{key}:{i}"  # the same op however often it is resent
                    while True:
                        try:
                            record = await client.get(key)
                            await client.put_if_version(
                                key, str(int(record.data) + 1).encode(), record.version, op_id=op_id
                            )
                            acknowledged[key] += 1
                            i += 1
                            break
                        except (BackendError, TimeoutError, WriteNotApplied):
                            # A write told "not applied" (its job waited past its deadline
                            # behind the kills) is sent again: a new attempt of its op id.
                            await asyncio.sleep(0.05)

            async def killer() -> None:
                nonlocal kills
                while True:
                    await asyncio.sleep(0.2)
                    with contextlib.suppress(Exception):
                        await killer_client.execute_command(
                            "CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"
                        )
                        kills += 1

            killing = asyncio.create_task(killer())
            try:
                await asyncio.wait_for(asyncio.gather(*(increments(k) for k in keys)), 180)
            except TimeoutError:
                raise AssertionError(
                    (acknowledged, kills, worker.alive(), worker.output()[-2000:])
                ) from None
            killing.cancel()
            for key in keys:
                record = await client.get(key)
                assert int(record.data) == acknowledged[key] >= EACH
                assert record.version == acknowledged[key] + 1
        assert kills >= KILLS
        assert worker.alive()
        metrics = await asyncio.to_thread(_scrape, metrics_port)
        failures = [
            line for line in metrics.splitlines()
            if line.startswith("taskstore_backend_errors_total") and not line.endswith(" 0.0")
        ]  # fmt: skip
        assert failures or "will retry" in worker.output()
    finally:
        await killer_client.aclose()
        worker.stop()
        server.stop()

"""A deployment for the dashboard's tests: its settings, a worker, and the dashboard served
by ``taskstore dashboard`` as an operator starts it."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

pytest.importorskip("starlette", reason="the dashboard extra is not installed")
pytest.importorskip("jinja2", reason="the dashboard extra is not installed")

from tests.harness import until
from tests.processes import dies_with_parent
from tests.servers import free_ports
from tests.worker.conftest import (
    WorkerProcess,
    drop_test_keys,
    isolated_settings,
    settings_env,
    wait_for_worker,
)
from worker.protocol.settings import Settings

TOKEN = "dashboard-test-token"


@pytest.fixture
async def deployment(redis_url: str, tmp_path: Path) -> AsyncIterator[Settings]:
    """Settings of a queue and store of the test's own, with a worker serving them."""
    settings = isolated_settings(
        redis_url, "dash", failed_jobs_keep=10_000, max_tasks_per_owner=100_000, max_tries=2
    )
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        await wait_for_worker(settings)
        yield settings
    finally:
        worker.stop()
        await drop_test_keys(settings)


class Served:
    """``taskstore dashboard`` in a process of its own, on a free loopback port."""

    def __init__(self, settings: Settings, log: Path, **env: str) -> None:
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}/"
        environment = {**settings_env(settings), "TASKSTORE_DASHBOARD_PORT": str(self.port), **env}
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker.tools.cli", "dashboard"],
            env=environment,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            preexec_fn=dies_with_parent(),
        )

    async def ready(self) -> None:
        def answers() -> bool:
            with socket.socket() as probe:
                return probe.connect_ex(("127.0.0.1", self.port)) == 0

        await until(answers, 30)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
async def served(deployment: Settings, tmp_path: Path) -> AsyncIterator[Served]:
    dashboard = Served(deployment, tmp_path / "dashboard.log")
    try:
        await dashboard.ready()
        yield dashboard
    finally:
        dashboard.stop()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = tmp_path / "screenshots"
    folder.mkdir()
    return folder

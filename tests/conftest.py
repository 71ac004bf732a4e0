"""Fixtures shared by every test: the servers and the registry of backend harnesses."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis

from store.redis import EmbeddedRedis
from tests.harness import Harness, HarnessFactory, memory_harness, redis_harness
from tests.leftovers import describe, is_lease
from tests.servers import LocalCluster, wait_for

DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/0"

TEST_TIMEOUT_S = float(os.environ.get("TASKSTORE_TEST_TIMEOUT_S", "300"))
"""The longest one async test may run (pytest-timeout bounds the others, a little later).
A test past it is cancelled, so it fails naming itself and its ``finally`` blocks stop
what it started, even in a suite started where SIGINT is ignored."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        test = getattr(item, "obj", None)
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(test):
            item.obj = _bounded(test)


def _bounded(test: Callable[..., Coroutine[Any, Any, Any]]) -> Callable[..., Any]:
    @functools.wraps(test)
    async def bounded(*args: Any, **kwargs: Any) -> Any:
        async with asyncio.timeout(TEST_TIMEOUT_S) as limit:
            try:
                return await test(*args, **kwargs)
            except asyncio.CancelledError:
                if limit.expired():
                    pytest.fail(f"ran past {TEST_TIMEOUT_S:g} s and was stopped", pytrace=False)
                raise

    return bounded


# Each backend kind the contract suite runs on, and the fixture giving its factory.
HARNESSES: dict[str, str] = {
    "memory": "memory_factory",
    "redis": "redis_factory",
    "embedded": "embedded_factory",
    "cluster": "cluster_factory",
}


_MEASUREMENTS = pytest.StashKey[list[str]]()


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind() -> Iterator[None]:
    """Fail the run when keys it made stay on the shared Redis: each test removes what
    its queue and store wrote (``tests.leftovers``). Keys there before the run are not
    the run's, and are left alone."""
    url = os.environ.get("TASKSTORE_TEST_REDIS_URL") or DEFAULT_TEST_REDIS_URL
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        before = set(client.scan_iter(count=1000))
    except redis.RedisError:  # no shared Redis: the tests that need one skip
        yield
        return
    yield
    # A worker stopped while it ran a cron job leaves that job's claim, which arq lets
    # expire (within JOB_TIMEOUT_S + 10 s, 40 s by default). Claims are waited out (one
    # that outlives the wait is reported below with the rest); nothing else is.
    with contextlib.suppress(RuntimeError):
        wait_for(lambda: not [k for k in _new_keys(client, before) if is_lease(k)], "claims", 60)
    left = _new_keys(client, before)
    client.close()
    if left:
        pytest.fail(f"the run left {len(left)} keys on {url}: {describe(left)}")


def _new_keys(client: redis.Redis, before: set[Any]) -> set[Any]:
    return set(client.scan_iter(count=1000)) - before


@pytest.fixture
def measurements(request: pytest.FixtureRequest) -> list[str]:
    """Lines a test measured (a failover gap, say), printed in the run's summary."""
    return request.config.stash.setdefault(_MEASUREMENTS, [])


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    lines = config.stash.get(_MEASUREMENTS, [])
    if lines:
        terminalreporter.section("measured")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared test Redis: TASKSTORE_TEST_REDIS_URL, else the local default."""
    url = os.environ.get("TASKSTORE_TEST_REDIS_URL")
    try:
        redis.Redis.from_url(url or DEFAULT_TEST_REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        if url:
            raise
        pytest.skip(
            f"TASKSTORE_TEST_REDIS_URL unset and {DEFAULT_TEST_REDIS_URL} unreachable: {exc}"
        )
    return url or DEFAULT_TEST_REDIS_URL


@pytest.fixture(scope="session")
def embedded_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A session-wide embedded server; tests attach to it through its directory."""
    directory = tmp_path_factory.mktemp("embedded")
    server = EmbeddedRedis(directory)
    server.acquire()
    yield directory
    server.release()


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    local = LocalCluster(tmp_path_factory.mktemp("cluster"))
    try:
        local.start()
        yield local
    finally:
        local.stop()


@pytest.fixture(scope="session")
def memory_factory() -> HarnessFactory:
    return memory_harness


@pytest.fixture(scope="session")
def redis_factory(redis_url: str) -> HarnessFactory:
    return partial(redis_harness, redis_url, "redis")


@pytest.fixture(scope="session")
def embedded_factory(embedded_dir: Path) -> HarnessFactory:
    return partial(redis_harness, "embedded", "embedded", embedded_dir=embedded_dir)


@pytest.fixture(scope="session")
def cluster_factory(cluster: LocalCluster) -> HarnessFactory:
    return partial(redis_harness, cluster.url, "cluster")


@pytest.fixture(params=list(HARNESSES))
def harness_factory(request: pytest.FixtureRequest) -> HarnessFactory:
    """The factory of one registered kind; servers start only when a kind is used."""
    factory: HarnessFactory = request.getfixturevalue(HARNESSES[request.param])
    return factory


@pytest.fixture
async def harness(harness_factory: HarnessFactory) -> AsyncIterator[Harness]:
    async with harness_factory() as h:
        yield h


SERVER_KINDS = [kind for kind in HARNESSES if kind != "memory"]


@pytest.fixture(params=SERVER_KINDS)
def server_factory(request: pytest.FixtureRequest) -> HarnessFactory:
    """Like ``harness_factory``, for tests that need a real server's concurrency."""
    factory: HarnessFactory = request.getfixturevalue(HARNESSES[request.param])
    return factory


@pytest.fixture
async def server(server_factory: HarnessFactory) -> AsyncIterator[Harness]:
    async with server_factory() as h:
        yield h


NODE_PACKAGES = ("redis@4", "@modelcontextprotocol/sdk@1")
"""Node's ``redis`` for the producer, the official TypeScript MCP SDK for the MCP client."""


@pytest.fixture(scope="session")
def node_modules(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the Node.js tests cannot run")
    given = os.environ.get("TASKSTORE_TEST_NODE_MODULES")
    if given:
        yield Path(given)
        return
    prefix = tmp_path_factory.mktemp("npm")
    subprocess.run(
        ["npm", "install", "--prefix", str(prefix), "--no-audit", "--no-fund", *NODE_PACKAGES],
        check=True,
        capture_output=True,
        timeout=300,
    )
    yield prefix / "node_modules"

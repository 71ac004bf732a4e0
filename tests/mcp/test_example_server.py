"""``examples/mcp_server.py`` as users run it: over stdio, two processes on one Redis, and HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.processes import dies_with_parent

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from mcp import Client, StdioServerParameters

from store.tasks.leases import ABANDONED
from tests.harness import until
from tests.mcp.poller import MODERN, Poller, get_task, start_task, text
from tests.servers import free_ports
from tests.worker.conftest import running_worker
from worker.protocol.settings import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mcp_server.py"


def stdio(env: dict[str, str], poller: Poller) -> Client:
    params = StdioServerParameters(command=sys.executable, args=[str(EXAMPLE)], env=env)
    return Client(params, mode=MODERN, extensions=[poller])


def name_answer(request: dict[str, Any]) -> dict[str, Any]:
    return {"action": "accept", "content": {"name": "Ada"}}


async def test_two_stdio_servers_on_one_redis_answer_each_others_tasks(
    env: dict[str, str],
) -> None:
    async with (
        stdio(env, Poller(wait=False)) as first,
        stdio(env, Poller(name_answer)) as second,
    ):
        task_id = await start_task(first, "sleep_then_echo", {"text": "across", "seconds": 0.3})

        async def completed() -> bool:
            return bool((await get_task(second.session, task_id))["status"] == "completed")

        await until(completed)
        state = await get_task(second.session, task_id)
        assert state["result"]["content"][0]["text"] == "across"
        assert text(await second.call_tool("ask_name", {})) == "hello Ada"
        failed = await second.call_tool("always_fails", {})
        assert failed.is_error


@asynccontextmanager
async def http_server(env: dict[str, str]) -> AsyncIterator[tuple[Process, str]]:
    """The example over streamable HTTP, its process and its URL; killed on exit."""
    [port] = free_ports(1)
    server = await asyncio.create_subprocess_exec(
        sys.executable, str(EXAMPLE), "--http", str(port),
        env={**os.environ, **env},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        preexec_fn=dies_with_parent(),
    )  # fmt: skip
    try:
        await until(lambda: _listening(port), timeout_s=20)
        yield server, f"http://127.0.0.1:{port}/mcp"
    finally:
        with contextlib.suppress(ProcessLookupError):  # a test may have killed it already
            server.kill()
        await asyncio.wait_for(server.wait(), 10)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def worker_settings_of(env: dict[str, str], **overrides: Any) -> Settings:
    """The settings of a worker beside the example: the same Redis, prefix and queue."""
    return load_settings(
        redis_url=env["TASKSTORE_REDIS_URL"],
        key_prefix=env["TASKSTORE_KEY_PREFIX"],
        queue_name=env["TASKSTORE_QUEUE_NAME"],
        **overrides,
    )


async def test_streamable_http_end_to_end(env: dict[str, str]) -> None:
    async with (
        http_server(env) as (_, url),
        Client(url, mode=MODERN, extensions=[Poller()]) as c,
    ):
        result = await c.call_tool("sleep_then_echo", {"text": "over http", "seconds": 0.1})
    assert text(result) == "over http"


async def test_a_task_whose_server_died_is_failed_by_the_worker(env: dict[str, str]) -> None:
    async with http_server(env) as (server, url):
        async with Client(url, mode=MODERN, extensions=[Poller(wait=False)]) as c:
            task_id = await start_task(c, "sleep_then_echo", {"text": "never", "seconds": 600})
        server.kill()  # mid-task, with the tool running in it
    async with (
        running_worker(worker_settings_of(env, sweep_interval_s=1)),
        stdio(env, Poller()) as reader,
    ):

        async def failed() -> bool:
            return bool((await get_task(reader.session, task_id))["status"] == "failed")

        await until(failed, timeout_s=20)
        state = await get_task(reader.session, task_id)
    assert state["statusMessage"] == ABANDONED
    assert state["error"] == {"code": -32603, "message": ABANDONED}


async def test_a_durable_task_outlives_its_server_process(env: dict[str, str]) -> None:
    async with running_worker(worker_settings_of(env, mcp_tool_modules=str(EXAMPLE))):
        async with http_server(env) as (server, url):
            async with Client(url, mode=MODERN, extensions=[Poller(wait=False)]) as c:
                arguments = {"text": "survived", "seconds": 1.0}
                task_id = await start_task(c, "durable_sleep_then_echo", arguments)
            server.kill()  # mid-task: the worker runs it, not this process
        async with stdio(env, Poller()) as reader:

            async def completed() -> bool:
                return bool((await get_task(reader.session, task_id))["status"] == "completed")

            await until(completed, timeout_s=20)
            state = await get_task(reader.session, task_id)
    assert state["result"]["content"][0]["text"] == "survived"
    assert state["result"]["structuredContent"] == {"result": "survived"}

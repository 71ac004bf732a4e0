"""An MCP client on the official TypeScript SDK 1.x (tasks of protocol 2025-11-25) against the
example server over stdio, with a worker for its durable tool: ``typescript_client.cjs``."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from tests.mcp.test_example_server import EXAMPLE, worker_settings_of
from tests.worker.conftest import running_worker

HERE = Path(__file__).resolve().parent


async def test_the_typescript_sdk_client_gets_tasks_of_2025_11_25(
    env: dict[str, str], node_modules: Path
) -> None:
    async with running_worker(worker_settings_of(env, mcp_tool_modules=str(EXAMPLE))):
        run = await asyncio.to_thread(
            subprocess.run,
            ["node", str(HERE / "typescript_client.cjs"), sys.executable, str(EXAMPLE)],
            env={**os.environ, **env, "NODE_PATH": str(node_modules)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert run.returncode == 0, run.stderr[-3000:]
    cases: dict[str, Any] = {}
    for line in run.stdout.splitlines():
        case = json.loads(line)
        cases[case.pop("case")] = case
    assert cases["initialize"]["tasks"] == {
        "list": {},
        "cancel": {},
        "requests": {"tools": {"call": {}}},
    }
    assert cases["tools"]["support"] == {
        "sleep_then_echo": "optional",
        "ask_name": "optional",
        "always_fails": "optional",
        "durable_sleep_then_echo": "optional",
    }
    assert cases["plain"]["text"] == "plain"
    for name, text in (("in_process", "in process"), ("durable", "durable")):
        messages = cases[name]["messages"]
        assert messages[0]["type"] == "taskCreated"
        assert messages[-2]["status"] == "completed"
        assert messages[-1] == {"type": "result", "text": text}
    failing = cases["failing"]["messages"]
    assert failing[-2]["status"] == "failed"
    assert failing[-1]["type"] == "error"
    assert failing[-1]["code"] == -32603
    assert cases["long"] == {
        "created": "taskCreated",
        "running": "working",
        "listed": True,
        "cancelled": "cancelled",
        "after": "cancelled",
        "cancel_again": -32602,
    }
    assert cases["unknown"] == {"get": -32602, "result": -32602, "cancel": -32602}

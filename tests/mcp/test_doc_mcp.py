"""The documents' MCP server example, run as written over stdio: answering the SDK's own
client, and the documented client that calls a tool as a task."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed")

from mcp import Client, StdioServerParameters

from tests.mcp.poller import MODERN, Poller, text
from tests.test_docs import MCP_CLIENT, MCP_SERVER


async def test_the_documented_server_greets_through_a_task(tmp_path: Path) -> None:
    script = tmp_path / "server.py"
    script.write_text(MCP_SERVER)
    # No settings but the data directory: the embedded Redis, as on a fresh machine.
    env = {"TASKSTORE_EMBEDDED_DIR": str(tmp_path / "embedded")}
    params = StdioServerParameters(command=sys.executable, args=[str(script)], env=env)
    asked: list[dict[str, Any]] = []

    def answer(request: dict[str, Any]) -> dict[str, Any]:
        asked.append(request)
        return {"action": "accept", "content": {"name": "Ada"}}

    poller = Poller(answer)
    async with Client(params, mode=MODERN, extensions=[poller]) as client:
        result = await client.call_tool("greet", {})
    assert text(result) == "hello Ada"
    assert asked[0]["params"]["message"] == "Your name?"
    assert poller.seen[-1]["status"] == "completed"


def test_the_documented_client_calls_the_server_s_tool_as_a_task(tmp_path: Path) -> None:
    (tmp_path / "server.py").write_text(MCP_SERVER)
    (tmp_path / "client.py").write_text(MCP_CLIENT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKSTORE_")}
    env["TASKSTORE_EMBEDDED_DIR"] = str(tmp_path / "embedded")  # reaches the server only
    run = subprocess.run(  # if the client passes its environment on, as the page says
        [sys.executable, "client.py"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.splitlines() == ["hello Ada"]

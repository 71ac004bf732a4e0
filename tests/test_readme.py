"""README.md's code runs as written: each Python block as a script, the producer
against a worker started exactly as the README's first command starts it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from store.redis import EmbeddedRedis
from tests.processes import dies_with_parent

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```$", README.read_text(), re.M | re.S)
PRODUCER = next(b for b in BLOCKS if "create_task(" in b)
MCP_SERVER = next(b for b in BLOCKS if "MCPServer(" in b)  # run in tests/mcp/test_readme_server.py
DIRECT = [b for b in BLOCKS if b is not PRODUCER and b is not MCP_SERVER]


def first_command() -> list[str]:
    """The worker part of the README's first command (the rest installs)."""
    command = next(line for line in README.read_text().splitlines() if line.startswith("    "))
    return command.split("&&")[-1].split()


def clean_env(**extra: str) -> dict[str, str]:
    """No TASKSTORE_* settings: what a fresh shell has."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TASKSTORE_")}
    return {**env, **extra}


def run(code: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    script = cwd / "snippet.py"
    script.write_text(code)
    return subprocess.run(
        [sys.executable, str(script)],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_producer_example_reaches_the_worker_of_the_first_command(tmp_path: Path) -> None:
    command = first_command()
    assert command == ["taskstore", "worker"]
    executable = Path(sys.executable).with_name(command[0])
    # Two shells of one user: the default EMBEDDED_DIR, moved into tmp for the test.
    env = clean_env(TASKSTORE_EMBEDDED_DIR=str(tmp_path / "embedded"))
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [str(executable), *command[1:]],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=log,
        preexec_fn=dies_with_parent(),
    )
    try:
        produced = run(PRODUCER, env, tmp_path)
        assert produced.returncode == 0, produced.stderr
        assert produced.stdout.splitlines() == ["{'content': []}", "cancelled"]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            stopped = worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            stopped = worker.wait()
    assert stopped == 0
    assert not EmbeddedRedis(tmp_path / "embedded").status()["running"]


@pytest.mark.parametrize("code", DIRECT, ids=[f"block{i}" for i in range(len(DIRECT))])
def test_each_other_block_runs_as_a_script(code: str, redis_url: str, tmp_path: Path) -> None:
    result = run(code.replace("redis://127.0.0.1:6379/0", redis_url), clean_env(), tmp_path)
    assert result.returncode == 0, result.stderr
    # The outputs the block's comments promise.
    promised = [line for marker, line in SHOWN.items() if marker in code]
    assert promised
    for line in promised:
        assert line in result.stdout.splitlines()


SHOWN = {
    "VersionConflict as err": "1 2",
    'prefix="readme"': "1 True",
    "TaskStore(InMemoryBackend())": "{'content': []}",
}

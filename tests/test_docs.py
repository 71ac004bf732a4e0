"""The documents' code runs as written, and their facts are the code's.

Every ``python`` block of README.md and of the site's pages (``docs/``) is a
program run here as a script: the producer against a worker started exactly as
the README's first command starts it, the MCP server and client over stdio
(``tests/mcp/test_doc_mcp.py``), the dashboard mounted in an application of one's own
(``tests/dashboard/test_doc_mount.py``), the others as they are. A block that is only
a fragment is marked otherwise (```` ```py ````). The version, the commands and
the settings the documents name are checked against the code."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr

from store.redis import EmbeddedRedis
from store.redis.connect import default_embedded_dir
from tests.processes import dies_with_parent
from worker.protocol import version as protocol
from worker.protocol.settings import Settings
from worker.tools.cli import PROTOCOL_SCRIPTS, _parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCUMENTS = [README, ROOT / "PROTOCOL.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = list(
    dict.fromkeys(
        block
        for document in DOCUMENTS
        for block in re.findall(r"^```python\n(.*?)^```$", document.read_text(), re.M | re.S)
    )
)
PRODUCER = next(b for b in BLOCKS if "create_task(" in b)
MCP_SERVER = next(b for b in BLOCKS if "MCPServer(" in b)  # run in tests/mcp/test_doc_mcp.py
MCP_CLIENT = next(b for b in BLOCKS if "TaskPoller(" in b)  # so is this one
MOUNTED = next(b for b in BLOCKS if "Mount(" in b)  # in tests/dashboard/test_doc_mount.py
DIRECT = [b for b in BLOCKS if b not in (PRODUCER, MCP_SERVER, MCP_CLIENT, MOUNTED)]


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
        # The producers page's redis-cli transcript, against the same worker.
        commands, shown = _transcript(ROOT / "docs" / "producers.md")
        path = f"{executable.parent}:{env['PATH']}"
        typed = subprocess.run(
            ["bash", "-ec", "\n".join(commands)],
            env={**env, "PATH": path},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert typed.returncode == 0, typed.stderr
        assert _numbers_blanked(typed.stdout.splitlines()) == _numbers_blanked(shown)
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


def _table(document: Path, header: str) -> list[list[str]]:
    """The rows of the table whose header row starts with ``header``, cells stripped."""
    lines = document.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_every_protocol_version_the_documents_name_is_the_code_s() -> None:
    named = [
        (document.name, found)
        for document in DOCUMENTS
        for found in re.findall(
            r"(?:protocol|replies), version (\d+\.\d+)", document.read_text(), re.I
        )
    ]
    assert named  # PROTOCOL.md's title at least
    assert {version for _, version in named} == {protocol.VERSION}, named


def test_the_command_table_names_every_command_and_script() -> None:
    table = " ".join(" ".join(row) for row in _table(ROOT / "docs" / "operating.md", "| command |"))
    parser = _parser()
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name in commands.choices:
        assert f"`taskstore {name}" in table, name
    for script in PROTOCOL_SCRIPTS:
        assert f"`{script}`" in table, script


def test_every_setting_is_documented_with_its_default() -> None:
    rows = _table(ROOT / "docs" / "settings.md", "| variable |")
    documented = {
        name: default for names, default, _ in rows for name in re.findall(r"`(\w+)`", names)
    }
    assert set(documented) == {name.upper() for name in Settings.model_fields}
    for name, text in documented.items():
        field = Settings.model_fields[name.lower()]
        default = field.get_default(call_default_factory=True)
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        assert _documented(text) == _shown(default), (name, text, default)


def _documented(text: str) -> str:
    return {"unset": "None", "empty": "", "`REDIS_URL`": "None"}.get(text, text.strip("`"))


def _shown(default: object) -> str:
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    if isinstance(default, Path):  # the data directory: shown by where it comes from
        return "$XDG_DATA_HOME/taskstore" if default == default_embedded_dir() else str(default)
    return str(default)


def _transcript(document: Path) -> tuple[list[str], list[str]]:
    """The commands (``$ ...``) of a document's shell transcript, and what it shows they
    print."""
    lines = document.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("    $ "))
    commands, shown = [], []
    for line in lines[start:]:
        if not line.startswith("    "):
            break
        if line.startswith("    $ "):
            commands.append(line[6:])
        else:
            shown.append(line[4:])
    return commands, shown


def _numbers_blanked(lines: list[str]) -> list[str]:
    """Lines with their long numbers (times) blanked: they differ at each run."""
    return [re.sub(r"\d{10,}", "N", line) for line in lines]

"""Producers in other languages, following PROTOCOL.md: redis-cli alone, and Node.js.

No Python is on the producer's path: each producer is a script of its own
(``producer.sh``, ``producer.cjs``) that loads ``worker/enqueue.lua``, enqueues,
and prints what came back; a real worker answers. Node's ``redis`` package
comes from ``TASKSTORE_TEST_NODE_MODULES`` (``.ci/run`` installs it), else it
is installed from npm into a temporary folder.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from store import make_key
from tests.harness import unique
from tests.tracing import ended, recorded
from tests.worker.conftest import drop_test_keys, isolated_settings, running_worker
from worker.producer.client import TaskStoreClient
from worker.protocol.settings import Settings

HERE = Path(__file__).resolve().parent
SCRIPTS = ("enqueue", "settle", "withdraw", "get", "index-page", "fetch")


def redis_cli_producer(request: pytest.FixtureRequest) -> tuple[list[str], dict[str, str]]:
    if shutil.which("redis-cli") is None:
        pytest.skip("redis-cli is not installed")
    return ["bash", str(HERE / "producer.sh")], {}


def node_producer(request: pytest.FixtureRequest) -> tuple[list[str], dict[str, str]]:
    modules = request.getfixturevalue("node_modules")
    return ["node", str(HERE / "producer.cjs")], {"NODE_PATH": str(modules)}


PRODUCERS = {"redis-cli": redis_cli_producer, "node": node_producer}


@pytest.mark.parametrize("producer", sorted(PRODUCERS))
async def test_a_producer_in_another_language_gets_every_outcome(
    producer: str, redis_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    argv, env = PRODUCERS[producer](request)
    settings = isolated_settings(redis_url, "interop", max_tasks_per_owner=5)
    owner = unique("interop")
    scripts = printed_scripts(tmp_path)
    try:
        with recorded() as spans:
            async with running_worker(settings), TaskStoreClient.connect(settings) as client:
                await _produce(argv, env, redis_url, settings, owner, scripts, producer, client)
                if producer == "node":
                    process = await ended(
                        spans,
                        lambda s: s.name.startswith("process") and s.context.trace_id == TRACE_ID,
                    )
                    assert process.parent is not None
                    assert process.parent.span_id == SPAN_ID  # the worker continued its trace
    finally:
        await drop_test_keys(settings)


async def _produce(
    argv: list[str],
    env: dict[str, str],
    redis_url: str,
    settings: Settings,
    owner: str,
    scripts: Path,
    producer: str,
    client: TaskStoreClient,
) -> None:
    """Run the producer against the worker; check what it saw and what it wrote."""
    run = await asyncio.to_thread(
        subprocess.run,
        [*argv, redis_url, settings.queue_name, owner, str(scripts), settings.key_prefix],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    seen = _cases(run.stdout)
    check_outcomes(seen, owner)
    if producer == "node":
        check_node_only(seen)
    record = await client.get(make_key(owner, "t"))
    assert (record.data, record.version) == (b"hello", 1)


def printed_scripts(folder: Path) -> Path:
    """What ``taskstore protocol`` prints for a producer, one ``<name>.lua`` each."""
    for name in SCRIPTS:
        printed = subprocess.run(
            [sys.executable, "-m", "worker.tools.cli", "protocol", f"{name}-script"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        (folder / f"{name}.lua").write_text(printed.stdout)
    return folder


def _cases(output: str) -> dict[str, list[str]]:
    seen: dict[str, list[str]] = {}
    for line in output.splitlines():
        case, _, value = line.partition(" ")
        seen.setdefault(case, []).append(value)
    return seen


def check_outcomes(seen: dict[str, list[str]], owner: str) -> None:
    def reply(case: str) -> Any:
        [value] = seen[case]
        assert value, f"no reply for {case}"
        return json.loads(value)

    assert [line for line in seen["enqueued"] if not line.startswith("1 ")] == []
    # The enqueue script answers added, the job id and, from 1.4, when the queue took it.
    [resent] = seen["resent"]
    assert resent.startswith(f"0 put-{owner}")

    created = reply("create_task")
    assert created["ok"] is True
    assert created["value"]["owner_id"] == owner
    assert created["value"]["task"]["status"] == "working"

    assert reply("put") == {"ok": True, "value": 1}
    conflict = reply("put_if_version")
    assert conflict["ok"] is False
    assert conflict["error"]["type"] == "VersionConflict"
    assert conflict["error"]["fields"] == {
        "key": f"{owner}:t",
        "expected": 5,
        "actual": 1,
        "current_data": {"__bytes__": "aGVsbG8="},
    }
    # The same op id, alone or inside another job: the first outcome, nothing applied twice.
    assert reply("resent_reply") == {"ok": True, "value": 1}
    assert reply("ops_replay") == {"ok": True, "value": [{"ok": True, "value": 1}]}
    [reused] = reply("op_id_reused")["value"]
    assert reused["error"]["type"] == "OpIdReused"
    assert reused["error"]["fields"] == {
        "op_id": f"put-{owner}",
        "first": "put",
        "attempted": "delete",
    }

    for case, words in [
        ("future_version", "2.0 is not supported"),
        ("unknown_operation", "frobnicate"),
        ("malformed", "does not decode"),
    ]:
        error = reply(case)["error"]
        assert error["type"] == "InvalidArgument", (case, error)
        assert words in error["message"], (case, error)
    assert "taskstore: the job is not a JSON object" in seen["refused"][0]

    if "mistake" in seen:  # redis-cli's: Node.js meets the same ones among its errors
        mistakes = dict(line.partition(" ")[::2] for line in seen["mistake"])
        assert set(mistakes) == {"unknown", "missing", "type", "version-0"}
        for case, answer in mistakes.items():
            assert json.loads(answer)["error"]["type"] == "InvalidArgument", (case, answer)
        assert "nope" in mistakes["unknown"]
    # Reads, with the store's own scripts: the raw record, the task with its result, a page.
    assert seen["get_record"] == ["1 hello"]
    [task] = seen["get_task"]
    record = json.loads(task)
    assert (record["ownerId"], record["task"]["status"]) == (owner, "completed")
    assert record["result"] == {"content": []}
    assert seen["list_page"] == ["2 5"]  # the task and the raw record; pruned, 2 versions, 2 data
    # Giving up: withdrawn while no worker took it, then again; an answered job is left alone.
    assert seen["settle_idle"] == ["withdrawn-no-worker"]
    assert seen["settle_again"] == ["withdrawn-no-worker"]
    assert seen["settle_answered"] == ["replied"]


def check_node_only(seen: dict[str, list[str]]) -> None:
    """What the Node.js producer does beyond the shared cases: an error of each kind, a load."""
    errors = {}
    for line in seen["error"]:
        case, _, reply = line.partition(" ")
        envelope = json.loads(reply)
        outcome = envelope["value"][0] if envelope["ok"] else envelope
        errors[case] = outcome["error"]["type"]
    # Each case is named by the error it must meet, and a variant after a slash.
    assert errors == {case: case.partition("/")[0] for case in errors}, errors
    assert len(errors) == 13
    # 2,000 jobs naming one reply list: every one answered, each reply delivered once,
    # nothing left on the list.
    [load] = seen["load"]
    assert load.split()[:3] == ["2000", "2000", "0"], load
    # Giving up, whole: the withdrawn job's op id fenced in the store, so a copy of the job
    # is refused and applies nothing, while the same write sent later is a new attempt.
    assert seen["withdraw_op"] == ["1"]
    assert json.loads(seen["withdrawn_copy"][0])["error"]["type"] == "OpWithdrawn"
    assert json.loads(seen["withdrawn_later"][0]) == {
        "ok": True,
        "value": [{"ok": True, "value": 1}],
    }
    assert json.loads(seen["traced"][0]) == {"ok": True, "value": 1}
    refused = dict(line.partition(" ")[::2] for line in seen["refused_field"])
    assert set(refused) == {"q", "t", "et", "wait_ms", "f", "reply_to"}
    for field, message in refused.items():
        assert message.startswith(f"ERR taskstore: {field}:"), (field, message)


TRACE_ID, SPAN_ID = 0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331
"""The trace context the Node.js producer's traced job carries."""

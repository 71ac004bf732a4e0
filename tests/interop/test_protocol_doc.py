"""PROTOCOL.md says what the worker does: its tables match the code, its examples run."""

from __future__ import annotations

import hashlib
import inspect
import json
import re
from pathlib import Path

from store import StorageError
from store.redis.keyschema import KeySchema
from store.tasks import TaskError
from tests.harness import unique
from tests.worker.conftest import drop_test_keys, isolated_settings, running_worker
from worker.producer.client import TaskStoreClient
from worker.producer.queue import enqueue, enqueue_keys, wait_reply
from worker.protocol import version as protocol
from worker.protocol.envelope import ERRORS, field_names
from worker.protocol.keys import QueueKeys, job_keys
from worker.protocol.scripts import EnqueueKeys as ENQUEUE_KEYS
from worker.protocol.scripts import SettleKeys as SETTLE_KEYS
from worker.protocol.writes import WRITES

PROTOCOL = (Path(__file__).resolve().parents[2] / "PROTOCOL.md").read_text()


def table(header: str) -> list[list[str]]:
    """The rows of the table whose header row starts with ``header``, cells stripped."""
    lines = PROTOCOL.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_operation_table_is_the_declared_writes() -> None:
    documented = {}
    for name, arguments, _ in table("| operation |"):
        args = [(a, bool(optional)) for a, optional in re.findall(r"`(\w+)`(\?)?", arguments)]
        documented[name.strip("`")] = args
    declared = {
        name: [
            (p.name, p.default is not inspect.Parameter.empty)
            for p in write.signature.parameters.values()
        ]
        for name, write in WRITES.items()
    }
    assert documented == declared


def test_every_error_a_job_can_raise_is_in_the_registry() -> None:
    """Every storage and task error the code defines crosses the queue whole (so the table,
    which is the registry, names it); nothing a write raises reaches a producer unnamed."""

    def descendants(cls: type[Exception]) -> set[type[Exception]]:
        found = set(cls.__subclasses__())
        for sub in list(found):
            found |= descendants(sub)
        return found

    raised = {StorageError, TaskError} | descendants(StorageError) | descendants(TaskError)
    assert {cls.__name__ for cls in raised} <= set(ERRORS)
    assert all(ERRORS[cls.__name__] is cls for cls in raised)


def test_the_error_table_is_the_envelope_registry() -> None:
    documented = {}
    for kind, fields, code, _ in table("| type |"):
        documented[kind.strip("`")] = (re.findall(r"`(\w+)`", fields), code)
    registered = {
        name: (
            field_names(cls),
            str(cls.code) if issubclass(cls, TaskError) else "",
        )
        for name, cls in ERRORS.items()
    }
    assert documented == registered


def test_the_key_tables_are_the_key_schemas() -> None:
    """The queue's keys are ``QueueKeys``'; the store keys a reader needs, ``KeySchema``'s."""
    queue = {row[0].strip("`") for row in table("| key | type | who writes it |")}
    assert queue == set(QueueKeys("<queue>").protocol("<id>").values())
    owner = KeySchema("<prefix>").owner("<owner>")
    store = {row[0].strip("`") for row in table("| key | type | what it is |")}
    assert store == {owner.record("<task>"), owner.index, owner.expiry}
    assert f"EVALSHA <sha> 1 {owner.op('<op_id>')} <qt>" in PROTOCOL  # the withdraw script's key


def test_the_version_and_script_are_the_shipped_ones() -> None:
    assert f'this is `"{protocol.VERSION}"`' in PROTOCOL
    keys = " ".join(enqueue_keys("<queue>", "<id>"))
    assert f"EVALSHA <sha> {len(ENQUEUE_KEYS._fields)} {keys} <id> <job>" in PROTOCOL
    settle = SETTLE_KEYS(
        *job_keys("<id>")[:4], "<queue>", "<queue>:writes", "<queue>:reply:<id>", "<queue>:workers"
    )
    assert f"EVALSHA <sha> {len(settle)} {' '.join(settle)} <id> <alive_ms>" in PROTOCOL


async def test_every_example_job_runs(redis_url: str) -> None:
    settings = isolated_settings(redis_url, "protocol")
    owner = unique("doc")
    examples = re.findall(r"^```json\n(.*?)\n```$", PROTOCOL, re.M | re.S)
    assert len(examples) >= 5
    try:
        async with running_worker(settings), TaskStoreClient.connect(settings) as client:
            task_id = ""
            for example in examples:
                job = example.replace('"alice', f'"{owner}').replace("<task_id>", task_id)
                function = json.loads(job)["f"]
                job_id = unique("job")
                assert (await enqueue(client.pool, settings.queue_name, job_id, job.encode())).added
                reply = await wait_reply(client.pool, settings.queue_name, job_id, 10)
                assert reply is not None, job
                assert reply["ok"] is True, reply
                for each in reply["value"] if function in ("ops", "apply_batch") else []:
                    assert each["ok"] is True, (job, each)
                if function == "create_task":
                    task_id = reply["value"]["task"]["task_id"]
            task = await client.get_task(task_id, owner)
            assert task.task.status == "completed"
    finally:
        await drop_test_keys(settings)


def test_the_op_id_formula_is_the_client_s() -> None:
    """A producer in another language derives each write's op id from the page, to withdraw
    it or read its outcome: the formula there must give the client's own, for every write."""
    from worker.producer.client import _scoped_op_id

    def scope_rule(name: str, a: dict[str, str]) -> str:  # as PROTOCOL.md words it
        if name in ("put", "put_if_version", "delete"):
            return a["key"]
        return a["owner_id"] if name == "create_task" else f"{a['owner_id']}\0{a['task_id']}"

    args = {"key": "alice:t", "owner_id": "alice", "task_id": "t-1"}
    for name, write in WRITES.items():
        scope = scope_rule(name, args)
        digest = hashlib.sha256(f"{scope}\0mine".encode()).hexdigest()[:40]
        assert _scoped_op_id(write.scope(args), "mine") == f"op-{digest}", name
    assert 'sha256(<scope> + "\\0" + <op id>)' in PROTOCOL

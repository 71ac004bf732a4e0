"""Redis access control and TLS: the documented ACL user is enough for everything.

Each server here runs with the ACL rule that docs/storage.md documents (read from
it, so the two cannot drift), the default user off, and an ``admin`` user the
test inspects the server with. One server speaks plain TCP, the other only TLS
with a certificate made for the test.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from store import BatchOp, make_key
from tests.servers import RedisProcess, TlsFiles, free_ports, make_tls_files
from tests.worker.conftest import WorkerProcess, cli, wait_for_worker
from worker.producer.client import TaskStoreClient
from worker.protocol.settings import Settings, load_settings

STORAGE_PAGE = Path(__file__).resolve().parents[2] / "docs" / "storage.md"
USER = "taskstore"
ADMIN_PASSWORD = secrets.token_urlsafe(16)


def documented_acl_rule() -> str:
    rules = [
        line for line in STORAGE_PAGE.read_text().splitlines() if line.startswith(f"user {USER} ")
    ]
    assert len(rules) == 1, "docs/storage.md must document exactly one ACL line for the user"
    return rules[0]


@pytest.fixture(params=["acl", "tls"])
def guarded_redis(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RedisProcess]:
    password = secrets.token_urlsafe(16)
    rule = documented_acl_rule().replace(">CHANGE-ME", f">{password}")
    users = tmp_path / "users.acl"
    users.write_text(f"user default off\n{rule}\nuser admin on >{ADMIN_PASSWORD} ~* &* +@all\n")
    tls = make_tls_files(tmp_path / "tls") if request.param == "tls" else None
    server = RedisProcess(
        free_ports(1)[0],
        tmp_path / "redis",
        "--aclfile", str(users),
        username=USER,
        password=password,
        tls=tls,
    )  # fmt: skip
    server.start()
    try:
        yield server
    finally:
        server.stop()


def admin(server: RedisProcess) -> Any:
    return server.client("admin", ADMIN_PASSWORD)


def guarded_settings(server: RedisProcess, tmp_path: Path, url: str | None = None) -> Settings:
    tls: TlsFiles | None = server.tls
    return load_settings(
        redis_url=url or server.url,
        embedded_dir=tmp_path,
        tls_ca_file=tls.ca if tls else None,
        sweep_interval_s=1,
        reap_interval_s=1,
    )


@pytest.mark.slow
async def test_the_documented_acl_user_is_enough_for_every_operation(
    guarded_redis: RedisProcess, tmp_path: Path
) -> None:
    settings = guarded_settings(guarded_redis, tmp_path)
    assert settings.queue_url.startswith("rediss://" if guarded_redis.tls else "redis://")
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        await wait_for_worker(settings)
        async with TaskStoreClient.connect(settings) as client:
            owner = "alice"
            task = await client.create_task(owner, "tools/call", 60_000, op_id="create-1")
            await client.update_status(task.task_id, owner, "input_required", "which file?")
            await client.set_variables(task.task_id, owner, {"file": "a.txt"})
            await client.update_status(task.task_id, owner, "working")
            await client.complete_with_result(task.task_id, owner, "completed", {"ok": True})
            assert await client.get_result(task.task_id, owner) == {"ok": True}
            other = await client.create_task(owner, "tools/call")
            await client.set_result(other.task_id, owner, "partial")
            assert (await client.cancel_task(other.task_id, owner)).task.status == "cancelled"
            assert len((await client.list_tasks(owner)).tasks) == 2

            key = make_key(owner, "raw")
            assert await client.put(key, b"1", op_id="put-1") == 1
            assert await client.put_if_version(key, b"2", 1) == 2
            batch = [BatchOp(key, b"3", 2), BatchOp(key + "b", b"x")]
            assert await client.apply_batch(batch) == [3, 1]
            assert await client.delete(key + "b") is True
            assert (await client.get(key)).version == 3
            assert (await client.list_page(owner)).items
            now_ms = int(time.time() * 1000)
            await client.put(make_key(owner, "brief"), b"x", expires_at_ms=now_ms + 200)
            assert await client.count(owner) == 4

            # The cron jobs (every second, as this user) drop its index entries:
            # the sweep or the reaper, whichever sees it first once it has expired.
            index = admin(guarded_redis)
            deadline = time.monotonic() + 10
            while index.zscore("ts:{alice}:idx", "brief") is not None:
                assert time.monotonic() < deadline, worker.output()[-3000:]
                await asyncio.sleep(0.2)
            assert await client.count(owner) == 3

        for command in (["sweep"], ["reap"], ["stats"], ["health"], ["list", owner]):
            result = cli(settings, *command, cwd=tmp_path)
            assert result.returncode == 0, (command, result.stderr)
        assert worker.stop(signal.SIGTERM) == 0
        assert "NOPERM" not in worker.output()
        assert admin(guarded_redis).acl_log() == []
    finally:
        worker.stop()


def test_the_acl_user_reaches_nothing_else(guarded_redis: RedisProcess) -> None:
    client = guarded_redis.client()
    for command in (
        ("SET", "other-app:key", "x"),
        ("GET", "session:1"),
        ("FLUSHALL",),
        ("CONFIG", "GET", "requirepass"),
        ("KEYS", "*"),
    ):
        with pytest.raises(redis.exceptions.NoPermissionError):
            client.execute_command(*command)  # type: ignore[no-untyped-call]
    assert admin(guarded_redis).dbsize() == 0


def test_a_wrong_password_stops_the_worker_without_showing_it(
    guarded_redis: RedisProcess, tmp_path: Path
) -> None:
    assert guarded_redis.password is not None
    wrong = guarded_redis.url.replace(guarded_redis.password, "wrong-Pa55-also-secret")
    result = cli(guarded_settings(guarded_redis, tmp_path, wrong), "worker", cwd=tmp_path)
    assert result.returncode == 1
    scheme = "rediss" if guarded_redis.tls else "redis"
    assert f"{scheme}://{USER}:***@127.0.0.1:{guarded_redis.port}/0" in result.stderr
    assert "wrong-Pa55-also-secret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr

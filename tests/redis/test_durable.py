"""``durable_wait_ms``: a write is acknowledged only once a replica has it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from store import BatchOp, NotFound, RedisBackend, VersionedRecord, WriteNotConfirmed, make_key
from store.tasks import StoreError
from tests.harness import drop_keys, unique
from tests.servers import RedisProcess, free_ports, wait_for
from tests.worker.conftest import isolated_settings, served_client


@pytest.fixture
def primary_and_replica(tmp_path: Path) -> Iterator[tuple[RedisProcess, RedisProcess]]:
    primary_port, replica_port = free_ports(2)
    primary = RedisProcess(primary_port, tmp_path / "primary")
    replica = RedisProcess(
        replica_port,
        tmp_path / "replica",
        "--replicaof", "127.0.0.1", str(primary_port),
        "--repl-diskless-sync-delay", "0",
        "--repl-ping-replica-period", "1",
    )  # fmt: skip
    primary.start()
    try:
        replica.start()
        try:
            wait_for(replica.synced, "the replica to sync")
            yield primary, replica
        finally:
            replica.stop()
    finally:
        primary.stop()


@pytest.fixture
async def lone_durable(redis_url: str) -> AsyncIterator[RedisBackend]:
    """Durable writes on a server without replicas: nothing can be confirmed."""
    async with await RedisBackend.from_url(
        redis_url, prefix=unique("dur"), durable_wait_ms=20
    ) as backend:
        yield backend
        await drop_keys(backend)


async def test_a_write_no_replica_confirms_is_reported(lone_durable: RedisBackend) -> None:
    key = make_key(unique(), "t")
    with pytest.raises(WriteNotConfirmed) as raised:
        await lone_durable.put(key, b"x", op_id="op-1")
    assert (raised.value.key, raised.value.wait_ms) == (key, 20)
    # The primary has it: the error says "not confirmed", not "not written".
    assert await lone_durable.get(key) == VersionedRecord(b"x", 1)
    # A retry under the same op id replays the outcome and waits again.
    with pytest.raises(WriteNotConfirmed):
        await lone_durable.put(key, b"x", op_id="op-1")
    assert (await lone_durable.get(key)).version == 1


async def test_unconfirmed_deletes_and_batches_are_reported(lone_durable: RedisBackend) -> None:
    owner = unique()
    with pytest.raises(WriteNotConfirmed):
        await lone_durable.delete(make_key(owner, "absent"), op_id="d-1")
    outcomes = await lone_durable.apply_batch(
        [BatchOp(make_key(owner, "a"), b"1"), BatchOp(make_key(owner, "b"), b"2", 7)]
    )
    assert isinstance(outcomes[0], WriteNotConfirmed)
    assert outcomes[0].key == make_key(owner, "a")
    # A refused write changed nothing, so it is reported as itself.
    assert type(outcomes[1]).__name__ == "VersionConflict"


async def test_writes_confirmed_by_a_replica_are_on_it(
    primary_and_replica: tuple[RedisProcess, RedisProcess],
) -> None:
    primary, replica = primary_and_replica
    prefix = unique("dur")
    async with await RedisBackend.from_url(
        primary.url, prefix=prefix, durable_wait_ms=2000
    ) as backend:
        owner = unique()
        first, second, gone = (make_key(owner, t) for t in ("first", "second", "gone"))
        assert await backend.put(first, b"1") == 1
        assert await backend.put_if_version(first, b"2", 1, op_id="cas") == 2
        assert await backend.apply_batch([BatchOp(second, b"s"), BatchOp(gone, b"g")]) == [1, 1]
        assert await backend.delete(gone) is True
        # Stop replication at once: what the replica holds now is what survives a failover.
        replica_client = redis.Redis(port=replica.port)
        replica_client.replicaof("NO", "ONE")
    async with await RedisBackend.from_url(replica.url, prefix=prefix) as promoted:
        assert await promoted.get(first) == VersionedRecord(b"2", 2)
        assert await promoted.get(second) == VersionedRecord(b"s", 1)
        with pytest.raises(NotFound):
            await promoted.get(gone)


async def test_the_worker_reports_a_write_it_could_not_confirm(redis_url: str) -> None:
    settings = isolated_settings(
        redis_url, "dur", durable_writes=True, durable_wait_ms=20, max_tries=2
    )
    async with served_client(settings) as client:
        key = make_key(unique(), "t")
        with pytest.raises(WriteNotConfirmed):
            await client.put(key, b"x")
        # Each try replayed the first outcome: one version, written once.
        assert await client.get(key) == VersionedRecord(b"x", 1)
        # Through the task API the same failure is the task layer's StoreError.
        owner = unique()
        with pytest.raises(StoreError, match="no replica confirmed"):
            await client.create_task(owner, "tools/call", op_id="create-1")
        assert len((await client.list_tasks(owner)).tasks) == 1

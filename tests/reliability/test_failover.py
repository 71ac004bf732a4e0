"""Cluster failover: a master is killed under write load; writes resume on its replica.

With asynchronous replication (the default) the writes a master acknowledged
but had not yet sent to its replica are lost when the replica takes over; the
test counts them. With durable writes (``WAIT 1``) it asserts that none is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.asyncio import RedisCluster

from store import BackendError, NotFound, RedisBackend, VersionConflict, make_key, parse_key
from tests.harness import unique
from tests.servers import LocalCluster, RedisProcess

KEYS = 24
FAILOVER_BOUND_S = 30.0


@dataclass
class Writer:
    """CAS increments on one key; remembers the last version the store acknowledged."""

    key: str
    acknowledged: int = 0
    failures: int = 0
    resumed_at: float | None = None
    errors: list[str] = field(default_factory=list)

    async def run(self, backend: RedisBackend, stop: asyncio.Event, killed: list[float]) -> None:
        """Increment until ``stop``; the first success after a failure once ``killed`` resumes."""
        version = 0
        while not stop.is_set():
            data = str(version + 1).encode()
            try:
                if version:
                    version = await backend.put_if_version(self.key, data, version)
                else:
                    version = await backend.put(self.key, data)
                self.acknowledged = version
                if killed and self.failures and self.resumed_at is None:
                    self.resumed_at = time.monotonic()
            except VersionConflict as conflict:
                version = conflict.actual  # an unacknowledged try that did land
            except BackendError as exc:
                self.failures += 1
                cause = exc.__cause__ or exc
                self.errors.append(f"{type(cause).__name__}: {str(cause)[:120]}")
                version = await self._reread(backend, stop)
                await asyncio.sleep(0.02)

    async def _reread(self, backend: RedisBackend, stop: asyncio.Event) -> int:
        while not stop.is_set():
            try:
                return (await backend.get(self.key)).version
            except NotFound:
                return 0
            except BackendError:
                await asyncio.sleep(0.05)
        return 0


@pytest.fixture
def replicated_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    cluster = LocalCluster(tmp_path / "cluster", masters=3, replicas=1)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


def promoted(replica: RedisProcess) -> bool:
    try:
        info: Any = replica.client().info("replication")
        return bool(info["role"] == "master")
    except redis.RedisError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("durable", [False, True], ids=["async-replication", "durable"])
async def test_writes_resume_after_a_master_is_killed(
    replicated_cluster: LocalCluster, durable: bool, measurements: list[str]
) -> None:
    cluster = replicated_cluster
    victim, heir = cluster.masters[1], cluster.replicas[1]
    backend = await RedisBackend.from_url(
        cluster.url, prefix=unique("fo"), durable_wait_ms=1000 if durable else None
    )
    try:
        assert isinstance(backend.client, RedisCluster)
        writers = [Writer(make_key(unique(), "t")) for _ in range(KEYS)]
        on_victim = [w for w in writers if _port_of(backend, w.key) == victim.port]
        assert on_victim, "no key landed on the master to be killed"
        stop, killed = asyncio.Event(), list[float]()
        running = [asyncio.create_task(w.run(backend, stop, killed)) for w in writers]
        await asyncio.sleep(1.0)
        assert all(w.acknowledged > 0 for w in writers)

        victim.kill()
        killed.append(time.monotonic())
        deadline = killed[0] + FAILOVER_BOUND_S
        while not promoted(heir):
            assert time.monotonic() < deadline, "the replica was never promoted"
            await asyncio.sleep(0.1)
        promoted_after = time.monotonic() - killed[0]
        # The old master comes back (empty: no persistence) as the heir's replica,
        # so durable writes on those slots have a replica to confirm them again.
        victim.start()
        while any(w.resumed_at is None for w in on_victim):
            assert time.monotonic() < deadline, [w.errors[-3:] for w in on_victim]
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.gather(*running)

        gap = max(w.resumed_at or 0 for w in on_victim) - killed[0]
        lost = 0
        for w in writers:
            record = await backend.get(w.key)
            assert record.data == str(record.version).encode()
            lost += record.version < w.acknowledged
        measurements.append(
            f"failover ({'durable' if durable else 'async replication'}): replica promoted "
            f"{promoted_after:.2f} s after the kill, writes on its slots resumed after "
            f"{gap:.2f} s; {sum(w.failures for w in on_victim)} failed calls there; "
            f"{lost} of {KEYS} keys lost an acknowledged write"
        )
        if durable:
            assert lost == 0
    finally:
        await backend.aclose()


def _port_of(backend: RedisBackend, key: str) -> int:
    """The port of the master holding ``key``'s slot (all of an owner's keys share it)."""
    client = backend.client
    assert isinstance(client, RedisCluster)
    owner_id, _ = parse_key(key)
    node = client.get_node_from_key(backend.keys.owner(owner_id).index)
    assert node is not None
    return int(node.port)

"""The queue Redis fails under mixed load: a Sentinel failover, then a restart that keeps
nothing. Either may lose jobs, claims and replies the workers already acted on; every
caller must still get a definite outcome that the store agrees with, no acknowledged
write may be lost (durable writes on the store), and none may be applied twice."""

from __future__ import annotations

import itertools
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from store import NotFound, make_key
from tests.harness import until
from tests.processes import dies_with_parent
from tests.reliability.failover_producer import LANES, Entry, owner_of
from tests.servers import RedisProcess, SentinelGroup, free_ports, wait_for
from tests.worker.conftest import WorkerProcess, isolated_settings, settings_env, wait_for_worker
from worker.producer.client import TaskStoreClient
from worker.protocol.settings import Settings

PRODUCERS, WORKERS = 4, 2
BEFORE, AFTER = 40, 80
"""Writes each producer has acknowledged before the fault, and since, before it stops."""
BACK_WITHIN_S = 10.0
ROOT = Path(__file__).resolve().parents[2]
FAST_SYNC = ("--repl-diskless-sync-delay", "0", "--repl-ping-replica-period", "1")


@pytest.fixture(scope="module")
def durable_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A store primary with a replica, so durable writes (``WAIT 1``) are confirmed."""
    folder = tmp_path_factory.mktemp("store")
    primary_port, replica_port = free_ports(2)
    primary = RedisProcess(primary_port, folder / "primary", *FAST_SYNC)
    replica = RedisProcess(
        replica_port, folder / "replica", *FAST_SYNC, "--replicaof", "127.0.0.1", str(primary_port)
    )
    try:
        primary.start()
        replica.start()
        wait_for(replica.synced, "the store's replica to sync")
        yield primary
    finally:
        replica.stop()
        primary.stop()


def _settings(queue_url: str, store: RedisProcess, label: str) -> Settings:
    return isolated_settings(
        queue_url,
        label,
        store_url=store.url,
        durable_writes=True,
        reply_timeout_s=3,
        lease_s=2,
        job_timeout_s=10,
        max_tasks_per_owner=100_000,
    )


def _entries(log: Path) -> list[Entry]:
    if not log.exists():
        return []
    return [Entry.from_line(line) for line in log.read_text().splitlines() if line]


def _not_applied_since(logs: list[Path], since: float) -> bool:
    """Whether a caller has been answered "not applied" since ``since``."""
    return any(e.outcome == "not_applied" and e.end > since for log in logs for e in _entries(log))


def _acknowledged(log: Path, since: float = 0.0) -> int:
    return sum(e.outcome == "ok" and e.start > since for e in _entries(log))


def _producer(settings: Settings, index: int, log: Path, stop: Path) -> subprocess.Popen[bytes]:
    module = "tests.reliability.failover_producer"
    return subprocess.Popen(
        [sys.executable, "-m", module, str(index), str(log), str(stop)],
        env=settings_env(settings),
        cwd=ROOT,
        stdout=log.with_suffix(".out").open("wb"),
        stderr=subprocess.STDOUT,
        preexec_fn=dies_with_parent(),
    )


def _settled_in_store(logs: list[Path]) -> Counter[str]:
    """The outcomes the clients took from the store, for jobs the queue held no more."""
    settled = Counter[str]()
    for log in logs:
        for line in log.with_suffix(".out").read_text().splitlines():
            _, found, outcomes = line.partition("settled in the store: ")
            for outcome in outcomes.split(", ") if found else ():
                count, _, label = outcome.partition(" ")
                settled[label] += int(count)
    return settled


def _refused_by_fences(workers: list[WorkerProcess]) -> int:
    """Writes the workers ran after their callers had withdrawn them (``OpWithdrawn``)."""
    return sum(
        int(match) for w in workers for match in re.findall(r"(\d+) OpWithdrawn", w.output())
    )


Fault = Callable[[list[WorkerProcess], list[Path]], Awaitable[None]]


async def _under_load(
    settings: Settings, folder: Path, fault: Fault
) -> tuple[list[list[Entry]], float, Counter[str], int]:
    """Workers and producers run; ``fault`` strikes once every producer is going. The
    writes each producer logged, when the fault struck, what the store settled, and
    how many late writes the store's fences refused."""
    workers = [WorkerProcess(settings, folder / f"worker-{i}.log") for i in range(WORKERS)]
    stop = folder / "stop"
    logs = [folder / f"producer-{i}.jsonl" for i in range(PRODUCERS)]
    producers: list[subprocess.Popen[bytes]] = []
    try:
        await wait_for_worker(settings, WORKERS)
        producers += [_producer(settings, i, log, stop) for i, log in enumerate(logs)]
        await until(lambda: all(_acknowledged(log) >= BEFORE for log in logs), 60)
        struck = time.time()
        await fault(workers, logs)
        await until(lambda: all(_acknowledged(log, struck) >= AFTER for log in logs), 60)
        stop.touch()
        # A call in flight ends by its deadline, or a lease at a time after it.
        for producer in producers:
            assert producer.wait(60) == 0, logs[0].with_suffix(".out").read_text()[-2000:]
        assert all(w.alive() for w in workers), workers[0].output()[-2000:]
    finally:
        for producer in producers:
            if producer.poll() is None:
                producer.kill()
                producer.wait()
        for w in workers:
            w.stop()
    return (
        [_entries(log) for log in logs],
        struck,
        _settled_in_store(logs),
        _refused_by_fences(workers),
    )


async def _check(
    settings: Settings,
    logged: list[list[Entry]],
    struck: float,
    settled: Counter[str],
    refused: int,
    label: str,
    measurements: list[str],
) -> None:
    """Every logged outcome against the store; the figures of the run."""
    entries = [e for producer in logged for e in producer]
    kinds = Counter(e.kind for e in entries)
    assert set(kinds) == {"coalesced", "single", "counter", "create", "cancel"}, kinds
    assert [e for e in entries if e.outcome == "refused"] == []
    async with TaskStoreClient.connect(settings) as client:
        for e in entries:
            if e.kind in ("coalesced", "single"):
                if e.outcome == "ok":  # applied once: version 1, its own data
                    record = await client.get(e.key)
                    assert (e.value, record.version, record.data) == (1, 1, e.op_id.encode())
                else:
                    with pytest.raises(NotFound):
                        await client.get(e.key)
        for producer, mine in enumerate(logged):
            owner = owner_of(producer)
            for lane in range(LANES["counter"]):
                key = make_key(owner, f"counter{lane}")
                done = [e for e in mine if e.key == key and e.outcome == "ok"]
                record = await client.get(key)
                assert (record.version, record.data) == (len(done), str(len(done)).encode())
            tasks, cursor = [], None
            while True:
                page = await client.list_tasks(owner, cursor, 200)
                tasks += page.tasks
                if (cursor := page.next_cursor) is None:
                    break
            methods = Counter(t.request_method for t in tasks)
            assert max(methods.values()) == 1, "a task created twice"
            status = {t.task_id: t.task.status.value for t in tasks}
            for e in mine:
                if e.kind == "create":
                    assert (e.key in methods) == (e.outcome == "ok"), e
                if e.kind == "cancel":
                    wanted = "cancelled" if e.outcome == "ok" else "working"
                    assert status[e.key] == wanted, e
    acknowledged = sum(e.outcome == "ok" for e in entries)
    not_applied = sum(e.outcome == "not_applied" for e in entries)
    resent = sum(e.unknown for e in entries)
    back = min(e.end for e in entries if e.outcome == "ok" and e.start > struck) - struck
    ends = sorted(e.end for e in entries if e.outcome == "ok")
    gap = max(b - a for a, b in itertools.pairwise(ends) if b > struck)
    measurements.append(
        f"queue {label}: {len(entries)} writes from {PRODUCERS} producers "
        f"({dict(sorted(kinds.items()))}), each checked against the store: {acknowledged} "
        f"acknowledged and all there, {not_applied} answered not applied and none there, "
        f"0 applied twice; {resent} sends ended without an outcome and were sent again "
        f"under their op ids; jobs the queue no longer held were settled in the store "
        f"({dict(settled) or 'none'}), and {refused} writes that workers ran after their "
        f"callers had withdrawn them were refused by the store; the first write sent after "
        f"the fault was acknowledged "
        f"{back:.2f} s after it, the longest pause between acknowledgements was {gap:.2f} s"
    )
    assert back < BACK_WITHIN_S


@pytest.mark.slow
async def test_a_sentinel_failover_of_the_queue_loses_no_outcome(
    tmp_path: Path, durable_store: RedisProcess, measurements: list[str]
) -> None:
    group = SentinelGroup(tmp_path / "queue")
    try:
        group.start()
        settings = _settings(group.url, durable_store, "sentinel")

        async def failover(workers: list[WorkerProcess], logs: list[Path]) -> None:
            group.primary.kill()

        logged, struck, settled, refused = await _under_load(settings, tmp_path, failover)
        assert group.primary_port() == group.replica.port
        await _check(settings, logged, struck, settled, refused, "Sentinel failover", measurements)
    finally:
        group.stop()


@pytest.mark.slow
async def test_a_queue_restarted_without_persistence_loses_no_outcome(
    tmp_path: Path, durable_store: RedisProcess, measurements: list[str]
) -> None:
    queue = RedisProcess(free_ports(1)[0], tmp_path / "queue")

    async def restart(workers: list[WorkerProcess], logs: list[Path]) -> None:
        """The workers freeze holding what they claimed; the queue restarts empty (every
        job, claim, reply and heartbeat gone); callers whose jobs went with it give up at
        their deadlines; only then do the workers go on with the writes they held."""
        frozen = time.time()
        for w in workers:
            w.process.send_signal(signal.SIGSTOP)
        try:
            queue.kill()
            queue.start()
            await until(lambda: _not_applied_since(logs, frozen), 30)
        finally:
            for w in workers:
                w.process.send_signal(signal.SIGCONT)

    try:
        queue.start()
        settings = _settings(queue.url, durable_store, "restart")
        logged, struck, settled, refused = await _under_load(settings, tmp_path, restart)
        label = "restart without persistence"
        await _check(settings, logged, struck, settled, refused, label, measurements)
        assert settled["DeadlineExceeded"] + settled["NoWorkerAlive"] > 0
    finally:
        queue.stop()

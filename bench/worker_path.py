"""Scenarios 3 and 4: writes through the worker, against arq alone; batches against single jobs.

Scenario 3 measures coalesced writes (one client process, and four), writes
sent alone, latency at a steady offered rate, the first write after an idle
spell, and what an idle worker costs Redis, each beside arq running an empty
job with the same settings (arq's stock ``poll_delay`` for the idle row).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis

from bench.harness import Bench, Result, interleaved, percentile, rate, ratio_result
from bench.producer import increments, peer_op, run_producers
from store import BatchOp, make_key
from worker.producer.client import TaskStoreClient
from worker.protocol.serialization import deserialize, serialize
from worker.protocol.settings import Settings, load_settings
from worker.tools.cli import PROTOCOL_SCRIPTS

CONCURRENCY = 64
NODE_PRODUCER = Path(__file__).resolve().parent.parent / "tests" / "interop" / "producer.cjs"
NODE_IN_FLIGHT = 50
PROCESSES = 4
PEER_RUNNER = (
    "import logging; logging.basicConfig(level=logging.WARNING);"
    "from worker.tools.cli import use_uvloop; use_uvloop();"
    "from bench.peers.arq_noop import main; main()"
)


@asynccontextmanager
async def process(
    argv: list[str], env: dict[str, str], url: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    """A worker process, from the moment it has polled its queue once until it is stopped."""
    redis = Redis.from_url(url)
    before = await _commands(redis)
    proc = await asyncio.create_subprocess_exec(
        *argv, env={**os.environ, **env}, stdout=asyncio.subprocess.DEVNULL
    )
    try:
        for _ in range(300):
            if await _commands(redis) - before >= 20 or proc.returncode is not None:
                break
            await asyncio.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)
        await redis.aclose()


async def _commands(redis: Redis) -> int:
    """Commands the server has run, not counting the INFO calls that ask."""
    stats = await redis.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if k != "cmdstat_info")


def _envs(bench: Bench, queue: str) -> tuple[Settings, dict[str, str], dict[str, str]]:
    settings = load_settings(redis_url=bench.url, queue_name=queue, key_prefix="bench")
    ours = {
        "TASKSTORE_REDIS_URL": bench.url,
        "TASKSTORE_QUEUE_NAME": queue,
        "TASKSTORE_KEY_PREFIX": "bench",
        "TASKSTORE_LOG_LEVEL": "WARNING",
    }
    peer = {
        "BENCH_REDIS_URL": bench.url,
        "BENCH_QUEUE": f"{queue}-peer",
        "BENCH_POLL_DELAY_S": str(settings.poll_delay_s),
        "BENCH_MAX_JOBS": str(settings.max_jobs),
    }
    return settings, ours, peer


OURS_WORKER = [sys.executable, "-m", "worker.tools.cli", "worker"]
PEER_WORKER = [sys.executable, "-c", PEER_RUNNER]
STREAQ_WORKER = [
    sys.executable,
    "-c",
    "import logging; logging.basicConfig(level=logging.WARNING);"
    "from bench.peers.streaq_noop import worker; worker.run_sync()",
]


async def run(bench: Bench) -> list[Result]:
    queue = f"bench-{uuid.uuid4().hex[:6]}"
    settings, ours_env, peer_env = _envs(bench, queue)
    streaq_env = {**peer_env, "BENCH_QUEUE": f"{queue}-streaq"}
    results = await _idle(bench, settings, ours_env, peer_env)
    peers = Peers(bench.url, peer_env, streaq_env)
    # Our worker runs throughout (idle, it blocks on its wake-up list); each peer's
    # worker runs only for its own samples, so no idle poller shares the two cores.
    async with (
        process(OURS_WORKER, ours_env, bench.url) as ours,
        TaskStoreClient.connect(settings) as client,
        peers,
    ):
        results += await _throughput(bench, client, peers, ours)
        results += await _processes(bench, queue, peers)
        results += await _latency(bench, client, peers)
        results += await _batching(bench, client)
        results += await _two_workers(bench, client, ours_env)
        results += await _node_producer(bench, settings)
    return results


class Peers:
    """The producers' side of arq's and streaq's empty jobs, and their workers on demand."""

    def __init__(self, url: str, arq_env: dict[str, str], streaq_env: dict[str, str]) -> None:
        self.url, self.arq_env, self.streaq_env = url, arq_env, streaq_env

    async def __aenter__(self) -> Peers:
        self.pool = await create_pool(
            RedisSettings.from_dsn(self.url),
            default_queue_name=self.arq_env["BENCH_QUEUE"],
            job_serializer=serialize,
            job_deserializer=deserialize,
        )
        os.environ.update({k: v for k, v in self.streaq_env.items() if k.startswith("BENCH_")})
        from bench.peers import streaq_noop

        self.streaq = streaq_noop
        await self.streaq.worker.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.streaq.worker.__aexit__(None, None, None)
        await self.pool.aclose()

    def arq(self) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
        return process(PEER_WORKER, self.arq_env, self.url)

    def streaq_worker(self) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
        return process(STREAQ_WORKER, self.streaq_env, self.url)

    async def streaq_op(self) -> None:
        task = await self.streaq.noop.enqueue()
        await task.result(timeout=30)

    def rate_of(
        self,
        worker: Callable[[], AbstractAsyncContextManager[Any]],
        op: Callable[[], Awaitable[None]],
        total: int,
    ) -> Callable[[], Awaitable[float]]:
        """A sample: ``total`` ops, ``CONCURRENCY`` at a time, with that peer's worker up."""

        async def sample() -> float:
            each = total // CONCURRENCY

            async def one() -> None:
                for _ in range(each):
                    await op()

            async with worker():
                return await rate(
                    each * CONCURRENCY, lambda: _gather(one() for _ in range(CONCURRENCY))
                )

        return sample


async def _idle(
    bench: Bench, settings: Settings, ours_env: dict[str, str], peer_env: dict[str, str]
) -> list[Result]:
    """Commands/s of an idle worker, each alone on the server; then first writes after idling."""
    window = bench.size(3, 10)
    redis = Redis.from_url(bench.url)

    async def per_second() -> float:
        before = await _commands(redis)
        await asyncio.sleep(window)
        return (await _commands(redis) - before) / window

    stock = {**peer_env, "BENCH_POLL_DELAY_S": "0.5"}
    try:
        async with process(PEER_WORKER, stock, bench.url):
            peer = await per_second()
        async with process(OURS_WORKER, ours_env, bench.url):
            ours = await per_second()
            async with TaskStoreClient.connect(settings) as client:
                owner = uuid.uuid4().hex[:8]
                first: list[float] = []
                for i in range(bench.size(2, 5)):
                    await asyncio.sleep(bench.size(2, 10))
                    started = time.perf_counter()
                    await client.put(make_key(owner, f"idle{i}"), b"x")
                    first.append((time.perf_counter() - started) * 1000)
    finally:
        await redis.aclose()
    return [
        Result(
            "3. idle worker: Redis commands/s (peer: arq, poll_delay 0.5)",
            ours,
            peer,
            "commands/s",
            "ours <= 20/s",
            ours <= 20,
            {"window_s": window},
        ),
        Result(
            f"3. first write after {bench.size(2, 10)} s idle, p50",
            percentile(first, 50),
            None,
            "ms",
            "ours <= 10 ms",
            percentile(first, 50) <= 10,
            {"samples_ms": [round(f, 2) for f in first]},
        ),
    ]


async def _throughput(
    bench: Bench, client: TaskStoreClient, peers: Peers, ours: asyncio.subprocess.Process
) -> list[Result]:
    total = bench.size(640, 6400)

    arq = peers.rate_of(peers.arq, lambda: peer_op(peers.pool), total)
    streaq = peers.rate_of(peers.streaq_worker, peers.streaq_op, total)
    alone, arq_alone = await interleaved(bench.rounds, write_rate(client, total, False), arq)
    again, streaq_alone = await interleaved(bench.rounds, write_rate(client, total, False), streaq)
    coalesced, arq_again = await interleaved(bench.rounds, write_rate(client, total, True), arq)
    return [
        ratio_result(
            "3. single-write jobs (coalesce=False), concurrency 64, vs arq empty job",
            alone, arq_alone, "jobs/s", 5.0,
        ),
        Result(
            "3. single-write jobs (coalesce=False), concurrency 64, vs streaq empty task",
            again, streaq_alone, "jobs/s", "reference", True,
        ),
        ratio_result(
            "3. coalesced writes, concurrency 64, one client, vs arq empty job",
            coalesced, arq_again, "ops/s", 10.0,
        ),
        *await _cost(bench, client, ours.pid),
    ]  # fmt: skip


def write_rate(
    client: TaskStoreClient, total: int, coalesce: bool, owners: int = 1
) -> Callable[[], Awaitable[float]]:
    """A sample: ``total`` CAS writes from ``CONCURRENCY`` callers, each awaiting its own, to
    keys of ``owners`` owners."""

    async def sample() -> float:
        each = total // CONCURRENCY
        runs = await increments(client, CONCURRENCY, each, coalesce=coalesce, owners=owners)
        return await rate(each * CONCURRENCY, lambda: asyncio.gather(*runs))

    return sample


async def _cost(bench: Bench, client: TaskStoreClient, pid: int) -> list[Result]:
    """Redis commands (those inside scripts included) and worker CPU per single-write job."""
    total = bench.size(640, 6400)
    runs = await increments(client, CONCURRENCY, total // CONCURRENCY, coalesce=False)
    redis = Redis.from_url(bench.url)
    try:
        before, cpu, ours = await _command_counts(redis), _cpu_s(pid), time.process_time()
        await asyncio.gather(*runs)
        spent_ms = (_cpu_s(pid) - cpu) * 1000
        producer_us = (time.process_time() - ours) * 1e6 / total  # this process: the client
        after = await _command_counts(redis)
    finally:
        await redis.aclose()
    used = {name: (after[name] - before.get(name, 0)) / total for name in after}
    top = dict(sorted(((n, round(v, 2)) for n, v in used.items() if v >= 0.01),
                      key=lambda item: -item[1]))  # fmt: skip
    per_job = sum(used.values())
    return [
        Result(
            "3. Redis commands per single-write job (inside scripts included)",
            per_job, None, "commands", "report; goal <= 10", per_job <= 10, {"by_command": top},
        ),
        Result(
            "3. worker CPU per single-write job",
            spent_ms / total, None, "ms", "report; goal <= 0.3 ms", spent_ms / total <= 0.3,
            {"jobs": total},
        ),
        Result(
            "3. producer CPU per single-write job (TaskStoreClient, 64 callers)",
            producer_us, None, "us", "report; goal <= 40 us", producer_us <= 40, {"jobs": total},
        ),
    ]  # fmt: skip


async def _command_counts(redis: Redis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    return {k.removeprefix("cmdstat_"): v["calls"] for k, v in stats.items() if k != "cmdstat_info"}


def _cpu_s(pid: int) -> float:
    """CPU seconds (user and system) process ``pid`` has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _two_workers(bench: Bench, client: TaskStoreClient, env: dict[str, str]) -> list[Result]:
    """Single-write jobs with a second worker process beside the first."""
    total = bench.size(640, 6400)
    one = write_rate(client, total, False)

    async def two() -> float:
        async with process(OURS_WORKER, env, bench.url):
            return await one()

    with_two, with_one = await interleaved(bench.size(2, 3), two, one)
    # What order per owner costs: jobs of one owner never run on two workers at once.
    async with process(OURS_WORKER, env, bench.url):
        hot, spread = await interleaved(
            bench.size(2, 3),
            write_rate(client, total, False, owners=1),
            write_rate(client, total, False, owners=CONCURRENCY),
        )
    return [
        Result(
            "3. single-write jobs, 2 worker processes vs 1",
            with_two, with_one, "jobs/s", "report", True,
        ),
        Result(
            f"3. order per owner: 2 workers, {CONCURRENCY} callers of one owner vs of "
            f"{CONCURRENCY} owners",
            hot, spread, "jobs/s", "report", True,
        ),
    ]  # fmt: skip


async def _processes(bench: Bench, queue: str, peers: Peers) -> list[Result]:
    """4 producer processes x 16 concurrent single-write jobs each, ours against arq."""
    total = bench.size(640, 6400)
    concurrency = CONCURRENCY // PROCESSES

    def sample(kind: str, queue_name: str) -> Callable[[], Awaitable[float]]:
        async def run() -> float:
            def argv(_: int) -> list[str]:
                ops = total // PROCESSES
                args = [kind, bench.url, queue_name, str(ops), str(concurrency)]
                return [sys.executable, "-m", "bench.producer", *args]

            seconds = await run_producers(argv, bench.url, queue_name, PROCESSES)
            return total / seconds

        return run

    async def peer() -> float:
        async with peers.arq():
            return await sample("peer", peers.arq_env["BENCH_QUEUE"])()

    mine, theirs = await interleaved(bench.size(1, 3), sample("ours", queue), peer)
    return [
        ratio_result(
            f"3. single-write jobs, {PROCESSES} producer processes x {concurrency} concurrent, "
            "vs arq empty job",
            mine,
            theirs,
            "jobs/s",
            4.0,
        )
    ]


async def _open_loop(
    ops: int, per_second: float, call: Callable[[], Awaitable[Any]]
) -> list[float]:
    """Start one call every 1/per_second s; return each call's latency in ms."""
    latencies: list[float] = []

    async def timed() -> None:
        started = time.perf_counter()
        await call()
        latencies.append((time.perf_counter() - started) * 1000)

    tasks = []
    for _ in range(ops):
        tasks.append(asyncio.create_task(timed()))
        await asyncio.sleep(1 / per_second)
    await asyncio.gather(*tasks)
    return latencies


async def _latency(bench: Bench, client: TaskStoreClient, peers: Peers) -> list[Result]:
    # One key per op: in an open loop a slow op must not leave the next one a stale version.
    owner = uuid.uuid4().hex[:8]
    count = bench.size(200, 2000)
    keys = iter([make_key(owner, f"t{i}") for i in range(count)])
    await client.apply_batch([BatchOp(make_key(owner, f"t{i}"), b"0") for i in range(count)])

    async def ours() -> None:
        await client.put_if_version(next(keys), b"x" * 100, 1, coalesce=False)

    async def stock_arq() -> None:
        job = await peers.pool.enqueue_job("noop")
        assert job is not None
        await job.result(timeout=30)

    mine = await _open_loop(count, 100, ours)
    async with peers.arq():
        peer = await _open_loop(bench.size(50, 200), 100, stock_arq)
    p50, p99 = percentile(mine, 50), percentile(mine, 99)
    detail = {"ops": len(mine), "peer": "arq job.result() on the same no-op job"}
    return [
        Result(
            "3. single-write p50 latency at 100 jobs/s offered",
            p50,
            percentile(peer, 50),
            "ms",
            "ours <= 3 ms",
            p50 <= 3,
            detail,
        ),
        Result(
            "3. single-write p99 latency at 100 jobs/s offered",
            p99,
            percentile(peer, 99),
            "ms",
            "ours <= 10 ms",
            p99 <= 10,
            detail,
        ),
    ]


async def _batching(bench: Bench, client: TaskStoreClient) -> list[Result]:
    total = bench.size(1000, 20000)
    batch = 100

    async def batched() -> float:
        owner = uuid.uuid4().hex[:8]
        ops = [BatchOp(make_key(owner, f"t{i}"), b"x" * 100) for i in range(total)]
        chunks = [ops[i : i + batch] for i in range(0, total, batch)]
        return await rate(total, lambda: _gather(_batches(client, chunks[i::4]) for i in range(4)))

    async def single() -> float:
        owner = uuid.uuid4().hex[:8]
        keys = [make_key(owner, f"t{i}") for i in range(total // 10)]

        async def one(part: list[str]) -> None:
            for key in part:
                await client.put(key, b"x" * 100, coalesce=False)

        parts = [keys[i::CONCURRENCY] for i in range(CONCURRENCY)]
        return await rate(len(keys), lambda: _gather(one(p) for p in parts))

    mine, theirs = await interleaved(bench.rounds, batched, single)
    return [ratio_result("4. batches of 100 vs one job per op", mine, theirs, "ops/s", 10.0)]


async def _batches(client: TaskStoreClient, chunks: list[list[BatchOp]]) -> None:
    for chunk in chunks:
        await client.apply_batch(chunk)


async def _gather(coroutines: Any) -> None:
    await asyncio.gather(*coroutines)


async def _node_producer(bench: Bench, settings: Settings) -> list[Result]:
    """The Node.js producer of ``tests/interop/`` (PROTOCOL.md alone, its replies on one list
    of its own), ``NODE_IN_FLIGHT`` single-write jobs in flight; with Node.js and its
    ``redis`` package (``TASKSTORE_TEST_NODE_MODULES``, as ``.ci/run`` sets it) only."""
    modules = os.environ.get("TASKSTORE_TEST_NODE_MODULES")
    if shutil.which("node") is None or not modules:
        print("skipped: the Node.js producer (no node, or TASKSTORE_TEST_NODE_MODULES unset)")
        return []
    total = bench.size(2000, 2000)
    with tempfile.TemporaryDirectory() as folder:
        _write_scripts(Path(folder))
        argv = [str(NODE_PRODUCER), bench.url, settings.queue_name, uuid.uuid4().hex[:8],
                folder, settings.key_prefix, "load", str(total), str(NODE_IN_FLIGHT)]  # fmt: skip
        node = await asyncio.create_subprocess_exec(
            "node", *argv, env={**os.environ, "NODE_PATH": modules}, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await node.communicate()
    answered, _, _, per_second, p50 = out.decode().split()[1:]
    rate_, p50_ms = float(per_second), float(p50)
    return [
        Result(
            f"3. Node.js producer, single-write jobs, {NODE_IN_FLIGHT} in flight",
            rate_, None, "writes/s", ">= 3,000 writes/s, p50 <= 20 ms",
            rate_ >= 3000 and p50_ms <= 20, {"p50_ms": p50_ms, "jobs": total, "ok": int(answered)},
        ),
    ]  # fmt: skip


def _write_scripts(folder: Path) -> None:
    """What ``taskstore protocol`` prints for a producer, one ``<name>.lua`` each."""
    for name, script in PROTOCOL_SCRIPTS.items():
        (folder / f"{name.removesuffix('-script')}.lua").write_text(script.source)

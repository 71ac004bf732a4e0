"""Scenario 1, direct writes, and 8, the server's own limit for the same script."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import uuid
from collections.abc import Awaitable, Iterable

from redis.asyncio import Redis

from bench.harness import Bench, Result, interleaved, rate, ratio_result
from bench.peers.raw_script import RawWriter
from store import make_key
from store.redis import RedisBackend, scripts

PAYLOAD = b"x" * 1024


async def run(bench: Bench, loop_name: str) -> list[Result]:
    results = []
    async with await RedisBackend.from_url(bench.url, prefix="bench") as backend:
        peer_client = Redis.from_url(bench.url)
        peer = RawWriter(peer_client)
        total = bench.size(640, 20480)
        for cas in (False, True):
            for concurrency in (1, 64):
                mine, raw = await interleaved(
                    bench.rounds,
                    lambda c=concurrency, x=cas: _ours(backend, c, total // c, x),  # type: ignore[misc]
                    lambda c=concurrency, x=cas: _peer(peer, c, total // c, x),  # type: ignore[misc]
                )
                op = "put_if_version" if cas else "put"
                results.append(
                    ratio_result(
                        f"1. direct {op}, concurrency {concurrency} ({loop_name})",
                        mine,
                        raw,
                        "ops/s",
                        0.9,
                    )
                )
        await peer_client.aclose()
        await backend.client.flushdb()
    return results


async def _ours(backend: RedisBackend, concurrency: int, each: int, cas: bool) -> float:
    owner = uuid.uuid4().hex[:8]
    keys = [make_key(owner, f"t{i}") for i in range(concurrency)]
    versions = {k: await backend.put(k, PAYLOAD) for k in keys}

    async def worker(key: str) -> None:
        for _ in range(each):
            if cas:
                versions[key] = await backend.put_if_version(key, PAYLOAD, versions[key])
            else:
                await backend.put(key, PAYLOAD)

    return await rate(each * concurrency, lambda: _all(worker(k) for k in keys))


async def _peer(peer: RawWriter, concurrency: int, each: int, cas: bool) -> float:
    owner = uuid.uuid4().hex[:8]
    tasks = [f"t{i}" for i in range(concurrency)]
    versions = {t: await peer.put(owner, t, PAYLOAD) for t in tasks}

    async def worker(task: str) -> None:
        for _ in range(each):
            versions[task] = await peer.put(owner, task, PAYLOAD, versions[task] if cas else None)

    return await rate(each * concurrency, lambda: _all(worker(t) for t in tasks))


async def _all(coroutines: Iterable[Awaitable[None]]) -> None:
    await asyncio.gather(*coroutines)


async def physical_limit(bench: Bench, best_python: float) -> list[Result]:
    """redis-benchmark sending EVALSHA of our write script: what the server itself can do."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return []
    client = Redis.from_url(bench.url)
    sha = await client.script_load(scripts.WRITE.source)
    await client.aclose()
    record = "bench:{o}:t:__rand_int__"
    command = [
        binary,
        "-p",
        str(bench.port),
        "-n",
        str(bench.size(20000, 200000)),
        "-c",
        "50",
        "-r",
        "100000",
        "-q",
        "EVALSHA",
        sha,
        "4",
        record,
        "bench:{o}:idx",
        "bench:{o}:exp",
        "bench:{o}:op:",
        "__rand_int__",
        "x" * 1024,
        "",
        ",,,,86400000",
    ]
    output = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=300, check=False
    )
    found = re.search(r"([\d.]+) requests per second", output.stdout)
    if found is None:
        return []
    server = float(found.group(1))
    return [
        Result(
            "8. server limit: redis-benchmark EVALSHA of write.lua (reference)",
            server,
            None,
            "ops/s",
            "reference",
            True,
            {
                "best_python_ops_s": round(best_python),
                "python_share": round(best_python / server, 3),
            },
        )
    ]

"""What tracing costs the worker path: this tree against another (the commit before it).

    python -m bench.tracing_cost --baseline DIR [--rounds 5] [--writes 3200]

``DIR`` is a checkout of the commit to compare with (``git worktree add DIR
HEAD~1``). Each sample starts a worker and a producer from one tree, on a
Redis of its own, and times single-write jobs (64 callers, ``coalesce=False``)
and coalesced writes; samples alternate between the trees. Three variants:
the baseline, this tree without an OpenTelemetry SDK (tracing off: the API's
no-op), and this tree with an SDK and an in-memory exporter in both
processes. Prints medians and ratios to the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.servers import RedisProcess, free_ports

HERE = Path(__file__).resolve().parents[1]

SDK = (
    "from opentelemetry import trace;"
    "from opentelemetry.sdk.trace import TracerProvider;"
    "from opentelemetry.sdk.trace.export import SimpleSpanProcessor;"
    "from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter;"
    "p = TracerProvider(); p.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()));"
    "trace.set_tracer_provider(p);"
)
WORKER = "from worker.tools.cli import main; raise SystemExit(main(['worker']))"
PRODUCER = """
import asyncio, sys, time
from bench.producer import increments
from worker.producer.client import TaskStoreClient

from worker.protocol.settings import load_settings


async def run(writes, coalesce):
    async with TaskStoreClient.connect(load_settings()) as client:
        runs = await increments(client, 64, writes // 64, coalesce=coalesce)
        started = time.perf_counter()
        await asyncio.gather(*runs)
        return writes / (time.perf_counter() - started)

writes = int(sys.argv[1])
print(asyncio.run(run(writes, False)), asyncio.run(run(writes, True)))
"""


def sample(tree: Path, url: str, writes: int, sdk: bool) -> tuple[float, float]:
    """Single-write and coalesced writes/s, worker and producer both from ``tree``."""
    queue = f"cost-{time.monotonic_ns()}"
    env = {
        **os.environ,
        "PYTHONPATH": f"{tree}:{HERE}",
        "TASKSTORE_REDIS_URL": url,
        "TASKSTORE_QUEUE_NAME": queue,
        "TASKSTORE_KEY_PREFIX": queue,
        "TASKSTORE_LOG_LEVEL": "WARNING",
    }
    prefix = SDK if sdk else ""
    worker = subprocess.Popen([sys.executable, "-c", prefix + WORKER], env=env, cwd=tree)
    try:
        time.sleep(1.5)  # start-up: the producer's first jobs would wait for it anyway
        out = subprocess.run(
            [sys.executable, "-c", prefix + PRODUCER, str(writes)],
            env=env,
            cwd=tree,
            capture_output=True,
            text=True,
            check=True,
            timeout=300,
        )
    finally:
        worker.terminate()
        worker.wait(30)
    alone, coalesced = (float(x) for x in out.stdout.split())
    return alone, coalesced


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tracing_cost", description=__doc__)
    parser.add_argument("--baseline", type=Path, required=True, help="checkout to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--writes", type=int, default=3200)
    args = parser.parse_args(argv)
    port = free_ports(1)[0]
    server = RedisProcess(port, Path(tempfile.mkdtemp(prefix="taskstore-cost-")))
    server.start()
    url = f"redis://127.0.0.1:{port}/0"
    variants = {
        "baseline": (args.baseline.resolve(), False),
        "tracing off (no SDK)": (HERE, False),
        "SDK, in-memory exporter": (HERE, True),
    }
    seen: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    try:
        for _ in range(args.rounds):
            for name, (tree, sdk) in variants.items():
                seen[name].append(sample(tree, url, args.writes, sdk))
    finally:
        server.stop()
    base = [statistics.median(x[i] for x in seen["baseline"]) for i in (0, 1)]
    report = {}
    for name, samples in seen.items():
        medians = [statistics.median(x[i] for x in samples) for i in (0, 1)]
        report[name] = {
            "single-write jobs/s": round(medians[0]),
            "ratio": round(medians[0] / base[0], 3),
            "coalesced writes/s": round(medians[1]),
            "coalesced ratio": round(medians[1] / base[1], 3),
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

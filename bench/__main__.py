"""``python -m bench [--quick] [--out DIR]``: every scenario, ours beside a peer."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import contention, dashboard, direct, report, stores, worker_path
from bench.harness import Bench, Result
from tests.servers import RedisProcess, free_ports

RESULTS = Path(__file__).resolve().parent / "results"
"""The committed report of the last full run, which only a full run rewrites."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, about two minutes")
    parser.add_argument(
        "--out",
        type=Path,
        help="report folder (default: bench/results, the committed report, for a full run; "
        "a new temporary folder for --quick)",
    )
    parser.add_argument(
        "--only", type=int, nargs="*", metavar="N", help="run only these scenario numbers"
    )
    args = parser.parse_args(argv)
    missing = [
        m
        for m in ("matplotlib", "streaq", "uvloop", "starlette", "httpx")
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        print(
            f"python -m bench needs the bench extra ({', '.join(missing)} missing): "
            "pip install -e '.[bench]'",
            file=sys.stderr,
        )
        return 2
    if args.out is None:
        args.out = Path(tempfile.mkdtemp(prefix="taskstore-bench-")) if args.quick else RESULTS

    port = free_ports(1)[0]
    server = RedisProcess(port, Path(tempfile.mkdtemp(prefix="taskstore-bench-")))
    server.start()
    bench = Bench(url=f"redis://127.0.0.1:{port}/0", port=port, quick=args.quick)
    started = time.perf_counter()
    results: list[Result] = []
    wanted = set(args.only or range(1, 10))
    try:
        if wanted & {1, 8}:
            for name, factory in _loops():
                results += _run(factory, direct.run(bench, name))
            best = max(r.ours for r in results)
            if 8 in wanted:
                results += _run(None, direct.physical_limit(bench, best))
        scenarios = [
            ({2}, contention.run),
            ({3, 4}, worker_path.run),
            ({5}, stores.listing),
            ({6}, stores.sweep),
            ({7}, stores.memory),
            ({9}, dashboard.run),
        ]
        for numbers, scenario in scenarios:
            if wanted & numbers:
                results += _run(None, scenario(bench))
    finally:
        server.stop()
    meta = {
        "quick": args.quick,
        "cores": os.cpu_count(),
        "redis": _redis_version(server),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "rounds": bench.rounds,
    }
    report.write(args.out, results, meta)
    for r in results:
        ratio = "" if r.ratio is None else f" ratio {r.ratio:.2f}"
        print(f"{'ok ' if r.met else 'NO '} {r.scenario}: {r.ours:,.2f} {r.unit}{ratio} ({r.goal})")
    print(f"wrote {args.out}/REPORT.md in {time.perf_counter() - started:.0f} s")
    return 0


def _loops() -> list[tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]]:
    loops: list[tuple[str, Callable[[], asyncio.AbstractEventLoop] | None]] = [("asyncio", None)]
    try:
        import uvloop

        loops.append(("uvloop", uvloop.new_event_loop))
    except ImportError:
        pass
    return loops


def _run(
    factory: Callable[[], asyncio.AbstractEventLoop] | None,
    coroutine: Coroutine[Any, Any, list[Result]],
) -> list[Result]:
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coroutine)


def _redis_version(server: RedisProcess) -> str:
    import subprocess

    from tests.servers import server_binary

    out = subprocess.run(
        [server_binary(), "--version"], capture_output=True, text=True, check=False
    )
    return next((p.split("=")[1] for p in out.stdout.split() if p.startswith("v=")), "?")


if __name__ == "__main__":
    sys.exit(main())

"""The arq worker: ``taskstore worker`` or ``arq worker.main.WorkerSettings``.

``WorkerSettings`` is built from ``Settings`` (the environment and ``.env``)
the first time it is looked up, so importing this module has no side effect;
when no Redis URL is configured, building it starts (or attaches to) the
embedded server, which arq needs before it opens its pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from arq import cron, func
from arq.cron import CronJob
from arq.worker import Function
from redis.exceptions import RedisError

from store.redis import mask_url
from worker.protocol.connections import open_stores, queue_client, queue_redis_settings
from worker.protocol.keys import HEARTBEAT_S, QueueKeys
from worker.protocol.serialization import serialize
from worker.protocol.settings import Settings, load_settings
from worker.runtime import dead_letter, jobs, liveness, logs, maintenance, queue_stats
from worker.runtime.arq_internals import QueuePool, queue_pool
from worker.runtime.batch import BatchPath
from worker.runtime.context import STATE, WorkerState, state
from worker.runtime.metrics import Metrics
from worker.runtime.queue_clock import QueueClock

log = logging.getLogger("taskstore.worker")

HEALTH_CHECK_S = 5


def every(seconds: int) -> dict[str, Any]:
    """arq cron fields firing every ``seconds`` (which tile a minute or an hour)."""
    if seconds <= 60:
        return {"second": set(range(0, 60, seconds))}
    return {"minute": set(range(0, 60, seconds // 60)), "second": {0}}


def worker_functions(settings: Settings) -> list[Function]:
    """The jobs on arq's own path; write jobs run on the batch path (``worker.runtime.batch``)."""
    return [func(maintenance.refuse, name=jobs.REFUSE, max_tries=1), *durable_tools(settings)]


def durable_tools(settings: Settings) -> list[Function]:
    """The ``run_tool`` job, when this worker runs MCP servers' durable tools: it stops a
    tool at ``JOB_TIMEOUT_S`` itself, and arq a little after."""
    modules = [m.strip() for m in settings.mcp_tool_modules.split(",") if m.strip()]
    if not modules:
        return []
    # A plug-in, loaded by name only when configured: it needs the mcp extra, and it
    # sits above the runtime (it uses the runtime's leases), which never imports it.
    durable = importlib.import_module("worker.mcp_tasks.durable")
    durable.load(modules)
    timeout = settings.job_timeout_s + durable.GRACE_S
    return [func(durable.run_tool, name=durable.JOB, timeout=timeout)]


def cron_jobs(settings: Settings) -> list[CronJob]:
    """The periodic jobs; their results are kept as every job's are, so each run (and a job
    a producer sends under one of their names) answers on its reply key."""
    keep = settings.keep_result_s
    return [
        cron(maintenance.sweep_expired, name="sweep_expired", unique=True,
             run_at_startup=False, keep_result=keep, **every(settings.sweep_interval_s)),
        cron(maintenance.reap_orphans, name="reap_orphans", unique=True,
             run_at_startup=False, keep_result=keep, **every(settings.reap_interval_s)),
        cron(maintenance.fail_abandoned_tasks, name="fail_abandoned_tasks", unique=True,
             run_at_startup=False, keep_result=keep, **every(settings.sweep_interval_s)),
    ]  # fmt: skip


def worker_settings(settings: Settings) -> type:
    """An arq settings class for ``settings``."""
    # An embedded server stays held for the life of this process (released at exit),
    # so `taskstore worker` can run arq again on it after a Redis error.
    redis_settings, _ = queue_redis_settings(settings)
    metrics = Metrics()

    functions, crons = worker_functions(settings), cron_jobs(settings)
    decode = jobs.job_deserializer(
        frozenset([*(f.name for f in functions), *(c.name for c in crons)])
    )

    clock = QueueClock()
    finished = dead_letter.on_job_finished(
        settings.queue_name,
        settings.failed_jobs_keep,
        int(settings.keep_result_s * 1000),
        clock,
        untimed=frozenset(c.name for c in crons),
    )

    def new_pool() -> QueuePool:
        return queue_pool(
            queue_client(settings, redis_settings, QueuePool),
            settings.queue_name,
            serialize,
            decode,
            settings.lease_s,
            QueueKeys(settings.queue_name).wake,
            clock,
            finished,
        )

    async def startup(ctx: dict[str, Any]) -> None:
        if not logging.getLogger().handlers:  # `taskstore worker` has configured them already
            logs.configure(settings.log_level, settings.log_format, settings.secrets())
        worker_id = f"{os.uname().nodename}-{os.getpid()}-{secrets.token_hex(3)}"
        worker = WorkerState(settings, await open_stores(settings), metrics, worker_id)
        ctx[STATE] = worker
        started.append(ctx)
        await clock.read(ctx["redis"])
        worker.batches = BatchPath(ctx["redis"], settings, worker.stores, metrics, worker_id)
        worker.batches.start()
        worker.background.append(
            asyncio.create_task(
                liveness.heartbeats(
                    ctx["redis"],
                    settings.queue_name,
                    worker_id,
                    lambda: metrics.running,
                    lambda reached: metrics.worker_up.set(int(reached)),
                    lambda: worker.batches.in_flight if worker.batches is not None else 0,
                )
            )
        )
        if settings.worker_id_file is not None:
            _write_atomically(settings.worker_id_file, worker_id)
        served = ""
        if settings.metrics_port is not None:
            worker.metrics_server = metrics.serve(settings.metrics_port, settings.metrics_host)
            gauges = _queue_gauges(ctx["redis"], settings, metrics)
            worker.background.append(asyncio.create_task(gauges))
            host, port = worker.metrics_server.server_address[:2]
            served = f"; metrics on http://{host}:{port}/metrics"
        log.info(
            "worker %s ready: queue %r on %s, store on %s%s",
            worker_id,
            settings.queue_name,
            mask_url(settings.queue_url),
            mask_url(settings.store_url_value),
            served,
            extra={"worker_id": worker_id},
        )

    async def job_started(ctx: dict[str, Any]) -> None:
        metrics.running += 1

    async def job_ended(ctx: dict[str, Any]) -> None:
        metrics.running -= 1

    started: list[dict[str, Any]] = []

    async def shutdown(ctx: dict[str, Any]) -> None:
        if STATE not in ctx:  # start-up failed before there was any, or it ran already
            return
        worker = state(ctx)
        del ctx[STATE]
        # Free the metrics port first: `taskstore worker` may start arq again
        # after a Redis error, and that run binds it anew.
        if worker.metrics_server is not None:
            worker.metrics_server.shutdown()
            worker.metrics_server.server_close()
        if worker.batches is not None:
            await worker.batches.stop()
        for loop in worker.background:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
        await liveness.forget(ctx["redis"], settings.queue_name, worker.worker_id)
        await worker.stores.backend.aclose()

    async def release() -> None:
        """What a run's shutdown would have let go, for a run whose shutdown never came:
        arq skips ``on_shutdown`` when its own last command in ``close()`` fails."""
        while started:
            await shutdown(started.pop())

    return type(
        "WorkerSettings",
        (),
        {
            "functions": functions,
            "cron_jobs": crons,
            "redis_settings": redis_settings,
            "redis_pool": new_pool(),
            # `taskstore worker` runs arq again after a Redis error, on a new pool each time.
            "new_pool": new_pool,
            "release": release,
            "queue_name": settings.queue_name,
            "on_startup": startup,
            "on_shutdown": shutdown,
            "on_job_start": job_started,
            "on_job_end": job_ended,
            "job_serializer": serialize,
            "job_deserializer": decode,
            "max_jobs": settings.max_jobs,
            "job_timeout": settings.job_timeout_s,
            "keep_result": settings.keep_result_s,
            "max_tries": settings.max_tries,
            "poll_delay": settings.poll_delay_s,
            "health_check_interval": HEALTH_CHECK_S,
            # SIGTERM: stop taking jobs, let running ones finish, then exit.
            "job_completion_wait": int(settings.job_timeout_s) + 1,
            "metrics": metrics,
        },
    )


async def _queue_gauges(redis: Any, settings: Settings, metrics: Metrics) -> None:
    """Refresh the queue-wide gauges every heartbeat, for the scrapes in between."""
    while True:
        with contextlib.suppress(RedisError):
            metrics.observe_queue(await queue_stats.observe(redis, settings.queue_name))
        await asyncio.sleep(HEARTBEAT_S)


def _write_atomically(path: Path, text: str) -> None:
    """So a probe reading the file never sees half an id."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text + "\n")
    partial.replace(path)


def __getattr__(name: str) -> type:
    if name == "WorkerSettings":
        settings = load_settings()
        # Under `arq worker.main.WorkerSettings`, before arq's first line.
        if not logging.getLogger().handlers:
            logs.configure(settings.log_level, settings.log_format, settings.secrets())
        built = worker_settings(settings)
        globals()["WorkerSettings"] = built
        return built
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

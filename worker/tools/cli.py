"""The ``taskstore`` command: run the worker, maintain the store, inspect it."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from importlib.metadata import version
from typing import Any

from arq.connections import ArqRedis, create_pool
from arq.worker import run_worker
from redis.exceptions import RedisError

from store import BackendError, StorageError
from store.redis import EmbeddedRedis
from store.redis import scripts as store_scripts
from store.redis.connect import is_embedded
from store.redis.lua import Script
from store.tasks import TaskError
from worker.producer.queue import wait_reply
from worker.protocol import envelope
from worker.protocol.connections import check_queue, open_stores, queue_client, queue_redis_settings
from worker.protocol.errors import FailedJobNotKept, JobAlreadyQueued
from worker.protocol.scripts import ENQUEUE, SETTLE
from worker.protocol.settings import Settings, SettingsError, load_settings
from worker.protocol.writes import Stores
from worker.runtime import logs
from worker.runtime.liveness import live_workers
from worker.runtime.main import worker_settings
from worker.tools import failed, report
from worker.tools.purge import purge

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
log = logging.getLogger("taskstore.worker")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        # Logged in the format asked for, although the settings did not load.
        fmt = "json" if os.environ.get("TASKSTORE_LOG_FORMAT", "").lower() == "json" else "plain"
        logs.configure("INFO", fmt, [])
        log.error("taskstore: %s", exc)
        return EXIT_USAGE
    logs.configure(settings.log_level, settings.log_format, settings.secrets())
    try:
        result: int = args.run(settings, args)
        return result
    except BrokenPipeError:
        # The reader went away (`taskstore list x | head`): stop quietly, and
        # point stdout at /dev/null so the interpreter's final flush cannot fail too.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except (StorageError, TaskError, RedisError, OSError) as exc:
        log.error("taskstore %s: %s", args.command, exc)
        return EXIT_FAILED


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskstore",
        description="Durable MCP task records on Redis. Settings come from TASKSTORE_* "
        "environment variables and .env (see .env.example).",
    )
    parser.add_argument("--version", action="version", version=f"taskstore {version('taskstore')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[[Settings, argparse.Namespace], int], text: str) -> Any:
        sub = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(run=run)
        return sub

    command("worker", _worker, "Run the arq worker until SIGTERM or SIGINT; "
            "running jobs are finished before it exits.")  # fmt: skip
    command("sweep", _sweep, "Remove expired tasks now and print how many.")
    command("reap", _reap, "Run one full reaper pass now (repair dangling index entries) "
            "and print how many entries were repaired.")  # fmt: skip
    stats = command("stats", _stats, "Print tasks, owners, the queue, the last hour's "
                    "job counts and live workers as JSON (see README).")  # fmt: skip
    stats.add_argument("--watch", type=float, metavar="N",
                       help="print a line of JSON every N seconds until interrupted")  # fmt: skip
    health = command("health", _health, "Exit 0 if the worker's heartbeat is fresh, 1 if not, "
                     "2 on a usage or settings error (for liveness probes). The worker is "
                     "--worker-id, else the id in WORKER_ID_FILE, else any worker.")  # fmt: skip
    health.add_argument("--worker-id", help="the id the worker logged at start-up")
    failed_jobs = command("failed", _failed, "List the last failed jobs as JSON, newest first.")
    failed_jobs.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    retry = command("retry", _retry, "Enqueue a failed job again under its own id (its writes "
                    "apply at most once) and print its outcomes.")  # fmt: skip
    retry.add_argument("job_id", help="a job id from `taskstore failed`")
    discard = command("discard", _discard, "Let go of a kept failed job without running it.")
    discard.add_argument("job_id", help="a job id from `taskstore failed`")
    command("dashboard", _dashboard, "Serve the operators' web page on DASHBOARD_HOST:"
            "DASHBOARD_PORT (127.0.0.1:8790); any address but loopback needs "
            "DASHBOARD_TOKEN. Needs the dashboard extra.")  # fmt: skip
    embedded = command("embedded", _embedded, "Show (status) or stop (stop) the embedded "
                       "Redis of EMBEDDED_DIR. status exits 0 when it runs, 1 when not; stop "
                       "refuses while live processes use it, unless --force.")  # fmt: skip
    embedded.add_argument("action", choices=["status", "stop"])
    embedded.add_argument("--force", action="store_true", help="stop even while in use")
    proto = command("protocol", _protocol, "Print a script of the job protocol (PROTOCOL.md): "
                    "the enqueue script every producer loads, the settle script that "
                    "withdraws a job, and the store's read scripts; or with --sha its SHA1 "
                    "for EVALSHA.")  # fmt: skip
    proto.add_argument("what", choices=sorted(PROTOCOL_SCRIPTS))
    proto.add_argument("--sha", action="store_true", help="print only the SHA1")
    purge_all = command("purge", _purge, "Remove every key of this KEY_PREFIX and QUEUE_NAME "
                        "(tasks, indexes, op outcomes, queue, replies, arq's keys of its "
                        "jobs) and nothing else; prints what it removed.")  # fmt: skip
    purge_all.add_argument("--yes", action="store_true", help="really remove them")
    get = command("get", _get, "Print one task as JSON.")
    get.add_argument("owner", help="owner id")
    get.add_argument("task", help="task id")
    listing = command("list", _list, "Print an owner's tasks as JSON, newest first.")
    listing.add_argument("owner", help="owner id")
    listing.add_argument("--limit", type=int, default=50, help="tasks per page (default 50)")
    listing.add_argument("--cursor", help="cursor from a previous page's next_cursor")
    return parser


def use_uvloop() -> bool:
    """Run on uvloop when it is installed (the ``uvloop`` extra): less CPU per job."""
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


RESTART_PAUSE_S = 0.1


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    asyncio.run(check_queue(settings))
    if use_uvloop():
        log.info("running on uvloop")
    settings_class = worker_settings(settings)
    # arq's worker can end on a connection error it does not catch (one that
    # lands while it WATCHes a job it is claiming); run it again rather than exit.
    # The pause is short: while Redis is away the queue connection retries for
    # about a minute (QUEUE_RETRY) before an error escapes, so this cannot spin.
    # A signal ends run_worker normally, and so this loop.
    while True:
        try:
            run_worker(settings_class, redis_pool=settings_class.new_pool())  # type: ignore[attr-defined]
            return EXIT_OK
        except (RedisError, OSError, BackendError) as exc:
            log.warning("worker stopped on a Redis error, starting again: %r", exc)
            # The next run binds the metrics port again and starts its own batch path.
            asyncio.get_event_loop().run_until_complete(settings_class.release())  # type: ignore[attr-defined]
            time.sleep(RESTART_PAUSE_S)


def _with_stores(settings: Settings, use: Callable[[Stores], Awaitable[int]]) -> int:
    async def run() -> int:
        stores = await open_stores(settings)
        try:
            return await use(stores)
        finally:
            await stores.backend.aclose()

    return asyncio.run(run())


def _discard(settings: Settings, args: argparse.Namespace) -> int:
    async def discarding() -> int:
        async with _queue_pool(settings) as pool:
            try:
                await failed.discard(pool, settings.queue_name, args.job_id)
            except FailedJobNotKept as exc:
                log.error("taskstore discard: %s", exc)
                return EXIT_FAILED
        print(json.dumps({"job_id": args.job_id, "discarded": True}))
        return EXIT_OK

    return asyncio.run(discarding())


def _dashboard(settings: Settings, args: argparse.Namespace) -> int:
    host, port = settings.dashboard_host, settings.dashboard_port
    if settings.dashboard_token is None and not _loopback(host):
        log.error(
            "taskstore dashboard: serving on %s, beyond this machine, needs "
            "TASKSTORE_DASHBOARD_TOKEN (a secret every request must carry)",
            host,
        )
        return EXIT_USAGE
    try:
        import uvicorn

        from worker.tools.dashboard import app
    except ImportError as exc:
        log.error("taskstore dashboard needs the dashboard extra (%s): pip install "
                  "-e '.[dashboard]'", exc.name)  # fmt: skip
        return EXIT_USAGE
    listening = socket.create_server((host, port), family=_family(host))
    bound_host, bound_port = listening.getsockname()[:2]
    log.info("dashboard of queue %r on http://%s:%d/", settings.queue_name, bound_host, bound_port)
    config = uvicorn.Config(app(settings), log_config=None, access_log=False)
    uvicorn.Server(config).run(sockets=[listening])
    return EXIT_OK


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _purge(settings: Settings, args: argparse.Namespace) -> int:
    if not args.yes:
        log.error(
            "taskstore purge removes every task of prefix %r and every job of queue %r; "
            "run it again with --yes to do so",
            settings.key_prefix,
            settings.queue_name,
        )
        return EXIT_USAGE

    async def removing(stores: Stores) -> int:
        store = getattr(stores.backend, "client", None)  # None: a memory:// store
        async with _queue_pool(settings) as pool:
            done = await purge(pool, store, settings.queue_name, settings.key_prefix)
        print(json.dumps(dataclasses.asdict(done)))
        return EXIT_OK

    return _with_stores(settings, removing)


def _sweep(settings: Settings, args: argparse.Namespace) -> int:
    async def sweep(stores: Stores) -> int:
        started = time.perf_counter()
        removed = await stores.backend.cleanup_expired()
        print(f"removed {removed} expired records in {time.perf_counter() - started:.2f} s")
        return EXIT_OK

    return _with_stores(settings, sweep)


def _reap(settings: Settings, args: argparse.Namespace) -> int:
    async def reap(stores: Stores) -> int:
        checked = 0

        def report(seen: int, repaired: int) -> None:
            nonlocal checked
            checked = seen
            _progress(f"reaping: {seen} keys checked, {repaired} entries repaired")

        repaired = await stores.backend.reap_orphans(full_pass=True, progress=report)
        _progress("")
        print(f"repaired {repaired} entries after checking {checked} keys")
        return EXIT_OK

    return _with_stores(settings, reap)


def _progress(line: str) -> None:
    """One status line, rewritten in place, only on a terminal."""
    if sys.stderr.isatty():
        sys.stderr.write("\r\x1b[2K" + line)
        sys.stderr.flush()


def _stats(settings: Settings, args: argparse.Namespace) -> int:
    async def stats(stores: Stores) -> int:
        async with _queue_pool(settings) as pool:
            while True:
                report = await _report(settings, stores, pool)
                if args.watch is None:
                    print(json.dumps(report, indent=2))
                    return EXIT_OK
                print(json.dumps(report), flush=True)
                await asyncio.sleep(args.watch)

    if args.watch is not None:  # SIGTERM ends a watch as Ctrl-C does, from a script too
        signal.signal(signal.SIGTERM, _interrupted)
    try:
        return _with_stores(settings, stats)
    except KeyboardInterrupt:  # the way out of --watch
        return EXIT_OK


def _interrupted(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


async def _report(settings: Settings, stores: Stores, pool: ArqRedis) -> dict[str, Any]:
    def counting(done: int, total: int) -> None:
        _progress(f"counting tasks: {done} of {total} owners")

    found = await report.gather(settings, stores, pool, counting)
    _progress("")
    return found.as_json()


@contextlib.asynccontextmanager
async def _queue_pool(settings: Settings, retries: int | None = None) -> AsyncIterator[ArqRedis]:
    """A connection to the queue's Redis (attaching to the embedded server if that is it)."""
    redis_settings, server = await asyncio.to_thread(queue_redis_settings, settings)
    if retries is not None:
        redis_settings.conn_retries = retries
    try:
        # arq's own Sentinel client takes no TLS files and no sentinel password.
        pool = (
            queue_client(settings, redis_settings, ArqRedis)
            if redis_settings.sentinel
            else await create_pool(redis_settings)
        )
        try:
            yield pool
        finally:
            await pool.aclose()
    finally:
        if server is not None:
            await asyncio.to_thread(server.release)


def _health(settings: Settings, args: argparse.Namespace) -> int:
    worker_id = args.worker_id
    if worker_id is None and settings.worker_id_file is not None:
        try:
            worker_id = settings.worker_id_file.read_text().strip()
        except OSError as exc:
            log.error("no worker id in TASKSTORE_WORKER_ID_FILE: %s", exc)
            return EXIT_FAILED

    async def health() -> int:
        if is_embedded(settings.queue_url) and not EmbeddedRedis(settings.embedded_dir).answers():
            log.error("no worker: the embedded Redis is not running")
            return EXIT_FAILED
        async with _queue_pool(settings, retries=0) as pool:
            workers = await live_workers(pool, settings.queue_name)
        if worker_id is None:
            print(json.dumps({"workers_alive": len(workers)}))
            return EXIT_OK if workers else EXIT_FAILED
        state = workers.get(worker_id)
        report: dict[str, Any] = {"worker_id": worker_id, "alive": state is not None}
        if state is not None:
            report.update(last_heartbeat_s=state.last_heartbeat_s, running=state.running)
        print(json.dumps(report))
        return EXIT_OK if state is not None else EXIT_FAILED

    return asyncio.run(health())


def _failed(settings: Settings, args: argparse.Namespace) -> int:
    async def listing() -> int:
        async with _queue_pool(settings) as pool:
            jobs = await failed.list_failed(pool, settings.queue_name, args.limit)
        print(json.dumps([dataclasses.asdict(j) for j in jobs], indent=2))
        return EXIT_OK

    return asyncio.run(listing())


def _retry(settings: Settings, args: argparse.Namespace) -> int:
    async def retry() -> int:
        async with _queue_pool(settings) as pool:
            try:
                await failed.retry(pool, settings.queue_name, args.job_id)
            except (FailedJobNotKept, JobAlreadyQueued) as exc:
                log.error("taskstore retry: %s", exc)
                return EXIT_FAILED
            reply = await wait_reply(
                pool, settings.queue_name, args.job_id, settings.reply_timeout_s
            )
        report: dict[str, Any] = {"job_id": args.job_id, "requeued": True}
        if reply is None:
            log.warning("job %s is queued again; no reply within %s s", args.job_id,
                        settings.reply_timeout_s)  # fmt: skip
            print(json.dumps(report))
            return EXIT_FAILED
        print(json.dumps({**report, "outcomes": envelope.tally(reply)}))
        return EXIT_OK

    return asyncio.run(retry())


def _embedded(settings: Settings, args: argparse.Namespace) -> int:
    """The embedded server's status, or stop it; this never starts one."""
    server = EmbeddedRedis(settings.embedded_dir)
    status = server.status()
    if args.action == "stop":
        if status["users"] and not args.force:
            log.error("taskstore embedded: in use by pids %s; --force stops it anyway",
                      status["users"])  # fmt: skip
            return EXIT_FAILED
        server.stop()
        status = server.status()
    print(json.dumps(status))
    return EXIT_OK if status["running"] == (args.action == "status") else EXIT_FAILED


PROTOCOL_SCRIPTS: dict[str, Script[Any, Any, Any]] = {
    "enqueue-script": ENQUEUE,
    "settle-script": SETTLE,
    "withdraw-script": store_scripts.WITHDRAW,
    "get-script": store_scripts.GET,
    "index-page-script": store_scripts.INDEX_PAGE,
    "fetch-script": store_scripts.FETCH,
}
"""The scripts a producer in any language loads, by the name ``taskstore protocol`` takes."""


def _protocol(settings: Settings, args: argparse.Namespace) -> int:
    script = PROTOCOL_SCRIPTS[args.what]
    sys.stdout.write(script.sha + "\n" if args.sha else script.source)
    return EXIT_OK


def _get(settings: Settings, args: argparse.Namespace) -> int:
    async def get(stores: Stores) -> int:
        record = await stores.tasks.get(args.task, args.owner)
        print(json.dumps(record.model_dump(mode="json", by_alias=True), indent=2))
        return EXIT_OK

    return _with_stores(settings, get)


def _list(settings: Settings, args: argparse.Namespace) -> int:
    async def listing(stores: Stores) -> int:
        page = await stores.tasks.list(args.owner, args.cursor, args.limit)
        tasks = [t.model_dump(mode="json", by_alias=True) for t in page.tasks]
        print(json.dumps({"tasks": tasks, "next_cursor": page.next_cursor}, indent=2))
        return EXIT_OK

    return _with_stores(settings, listing)


if __name__ == "__main__":
    sys.exit(main())

"""The batch path: write jobs claimed, run and finished many at a time.

arq pays about twenty commands in six round trips per job around the work
itself. Here one look at the queue claims up to ``BATCH_JOBS`` ready write
jobs in one script (``claim.lua``: a lease and a counted try each, as arq
claims one), all their writes run together (``operations.execute``: puts and
CAS ops pipelined, task operations concurrently, same-key writes in queue
order), and one script finishes them all (``finish.lua``: arq's result,
the reply, the per-minute tally, a kept failure). On the wire nothing
changes: the same keys, records, results and replies as arq's own path.

The next batch is claimed while the last one runs (``BATCHES_IN_FLIGHT``);
their writes run one batch at a time, so same-key writes keep queue order
across batches too. A claim is a lease renewed while the batch runs, so a
dead worker's jobs move on within ``LEASE_S``; a re-run replays op ids.

Jobs of other names (cron, durable tools) are left on the queue for arq's
own poll, which this path feeds (``arq_poll``); an idle worker blocks on the
queue's wake-up list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from arq.worker import JobExecutionFailed
from redis.exceptions import RedisError

from store import BackendError, InvalidArgument, VersionConflict
from worker.protocol import envelope, tracing
from worker.protocol.errors import OutcomeUnknown
from worker.protocol.keys import QueueKeys, job_keys
from worker.protocol.scripts import CLAIM, FINISH, ClaimArgs, ClaimKeys, FinishArgs, FinishKeys
from worker.protocol.serialization import deserialize, serialize
from worker.protocol.settings import Settings
from worker.protocol.writes import RETRYABLE, Stores
from worker.runtime import dead_letter, jobs, tally
from worker.runtime.arq_internals import QueuePool, result_record
from worker.runtime.metrics import Metrics
from worker.runtime.operations import Call, Result, execute

log = logging.getLogger("taskstore.jobs")

BATCHES_IN_FLIGHT = 2
"""Batches a worker holds at once: one running its writes, the next claimed meanwhile."""
IDLE_WAIT_S = 1.0
"""How long an idle worker sleeps on its wake-up list between two looks at the queue."""
_FUNCTIONS = " " + " ".join(sorted(jobs.BATCH_JOBS)) + " "


@dataclass(slots=True)
class _Job:
    """One claimed job: what it runs, and once run, how it ends."""

    job_id: str
    job_try: int
    job: dict[str, Any]
    plan: jobs.Plan
    name: str
    verdict: str = "completed"
    """``completed``, ``failed`` (arq's sense: refused, out of tries) or ``retried``."""
    reply: envelope.Envelope | None = None
    result: object = None
    results: Sequence[Result] = ()
    """Its calls' results, in order, once the batch ran."""
    outcomes: list[envelope.Envelope] = field(default_factory=list)
    """The same as envelopes: what the reply holds, what logs and metrics count."""


class BatchPath:
    """The worker's poll: claims write jobs in batches, hands the rest to arq."""

    def __init__(
        self, pool: QueuePool, settings: Settings, stores: Stores, metrics: Metrics
    ) -> None:
        self.pool, self.settings, self.stores, self.metrics = pool, settings, stores, metrics
        self.held: set[str] = set()
        self._slots = asyncio.Semaphore(BATCHES_IN_FLIGHT)
        self._in_order = asyncio.Lock()
        self._batches: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._for_arq: list[bytes] = []
        self._arq_found = asyncio.Event()

    def start(self) -> None:
        self.pool.arq_poll = self.arq_poll
        self._loops = [asyncio.create_task(self._poll()), asyncio.create_task(self._renew())]

    async def stop(self) -> None:
        """Claim nothing more; let the batches held finish (within the job timeout)."""
        self.pool.arq_poll = None
        for loop in self._loops[:1]:  # the poll: claim nothing more
            loop.cancel()
        if self._batches:
            await asyncio.wait(self._batches, timeout=self.settings.job_timeout_s)
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, *self._batches, return_exceptions=True)

    async def arq_poll(self) -> list[bytes]:
        """arq's poll: the ready jobs left to arq, waiting up to ``IDLE_WAIT_S`` for some."""
        if not self._for_arq:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arq_found.wait(), IDLE_WAIT_S)
        found, self._for_arq = self._for_arq, []
        self._arq_found.clear()
        return found

    # -- claiming -----------------------------------------------------------------

    async def _poll(self) -> None:
        backoff = 0.05
        while True:
            await self._slots.acquire()
            try:
                claimed = await self._claim()
                backoff = 0.05
            except Exception as exc:  # the poll must outlive any one failure
                self._slots.release()
                log.warning("claiming jobs failed, trying again in %.2f s: %r", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            if not claimed:
                self._slots.release()
                await self._idle()
                continue
            batch = asyncio.create_task(self._run(claimed))
            self._batches.add(batch)
            batch.add_done_callback(self._batches.discard)

    async def _claim(self) -> list[tuple[str, int, bytes]]:
        """Claim up to ``BATCH_JOBS`` ready write jobs; hand arq the ready jobs of its own."""
        limit = self.settings.batch_jobs
        ready = await self.pool.ready(len(self.held) + 4 * limit + 100)
        ids = tuple(i for i in (j.decode() for j in ready) if i not in self.held)
        if not ids:
            return []
        keys = tuple(k for i in ids for k in job_keys(i)[:3])
        lease_ms = int(self.settings.lease_s * 1000)
        claims = await CLAIM.run(
            self.pool,
            ClaimKeys(self.settings.queue_name, keys),
            ClaimArgs(lease_ms, limit, _FUNCTIONS, ids),
        )
        if claims.others:
            self._for_arq.extend(claims.others)
            self._arq_found.set()
        flat = claims.claimed
        claimed = [
            (flat[i].decode(), int(flat[i + 1]), flat[i + 2]) for i in range(0, len(flat), 3)
        ]
        self.held.update(job_id for job_id, _, _ in claimed)
        return claimed

    async def _idle(self) -> None:
        """Until a producer enqueues, the next deferred job is due, or ``IDLE_WAIT_S`` passes."""
        wait = IDLE_WAIT_S
        with contextlib.suppress(RedisError):
            due_ms = await self.pool.next_start_ms()
            if due_ms is not None:
                wait = min(wait, due_ms / 1000 - time.time())
            if wait > 0.001:
                redis: Any = self.pool
                await redis.blpop([QueueKeys(self.settings.queue_name).wake], timeout=wait)

    async def _renew(self) -> None:
        """Renew the lease of every claim held, a third of a lease at a time."""
        lease_s = self.settings.lease_s
        ms = int(lease_s * 1000)
        while True:
            await asyncio.sleep(lease_s / 3)
            held = list(self.held)
            if not held:
                continue
            with contextlib.suppress(RedisError):
                async with self.pool.pipeline(transaction=False) as pipe:
                    for job_id in held:
                        pipe.pexpire(job_keys(job_id).claim, ms)
                    kept = await pipe.execute()
                lost = [j for j, k in zip(held, kept, strict=True) if not k and j in self.held]
                if lost:
                    log.warning("lost the lease of jobs %s; a re-run replays their op ids", lost)

    # -- running ------------------------------------------------------------------

    async def _run(self, claimed: list[tuple[str, int, bytes]]) -> None:
        metrics = self.metrics
        metrics.running += len(claimed)
        started, started_ms = time.perf_counter(), int(time.time() * 1000)
        try:
            batch = [self._read(*c) for c in claimed]
            calls = [call for job in batch for call in job.plan.calls]
            carried = [job.job.get("tc") for job in batch]
            ids = [job.job_id for job in batch]
            with tracing.processing(self.settings.queue_name, carried, ids, len(calls)):
                async with self._in_order:
                    try:
                        results = await asyncio.wait_for(
                            execute(self.stores, calls), self.settings.job_timeout_s
                        )
                    except TimeoutError:
                        late = BackendError(None, "the batch ran past JOB_TIMEOUT_S")
                        results = [c if isinstance(c, Exception) else late for c in calls]
                self._judge(batch, results)
                await self._finish(batch, started_ms)
            self._report(batch, time.perf_counter() - started)
        except RedisError as exc:
            # Unfinished jobs keep their claims until the leases run out; a re-run replays.
            log.warning("finishing a batch of %d jobs failed: %s", len(claimed), exc)
        except Exception:
            log.exception("a batch of %d jobs failed; their leases will run out", len(claimed))
        finally:
            self.held.difference_update(job_id for job_id, _, _ in claimed)
            metrics.running -= len(claimed)
            self._slots.release()

    def _read(self, job_id: str, job_try: int, raw: bytes) -> _Job:
        """A claimed job decoded and planned; one that cannot run is refused."""
        try:
            job = deserialize(raw)
            reason = jobs.refusal(job)
        except (ValueError, RecursionError) as exc:
            job, reason = {}, f"the job does not decode as JSON: {exc!s:.200}"
        if reason is not None:
            return self._refused(job_id, job_try, job, reason)
        if isinstance(job.get("t"), int):  # arq's tries at enqueue
            job_try = max(job_try, job["t"])
        planned = jobs.plan(job_id, job_try, job)
        if job_try > self.settings.max_tries:
            planned.calls[:] = [
                OutcomeUnknown(c.op_id, job_id) if isinstance(c, Call) else c for c in planned.calls
            ]
            exhausted = JobExecutionFailed(f"max {self.settings.max_tries} retries exceeded")
            return _Job(job_id, job_try, job, planned, job["f"], "failed", None, exhausted)
        return _Job(job_id, job_try, job, planned, job["f"])

    def _refused(self, job_id: str, job_try: int, job: dict[str, Any], reason: str) -> _Job:
        log.warning("refused job %s: %s", job_id, reason, extra={"job_id": job_id})
        as_arq: dict[str, Any] = {"f": jobs.REFUSE, "a": [reason], "k": {}, "et": job.get("et")}
        planned = jobs.Plan([InvalidArgument(reason)], single=True)
        refused = jobs.JobRefused(reason)
        return _Job(job_id, job_try, as_arq, planned, jobs.REFUSE, "failed", None, refused)

    def _judge(self, batch: list[_Job], results: Sequence[Result]) -> None:
        """Each job's results, verdict and reply: a storage failure is retried while tries
        remain."""
        at = 0
        for job in batch:
            job.results = results[at : at + len(job.plan.calls)]
            at += len(job.plan.calls)
            job.outcomes = [_envelope(r) for r in job.results]
            job.reply = job.plan.reply(job.outcomes)
            if job.verdict == "failed":
                continue
            failure = next((r for r in job.results if isinstance(r, RETRYABLE)), None)
            if failure is not None and job.job_try < self.settings.max_tries:
                job.verdict, job.reply = "retried", None
                log.warning("%s %s: storage failed, will retry: %s", job.name, job.job_id, failure)
            else:
                job.result = job.reply

    async def _finish(self, batch: list[_Job], started_ms: int) -> None:
        settings = self.settings
        queue = settings.queue_name
        queue_keys = QueueKeys(queue)
        keys: list[str] = []
        outcomes: list[Any] = []
        for job in batch:
            job_id = job.job_id
            keys += [*job_keys(job_id), queue_keys.reply(job_id)]
            stored, record, retry_job = b"", "", b""
            if job.verdict != "retried":
                success = job.verdict == "completed"
                stored = result_record(
                    job_id, queue, job.job, job.job_try, success, job.result, started_ms
                )
                if not success:
                    record, _, retry_job = dead_letter.entry(job_id, deserialize(stored))
            reply = b"" if job.reply is None else serialize(job.reply)
            defer_ms = min(50 * 2**job.job_try, 2000)
            outcomes += [job_id, job.verdict, stored, reply, defer_ms, record, retry_job]
        # The script lets go of the claims: renewing them from now on would find them gone.
        self.held.difference_update(job.job_id for job in batch)
        await FINISH.run(
            self.pool,
            FinishKeys(queue, queue_keys.tally(), *dead_letter.keys(queue), tuple(keys)),
            FinishArgs(
                int(settings.keep_result_s * 1000),
                tally.KEEP_S,
                settings.failed_jobs_keep,
                tuple(outcomes),
            ),
        )

    def _report(self, batch: list[_Job], seconds: float) -> None:
        """Metrics per job and write; one log line for the batch, one per job at DEBUG."""
        metrics = self.metrics
        labels = Counter[str]()
        for job in batch:
            counted = Counter[str]()
            for call, result, outcome in zip(
                job.plan.calls, job.results, job.outcomes, strict=True
            ):
                name = call.write.name if isinstance(call, Call) else "invalid"
                if isinstance(result, RETRYABLE):
                    metrics.backend_errors.labels(job=name).inc()
                if job.verdict == "retried":
                    continue
                label = envelope.label(outcome)
                counted[label] += 1
                metrics.jobs.labels(job=name, outcome=label).inc()
                if label == VersionConflict.__name__:
                    metrics.cas_conflicts.labels(job=name).inc()
            metrics.job_seconds.labels(job=job.name).observe(seconds)
            labels.update(counted)
            log.log(
                logging.WARNING if job.verdict == "failed" else logging.DEBUG,
                "%s %s try %d %s: %s",
                job.name,
                job.job_id,
                job.job_try,
                job.verdict,
                _summary(counted),
                extra={
                    "job": job.name,
                    "job_id": job.job_id,
                    "try": job.job_try,
                    "verdict": job.verdict,
                    "outcomes": dict(counted),
                },
            )
        verdicts = Counter(job.verdict for job in batch)
        writes = sum(len(job.results) for job in batch)
        log.info(
            "batch of %d jobs, %d writes: %s in %.1f ms",
            len(batch),
            writes,
            _summary(labels),
            seconds * 1000,
            extra={
                "jobs": len(batch),
                "writes": writes,
                "verdicts": dict(verdicts),
                "outcomes": dict(labels),
                "duration_ms": round(seconds * 1000, 2),
            },
        )


def _envelope(result: Result) -> envelope.Envelope:
    if isinstance(result, Exception):
        return envelope.failure(result)
    return envelope.success(result)


def _summary(labels: Counter[str]) -> str:
    return ", ".join(f"{n} {label}" for label, n in sorted(labels.items())) or "nothing"

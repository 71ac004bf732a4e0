"""The batch path: write jobs claimed, run and finished many at a time.

arq pays about twenty commands in six round trips per job around the work
itself. Here one look at the queue claims up to ``BATCH_JOBS`` ready write
jobs in one script (``claim.lua``: a lease and a counted try each, as arq
claims one), all their writes run together (``operations.execute``: puts and
CAS ops pipelined, task operations concurrently, same-key writes in queue
order), and one script finishes them all (``finish.lua``: arq's result,
the reply, the per-minute tally, a kept failure). On the wire nothing
changes: the same keys, records, results and replies as arq's own path.

What the path promises, and how:

- **One clock.** Whether a job is ready, and whether it was taken after its
  deadline, is judged by the queue's clock, which the claim script reads
  (``QueueClock``); a late job's writes are withdrawn in the store before it is
  answered (``jobs``), so no later try applies them.
- **Each job on its own.** Whatever one job holds (a bad field, a bug it
  trips, a huge reply) becomes that job's own answer; its neighbours run on.
  Its try is counted when it is claimed, before anything can fail, so
  ``MAX_TRIES`` ends a job that keeps failing.
- **Claims fenced.** A claim holds ``<worker>:<try>``; renewals and the finish
  touch only claims that still hold that, so a job whose lease ran out (a
  paused worker) is left to the worker that took it over, which replays.
- **Order per key, across workers.** The claim script takes a job only when
  no unfinished job outside its batch holds one of its lanes (its owners), and
  a job that waits keeps later jobs of its lanes waiting; a job retried after a
  storage failure keeps its place and its lanes. Batches of one worker never
  share a lane, so they run their writes at once.
- **No long stall.** Jobs are decoded, judged and answered one at a time with
  the event loop let go between them, pipelines hold a few hundred writes, and
  a batch is bounded by writes and bytes as well as jobs.

Jobs of other names (cron, durable tools) are left on the queue for arq's
own poll, which this path feeds (``arq_poll``, at most ``MAX_JOBS`` ids at a
time); an idle worker blocks on the queue's wake-up list.
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
from worker.protocol.errors import InternalError, OutcomeUnknown
from worker.protocol.keys import QueueKeys, job_keys
from worker.protocol.scripts import (
    CLAIM,
    FINISH,
    RENEW,
    ClaimArgs,
    ClaimKeys,
    FinishArgs,
    FinishKeys,
    RenewArgs,
    RenewKeys,
)
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
BATCH_BYTES = 16 * 1024 * 1024
"""The most job bytes one batch claims (a first job larger than that still fits)."""
FINISH_BYTES = 64 * 1024 * 1024
"""The most one finish script carries: a batch past it is finished in several calls."""
DUE_MARGIN_MS = 1000
"""How far past the queue's time (as this worker carries it) a job may be due and still be
looked at: the estimate may lag the queue's clock by a little."""


@dataclass(slots=True)
class _Job:
    """One claimed job: what it runs, and once run, how it ends."""

    job_id: str
    job_try: int
    claim: str
    """What its claim holds while this worker has it."""
    lanes: str
    job: dict[str, Any]
    plan: jobs.Plan
    name: str
    verdict: str = "completed"
    """``completed``, ``failed`` (arq's sense: refused, out of tries) or ``retried``."""
    error: Exception | None = None
    """Why a job ``failed`` before its writes could run, as arq records it."""
    reply: bytes = b""
    results: Sequence[Result] = ()
    """Its calls' results, in order, once the batch ran."""
    outcomes: list[envelope.Envelope] = field(default_factory=list)
    """The same as envelopes: what the reply holds, what logs and metrics count."""


_N = 10
"""Values per job in ``finish.lua``'s outcomes."""


@dataclass(slots=True)
class _Piece:
    """Jobs of a batch finished by one call of ``finish.lua``."""

    keys: list[str] = field(default_factory=list)
    outcomes: list[Any] = field(default_factory=list)
    size: int = 0
    flags: list[int] = field(default_factory=list)
    """For each job, 1 when the call finished or retried it, 0 when it left it alone."""

    def add(self, keys: list[str], outcome: list[Any], size: int) -> None:
        self.keys += keys
        self.outcomes += outcome
        self.size += size

    def rest(self) -> list[Any]:
        """Its jobs as the call that hands on the lanes takes them: id, unfinished, lanes."""
        out = self.outcomes
        return [
            value
            for i, flag in enumerate(self.flags)
            for value in (
                out[_N * i],
                int(not flag or out[_N * i + 2] == "retried"),
                out[_N * i + 8],
            )
        ]


class BatchPath:
    """The worker's poll: claims write jobs in batches, hands the rest to arq."""

    def __init__(
        self,
        pool: QueuePool,
        settings: Settings,
        stores: Stores,
        metrics: Metrics,
        worker_id: str,
    ) -> None:
        self.pool, self.settings, self.stores, self.metrics = pool, settings, stores, metrics
        self.worker_id = worker_id
        self.keys = QueueKeys(settings.queue_name)
        self.held: dict[str, str] = {}
        """Each job this worker holds, and what its claim holds meanwhile."""
        self._finishing: set[str] = set()
        """Of those, the jobs whose finish has been sent."""
        self._slots = asyncio.Semaphore(BATCHES_IN_FLIGHT)
        self._batches: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._for_arq: dict[bytes, None] = {}
        self._arq_found = asyncio.Event()
        self._due_s = -1.0

    @property
    def in_flight(self) -> int:
        """Batches this worker holds now."""
        return len(self._batches)

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
        found = list(self._for_arq)
        self._for_arq.clear()
        self._arq_found.clear()
        return found

    # -- claiming -----------------------------------------------------------------

    async def _poll(self) -> None:
        backoff = 0.05
        while True:
            await self._slots.acquire()
            try:
                claimed, now_ms = await self._claim()
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
            batch = asyncio.create_task(self._run(claimed, now_ms))
            self._batches.add(batch)
            batch.add_done_callback(self._batches.discard)

    async def _claim(self) -> tuple[list[list[Any]], int]:
        """Claim a batch of ready write jobs (and when, by the queue's clock); hand arq the
        ready jobs of its own."""
        settings = self.settings
        limit = settings.batch_jobs
        look = len(self.held) + 4 * limit + 100
        # Jobs not due yet are left out (a backlog of deferred jobs costs a claim nothing);
        # the script judges readiness by the queue's clock, this bound only by its estimate.
        due_by = self.pool.clock.now_ms() + DUE_MARGIN_MS
        async with self.pool.pipeline(transaction=False) as pipe:
            for queue, count in (
                (self.keys.writes, look),
                (self.keys.queue, look + 2 * settings.max_jobs),
            ):
                pipe.zrangebyscore(queue, "-inf", due_by, start=0, num=count, withscores=True)
            writes, queued = await pipe.execute()
        candidates = sorted(
            [(score, b"w" + i) for i, score in writes] + [(score, b"q" + i) for i, score in queued]
        )
        tagged = tuple(c.decode() for _, c in candidates if c[1:].decode() not in self.held)
        keys = tuple(k for c in tagged for k in job_keys(c[1:])[:3])
        claims = await CLAIM.run(
            self.pool,
            ClaimKeys(self.keys.writes, self.keys.queue, self.keys.lanes, keys),
            ClaimArgs(
                int(settings.lease_s * 1000),
                limit,
                settings.batch_writes,
                BATCH_BYTES,
                settings.max_jobs,
                self.worker_id,
                tagged,
            ),
        )
        self.pool.clock.observe(claims.now)
        self._due_s = claims.due_ms / 1000 if claims.due_ms >= 0 else -1.0
        if claims.others:
            room = settings.max_jobs - len(self._for_arq)
            self._for_arq.update(dict.fromkeys(claims.others[: max(room, 0)]))
            self._arq_found.set()
        for job_id, job_try, _, _ in claims.claimed:
            self.held[job_id.decode()] = f"{self.worker_id}:{job_try}"
        return claims.claimed, claims.now

    async def _idle(self) -> None:
        """Until a producer enqueues, the next deferred job is due, or ``IDLE_WAIT_S`` passes."""
        wait = IDLE_WAIT_S if self._due_s < 0 else min(IDLE_WAIT_S, self._due_s)
        if wait > 0.001:
            redis: Any = self.pool
            with contextlib.suppress(RedisError):
                await redis.blpop([self.keys.wake], timeout=wait)

    async def _renew(self) -> None:
        """Renew the lease of every claim this worker still holds, a third of a lease at a
        time."""
        while True:
            await asyncio.sleep(self.settings.lease_s / 3)
            with contextlib.suppress(RedisError):
                await self.renew_leases()

    async def renew_leases(self) -> None:
        """One renewal of every claim held; a claim another worker took over is let go.

        A job being finished is still renewed (its finish may be slow), but a claim its
        own finish removed meanwhile is not a lost lease."""
        held = list(self.held.items())
        if not held:
            return
        kept = await RENEW.run(
            self.pool,
            RenewKeys(tuple(job_keys(job_id).claim for job_id, _ in held)),
            RenewArgs(int(self.settings.lease_s * 1000), tuple(claim for _, claim in held)),
        )
        lost = [
            job_id
            for (job_id, _), k in zip(held, kept, strict=True)
            if not k and job_id in self.held and job_id not in self._finishing
        ]
        if lost:
            log.warning("lost the lease of jobs %s; their new holder replays them", lost)

    # -- running ------------------------------------------------------------------

    async def _run(self, claimed: list[list[Any]], now_ms: int) -> None:
        metrics = self.metrics
        metrics.running += len(claimed)
        started = time.perf_counter()
        ids = [job_id.decode() for job_id, _, _, _ in claimed]
        try:
            batch = []
            for job_id, job_try, raw, lanes in claimed:
                batch.append(await self._read(job_id.decode(), int(job_try), raw, lanes, now_ms))
                await asyncio.sleep(0)  # one job at a time: the loop runs on between them
            calls = [call for job in batch for call in job.plan.calls]
            carried = [job.job.get("tc") for job in batch]
            with tracing.processing(self.settings.queue_name, carried, ids, len(calls)):
                try:
                    results = await asyncio.wait_for(
                        execute(self.stores, calls), self.settings.job_timeout_s
                    )
                except TimeoutError:
                    late = BackendError(None, "the batch ran past JOB_TIMEOUT_S")
                    results = [c if isinstance(c, Exception) else late for c in calls]
                await self._judge(batch, results)
                self._finishing.update(ids)
                finished = await self._finish(batch, now_ms)
            await self._report(finished, time.perf_counter() - started)
        except RedisError as exc:
            # Unfinished jobs keep their claims until the leases run out; a re-run replays.
            log.warning("finishing a batch of %d jobs failed: %s", len(claimed), exc)
        except Exception:
            log.exception("a batch of %d jobs failed; their leases will run out", len(claimed))
        finally:
            for job_id in ids:
                self.held.pop(job_id, None)
                self._finishing.discard(job_id)
            metrics.running -= len(claimed)
            self._slots.release()

    async def _read(self, job_id: str, job_try: int, raw: bytes, lanes: Any, now_ms: int) -> _Job:
        """A claimed job decoded and planned; one that cannot run is refused, one that trips
        a bug answered with that, one out of tries answered as such."""
        claim = f"{self.worker_id}:{job_try}"
        lane_text = ",".join(str(int(lane)) for lane in lanes or ())
        try:
            job = deserialize(raw)
            reason = jobs.refusal(job)
        except (ValueError, RecursionError) as exc:
            job, reason = {}, f"the job does not decode as JSON: {exc!s:.200}"
        if reason is not None:
            return self._refused(job_id, job_try, claim, lane_text, job, reason)
        try:
            if isinstance(job.get("t"), int):  # arq's tries at enqueue
                job_try = max(job_try, job["t"])
            planned = await jobs.plan(job_id, job, now_ms)
        except Exception as exc:  # a bug planning one job must not reach its neighbours
            log.exception("planning job %s failed", job_id)
            problem = InternalError(job_id, f"{type(exc).__name__}: {exc!s:.200}")
            planned = jobs.Plan([problem], single=True)
            return _Job(job_id, job_try, claim, lane_text, job, planned, _name(job))
        if job_try > self.settings.max_tries:
            planned.calls[:] = [
                OutcomeUnknown(c.op_id, job_id) if isinstance(c, Call) else c for c in planned.calls
            ]
            exhausted = JobExecutionFailed(f"max {self.settings.max_tries} retries exceeded")
            return _Job(
                job_id, job_try, claim, lane_text, job, planned, _name(job), "failed", exhausted
            )
        return _Job(job_id, job_try, claim, lane_text, job, planned, _name(job))

    def _refused(
        self, job_id: str, job_try: int, claim: str, lanes: str, job: dict[str, Any], reason: str
    ) -> _Job:
        log.warning("refused job %s: %s", job_id, reason, extra={"job_id": job_id})
        as_arq: dict[str, Any] = {"f": jobs.REFUSE, "a": [reason], "k": {}, "et": job.get("et")}
        planned = jobs.Plan([InvalidArgument(reason)], single=True)
        refused = jobs.JobRefused(reason)
        return _Job(job_id, job_try, claim, lanes, as_arq, planned, jobs.REFUSE, "failed", refused)

    async def _judge(self, batch: list[_Job], results: Sequence[Result]) -> None:
        """Each job's results, verdict and reply: a storage failure is retried while tries
        remain. A job whose reply cannot be built is answered with why."""
        at = 0
        for job in batch:
            job.results = results[at : at + len(job.plan.calls)]
            at += len(job.plan.calls)
            try:
                job.outcomes = [_envelope(r) for r in job.results]
                job.reply = envelope.encoded_reply(job.outcomes, job.plan.single)
            except Exception as exc:  # a value of one job that does not encode
                log.exception("answering job %s failed", job.job_id)
                problem = envelope.failure(InternalError(job.job_id, f"{exc!s:.200}"))
                job.outcomes = [problem]
                job.reply = serialize(problem)
            await asyncio.sleep(0)
            if job.verdict == "failed":
                continue
            failure = next((r for r in job.results if isinstance(r, RETRYABLE)), None)
            if failure is not None and job.job_try < self.settings.max_tries:
                job.verdict, job.reply = "retried", b""

    async def _finish(self, batch: list[_Job], now_ms: int) -> list[_Job]:
        """Finish the batch (``finish.lua``): the jobs this worker still held, finished or
        retried, are given back; the others are left to whoever holds them now."""
        finished_ms = self.pool.clock.now_ms()
        pieces: list[_Piece] = []
        for job in batch:
            outcome = self._outcome(job, now_ms, finished_ms)
            size = sum(len(v) for v in outcome if isinstance(v, bytes | str))
            if not pieces or pieces[-1].size + size > FINISH_BYTES:
                pieces.append(_Piece())
            pieces[-1].add([*job_keys(job.job_id), self._reply_key(job)], outcome, size)
            await asyncio.sleep(0)
        # Its last jobs first: the first job on each lane, which holds it, is finished last.
        rest: list[Any] = []
        for n in reversed(range(len(pieces))):
            piece = pieces[n]
            first = n == 0
            piece.flags = await self._finish_piece(piece, finished_ms, rest if first else None)
            if not first:
                rest[:0] = piece.rest()
        done = [flag for piece in pieces for flag in piece.flags]
        lost = [job.job_id for job, flag in zip(batch, done, strict=True) if not flag]
        if lost:
            log.warning(
                "left %d jobs to the workers that took them over (this one lost their "
                "leases: it was paused, or too slow): %s",
                len(lost),
                lost,
            )
        return [job for job, flag in zip(batch, done, strict=True) if flag]

    async def _finish_piece(
        self, piece: _Piece, finished_ms: int, rest: list[Any] | None
    ) -> list[int]:
        """One call of ``finish.lua``; with ``rest`` (the batch's other jobs), the one that
        also hands on the batch's lanes."""
        settings = self.settings
        flags: list[int] = await FINISH.run(
            self.pool,
            FinishKeys(
                self.keys.writes,
                self.keys.queue,
                self.keys.lanes,
                self.keys.wake,
                self.keys.tally(finished_ms),
                *dead_letter.keys(settings.queue_name),
                tuple(piece.keys),
            ),
            FinishArgs(
                int(settings.keep_result_s * 1000),
                tally.KEEP_S,
                settings.failed_jobs_keep,
                int(rest is not None),
                len(rest or ()) // 3,
                (*(rest or ()), *piece.outcomes),
            ),
        )
        return [int(flag) for flag in flags]

    def _reply_key(self, job: _Job) -> str:
        """Where the job's reply goes: its producer's reply list, or a list of its own."""
        reply_to = jobs.reply_to(job.job)
        return self.keys.reply(job.job_id) if reply_to is None else self.keys.replies(reply_to)

    def _outcome(self, job: _Job, started_ms: int, finished_ms: int) -> list[Any]:
        """What ``finish.lua`` takes for one job (see its header)."""
        stored, record, retry_job = b"", "", b""
        if job.verdict != "retried":
            success = job.verdict == "completed"
            result = job.reply if job.error is None else serialize(job.error)
            try:
                stored = result_record(
                    job.job_id,
                    self.settings.queue_name,
                    job.job,
                    job.job_try,
                    success,
                    result,
                    started_ms,
                    finished_ms,
                )
            except Exception as exc:  # its arguments as the job gave them do not encode
                stored = serialize({"s": success, "r": None, "id": job.job_id, "error": str(exc)})
            if not success and job.error is not None:
                error = {"__error__": {"type": type(job.error).__name__, "message": str(job.error)}}
                record, retry_job = dead_letter.entry(
                    job.job_id,
                    {"r": error, "f": job.name, "t": job.job_try, "et": job.job.get("et")},
                    finished_ms,
                    job.job,
                    [c.op_id for c in job.plan.calls if isinstance(c, Call)],
                )
        defer_ms = min(50 * 2**job.job_try, 2000)
        taken = jobs.queue_time(job.job)
        latency = "" if taken is None else tally.bucket(finished_ms - taken)
        reply = job.reply
        if reply and jobs.reply_to(job.job) is not None:
            reply = b"%s %s" % (job.job_id.encode(), reply)
        return [
            job.job_id,
            job.claim,
            job.verdict,
            stored,
            reply,
            defer_ms,
            record,
            retry_job,
            job.lanes,
            latency,
        ]

    async def _report(self, batch: list[_Job], seconds: float) -> None:
        """Metrics per job and write; one log line for the batch, one per job at DEBUG."""
        metrics = self.metrics
        labels = Counter[str]()
        for job in batch:
            counted = Counter[str]()
            for call, result, outcome in zip(
                job.plan.calls, job.results, job.outcomes, strict=False
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
            await asyncio.sleep(0)
            if job.verdict == "retried":
                failure = next((r for r in job.results if isinstance(r, RETRYABLE)), None)
                log.warning("%s %s: storage failed, will retry: %s", job.name, job.job_id, failure)
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


def _name(job: dict[str, Any]) -> str:
    """What logs and metrics call the job: its write job's name, never a producer's text."""
    name = job.get("f")
    return name if isinstance(name, str) and name in jobs.BATCH_JOBS else "invalid"


def _envelope(result: Result) -> envelope.Envelope:
    if isinstance(result, Exception):
        return envelope.failure(result)
    return envelope.success(result)


def _summary(labels: Counter[str]) -> str:
    return ", ".join(f"{n} {label}" for label, n in sorted(labels.items())) or "nothing"

"""What a caller learns when its write's job did not answer in time, or a retry is refused.

Each names its op id (or job id). To learn what became of a write, send it
again under the same op id, which is always safe: a write is applied at most
once per op id, and one that was applied returns its first outcome.
"""

from __future__ import annotations

from store.errors import StorageError


class WriteNotApplied(StorageError):
    """Definite: the write was not applied, and its job will never run."""

    def __init__(self, op_id: str, reason: str) -> None:
        super().__init__(f"write {op_id} was not applied and never will be: {reason}")
        self.op_id = op_id
        self.reason = reason


class DeadlineExceeded(WriteNotApplied):
    """No worker started the write's job before its deadline; it was withdrawn."""

    def __init__(self, op_id: str) -> None:
        super().__init__(op_id, "no worker started it before its deadline")


class NoWorkerAlive(WriteNotApplied):
    """No worker was alive to run the write before its deadline; it was withdrawn."""

    def __init__(self, op_id: str) -> None:
        super().__init__(op_id, "no worker is alive on this queue")


class OutcomeUnknown(StorageError, TimeoutError):
    """Open: the write's job had started, and no outcome came before the caller gave up.

    It may have been applied or may still be; sending it again under the same op
    id tells which (a write that was applied returns its first outcome) and
    applies it at most once.
    """

    def __init__(self, op_id: str, job_id: str) -> None:
        super().__init__(
            f"write {op_id} (job {job_id}) was running when its deadline passed; "
            "its outcome is not known yet"
        )
        self.op_id = op_id
        self.job_id = job_id


class InternalError(StorageError):
    """The worker failed on this write itself (a bug): its neighbours ran on.

    Whether it was applied is not known; sending it again under its op id tells,
    and applies it at most once.
    """

    def __init__(self, op_id: str, message: str) -> None:
        super().__init__(f"the worker failed on write {op_id}: {message}")
        self.op_id = op_id
        self.message = message


class FailedJobNotKept(LookupError):
    """``taskstore retry``: no failed job with that id is kept (or it cannot be retried)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"no retryable failed job {job_id!r} is kept: it may have been retried already, "
            "been let go (FAILED_JOBS_KEEP bounds how many are kept), or never have decoded"
        )
        self.job_id = job_id


class JobAlreadyQueued(RuntimeError):
    """``taskstore retry``: a job with that id is queued or running already."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} is queued or running already")
        self.job_id = job_id

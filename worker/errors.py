"""``from worker.errors import ...``: what a caller can be answered with
(``worker.protocol.errors``)."""

from worker.protocol.errors import (
    DeadlineExceeded,
    NoWorkerAlive,
    OutcomeUnknown,
    WriteNotApplied,
)

__all__ = ["DeadlineExceeded", "NoWorkerAlive", "OutcomeUnknown", "WriteNotApplied"]

"""Logging: plain or JSON lines, with every configured secret masked, and no payloads.

taskstore logs one line per job itself (``taskstore.jobs``: job, id, try,
outcomes, duration), never arguments, data, variables or results. arq's own
per-job lines carry exactly those (its ``→`` line the arguments, its ``←``
line the result), so they are dropped; arq's other lines are kept, through
taskstore's handler only, so each appears once and in the chosen format
under ``taskstore worker`` and ``arq worker.runtime.main.WorkerSettings`` alike.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class SecretFilter(logging.Filter):
    """Replace each secret wherever it appears in a formatted record."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = record.getMessage()
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            for secret in self.secrets:
                text = text.replace(secret, "***")
                if record.exc_text:
                    record.exc_text = record.exc_text.replace(secret, "***")
            record.msg, record.args = text, None
        return True


class NoArqJobLines(logging.Filter):
    """Drop arq's per-job start and finish lines, which show arguments and results."""

    _PAYLOAD_LINES = ("%6.2fs → ", "%6.2fs ← ")

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            record.name == "arq.worker"
            and isinstance(record.msg, str)
            and record.msg.startswith(self._PAYLOAD_LINES)
        )


def configure(level: str, fmt: str, secrets: list[str]) -> None:
    """Send every record, arq's included, through one stderr handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(NoArqJobLines())
    handler.addFilter(SecretFilter(secrets))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ARQ_LOGGERS:
        arq = logging.getLogger(name)
        if not any(isinstance(f, ThroughRoot) for f in arq.filters):
            arq.addFilter(ThroughRoot())


ARQ_LOGGERS = ("arq.worker", "arq.connections", "arq.jobs", "arq.utils")


class ThroughRoot(logging.Filter):
    """Hand arq's records to the root handlers only, then stop them.

    arq's CLI gives the ``arq`` logger a handler of its own, after it has
    looked up ``WorkerSettings``; a record would be printed by it and again by
    ours. A filter on the loggers arq logs with outlasts that configuration.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        root = logging.getLogger()
        if record.levelno >= root.getEffectiveLevel():
            root.handle(record)
        return False

"""``arq worker.main.WorkerSettings``: the worker's arq settings (``worker.runtime.main``).

``WorkerSettings`` is built on first lookup there, so importing this has no
side effect either.
"""

from typing import Any

from worker.runtime import main as _runtime
from worker.runtime.main import worker_settings

__all__ = ["worker_settings"]  # and WorkerSettings, looked up lazily


def __getattr__(name: str) -> Any:
    return getattr(_runtime, name)

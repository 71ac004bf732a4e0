"""A tool running as a task: its outcome, its cancel watch, input from its caller.

The run holds a lease on the task while the tool runs (``store.tasks.leases``),
so the worker fails it if the process running it dies. It stores the tool's
outcome in the task: its result once it returns
(``completed``, a result with ``isError`` included, as SEP-2663 says), the
JSON-RPC error it raised (``failed``). An outcome always lands: one the store
refuses (too large, not JSON) fails the task with an error naming the limit;
a store that fails is tried again under the same op id while the lease is
held, and if it never answers the lease is left to run out, so the sweep
fails the task rather than leave it ``working``. A run given a limit
(``limit_s``: a worker's ``JOB_TIMEOUT_S``) that the tool outlasts stops it and
fails the task, naming the limit. Every poll interval the run
reads the task, so a ``tasks/cancel`` made through any server process stops
it within one. ``elicit`` puts the task in ``input_required`` with one
request and waits on those same reads until ``tasks/update`` has answered it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from mcp.server.context import HandlerResult
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INTERNAL_ERROR
from pydantic import BaseModel

from store import StorageError
from store.tasks import (
    InvalidParams,
    InvalidTransition,
    TaskError,
    TaskNotFound,
    TaskRecord,
    TaskStatus,
    TaskStore,
)
from store.tasks.leases import RunnerLeases

log = logging.getLogger("taskstore.mcp")

_CURRENT: ContextVar[TaskRun | None] = ContextVar("taskstore_task_run", default=None)


class InputDeclined(Exception):
    """The caller declined or cancelled a request for input (``action`` says which)."""

    def __init__(self, action: object) -> None:
        super().__init__(f"the caller did not accept the request for input: {action!r:.40}")
        self.action = action


@dataclass(frozen=True)
class TaskRun:
    store: TaskStore
    leases: RunnerLeases | None
    """None where nothing fails the task if the process running it dies (tests)."""
    task_id: str
    owner_id: str
    poll_s: float
    lease_ms: int = 0
    limit_s: float | None = None
    """How long the tool may run (``JOB_TIMEOUT_S`` on a worker); past it, the task fails."""
    _read: asyncio.Condition = field(default_factory=asyncio.Condition, init=False, compare=False)
    """Notified by the watch at each read of the task, which ``_last`` then holds."""
    _last: list[TaskRecord] = field(default_factory=list, init=False, compare=False)
    _cancelled: list[bool] = field(default_factory=list, init=False, compare=False)
    """Holds True once the watch saw the task cancelled and stopped the tool."""

    async def execute(self, work: Callable[[], Coroutine[Any, Any, HandlerResult]]) -> None:
        """Run ``work`` to its outcome under a lease, stopping it if the task is cancelled."""
        _CURRENT.set(self)
        helpers = []
        if self.leases is not None:
            await self.leases.hold(self.task_id, self.owner_id, self.lease_ms)
            helpers.append(asyncio.create_task(self._renew(self.leases)))
        running: asyncio.Task[HandlerResult] = asyncio.create_task(work())
        helpers.append(asyncio.create_task(self._watch(running)))
        settled = False
        try:
            async with asyncio.timeout(self.limit_s):
                result = await running
        except TimeoutError:
            limit = f"the tool ran past JOB_TIMEOUT_S ({self.limit_s:g} s) and was stopped"
            log.error("task %s: %s", self.task_id, limit)
            settled = await self._settle(
                self.store.fail, {"code": INTERNAL_ERROR, "message": limit}
            )
            raise
        except asyncio.CancelledError:
            if not self._cancelled:
                raise  # the run itself is stopped (a worker shutting down): the task stays
            settled = True  # cancelled through tasks/cancel: the task says so already
        except MCPError as exc:
            error = exc.error.model_dump(mode="json", exclude_none=True)
            settled = await self._settle(self.store.fail, error)
        except Exception as exc:
            log.exception("task %s: the tool raised", self.task_id)
            error = {"code": INTERNAL_ERROR, "message": str(exc)}
            settled = await self._settle(self.store.fail, error)
        else:
            settled = await self._settle(self._complete, _dumped(result))
        finally:
            for helper in helpers:
                helper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await helper
            # An unsettled task keeps its lease until it runs out, and the sweep fails it.
            if self.leases is not None and settled:
                with contextlib.suppress(TaskError, StorageError):
                    await self.leases.release(self.task_id, self.owner_id)

    async def ask(self, requests: list[dict[str, Any]]) -> list[Any]:
        """Wait on ``requests`` in ``input_required``; their answers, in order, once all came."""
        record = await self.store.request_input(self.task_id, self.owner_id, requests)
        keys = list(record.input_requests)
        while not all(key in record.input_responses for key in keys):
            async with self._read:
                await self._read.wait()
                record = self._last[-1]
        answers = [record.input_responses[key] for key in keys]
        await self.store.update_status(self.task_id, self.owner_id, TaskStatus.WORKING)
        return answers

    async def _renew(self, leases: RunnerLeases) -> None:
        while True:
            await asyncio.sleep(self.lease_ms / 3000)
            try:
                await leases.hold(self.task_id, self.owner_id, self.lease_ms)
            except StorageError:
                log.warning("task %s: its lease could not be renewed", self.task_id)

    async def _watch(self, running: asyncio.Task[HandlerResult]) -> None:
        """Read the task every poll interval: stop the tool if it was cancelled, else tell
        ``ask`` what was read."""
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                record = await self.store.get(self.task_id, self.owner_id)
            except TaskNotFound:  # expired or gone: nobody can read the outcome any more
                self._cancelled.append(True)
                running.cancel()
                return
            except TaskError:  # the store failed this once: the tool goes on
                log.warning("task %s: could not read it to watch for a cancel", self.task_id)
                continue
            if record.status is TaskStatus.CANCELLED:
                self._cancelled.append(True)
                running.cancel()
                return
            async with self._read:
                self._last[:] = [record]
                self._read.notify_all()

    async def _complete(self, task_id: str, owner_id: str, result: Any, *, op_id: str) -> Any:
        return await self.store.complete_with_result(
            task_id, owner_id, "completed", result, op_id=op_id
        )

    async def _settle(self, store: Callable[..., Awaitable[Any]], outcome: Any) -> bool:
        """Store the tool's outcome; whether it is settled (stored, or the task went meanwhile).

        An outcome the store refuses is stored as the failure that names why. A
        failing store is tried again, under the same op id so it lands at most
        once, for as long as a lease lasts.
        """
        held_s = self.lease_ms / 1000 if self.leases is not None else RETRY_FOR_S
        patience = asyncio.get_running_loop().time() + held_s
        delay = 0.05
        op_id = f"outcome:{self.task_id}"
        while True:
            try:
                await store(self.task_id, self.owner_id, outcome, op_id=op_id)
                return True
            except (InvalidTransition, TaskNotFound):
                return True  # cancelled or gone while the outcome was on its way: it stays so
            except InvalidParams as exc:  # refused as it is: never storable
                if op_id.startswith("refused:"):
                    log.error("task %s: even the refusal was refused: %s", self.task_id, exc)
                    return False
                log.warning("task %s: the store refused its outcome: %s", self.task_id, exc)
                store, outcome, op_id = self.store.fail, _refusal(exc), f"refused:{self.task_id}"
            except TaskError as exc:
                if asyncio.get_running_loop().time() >= patience:
                    log.error("task %s: its outcome could not be stored: %s", self.task_id, exc)
                    return False
                log.warning("task %s: storing its outcome failed, trying again", self.task_id)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)


RETRY_FOR_S = 5.0
"""How long a run without a lease of its own keeps trying to store its outcome."""


def _refusal(exc: InvalidParams) -> dict[str, Any]:
    """The JSON-RPC error a task fails with when the store refused its tool's outcome."""
    return {
        "code": INTERNAL_ERROR,
        "message": f"the tool's outcome could not be stored: {exc.message}",
        "data": exc.data,
    }


def _dumped(result: HandlerResult) -> dict[str, Any]:
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return dict(result or {})


def current() -> TaskRun | None:
    """The task the calling tool runs as, if it runs as one."""
    return _CURRENT.get()


async def elicit(message: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Ask the task's caller for input (a form) and wait; the content of the accepted answer.

    Raises ``InputDeclined`` when the caller declines or cancels, and
    ``RuntimeError`` outside a tool that runs as a task.
    """
    run = current()
    if run is None:
        raise RuntimeError("elicit works inside a tool that runs as a task")
    request = {
        "method": "elicitation/create",
        "params": {"mode": "form", "message": message, "requestedSchema": schema},
    }
    [answer] = await run.ask([request])
    if not isinstance(answer, dict) or answer.get("action") != "accept":
        raise InputDeclined(answer.get("action") if isinstance(answer, dict) else answer)
    content = answer.get("content")
    return content if isinstance(content, dict) else {}

"""``TaskStore``: the MCP task lifecycle on any storage backend.

Every mutation is read -> validate -> compare-and-swap through
``store.cas.swap``, retried on conflict up to ``StoreConfig.max_retries``
times. The owner is half of the storage key, so one owner cannot even name
another's task: a mismatch is "not found".
With ``op_id`` (the worker passes its job id) a mutation that already
happened before a worker died is recognised and not applied again;
``sent_at_ms`` is when that attempt was sent, which ``withdraw`` fences.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from store.backend import StorageBackend, VersionedRecord
from store.cas import Write, swap
from store.clock import Clock, wall_clock_ms
from store.errors import (
    BackendError,
    CapacityExceeded,
    InvalidArgument,
    InvalidKey,
    NotFound,
    OpIdReused,
    OpWithdrawn,
    StorageError,
    VersionConflict,
)
from store.keys import make_key, validate_id
from store.tasks.config import SecurityConfig, StoreConfig
from store.tasks.errors import (
    ConcurrentModification,
    InvalidParams,
    InvalidTransition,
    NotReady,
    ResourceExhausted,
    StoreError,
    TaskError,
    TaskExpired,
    TaskNotFound,
)
from store.tasks.limits import check_json_value, check_result, merge_variables
from store.tasks.record import TaskRecord, ms_to_datetime
from store.tasks.status import TaskStatus, can_transition, suggested_action

ANONYMOUS_OWNER = "local"
_TASK_IDS = uuid.UUID("6f1c1d1e-6a43-4a8c-9e0f-7a6b1f2c3d4e")
_MAX_METHOD_CHARS = 256

Change = Callable[[TaskRecord, int], TaskRecord]


@dataclass(frozen=True)
class TaskPage:
    tasks: list[TaskRecord] = field(default_factory=list)
    next_cursor: str | None = None


class TaskStore:
    def __init__(
        self,
        backend: StorageBackend,
        config: StoreConfig | None = None,
        security: SecurityConfig | None = None,
        *,
        clock: Clock = wall_clock_ms,
    ) -> None:
        self.backend = backend
        self.config = config or StoreConfig()
        self.security = security or SecurityConfig()
        self._clock = clock

    # -- reads ----------------------------------------------------------------

    async def get(self, task_id: str, owner_id: str) -> TaskRecord:
        return (await self._read(task_id, self._owner(owner_id)))[0]

    async def get_result(self, task_id: str, owner_id: str) -> Any:
        """The result of a terminal task; ``NotReady`` before that or without one."""
        record = await self.get(task_id, owner_id)
        if not record.status.terminal or record.result is None:
            raise NotReady(task_id, record.status.value)
        return record.result

    async def list(self, owner_id: str, cursor: str | None = None, limit: int = 50) -> TaskPage:
        """One page of the owner's tasks, newest first, one backend page per call."""
        owner = self._owner(owner_id)
        with _storage_errors(None):
            page = await self.backend.list_page(owner, cursor, limit)
        tasks = []
        for _, record in page.items:
            # Raw records stored under the same owner are not tasks: leave them out.
            task = _parse(record.data)
            if task is not None and task.owner_id == owner:
                tasks.append(task)
        return TaskPage(tasks, page.next_cursor)

    # -- mutations ------------------------------------------------------------

    async def create(
        self,
        owner_id: str,
        request_method: str,
        ttl_ms: int | None = None,
        *,
        op_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> TaskRecord:
        owner = self._owner(owner_id)
        if not isinstance(request_method, str) or not 0 < len(request_method) <= _MAX_METHOD_CHARS:
            raise InvalidParams("request_method must be a non-empty string of at most 256 chars")
        ttl = self._ttl(ttl_ms)
        # Under an op id the task id is derived from it, so a re-run creates nothing new.
        task_id = str(uuid.uuid5(_TASK_IDS, f"{owner}\0{op_id}") if op_id else uuid.uuid4())
        now = self._clock()
        record = TaskRecord.started(
            task_id, owner, request_method, now, ttl, self.config.poll_interval_ms
        )
        with _storage_errors(task_id):
            await self.backend.put(
                make_key(owner, task_id),
                record.to_bytes(),
                expires_at_ms=record.expires_at_ms,
                created_at_ms=now,
                op_id=op_id,
                max_records_per_owner=self.security.max_tasks_per_owner,
                op_name="create_task",
                sent_at_ms=sent_at_ms,
            )
        return await self.get(task_id, owner) if op_id else record

    async def update_status(
        self,
        task_id: str,
        owner_id: str,
        status: TaskStatus | str,
        status_message: str | None = None,
        *,
        op_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> TaskRecord:
        target = _status(status)
        message = _message(status_message)

        def change(record: TaskRecord, now: int) -> TaskRecord:
            return _moved(record, target, message, now)

        return await self._mutate(task_id, owner_id, change, op_id, "update_status", sent_at_ms)

    async def set_variables(
        self,
        task_id: str,
        owner_id: str,
        variables: dict[str, Any],
        *,
        op_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> TaskRecord:
        def change(record: TaskRecord, now: int) -> TaskRecord:
            _still_open(record)
            merged = merge_variables(record.variables, variables, self.config)
            return _touched(record, now, variables=merged)

        return await self._mutate(task_id, owner_id, change, op_id, "set_variables", sent_at_ms)

    async def set_result(
        self,
        task_id: str,
        owner_id: str,
        result: Any,
        *,
        op_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> TaskRecord:
        check_result("result", result, self.config)

        def change(record: TaskRecord, now: int) -> TaskRecord:
            _still_open(record)
            return _touched(record, now, result=result)

        return await self._mutate(task_id, owner_id, change, op_id, "set_result", sent_at_ms)

    async def complete_with_result(
        self,
        task_id: str,
        owner_id: str,
        status: TaskStatus | str,
        result: Any,
        status_message: str | None = None,
        *,
        op_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> TaskRecord:
        """Move to a terminal status and store the result in one write: both or neither."""
        target = _status(status)
        if not target.terminal:
            raise InvalidParams(f"complete_with_result needs a terminal status, not {target.value}")
        message = _message(status_message)
        check_result("result", result, self.config)

        def change(record: TaskRecord, now: int) -> TaskRecord:
            moved = _moved(record, target, message, now)
            return moved.model_copy(update={"result": result})

        return await self._mutate(
            task_id, owner_id, change, op_id, "complete_with_result", sent_at_ms
        )

    async def fail(
        self,
        task_id: str,
        owner_id: str,
        error: dict[str, Any],
        status_message: str | None = None,
        *,
        op_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> TaskRecord:
        """Move to ``failed`` with the JSON-RPC ``error`` (``code``, ``message``, ``data``?)."""
        if (
            not isinstance(error, dict)
            or not isinstance(error.get("code"), int)
            or not isinstance(error.get("message"), str)
            or not set(error) <= {"code", "message", "data"}
        ):
            raise InvalidParams("error must be a JSON-RPC error: {code: int, message: str, data?}")
        check_result("error", error, self.config)
        message = _message(status_message)

        def change(record: TaskRecord, now: int) -> TaskRecord:
            moved = _moved(record, TaskStatus.FAILED, message, now)
            return moved.model_copy(update={"error": error})

        return await self._mutate(task_id, owner_id, change, op_id, "fail", sent_at_ms)

    async def request_input(
        self,
        task_id: str,
        owner_id: str,
        requests: Sequence[dict[str, Any]],
        status_message: str | None = None,
        *,
        op_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> TaskRecord:
        """Move to ``input_required`` waiting on ``requests``, each under a key minted here.

        Keys are new UUIDs, so none is ever reused within the task; the returned
        record's ``input_requests`` maps them to the requests, in order.
        """
        if not isinstance(requests, list | tuple) or not requests:
            raise InvalidParams("requests must be a non-empty list of server-to-client requests")
        check_json_value("requests", [*requests], self.config)
        message = _message(status_message)
        keyed = {uuid.uuid4().hex: request for request in requests}

        def change(record: TaskRecord, now: int) -> TaskRecord:
            moved = _moved(record, TaskStatus.INPUT_REQUIRED, message, now)
            return moved.model_copy(update={"input_requests": keyed, "input_responses": {}})

        return await self._mutate(task_id, owner_id, change, op_id, "request_input", sent_at_ms)

    async def respond(
        self,
        task_id: str,
        owner_id: str,
        responses: dict[str, Any],
        *,
        op_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> TaskRecord:
        """Keep the answers to requests still outstanding; ignore the rest.

        Answers to unknown or already answered keys, or to a task no longer
        waiting for input, change nothing and write nothing; partial answers
        are kept until the others come.
        """
        if not isinstance(responses, dict) or not all(isinstance(k, str) for k in responses):
            raise InvalidParams("responses must be an object of answers by request key")
        check_json_value("responses", responses, self.config)

        def change(record: TaskRecord, now: int) -> TaskRecord:
            waiting = record.status is TaskStatus.INPUT_REQUIRED
            new = {
                key: answer
                for key, answer in responses.items()
                if waiting and key in record.input_requests and key not in record.input_responses
            }
            if not new:
                raise Unchanged
            return _touched(record, now, input_responses={**record.input_responses, **new})

        return await self._mutate(task_id, owner_id, change, op_id, "respond", sent_at_ms)

    async def cancel(
        self,
        task_id: str,
        owner_id: str,
        *,
        op_id: str | None = None,
        sent_at_ms: int | None = None,
    ) -> TaskRecord:
        def change(record: TaskRecord, now: int) -> TaskRecord:
            return _moved(record, TaskStatus.CANCELLED, None, now)

        return await self._mutate(task_id, owner_id, change, op_id, "cancel_task", sent_at_ms)

    async def withdraw(self, owner_id: str, op_id: str, sent_at_ms: int) -> bool:
        """``StorageBackend.withdraw_op`` for a task operation's op id (the owner's)."""
        owner = self._owner(owner_id)
        with _storage_errors(None):
            return await self.backend.withdraw_op(owner, op_id, sent_at_ms)

    async def cleanup_expired(self) -> int:
        with _storage_errors(None):
            return await self.backend.cleanup_expired()

    # -- internals ------------------------------------------------------------

    async def _mutate(
        self,
        task_id: str,
        owner_id: str,
        change: Change,
        op_id: str | None,
        op_name: str,
        sent_at_ms: int | None,
    ) -> TaskRecord:
        """Read, change and compare-and-swap the task (``store.cas.swap``), retried on conflict."""
        owner = self._owner(owner_id)
        key = _key(owner, task_id)
        attempts = self.config.max_retries + 1
        seen: list[TaskRecord] = []  # the record each attempt changed, the last one last

        def write(stored: VersionedRecord) -> Write | None:
            record = self._parsed(stored, task_id, owner)
            seen.append(record)
            try:
                updated = change(record, self._clock())
            except Unchanged:
                return None
            seen.append(updated)
            return Write(updated.to_bytes(), record.expires_at_ms, op_id, op_name, sent_at_ms)

        try:
            with _storage_errors(task_id):
                stored, version = await swap(self.backend, key, write, max_attempts=attempts)
        except VersionConflict as conflict:
            if conflict.actual == 0:  # deleted or expired under us
                raise TaskNotFound(task_id) from None
            raise ConcurrentModification(task_id, attempts) from None
        except TaskError:
            if op_id is not None and seen and await self._applied(key, task_id, op_id):
                return seen[-1]  # an op applied before its worker died, run again
            raise
        if version is None:
            return seen[-1]
        if version != stored.version + 1:
            # The op id had already written: this is a re-run of an applied op.
            return (await self._read(task_id, owner))[0]
        return seen[-1]

    async def _applied(self, key: str, task_id: str, op_id: str) -> bool:
        with _storage_errors(task_id):
            return await self.backend.applied_version(key, op_id) is not None

    async def _read(self, task_id: str, owner: str) -> tuple[TaskRecord, int]:
        key = _key(owner, task_id)
        with _storage_errors(task_id):
            stored = await self.backend.get(key)
        return self._parsed(stored, task_id, owner), stored.version

    def _parsed(self, stored: VersionedRecord, task_id: str, owner: str) -> TaskRecord:
        """The owner's live task in ``stored``; ``TaskNotFound`` or ``TaskExpired`` if it is not."""
        record = _parse(stored.data)
        # Raw data, or another owner's task copied here, is no task of this owner's.
        if record is None or record.owner_id != owner or record.task_id != task_id:
            raise TaskNotFound(task_id)
        expires = record.expires_at_ms
        if expires is not None and expires <= self._clock():
            raise TaskExpired(task_id)
        return record

    def _owner(self, owner_id: object) -> str:
        if owner_id in ("", ANONYMOUS_OWNER, None):
            if not self.security.allow_anonymous:
                raise InvalidParams("anonymous owners are not allowed", ownerId=owner_id)
            return ANONYMOUS_OWNER
        try:
            return validate_id(owner_id, "owner id")
        except InvalidKey as exc:
            raise InvalidParams(f"invalid owner id: {exc.reason}") from None

    def _ttl(self, ttl_ms: object) -> int | None:
        if ttl_ms is None:
            return self.config.default_ttl_ms
        if not isinstance(ttl_ms, int) or isinstance(ttl_ms, bool) or ttl_ms <= 0:
            raise InvalidParams(f"ttl_ms must be a positive int of milliseconds: {ttl_ms!r:.40}")
        if self.config.max_ttl_ms is not None and ttl_ms > self.config.max_ttl_ms:
            raise InvalidParams(
                f"ttl_ms {ttl_ms} is above the maximum of {self.config.max_ttl_ms}",
                limit=self.config.max_ttl_ms,
                actual=ttl_ms,
            )
        return ttl_ms


class Unchanged(Exception):
    """Raised by a change that finds nothing to do: the record stays as it is, unwritten."""


def _key(owner: str, task_id: object) -> str:
    try:
        return make_key(owner, task_id)  # type: ignore[arg-type]
    except InvalidKey:
        raise TaskNotFound(str(task_id)[:300]) from None


def _status(value: object) -> TaskStatus:
    if isinstance(value, str) and value in TaskStatus._value2member_map_:
        return TaskStatus(value)
    raise InvalidParams(f"unknown task status {value!r:.40}")


def _message(value: object) -> str | None:
    if value is not None and (not isinstance(value, str) or len(value) > 4096):
        raise InvalidParams("status_message must be a string of at most 4096 chars")
    return value


def _still_open(record: TaskRecord) -> None:
    if record.status.terminal:
        raise InvalidTransition(
            record.task_id, record.status.value, None, suggested_action(record.status, None)
        )


def _moved(record: TaskRecord, target: TaskStatus, message: str | None, now: int) -> TaskRecord:
    if not can_transition(record.status, target):
        raise InvalidTransition(
            record.task_id,
            record.status.value,
            target.value,
            suggested_action(record.status, target),
        )
    task = record.task.model_copy(
        update={"status": target, "status_message": message, "last_updated_at": ms_to_datetime(now)}
    )
    if record.status is TaskStatus.INPUT_REQUIRED:
        # What it waited for is settled: answered (resuming) or moot (terminal).
        return record.model_copy(update={"task": task, "input_requests": {}, "input_responses": {}})
    return record.model_copy(update={"task": task})


def _touched(record: TaskRecord, now: int, **changes: Any) -> TaskRecord:
    task = record.task.model_copy(update={"last_updated_at": ms_to_datetime(now)})
    return record.model_copy(update={"task": task, **changes})


@contextmanager
def _storage_errors(task_id: str | None) -> Iterator[None]:
    """Storage errors as task errors; the storage error stays as ``__cause__``."""
    try:
        yield
    except NotFound:
        raise TaskNotFound(task_id or "") from None
    except CapacityExceeded as exc:
        raise ResourceExhausted(exc.owner_id, exc.limit) from exc
    except InvalidKey as exc:
        raise TaskNotFound(task_id or "") if task_id else InvalidParams(str(exc)) from exc
    except InvalidArgument as exc:
        raise InvalidParams(str(exc)) from exc
    except (VersionConflict, OpIdReused, OpWithdrawn):
        raise
    except (BackendError, StorageError) as exc:
        raise StoreError(f"storage failed: {exc}") from exc


def _parse(data: bytes) -> TaskRecord | None:
    """The task record in ``data``; None for raw data stored through the backend directly."""
    try:
        return TaskRecord.from_bytes(data)
    except ValidationError:
        return None

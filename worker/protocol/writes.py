"""Each write the worker executes, declared once.

A declaration is a stub whose signature is the client's call. From it follow
the arq job function of the same name, ``TaskStoreClient.<name>`` and
``enqueue_<name>`` (typed by the stub), the argument binding inside the job,
and the conversion of the reply (the stub's return annotation). The worker
runs a write by calling the store method ``target.method`` with the stub's
arguments by name, the op id and when its job was sent; adding a parameter to
a write is one edit here plus the store method itself.

``op_id`` and ``coalesce`` are the caller's options (``CALL_OPTIONS``): they
never travel among a job's arguments.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Generic, Literal, ParamSpec, TypeVar, get_type_hints

from pydantic import TypeAdapter

from store import BackendError, BatchOp, InvalidArgument, StorageBackend
from store.checks import check_version
from store.keys import parse_key
from store.tasks import StoreError, TaskRecord, TaskStatus, TaskStore

P = ParamSpec("P")
T = TypeVar("T")

CALL_OPTIONS = ("op_id", "coalesce")

MAX_OPS_PER_JOB = 10_000
"""The most writes one ``ops`` or ``apply_batch`` job carries."""
MAX_JOB_BYTES = 8 * 1024 * 1024
"""The largest job the enqueue script takes: a 4 MiB record's put fits, base64 and all."""
MAX_WAIT_MS = 86_400_000
"""The longest a producer may say it waits for a job (``wait_ms``): a day."""
BATCH_FIELDS = frozenset(f.name for f in fields(BatchOp)) - {"op_id", "sent_at_ms"}
"""What an ``apply_batch`` item may hold: the job gives the op id and the send time."""

RETRYABLE = (BackendError, StoreError)
"""Failures of the server, not of the write: a retry under the same op id may succeed."""

Arguments = Mapping[str, Any]


@dataclass(frozen=True)
class Stores:
    backend: StorageBackend
    tasks: TaskStore


@dataclass(frozen=True, eq=False)
class Write(Generic[P, T]):
    """One write operation: its call signature and how the worker runs it."""

    stub: Callable[P, Awaitable[T]]
    target: Literal["backend", "tasks"]
    method: str
    scope: Callable[[Arguments], str]
    """What a caller's op id is private to: the key, the task or the owner."""
    lane: Callable[[Arguments], str | None]
    """The store key whose writes keep their order inside one job (None: a new key)."""
    batch_op: Callable[[Arguments, str, int | None], BatchOp] | None
    """A put or CAS runs pipelined, as this op of the backend's ``apply_batch``."""
    name: str = field(init=False)
    signature: inspect.Signature = field(init=False)
    returns: TypeAdapter[T] = field(init=False)

    def __post_init__(self) -> None:
        full = inspect.signature(self.stub)
        params = [p for p in full.parameters.values() if p.name not in CALL_OPTIONS]
        set_ = object.__setattr__
        set_(self, "name", self.stub.__name__)
        set_(self, "signature", full.replace(parameters=params))
        set_(self, "returns", TypeAdapter(get_type_hints(self.stub)["return"]))

    def bind(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments by name with defaults applied; ``InvalidArgument`` if they do not fit."""
        try:
            bound = self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise InvalidArgument(f"{self.name}: {exc}") from None
        bound.apply_defaults()
        return dict(bound.arguments)

    async def run(
        self, stores: Stores, args: Arguments, op_id: str, sent_at_ms: int | None
    ) -> object:
        """Call the store method; the result as JSON for the reply."""
        method = getattr(getattr(stores, self.target), self.method)
        outcome = await method(**args, op_id=op_id, sent_at_ms=sent_at_ms)
        return self.returns.dump_python(outcome, mode="json")

    async def withdraw(self, stores: Stores, args: Arguments, op_id: str, sent_at_ms: int) -> bool:
        """``withdraw_op`` for this write's op id, under the owner the store keeps it by."""
        if self.target == "backend":
            owner_id, _ = parse_key(args["key"])
            return await stores.backend.withdraw_op(owner_id, op_id, sent_at_ms)
        return await stores.tasks.withdraw(args["owner_id"], op_id, sent_at_ms)

    async def settle(
        self,
        stores: Stores,
        args: Arguments,
        op_id: str,
        sent_at_ms: int,
        not_applied: Exception,
    ) -> object:
        """The outcome of an attempt given up on (its caller's deadline passed): its op id
        withdrawn in the store, so that no copy of the attempt ever applies, and
        ``not_applied`` raised; or, when an outcome is kept, that outcome, replayed."""
        if await self.withdraw(stores, args, op_id, sent_at_ms):
            raise not_applied
        return await self.run(stores, args, op_id, sent_at_ms)

    def decode(self, value: object) -> T:
        """The reply's value as the type the stub returns."""
        return self.returns.validate_python(value)


def write(
    target: Literal["backend", "tasks"],
    method: str | None = None,
    *,
    scope: Callable[[Arguments], str],
    lane: Callable[[Arguments], str | None],
    batch_op: Callable[[Arguments, str, int | None], BatchOp] | None = None,
) -> Callable[[Callable[P, Awaitable[T]]], Write[P, T]]:
    def declare(stub: Callable[P, Awaitable[T]]) -> Write[P, T]:
        return Write(stub, target, method or stub.__name__, scope, lane, batch_op)

    return declare


def _key(args: Arguments) -> str:
    return str(args["key"])


def _task(args: Arguments) -> str:
    return f"{args['owner_id']}\0{args['task_id']}"


def _task_key(args: Arguments) -> str:
    return f"{args['owner_id']}:{args['task_id']}"


def _owner(args: Arguments) -> str:
    return str(args["owner_id"])


def _new_key(args: Arguments) -> None:
    return None


def _put_op(args: Arguments, op_id: str, sent_at_ms: int | None) -> BatchOp:
    return BatchOp(**args, op_id=op_id, sent_at_ms=sent_at_ms)


def _cas_op(args: Arguments, op_id: str, sent_at_ms: int | None) -> BatchOp:
    # In a batch a missing expected version means a put: check it is a version first.
    version = check_version(args["expected_version"])
    return BatchOp(**{**args, "expected_version": version}, op_id=op_id, sent_at_ms=sent_at_ms)


_by_key: dict[str, Any] = {"scope": _key, "lane": _key}
_by_task: dict[str, Any] = {"scope": _task, "lane": _task_key}


@write("backend", **_by_key, batch_op=_put_op)
async def put(
    key: str,
    data: bytes,
    *,
    expires_at_ms: int | None = None,
    created_at_ms: int | None = None,
    max_records_per_owner: int | None = None,
    op_id: str | None = None,
    coalesce: bool = True,
) -> int:
    """Create (version 1) or overwrite (version + 1); the new version."""
    ...


@write("backend", **_by_key, batch_op=_cas_op)
async def put_if_version(
    key: str,
    data: bytes,
    expected_version: int,
    *,
    expires_at_ms: int | None = None,
    created_at_ms: int | None = None,
    op_id: str | None = None,
    coalesce: bool = True,
) -> int:
    """Write only if the live version is ``expected_version``, else ``VersionConflict``."""
    ...


@write("backend", **_by_key)
async def delete(key: str, *, op_id: str | None = None, coalesce: bool = True) -> bool:
    """Remove the record; True if a live one was removed."""
    ...


@write("tasks", "create", scope=_owner, lane=_new_key)
async def create_task(
    owner_id: str,
    request_method: str,
    ttl_ms: int | None = None,
    *,
    op_id: str | None = None,
    coalesce: bool = True,
) -> TaskRecord:
    """A new task in ``working``."""
    ...


@write("tasks", **_by_task)
async def update_status(
    task_id: str,
    owner_id: str,
    status: TaskStatus | str,
    status_message: str | None = None,
    *,
    op_id: str | None = None,
    coalesce: bool = True,
) -> TaskRecord:
    """Move the task to ``status`` if the state machine allows it."""
    ...


@write("tasks", **_by_task)
async def set_variables(
    task_id: str,
    owner_id: str,
    variables: dict[str, Any],
    *,
    op_id: str | None = None,
    coalesce: bool = True,
) -> TaskRecord:
    """Merge ``variables`` into the task's."""
    ...


@write("tasks", **_by_task)
async def set_result(
    task_id: str, owner_id: str, result: Any, *, op_id: str | None = None, coalesce: bool = True
) -> TaskRecord:
    """Store a result without changing the status."""
    ...


@write("tasks", **_by_task)
async def complete_with_result(
    task_id: str,
    owner_id: str,
    status: TaskStatus | str,
    result: Any,
    status_message: str | None = None,
    *,
    op_id: str | None = None,
    coalesce: bool = True,
) -> TaskRecord:
    """Store the result and move to a terminal status in one write."""
    ...


@write("tasks", "cancel", **_by_task)
async def cancel_task(
    task_id: str, owner_id: str, *, op_id: str | None = None, coalesce: bool = True
) -> TaskRecord:
    """Cancel a task that is not terminal yet."""
    ...


def batch_write(item: Mapping[str, Any]) -> tuple[Write[..., int], dict[str, Any]]:
    """An ``apply_batch`` item (``BatchOp`` fields) as the put or CAS it is, arguments bound.

    A CAS never creates a key, so a capacity bound given with one is dropped.
    """
    args = dict(item)
    write: Write[..., int]
    if args.get("expected_version") is None:
        args.pop("expected_version", None)
        write = put
    else:
        args.pop("max_records_per_owner", None)
        write = put_if_version
    return write, write.bind((), args)


WRITES: dict[str, Write[..., Any]] = {
    w.name: w
    for w in (
        put,
        put_if_version,
        delete,
        create_task,
        update_status,
        set_variables,
        set_result,
        complete_with_result,
        cancel_task,
    )
}


def lua_constants() -> str:
    """What the queue's scripts know of the writes (``_jobs.lua``), from their declarations:
    for each write, the argument naming its owner (``key`` or ``owner_id``) and its
    position; and the limits the enqueue script enforces."""
    owners = []
    for write in WRITES.values():
        names = list(write.signature.parameters)
        name = "key" if "key" in names else "owner_id"
        owners.append(f"{write.name} = {{'{name}', {names.index(name) + 1}}}")
    return (
        f"local WRITE_OWNERS = {{{', '.join(owners)}}}\n"
        f"local MAX_JOB_BYTES = {MAX_JOB_BYTES}\n"
        f"local MAX_WAIT_MS = {MAX_WAIT_MS}\n"
    )

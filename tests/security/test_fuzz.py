"""Adversarial arguments through the client (and its worker) and directly on the stores.

Each call either succeeds or fails with a typed error (``StorageError`` or
``TaskError``, never ``BackendError``: bad input is not a server failure);
the worker keeps serving; and no key of the store changes except those of the
one owner the call named, when that owner id is valid.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from store import BackendError, StorageError, make_key
from store.keys import validate_id
from store.tasks import StoreError, TaskError
from tests.harness import nested
from tests.security.conftest import keyspace
from worker.producer.client import TaskStoreClient
from worker.protocol.settings import Settings

MIB = 1024 * 1024
ALLOWED = (StorageError, TaskError)

special = st.sampled_from([":", "{", "}", "\x00", "\n", "\x7f", "\u2028", "*", " ", "é"])
ids = st.one_of(
    st.text(alphabet=st.one_of(special, st.characters()), max_size=20),
    st.just("x" * 10_000),
    st.sampled_from(["", "{owner}", "a:b", "o}", "ünï", "owner "]),
    st.integers(),
    st.none(),
    st.binary(max_size=8),
)
data = st.one_of(
    st.just(b""),
    st.binary(max_size=64),
    st.just(b"\x00" * (5 * MIB)),
    st.text(max_size=8),
    st.integers(),
    st.none(),
)
versions = st.one_of(
    st.sampled_from([0, -1, 1, 2, 2**63, 10**30]),
    st.integers(),
    st.sampled_from(["1", "", "NaN", 1.5, True, None]),
)


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=8,
)
variables = st.one_of(
    st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    st.just({"deep": nested(5000)}),
    st.just({"huge": "x" * (2 * MIB)}),
    st.sampled_from([{"nan": float("nan")}, {"set": {1, 2}}, {"bytes": b"x"}, {1: "key"}]),
    st.sampled_from([[], "not a dict", None, 42]),
)
statuses = st.one_of(
    st.sampled_from(["working", "input_required", "completed", "cancelled", "WORKING", ""]),
    st.integers(),
)


class Real:
    """Stands for the owner or id of a live task made for the example, so arguments reach one."""

    def __repr__(self) -> str:
        return "REAL"


REAL = Real()
# Mostly the live task's, so the other arguments are what gets judged.
owners_or_real = st.one_of(st.just(REAL), st.just(REAL), st.just(REAL), ids)
tasks_or_real = owners_or_real


@dataclass(frozen=True)
class Target:
    client: TaskStoreClient
    direct: bool  # on the client's in-process stores rather than through the worker
    owner: str
    task: str

    def backend(self) -> Any:
        return self.client.stores.backend if self.direct else self.client

    def tasks(self, method: str) -> Any:
        renamed = {"create_task": "create", "cancel_task": "cancel", "list_tasks": "list"}
        if self.direct:
            return getattr(self.client.stores.tasks, renamed.get(method, method))
        return getattr(self.client, method)

    def owner_of(self, value: object) -> object:
        return self.owner if value is REAL else value

    def task_of(self, value: object) -> object:
        return self.task if value is REAL else value

    def key(self, owner: object, task: object) -> str:
        return f"{self.owner_of(owner)}:{self.task_of(task)}"


Call = Callable[[Target, tuple[Any, ...]], Awaitable[Any]]
OPS: dict[str, tuple[st.SearchStrategy[tuple[Any, ...]], Call]] = {
    "put": (
        st.tuples(owners_or_real, tasks_or_real, data),
        lambda t, a: t.backend().put(t.key(a[0], a[1]), a[2]),
    ),
    "put_if_version": (
        st.tuples(owners_or_real, tasks_or_real, data, versions),
        lambda t, a: t.backend().put_if_version(t.key(a[0], a[1]), a[2], a[3]),
    ),
    "raw_key_put": (st.tuples(ids, data), lambda t, a: t.backend().put(a[0], a[1])),
    "delete": (
        st.tuples(owners_or_real, tasks_or_real),
        lambda t, a: t.backend().delete(t.key(a[0], a[1])),
    ),
    "create_task": (
        st.tuples(owners_or_real, st.one_of(st.just("tools/call"), ids), versions),
        lambda t, a: t.tasks("create_task")(t.owner_of(a[0]), a[1], a[2]),
    ),
    "set_variables": (
        st.tuples(owners_or_real, tasks_or_real, variables),
        lambda t, a: t.tasks("set_variables")(t.task_of(a[1]), t.owner_of(a[0]), a[2]),
    ),
    "update_status": (
        st.tuples(owners_or_real, tasks_or_real, statuses),
        lambda t, a: t.tasks("update_status")(t.task_of(a[1]), t.owner_of(a[0]), a[2]),
    ),
    "complete_with_result": (
        st.tuples(owners_or_real, tasks_or_real, statuses, variables),
        lambda t, a: t.tasks("complete_with_result")(t.task_of(a[1]), t.owner_of(a[0]), a[2], a[3]),
    ),
    "list_tasks": (
        st.tuples(owners_or_real),
        lambda t, a: t.tasks("list_tasks")(t.owner_of(a[0])),
    ),
}


def _owner_named(target: Target, name: str, args: tuple[Any, ...]) -> object:
    """The owner id a call names (for a raw key, the part before its first colon)."""
    if name == "raw_key_put":
        return args[0].split(":", 1)[0] if isinstance(args[0], str) else None
    owner = target.owner_of(args[0])
    return str(owner) if name in ("put", "put_if_version", "delete") else owner


def _owner_keys(prefix: str, owner: object) -> Callable[[bytes], bool]:
    """Keys a call naming ``owner`` may change: that owner's (if the id is valid) and ``due``."""
    try:
        valid = validate_id(owner, "owner id")
    except StorageError:
        return lambda key: False
    own = f"{prefix}:{{{valid}}}:".encode()
    return lambda key: key.startswith(own) or key == f"{prefix}:due".encode()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=st.sampled_from(sorted(OPS)), direct=st.booleans(), data=st.data())
async def test_adversarial_arguments_fail_typed_and_touch_no_other_owner(
    fuzz_client: TaskStoreClient,
    fuzz_settings: Settings,
    name: str,
    direct: bool,
    data: st.DataObject,
) -> None:
    arguments, call = OPS[name]
    args = data.draw(arguments)
    prefix = fuzz_settings.key_prefix
    real = await fuzz_client.create_task("fuzz-real", "tools/call")
    target = Target(fuzz_client, direct, real.owner_id, real.task_id)
    redis = Redis.from_url(fuzz_settings.queue_url)
    try:
        before = await keyspace(redis, prefix)
        refusal: Exception | None = None
        try:
            await call(target, args)
        except ALLOWED as exc:
            refusal = exc
        event(f"{name}: {type(refusal).__name__ if refusal else 'ok'}")
        # Bad input is refused as such, never as a failure of the server.
        assert not isinstance(refusal, BackendError | StoreError), refusal
        after = await keyspace(redis, prefix)
        changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        may_change = _owner_keys(prefix, _owner_named(target, name, args))
        assert all(may_change(k) for k in changed), (name, sorted(changed)[:5])
        # The worker still serves.
        probe = make_key("probe", uuid.uuid4().hex)
        assert await fuzz_client.put(probe, b"alive") == 1
        await fuzz_client.delete(probe)
    finally:
        await redis.aclose()

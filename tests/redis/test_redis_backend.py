"""Behaviour of RedisBackend beyond the contract: concurrency, sweeps, reaping, errors."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis, RedisCluster
from redis.crc import key_slot

from store import (
    BackendError,
    InvalidArgument,
    InvalidKey,
    NotFound,
    RecordTooLarge,
    VersionConflict,
    VersionedRecord,
    make_key,
    make_prefix,
)
from store.redis import RedisBackend
from store.redis import scripts as store_scripts
from store.redis.keyschema import KeySchema
from store.redis.lua import Script
from tests.harness import Harness, cas_increment, server_ms, sleep_ms, unique
from tests.processes import dies_with_parent, reaped
from tests.redis.conftest import redis_backend
from tests.servers import LocalCluster, RedisProcess, free_ports
from worker.protocol import scripts as worker_scripts
from worker.protocol.keys import QueueKeys, job_keys

ROOT = Path(__file__).resolve().parents[2]


async def test_concurrent_cas_increments_lose_no_update(server: Harness) -> None:
    key = make_key(unique(), "counter")
    await server.backend.put(key, b"0")

    async def worker() -> None:
        for _ in range(50):
            await cas_increment(server.backend, key)

    await asyncio.gather(*(worker() for _ in range(32)))
    assert await server.backend.get(key) == VersionedRecord(b"1600", 1601)


async def test_cas_increments_from_two_processes_lose_no_update(
    server: Harness, embedded_dir: Path, redis_url: str
) -> None:
    backend = redis_backend(server)
    key = make_key(unique(), "counter")
    await backend.put(key, b"0")
    url = {"redis": redis_url, "embedded": "embedded"}.get(server.kind)
    if url is None:
        url = _cluster_url(backend)
    args = [url, backend.keys.prefix, key, "16", "50", str(embedded_dir)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.redis.increment", *args, env=env,
        preexec_fn=dies_with_parent(),
    )  # fmt: skip

    async def worker() -> None:
        for _ in range(50):
            await cas_increment(backend, key)

    try:
        await asyncio.gather(*(worker() for _ in range(16)))
        assert await asyncio.wait_for(other.wait(), 60) == 0
    finally:
        await reaped(other)
    assert await backend.get(key) == VersionedRecord(b"1600", 1601)


def _cluster_url(backend: RedisBackend) -> str:
    node = backend.client.get_primaries()[0]  # type: ignore[union-attr]
    return f"redis+cluster://{node.host}:{node.port}"


async def test_cleanup_removes_exactly_the_expired_thousand_of_ten_thousand(
    server: Harness,
) -> None:
    backend = redis_backend(server)
    owners = [unique() for _ in range(20)]
    keep = [make_key(owners[i % 20], f"k{i}") for i in range(9000)]
    dies = [make_key(owners[i % 20], f"d{i}") for i in range(1000)]
    for chunk in range(0, len(keep), 500):
        await asyncio.gather(*(backend.put(k, b"x") for k in keep[chunk : chunk + 500]))
    expiry = await server.now_ms() + 1000
    for chunk in range(0, len(dies), 500):
        await asyncio.gather(
            *(backend.put(k, b"x", expires_at_ms=expiry) for k in dies[chunk : chunk + 500])
        )
    assert sum([await backend.count(o) for o in owners]) == 10_000
    await server.advance(1200)
    assert await backend.cleanup_expired() == 1000
    listed = [k for o in owners for k, _ in await backend.list_by_prefix(make_prefix(o))]
    assert sorted(listed) == sorted(keep)
    assert sum([await backend.count(o) for o in owners]) == 9000
    assert await backend._redis.zcard(backend.keys.due) == 0


async def test_due_index_holds_each_owner_at_its_earliest_expiry(server: Harness) -> None:
    backend = redis_backend(server)
    now = await server.now_ms()
    a, b, c = unique(), unique(), unique()
    await backend.put(make_key(a, "late"), b"x", expires_at_ms=now + 60_000)
    await backend.put(make_key(a, "early"), b"x", expires_at_ms=now + 300)
    await backend.put(make_key(b, "t"), b"x", expires_at_ms=now + 300)
    await backend.put(make_key(c, "t"), b"x")
    await server.advance(500)
    assert await backend.cleanup_expired() == 2
    due = dict(await backend._redis.zrange(backend.keys.due, 0, -1, withscores=True))
    assert due == {a.encode(): float(now + 60_000)}


async def test_reaper_removes_dangling_entries_and_reindexes_lost_records(
    server: Harness,
) -> None:
    backend = RedisBackend(
        redis_backend(server).client, prefix=redis_backend(server).keys.prefix, reap_batch=100_000
    )
    owner = unique()
    keys = backend.keys.owner(owner)
    now = await server.now_ms()
    for i in range(30):
        await backend.put(make_key(owner, f"t{i:02}"), b"x")
    for i in range(30, 40):
        await backend.put(make_key(owner, f"t{i:02}"), b"x", expires_at_ms=now + 300)
    # Behind the store's back: hashes deleted, one record dropped from its index.
    for i in range(5):
        await backend._redis.delete(keys.record(f"t{i:02}"))
    await backend._redis.zrem(keys.index, "t29")
    await server.advance(500)  # Redis itself drops t30..t39

    listed = [k for k, _ in await backend.list_by_prefix(make_prefix(owner))]
    assert listed == [make_key(owner, f"t{i:02}") for i in range(5, 29)]
    page = await backend.list_page(owner, limit=100)
    assert [k for k, _ in page.items] == listed[::-1]

    await backend._redis.delete(keys.record("t05"))
    assert await backend.reap_orphans() == 1 + 10 + 1  # t05, t30..t39, t29 re-indexed
    members = {m.decode() for m in await backend._redis.zrange(keys.index, 0, -1)}
    assert members == {f"t{i:02}" for i in range(6, 30)}
    assert await backend._redis.zcard(keys.expiry) == 0
    assert await backend.count(owner) == 24
    assert await backend.reap_orphans() == 0


async def test_list_by_prefix_prunes_orphans_but_leaves_expired_to_the_sweep(
    server: Harness,
) -> None:
    backend = redis_backend(server)
    owner = unique()
    keys = backend.keys.owner(owner)
    await backend.put(make_key(owner, "gone"), b"x")
    await backend.put(make_key(owner, "dies"), b"x", expires_at_ms=await server.now_ms() + 300)
    await backend._redis.delete(keys.record("gone"))
    await server.advance(500)
    assert await backend.list_by_prefix(make_prefix(owner)) == []
    assert await backend._redis.zrange(keys.index, 0, -1) == [b"dies"]
    assert await backend.cleanup_expired() == 1


def _all_script_keys(schema: KeySchema, owner: str, task: str) -> list[str]:
    keys = schema.owner(owner)
    return [keys.record(task), keys.index, keys.expiry, keys.op("op-1")]


owner_ids = st.text(
    alphabet=st.characters(exclude_categories=("Cc", "Cs"), exclude_characters=":{}"),
    min_size=1,
    max_size=64,
) | st.sampled_from(["\uff5bx\uff5d", "}{", "a" * 256, "é" * 128, "{}", "x}y{z", "*", "ts"])


@given(owner=owner_ids, task=owner_ids)
def test_every_script_touches_one_slot(owner: str, task: str) -> None:
    try:
        make_key(owner, task)
    except InvalidKey:
        return
    slots = {key_slot(k.encode()) for k in _all_script_keys(KeySchema("ts"), owner, task)}
    assert len(slots) == 1
    assert slots == {key_slot(owner.encode())}


async def test_every_script_touches_only_the_keys_it_declares(
    private_redis: RedisProcess,
) -> None:
    """Every key a script's commands name is among its KEYS (Redis Cluster requires it)."""
    with _monitored(private_redis) as seen:
        async with await RedisBackend.from_url(private_redis.url) as backend:
            owner, keys = "o", backend.keys.owner("o")
            key = make_key(owner, "t")
            soon = await server_ms(backend) + 300
            await backend.put(key, b"a", expires_at_ms=soon + 60_000, op_id="op-1")
            await backend.put(key, b"a", expires_at_ms=soon + 60_000, op_id="op-1")  # replayed
            with pytest.raises(VersionConflict):
                await backend.put_if_version(key, b"b", 5, op_id="op-2")
            await backend.put_if_version(key, b"b", 1, op_id="op-3")  # no expiry any more
            await backend.put(make_key(owner, "gone"), b"x", expires_at_ms=soon)
            await backend.put(make_key(owner, "orphan"), b"x")
            await backend._redis.delete(keys.record("orphan"))
            await backend.get(key)
            await backend.list_page(owner)
            await backend.list_by_prefix(make_prefix(owner))
            await backend.count(owner)
            await backend._redis.zrem(keys.index, "t")
            await backend._redis.zadd(keys.index, {"orphan": 1})
            await backend.reap_orphans(full_pass=True)
            await sleep_ms(soon + 1 - await server_ms(backend))  # the server's clock passes soon
            assert await backend.cleanup_expired() == 1
            await backend.delete(key, op_id="op-4")
            assert await backend.withdraw_op(owner, "op-5", 1) is True
        queue = unique("declared")
        async with Redis.from_url(private_redis.url) as client:
            await _run_worker_scripts(client, queue)
    calls = _script_calls(seen)
    ran = {sha for sha, _, _ in calls}
    assert ran == {s.sha for s in [*_STORE_SCRIPTS, *_WORKER_SCRIPTS]}
    for sha, declared, touched in calls:
        assert touched <= declared, (sha, touched - declared)
    assert {keys.record("t"), keys.index, keys.expiry, keys.op("op-1")} <= {
        key for _, _, touched in calls for key in touched
    }


_STORE_SCRIPTS = [s for s in vars(store_scripts).values() if isinstance(s, Script)]
_WORKER_SCRIPTS = [s for s in vars(worker_scripts).values() if isinstance(s, Script)]
_MULTI_KEY = {"EXISTS", "DEL", "UNLINK"}


@contextlib.contextmanager
def _monitored(server: RedisProcess) -> Iterator[list[tuple[str, list[str]]]]:
    """The commands a server ran while the block ran, as (client type, words)."""
    ready, seen = threading.Event(), list[tuple[str, list[str]]]()

    def monitor() -> None:
        with server.client().monitor() as m:  # type: ignore[no-untyped-call]
            ready.set()
            for command in m.listen():
                if command["command"] == "ECHO monitored":
                    return
                seen.append((command["client_type"], command["command"].split()))

    watching = threading.Thread(target=monitor)
    watching.start()
    assert ready.wait(10)
    try:
        yield seen
    finally:
        server.client().echo("monitored")
        watching.join(10)


def _script_calls(seen: list[tuple[str, list[str]]]) -> list[tuple[str, set[str], set[str]]]:
    """Each EVALSHA with its declared KEYS and the keys its commands named.

    MONITOR lists a script's own commands (client type ``lua``) right after
    the EVALSHA that ran them.
    """
    calls: list[tuple[str, set[str], set[str]]] = []
    for client, words in seen:
        if client != "lua" and words[0].upper() == "EVALSHA":
            calls.append((words[1], set(words[3 : 3 + int(words[2])]), set()))
        elif client == "lua" and words[0].upper() != "TIME":
            named = words[1:] if words[0].upper() in _MULTI_KEY else words[1:2]
            calls[-1][2].update(named)
    return calls


async def _run_worker_scripts(client: Redis, queue: str) -> None:
    """Each worker script once, on keys of a queue of its own."""
    ws = worker_scripts
    job = f"{queue}-job"
    keys, arq = QueueKeys(queue), job_keys(job)
    enqueue_keys = ws.EnqueueKeys(
        arq.job, arq.result, queue, keys.writes, keys.wake, keys.reply(job)
    )
    payload = b'{"v":"1.0","f":"get","a":[],"k":{},"et":0}'
    assert (await ws.ENQUEUE.run(client, enqueue_keys, ws.EnqueueArgs(job, payload))).added == 1
    settle_keys = ws.SettleKeys(
        arq.job, arq.claim, arq.tries, arq.result, queue, keys.writes, keys.reply(job), keys.workers
    )
    assert (
        await ws.SETTLE.run(client, settle_keys, ws.SettleArgs(job, 1000)) == b"withdrawn-no-worker"
    )
    workers = ws.HeartbeatKeys(keys.workers, keys.running, keys.batches)
    assert await ws.HEARTBEAT.run(client, workers, ws.HeartbeatArgs("w", 1000, 0, 0)) > 0
    await client.set(keys.lock("sweep"), "token")
    lock = ws.LockKeys(keys.lock("sweep"))
    assert await ws.RELEASE_LOCK.run(client, lock, ws.LockArgs("token")) == 1
    failed = ws.DeadLetterKeys(
        keys.failed, keys.failed_records, keys.failed_jobs, keys.failed_kinds
    )
    letter = ws.DeadLetterArgs(job, "{}", 1, 10, b"")
    assert await ws.DEAD_LETTER.run(client, failed, letter) == 0
    put = b'{"v":"1.4","f":"put","a":[],"k":{"key":"o:t","data":"x"},"et":0}'
    assert (await ws.ENQUEUE.run(client, enqueue_keys, ws.EnqueueArgs(job, put))).added == 1
    claim = (arq.job, arq.claim, arq.tries)
    claims = await ws.CLAIM.run(
        client,
        ws.ClaimKeys(keys.writes, queue, keys.lanes, claim),
        ws.ClaimArgs(1000, 10, 100, 10**6, 10, "w", (f"w{job}",)),
    )
    [(_, job_try, _, lanes)] = claims.claimed
    held = f"w:{job_try}"
    assert await ws.RENEW.run(client, ws.RenewKeys((arq.claim,)), ws.RenewArgs(1000, (held,)))
    ends = (*claim, arq.result, keys.reply(job))
    lane = ",".join(str(n) for n in lanes)
    outcome = (job, held, "failed", b"{}", b"{}", 0, "{}", b"", lane, "lat:5")
    finish = ws.FinishKeys(
        keys.writes, queue, keys.lanes, keys.wake, keys.tally(claims.now), *failed, ends
    )
    assert await ws.FINISH.run(client, finish, ws.FinishArgs(1000, 60, 10, 1, 0, outcome)) == [1]


async def test_scripts_reload_after_the_server_forgets_them(private_redis: RedisProcess) -> None:
    async with await RedisBackend.from_url(private_redis.url) as backend:
        key = make_key("o", "t")
        await backend.put(key, b"a")
        await backend._redis.script_flush()
        assert await backend.put(key, b"b") == 2
        assert await backend.get(key) == VersionedRecord(b"b", 2)


async def test_redis_errors_become_backend_errors_naming_the_key(
    private_redis: RedisProcess,
) -> None:
    async with await RedisBackend.from_url(private_redis.url) as backend:
        await backend.put(make_key("o", "t"), b"a")
        private_redis.stop()
        with pytest.raises(BackendError) as err:
            await backend.get(make_key("o", "t"))
        assert err.value.key == "o:t"
        assert err.value.__cause__ is not None


async def test_refused_connection_names_the_url_without_the_password() -> None:
    port = free_ports(1)[0]
    url = f"redis://user:s3cret-pw@127.0.0.1:{port}/0"
    with pytest.raises(BackendError) as err:
        await RedisBackend.from_url(url)
    assert f"redis://user:***@127.0.0.1:{port}/0" in str(err.value)
    assert "s3cret-pw" not in str(err.value)


async def test_bad_input_is_refused_before_any_network_call() -> None:
    # Nothing listens on this port: any network call would raise BackendError.
    client = Redis(port=free_ports(1)[0])
    backend = RedisBackend(client, max_record_bytes=1024)
    with pytest.raises(RecordTooLarge):
        await backend.put(make_key("o", "t"), b"x" * 1025)
    with pytest.raises(InvalidArgument):
        await backend.put_if_version(make_key("o", "t"), b"x", 0)
    with pytest.raises(InvalidKey):
        await backend.get("o:{t}")
    with pytest.raises(BackendError):
        await backend.get("o:t")
    await client.aclose()


async def test_a_client_that_decodes_responses_is_refused(redis_url: str) -> None:
    client = Redis.from_url(redis_url, decode_responses=True)
    with pytest.raises(InvalidArgument):
        RedisBackend(client)
    await client.aclose()


async def test_embedded_server_keeps_data_across_restarts(tmp_path: Path) -> None:
    async with await RedisBackend.from_url("embedded", embedded_dir=tmp_path) as backend:
        await backend.put(make_key("o", "t"), b"kept")
    async with await RedisBackend.from_url("embedded", embedded_dir=tmp_path) as backend:
        assert await backend.get(make_key("o", "t")) == VersionedRecord(b"kept", 1)


async def test_expiry_is_judged_by_the_server_clock(server: Harness) -> None:
    # A record whose expiry is past by the server's clock is gone, whatever
    # the client's clock says.
    key = make_key(unique(), "t")
    await server.backend.put(key, b"x", expires_at_ms=await server_ms(redis_backend(server)) - 1)
    with pytest.raises(NotFound):
        await server.backend.get(key)


async def test_a_cluster_client_recovers_after_every_node_failed_once(
    cluster: LocalCluster,
) -> None:
    # The state redis-py < 7.2 reaches when, in one burst, each node's
    # connection error drops it from the startup nodes and closes every
    # connection: nothing left to rediscover the cluster from.
    async with await RedisBackend.from_url(cluster.url, prefix=unique("seeds")) as backend:
        client = backend.client
        assert isinstance(client, RedisCluster)
        key = make_key(unique(), "t")
        await backend.put(key, b"a")
        for name in list(client.nodes_manager.startup_nodes):
            client.nodes_manager.startup_nodes.pop(name, None)
            await client.aclose()
        assert await backend.put(key, b"b") == 2
        assert await backend.get(key) == VersionedRecord(b"b", 2)

"""The dashboard over HTTP: who gets in, what an action needs, what a bad input gets, and
that no value of a record, a variable, a result or a job ever reaches a page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from redis.asyncio import Redis

from store import NotFound, make_key
from tests.dashboard.conftest import TOKEN
from tests.harness import unique, until
from tests.servers import SentinelGroup
from tests.worker.conftest import cli, isolated_settings, raw_redis
from worker.producer.client import TaskStoreClient
from worker.producer.queue import enqueue, job_payload
from worker.protocol.keys import QueueKeys, job_keys
from worker.protocol.serialization import serialize
from worker.protocol.settings import Settings
from worker.tools.dashboard import app

MARKER = "SECRET-PAYLOAD-7f3a"
"""Put in data, variables, results and job arguments: it must show on no page."""


@asynccontextmanager
async def browsing(settings: Settings, **overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the dashboard app, in process, its lifespan run around it."""
    dashboard = app(Settings.model_validate({**settings.model_dump(), **overrides}))
    transport = httpx.ASGITransport(app=dashboard)
    async with (
        dashboard.router.lifespan_context(dashboard),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        yield client


async def failed_job(settings: Settings, key: str, *args: Any) -> str:
    """A job that fails for good: its workers died under it MAX_TRIES times (its try count
    says so), so the next claim gives up on it and keeps it; its id."""
    redis = raw_redis(settings)
    job_id = unique("job")
    try:
        await redis.set(job_keys(job_id).tries, settings.max_tries, ex=600)
        payload = job_payload("put", serialize([key, b"x", *args]), b"{}")
        assert (await enqueue(redis, settings.queue_name, job_id, payload)).added  # type: ignore[arg-type]

        await _kept_failed(redis, settings, job_id)
        return job_id
    finally:
        await redis.aclose()


async def _kept_failed(redis: Redis, settings: Settings, job_id: str) -> None:
    """Wait until the worker keeps ``job_id`` among its failed jobs."""

    async def kept() -> bool:
        records = QueueKeys(settings.queue_name).failed_records
        return bool(await redis.hexists(records, job_id))  # type: ignore[misc]

    await until(kept)


async def refused_job(settings: Settings) -> str:
    """A job that does not decode, put on the queue as a careless producer would: the worker
    refuses it and keeps it failed, with nothing to retry; its id."""
    redis = raw_redis(settings)
    job_id = unique("refused")
    try:
        await redis.set(job_keys(job_id).job, b"{", px=60_000)
        await redis.zadd(settings.queue_name, {job_id: 0})

        await _kept_failed(redis, settings, job_id)
        return job_id
    finally:
        await redis.aclose()


def csrf_of(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


async def keyspace(redis: Redis) -> set[bytes]:
    return {key async for key in redis.scan_iter(count=1000)}


async def test_a_bind_beyond_loopback_without_a_token_refuses_to_start(
    deployment: Settings,
) -> None:
    refused = cli(deployment.model_copy(update={"dashboard_host": "0.0.0.0"}), "dashboard")
    assert refused.returncode == 2
    assert "TASKSTORE_DASHBOARD_TOKEN" in refused.stderr


async def test_a_token_is_asked_for_by_bearer_or_by_the_login_form(deployment: Settings) -> None:
    async with browsing(deployment, dashboard_token=TOKEN) as web:
        assert (await web.get("/")).status_code == 401
        wrong = await web.get("/", headers={"Authorization": "Bearer not-it"})
        assert wrong.status_code == 401
        assert (await web.get("/", headers={"Authorization": f"Bearer {TOKEN}"})).status_code == 200
        form = await web.get("/login")
        csrf = csrf_of(form)
        refused = await web.post("/login", data={"csrf": csrf, "token": "not-it"})
        assert refused.status_code == 401
        signed_in = await web.post("/login", data={"csrf": csrf, "token": TOKEN})
        assert signed_in.status_code == 303
        cookie = signed_in.headers["set-cookie"]
        assert "taskstore_session=" in cookie
        assert "HttpOnly" in cookie
        assert TOKEN not in cookie
        assert (await web.get("/")).status_code == 200  # the cookie is enough now


async def test_read_only_hides_and_refuses_every_action(deployment: Settings) -> None:
    job_id = await failed_job(deployment, make_key(unique(), "k"))
    async with browsing(deployment, dashboard_read_only=True) as web:
        page = await web.get("/failed")
        assert job_id in page.text
        assert "Retry" not in page.text
        assert "Discard" not in page.text
        csrf = csrf_of(await web.get("/login")) if "csrf" in page.text else "x"
        web.cookies.set("taskstore_csrf", csrf)
        for action in ("/failed/retry", "/failed/discard", "/failed/retry-all"):
            refused = await web.post(action, data={"csrf": csrf, "job_id": job_id})
            assert refused.status_code == 403, action
            assert "read-only" in refused.text
        assert job_id in (await web.get("/failed")).text  # nothing changed


async def test_an_action_without_its_csrf_token_is_refused(deployment: Settings) -> None:
    job_id = await failed_job(deployment, make_key(unique(), "k"))
    async with browsing(deployment) as web:
        page = await web.get("/failed")
        csrf = csrf_of(page)
        for form in ({"job_id": job_id}, {"job_id": job_id, "csrf": "forged"}):
            refused = await web.post("/failed/discard", data=form)
            assert refused.status_code == 403
            assert "CSRF" in refused.text
        assert job_id in (await web.get("/failed")).text
        done = await web.post("/failed/discard", data={"job_id": job_id, "csrf": csrf})
        assert done.status_code == 303
        assert job_id not in (await web.get("/failed")).text


async def test_bad_inputs_get_clear_errors_and_change_nothing(deployment: Settings) -> None:
    redis = raw_redis(deployment)
    try:
        await failed_job(deployment, make_key(unique(), "k"))
        async with browsing(deployment) as web:
            csrf = csrf_of(await web.get("/failed"))
            before = await keyspace(redis)
            cases = [
                (web.get("/failed", params={"function": "<script>"}), 400, "job name filter"),
                (web.get("/failed", params={"error": "a" * 200}), 400, "error type filter"),
                (web.get("/failed", params={"page": "-1"}), 400, "page"),
                (web.get("/tasks", params={"owner": "a:b"}), 400, "owner id"),
                (web.get("/tasks", params={"owner": "alice", "cursor": "nope"}), 400, "cursor"),
                (web.post("/failed/retry", data={"csrf": csrf, "job_id": "no-such-job"}), 404,
                 "no retryable failed job"),
                (web.post("/failed/discard", data={"csrf": csrf, "job_id": "no such"}), 400,
                 "job id"),
            ]  # fmt: skip
            for call, status, words in cases:
                answer = await call
                assert answer.status_code == status, (words, answer.text[:300])
                assert words in answer.text
                assert "Nothing was changed" in answer.text
            after = await keyspace(redis)
        assert {k for k in after ^ before if not k.startswith(b"arq:in-progress")} <= {
            k for k in after ^ before if b":tally:" in k or b":workers" in k or b"health" in k
        }
    finally:
        await redis.aclose()


async def test_no_value_of_a_task_or_a_job_reaches_a_page(deployment: Settings) -> None:
    owner = unique()
    async with TaskStoreClient.connect(deployment) as client:
        await client.put(make_key(owner, "raw"), MARKER.encode())
        task = await client.create_task(owner, "tools/call")
        await client.set_variables(task.task_id, owner, {"note": MARKER})
        await client.complete_with_result(
            task.task_id, owner, "completed", {"content": [{"type": "text", "text": MARKER}]}
        )
    await failed_job(deployment, make_key(owner, "failing"), MARKER)
    secret = f"{MARKER}-token"
    async with browsing(deployment, dashboard_token=secret) as web:
        web.headers["Authorization"] = f"Bearer {secret}"
        pages = ["/", "/fragments/overview", "/charts", "/fragments/charts", "/failed",
                 "/failed?function=put", f"/tasks?owner={owner}", "/settings",
                 "/login"]  # fmt: skip
        for path in pages:
            answer = await web.get(path)
            assert answer.status_code == 200, path
            assert MARKER not in answer.text, path
        tasks = await web.get(f"/tasks?owner={owner}")
        assert task.task_id in tasks.text
        assert "dict, " in tasks.text  # the result shown by its type and size
        assert "not a task" in tasks.text  # the raw record, by its size
        assert f"record of {len(MARKER)} B" in tasks.text


async def test_with_sentinel_the_settings_page_names_the_primary_and_hides_passwords(
    tmp_path: Path,
) -> None:
    group = SentinelGroup(tmp_path / "queue", password="sentinel-secret-9")
    group.start()
    try:
        settings = isolated_settings(group.url, "dash")
        async with browsing(settings) as web:
            page = await web.get("/settings")
        assert page.status_code == 200
        assert f"127.0.0.1:{group.primary.port}" in page.text
        assert "queue primary (from the sentinels)" in page.text
        assert "sentinel-secret-9" not in page.text
    finally:
        group.stop()


async def test_retry_all_retries_what_matches_and_says_what_it_could_not(
    deployment: Settings,
) -> None:
    owner = unique()
    keys = [make_key(owner, f"k{i}") for i in range(3)]
    retried = [await failed_job(deployment, key) for key in keys]
    refused = await refused_job(deployment)
    async with browsing(deployment) as web, TaskStoreClient.connect(deployment) as client:
        csrf = csrf_of(await web.get("/failed"))
        form = {"csrf": csrf, "function": "put", "error": "JobExecutionFailed"}
        done = await web.post("/failed/retry-all", data=form, follow_redirects=True)
        assert done.status_code == 200
        assert "3 jobs queued again" in done.text
        assert not any(job_id in done.text for job_id in retried)  # gone from the list

        async def all_applied() -> bool:
            return all([await _applied(client, key) for key in keys])

        await until(all_applied, 20)
        everything = await web.post("/failed/retry-all", data={"csrf": csrf}, follow_redirects=True)
        assert "0 jobs queued again; 1 refused jobs cannot be retried" in everything.text
        assert refused in everything.text  # still kept, to be discarded


async def _applied(client: TaskStoreClient, key: str) -> bool:
    try:
        return (await client.get(key)).version == 1
    except NotFound:
        return False

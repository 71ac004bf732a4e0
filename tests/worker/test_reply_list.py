"""One reply wait per client (protocol 1.5): the replies of every job a client has in
flight come from one list of its own, read on one connection."""

from __future__ import annotations

import asyncio
from typing import Any

from store import make_key
from tests.harness import unique, until
from tests.worker.conftest import drop_test_keys, isolated_settings, raw_redis, running_worker
from worker.producer.client import TaskStoreClient
from worker.producer.handle import await_job
from worker.producer.queue import enqueue, job_payload
from worker.producer.replies import SharedReplies
from worker.protocol.keys import QueueKeys
from worker.protocol.serialization import serialize

IN_FLIGHT = 64


async def _blocked_clients(redis: Any) -> int:
    return int((await redis.info("clients"))["blocked_clients"])


async def test_every_job_in_flight_is_waited_for_by_one_reader(redis_url: str) -> None:
    settings = isolated_settings(redis_url, "replies", reply_timeout_s=60)
    redis = raw_redis(settings)
    keys = QueueKeys(settings.queue_name)
    try:
        async with TaskStoreClient.connect(settings) as client:
            before = await _blocked_clients(redis)
            owner = unique()
            puts = [
                asyncio.ensure_future(client.put(make_key(owner, f"k{i}"), b"x", coalesce=False))
                for i in range(IN_FLIGHT)
            ]

            async def all_queued() -> bool:
                return bool(await redis.zcard(keys.writes) == IN_FLIGHT)

            await until(all_queued)

            # No worker yet: every caller waits. A wait per job would block 64 clients.
            async def one_reader() -> bool:
                return await _blocked_clients(redis) == before + 1

            await until(one_reader)
            async with running_worker(settings):
                assert await asyncio.gather(*puts) == [1] * IN_FLIGHT
            # Nothing was answered on a list of its own, and the client's list is read empty.
            assert [k async for k in redis.scan_iter(match=f"{keys.reply('')}*")] == []
            assert await redis.llen(keys.replies(client.reply_to)) == 0  # type: ignore[misc]
    finally:
        await redis.aclose()
        await drop_test_keys(settings)


async def test_a_refused_job_that_named_a_reply_list_is_answered_all_the_same(
    redis_url: str,
) -> None:
    # A job that cannot run is answered on a list of its own: its waiter finds it there.
    settings = isolated_settings(redis_url, "replies", reply_timeout_s=1)
    redis = raw_redis(settings)
    replies = SharedReplies(redis, settings.queue_name)  # type: ignore[arg-type]
    job_id = unique("job")
    try:
        async with running_worker(settings):
            replies.expect(job_id)
            payload = job_payload("put", serialize([make_key(unique(), "k"), b"x"]), b"{}",
                                  reply_to=replies.reply_to)  # fmt: skip
            refused = payload.replace(b'"v": "1.5"', b'"v": "2.0"')
            assert refused != payload
            assert (await enqueue(redis, settings.queue_name, job_id, refused)).added  # type: ignore[arg-type]
            reply = await await_job(redis, settings, job_id, replies)  # type: ignore[arg-type]
        assert reply["ok"] is False
        assert reply["error"]["type"] == "InvalidArgument"
        assert "2.0" in reply["error"]["message"]
    finally:
        await replies.aclose()
        await redis.aclose()
        await drop_test_keys(settings)


async def test_a_reply_lost_on_its_way_is_read_from_the_job_s_result(redis_url: str) -> None:
    # The reply goes onto a list this waiter never reads (as if a dropped connection lost
    # it mid-read): at its deadline the waiter settles the job, finds it finished, and reads
    # the reply arq's record of the job keeps.
    settings = isolated_settings(redis_url, "replies", reply_timeout_s=1)
    redis = raw_redis(settings)
    replies = SharedReplies(redis, settings.queue_name)  # type: ignore[arg-type]
    job_id, key = unique("job"), make_key(unique(), "k")
    try:
        async with running_worker(settings):
            replies.expect(job_id)
            payload = job_payload("put", serialize([key, b"x"]), b"{}", reply_to="elsewhere")
            assert (await enqueue(redis, settings.queue_name, job_id, payload)).added  # type: ignore[arg-type]
            reply = await await_job(redis, settings, job_id, replies)  # type: ignore[arg-type]
        assert reply == {"ok": True, "value": 1}
        assert await redis.llen(QueueKeys(settings.queue_name).replies("elsewhere")) == 1  # type: ignore[misc]
    finally:
        await replies.aclose()
        await redis.aclose()
        await drop_test_keys(settings)

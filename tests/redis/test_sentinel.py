"""A Redis that Sentinel fails over, named by a ``redis+sentinel`` URL: the store follows
it with no acknowledged durable write lost, and the command line follows it too."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import InvalidArgument, RedisBackend, make_key
from store.redis.connect import SentinelURL, mask_url
from tests.harness import unique, until
from tests.reliability.test_failover import Writer
from tests.servers import SentinelGroup
from tests.worker.conftest import cli, isolated_settings


def test_a_sentinel_url_names_the_sentinels_the_service_and_the_logins() -> None:
    url = "rediss+sentinel://app:pa%40ss@h1:26380,h2/queue/2?sentinel_password=s3cret"
    target = SentinelURL.parse(url)
    assert target == SentinelURL(
        sentinels=(("h1", 26380), ("h2", 26379)),
        service="queue",
        db=2,
        username="app",
        password="pa@ss",
        sentinel_username=None,
        sentinel_password="s3cret",
        tls=True,
    )
    assert SentinelURL.parse("redis+sentinel://h/s").db == 0
    masked = mask_url(url)
    assert "pa%40ss" not in masked
    assert "s3cret" not in masked
    assert masked == "rediss+sentinel://app:***@h1:26380,h2/queue/2?sentinel_password=***"


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://h1:26379",  # no service
        "redis+sentinel://h1:port/queue",
        "redis+sentinel://:secret@h1/queue/0/extra",
        "redis+sentinel://h1/queue/zero",
        "redis+sentinel://h1/queue?socket_timeout=1",  # an option it does not take
        "redis+sentinel://,/queue",
    ],
)
def test_a_malformed_sentinel_url_is_refused_naming_the_form(url: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        SentinelURL.parse(url)
    assert "redis+sentinel://[user:password@]host" in str(err.value)
    assert "secret" not in str(err.value)


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[SentinelGroup]:
    group = SentinelGroup(tmp_path / "sentinel", service="store")
    try:
        group.start()
        yield group
    finally:
        group.stop()


@pytest.mark.slow
async def test_the_store_follows_a_sentinel_failover_losing_no_durable_write(
    sentinels: SentinelGroup, measurements: list[str]
) -> None:
    backend = await RedisBackend.from_url(sentinels.url, prefix=unique("sf"), durable_wait_ms=1000)
    writers = [Writer(make_key(unique(), "t")) for _ in range(8)]
    stop, killed = asyncio.Event(), list[float]()
    running = [asyncio.create_task(w.run(backend, stop, killed)) for w in writers]
    try:
        await until(lambda: all(w.acknowledged > 0 for w in writers))
        sentinels.primary.kill()
        killed.append(time.monotonic())
        await until(lambda: sentinels.primary_port() == sentinels.replica.port, 30)
        promoted = time.monotonic() - killed[0]
        # The old primary comes back empty; the sentinels make it the new one's replica,
        # which durable writes need to be confirmed again.
        sentinels.primary.start()
        await until(lambda: all(w.resumed_at is not None for w in writers), 30)
        stop.set()
        await asyncio.gather(*running)
        lost = 0
        for w in writers:
            record = await backend.get(w.key)
            assert record.data == str(record.version).encode()
            lost += record.version < w.acknowledged
        assert lost == 0
        gap = max(w.resumed_at or 0 for w in writers) - killed[0]
        measurements.append(
            f"store on Sentinel: the replica was promoted {promoted:.2f} s after the primary "
            f"was killed; durable writes, which need a replica to confirm them, resumed "
            f"{gap:.2f} s after the kill, once the old primary had come back as the new one's "
            f"replica; 0 of {len(writers)} keys lost an acknowledged write"
        )
    finally:
        stop.set()
        await asyncio.gather(*running, return_exceptions=True)
        await backend.aclose()

    # The command line finds the new primary too, for the queue and the store.
    settings = isolated_settings(sentinels.url, "sentinel-cli")
    run = cli(settings, "stats")
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert (report["queued"], report["store"]) == (0, sentinels.url)

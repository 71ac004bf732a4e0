"""A Redis that Sentinel fails over, named by a ``redis+sentinel`` URL: the store follows
it with no acknowledged durable write lost, and the command line follows it too."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from store import BackendError, InvalidArgument, RedisBackend, make_key
from store.redis.connect import SentinelURL, connect, mask_url
from tests.harness import unique, until
from tests.reliability.test_failover import Writer
from tests.servers import SentinelGroup, make_tls_files
from tests.worker.conftest import cli, isolated_settings, served_client


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


@pytest.mark.slow
async def test_tls_and_passwords_reach_the_sentinels_and_the_primary(tmp_path: Path) -> None:
    """``rediss+sentinel`` with a password for the primary and one for the sentinels: the
    store, the queue and the command line all get in; a wrong password is refused,
    masked."""
    group = SentinelGroup(
        tmp_path / "tls", tls=make_tls_files(tmp_path / "certs"), password=secrets.token_hex(8)
    )
    try:
        group.start()
        settings = isolated_settings(group.url, "sentinel-tls", tls_ca_file=group.tls.ca)  # type: ignore[union-attr]
        url = settings.queue_url
        assert url.startswith("rediss+sentinel://")
        async with await RedisBackend.from_url(
            url, prefix=settings.key_prefix, client_options=settings.tls_options(url)
        ) as backend:
            assert await backend.put(make_key(unique(), "t"), b"x") == 1
        async with served_client(settings) as client:
            assert await client.put(make_key(unique(), "t"), b"y") == 1
        run = cli(settings, "stats")
        assert run.returncode == 0, run.stderr
        wrong = url.replace(f"sentinel_password={group.password}", "sentinel_password=nope")
        with pytest.raises(BackendError) as err:
            await connect(wrong, **settings.tls_options(wrong))
        assert "nope" not in str(err.value)
        assert group.password not in str(err.value)  # type: ignore[operator]
    finally:
        group.stop()


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

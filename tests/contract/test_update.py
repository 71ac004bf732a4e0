"""Updater: read-transform-CAS with combining and backoff, on every backend."""

from __future__ import annotations

import asyncio

import pytest

from store import NotFound, Updater, VersionConflict, make_key
from tests.harness import Harness, unique


def increment(data: bytes) -> bytes:
    return str(int(data) + 1).encode()


async def test_concurrent_updates_each_apply_once(harness: Harness) -> None:
    key = make_key(unique(), "counter")
    await harness.backend.put(key, b"0")
    updater = Updater(harness.backend)
    versions = await asyncio.gather(*(updater.update(key, increment) for _ in range(64)))
    record = await harness.backend.get(key)
    assert record.data == b"64"
    assert max(versions) == record.version
    assert record.version <= 65


async def test_updaters_of_two_processes_contend_without_losing_updates(
    harness: Harness,
) -> None:
    key = make_key(unique(), "counter")
    await harness.backend.put(key, b"0")
    first, second = Updater(harness.backend), Updater(harness.backend)

    async def many(updater: Updater) -> None:
        for _ in range(25):
            await updater.update(key, increment)

    await asyncio.gather(*(many(u) for u in (first, second, first, second)))
    assert (await harness.backend.get(key)).data == b"100"


async def test_a_failing_transform_fails_only_its_caller(harness: Harness) -> None:
    key = make_key(unique(), "counter")
    await harness.backend.put(key, b"0")
    updater = Updater(harness.backend)

    def broken(data: bytes) -> bytes:
        raise ValueError("no")

    outcomes = await asyncio.gather(
        updater.update(key, increment),
        updater.update(key, broken),
        updater.update(key, increment),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], ValueError)
    assert (await harness.backend.get(key)).data == b"2"


async def test_an_absent_key_is_not_found(harness: Harness) -> None:
    with pytest.raises(NotFound):
        await Updater(harness.backend).update(make_key(unique(), "none"), increment)


async def test_a_conflict_carries_the_current_record(harness: Harness) -> None:
    key = make_key(unique(), "t")
    await harness.backend.put(key, b"first")
    await harness.backend.put(key, b"second")
    with pytest.raises(VersionConflict) as err:
        await harness.backend.put_if_version(key, b"x", 1)
    assert err.value.current_data == b"second"


async def test_each_queued_update_is_stored_with_its_own_expiry(harness: Harness) -> None:
    key = make_key(unique(), "counter")
    await harness.backend.put(key, b"0")
    updater = Updater(harness.backend)
    now = await harness.now_ms()
    far, soon = now + 3_600_000, now + 500
    # The first update leads; the other two queue behind its CAS, the last asking to expire soon.
    await asyncio.gather(
        updater.update(key, increment, expires_at_ms=far),
        updater.update(key, increment, expires_at_ms=far),
        updater.update(key, increment, expires_at_ms=soon),
    )
    assert (await harness.backend.get(key)).data == b"3"
    await harness.advance(1000)
    with pytest.raises(NotFound):
        await harness.backend.get(key)

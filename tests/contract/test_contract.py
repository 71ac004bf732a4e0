"""The storage contract, run against every registered backend."""

from __future__ import annotations

import pytest

from store import (
    BatchOp,
    CapacityExceeded,
    InvalidArgument,
    InvalidKey,
    NotFound,
    OpIdReused,
    OpWithdrawn,
    RecordTooLarge,
    StoreStats,
    VersionConflict,
    VersionedRecord,
    make_key,
    make_prefix,
)
from tests.harness import Harness, unique

# Expiring records in these tests live this long; the harness then lets
# twice as much time pass, so servers that judge by a real clock agree.
SHORT_MS = 500


async def expiring(h: Harness) -> int:
    return await h.now_ms() + SHORT_MS


async def test_get_missing_is_not_found(harness: Harness) -> None:
    key = make_key(unique(), "t")
    with pytest.raises(NotFound) as err:
        await harness.backend.get(key)
    assert err.value.key == key


async def test_put_creates_version_one_and_each_write_adds_one(harness: Harness) -> None:
    key = make_key(unique(), "t")
    assert await harness.backend.put(key, b"a") == 1
    assert await harness.backend.put(key, b"b") == 2
    assert await harness.backend.put_if_version(key, b"c", 2) == 3
    assert await harness.backend.get(key) == VersionedRecord(b"c", 3)


@pytest.mark.parametrize("data", [b"", bytes(range(256)), b"\x00\r\n" * 1000])
async def test_data_is_binary_safe(harness: Harness, data: bytes) -> None:
    key = make_key(unique(), "t")
    await harness.backend.put(key, data)
    assert (await harness.backend.get(key)).data == data


async def test_cas_mismatch_reports_expected_and_actual(harness: Harness) -> None:
    key = make_key(unique(), "t")
    await harness.backend.put(key, b"a")
    await harness.backend.put(key, b"b")
    with pytest.raises(VersionConflict) as err:
        await harness.backend.put_if_version(key, b"x", 1)
    assert (err.value.key, err.value.expected, err.value.actual) == (key, 1, 2)
    assert await harness.backend.get(key) == VersionedRecord(b"b", 2)


async def test_cas_on_missing_key_conflicts_with_actual_zero(harness: Harness) -> None:
    key = make_key(unique(), "t")
    with pytest.raises(VersionConflict) as err:
        await harness.backend.put_if_version(key, b"x", 1)
    assert err.value.actual == 0
    with pytest.raises(NotFound):
        await harness.backend.get(key)


async def test_cas_on_expired_key_conflicts_with_actual_zero(harness: Harness) -> None:
    key = make_key(unique(), "t")
    await harness.backend.put(key, b"a", expires_at_ms=await expiring(harness))
    await harness.advance(2 * SHORT_MS)
    with pytest.raises(VersionConflict) as err:
        await harness.backend.put_if_version(key, b"x", 1)
    assert err.value.actual == 0


async def test_put_on_expired_key_starts_over_at_version_one(harness: Harness) -> None:
    key = make_key(unique(), "t")
    await harness.backend.put(key, b"a", expires_at_ms=await expiring(harness))
    await harness.backend.put(key, b"b", expires_at_ms=await expiring(harness))
    await harness.advance(2 * SHORT_MS)
    assert await harness.backend.put(key, b"c") == 1
    assert await harness.backend.get(key) == VersionedRecord(b"c", 1)


async def test_expiry_can_be_removed_by_an_overwrite(harness: Harness) -> None:
    key = make_key(unique(), "t")
    await harness.backend.put(key, b"a", expires_at_ms=await expiring(harness))
    await harness.backend.put(key, b"b")
    await harness.advance(2 * SHORT_MS)
    assert await harness.backend.get(key) == VersionedRecord(b"b", 2)


async def test_put_with_past_expiry_succeeds_and_is_absent(harness: Harness) -> None:
    owner = unique()
    key = make_key(owner, "t")
    assert await harness.backend.put(key, b"a", expires_at_ms=await harness.now_ms() - 1) == 1
    with pytest.raises(NotFound):
        await harness.backend.get(key)
    assert await harness.backend.count(owner) == 0
    assert await harness.backend.list_by_prefix(make_prefix(owner)) == []


async def test_delete_returns_true_then_false(harness: Harness) -> None:
    owner = unique()
    key = make_key(owner, "t")
    await harness.backend.put(key, b"a")
    assert await harness.backend.delete(key) is True
    assert await harness.backend.delete(key) is False
    with pytest.raises(NotFound):
        await harness.backend.get(key)
    assert await harness.backend.count(owner) == 0
    assert (await harness.backend.list_page(owner)).items == []


async def test_delete_of_expired_record_reports_false(harness: Harness) -> None:
    key = make_key(unique(), "t")
    await harness.backend.put(key, b"a", expires_at_ms=await expiring(harness))
    await harness.advance(2 * SHORT_MS)
    assert await harness.backend.delete(key) is False


async def test_list_by_prefix_is_one_owner_in_creation_order(harness: Harness) -> None:
    owner, other = unique(), unique()
    base = await harness.now_ms()
    # Creation times out of insertion order, and a tie broken by task id.
    for task, created in [("c", base + 3), ("a", base + 1), ("b2", base + 2), ("b1", base + 2)]:
        await harness.backend.put(make_key(owner, task), task.encode(), created_at_ms=created)
    await harness.backend.put(make_key(other, "x"), b"x")
    listed = await harness.backend.list_by_prefix(make_prefix(owner))
    assert [k for k, _ in listed] == [make_key(owner, t) for t in ["a", "b1", "b2", "c"]]
    assert [r.data for _, r in listed] == [b"a", b"b1", b"b2", b"c"]


async def test_overwrite_keeps_the_creation_order(harness: Harness) -> None:
    owner = unique()
    base = await harness.now_ms()
    await harness.backend.put(make_key(owner, "first"), b"1", created_at_ms=base)
    await harness.backend.put(make_key(owner, "second"), b"2", created_at_ms=base + 1)
    await harness.backend.put(make_key(owner, "first"), b"1b", created_at_ms=base + 5)
    listed = await harness.backend.list_by_prefix(make_prefix(owner))
    assert [k for k, _ in listed] == [make_key(owner, "first"), make_key(owner, "second")]
    assert listed[0][1] == VersionedRecord(b"1b", 2)


async def test_listing_and_count_leave_out_expired_records(harness: Harness) -> None:
    owner = unique()
    soon = await expiring(harness)
    for i in range(6):
        expiry = soon if i % 2 else None
        await harness.backend.put(make_key(owner, f"t{i}"), b"x", expires_at_ms=expiry)
    assert await harness.backend.count(owner) == 6
    await harness.advance(2 * SHORT_MS)
    expected = [make_key(owner, f"t{i}") for i in (0, 2, 4)]
    assert (
        sorted(k for k, _ in await harness.backend.list_by_prefix(make_prefix(owner))) == expected
    )
    assert sorted(k for k, _ in (await harness.backend.list_page(owner)).items) == expected
    assert await harness.backend.count(owner) == 3


async def test_stats_count_owners_records_and_owners_due(harness: Harness) -> None:
    a, b = unique(), unique()
    soon, later = await expiring(harness), await harness.now_ms() + 3_600_000
    await harness.backend.put(make_key(a, "kept"), b"x", expires_at_ms=later)
    await harness.backend.put(make_key(a, "brief"), b"x", expires_at_ms=soon)
    await harness.backend.put(make_key(b, "kept"), b"x", expires_at_ms=later)
    heard: list[tuple[int, int]] = []
    stats = await harness.backend.stats(lambda done, total: heard.append((done, total)))
    assert stats == StoreStats(owners=2, records=3, owners_due=0)
    assert heard[-1] == (2, 2)
    await harness.advance(2 * SHORT_MS)
    assert await harness.backend.stats() == StoreStats(owners=2, records=2, owners_due=1)
    await harness.backend.cleanup_expired()
    assert await harness.backend.stats() == StoreStats(owners=2, records=2, owners_due=0)


async def test_list_page_walks_every_record_once_newest_first(harness: Harness) -> None:
    owner = unique()
    base = await harness.now_ms()
    keys = [make_key(owner, f"t{i:03}") for i in range(53)]
    for i, key in enumerate(keys):
        await harness.backend.put(key, b"x", created_at_ms=base + i // 3)  # ties included
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await harness.backend.list_page(owner, cursor, limit=10)
        seen.extend(k for k, _ in page.items)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == keys[::-1]
    assert pages == 6


async def test_list_page_cursor_survives_adds_and_deletes(harness: Harness) -> None:
    owner = unique()
    base = await harness.now_ms()
    for i in range(20):
        await harness.backend.put(make_key(owner, f"t{i:02}"), b"x", created_at_ms=base + i)
    first = await harness.backend.list_page(owner, limit=5)
    assert [k for k, _ in first.items] == [make_key(owner, f"t{i:02}") for i in range(19, 14, -1)]
    # The cursor's own record and one ahead of it vanish, a newer one appears.
    await harness.backend.delete(make_key(owner, "t15"))
    await harness.backend.delete(make_key(owner, "t10"))
    await harness.backend.put(make_key(owner, "new"), b"x", created_at_ms=base + 100)
    rest: list[str] = []
    cursor = first.next_cursor
    while cursor is not None:
        page = await harness.backend.list_page(owner, cursor, limit=5)
        rest.extend(k for k, _ in page.items)
        cursor = page.next_cursor
    assert rest == [make_key(owner, f"t{i:02}") for i in range(14, -1, -1) if i != 10]


async def test_list_page_of_unknown_owner_is_empty(harness: Harness) -> None:
    page = await harness.backend.list_page(unique())
    assert page.items == []
    assert page.next_cursor is None


async def test_cleanup_expired_removes_exactly_the_expired(harness: Harness) -> None:
    owners = [unique() for _ in range(3)]
    soon = await expiring(harness)
    expired = 0
    for n, owner in enumerate(owners):
        for i in range(10):
            dies = (i + n) % 3 == 0
            expired += dies
            expiry = soon if dies else None
            await harness.backend.put(make_key(owner, f"t{i}"), b"x", expires_at_ms=expiry)
    await harness.backend.put(make_key(owners[0], "past"), b"x", expires_at_ms=soon - 10_000)
    await harness.advance(2 * SHORT_MS)
    assert await harness.backend.cleanup_expired() == expired + 1
    assert await harness.backend.cleanup_expired() == 0
    for owner in owners:
        assert await harness.backend.count(owner) == len(
            await harness.backend.list_by_prefix(make_prefix(owner))
        )
    assert sum([await harness.backend.count(o) for o in owners]) == 30 - expired


async def test_capacity_refuses_a_new_key_beyond_the_bound(harness: Harness) -> None:
    owner = unique()
    for i in range(3):
        await harness.backend.put(make_key(owner, f"t{i}"), b"x", max_records_per_owner=3)
    with pytest.raises(CapacityExceeded) as err:
        await harness.backend.put(make_key(owner, "t3"), b"x", max_records_per_owner=3)
    assert (err.value.owner_id, err.value.limit) == (owner, 3)
    assert await harness.backend.count(owner) == 3
    assert await harness.backend.put(make_key(owner, "t0"), b"y", max_records_per_owner=3) == 2
    await harness.backend.delete(make_key(owner, "t1"))
    assert await harness.backend.put(make_key(owner, "t3"), b"x", max_records_per_owner=3) == 1


async def test_capacity_does_not_count_expired_records(harness: Harness) -> None:
    owner = unique()
    await harness.backend.put(make_key(owner, "old"), b"x", expires_at_ms=await expiring(harness))
    await harness.advance(2 * SHORT_MS)
    await harness.backend.put(make_key(owner, "a"), b"x", max_records_per_owner=1)
    with pytest.raises(CapacityExceeded):
        await harness.backend.put(make_key(owner, "b"), b"x", max_records_per_owner=1)


async def test_op_id_replays_put(harness: Harness) -> None:
    key = make_key(unique(), "t")
    assert await harness.backend.put(key, b"a", op_id="op-1") == 1
    assert await harness.backend.put(key, b"b", op_id="op-1") == 1
    assert await harness.backend.get(key) == VersionedRecord(b"a", 1)


async def test_op_id_replays_cas_success_and_conflict(harness: Harness) -> None:
    key = make_key(unique(), "t")
    await harness.backend.put(key, b"a")
    assert await harness.backend.put_if_version(key, b"b", 1, op_id="cas-1") == 2
    assert await harness.backend.put_if_version(key, b"c", 1, op_id="cas-1") == 2
    with pytest.raises(VersionConflict):
        await harness.backend.put_if_version(key, b"d", 1, op_id="cas-2")
    # Recreate the key so that version 1 would now match: the replay of cas-2
    # still reports its first outcome and writes nothing.
    await harness.backend.delete(key)
    await harness.backend.put(key, b"e")
    with pytest.raises(VersionConflict) as err:
        await harness.backend.put_if_version(key, b"f", 1, op_id="cas-2")
    assert (err.value.expected, err.value.actual) == (1, 2)
    assert await harness.backend.get(key) == VersionedRecord(b"e", 1)


async def test_a_replayed_conflict_carries_the_data_it_was_judged_against(
    harness: Harness,
) -> None:
    key = make_key(unique(), "t")
    await harness.backend.put(key, b"a")
    with pytest.raises(VersionConflict) as first:
        await harness.backend.put_if_version(key, b"x", 5, op_id="cas-1")
    with pytest.raises(VersionConflict) as again:  # a re-run of the same attempt
        await harness.backend.put_if_version(key, b"y", 5, op_id="cas-1")
    assert (first.value.actual, first.value.current_data) == (1, b"a")
    assert (again.value.actual, again.value.current_data) == (1, b"a")


async def test_now_ms_is_the_clock_expiry_is_judged_by(harness: Harness) -> None:
    # The server's TIME, or the in-memory backend's own (fake, in the harness) clock.
    assert abs(await harness.backend.now_ms() - await harness.now_ms()) < 1000


async def test_an_op_id_is_bound_to_its_operation(harness: Harness) -> None:
    backend = harness.backend
    owner = unique()
    key, other = make_key(owner, "t"), make_key(owner, "u")
    assert await backend.put(key, b"a", op_id="op-1") == 1
    for reuse in (
        backend.delete(key, op_id="op-1"),
        backend.put_if_version(key, b"b", 1, op_id="op-1"),
        backend.put(other, b"b", op_id="op-1", op_name="create_task"),
    ):
        with pytest.raises(OpIdReused) as err:
            await reuse
        assert (err.value.op_id, err.value.first) == ("op-1", "put")
    assert await backend.get(key) == VersionedRecord(b"a", 1)
    with pytest.raises(NotFound):
        await backend.get(other)
    assert await backend.put(key, b"a", op_id="op-1") == 1  # the same operation replays
    assert await backend.delete(key, op_id="del-1") is True
    with pytest.raises(OpIdReused) as err:
        await backend.put(key, b"c", op_id="del-1")
    assert (err.value.first, err.value.attempted) == ("delete", "put")
    assert await backend.delete(key, op_id="del-1") is True  # replayed
    with pytest.raises(NotFound):
        await backend.get(key)
    # Another owner's op id space is its own.
    assert await backend.delete(make_key(unique(), "t"), op_id="op-1") is False


async def test_op_id_survives_a_read_and_retry_loop(harness: Harness) -> None:
    key = make_key(unique(), "t")
    await harness.backend.put(key, b"a")
    await harness.backend.put(key, b"b")
    with pytest.raises(VersionConflict):
        await harness.backend.put_if_version(key, b"x", 1, op_id="op")
    # Retrying after a fresh read is a new attempt under the same op id...
    assert await harness.backend.put_if_version(key, b"x", 2, op_id="op") == 3
    # ...and once it has written, every re-run returns that outcome.
    assert await harness.backend.put_if_version(key, b"y", 3, op_id="op") == 3
    assert await harness.backend.put_if_version(key, b"y", 1, op_id="op") == 3
    assert await harness.backend.get(key) == VersionedRecord(b"x", 3)
    assert await harness.backend.applied_version(key, "op") == 3


async def test_a_withdrawn_op_id_refuses_every_attempt_sent_by_then(harness: Harness) -> None:
    backend, owner = harness.backend, unique()
    key, gone = make_key(owner, "t"), make_key(owner, "gone")
    await backend.put(gone, b"a")
    assert await backend.withdraw_op(owner, "op-put", 1_000) is True
    assert await backend.withdraw_op(owner, "op-cas", 1_000) is True
    assert await backend.withdraw_op(owner, "op-del", 1_000) is True
    for attempt in (
        backend.put(key, b"a", op_id="op-put", sent_at_ms=1_000),
        backend.put(key, b"a", op_id="op-put", sent_at_ms=999),
        backend.put(key, b"a", op_id="op-put"),  # sent at an unknown time
        backend.put_if_version(key, b"a", 1, op_id="op-cas", sent_at_ms=5),
        backend.delete(gone, op_id="op-del", sent_at_ms=1_000),
    ):
        with pytest.raises(OpWithdrawn) as err:
            await attempt
        assert err.value.op_id in ("op-put", "op-cas", "op-del")
    (batched,) = await backend.apply_batch([BatchOp(key, b"a", op_id="op-put", sent_at_ms=7)])
    assert isinstance(batched, OpWithdrawn)
    with pytest.raises(NotFound):
        await backend.get(key)
    assert await backend.get(gone) == VersionedRecord(b"a", 1)
    assert await backend.applied_version(key, "op-put") is None
    # Withdrawing again keeps the latest time; an attempt sent after it is a new one.
    assert await backend.withdraw_op(owner, "op-put", 500) is True
    with pytest.raises(OpWithdrawn):
        await backend.put(key, b"a", op_id="op-put", sent_at_ms=1_000)
    assert await backend.put(key, b"b", op_id="op-put", sent_at_ms=1_001) == 1
    assert await backend.put(key, b"c", op_id="op-put", sent_at_ms=2) == 1  # now it replays
    assert await backend.delete(gone, op_id="op-del", sent_at_ms=1_001) is True
    assert await backend.get(key) == VersionedRecord(b"b", 1)


async def test_withdrawing_an_applied_op_id_keeps_its_outcome(harness: Harness) -> None:
    backend, owner = harness.backend, unique()
    key, full = make_key(owner, "t"), make_key(owner, "full")
    assert await backend.put(key, b"a", op_id="op-put") == 1
    assert await backend.delete(make_key(owner, "x"), op_id="op-del") is False
    with pytest.raises(CapacityExceeded):
        await backend.put(full, b"a", op_id="op-full", max_records_per_owner=1)
    for op in ("op-put", "op-del", "op-full"):
        assert await backend.withdraw_op(owner, op, 10**12) is False
    assert await backend.put(key, b"z", op_id="op-put") == 1  # replays, as before
    assert await backend.delete(make_key(owner, "x"), op_id="op-del") is False
    with pytest.raises(CapacityExceeded):
        await backend.put(full, b"a", op_id="op-full", max_records_per_owner=1)
    # A kept conflict is no outcome: a read-and-retry loop could still apply the op.
    with pytest.raises(VersionConflict):
        await backend.put_if_version(key, b"b", 7, op_id="op-cas")
    assert await backend.withdraw_op(owner, "op-cas", 10**12) is True
    with pytest.raises(OpWithdrawn):
        await backend.put_if_version(key, b"b", 1, op_id="op-cas", sent_at_ms=5)
    assert await backend.get(key) == VersionedRecord(b"a", 1)
    # Op ids are per owner: another owner's withdrawal changes nothing here.
    assert await backend.withdraw_op(unique(), "op-put", 10**12) is True
    assert await backend.put(key, b"z", op_id="op-put") == 1


async def test_withdraw_op_refuses_bad_input(harness: Harness) -> None:
    for owner, op, sent in (("", "op", 1), ("o{x}", "op", 1), ("o", "", 1), ("o", "op", -1)):
        with pytest.raises(InvalidArgument):
            await harness.backend.withdraw_op(owner, op, sent)
    key = make_key(unique(), "t")
    for bad in (-1, "1", 1.5, True):
        for write in (
            harness.backend.put(key, b"x", op_id="op", sent_at_ms=bad),  # type: ignore[arg-type]
            harness.backend.delete(key, op_id="op", sent_at_ms=bad),  # type: ignore[arg-type]
        ):
            with pytest.raises(InvalidArgument):
                await write
    (batched,) = await harness.backend.apply_batch([BatchOp(key, b"x", sent_at_ms=-1)])
    assert isinstance(batched, InvalidArgument)
    with pytest.raises(NotFound):
        await harness.backend.get(key)


async def test_applied_version_knows_only_successful_writes(harness: Harness) -> None:
    owner = unique()
    key = make_key(owner, "t")
    assert await harness.backend.applied_version(key, "never") is None
    await harness.backend.put(key, b"a", op_id="w")
    with pytest.raises(VersionConflict):
        await harness.backend.put_if_version(key, b"b", 7, op_id="c")
    await harness.backend.delete(make_key(owner, "other"), op_id="d")
    assert await harness.backend.applied_version(key, "w") == 1
    assert await harness.backend.applied_version(key, "c") is None
    assert await harness.backend.applied_version(key, "d") is None


async def test_op_id_replays_delete(harness: Harness) -> None:
    key = make_key(unique(), "t")
    await harness.backend.put(key, b"a")
    assert await harness.backend.delete(key, op_id="del-1") is True
    await harness.backend.put(key, b"b")
    assert await harness.backend.delete(key, op_id="del-1") is True
    assert await harness.backend.get(key) == VersionedRecord(b"b", 1)


async def test_op_id_replays_capacity_refusal(harness: Harness) -> None:
    owner = unique()
    await harness.backend.put(make_key(owner, "a"), b"x", max_records_per_owner=1)
    with pytest.raises(CapacityExceeded):
        await harness.backend.put(make_key(owner, "b"), b"x", max_records_per_owner=1, op_id="c")
    await harness.backend.delete(make_key(owner, "a"))
    with pytest.raises(CapacityExceeded):
        await harness.backend.put(make_key(owner, "b"), b"x", max_records_per_owner=1, op_id="c")
    assert await harness.backend.count(owner) == 0


BAD_KEYS = ["", "no-separator", ":t", "o:", "o:t:x", "o{x}:t", "o:t}", "o\n:t", "o:\x00", 7]


@pytest.mark.parametrize("key", BAD_KEYS)
async def test_malformed_keys_are_refused_on_every_operation(harness: Harness, key: str) -> None:
    backend = harness.backend
    for call in (
        backend.get(key),
        backend.put(key, b"x"),
        backend.put_if_version(key, b"x", 1),
        backend.delete(key),
    ):
        with pytest.raises(InvalidKey):
            await call


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"data": "text"}, InvalidArgument),
        ({"data": None}, InvalidArgument),
        ({"expires_at_ms": 1.5}, InvalidArgument),
        ({"expires_at_ms": "soon"}, InvalidArgument),
        ({"created_at_ms": -1}, InvalidArgument),
        ({"op_id": ""}, InvalidArgument),
        ({"op_id": 3}, InvalidArgument),
        ({"max_records_per_owner": 0}, InvalidArgument),
        ({"data": b"x" * (4 * 1024 * 1024 + 1)}, RecordTooLarge),
    ],
)
async def test_bad_arguments_are_refused_and_change_nothing(
    harness: Harness, kwargs: dict[str, object], error: type[Exception]
) -> None:
    owner = unique()
    key = make_key(owner, "t")
    await harness.backend.put(key, b"orig")
    call: dict[str, object] = {"data": b"new", **kwargs}
    with pytest.raises(error):
        await harness.backend.put(key, **call)  # type: ignore[arg-type]
    assert await harness.backend.get(key) == VersionedRecord(b"orig", 1)
    assert await harness.backend.count(owner) == 1


@pytest.mark.parametrize("expected", [0, -1, "1", 1.0, None, True])
async def test_bad_expected_versions_are_refused(harness: Harness, expected: object) -> None:
    key = make_key(unique(), "t")
    await harness.backend.put(key, b"orig")
    with pytest.raises(InvalidArgument):
        await harness.backend.put_if_version(key, b"x", expected)  # type: ignore[arg-type]
    assert await harness.backend.get(key) == VersionedRecord(b"orig", 1)


@pytest.mark.parametrize("cursor", ["", "garbage", "MXwxMHw", "!!!", "x" * 5000])
async def test_malformed_cursor_is_refused(harness: Harness, cursor: str) -> None:
    with pytest.raises(InvalidArgument):
        await harness.backend.list_page(unique(), cursor)


@pytest.mark.parametrize("limit", [0, -5, 10_001, "10"])
async def test_bad_page_limit_is_refused(harness: Harness, limit: object) -> None:
    with pytest.raises(InvalidArgument):
        await harness.backend.list_page(unique(), None, limit)  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["owner", "", ":", "a:b:", "{x}:"])
async def test_list_by_prefix_refuses_anything_but_an_owner_prefix(
    harness: Harness, prefix: str
) -> None:
    with pytest.raises(InvalidKey):
        await harness.backend.list_by_prefix(prefix)


async def test_apply_batch_gives_each_op_its_own_outcome(harness: Harness) -> None:
    owner = unique()
    key = make_key(owner, "cas")
    await harness.backend.put(key, b"v1")
    ops = [
        BatchOp(make_key(owner, "new"), b"a"),
        BatchOp(key, b"v2", expected_version=1),
        BatchOp(key, b"stale", expected_version=1),
        BatchOp(make_key(owner, "full"), b"x", max_records_per_owner=2),
        BatchOp("bad key", b"x"),
        BatchOp(make_key(owner, "big"), b"x" * (4 * 1024 * 1024 + 1)),
        BatchOp(make_key(owner, "exp"), b"x", expires_at_ms=await expiring(harness)),
    ]
    outcomes = await harness.backend.apply_batch(ops)
    assert outcomes[:2] == [1, 2]
    assert isinstance(outcomes[2], VersionConflict)
    assert (outcomes[2].expected, outcomes[2].actual) == (1, 2)
    assert isinstance(outcomes[3], CapacityExceeded)
    assert isinstance(outcomes[4], InvalidKey)
    assert isinstance(outcomes[5], RecordTooLarge)
    assert outcomes[6] == 1
    assert await harness.backend.get(key) == VersionedRecord(b"v2", 2)
    await harness.advance(2 * SHORT_MS)
    assert await harness.backend.count(owner) == 2
    assert await harness.backend.cleanup_expired() == 1


async def test_apply_batch_replays_op_ids(harness: Harness) -> None:
    key = make_key(unique(), "t")
    ops = [BatchOp(key, b"a", op_id="b-1"), BatchOp(key, b"b", op_id="b-2")]
    assert await harness.backend.apply_batch(ops) == [1, 2]
    assert await harness.backend.apply_batch(ops) == [1, 2]
    assert await harness.backend.get(key) == VersionedRecord(b"b", 2)
    assert await harness.backend.apply_batch([]) == []

"""Property tests: key validation, and owners never reaching each other's records."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from store import InvalidKey, NotFound, VersionConflict, make_key, make_prefix, parse_key
from tests.harness import Harness, unique

# Characters that matter to keys and hash tags, mixed into arbitrary text.
ids = st.text(
    alphabet=st.one_of(st.sampled_from(":{}\x00\n\x7f\x85 *?[]\\"), st.characters()),
    max_size=40,
) | st.text(min_size=250, max_size=300)


@given(owner=ids, task=ids)
def test_a_key_round_trips_or_is_refused(owner: str, task: str) -> None:
    try:
        key = make_key(owner, task)
    except InvalidKey:
        return
    assert parse_key(key) == (owner, task)
    assert key.startswith(make_prefix(owner))
    assert len(owner.encode()) <= 256
    assert not set(owner + task) & set(":{}")


@given(key=st.text(max_size=60))
def test_parse_key_accepts_only_what_make_key_builds(key: str) -> None:
    try:
        owner, task = parse_key(key)
    except InvalidKey:
        return
    assert make_key(owner, task) == key


valid_ids = st.text(
    alphabet=st.one_of(
        st.sampled_from("*?[]\\ ._-|\u200b\uff5b\uff5d\u00e9e\u0301"),
        st.characters(exclude_categories=("Cc", "Cs"), exclude_characters=":{}"),
    ),
    min_size=1,
    max_size=30,
)

# Ways two owner names can be nearly the same: a prefix, case, Unicode
# normalization, a trailing space, a glob character.
NEAR_MISSES = [
    lambda s: s + "x",
    lambda s: s[:-1] or "y",
    lambda s: s.swapcase(),
    lambda s: unicodedata.normalize("NFD", s),
    lambda s: s + " ",
    lambda s: s + "*",
    lambda s: s[: len(s) // 2] + "*",
]


def _valid(value: str) -> bool:
    try:
        make_prefix(value)
    except InvalidKey:
        return False
    return True


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(suffix=valid_ids, near=st.sampled_from(NEAR_MISSES), task=valid_ids)
async def test_no_owner_reads_lists_or_changes_another_owners_records(
    harness: Harness, suffix: str, near: Callable[[str], str], task: str
) -> None:
    owner_a = unique("p") + suffix
    owner_b = near(owner_a)
    if owner_b == owner_a or not _valid(owner_b):
        return
    backend = harness.backend
    key_a, key_b = make_key(owner_a, task), make_key(owner_b, task)
    await backend.put(key_a, b"secret-a")

    with pytest.raises(NotFound):
        await backend.get(key_b)
    with pytest.raises(VersionConflict) as err:
        await backend.put_if_version(key_b, b"evil", 1)
    assert err.value.actual == 0
    assert await backend.delete(key_b) is False
    assert await backend.list_by_prefix(make_prefix(owner_b)) == []
    assert (await backend.list_page(owner_b)).items == []
    assert await backend.count(owner_b) == 0
    await backend.put(key_b, b"b", max_records_per_owner=1)

    assert (await backend.get(key_a)).data == b"secret-a"
    assert (await backend.get(key_a)).version == 1
    assert [k for k, _ in await backend.list_by_prefix(make_prefix(owner_a))] == [key_a]
    assert await backend.count(owner_a) == 1

"""Fixtures shared by every test: the registry of backend harnesses."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.harness import Harness, HarnessFactory, memory_harness

# Each backend kind the contract suite runs on. Server-backed kinds are added
# by the fixtures that start their servers.
HARNESSES: dict[str, str] = {"memory": "memory_factory"}


@pytest.fixture(scope="session")
def memory_factory() -> HarnessFactory:
    return memory_harness


@pytest.fixture(params=list(HARNESSES))
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    factory: HarnessFactory = request.getfixturevalue(HARNESSES[request.param])
    async with factory() as h:
        yield h

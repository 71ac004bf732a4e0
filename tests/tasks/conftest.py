"""A TaskStore over each registered backend, sharing the backend's clock."""

from __future__ import annotations

import pytest

from store.tasks import SecurityConfig, StoreConfig, TaskStore
from tests.harness import Harness


def task_store(
    h: Harness, config: StoreConfig | None = None, security: SecurityConfig | None = None
) -> TaskStore:
    return TaskStore(h.backend, config, security, clock=h.clock)


@pytest.fixture
def tasks(harness: Harness) -> TaskStore:
    return task_store(harness)

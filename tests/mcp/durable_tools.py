"""Durable tools the tests' workers import (``MCP_TOOL_MODULES=tests.mcp.durable_tools``)."""

from __future__ import annotations

import asyncio
from collections import Counter

from worker.mcp_tasks.durable import durable

STARTS: Counter[str] = Counter()
"""How often each marker's tool started, across every worker of the test process."""


@durable
async def counted_sleep(marker: str, seconds: float) -> str:
    """Count the start, sleep, answer the marker."""
    STARTS[marker] += 1
    await asyncio.sleep(seconds)
    return marker


@durable
async def long_text(chars: int) -> str:
    """A text of ``chars`` characters."""
    return "x" * chars

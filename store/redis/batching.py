"""Many script calls in one round trip per primary, optionally confirmed by a replica.

``run_batch`` groups calls by the primary of their slot (one group on a
single server) and sends each group as one pipeline, so each primary applies
its calls in order. ``WAIT 1 <ms>`` counts the replicas that acknowledged
the writes made *on the connection it runs on*, so it has to follow the
scripts on that connection: a plain pipeline on one server, and on a cluster
the pipeline of the slot's primary itself. redis-py's ``ClusterPipeline`` is
not used for this: after a connection error it sends the pipeline again with
``WAIT`` routed to the default node, where it would confirm writes it never saw.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from redis.asyncio import RedisCluster
from redis.asyncio.cluster import PipelineCommand
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    SlotNotCoveredError,
    TryAgainError,
)

from store.redis.lua import BoundScript

ScriptCall = tuple[tuple[Any, ...], tuple[Any, ...]]
_ROUTING_ERRORS = (MovedError, AskError, TryAgainError, ClusterDownError)


async def run_batch(
    client: Any,
    script: BoundScript[Any, Any, Any],
    calls: Sequence[ScriptCall],
    *,
    wait_ms: int | None,
) -> list[tuple[Any, bool]]:
    """Each call's raw reply (an exception in its place on failure) and whether a
    replica confirmed it (always True without ``wait_ms``), in call order."""
    if not calls:
        return []
    with script.script.span(calls[0][0], len(calls)):
        if not isinstance(client, RedisCluster):
            return _paired(await run_pipelined(client, script, calls, wait_ms=wait_ms))
        groups = _by_primary(client, calls)
        results = await asyncio.gather(
            *(
                run_pipelined(client, script, [calls[i] for i in g], wait_ms=wait_ms)
                for g in groups
            ),
            return_exceptions=True,
        )
    replies: list[tuple[Any, bool]] = [(None, False)] * len(calls)
    for group, result in zip(groups, results, strict=True):
        paired = (
            [(result, False)] * len(group) if isinstance(result, BaseException) else _paired(result)
        )
        for i, reply in zip(group, paired, strict=True):
            replies[i] = reply
    return replies


def _paired(result: tuple[list[Any], int | None]) -> list[tuple[Any, bool]]:
    replies, confirmed = result
    return [(reply, confirmed != 0) for reply in replies]


def _by_primary(cluster: RedisCluster, calls: Sequence[ScriptCall]) -> list[list[int]]:
    """Indexes of ``calls`` grouped by the primary of their slot, in order within a group."""
    groups: dict[str, list[int]] = {}
    for i, (keys, _) in enumerate(calls):
        node = cluster.get_node_from_key(keys[0])
        groups.setdefault(node.name if node is not None else "", []).append(i)
    return list(groups.values())


async def run_pipelined(
    client: Any,
    script: BoundScript[Any, Any, Any],
    calls: Sequence[ScriptCall],
    *,
    wait_ms: int | None,
) -> tuple[list[Any], int | None]:
    """Raw replies of ``calls`` (errors in place) and, with ``wait_ms``, how many replicas
    have them.

    On a cluster every call must be in the slot of the first call's first key.
    A pipeline that met NOSCRIPT (a restarted server or a promoted replica
    forgets scripts) is sent once more after loading the script.
    """
    for attempt in range(2):
        if isinstance(client, RedisCluster):
            replies = await _on_primary(client, script, calls, wait_ms)
        else:
            replies = await _on_server(client, script, calls, wait_ms)
        if attempt or not any(isinstance(r, NoScriptError) for r in replies):
            break
        await script.load()
    if wait_ms is None:
        return replies, None
    confirmed = replies.pop()
    if isinstance(confirmed, BaseException):
        raise confirmed
    return replies, int(confirmed)


async def _on_server(
    client: Any,
    script: BoundScript[Any, Any, Any],
    calls: Sequence[ScriptCall],
    wait_ms: int | None,
) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            script.queue(pipe, keys, args)
        if wait_ms is not None:
            pipe.execute_command("WAIT", 1, wait_ms)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    return replies


async def _on_primary(
    client: RedisCluster,
    script: BoundScript[Any, Any, Any],
    calls: Sequence[ScriptCall],
    wait_ms: int | None,
) -> list[Any]:
    first_key = calls[0][0][0]
    node = client.get_node_from_key(first_key)
    if node is None:
        raise SlotNotCoveredError(f"no primary known for {first_key!r}")
    commands = [
        PipelineCommand(i, "EVALSHA", script.script.sha, *script.script.arguments(keys, args))
        for i, (keys, args) in enumerate(calls)
    ]
    if wait_ms is not None:
        commands.append(PipelineCommand(len(commands), "WAIT", 1, wait_ms))
    try:
        await node.execute_pipeline(commands)
    except (RedisError, OSError):
        await _find_primary(client, first_key)
        raise
    if any(isinstance(c.result, _ROUTING_ERRORS) for c in commands):
        await _find_primary(client, first_key)
    return [command.result for command in commands]


async def _find_primary(client: RedisCluster, key: str) -> None:
    """Let the cluster client route one command for ``key``: that refreshes its slot map.

    The caller still reports its own failure; this only makes the next call
    go to the slot's new primary after a failover or a resharding.
    """
    with contextlib.suppress(RedisError, RedisClusterException, OSError):
        await client.exists(key)

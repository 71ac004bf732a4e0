"""Script calls sent as one pipeline, optionally confirmed by a replica with ``WAIT``.

``WAIT 1 <ms>`` counts the replicas that acknowledged the writes made *on the
connection it runs on*, so it has to follow the scripts on that connection:
a plain pipeline on one server, and on a cluster the pipeline of the slot's
primary itself. redis-py's ``ClusterPipeline`` is not used for this: after a
connection error it sends the pipeline again with ``WAIT`` routed to the
default node, where it would confirm writes it never saw.
"""

from __future__ import annotations

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

from store.redis.scripts import BoundScript

ScriptCall = tuple[Sequence[str], Sequence[Any]]
_ROUTING_ERRORS = (MovedError, AskError, TryAgainError, ClusterDownError)


async def run_pipelined(
    client: Any, script: BoundScript, calls: Sequence[ScriptCall], *, wait_ms: int | None
) -> tuple[list[Any], int | None]:
    """Replies of ``calls`` (errors in place) and, with ``wait_ms``, the replicas that have them.

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
    client: Any, script: BoundScript, calls: Sequence[ScriptCall], wait_ms: int | None
) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            script.queue(pipe, keys, args)
        if wait_ms is not None:
            pipe.execute_command("WAIT", 1, wait_ms)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    return replies


async def _on_primary(
    client: RedisCluster, script: BoundScript, calls: Sequence[ScriptCall], wait_ms: int | None
) -> list[Any]:
    first_key = calls[0][0][0]
    node = client.get_node_from_key(first_key)
    if node is None:
        raise SlotNotCoveredError(f"no primary known for {first_key!r}")
    commands = [
        PipelineCommand(i, "EVALSHA", script.sha, len(keys), *keys, *args)
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

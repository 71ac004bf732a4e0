"""Peer of direct writes: a minimal put/CAS Lua script called through register_script.

It does what a record write must (check the version, write the hash, index
the key on creation) and nothing else: the floor of Python overhead per call.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

SCRIPT = """
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= v then return {1, v} end
redis.call('HSET', KEYS[1], 'v', v + 1, 'd', ARGV[1])
if v == 0 then redis.call('ZADD', KEYS[2], 0, KEYS[1]) end
return {0, v + 1}
"""


class RawWriter:
    def __init__(self, client: Redis) -> None:
        self.script: Any = client.register_script(SCRIPT)

    async def put(self, owner: str, task: str, data: bytes, expected: int | None = None) -> int:
        keys = (f"raw:{{{owner}}}:t:{task}", f"raw:{{{owner}}}:idx")
        status, value = await self.script(
            keys=keys, args=(data, "" if expected is None else expected)
        )
        if status:
            raise ValueError(f"conflict: {value}")
        return int(value)

"""The worker package's Lua scripts (``worker/*.lua``), run by EVALSHA with an EVAL fallback."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError


class Script:
    def __init__(self, name: str) -> None:
        self.name = name
        self.source = resources.files("worker").joinpath(f"{name}.lua").read_text()
        self.sha = hashlib.sha1(self.source.encode()).hexdigest()

    async def __call__(self, redis: Any, keys: Sequence[str], args: Sequence[object]) -> Any:
        """Run it; a server that does not know it yet (a restart, a new replica) is sent it."""
        try:
            return await redis.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:  # EVAL caches it for the next call
            return await redis.eval(self.source, len(keys), *keys, *args)

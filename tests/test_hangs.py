"""A suite that cannot hang: a test past its time limit fails naming itself and stops what
it started, also when the suite runs where SIGINT is ignored (``nohup ... &``, a script)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_hung_tests_fail_naming_themselves_and_stop_what_they_started(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "TASKSTORE_TEST_TIMEOUT_S": "2",
        "HANG_PROBE_DIR": str(tmp_path),
        "TASKSTORE_TEST_REDIS_URL": "redis://127.0.0.1:1/0",  # no Redis: nothing to check
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "timeout=3",
         "tests/hang_probe.py"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        # As a suite started in the background runs: SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        check=False,
    )  # fmt: skip
    assert run.returncode == 1, run.stdout[-3000:]
    assert "2 failed" in run.stdout
    assert "FAILED tests/hang_probe.py::test_an_async_test_that_hangs" in run.stdout
    assert "ran past 2 s and was stopped" in run.stdout
    assert "FAILED tests/hang_probe.py::test_a_blocking_test_that_hangs" in run.stdout
    assert "Timeout (>3.0s) from pytest-timeout" in run.stdout
    for name in ("async", "blocking"):
        assert not _alive(int((tmp_path / name).read_text())), name

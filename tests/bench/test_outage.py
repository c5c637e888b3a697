"""Freezing and thawing the embedded server's process tree while backends come and go."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.outage import RestartableDatabase


def exited_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()  # reaped: the pid names no process now
    return process.pid


def test_thaw_and_freeze_skip_a_backend_that_exited_after_the_tree_was_listed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Regression (CI): a client disconnecting ends its backend between listing the tree and
    # signalling it, and thaw() raised ProcessLookupError in a fixture's teardown.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        database = object.__new__(RestartableDatabase)
        monkeypatch.setattr(database, "processes", lambda: [sleeper.pid, exited_pid()])
        database.freeze()
        assert eventually_in_state(sleeper.pid, stopped=True)
        database.thaw()
        assert eventually_in_state(sleeper.pid, stopped=False)
    finally:
        sleeper.kill()
        sleeper.wait()


def eventually_in_state(pid: int, *, stopped: bool) -> bool:
    deadline = time.monotonic() + 5  # a signal reaches another process asynchronously
    while time.monotonic() < deadline:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
        if (state == "T") == stopped:
            return True
        time.sleep(0.01)
    return False

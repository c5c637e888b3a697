"""A hung test fails alone and names where it hung (tests/hangs.py): a small pytest run in a
subprocess, with a one-second limit, of tests that hang in an asyncio task, in a thread, and
with the alarm blocked."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

HANGING_TESTS = """
import asyncio
import threading


async def wait_for_a_reply_that_never_comes(event: asyncio.Event) -> None:
    await event.wait()


async def test_hangs_in_a_task() -> None:
    event = asyncio.Event()
    await asyncio.create_task(wait_for_a_reply_that_never_comes(event), name="the-stuck-task")


def test_hangs_joining_a_thread() -> None:
    def block_in_a_thread_forever() -> None:
        threading.Event().wait()

    worker = threading.Thread(target=block_in_a_thread_forever, name="the-stuck-thread", daemon=True)
    worker.start()
    worker.join()


def test_after_the_hangs_still_runs() -> None:
    pass
"""

CANNOT_TAKE_THE_ALARM = """
import signal
import time


def test_blocks_the_alarm_and_sleeps() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
    time.sleep(60)
"""

CONFIG = """
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
timeout = 1
"""


def run_pytest(directory: Path, tests: str, **env: str) -> subprocess.CompletedProcess[str]:
    (directory / "pytest.ini").write_text(CONFIG)
    (directory / "conftest.py").write_text('pytest_plugins = ["tests.hangs"]\n')
    (directory / "test_hanging.py").write_text(tests)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "test_hanging.py"],
        cwd=directory,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_hung_test_fails_alone_printing_every_thread_and_task(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, HANGING_TESTS)
    output = result.stdout + result.stderr

    assert "2 failed, 1 passed" in output, output
    assert "test_hanging.py::test_hangs_in_a_task took more than 1 s" in output, output
    assert "test_hanging.py::test_hangs_joining_a_thread took more than 1 s" in output, output
    # The task is named, and its stack goes down to the await it is stuck on.
    assert "asyncio task the-stuck-task" in output, output
    assert "in wait_for_a_reply_that_never_comes" in output, output
    assert "await event.wait()" in output, output
    assert "waiting for <Future pending cb=[Task.task_wakeup()]>" in output, output
    # So is a thread the test waits for.
    assert "thread the-stuck-thread" in output, output
    assert "in block_in_a_thread_forever" in output, output


def test_a_test_that_cannot_be_interrupted_ends_the_run_with_the_stacks(tmp_path: Path) -> None:
    result = run_pytest(tmp_path, CANNOT_TAKE_THE_ALARM, WORKENGINE_TEST_HANG_LAST_RESORT="1")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "did not end 1 s after its time limit: ending the run" in result.stderr, result.stderr
    assert "in test_blocks_the_alarm_and_sleeps" in result.stderr, result.stderr

"""Stopping background tasks: bounded, failures logged, and the caller stays cancellable."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import pytest

from workengine.engine import background


async def _ignores_one_cancellation(stopped: asyncio.Event) -> None:
    with contextlib.suppress(asyncio.CancelledError):  # as Python 3.11's wait_for could
        await asyncio.sleep(3600)
    try:
        await asyncio.sleep(3600)
    finally:
        stopped.set()


async def test_a_task_that_ignores_its_cancellation_does_not_hold_up_the_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stopped = asyncio.Event()
    task = asyncio.create_task(_ignores_one_cancellation(stopped))
    await asyncio.sleep(0)
    started = time.monotonic()
    await background.stop([task], "test", grace=0.2)
    assert time.monotonic() - started < 2
    assert "did not stop within" in caplog.text
    # Cancelled once more on the way out, it ends after all.
    async with asyncio.timeout(2):
        await stopped.wait()


async def test_failures_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    with caplog.at_level(logging.ERROR):
        await background.stop([task], "test")
    assert "test task failed" in caplog.text


async def test_the_caller_of_a_stop_can_still_be_cancelled() -> None:
    """Awaiting a cancelled task and catching its CancelledError also caught the caller's:
    a close() under a timeout then went on waiting."""
    slow = asyncio.create_task(_ignores_one_cancellation(asyncio.Event()))
    await asyncio.sleep(0)
    stopping = asyncio.create_task(background.stop([slow], "test", grace=3600))
    await asyncio.sleep(0.05)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    slow.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await slow


# The maintenance runner


class Flaky:
    """A duty's pass that fails as scripted, then succeeds."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.passes = 0
        self.done = asyncio.Event()

    async def run(self) -> None:
        self.passes += 1
        if self.failures:
            raise self.failures.pop(0)
        self.done.set()


async def test_a_failing_duty_goes_on_and_logs_each_streak_once(caplog: pytest.LogCaptureFixture) -> None:
    from workengine.domain.errors import Unavailable

    flaky = Flaky(Unavailable("down"), Unavailable("down"), RuntimeError("bug"), RuntimeError("bug"))
    runner = background.MaintenanceRunner([background.Duty("flaky duty", 0.01, flaky.run)])
    with caplog.at_level(logging.INFO, logger="workengine.engine.background"):
        runner.start()
        async with asyncio.timeout(5):
            await flaky.done.wait()
        await runner.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "workengine.engine.background"]
    assert flaky.passes == 5
    # The outage once, the bug once (its kind changed, with its trace), the recovery once.
    assert [line.split(";")[0] for line in lines] == [
        "flaky duty: database unavailable",
        "flaky duty failed",
        "flaky duty recovered after 4 failed passes",
    ]
    assert [r.exc_info is not None for r in caplog.records if "failed;" in r.getMessage()] == [True]


async def test_a_duty_runs_after_its_interval_unless_it_runs_at_start() -> None:
    late, early = Flaky(), Flaky()
    runner = background.MaintenanceRunner(
        [background.Duty("late", 3600, late.run), background.Duty("early", 3600, early.run, at_start=True)]
    )
    runner.start()
    async with asyncio.timeout(5):
        await early.done.wait()
    await runner.close()
    assert (late.passes, early.passes) == (0, 1)

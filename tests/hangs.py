"""A test that hangs fails alone, and says where it hung (a pytest plugin, loaded by conftest).

pytest-timeout gives every test a time limit (`timeout` in pyproject, for setup, call and
teardown together). Its own ways out either fail the test without showing what the event loop
was doing, or end the whole run. This plugin replaces them: when the limit is reached it prints
the stack of every thread and of every asyncio task (following each task's chain of awaits down
to what it waits on), then fails the test from SIGALRM, as pytest-timeout's signal method does,
and the run goes on. The alarm is repeated every GRACE seconds, so a teardown stuck on the same
thing fails too. If the test still has not ended LAST_RESORT seconds after its limit (the main
thread cannot take a signal), the stacks are printed again and the run ends.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator
from types import FrameType
from typing import Any, TextIO

import pytest

GRACE = 30.0
# Seconds; from the environment only for the test of this plugin, which needs it short.
LAST_RESORT = float(os.environ.get("WORKENGINE_TEST_HANG_LAST_RESORT", "120"))


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    if threading.current_thread() is not threading.main_thread():
        return None  # no signals off the main thread: pytest-timeout's own thread method
    limit = float(settings.timeout)

    def expired(signum: int, frame: FrameType | None) -> None:
        __tracebackhide__ = True
        dump(sys.stderr, f"{item.nodeid} took more than {limit:g} s", interrupted=frame)
        signal.setitimer(signal.ITIMER_REAL, GRACE)
        pytest.fail(f"Timeout: more than {limit:g} s (the stacks of every thread and task are printed above)")

    def last_resort() -> None:
        capture = item.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:  # what the test printed, then the stacks, on the real stderr
            capture.suspend_global_capture()
            captured = capture.read_global_capture()
            sys.stderr.write(captured.out + captured.err)
        dump(sys.stderr, f"{item.nodeid} did not end {LAST_RESORT:g} s after its time limit: ending the run")
        os._exit(1)

    watchdog = threading.Timer(limit + LAST_RESORT, last_resort)
    watchdog.daemon = True
    watchdog.name = f"hang watchdog {item.nodeid}"

    def cancel() -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        watchdog.cancel()

    item.cancel_timeout = cancel  # type: ignore[attr-defined]  # what pytest-timeout's cancel calls
    signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, limit)
    watchdog.start()
    return True


def dump(out: TextIO, title: str, interrupted: FrameType | None = None) -> None:
    """Prints the stack of every thread, then of every task of every event loop running in one.
    `interrupted`: where this thread was when the signal came (its stack, not the handler's)."""
    frames = sys._current_frames()
    if interrupted is not None:
        frames[threading.get_ident()] = interrupted
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    out.write(f"\n{'+' * 30} Timeout: {title} {'+' * 30}\n")
    for ident, frame in frames.items():
        out.write(f"\n---- thread {names.get(ident, '?')} ({ident}) ----\n")
        out.write("".join(traceback.format_stack(frame)))
    for loop in _running_loops(frames.values()):
        for task in _tasks(loop):
            out.write(f"\n---- asyncio task {task.get_name()} ({task.get_coro()!r}) ----\n")
            out.write(_await_chain(task))
    out.write(f"{'+' * 30} end of the stacks {'+' * 30}\n")
    out.flush()


def _running_loops(frames: Any) -> list[asyncio.AbstractEventLoop]:
    """The event loops whose run_forever is on one of these threads' stacks."""
    loops: list[asyncio.AbstractEventLoop] = []
    for frame in frames:
        for each in _outward(frame):
            loop = each.f_locals.get("self") if each.f_code.co_name == "run_forever" else None
            if isinstance(loop, asyncio.AbstractEventLoop) and loop not in loops:
                loops.append(loop)
    return loops


def _outward(frame: FrameType | None) -> Iterator[FrameType]:
    while frame is not None:
        yield frame
        frame = frame.f_back


def _tasks(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
    try:
        return sorted(asyncio.all_tasks(loop), key=lambda task: task.get_name())
    except RuntimeError:  # the set changed while it was read, each of the times asyncio tried
        return []


def _await_chain(task: asyncio.Task[Any]) -> str:
    """The task's coroutine, what it awaits, and so on down to the future it waits for: where
    it is stuck (Task.print_stack shows only the outermost coroutine)."""
    frames: list[FrameType] = []
    awaited: Any = task.get_coro()
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        frame = frame or getattr(awaited, "ag_frame", None)
        if frame is None:
            break
        frames.append(frame)
        nested = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
        awaited = nested or getattr(awaited, "ag_await", None)
    summary = traceback.StackSummary.extract((frame, frame.f_lineno) for frame in frames)
    awaited = getattr(task, "_fut_waiter", None) or awaited  # the future itself, not its iterator
    waiting = f"  waiting for {awaited!r}\n" if awaited is not None else ""
    return "".join(summary.format()) + waiting

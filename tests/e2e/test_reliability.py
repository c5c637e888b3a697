"""Issue 5's heaviest proofs, run by the harness `python -m bench.reliability` (which lists and
checks every invariant): daemons are real OS processes (examples/python_daemon.py) on
`workengine serve` processes sharing one database.

- Crash test: daemons SIGKILLed while they hold a task; once the leases expire, other daemons
  finish the tasks, and every task ends DONE exactly once.
- Concurrency invariant: 16 daemons on 2 servers, 2,000 tasks in a dependency graph, some
  daemons SIGKILLed and replaced: each attempt started by exactly one daemon, one completion
  per task, no dependent started before its dependencies completed, every event accounted
  for, and a watch on the other server received exactly the event log.

And the example daemons (the Python one those runs use, and the TypeScript one) stop work as
soon as a heartbeat is refused, and finish and report the task in hand on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from bench.reliability import Report, Settings, run
from tests.e2e.daemons import Daemon, daemon_command, read_log
from workengine.client import AsyncWorkEngineClient
from workengine.v1 import task_pb2


def assert_clean(report: Report, settings: Settings) -> None:
    assert report.failures == [], "\n".join(report.failures[:30])
    assert (report.done, report.lost, report.duplicates) == (settings.tasks, 0, 0)
    # `kills` daemons were killed holding a task, which then came back through its lease (a
    # kill that lands just after a completion committed does not count; the harness kills
    # another).
    assert report.killed_mid_task == settings.kills <= report.killed
    assert report.lease_expiries >= settings.kills
    assert report.daemons == settings.daemons + report.killed
    assert report.attempts == settings.tasks + report.lease_expiries
    assert report.streamed == report.events


def test_daemons_killed_mid_task_lose_nothing_and_repeat_nothing(empty_database_url: str) -> None:
    # Work long enough (0.3 s) that a kill always lands inside a task.
    settings = Settings(tasks=200, daemons=6, kills=3, lease_seconds=2, work_seconds=0.3, limit_seconds=120)

    report = run(empty_database_url, settings)

    assert_clean(report, settings)


def test_sixteen_daemons_on_two_servers_keep_every_invariant_over_2000_tasks(
    empty_database_url: str,
) -> None:
    settings = Settings(tasks=2_000, daemons=16, servers=2, kills=4, limit_seconds=180)

    report = run(empty_database_url, settings)

    assert_clean(report, settings)


@pytest.mark.parametrize("language", ["python", "typescript"])
async def test_the_example_daemon_stops_work_as_soon_as_a_heartbeat_is_refused(
    target: str, tmp_path: Path, language: str
) -> None:
    command = daemon_command(language)
    log = tmp_path / "daemon.jsonl"
    async with AsyncWorkEngineClient(target) as client:
        await client.register_orchestrator("Beats", orchestrator_id="beats")
        cancelled = await client.create_task("beats", "ws", "cancelled while it runs")
        args = ["--target", target, "--orchestrator", "beats", "--name", "hb-1", "--log", str(log)]
        # A 2 s lease: heartbeats every 0.67 s. Work (60 s) would outlast the test by far.
        daemon = await Daemon.start(command(*args, "--lease-duration", "2", "--work-seconds", "60"))
        try:
            await read_log(log, 1)
            await client.cancel_task(cancelled.id, "no longer needed")
            # The next heartbeat is refused: the daemon drops the task well before its work ends.
            await read_log(log, 2, within=5)

            frozen = await client.create_task("beats", "ws", "its daemon freezes")
            await read_log(log, 3)
            daemon.signal_group(signal.SIGSTOP)  # past its lease: the task goes back to TODO
            await asyncio.sleep(3)
            daemon.signal_group(signal.SIGCONT)
            entries = await read_log(log, 5, within=10)  # gives it up, then claims it again
            attempts = await client.get_task_attempts(frozen.id)
        finally:
            daemon.kill()
            await daemon.process.wait()

    assert [(e["event"], e["task"], e["attempt"], e.get("reason")) for e in entries[:5]] == [
        ("claimed", cancelled.id, 1, None),
        ("gave_up", cancelled.id, 1, "TASK_CANCELLED"),
        ("claimed", frozen.id, 1, None),
        ("gave_up", frozen.id, 1, "LEASE_EXPIRED"),
        ("claimed", frozen.id, 2, None),
    ]
    assert [(a.identity, a.outcome) for a in attempts] == [
        ("hb-1", task_pb2.ATTEMPT_OUTCOME_LEASE_EXPIRED),
        ("hb-1", task_pb2.ATTEMPT_OUTCOME_RUNNING),
    ]


@pytest.mark.parametrize("language", ["python", "typescript"])
async def test_the_example_daemon_asked_to_stop_mid_task_finishes_and_reports_it(
    target: str, tmp_path: Path, language: str
) -> None:
    command = daemon_command(language)
    log = tmp_path / "daemon.jsonl"
    async with AsyncWorkEngineClient(target) as client:
        await client.register_orchestrator("Stops", orchestrator_id="stops")
        running = await client.create_task("stops", "ws", "under way at SIGTERM")
        args = ["--target", target, "--orchestrator", "stops", "--name", "st-1", "--log", str(log)]
        daemon = await Daemon.start(command(*args, "--work-seconds", "2"))
        await read_log(log, 1)
        # Ready for the daemon's next claim, which SIGTERM must prevent.
        waiting = await client.create_task("stops", "ws", "created before SIGTERM")
        daemon.process.send_signal(signal.SIGTERM)
        result = await daemon.result(limit=30)
        done = await client.get_task(running.id)
        left = await client.get_task(waiting.id)
        entries = await read_log(log, 2)

    assert result.returncode == 0, result.stderr
    assert [line["task"] for line in result.lines] == [running.id]
    assert done.status == task_pb2.TASK_STATUS_DONE  # reported, not left to its lease
    assert left.status == task_pb2.TASK_STATUS_TODO  # no claim once asked to stop
    assert [(e["event"], e["task"]) for e in entries] == [("claimed", running.id), ("completed", running.id)]

"""Done means: a TypeScript daemon and a Python daemon process the same queue concurrently, and
no task ever runs twice. Both run as real processes against a live server; everything is
checked afterwards through the Python client and the event log (WatchTaskProgress). And each of
them behaves the same on its own: drops a cancelled task, keeps a task longer than its lease by
heartbeating, stops cleanly on SIGTERM (see also tests/e2e/test_reliability.py), and prints
each context's history and estimate, leaving a lesson when its work fails."""

from __future__ import annotations

import asyncio
import re
import signal
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from tests.e2e.daemons import (
    Daemon,
    daemon_command,
    python_daemon_command,
    read_log,
    require_typescript_toolchain,
    run_daemon,
    typescript_daemon_command,
)
from workengine.client import AsyncWorkEngineClient
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb

TASKS = 60
ORCHESTRATOR = "fleet"


async def _collect_events(
    client: AsyncWorkEngineClient, events: list[task_pb2.TaskEvent], snapshot_done: asyncio.Event
) -> None:
    """Every event of the fleet's tasks, from the snapshot until all of them COMPLETED."""
    async for event in client.watch_task_progress(orchestrator_id=ORCHESTRATOR):
        events.append(event)
        if sum(e.kind == task_pb2.TASK_EVENT_KIND_SNAPSHOT for e in events) == TASKS:
            snapshot_done.set()
        if sum(e.kind == task_pb2.TASK_EVENT_KIND_COMPLETED for e in events) == TASKS:
            return


async def test_a_typescript_and_a_python_daemon_share_one_queue_without_running_a_task_twice(
    target: str,
) -> None:
    require_typescript_toolchain()
    async with AsyncWorkEngineClient(target) as client:
        # The queue: TASKS tasks held BLOCKED behind a gate (a task of another orchestrator),
        # so that both daemons are up and long-polling before any of them becomes ready.
        await client.register_orchestrator("Fleet", orchestrator_id=ORCHESTRATOR)
        await client.register_orchestrator("Gatekeeper", orchestrator_id="gatekeeper")
        gate = await client.create_task("gatekeeper", "ws-polyglot", "gate")
        created = [
            (await client.create_task(ORCHESTRATOR, "ws-polyglot", f"task {n}", depends_on=[gate.id])).id
            for n in range(TASKS)
        ]
        events: list[task_pb2.TaskEvent] = []
        snapshot_done = asyncio.Event()
        watcher = asyncio.create_task(_collect_events(client, events, snapshot_done))
        await asyncio.wait_for(snapshot_done.wait(), 30)

        common = ["--target", target, "--orchestrator", ORCHESTRATOR, "--exit-when-idle"]
        common += ["--wait", "5", "--work-seconds", "0.02"]
        python = await Daemon.start(python_daemon_command(*common, "--name", "py-1"))
        typescript = await Daemon.start(typescript_daemon_command(*common, "--name", "ts-1"))
        await asyncio.gather(python.ready(), typescript.ready())
        unblocked = await client.cancel_task(gate.id, "open the gate")  # all TASKS become TODO at once
        python_run, typescript_run = await asyncio.gather(python.result(), typescript.result())
        assert python_run.returncode == 0, python_run.stderr
        assert typescript_run.returncode == 0, typescript_run.stderr
        await asyncio.wait_for(watcher, 30)

        tasks = {task.id: task async for task in client.list_tasks(orchestrator_id=ORCHESTRATOR)}

    assert unblocked.status == task_pb2.TASK_STATUS_CANCELLED
    by_python = [line["task"] for line in python_run.lines]
    by_typescript = [line["task"] for line in typescript_run.lines]
    # Each daemon did some of the work, and together they did all of it exactly once.
    assert by_python and by_typescript, (len(by_python), len(by_typescript))
    assert sorted(by_python + by_typescript) == sorted(created)

    for task_id in created:
        task = tasks[task_id]
        assert task.status == task_pb2.TASK_STATUS_DONE
        assert task.attempt == 1
        expected = ("python", "py-1") if task_id in by_python else ("typescript", "ts-1")
        output = task.result.output
        assert (output["by"], output["daemon"]) == expected
        assert output["title"] if expected[0] == "typescript" else output["summary"]

    # The event log agrees: every task was started exactly once and completed exactly once.
    started = Counter(e.task.id for e in events if e.kind == task_pb2.TASK_EVENT_KIND_STARTED)
    completed = Counter(e.task.id for e in events if e.kind == task_pb2.TASK_EVENT_KIND_COMPLETED)
    assert started == Counter(created)
    assert completed == Counter(created)
    assert all(e.attempt == 1 for e in events if e.kind == task_pb2.TASK_EVENT_KIND_STARTED)
    progress = {e.task.id: e for e in events if e.kind == task_pb2.TASK_EVENT_KIND_PROGRESS}
    assert len(progress) == TASKS
    for task_id, event in progress.items():
        daemon = "py-1" if task_id in by_python else "ts-1"
        assert (event.progress, event.message) == (50, f"{daemon} is halfway")

    # The TypeScript daemon's own WatchTaskProgress subscription saw each of its tasks through.
    for line in typescript_run.lines:
        assert line["attempt"] == 1
        assert line["events"][0] == "SNAPSHOT", line
        assert line["events"][-2:] == ["PROGRESS", "COMPLETED"], line


@pytest.mark.parametrize("language", ["python", "typescript"])
async def test_a_daemon_drops_a_task_cancelled_while_it_works_and_goes_on(target: str, language: str) -> None:
    command = daemon_command(language)
    async with AsyncWorkEngineClient(target) as client:
        await client.register_orchestrator("Fleet", orchestrator_id=ORCHESTRATOR)
        doomed = await client.create_task(ORCHESTRATOR, "ws", "doomed")
        events = client.watch_task_progress(task_id=doomed.id, keep_open=True)
        assert (await anext(events)).kind == task_pb2.TASK_EVENT_KIND_SNAPSHOT

        args = ["--target", target, "--orchestrator", ORCHESTRATOR, "--exit-when-idle", "--wait", "1"]
        daemon = asyncio.create_task(run_daemon(command(*args, "--work-seconds", "3", "--name", "d-1")))
        started = await asyncio.wait_for(anext(events), 60)
        assert started.kind == task_pb2.TASK_EVENT_KIND_STARTED
        await client.cancel_task(doomed.id, "no longer needed")
        later = await client.create_task(ORCHESTRATOR, "ws", "still wanted")
        run = await daemon
        final = {task.id: task async for task in client.list_tasks(orchestrator_id=ORCHESTRATOR)}

    assert run.returncode == 0, run.stderr
    assert f"d-1: gave up {doomed.id}" in run.stderr
    assert [line["task"] for line in run.lines] == [later.id]
    assert final[doomed.id].status == task_pb2.TASK_STATUS_CANCELLED
    assert final[later.id].status == task_pb2.TASK_STATUS_DONE


@pytest.mark.parametrize("language", ["python", "typescript"])
async def test_a_daemon_stops_cleanly_on_sigterm_between_claims(target: str, language: str) -> None:
    command = daemon_command(language)
    async with AsyncWorkEngineClient(target) as client:
        await client.register_orchestrator("Fleet", orchestrator_id=ORCHESTRATOR)
    daemon = await Daemon.start(command("--target", target, "--orchestrator", ORCHESTRATOR, "--name", "d-2"))
    await daemon.ready()

    daemon.process.send_signal(signal.SIGTERM)  # it is long-polling (1 s) for work that never comes
    run = await daemon.result(limit=30)

    assert run.returncode == 0, run.stderr
    assert run.lines == []
    assert "d-2: processed 0 tasks" in run.stderr


@pytest.mark.parametrize("language", ["python", "typescript"])
async def test_a_daemon_keeps_a_task_longer_than_its_lease_by_heartbeating(
    target: str, tmp_path: Path, language: str
) -> None:
    command = daemon_command(language)
    log = tmp_path / "daemon.jsonl"
    lease = timedelta(seconds=2)
    async with AsyncWorkEngineClient(target) as client:
        await client.register_orchestrator("Fleet", orchestrator_id=ORCHESTRATOR)
        task = await client.create_task(ORCHESTRATOR, "ws", "outlasts its lease")
        args = ["--target", target, "--orchestrator", ORCHESTRATOR, "--exit-when-idle", "--wait", "1"]
        args += ["--name", "hb-2", "--log", str(log), "--lease-duration", str(lease.total_seconds())]
        # 5 s of work on a 2 s lease, with the test server reaping expired leases every 0.2 s:
        # only the heartbeats (every 0.67 s) keep the task from going back to TODO.
        daemon = asyncio.create_task(run_daemon(command(*args, "--work-seconds", "5")))
        await read_log(log, 1, within=60)
        await asyncio.sleep(lease.total_seconds() + 1)
        midway = await client.get_task(task.id)
        run = await daemon
        final = await client.get_task(task.id)
        attempts = await client.get_task_attempts(task.id)

    assert run.returncode == 0, run.stderr
    assert "gave up" not in run.stderr
    assert [line["task"] for line in run.lines] == [task.id]
    # Past the lease the claim granted, still the first attempt's, its lease pushed further on.
    assert (midway.status, midway.attempt) == (task_pb2.TASK_STATUS_IN_PROGRESS, 1)
    held = midway.lease_expire_time.ToDatetime() - midway.start_time.ToDatetime()
    assert held > lease + timedelta(seconds=1), held
    assert (final.status, final.attempt) == (task_pb2.TASK_STATUS_DONE, 1)
    assert [(a.identity, a.outcome) for a in attempts] == [("hb-2", task_pb2.ATTEMPT_OUTCOME_COMPLETED)]


@pytest.mark.parametrize("language", ["python", "typescript"])
async def test_a_daemon_prints_each_contexts_history_and_estimate_and_leaves_a_lesson_when_it_fails(
    target: str, language: str
) -> None:
    command = daemon_command(language)
    async with AsyncWorkEngineClient(target) as client:
        await client.register_orchestrator("Fleet", orchestrator_id=ORCHESTRATOR)
        # The daemons' stand-in work fails a task whose metadata says so, with its lesson.
        failing = {"fail": "rate limited", "lesson": "wait 1 s between calls"}
        flaky = await client.create_task(ORCHESTRATOR, "ws-h", "call the API", metadata=failing)
        # Its first attempt fails by hand, as another daemon's would; then it is retried.
        first = await client.claim_next_task(ORCHESTRATOR)
        assert first.context.task.id == flaky.id
        await client.complete_task(
            flaky.id, 1, pb.COMPLETION_STATUS_FAILED, error="timed out", lessons=["raise the timeout"]
        )
        await client.retry_task(flaky.id)
        plain = [(await client.create_task(ORCHESTRATOR, "ws-h", f"plain {n}")).id for n in range(6)]
        args = ["--target", target, "--orchestrator", ORCHESTRATOR, "--exit-when-idle", "--name", "h-1"]
        run = await run_daemon(command(*args))
        failed = await client.get_task(flaky.id)

    assert run.returncode == 0, run.stderr
    # The oldest task first: the retried one, which fails again, then the plain ones.
    outcomes = [(line["task"], line["attempt"], line["outcome"]) for line in run.lines]
    assert outcomes == [(flaky.id, 2, "failed")] + [(task_id, 1, "completed") for task_id in plain]
    assert (failed.status, failed.result.error) == (task_pb2.TASK_STATUS_FAILED, "rate limited")
    assert list(failed.result.lessons) == ["wait 1 s between calls"]

    # The retried task recalls its first attempt and its lesson; one finished sample is too few.
    assert (
        f'h-1: claimed {flaky.id} #2; history:\nh-1:   SAME_TASK {flaky.id} "call the API" #1: FAILED in '
    ) in run.stderr
    assert (
        ", timed out; lessons: raise the timeout\n"
        "h-1:   estimate: too few samples (0 completed / 1 finished in the widest group; 5 needed)\n"
    ) in run.stderr
    # The first plain task recalls the flaky task's two attempts (a similar task: same tags, none).
    assert f'SIMILAR_TASK {flaky.id} "call the API" #2: FAILED in ' in run.stderr
    # The fourth plain task: 5 finished attempts (2 failed), only 3 completed.
    group = "ORCHESTRATOR_WORKSPACE_TAGS"
    assert (
        f"h-1:   estimate: run time: too few samples; failure share 40% ({group}, 5 finished)\n"
    ) in run.stderr
    # The sixth plain task's history is full (5 entries); its estimate has run times too.
    sixth = re.search(
        rf"h-1: claimed {re.escape(plain[5])} #1; history:\n((?:h-1:   SIMILAR_TASK .*\n){{5}})"
        rf"h-1:   estimate: p50 \d+\.\ds, p90 \d+\.\ds \({group}, 5 completed\);"
        rf" failure share 29% \({group}, 7 finished\)\n",
        run.stderr,
    )
    assert sixth, run.stderr
    assert f'SIMILAR_TASK {plain[4]} "plain 4" #1: COMPLETED in ' in sixth.group(1)

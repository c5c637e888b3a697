"""Two `workengine serve` processes on one database: a subscriber of one sees, in order, what
is posted through the other (LISTEN/NOTIFY, or polling with --no-listen); and `workengine
watch` as a user runs it, with plain lines in a pipe and progress bars on a terminal."""

from __future__ import annotations

import os
import pty
import re
import select
import socket
import subprocess
import time
from collections.abc import Iterator

import grpc
import pytest

from tests.e2e.serving import WORKENGINE, ServeProcess, clean_env, cli
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

READ_TIMEOUT = 15.0


@pytest.fixture(params=["listen", "no-listen"])
def replicas(request: pytest.FixtureRequest, empty_database_url: str) -> Iterator[tuple[str, str]]:
    mode = ["--no-listen"] if request.param == "no-listen" else []
    first = ServeProcess("--database-url", empty_database_url, *mode, env=clean_env())
    servers = [first]
    try:
        first.wait_listening()  # migrated before the second one starts
        second = ServeProcess("--database-url", empty_database_url, "--no-migrate", *mode, env=clean_env())
        servers.append(second)
        yield first.target, second.wait_listening()
    finally:
        for server in servers:
            server.kill()


def run_task_through(writer: pb_grpc.WorkEngineServiceStub, task_id: str, steps: list[int]) -> None:
    started: pb.ExecuteTaskResponse = writer.ExecuteTask(
        pb.ExecuteTaskRequest(orchestrator_id="ada", task_id=task_id)
    )
    for percent in steps:
        writer.UpdateTaskProgress(
            pb.UpdateTaskProgressRequest(
                task_id=task_id, attempt=started.attempt, progress=percent, message=f"at {percent}"
            )
        )
    writer.CompleteTask(
        pb.CompleteTaskRequest(
            task_id=task_id, attempt=started.attempt, status=pb.COMPLETION_STATUS_COMPLETED
        )
    )


def test_a_subscriber_of_one_process_sees_progress_posted_through_the_other_in_order(
    replicas: tuple[str, str],
) -> None:
    watched_target, writer_target = replicas
    with grpc.insecure_channel(watched_target) as watched, grpc.insecure_channel(writer_target) as written:
        reader = pb_grpc.WorkEngineServiceStub(watched)
        writer = pb_grpc.WorkEngineServiceStub(written)
        writer.RegisterOrchestrator(pb.RegisterOrchestratorRequest(orchestrator_id="ada", display_name="Ada"))
        task = writer.CreateTask(
            pb.CreateTaskRequest(orchestrator_id="ada", workspace_id="ws", title="replicated")
        ).task
        stream = reader.WatchTaskProgress(pb.WatchTaskProgressRequest(task_id=task.id), timeout=READ_TIMEOUT)
        events = iter(stream)
        assert next(events).event.kind == task_pb2.TASK_EVENT_KIND_SNAPSHOT

        steps = list(range(5, 100, 5))
        run_task_through(writer, task.id, steps)
        received = [response.event for response in events]  # the task watch ends at DONE

    assert [(e.kind, e.progress) for e in received] == [
        (task_pb2.TASK_EVENT_KIND_STARTED, 0),
        *[(task_pb2.TASK_EVENT_KIND_PROGRESS, p) for p in steps],
        (task_pb2.TASK_EVENT_KIND_COMPLETED, 0),
    ]
    cursors = [e.cursor for e in received]
    assert cursors == sorted(set(cursors))


def watch_in_a_pipe(task_id: str, target: str) -> subprocess.Popen[str]:
    """`workengine watch --task` with its output to a pipe (plain lines), as a script runs it."""
    return subprocess.Popen(
        [WORKENGINE, "watch", "--task", task_id, "--target", target],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_workspace_watch_in_a_pipe_prints_one_plain_line_per_event(served: ServeProcess) -> None:
    target = served.target
    cli(target, "orchestrator", "register", "--name", "Ada", "--id", "ada")
    task = cli(target, "task", "create", "--orchestrator", "ada", "--workspace", "ws", "--title", "Piped")
    watcher = watch_in_a_pipe(task["id"], target)
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline()
        assert " SNAPSHOT " in first and task["id"] in first
        with grpc.insecure_channel(target) as channel:
            run_task_through(pb_grpc.WorkEngineServiceStub(channel), task["id"], [30, 70])
        out, err = watcher.communicate(timeout=READ_TIMEOUT)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    lines = out.splitlines()
    assert [line.split()[2] for line in lines] == ["STARTED", "PROGRESS", "PROGRESS", "COMPLETED"]
    # The report's ETA, by its rate (30 % right after the start: moments away), beside it.
    assert re.fullmatch(r"\(~\d+ s left\) at 30", lines[1].split(" ", 6)[6]), lines[1]
    assert lines[1].split()[3:6] == [task["id"], "IN_PROGRESS", "30%"]
    assert "\x1b[" not in out


def test_watch_on_a_terminal_draws_a_progress_bar_per_task_in_place(served: ServeProcess) -> None:
    target = served.target
    cli(target, "orchestrator", "register", "--name", "Ada", "--id", "ada")
    first = cli(target, "task", "create", "--orchestrator", "ada", "--workspace", "ws", "--title", "First")
    second = cli(target, "task", "create", "--orchestrator", "ada", "--workspace", "ws", "--title", "Second")
    controller, terminal = pty.openpty()
    watcher = subprocess.Popen(
        [WORKENGINE, "watch", "--orchestrator", "ada", "--target", target],
        stdout=terminal,
        stderr=terminal,
        env=clean_env(COLUMNS="120"),
    )
    os.close(terminal)
    try:
        screen = _read_until(controller, "Second")
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.WorkEngineServiceStub(channel)
            run_task_through(stub, first["id"], [50])
            run_task_through(stub, second["id"], [25])
        screen += _read_until(controller, "DONE", after_count=screen.count("DONE") + 2)
    finally:
        watcher.kill()
        watcher.wait()
        os.close(controller)
    assert "First" in screen and "Second" in screen
    assert "[" + "#" * 12 + "-" * 12 + "]  50%" in screen
    assert re.search(r"\]  50% ~\d+ s left IN_PROGRESS +at 50", screen), screen  # its ETA beside it
    assert "[" + "#" * 24 + "] 100% DONE" in screen
    assert "\x1b[2F" in screen  # moved back up over both bars to redraw them


def test_watch_resumes_from_its_last_cursor_across_a_server_restart(empty_database_url: str) -> None:
    port = _free_port()  # both servers listen here, as a restarted service would
    first = ServeProcess("--database-url", empty_database_url, "--port", str(port), env=clean_env())
    target = first.wait_listening()
    cli(target, "orchestrator", "register", "--name", "Ada", "--id", "ada")
    task = cli(target, "task", "create", "--orchestrator", "ada", "--workspace", "ws", "--title", "Long")
    watcher = watch_in_a_pipe(task["id"], target)
    second: ServeProcess | None = None
    try:
        assert watcher.stdout is not None
        assert " SNAPSHOT " in watcher.stdout.readline()
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.WorkEngineServiceStub(channel)
            started = stub.ExecuteTask(pb.ExecuteTaskRequest(orchestrator_id="ada", task_id=task["id"]))
            assert " STARTED " in watcher.stdout.readline()
        assert first.terminate() == 0
        second = ServeProcess("--database-url", empty_database_url, "--port", str(port), env=clean_env())
        second.wait_listening()
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.WorkEngineServiceStub(channel)
            stub.UpdateTaskProgress(
                pb.UpdateTaskProgressRequest(task_id=task["id"], attempt=started.attempt, progress=80)
            )
            done = pb.COMPLETION_STATUS_COMPLETED
            stub.CompleteTask(
                pb.CompleteTaskRequest(task_id=task["id"], attempt=started.attempt, status=done)
            )
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
        first.kill()
        if second is not None:
            second.kill()
    assert watcher.returncode == 0, err
    assert [line.split()[2] for line in out.splitlines()] == ["PROGRESS", "COMPLETED"]
    assert "reconnecting after cursor" in err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _read_until(fd: int, text: str, *, after_count: int = 1, timeout: float = READ_TIMEOUT) -> str:
    seen = ""
    deadline = time.monotonic() + timeout
    while seen.count(text) < after_count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"never saw {text!r} {after_count} times in {seen!r}"
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            seen += os.read(fd, 65536).decode(errors="replace")
    return seen

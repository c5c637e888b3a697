"""Gaps a review of the clients found, each reproduced as a failing test before its fix and kept
as a regression: daemons riding out a server restart and long tasks, CI's buf breaking on main,
generation checks and bytecode caches, documented grpcurl commands that could escape their
test, proto comments that must match the server, client options, enum values over reflection,
and an asyncio watch that must cancel its stream."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

import tests.e2e.test_docs_grpcurl as grpcurl_doc_test
from tests.e2e.daemons import (
    Daemon,
    python_daemon_command,
    require_typescript_toolchain,
    run_daemon,
    typescript_daemon_command,
)
from tests.e2e.grpcurl import grpcurl
from tests.tools import extra_tool, path_with_test_tools, typescript_node_modules
from workengine.api.server import start_server
from workengine.client import AsyncWorkEngineClient, WorkEngineClient
from workengine.engine import WorkEngine
from workengine.store.database import Database
from workengine.v1 import orchestrator_pb2, task_pb2
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Daemons ride out a server restart


@pytest.mark.parametrize("language", ["python", "typescript"])
async def test_daemon_survives_a_server_restart_and_processes_the_next_task(
    database_url: str, language: str
) -> None:
    """A daemon spends its life long-polling ClaimNextTask. When the server restarts (deploy,
    crash), that claim fails (UNAVAILABLE, or CANCELLED for the one in flight): the daemon backs
    off and claims again once the server is back, and processes the task created after it."""
    if language == "typescript":
        require_typescript_toolchain()
    command = typescript_daemon_command if language == "typescript" else python_daemon_command
    port = _free_port()
    target = f"127.0.0.1:{port}"
    engine = WorkEngine(Database(database_url, pool_size=5))
    server = await start_server(engine, "127.0.0.1", port)
    async with AsyncWorkEngineClient(target) as client:
        await client.register_orchestrator("Fleet", orchestrator_id="fleet")
    daemon = await Daemon.start(command("--target", target, "--orchestrator", "fleet", "--name", "d-r"))
    try:
        await daemon.ready()
        await server.stop(1)
        await engine.close()
        await asyncio.sleep(1.5)  # the server is being redeployed
        engine = WorkEngine(Database(database_url, pool_size=5))
        server = await start_server(engine, "127.0.0.1", port)
        async with AsyncWorkEngineClient(target) as client:
            task = await client.create_task("fleet", "ws", "after the restart")
            for _ in range(40):
                if (await client.get_task(task.id)).status == task_pb2.TASK_STATUS_DONE:
                    break
                await asyncio.sleep(0.5)
            final = await client.get_task(task.id)
        alive = daemon.process.returncode is None
    finally:
        if daemon.process.returncode is None:
            daemon.process.send_signal(signal.SIGTERM)
        run = await daemon.result(limit=30)
        await server.stop(0)
        await engine.close()

    assert alive, f"the {language} daemon exited on the restart: {run.stderr[-400:]}"
    assert final.status == task_pb2.TASK_STATUS_DONE, task_pb2.TaskStatus.Name(final.status)


# The TypeScript daemon finishes long tasks


async def test_typescript_daemon_finishes_a_task_that_takes_longer_than_30_seconds(target: str) -> None:
    """A task longer than 30 s: the daemon's WatchTaskProgress subscription must not turn into an
    unhandled rejection (which used to kill Node mid-task and strand the task IN_PROGRESS)."""
    require_typescript_toolchain()
    async with AsyncWorkEngineClient(target) as client:
        await client.register_orchestrator("Slow", orchestrator_id="slow")
        task = await client.create_task("slow", "ws", "a 31-second job")
        args = ["--target", target, "--orchestrator", "slow", "--name", "ts-slow", "--exit-when-idle"]
        run = await run_daemon(typescript_daemon_command(*args, "--work-seconds", "31"), limit=90)
        final = await client.get_task(task.id)

    assert run.returncode == 0, run.stderr[-600:]
    assert final.status == task_pb2.TASK_STATUS_DONE, task_pb2.TaskStatus.Name(final.status)


# CI's buf breaking fails on main for a break of anything added after the first commit


def test_ci_buf_breaking_fails_when_main_breaks_a_field_added_after_the_first_commit(tmp_path: Path) -> None:
    """CI runs in a fresh clone of the submitted main, where HEAD is main and a comparison with
    main is vacuous: .ci/run's buf breaking block must still fail on a wire break of anything
    added after the first commit (here WatchTaskProgressRequest.keep_open, bool -> string)."""
    buf = extra_tool("buf")
    clone = tmp_path / "clone"
    git = ["git", "-c", "user.email=review@example.invalid", "-c", "user.name=review"]
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    subprocess.run([*git, "checkout", "-q", "-B", "main"], cwd=clone, check=True)
    proto = clone / "protos" / "workengine" / "v1" / "work_engine_service.proto"
    text = proto.read_text()
    assert "  bool keep_open = 6;" in text
    proto.write_text(text.replace("  bool keep_open = 6;", "  string keep_open = 6;"))
    subprocess.run([*git, "commit", "-q", "-am", "break keep_open on main"], cwd=clone, check=True)
    ci = (clone / ".ci" / "run").read_text()
    block = ci[ci.index('echo "== buf breaking"') : ci.index('echo "== generated code')]
    env = {**os.environ, "PATH": f"{Path(buf).parent}:{os.environ['PATH']}", "CI": "true"}

    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=clone, env=env, capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip

    assert result.returncode != 0, "the wire break passed CI's buf breaking:\n" + result.stdout


# generate_protos.py --check ignores bytecode caches


def test_generate_check_ignores_python_bytecode_caches() -> None:
    """After any import of workengine.v1 (bytecode writing on, Python's default), --check must
    not report the __pycache__ files as stale generated code."""
    typescript_node_modules()  # protoc-gen-es
    cache = ROOT / "src" / "workengine" / "v1" / "__pycache__"
    existed = cache.exists()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PATH"] = path_with_test_tools()  # buf and ruff
    subprocess.run([sys.executable, "-c", "import workengine.v1.task_pb2"], env=env, check=True)
    try:
        result = subprocess.run(
            [sys.executable, "scripts/generate_protos.py", "--check"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
    finally:
        if not existed:
            shutil.rmtree(cache, ignore_errors=True)

    assert result.returncode == 0, result.stdout + result.stderr


# docs/grpcurl.md edits cannot escape test_docs_grpcurl.py


async def test_grpcurl_doc_test_fails_when_an_earlier_duplicate_command_fails(
    target: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two commands of the same kind are both checked: a broken UpdateTaskProgress (a stale
    attempt, FAILED_PRECONDITION) placed before the good one fails the docs/grpcurl.md test."""
    text = grpcurl_doc_test.GRPCURL_DOC.read_text()
    good = 'grpcurl -plaintext -d \'{"task_id": "spec-1", "attempt": 1, "progress": 50'
    assert good in text
    broken = (
        'grpcurl -plaintext -d \'{"task_id": "spec-1", "attempt": 7, "progress": 50, '
        '"message": "typo"}\' localhost:50051 workengine.v1.WorkEngineService/UpdateTaskProgress\n'
    )
    doctored = tmp_path / "grpcurl.md"
    doctored.write_text(text.replace(good, broken + good, 1))
    monkeypatch.setattr(grpcurl_doc_test, "GRPCURL_DOC", doctored)
    assert any('attempt": 7' in " ".join(argv) for argv in grpcurl_doc_test.grpcurl_doc_commands())

    with pytest.raises(AssertionError):
        await grpcurl_doc_test.test_every_grpcurl_doc_command_works_against_a_live_server(target)


def test_grpcurl_doc_test_sees_grpcurl_commands_in_every_fenced_shell_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A grpcurl command in any fenced shell block of the page (```sh too) is found and run."""
    text = grpcurl_doc_test.GRPCURL_DOC.read_text()
    extra = "\n```sh\ngrpcurl -plaintext localhost:50051 describe workengine.v1.NoSuchThing\n```\n"
    anchor = "## Check health"
    doctored = tmp_path / "grpcurl.md"
    doctored.write_text(text.replace(anchor, extra + "\n" + anchor, 1))
    monkeypatch.setattr(grpcurl_doc_test, "GRPCURL_DOC", doctored)

    found = [" ".join(argv) for argv in grpcurl_doc_test.grpcurl_doc_commands()]

    assert any("NoSuchThing" in command for command in found)


# Proto comments match the server


async def test_task_result_limits_are_the_ones_the_proto_comments_state(target: str) -> None:
    """task.proto gives each TaskResult field its own limit (metrics: 64 KiB as JSON); the
    server enforces exactly that, naming the field."""
    comments = (ROOT / "protos" / "workengine" / "v1" / "task.proto").read_text()
    assert "at most 64 KiB as JSON; larger is INVALID_ARGUMENT naming result.metrics" in comments
    async with AsyncWorkEngineClient(target) as client:
        await client.register_orchestrator("Ada", orchestrator_id="ada")
        await client.create_task("ada", "ws", "measure")
        claimed = await client.claim_next_task("ada")
        task_id, attempt = claimed.context.task.id, claimed.attempt
        with pytest.raises(grpc.RpcError) as refused:
            await client.complete_task(task_id, attempt, output={"ok": True}, metrics={"s": "x" * 70_000})
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "result.metrics" in (refused.value.details() or "")
        done = await client.complete_task(task_id, attempt, output={"ok": True}, metrics={"s": "x" * 60_000})
    assert done.task.status == task_pb2.TASK_STATUS_DONE


async def test_failed_is_documented_as_final_unless_retried_and_is(target: str) -> None:
    """The TaskStatus comment says a FAILED task stays FAILED unless RetryTask puts it back: a
    daemon author reading it is not misled. ExecuteTask refuses, ClaimNextTask never hands it out."""
    comments = (ROOT / "protos" / "workengine" / "v1" / "task.proto").read_text()
    assert "FAILED is final unless RetryTask" in comments
    async with AsyncWorkEngineClient(target) as client:
        await client.register_orchestrator("Ada", orchestrator_id="ada")
        task = await client.create_task("ada", "ws", "flaky")
        claimed = await client.claim_next_task("ada")
        await client.complete_task(task.id, claimed.attempt, pb.COMPLETION_STATUS_FAILED, error="boom")
        assert not (await client.claim_next_task("ada")).HasField("context")
        with pytest.raises(grpc.RpcError) as refused:
            await client.execute_task("ada", task.id)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


# The typed clients set every request field


@pytest.mark.parametrize("client_class", [WorkEngineClient, AsyncWorkEngineClient])
def test_register_orchestrator_exposes_every_request_field(
    client_class: type[WorkEngineClient] | type[AsyncWorkEngineClient],
) -> None:
    """RegisterOrchestratorRequest has daemon_endpoint and status (the RPC's comment: "ONLINE
    unless another status is given"): both clients' register_orchestrator take them."""
    parameters = inspect.signature(client_class.register_orchestrator).parameters

    assert {"daemon_endpoint", "status"} <= set(parameters), sorted(parameters)
    assert orchestrator_pb2.ORCHESTRATOR_STATUS_AWAY  # the value a caller would pass


# Enum values are describable through reflection


async def test_grpcurl_describes_an_enum_value_with_its_comment(target: str) -> None:
    """An enum value is describable through reflection, with its comment (grpcurl names it
    inside its enum)."""
    result = await grpcurl(target, "describe", "workengine.v1.TaskStatus.TASK_STATUS_DONE")

    assert result.returncode == 0, result.stderr
    assert "Terminal." in result.stdout


# The asyncio watch cancels its stream when the caller stops


class _EndlessWatch(pb_grpc.WorkEngineServiceServicer):
    """A WatchTaskProgress that streams until cancelled, and records when it ends."""

    def __init__(self) -> None:
        self.ended = asyncio.Event()

    async def WatchTaskProgress(self, request: Any, context: Any) -> AsyncIterator[Any]:
        try:
            for cursor in range(1, 1_000_000):
                yield pb.WatchTaskProgressResponse(event=task_pb2.TaskEvent(cursor=cursor))
                await asyncio.sleep(0.05)
        finally:
            self.ended.set()


async def test_closing_an_async_watch_cancels_the_server_stream() -> None:
    """When the consumer of `watch_task_progress` stops (break, then `aclose()`), the server's
    stream ends too, instead of streaming into the void until the channel closes."""
    servicer = _EndlessWatch()
    server = grpc.aio.server()
    pb_grpc.add_WorkEngineServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with AsyncWorkEngineClient(f"127.0.0.1:{port}") as client:
            events = client.watch_task_progress(task_id="t-1")
            async for event in events:
                if event.cursor == 3:
                    break
            await events.aclose()  # type: ignore[attr-defined]
            try:
                await asyncio.wait_for(servicer.ended.wait(), 5)
                ended = True
            except TimeoutError:
                ended = False
    finally:
        await server.stop(0)

    assert ended, "the server stream was still running 5 s after the watch was closed"

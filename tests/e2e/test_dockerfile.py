"""The Dockerfile: hadolint-clean, copies only what exists, runs `workengine serve` as non-root
with a gRPC health check that works.

No Docker engine is needed: the file is parsed here. The health check command is also run, as
the container would run it, against a real server from the test harness (under TLS too:
test_healthcheck.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2

from tests.e2e.serving import WORKENGINE
from tests.tools import extra_tool
from workengine.api.server import SERVICE_NAME, RunningServer

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
SERVICE = "workengine.v1.WorkEngineService"
ROOT_USERS = {"root", "0"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


def parse_instructions(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comment lines dropped (as Docker does,
    also inside a continued instruction). Parser directives are comments here."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        continued = stripped.endswith("\\")
        pending.append(stripped[:-1] if continued else stripped)
        if not continued:
            joined = " ".join(part.strip() for part in pending if part.strip())
            keyword, _, arguments = joined.partition(" ")
            instructions.append(Instruction(keyword.upper(), arguments.strip(), start))
            pending = []
    assert not pending, "the Dockerfile ends inside a line continuation"
    return instructions


def parse_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for instruction in parse_instructions(text):
        if instruction.keyword == "FROM":
            _, words = split_flags(instruction.arguments)
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append(instruction)
        else:
            assert instruction.keyword == "ARG", f"line {instruction.line}: {instruction.keyword} before FROM"
    return stages


def split_flags(arguments: str) -> tuple[dict[str, str], list[str]]:
    """Leading `--name[=value]` flags, then the remaining whitespace-separated words."""
    words = arguments.split()
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        flags[name] = value
    return flags, words


def exec_form(arguments: str, what: str) -> list[str]:
    """A JSON-array (exec form) argument list; shell form is refused (signals would go to sh)."""
    assert arguments.startswith("["), f"{what} must use the exec (JSON array) form: {arguments}"
    value = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value), arguments
    return [str(item) for item in value]


def copy_sources(instruction: Instruction) -> list[str]:
    flags, words = split_flags(instruction.arguments)
    if "from" in flags:
        return []
    rest = instruction.arguments[instruction.arguments.index(words[0]) :] if words else ""
    paths = exec_form(rest, instruction.keyword) if rest.startswith("[") else words
    assert len(paths) >= 2, f"line {instruction.line}: {instruction.keyword} needs a source and a dest"
    return paths[:-1]


def env_values(stage: Stage) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        words = instruction.arguments.split()
        if words and "=" not in words[0]:  # legacy `ENV KEY value with spaces`
            values[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, _, value = word.partition("=")
            values[key] = value.strip("\"'")
    return values


def dockerignore_patterns() -> list[str]:
    if not DOCKERIGNORE.exists():
        return []
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            parts.append("(?:.*/)?")
            index += 3
        elif pattern.startswith("**", index):
            parts.append(".*")
            index += 2
        elif pattern[index] == "*":
            parts.append("[^/]*")
            index += 1
        elif pattern[index] == "?":
            parts.append("[^/]")
            index += 1
        elif pattern[index] == "[":
            end = pattern.find("]", index)
            parts.append(pattern[index : end + 1] if end > index else re.escape("["))
            index = end + 1 if end > index else index + 1
        else:
            parts.append(re.escape(pattern[index]))
            index += 1
    return re.compile("".join(parts))


def dockerignored(relative: str, patterns: list[str]) -> bool:
    """Docker's rule, closely enough: the last matching pattern wins, `!` re-includes, and a
    pattern that matches a parent directory excludes everything under it."""
    path = relative.strip("/")
    candidates = [path] + ["/".join(path.split("/")[:n]) for n in range(1, path.count("/") + 1)]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        cleaned = os.path.normpath(pattern.lstrip("!").strip()).lstrip("/")
        regex = _pattern_regex(cleaned)
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not negated
    return ignored


def healthcheck_command(stage: Stage) -> list[str]:
    instruction = stage.last("HEALTHCHECK")
    assert instruction is not None, "the runtime stage has no HEALTHCHECK"
    _, words = split_flags(instruction.arguments)
    assert words and words[0].upper() == "CMD", f"HEALTHCHECK must run a command: {instruction.arguments}"
    command = instruction.arguments[instruction.arguments.index(words[0]) + len(words[0]) :].strip()
    return exec_form(command, "HEALTHCHECK CMD")


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    assert DOCKERFILE.is_file(), f"{DOCKERFILE} is missing"
    parsed = parse_stages(DOCKERFILE.read_text())
    assert parsed, "the Dockerfile has no FROM"
    return parsed


@pytest.fixture(scope="module")
def runtime(stages: list[Stage]) -> Stage:
    """The final stage: the image `docker build` produces without --target."""
    return stages[-1]


def test_hadolint_passes() -> None:
    result = subprocess.run(
        [extra_tool("hadolint"), "--no-color", "Dockerfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"hadolint failed:\n{result.stdout}{result.stderr}"


def test_is_multi_stage_with_a_slim_python_311_runtime(stages: list[Stage], runtime: Stage) -> None:
    assert len(stages) >= 2, "expected a builder stage and a runtime stage"
    assert runtime.base.startswith("python:3.11-slim"), runtime.base
    names = {stage.name for stage in stages[:-1]}
    mounted_or_copied = " ".join(
        i.arguments for i in runtime.instructions if i.keyword in {"COPY", "RUN"} and "from=" in i.arguments
    )
    assert any(f"from={name}" in mounted_or_copied for name in names if name), (
        "the runtime stage takes nothing from a builder stage"
    )


def test_copy_sources_exist_in_the_build_context(stages: list[Stage]) -> None:
    patterns = dockerignore_patterns()
    checked = 0
    for stage in stages:
        for instruction in stage.all("COPY") + stage.all("ADD"):
            for source in copy_sources(instruction):
                if re.match(r"^(https?|git)://|^git@", source):
                    continue
                relative = source.lstrip("/").removeprefix("./") or "."
                where = f"line {instruction.line}: {instruction.keyword} {source}"
                assert "$" not in relative, f"{where}: variables in COPY sources are not checked"
                matches = (
                    list(ROOT.glob(relative)) if any(c in relative for c in "*?[") else [ROOT / relative]
                )
                assert matches and all(path.exists() for path in matches), f"{where}: not in the repository"
                assert all(path.resolve().is_relative_to(ROOT) for path in matches), f"{where}: outside"
                assert relative == "." or not dockerignored(relative, patterns), (
                    f"{where}: excluded by .dockerignore"
                )
                checked += 1
    assert checked, "no COPY from the build context: the project is never copied in"


def test_dockerignore_keeps_the_context_small() -> None:
    patterns = dockerignore_patterns()
    excluded = (".venv", ".git", ".pytest_cache", ".mypy_cache", "node_modules", "src/workengine/__pycache__")
    for path in excluded:
        assert dockerignored(path, patterns), f".dockerignore does not exclude {path}"
    for path in ("pyproject.toml", "README.md", "src/workengine/cli/__init__.py"):
        assert not dockerignored(path, patterns), f".dockerignore excludes {path}, which the build needs"


def test_runtime_runs_as_a_non_root_user(runtime: Stage) -> None:
    user = runtime.last("USER")
    assert user is not None, "the runtime stage has no USER: it would run as root"
    name = user.arguments.split(":")[0]
    assert name and name not in ROOT_USERS, f"USER {user.arguments} is root"
    commands = [i for i in runtime.instructions if i.keyword in {"ENTRYPOINT", "CMD", "HEALTHCHECK"}]
    assert all(i.line > user.line for i in commands), "USER must come before the commands it applies to"


def test_runtime_runs_workengine_serve(runtime: Stage) -> None:
    entrypoint = runtime.last("ENTRYPOINT")
    cmd = runtime.last("CMD")
    assert entrypoint is not None or cmd is not None, "the runtime stage has neither ENTRYPOINT nor CMD"
    argv = (exec_form(entrypoint.arguments, "ENTRYPOINT") if entrypoint else []) + (
        exec_form(cmd.arguments, "CMD") if cmd else []
    )
    assert argv[:2] == ["workengine", "serve"], f"the container runs {argv}, not `workengine serve`"


def test_workengine_console_script_is_declared() -> None:
    with (ROOT / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    assert project["scripts"].get("workengine") == "workengine.cli:main"


def test_runtime_listens_on_all_interfaces_with_a_data_dir(runtime: Stage) -> None:
    env = env_values(runtime)
    assert env.get("WORKENGINE_HOST") == "0.0.0.0", "inside a container the server must bind 0.0.0.0"
    port = env.get("WORKENGINE_PORT", "50051")
    exposed = {word.split("/")[0] for i in runtime.all("EXPOSE") for word in i.arguments.split()}
    assert port in exposed, f"port {port} is not EXPOSEd"
    assert env.get("WORKENGINE_DATA_DIR", "").startswith("/"), "WORKENGINE_DATA_DIR must be an absolute path"


def test_healthcheck_runs_the_workengine_healthcheck_command(runtime: Stage) -> None:
    command = healthcheck_command(runtime)
    assert command == ["workengine", "healthcheck"], f"the health check runs {command}"
    # A command the installed `workengine` knows (argparse would exit 2 on an unknown one).
    known = subprocess.run([WORKENGINE, "healthcheck", "--help"], capture_output=True, text=True, timeout=60)
    assert known.returncode == 0 and "SERVING" in known.stdout, known.stderr
    assert SERVICE == SERVICE_NAME, "the server registers its health under another name"


async def _run_probe(command: list[str], port: int) -> int:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WORKENGINE_")}
    env.update(WORKENGINE_HOST="0.0.0.0", WORKENGINE_PORT=str(port))  # as in the image
    # Not subprocess.run: the server answers on this event loop, which must keep running.
    process = await asyncio.create_subprocess_exec(
        WORKENGINE, *command[1:], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return await asyncio.wait_for(process.wait(), timeout=30)


async def test_healthcheck_probe_reports_the_server_health(runtime: Stage, server: RunningServer) -> None:
    command = healthcheck_command(runtime)
    assert await _run_probe(command, server.port) == 0, "the probe fails against a serving server"
    await server.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
    assert await _run_probe(command, server.port) == 1, "the probe passes while the service is NOT_SERVING"
    await server.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.SERVING)
    await server.stop(0)
    assert await _run_probe(command, server.port) == 1, "the probe passes with no server"

"""Runs subprocesses (the example daemons, grpcurl) without blocking the test's event loop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.tools import system_tool, typescript_node_modules

ROOT = Path(__file__).resolve().parents[2]
PYTHON_DAEMON = ROOT / "examples" / "python_daemon.py"
TYPESCRIPT = ROOT / "clients" / "typescript"
TSX = TYPESCRIPT / "node_modules" / ".bin" / "tsx"


def require_typescript_toolchain() -> None:
    """Node.js (skipped without it, except in CI) and the client's node_modules (installed if missing)."""
    system_tool("node", "the TypeScript daemon cannot run")
    typescript_node_modules()


@dataclass
class DaemonRun:
    returncode: int
    lines: list[dict[str, Any]]
    stderr: str


def python_daemon_command(*args: str) -> list[str]:
    return [sys.executable, str(PYTHON_DAEMON), *args]


def typescript_daemon_command(*args: str) -> list[str]:
    return [str(TSX), str(TYPESCRIPT / "src" / "daemon.ts"), *args]


def daemon_command(language: str) -> Callable[..., list[str]]:
    """The command builder of the example daemon in `language` ("python" or "typescript")."""
    if language == "typescript":
        require_typescript_toolchain()
        return typescript_daemon_command
    return python_daemon_command


async def finish(process: asyncio.subprocess.Process, limit: float) -> tuple[int, str, str]:
    """Waits up to `limit` seconds for the process to end (killing it, and its process group,
    if it does not); returns its status, stdout and stderr."""
    try:
        async with asyncio.timeout(limit):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            kill_group(process)
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILLs the process and its group: tsx runs the TypeScript daemon in a child node
    process, which a SIGKILL of tsx alone would leave running."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # not a group leader (or the group is gone)
        if process.returncode is None:
            process.kill()


class Daemon:
    """A daemon running in a subprocess, in a process group of its own: `ready()` waits for its
    "NAME: ready" line on stderr (printed once its orchestrator is registered, just before its
    first claim); `result()` waits for it to exit and parses its stdout, one JSON object a line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._stderr_head = ""

    @classmethod
    async def start(cls, command: list[str], env: dict[str, str] | None = None) -> Daemon:
        """`env` replaces the environment (e.g. a PYTHONPATH naming another release's code)."""
        process = await asyncio.create_subprocess_exec(
            *command,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        return cls(process)

    def signal_group(self, signum: int) -> None:
        """Sends `signum` to the daemon's whole process group: SIGSTOP and SIGCONT, which tsx
        cannot relay, must reach the node process that runs the TypeScript daemon."""
        os.killpg(self.process.pid, signum)

    def kill(self) -> None:
        if self.process.returncode is None:
            kill_group(self.process)

    async def ready(self, limit: float = 60) -> None:
        assert self.process.stderr is not None
        async with asyncio.timeout(limit):
            while not self._stderr_head.endswith(": ready\n"):
                line = (await self.process.stderr.readline()).decode()
                assert line, f"daemon exited before it was ready: {self._stderr_head}"
                self._stderr_head += line

    async def result(self, limit: float = 120) -> DaemonRun:
        returncode, stdout, stderr = await finish(self.process, limit)
        lines = [json.loads(line) for line in stdout.splitlines() if line.strip()]
        return DaemonRun(returncode, lines, self._stderr_head + stderr)


async def run_daemon(command: list[str], limit: float = 120) -> DaemonRun:
    return await (await Daemon.start(command)).result(limit)


async def read_log(log: Path, lines: int, within: float = 30) -> list[dict[str, Any]]:
    """Waits until a daemon's --log file holds at least `lines` lines; returns them."""
    async with asyncio.timeout(within):
        while True:
            text = await asyncio.to_thread(lambda: log.read_text() if log.exists() else "")
            entries = [json.loads(line) for line in text.splitlines()]
            if len(entries) >= lines:
                return entries
            await asyncio.sleep(0.05)

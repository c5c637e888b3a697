"""Runs subprocesses (the example daemons, grpcurl) without blocking the test's event loop."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTHON_DAEMON = ROOT / "examples" / "python_daemon.py"
TYPESCRIPT = ROOT / "clients" / "typescript"
TSX = TYPESCRIPT / "node_modules" / ".bin" / "tsx"


def require_typescript_toolchain() -> None:
    """Skips without Node.js; in CI (CI=true), a missing `npm ci` fails instead of skipping."""
    if shutil.which("node") is None:
        pytest.skip("Node.js is not installed: the TypeScript daemon cannot run")
    if not TSX.exists():
        message = "clients/typescript/node_modules is missing: run `npm ci` in clients/typescript"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class DaemonRun:
    returncode: int
    lines: list[dict[str, Any]]
    stderr: str


def python_daemon_command(*args: str) -> list[str]:
    return [sys.executable, str(PYTHON_DAEMON), *args]


def typescript_daemon_command(*args: str) -> list[str]:
    return [str(TSX), str(TYPESCRIPT / "src" / "daemon.ts"), *args]


async def finish(process: asyncio.subprocess.Process, limit: float) -> tuple[int, str, str]:
    """Waits up to `limit` seconds for the process to end (killing it if it does not);
    returns its status, stdout and stderr."""
    try:
        async with asyncio.timeout(limit):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


class Daemon:
    """A daemon running in a subprocess: `ready()` waits for its "NAME: ready" line on stderr
    (printed once its orchestrator is registered, just before its first claim); `result()`
    waits for it to exit and parses its stdout, one JSON object a line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._stderr_head = ""

    @classmethod
    async def start(cls, command: list[str]) -> Daemon:
        process = await asyncio.create_subprocess_exec(
            *command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        return cls(process)

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

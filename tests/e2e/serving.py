"""`workengine` as a user runs it: `serve` in a subprocess, client commands, a fresh database."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

WORKENGINE = str(Path(sys.executable).with_name("workengine"))
LISTENING = re.compile(r"workengine listening on (\S+):(\d+)")


class ServeProcess:
    """`workengine serve` in a subprocess; its output is collected on a thread."""

    def __init__(self, *args: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            # The HTTP side port is off unless a test asks for one: its default, 8081, is shared.
            [
                WORKENGINE,
                "serve",
                "--port",
                "0",
                *(() if "--http-port" in args else ("--http-port", "0")),
                *args,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._listening = threading.Event()
        self.target = ""
        self._collector = threading.Thread(target=self._collect, daemon=True)
        self._collector.start()

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            found = LISTENING.search(line)
            if found:
                self.target = f"{found[1]}:{found[2]}"
                self._listening.set()

    def wait_listening(self, timeout: float = 60) -> str:
        if not self._listening.wait(timeout):
            raise AssertionError("serve did not start:\n" + "".join(self.lines))
        return self.target

    def terminate(self) -> int:
        """SIGTERM; returns the exit status once the process has ended and `lines` holds all it printed."""
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout=60)
        self._collector.join(timeout=10)
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WORKENGINE_")}
    env.update(extra)
    return env


def cli(target: str, *args: str) -> Any:
    """Runs a client command with `--output json` and returns what it printed, parsed."""
    result = subprocess.run(
        [WORKENGINE, *args, "--target", target, "--output", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)

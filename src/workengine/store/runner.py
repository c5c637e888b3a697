"""Runs named statements on one session's connection, binds values the way they are sent, and
numbers the events a transaction records."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import AsyncRawCursor
from psycopg.pq import PipelineStatus

from workengine.domain.model import EventKind, JsonObject, TaskEvent
from workengine.store import rows, statements
from workengine.store.rows import Row

if TYPE_CHECKING:
    from workengine.store.database import Connection

# An event's position keeps its transaction's id above these low bits (see sql/events.sql).
EVENTS_PER_TRANSACTION = 1 << 20

# Keyset pagination starts before every row.
BEGINNING = (datetime(1, 1, 1, tzinfo=UTC), "")

# While the server traces (workengine.tracing): a span around each statement, by name. None
# otherwise, so that tracing off costs one comparison per statement.
_statement_span: Callable[[str], AbstractContextManager[Any]] | None = None


def trace_statements(span: Callable[[str], AbstractContextManager[Any]] | None) -> None:
    global _statement_span
    _statement_span = span


def row_type_changed(error: psycopg.Error) -> bool:
    """Whether PostgreSQL refused a prepared statement because the rows it returns changed shape:
    a newer release's migration added a column to a table it reads with `*`, while this process
    runs (a rolling upgrade). Nothing took effect, and the statement runs once planned again.
    psycopg would keep sending the stale one outside a transaction, so its connection must forget
    its prepared statements (DEALLOCATE ALL, or the ROLLBACK of a transaction). Told by SQLSTATE
    and the server's routine, which, unlike the message, are not translated."""
    return error.sqlstate == "0A000" and error.diag.source_function == "RevalidateCachedQuery"


def json_text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def array_text(values: Iterable[int | str | datetime | None]) -> str:
    """An array in PostgreSQL's text form, for a parameter the statement casts to its array type
    (`CAST(:x AS integer[])`). Cheaper to send than a list: psycopg dumps a list element by element
    in Python, which was a twentieth of the server's CPU per claim. Every element but NULL and
    numbers is quoted, so no value can read as another or end the array."""
    items = []
    for value in values:
        if value is None:
            items.append("NULL")
        elif isinstance(value, int):
            items.append(str(value))
        else:
            text = value.isoformat() if isinstance(value, datetime) else value
            items.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "{" + ",".join(items) + "}"


class Runner:
    """One per session: the stores of a session share it, so the events they record in one
    transaction are numbered one after another."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._cursor, self.second_cursor = connection.statement_cursors()
        self.events_recorded = 0

    # Results in binary: loading a timestamp from its text form was the largest single cost
    # of reading task rows (every claim reads about twenty).
    async def send(
        self, name: str, params: dict[str, Any], cursor: AsyncRawCursor[Row] | None = None
    ) -> AsyncRawCursor[Row]:
        """Executes on `cursor`, else on the connection's first kept cursor, whose rows must then
        be read before the next statement (a pipeline's second statement takes the second)."""
        statement = statements.statement(name)
        cursor = cursor or self._cursor
        try:
            if _statement_span is None:  # inline, not _execute: no extra coroutine per statement
                await cursor.execute(statement.sql, statement.values(params), binary=True)
            else:
                await self._execute(name, statement.sql, statement.values(params), cursor)
        except psycopg.errors.FeatureNotSupported as error:
            if not (row_type_changed(error) and self._alone_in_its_transaction()):
                raise  # a transaction's abort is the session's to handle (Database._session)
            await self._connection.execute("DEALLOCATE ALL")  # psycopg forgets its names too
            await self._execute(name, statement.sql, statement.values(params), cursor)
        return cursor

    @staticmethod
    async def _execute(name: str, sql: str, values: Any, cursor: AsyncRawCursor[Row]) -> None:
        if _statement_span is None:
            await cursor.execute(sql, values, binary=True)
        else:
            with _statement_span(name):
                await cursor.execute(sql, values, binary=True)

    def _alone_in_its_transaction(self) -> bool:
        """An autocommit statement outside a pipeline: failed, it can simply run again."""
        pipeline = self._connection.pgconn.pipeline_status
        return self._connection.autocommit and pipeline == PipelineStatus.OFF

    async def execute(self, name: str, **params: Any) -> None:
        await self.send(name, params)

    async def rows(self, name: str, **params: Any) -> Sequence[Row]:
        return await (await self.send(name, params)).fetchall()

    async def row(self, name: str, **params: Any) -> Row | None:
        return await (await self.send(name, params)).fetchone()

    async def one(self, name: str, **params: Any) -> Row:
        """For statements that always return a row (aggregates, a RETURNING of a plain INSERT)."""
        row = await self.row(name, **params)
        assert row is not None, f"{name} returned no row"
        return row

    @asynccontextmanager
    async def pipeline(self) -> AsyncIterator[None]:
        """Statements sent inside go out together, one round trip for all."""
        async with self._connection.pipeline():
            yield

    def take_event_numbers(self, count: int) -> int:
        """Numbers this transaction's next `count` events (the low bits of their positions);
        returns the first."""
        first = self.events_recorded + 1
        self.events_recorded += count
        if self.events_recorded >= EVENTS_PER_TRANSACTION:
            raise ValueError(f"a transaction may record at most {EVENTS_PER_TRANSACTION - 1} events")
        return first

    def event_params(
        self, kind: EventKind, message: str = "", metadata: JsonObject | None = None
    ) -> dict[str, Any]:
        """The binds of the changed_event include: the event a statement records with its change.
        Numbers it even if the statement then changes nothing (numbers need only increase)."""
        return {
            "seq": self.take_event_numbers(1),
            "event_kind": kind.value,
            "event_message": message,
            "event_metadata": json_text(metadata or {}),
        }

    def moves_params(self, kind: EventKind, message: str = "") -> dict[str, Any]:
        """The binds of the numbered_moves and moved_events includes; the events are numbered
        when their rows come back (`moved`)."""
        return {"seq": self.events_recorded + 1, "event_kind": kind.value, "event_message": message}

    def moved(self, kind: EventKind, found: Sequence[Row], message: str = "") -> list[TaskEvent]:
        """The events a moved_events statement recorded for the tasks it returned."""
        self.take_event_numbers(len(found))
        return rows.to_moved_events(kind, found, message)

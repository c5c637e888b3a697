"""The stack's floor: grpc.aio and psycopg running the engine's statements, and nothing else.

    python -m bench.floor_server --port 0 --database-url postgresql://...

Serves ClaimNextTask, UpdateTaskProgress, CompleteTask(COMPLETED) and GetTask with the SQL
the engine runs for them (`store/sql/*.sql`, by name), bound the way the engine binds it (the
claim's segment bounds from `scoring.segments` on every call), in the same transactions and
round trips: get_orchestrator, claim_next_task and execution_memory each on its own; record_progress on its
own; BEGIN + complete_task + release_dependents as one pipeline, then COMMIT;
get_task_with_attempts on its own. It does none of the engine's other work: no validation,
no error mapping, no interceptor, no domain values, no event feed, and answers with the ids
and attempt alone instead of converted tasks. Its throughput is therefore an upper bound on
what any server built on this stack (Python, grpc.aio, psycopg) can reach with these
statements on this machine: the lifecycle and transport benchmarks set the engine beside it,
and it beside pgbench and the empty method, to tell the stack's cost from the engine's.

Not a WorkEngine: it refuses nothing (a daemon must send valid requests for tasks it holds).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

import grpc
import psycopg
from psycopg import AsyncRawCursor
from psycopg.pq import TransactionStatus
from psycopg.rows import TupleRow, tuple_row

from bench import echo_server
from bench.pgbench import RESULT
from bench.server import server_arguments
from workengine.domain import scoring
from workengine.domain.history import DEFAULT_HISTORY_LIMIT, WINDOW, output_excerpt
from workengine.domain.model import CompletionStatus, SelectionCriteria
from workengine.engine.base import RELATED_TASKS_LIMIT
from workengine.engine.execution import completion_fingerprint, result_document
from workengine.store.attempts import LeaseRequest
from workengine.store.database import APPLICATION_NAME, libpq_url
from workengine.store.runner import array_text
from workengine.store.statements import statement
from workengine.store.tasks import selection_params
from workengine.v1 import task_pb2
from workengine.v1 import work_engine_service_pb2 as pb
from workengine.v1 import work_engine_service_pb2_grpc as pb_grpc

POOL_SIZE = 20
DEFAULT_LEASE_SECONDS = 300
Connection = psycopg.AsyncConnection[TupleRow]


class Session(NamedTuple):
    """A connection with two cursors of its own, kept across calls (a cursor is cheaper reused
    than made); two, for the completion's pipeline."""

    connection: Connection
    cursor: AsyncRawCursor[TupleRow]
    second: AsyncRawCursor[TupleRow]


class Pool:
    def __init__(self, url: str) -> None:
        self._url = libpq_url(url)
        self._idle: asyncio.Queue[Session] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(POOL_SIZE):
            connection = await psycopg.AsyncConnection.connect(
                self._url, autocommit=True, row_factory=tuple_row, application_name=APPLICATION_NAME
            )
            self._idle.put_nowait(Session(connection, AsyncRawCursor(connection), AsyncRawCursor(connection)))

    @asynccontextmanager
    async def session(self) -> AsyncIterator[Session]:
        session = await self._idle.get()
        try:
            yield session
        finally:
            if session.connection.info.transaction_status is not TransactionStatus.IDLE:
                await session.connection.rollback()  # a completion that failed inside its BEGIN
            self._idle.put_nowait(session)


# (statement, column) -> the column's index in the statement's rows
_COLUMNS: dict[tuple[str, str], int] = {}


async def send(cursor: AsyncRawCursor[TupleRow], name: str, params: dict[str, Any]) -> None:
    named = statement(name)
    await cursor.execute(named.sql, named.values(params), binary=True)


async def run(session: Session, name: str, params: dict[str, Any], *columns: str) -> list[TupleRow]:
    """The statement's rows, as tuples of the given columns' values."""
    await send(session.cursor, name, params)
    found = await session.cursor.fetchall()
    if not found:
        return found
    if (name, columns[0]) not in _COLUMNS:
        names = [column.name for column in session.cursor.description or ()]
        _COLUMNS.update({(name, column): names.index(column) for column in columns})
    at = [_COLUMNS[name, column] for column in columns]
    return [tuple(row[i] for i in at) for row in found]


def event(seq: int, kind: str) -> dict[str, Any]:
    return {"seq": seq, "event_kind": kind, "event_message": "", "event_metadata": "{}"}


class FloorServicer(pb_grpc.WorkEngineServiceServicer):
    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def ClaimNextTask(self, request: pb.ClaimNextTaskRequest, context: Any) -> pb.ClaimNextTaskResponse:
        async with self._pool.session() as session:
            orchestrator = await run(session, "get_orchestrator", {"id": request.orchestrator_id}, "timezone")
            segments = scoring.segments(datetime.now(UTC), orchestrator[0][0])
            params = (
                selection_params(request.orchestrator_id, segments, SelectionCriteria())
                | LeaseRequest(None, DEFAULT_LEASE_SECONDS, "").params()
                | event(1, "STARTED")
                | {"related_limit": RELATED_TASKS_LIMIT}
            )
            columns = ("id", "attempt", "workspace_id", "tags", "started_at")
            found = await run(session, "claim_next_task", params, *columns)
            if not found:
                return pb.ClaimNextTaskResponse()
            # The claimed task comes after the related ones.
            task_id, attempt, workspace_id, tags, started_at = found[-1]
            memory = {
                "task_id": task_id,
                "orchestrator_id": request.orchestrator_id,
                "workspace_id": workspace_id,
                "tags": array_text(tags),
                "history_limit": DEFAULT_HISTORY_LIMIT,
                "window": WINDOW,
                "before": started_at,
            }
            await run(session, "execution_memory", memory, "history", "groups")
        return pb.ClaimNextTaskResponse(
            context=task_pb2.TaskContext(task=task_pb2.Task(id=task_id)), attempt=attempt
        )

    async def UpdateTaskProgress(
        self, request: pb.UpdateTaskProgressRequest, context: Any
    ) -> pb.UpdateTaskProgressResponse:
        params = {
            "id": request.task_id,
            "attempt": request.attempt,
            "progress": request.progress,
            "message": request.message,
            "remaining_seconds": 1.0,
        } | event(1, "PROGRESS")
        async with self._pool.session() as session:
            await run(session, "record_progress", params, "id")
        return pb.UpdateTaskProgressResponse()

    async def CompleteTask(self, request: pb.CompleteTaskRequest, context: Any) -> pb.CompleteTaskResponse:
        # The daemons' fixed result (as pgbench's script has it): decoding the request's is
        # the engine's work, not the stack's.
        document = result_document(RESULT)
        completion = {
            "id": request.task_id,
            "attempt": request.attempt,
            "status": "DONE",
            "status_reason": "",
            "result": json.dumps(document, separators=(",", ":"), sort_keys=True),
            "fingerprint": completion_fingerprint(request.attempt, CompletionStatus.COMPLETED, document),
            "outcome": "COMPLETED",
            "retry_after_seconds": None,
            "output_excerpt": output_excerpt(RESULT.output),
            "lessons": "{}",
        } | event(1, "COMPLETED")
        release = {
            "id": request.task_id,
            "finished_seq": 1,
            "seq": 2,
            "event_kind": "UNBLOCKED",
            "event_message": "",
        }
        async with self._pool.session() as session:
            connection = session.connection
            async with connection.pipeline():
                await connection.execute("BEGIN")
                await send(session.cursor, "complete_task", completion)
                await send(session.second, "release_dependents", release)
            await session.cursor.fetchall()
            unblocked = await session.second.fetchall()
            await connection.execute("COMMIT")
        return pb.CompleteTaskResponse(unblocked_task_ids=[str(row[0]) for row in unblocked])

    async def GetTask(self, request: pb.GetTaskRequest, context: Any) -> pb.GetTaskResponse:
        async with self._pool.session() as session:
            found = await run(session, "get_task_with_attempts", {"id": request.task_id}, "id")
        return pb.GetTaskResponse(task=task_pb2.Task(id=found[0][0]))


async def serve(port: int, database_url: str) -> None:
    pool = Pool(database_url)
    await pool.open()
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    server.add_generic_rpc_handlers((echo_server.ECHO,))  # the transport benchmark's empty method
    pb_grpc.add_WorkEngineServiceServicer_to_server(FloorServicer(pool), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"workengine listening on 127.0.0.1:{bound}", flush=True)  # the line bench.server waits for
    await server.wait_for_termination()


def main() -> None:
    args = server_arguments(__doc__ or "")
    asyncio.run(serve(args.port, args.database_url))


if __name__ == "__main__":
    main()

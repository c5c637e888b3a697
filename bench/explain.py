"""EXPLAIN (ANALYZE, BUFFERS) of the engine's own statements, bound the way the engine binds them."""

from __future__ import annotations

import re
import statistics
from datetime import UTC, datetime
from typing import Any

import psycopg

from workengine.domain import scoring
from workengine.domain.model import SelectionCriteria
from workengine.engine.base import RELATED_TASKS_LIMIT
from workengine.store import tasks
from workengine.store.attempts import LeaseRequest
from workengine.store.database import libpq_url
from workengine.store.statements import query

_EXECUTION = re.compile(r"Execution Time: ([\d.]+) ms")


def selection_params(orchestrator_id: str, now: datetime | None = None) -> dict[str, Any]:
    """The binds of select_next_task and claim_next_task, for an orchestrator in UTC, now."""
    segments = scoring.segments(now or datetime.now(UTC), "UTC")
    params = tasks.selection_params(orchestrator_id, segments, SelectionCriteria())
    # claim_next_task also binds the lease it grants, the claimer's identity, its STARTED event
    # and how many related tasks to read.
    event = {"seq": 1, "event_kind": "STARTED", "event_message": "", "event_metadata": "{}"}
    return params | LeaseRequest(None, 300, "bench").params() | event | {"related_limit": RELATED_TASKS_LIMIT}


async def explain(
    database_url: str, name: str, params: dict[str, Any], runs: int = 1, setup: str | None = None
) -> tuple[str, float]:
    """The plan of the last run, and the median execution time (ms) over `runs` runs.

    Runs inside a transaction that is rolled back, so statements that write leave no trace;
    `setup` (with the same parameters) runs first in that transaction.
    """
    statement = "EXPLAIN (ANALYZE, BUFFERS) " + query(name)
    times: list[float] = []
    plan = ""
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as connection:
        for _ in range(runs):
            if setup is not None:
                await connection.execute(setup, params)
            cursor = await connection.execute(statement, params)
            plan = "\n".join(str(row[0]) for row in await cursor.fetchall())
            await connection.rollback()
            found = _EXECUTION.search(plan)
            assert found is not None
            times.append(float(found[1]))
    return plan, statistics.median(times)

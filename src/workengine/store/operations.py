"""What an operator watches (sql/operations.sql): the queue's size and age, the schema's version."""

from __future__ import annotations

from datetime import timedelta

import psycopg

from workengine.domain.model import QueueState, TaskStatus
from workengine.store.runner import Runner


class OperationsStore:
    def __init__(self, runner: Runner) -> None:
        self._run = runner

    async def queue_state(self) -> QueueState:
        """Tasks per unfinished status and how long the oldest ready one has waited."""
        row = await self._run.one("queue_state")
        oldest = row["oldest_ready_since"]
        return QueueState(
            counts={
                TaskStatus.TODO: int(row["todo"]),
                TaskStatus.IN_PROGRESS: int(row["in_progress"]),
                TaskStatus.BLOCKED: int(row["blocked"]),
            },
            oldest_ready_age=max(row["read_at"] - oldest, timedelta(0)) if oldest else None,
        )

    async def schema_revision(self) -> str | None:
        """The migration the database is at; None before the first."""
        try:
            row = await self._run.row("schema_revision")
        except psycopg.errors.UndefinedTable:
            return None  # never migrated; run on its own (autocommit), nothing else is affected
        return str(row["revision"]) if row else None

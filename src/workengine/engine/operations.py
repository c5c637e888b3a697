"""What an operator asks of the engine: is it ready to serve, and how does the queue look."""

from __future__ import annotations

from dataclasses import dataclass

from workengine.domain.errors import Unavailable
from workengine.domain.model import QueueState
from workengine.store.database import Database
from workengine.store.migrate import head_revision


@dataclass(frozen=True)
class Readiness:
    """Ready when the database answers and its schema is the one this code expects."""

    database_reachable: bool
    schema_revision: str | None
    expected_revision: str

    @property
    def ready(self) -> bool:
        return self.database_reachable and self.schema_revision == self.expected_revision

    @property
    def problem(self) -> str:
        if not self.database_reachable:
            return "the database cannot be reached"
        if self.schema_revision != self.expected_revision:
            return (
                f"the database schema is at migration {self.schema_revision or 'none'}, this "
                f"server expects {self.expected_revision}: run `workengine migrate`"
            )
        return ""


class Operations:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._expected_revision = head_revision()

    async def queue_state(self) -> QueueState:
        async with self._db.autocommit() as session:
            return await session.operations.queue_state()

    async def readiness(self) -> Readiness:
        try:
            async with self._db.autocommit() as session:
                revision = await session.operations.schema_revision()
        except Unavailable:
            return Readiness(False, None, self._expected_revision)
        return Readiness(True, revision, self._expected_revision)

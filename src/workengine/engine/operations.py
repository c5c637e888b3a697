"""What an operator asks of the engine: is it ready to serve, and how does the queue look."""

from __future__ import annotations

from dataclasses import dataclass

from workengine.domain.errors import Unavailable
from workengine.domain.model import QueueState
from workengine.store.database import Database


@dataclass(frozen=True)
class Readiness:
    """Ready when the database answers and its schema is the one this code expects, or a later
    release's: during a rolling upgrade the new release migrates while this one still serves,
    and migrations keep the previous release working (docs/development.md)."""

    database_reachable: bool
    schema_revision: str | None
    expected_revision: str
    schema_is_newer: bool = False

    @property
    def ready(self) -> bool:
        current = self.schema_revision == self.expected_revision or self.schema_is_newer
        return self.database_reachable and current

    @property
    def problem(self) -> str:
        if not self.database_reachable:
            return "the database cannot be reached"
        if not self.ready:
            return (
                f"the database schema is at migration {self.schema_revision or 'none'}, this "
                f"server expects {self.expected_revision}: run `workengine migrate`"
            )
        return ""


class Operations:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def queue_state(self) -> QueueState:
        async with self._db.autocommit() as session:
            return await session.operations.queue_state()

    async def readiness(self) -> Readiness:
        # Here, not at import: importing the engine need not load Alembic. Read from the migration
        # scripts once, on the first probe.
        from workengine.store.migrate import head_revision, known_revisions

        expected = head_revision()
        try:
            async with self._db.autocommit() as session:
                revision = await session.operations.schema_revision()
        except Unavailable:
            return Readiness(False, None, expected)
        newer = revision is not None and revision not in known_revisions()
        return Readiness(True, revision, expected, newer)

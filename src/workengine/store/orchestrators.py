"""Orchestrators and their tokens (sql/orchestrators.sql)."""

from __future__ import annotations

from datetime import datetime

from workengine.domain.access import StoredToken
from workengine.domain.model import NewOrchestrator, Orchestrator, OrchestratorStatus
from workengine.store import rows
from workengine.store.runner import BEGINNING, Runner, json_text


class OrchestratorStore:
    def __init__(self, runner: Runner) -> None:
        self._run = runner

    async def insert(self, new: NewOrchestrator) -> Orchestrator | None:
        """None when the id is taken."""
        charter = {
            "mission": new.charter.mission,
            "vision": new.charter.vision,
            "values": list(new.charter.values),
            "expertise": list(new.charter.expertise),
        }
        row = await self._run.row(
            "insert_orchestrator",
            id=new.id,
            display_name=new.display_name,
            role=new.role,
            discipline=new.discipline,
            capabilities=list(new.capabilities),
            daemon_endpoint=new.daemon_endpoint,
            status=new.status.value,
            timezone=new.timezone,
            charter=json_text(charter),
        )
        return rows.to_orchestrator(row) if row else None

    async def get(self, orchestrator_id: str) -> Orchestrator | None:
        row = await self._run.row("get_orchestrator", id=orchestrator_id)
        return rows.to_orchestrator(row) if row else None

    async def page(
        self, status: OrchestratorStatus | None, after: tuple[datetime, str] | None, limit: int
    ) -> list[Orchestrator]:
        after_created_at, after_id = after or BEGINNING
        found = await self._run.rows(
            "list_orchestrators",
            status=status.value if status else None,
            after_created_at=after_created_at,
            after_id=after_id,
            limit=limit,
        )
        return [rows.to_orchestrator(r) for r in found]

    async def set_status(self, orchestrator_id: str, status: OrchestratorStatus) -> Orchestrator | None:
        row = await self._run.row("set_orchestrator_status", id=orchestrator_id, status=status.value)
        return rows.to_orchestrator(row) if row else None

    async def insert_token(self, orchestrator_id: str, token_hash: str, expires_at: datetime | None) -> None:
        await self._run.execute(
            "insert_orchestrator_token",
            token_hash=token_hash,
            orchestrator_id=orchestrator_id,
            expires_at=expires_at,
        )

    async def find_token(self, token_hash: str) -> StoredToken | None:
        row = await self._run.row("find_orchestrator_token", token_hash=token_hash)
        return rows.to_stored_token(row) if row else None

    async def retire_tokens(self, orchestrator_id: str, retire_at: datetime) -> int:
        """Every token of the orchestrator stops working at `retire_at`; returns how many changed."""
        await self._run.execute(
            "delete_dead_orchestrator_tokens", orchestrator_id=orchestrator_id, now=retire_at
        )
        retired = await self._run.one(
            "retire_orchestrator_tokens", orchestrator_id=orchestrator_id, retire_at=retire_at
        )
        return int(retired["retired"])

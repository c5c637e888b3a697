"""Read and list orchestrators and change their availability. Registration, which issues the
first token, is Access.register (engine/access.py)."""

from __future__ import annotations

from dataclasses import replace

from workengine.domain import validation
from workengine.domain.errors import not_found
from workengine.domain.model import NewOrchestrator, Orchestrator, OrchestratorStatus, Page
from workengine.engine import paging
from workengine.engine.base import Deps, require_orchestrator


def prepare_orchestrator(new: NewOrchestrator) -> NewOrchestrator:
    """The orchestrator to insert: its id generated when empty, its time zone defaulted, checked."""
    if not new.id:
        new = replace(new, id=validation.new_id())
    new = replace(new, timezone=validation.timezone("timezone", new.timezone))
    validation.validate_new_orchestrator(new)
    return new


class Orchestrators:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def get(self, orchestrator_id: str) -> Orchestrator:
        validation.require_id("orchestrator_id", orchestrator_id)
        async with self._deps.db.autocommit() as session:
            return await require_orchestrator(session, orchestrator_id)

    async def list_page(
        self, status: OrchestratorStatus | None, page_size: int, page_token: str
    ) -> Page[Orchestrator]:
        limit = validation.page_size(page_size)
        filters = ("orchestrators", status)
        after = paging.decode(page_token, filters)
        async with self._deps.db.autocommit() as session:
            found = await session.orchestrators.page(status, after, limit + 1)
        return paging.page_of(found, limit, filters)

    async def set_status(self, orchestrator_id: str, status: OrchestratorStatus | None) -> Orchestrator:
        status = validation.orchestrator_status(status)
        validation.require_id("orchestrator_id", orchestrator_id)
        async with self._deps.db.autocommit() as session:
            updated = await session.orchestrators.set_status(orchestrator_id, status)
        if updated is None:
            raise not_found("orchestrator_id", "orchestrator", orchestrator_id)
        return updated

"""ExplainSelection: the ready tasks ranked as claims would take them, and why a task is not first."""

from __future__ import annotations

from collections.abc import Sequence

from workengine.domain import validation
from workengine.domain.explain import Explanation
from workengine.domain.model import SelectionCriteria
from workengine.engine.base import Deps, require_orchestrator


class Explainer:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def explain(
        self, orchestrator_id: str, criteria: SelectionCriteria, limit: int = 0, task_ids: Sequence[str] = ()
    ) -> Explanation:
        validation.require_id("orchestrator_id", orchestrator_id)
        validation.selection_criteria(criteria)
        limit = validation.explain_limit(limit)
        task_ids = validation.explain_task_ids(task_ids)
        async with self._deps.db.autocommit() as session:
            orchestrator = await require_orchestrator(session, orchestrator_id)
        raise NotImplementedError(f"explain for {orchestrator.id}: ranking not written yet")

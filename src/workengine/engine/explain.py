"""ExplainSelection: the ready tasks ranked as claims would take them, and why a task is not first.

The ranking is not a model of selection beside it: it comes from the same index ranges, the
same criteria filters (the ready_in_segment include) and the same tie-breaks as the claim, and
the tests hold it to the order of real claims.
"""

from __future__ import annotations

from collections.abc import Sequence

from workengine.domain import explain, scoring, validation
from workengine.domain.explain import Explanation, NotFirst, RankedTask
from workengine.domain.model import Orchestrator, SelectionCriteria
from workengine.engine.base import Deps, require_orchestrator
from workengine.store.session import Session


class Explainer:
    def __init__(self, deps: Deps) -> None:
        self._deps = deps

    async def explain(
        self, orchestrator_id: str, criteria: SelectionCriteria, limit: int = 0, task_ids: Sequence[str] = ()
    ) -> Explanation:
        """Unlike a claim, not refused while the orchestrator is AWAY or OFFLINE: the ranking is
        then what its claims would take once it is back."""
        validation.require_id("orchestrator_id", orchestrator_id)
        validation.selection_criteria(criteria)
        limit = validation.explain_limit(limit)
        task_ids = validation.explain_task_ids(task_ids)
        # One snapshot for the ranking and the explanations, so they agree even while claims
        # run; a ranking alone is one statement and needs no transaction.
        session_of = self._deps.db.snapshot if task_ids else self._deps.db.autocommit
        async with session_of() as session:
            orchestrator = await require_orchestrator(session, orchestrator_id)
            segments = scoring.segments(
                self._deps.clock(), orchestrator.timezone, criteria.min_priority, criteria.max_priority
            )
            found = await session.explain.ranking(orchestrator_id, segments, criteria, limit)
            ranked = tuple(
                explain.ranked_task(rank, row.task, row.weight, row.boost, orchestrator.timezone)
                for rank, row in enumerate(found, start=1)
            )
            explained = await self._explain_tasks(session, orchestrator, segments, criteria, ranked, task_ids)
        return Explanation(orchestrator_id, orchestrator.timezone, ranked, explained)

    async def _explain_tasks(
        self,
        session: Session,
        orchestrator: Orchestrator,
        segments: Sequence[scoring.Segment],
        criteria: SelectionCriteria,
        ranked: Sequence[RankedTask],
        task_ids: Sequence[str],
    ) -> tuple[NotFirst, ...]:
        if not task_ids:
            return ()
        asked = await session.explain.tasks(task_ids, explain.BLOCKED_ON_LIMIT)
        in_ranking = {entry.task.id: entry for entry in ranked}
        answers: dict[str, NotFirst] = {}
        beyond: list[str] = []  # ready and admitted, but past the ranking's end: ranks to count
        for task_id in dict.fromkeys(task_ids):
            if task_id not in asked:
                answers[task_id] = explain.not_found(task_id)
            elif (entry := in_ranking.get(task_id)) is not None:
                answers[task_id] = explain.ranked_at(task_id, entry.rank, entry.score)
            else:
                task, unmet = asked[task_id]
                reason = explain.not_candidate(task, unmet, orchestrator.id, orchestrator.timezone)
                if reason is None and (criterion := explain.filtered_by(task, criteria)):
                    reason = NotFirst(task_id, explain.NotFirstReason.FILTERED, detail=criterion)
                if reason is None:
                    beyond.append(task_id)
                else:
                    answers[task_id] = reason
        if beyond:
            limit = explain.rank_count_limit(len(beyond))
            ahead = await session.explain.tasks_ahead(orchestrator.id, segments, criteria, beyond, limit)
            for task_id in beyond:
                # Absent only if the task stopped being ready, which the snapshot rules out.
                count, score = ahead.get(task_id, (limit, None))
                rank = count + 1 if count < limit else 0
                answers[task_id] = explain.ranked_at(task_id, rank, score, counted=limit)
        return tuple(answers[task_id] for task_id in task_ids)

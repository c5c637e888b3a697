"""ExplainSelection's reads (sql/explain.sql): the ranking, the tasks asked about, and the rank
of a ready task beyond the ranking."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from workengine.domain.model import SelectionCriteria, Task
from workengine.domain.scoring import Segment
from workengine.store import rows
from workengine.store.runner import Runner, array_text
from workengine.store.tasks import selection_params


class RankedRow(NamedTuple):
    """A ready task with its score and the score's parts."""

    task: Task
    weight: int
    boost: int
    score: int


class AskedTask(NamedTuple):
    """A task asked about, with some of its unfinished dependencies (empty unless it waits on
    dependencies)."""

    task: Task
    unmet_dependency_ids: tuple[str, ...]


class ExplainStore:
    def __init__(self, runner: Runner) -> None:
        self._run = runner

    async def ranking(
        self, orchestrator_id: str, segments: Sequence[Segment], criteria: SelectionCriteria, limit: int
    ) -> list[RankedRow]:
        """Up to `limit` ready tasks in the order repeated claims would take them."""
        if not segments:
            return []
        found = await self._run.rows(
            "explain_ranking", limit=limit, **selection_params(orchestrator_id, segments, criteria)
        )
        return [RankedRow(rows.to_task(r), r["weight"], r["boost"], r["score"]) for r in found]

    async def tasks(self, ids: Sequence[str], blocked_on_limit: int) -> dict[str, AskedTask]:
        """The existing tasks of `ids`, by id."""
        found = await self._run.rows("explain_tasks", ids=array_text(ids), blocked_on_limit=blocked_on_limit)
        return {r["id"]: AskedTask(rows.to_task(r), tuple(r["unmet_dependency_ids"] or ())) for r in found}

    async def tasks_ahead(
        self,
        orchestrator_id: str,
        segments: Sequence[Segment],
        criteria: SelectionCriteria,
        ids: Sequence[str],
        count_limit: int,
    ) -> dict[str, tuple[int, int]]:
        """For each ready task of `ids` the criteria admit, how many ready tasks a claim would
        take before it, counted up to `count_limit`, and its score; other ids are left out."""
        if not segments or not ids:
            return {}
        found = await self._run.rows(
            "explain_ranks",
            ids=array_text(ids),
            count_limit=count_limit,
            **selection_params(orchestrator_id, segments, criteria),
        )
        return {r["id"]: (int(r["ahead"]), r["score"]) for r in found}

"""The dashboard's JSON reads, each a thin use of the engine: parse the request, call, convert.

Lists are pages (page_size, page_token as the gRPC listings take them) and rankings are capped
(ExplainSelection's limit), so no answer grows with the number of tasks. Views that go live
carry a `cursor`, read before anything else: the stream resumed from it misses nothing the
answer does not already show.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from aiohttp import web

from workengine.domain.errors import InvalidArgument
from workengine.domain.model import QueueState, SelectionCriteria, TaskFilter, TaskStatus
from workengine.domain.statistics import Throughput
from workengine.engine import WorkEngine
from workengine.web import convert
from workengine.web.convert import Json
from workengine.web.errors import query_int, query_text

ORCHESTRATORS_PAGE = 50
RUNNING_SHOWN = 200
QUEUE_SHOWN = 50
BLOCKED_PAGE = 20  # each page's reasons come from one ExplainSelection (at most 100 ids)
HISTORY_PAGE = 100
# The throughput chart is read at most this often per process, however many pages show it.
THROUGHPUT_MAX_AGE = 10.0
# Likewise the queue's counts and oldest ready age, whose read visits every ready row.
QUEUE_STATE_MAX_AGE = 2.0


def statuses(request: web.Request) -> tuple[TaskStatus, ...]:
    raw = query_text(request, "status")
    try:
        return tuple(TaskStatus(s) for s in raw.split(",") if s)
    except ValueError:
        raise InvalidArgument("status", f"must be a list of {', '.join(TaskStatus)}") from None


def moment(request: web.Request, name: str) -> datetime | None:
    raw = query_text(request, name).strip()
    if not raw:
        return None
    try:
        found = datetime.fromisoformat(raw)
    except ValueError:
        found = None
    if found is None or found.tzinfo is None:
        raise InvalidArgument(name, "must be an ISO 8601 time with a time zone, e.g. 2025-01-31T09:00:00Z")
    return found


class Reads:
    def __init__(self, engine: WorkEngine) -> None:
        self._engine = engine
        self._throughput: tuple[float, Throughput] | None = None
        self._queue_state: tuple[float, QueueState] | None = None

    async def throughput(self) -> Throughput:
        now = time.monotonic()
        if self._throughput is None or now - self._throughput[0] > THROUGHPUT_MAX_AGE:
            self._throughput = (now, await self._engine.monitoring.throughput(60))
        return self._throughput[1]

    async def queue_state(self) -> QueueState:
        now = time.monotonic()
        if self._queue_state is None or now - self._queue_state[0] > QUEUE_STATE_MAX_AGE:
            self._queue_state = (now, await self._engine.operations.queue_state())
        return self._queue_state[1]

    async def overview(self, request: web.Request) -> Json:
        """Orchestrators (a page) with their counts, the queue, the running tasks, throughput."""
        engine = self._engine
        cursor = await engine.monitoring.position()
        page = await engine.orchestrators.list_page(
            None, query_int(request, "page_size", ORCHESTRATORS_PAGE), query_text(request, "page_token")
        )
        counts, running, queue, throughput = await asyncio.gather(
            engine.monitoring.status_counts([o.id for o in page.items]),
            engine.monitoring.running(RUNNING_SHOWN),
            self.queue_state(),
            self.throughput(),
        )
        return {
            "cursor": str(cursor),
            "orchestrators": [convert.orchestrator(o, counts.get(o.id)) for o in page.items],
            "next_page_token": page.next_page_token,
            "queue": convert.queue_state(queue),
            "running": [convert.task_summary(t) for t in running],
            "throughput": convert.throughput(throughput),
        }

    async def orchestrator(self, request: web.Request) -> Json:
        found = await self._engine.orchestrators.get(request.match_info["orchestrator_id"])
        counts = await self._engine.monitoring.status_counts([found.id])
        return {"orchestrator": convert.orchestrator(found, counts.get(found.id))}

    async def queue(self, request: web.Request) -> Json:
        """The ready tasks as a claim would take them, first `limit`, with their score parts."""
        orchestrator_id = request.match_info["orchestrator_id"]
        cursor = await self._engine.monitoring.position()
        limit = query_int(request, "limit", QUEUE_SHOWN)
        explained = await self._engine.execution.explain(orchestrator_id, SelectionCriteria(), limit)
        return {"cursor": str(cursor), **convert.explanation(explained)}

    async def blocked(self, request: web.Request) -> Json:
        """A page of the orchestrator's BLOCKED tasks, each with what it waits on."""
        orchestrator_id = request.match_info["orchestrator_id"]
        where = TaskFilter(orchestrator_id=orchestrator_id, statuses=(TaskStatus.BLOCKED,))
        page_size = min(query_int(request, "page_size", BLOCKED_PAGE), 100)
        page = await self._engine.tasks.list_page(where, page_size, query_text(request, "page_token"))
        reasons = {}
        if page.items:
            explained = await self._engine.execution.explain(
                orchestrator_id, SelectionCriteria(), 1, [t.id for t in page.items]
            )
            reasons = {n.task_id: convert.not_first(n) for n in explained.explained}
        return {
            "tasks": [convert.task_summary(t) | {"why": reasons.get(t.id)} for t in page.items],
            "next_page_token": page.next_page_token,
        }

    async def tasks(self, request: web.Request) -> Json:
        """A page of the orchestrator's tasks, oldest first, optionally of some statuses."""
        where = TaskFilter(orchestrator_id=request.match_info["orchestrator_id"], statuses=statuses(request))
        page = await self._engine.tasks.list_page(
            where, query_int(request, "page_size"), query_text(request, "page_token")
        )
        return {
            "tasks": [convert.task_summary(t) for t in page.items],
            "next_page_token": page.next_page_token,
        }

    async def task(self, request: web.Request) -> Json:
        """A task in full, its attempts, what it depends on and what depends on it."""
        cursor = await self._engine.monitoring.position()
        task, attempts = await self._engine.tasks.get_with_attempts(request.match_info["task_id"])
        links = await self._engine.monitoring.links(task)
        return {
            "cursor": str(cursor),
            "task": convert.task_full(task),
            "attempts": [convert.attempt(a) for a in attempts],
            "dependencies": [convert.dependency(d) for d in links.dependencies],
            "dependents": [convert.dependency(d) for d in links.dependents],
            "dependents_total": links.dependents_total,
        }

    async def history(self, request: web.Request) -> Json:
        """A page of the task's events, newest first; `before` pages back."""
        limit = query_int(request, "limit", HISTORY_PAGE)
        events = await self._engine.monitoring.task_history(
            request.match_info["task_id"], query_int(request, "before"), limit
        )
        return {
            "events": [convert.event(e) for e in events],
            "next_before": str(events[-1].cursor) if len(events) == limit else "",
        }

    async def stats(self, request: web.Request) -> Json:
        """GetExecutionStats for the tasks created in [start_time, end_time)."""
        found = await self._engine.stats.execution_stats(
            request.match_info["orchestrator_id"], moment(request, "start_time"), moment(request, "end_time")
        )
        return convert.stats(found)

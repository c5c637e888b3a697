"""The engine's front door: one object holding every use case, built once per server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from workengine.engine.access import Access
from workengine.engine.base import Deps, utc_now
from workengine.engine.events import EventHub
from workengine.engine.execution import ExecutionFlow
from workengine.engine.feed import EventFeed, FeedSettings
from workengine.engine.orchestrators import Orchestrators
from workengine.engine.stats import Statistics
from workengine.engine.tasks import Tasks
from workengine.engine.watch import Watcher
from workengine.store.database import Database


class WorkEngine:
    def __init__(
        self,
        db: Database,
        *,
        feed_settings: FeedSettings | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.db = db
        settings = feed_settings or FeedSettings()
        self.hub = EventHub(settings.subscriber_buffer)
        self.feed = EventFeed(db, self.hub, settings)
        deps = Deps(db=db, feed=self.feed, clock=clock)
        self.orchestrators = Orchestrators(deps)
        self.tasks = Tasks(deps)
        self.execution = ExecutionFlow(deps)
        self.stats = Statistics(deps)
        self.watcher = Watcher(deps)
        self.access = Access(deps)

    def start(self) -> None:
        """Starts background work (event feed, listener, pruning) on the running loop."""
        self.feed.start()

    async def close(self) -> None:
        await self.feed.close()
        await self.db.close()

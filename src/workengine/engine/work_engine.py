"""The engine's front door: one object holding every use case, built once per server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from workengine.domain.attempts import DEFAULT_LEASE
from workengine.engine.access import Access
from workengine.engine.base import Deps, utc_now
from workengine.engine.events import EventHub
from workengine.engine.execution import ExecutionFlow
from workengine.engine.feed import EventFeed, FeedSettings
from workengine.engine.maintenance import Maintenance, MaintenanceSettings
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
        maintenance_settings: MaintenanceSettings | None = None,
        default_lease: timedelta = DEFAULT_LEASE,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.db = db
        settings = feed_settings or FeedSettings()
        self.hub = EventHub(settings.subscriber_buffer)
        self.feed = EventFeed(db, self.hub, settings)
        deps = Deps(db=db, feed=self.feed, clock=clock, default_lease=default_lease)
        self.maintenance = Maintenance(db, self.feed, maintenance_settings)
        self.orchestrators = Orchestrators(deps)
        self.tasks = Tasks(deps)
        self.execution = ExecutionFlow(deps)
        self.stats = Statistics(deps)
        self.watcher = Watcher(deps)
        self.access = Access(deps)

    def start(self) -> None:
        """Starts background work (event feed, listener, pruning, lease reaper, retry
        scheduler, statistics folding) on the running loop."""
        self.feed.start()
        self.maintenance.start()
        self.stats.start()

    async def close(self) -> None:
        await self.maintenance.close()
        await self.feed.close()
        await self.stats.close()
        await self.db.close()

"""The engine's front door: one object holding every use case, built once per server."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from workengine.domain.attempts import DEFAULT_LEASE
from workengine.engine.access import Access
from workengine.engine.background import Duty, MaintenanceRunner
from workengine.engine.base import Deps, utc_now
from workengine.engine.events import EventHub
from workengine.engine.execution import ExecutionFlow
from workengine.engine.feed import EventFeed, FeedSettings
from workengine.engine.history import GROUPING_INTERVAL, AttemptGrouping
from workengine.engine.maintenance import Deadlines, MaintenanceSettings
from workengine.engine.monitoring import Monitoring
from workengine.engine.observer import NO_OBSERVER, Observer
from workengine.engine.operations import Operations
from workengine.engine.orchestrators import Orchestrators
from workengine.engine.stats import FOLD_INTERVAL, Statistics
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
        observer: Observer = NO_OBSERVER,
    ) -> None:
        self.db = db
        settings = feed_settings or FeedSettings()
        self.hub = EventHub(settings.subscriber_buffer)
        self.feed = EventFeed(db, self.hub, settings, observer)
        deps = Deps(db=db, feed=self.feed, clock=clock, default_lease=default_lease)
        self.orchestrators = Orchestrators(deps)
        self.tasks = Tasks(deps)
        self.execution = ExecutionFlow(deps)
        self.stats = Statistics(deps)
        self.watcher = Watcher(deps)
        self.access = Access(deps)
        self.operations = Operations(db)
        self.monitoring = Monitoring(deps)
        maintenance = maintenance_settings or MaintenanceSettings()
        self.deadlines = Deadlines(db, self.feed, maintenance.batch)
        self.maintenance = MaintenanceRunner(
            [
                Duty("lease reaper", maintenance.interval, self.deadlines.reap_expired_leases),
                Duty("retry scheduler", maintenance.interval, self.deadlines.release_due_retries),
                Duty("statistics fold", FOLD_INTERVAL, self.stats.fold, at_start=True),
                Duty("attempt grouping", GROUPING_INTERVAL, AttemptGrouping(db).run, at_start=True),
            ]
        )

    def start(self) -> None:
        """Starts the background work on the running loop: the event feed (its tailer, NOTIFY
        sender, LISTEN connection, poll and pruning) and the engine's duties (lease reaper,
        retry scheduler, statistics fold)."""
        self.feed.start()
        self.maintenance.start()

    def stop_serving(self) -> None:
        """The first step of a shutdown: ends every watch stream and answers every waiting
        claim "no task" now, so the server can stop without waiting for them."""
        self.hub.close()

    async def close(self) -> None:
        await self.maintenance.close()
        await self.feed.close()
        await self.db.close()

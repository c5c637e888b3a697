"""A session: one pooled connection, in a transaction or in autocommit mode, with a store per
aggregate. The engine composes their calls into a use case."""

from __future__ import annotations

from typing import TYPE_CHECKING

from workengine.store.attempts import AttemptStore
from workengine.store.events import EventStore
from workengine.store.explain import ExplainStore
from workengine.store.history import HistoryStore
from workengine.store.monitoring import MonitoringStore
from workengine.store.operations import OperationsStore
from workengine.store.orchestrators import OrchestratorStore
from workengine.store.runner import Runner
from workengine.store.statistics import StatisticsStore
from workengine.store.tasks import TaskStore

if TYPE_CHECKING:
    from workengine.store.database import Connection


class Session:
    def __init__(self, connection: Connection) -> None:
        runner = Runner(connection)
        self.tasks = TaskStore(runner)
        self.attempts = AttemptStore(runner, self.tasks)
        self.events = EventStore(runner)
        self.explain = ExplainStore(runner)
        self.history = HistoryStore(runner)
        self.orchestrators = OrchestratorStore(runner)
        self.statistics = StatisticsStore(runner)
        self.operations = OperationsStore(runner)
        self.monitoring = MonitoringStore(runner)

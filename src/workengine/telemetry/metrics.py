"""The metrics, named as Prometheus names them (`_total`, `_seconds`, base units), in one
registry per server.

Counters and histograms are per process: each replica counts the changes its own transactions
commit (engine/observer.py), so they add up over replicas. The queue gauges
(`workengine_tasks`, `workengine_oldest_ready_task_age_seconds`) are read from the database on
an interval (QueueRefresher) and describe the whole cluster: every replica reports the same
numbers, so take max(), never sum(). No label holds a task or orchestrator id, so the number of
series stays fixed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from workengine.domain.attempts import RETRY_TIME_REACHED
from workengine.domain.model import EventKind, QueueState, TaskEvent, TaskStatus
from workengine.engine.background import Duty, MaintenanceRunner
from workengine.engine.observer import Observer
from workengine.engine.operations import Operations
from workengine.store.database import Pool

# From a millisecond to a day: a queue that backs up must show in the quantiles, not as +Inf.
WORK_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
    1200, 1800, 3600, 7200, 14400, 28800, 86400,
)  # fmt: skip
# go-grpc-prometheus' defaults, plus the long polls (ClaimNextTask waits up to 60 s).
RPC_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
FEED_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

FINISHED_OUTCOME = {
    EventKind.COMPLETED: "completed",
    EventKind.FAILED: "failed",
    EventKind.BLOCKED: "blocked",
    EventKind.CANCELLED: "cancelled",
}
RETRY_REASONS = ("requested", "retry_after", "lease_expired")
COUNTED_STATUSES = (TaskStatus.TODO, TaskStatus.IN_PROGRESS, TaskStatus.BLOCKED)
RPC_LABELS = ("grpc_type", "grpc_service", "grpc_method")


class RpcMetrics:
    """go-grpc-prometheus' server metrics, so existing Grafana dashboards work as they are."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "grpc_server_started", "RPCs started on the server.", RPC_LABELS, registry=registry
        )
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, whatever their status code.",
            (*RPC_LABELS, "grpc_code"),
            registry=registry,
        )
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Time from an RPC's start to its end on the server.",
            RPC_LABELS,
            buckets=RPC_BUCKETS,
            registry=registry,
        )
        self.received = Counter(
            "grpc_server_msg_received", "Request messages received.", RPC_LABELS, registry=registry
        )
        self.sent = Counter("grpc_server_msg_sent", "Response messages sent.", RPC_LABELS, registry=registry)
        self.watch_streams = Gauge(
            "workengine_watch_streams_open", "WatchTaskProgress streams open now.", registry=registry
        )


class WorkMetrics(Observer):
    """The work the engine does, counted from the changes this process commits."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.created = Counter("workengine_tasks_created", "Tasks created.", registry=registry)
        self.started = Counter(
            "workengine_tasks_started", "Attempts started (claimed or executed).", registry=registry
        )
        self.finished = Counter(
            "workengine_tasks_finished",
            "Attempts and tasks finished, by outcome (completed, failed, blocked, cancelled); a "
            "task out of attempts when its last lease expired counts as failed.",
            ("outcome",),
            registry=registry,
        )
        self.lease_expiries = Counter(
            "workengine_lease_expiries", "Attempts whose lease ran out.", registry=registry
        )
        self.retries = Counter(
            "workengine_task_retries",
            "Tasks back to TODO for another attempt: RetryTask (requested), a BLOCKED report's "
            "retry time (retry_after), a lost lease with attempts left (lease_expired).",
            ("reason",),
            registry=registry,
        )
        self.queue_wait = Histogram(
            "workengine_queue_wait_seconds",
            "Time a task was ready (TODO) before an attempt started it.",
            buckets=WORK_BUCKETS,
            registry=registry,
        )
        self.run_time = Histogram(
            "workengine_task_run_seconds",
            "Time from an attempt's start to its end, by outcome (lease_expired: until the reaper "
            "took the task back).",
            ("outcome",),
            buckets=WORK_BUCKETS,
            registry=registry,
        )
        self.feed_lag = Histogram(
            "workengine_event_feed_lag_seconds",
            "Time from an event's transaction to its delivery to this process's watches.",
            buckets=FEED_BUCKETS,
            registry=registry,
        )
        # Every series exists from the start, at 0; looked up once, not per event.
        self._finished = {kind: self.finished.labels(outcome) for kind, outcome in FINISHED_OUTCOME.items()}
        self._run_time = {kind: self.run_time.labels(outcome) for kind, outcome in FINISHED_OUTCOME.items()}
        self._retries = {reason: self.retries.labels(reason) for reason in RETRY_REASONS}
        self._lease_run_time = self.run_time.labels("lease_expired")

    def committed(self, events: Sequence[TaskEvent]) -> None:
        for event in events:
            self._count(event)

    def _count(self, event: TaskEvent) -> None:
        kind = event.kind
        if kind is EventKind.CREATED:
            self.created.inc()
        elif kind is EventKind.STARTED:
            self.started.inc()
            if event.queued_for is not None:
                self.queue_wait.observe(event.queued_for.total_seconds())
        elif (finished := self._finished.get(kind)) is not None:
            finished.inc()
            if event.ran_for is not None:
                self._run_time[kind].observe(event.ran_for.total_seconds())
        elif kind is EventKind.LEASE_EXPIRED:
            self.lease_expiries.inc()
            if (started := event.task.started_at) is not None:
                self._lease_run_time.observe(max(0.0, (event.occurred_at - started).total_seconds()))
            if event.task.status is TaskStatus.TODO:
                self._retries["lease_expired"].inc()
            else:  # out of attempts: the task failed, though no daemon said so
                self._finished[EventKind.FAILED].inc()
        elif kind is EventKind.RETRIED:
            self._retries["requested"].inc()
        elif kind is EventKind.UNBLOCKED and event.message == RETRY_TIME_REACHED and event.attempt > 0:
            self._retries["retry_after"].inc()  # not a scheduled start's first: no attempt yet

    def delivered(self, events: Sequence[TaskEvent]) -> None:
        if not events:
            return
        # occurred_at is the database's clock at the transaction's start; a clock behind it
        # must not make a lag negative.
        now = max(datetime.now(UTC), *(e.occurred_at for e in events))
        for event in events:
            self.feed_lag.observe((now - event.occurred_at).total_seconds())


class QueueGauges:
    """The cluster-wide queue, as last read from the database."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.tasks = Gauge(
            "workengine_tasks",
            "Unfinished tasks by status, cluster-wide (every replica reports the same: do not sum).",
            ("status",),
            registry=registry,
        )
        self.oldest_ready_age = Gauge(
            "workengine_oldest_ready_task_age_seconds",
            "How long the oldest ready (TODO) task has waited, cluster-wide; 0 when none is ready.",
            registry=registry,
        )
        self.refreshed = Gauge(
            "workengine_queue_gauges_refreshed_timestamp_seconds",
            "When the queue gauges were last read from the database (Unix time).",
            registry=registry,
        )
        for status in COUNTED_STATUSES:
            self.tasks.labels(status.value)

    def show(self, state: QueueState) -> None:
        for status in COUNTED_STATUSES:
            self.tasks.labels(status.value).set(state.counts.get(status, 0))
        age = state.oldest_ready_age
        self.oldest_ready_age.set(age.total_seconds() if age is not None else 0)
        self.refreshed.set_to_current_time()


class PoolCollector(Collector):
    """The database pool, read at scrape time (in memory, no database call)."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pool = self._pool
        yield GaugeMetricFamily("workengine_db_pool_size", "Connections the pool may hold.", value=pool.size)
        yield GaugeMetricFamily(
            "workengine_db_pool_in_use", "Connections checked out now.", value=pool.checked_out
        )
        yield GaugeMetricFamily(
            "workengine_db_pool_waiting", "Callers waiting for a connection now.", value=pool.waiting
        )


class Metrics:
    """Everything /metrics shows, in a registry of its own (not the process-global one)."""

    def __init__(self, pool: Pool) -> None:
        # No `_created` series beside each counter: Prometheus' text format does not need them.
        # A process-wide switch of prometheus-client; the server owns its process.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self.rpc = RpcMetrics(self.registry)
        self.work = WorkMetrics(self.registry)
        self.queue = QueueGauges(self.registry)
        self.registry.register(PoolCollector(pool))


class QueueRefresher:
    """Reads the queue gauges from the database every `interval` seconds (not per scrape: a
    scrape must not cost the database, and several Prometheus servers may scrape)."""

    def __init__(self, operations: Operations, gauges: QueueGauges, interval: float) -> None:
        self._operations = operations
        self._gauges = gauges
        self._runner = MaintenanceRunner([Duty("queue metrics", interval, self.refresh, at_start=True)])

    async def refresh(self) -> None:
        self._gauges.show(await self._operations.queue_state())

    def start(self) -> None:
        self._runner.start()

    async def close(self) -> None:
        await self._runner.close()

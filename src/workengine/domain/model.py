"""Immutable value objects shared by the engine, the store and the api."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from workengine.domain.trace_context import TraceContext

if TYPE_CHECKING:
    from workengine.domain.history import Memory

T = TypeVar("T")

JsonObject = dict[str, Any]


class Priority(enum.IntEnum):
    """Ordered so that comparisons read naturally: CRITICAL > LOW."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4


class TaskStatus(enum.StrEnum):
    TODO = "TODO"
    IN_PROGRESS = "IN_PROGRESS"
    BLOCKED = "BLOCKED"
    DONE = "DONE"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class OrchestratorStatus(enum.StrEnum):
    ONLINE = "ONLINE"
    BUSY = "BUSY"
    AWAY = "AWAY"
    OFFLINE = "OFFLINE"


class CompletionStatus(enum.StrEnum):
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    BLOCKED = "BLOCKED"


class EventKind(enum.StrEnum):
    SNAPSHOT = "SNAPSHOT"
    CREATED = "CREATED"
    STARTED = "STARTED"
    PROGRESS = "PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    BLOCKED = "BLOCKED"
    UNBLOCKED = "UNBLOCKED"
    CANCELLED = "CANCELLED"
    LEASE_EXPIRED = "LEASE_EXPIRED"
    BOOKMARK = "BOOKMARK"
    RETRIED = "RETRIED"


class AttemptOutcome(enum.StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    BLOCKED = "BLOCKED"
    LEASE_EXPIRED = "LEASE_EXPIRED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True)
class Charter:
    mission: str = ""
    vision: str = ""
    values: tuple[str, ...] = ()
    expertise: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewOrchestrator:
    id: str
    display_name: str
    role: str = ""
    discipline: str = ""
    capabilities: tuple[str, ...] = ()
    daemon_endpoint: str = ""
    status: OrchestratorStatus = OrchestratorStatus.ONLINE
    timezone: str = "UTC"
    charter: Charter = field(default_factory=Charter)


@dataclass(frozen=True)
class Orchestrator(NewOrchestrator):
    created_at: datetime | None = None
    updated_at: datetime | None = None
    last_heartbeat_at: datetime | None = None


@dataclass(frozen=True)
class Artifact:
    type: str
    content: str


@dataclass(frozen=True)
class TaskResult:
    output: JsonObject = field(default_factory=dict)
    error: str = ""
    artifacts: tuple[Artifact, ...] = ()
    metrics: JsonObject = field(default_factory=dict)
    # Notes for future attempts at similar work, returned in their contexts' history.
    lessons: tuple[str, ...] = ()


@dataclass(frozen=True)
class NewTask:
    id: str
    orchestrator_id: str
    workspace_id: str
    title: str
    channel_id: str = ""
    description: str = ""
    priority: Priority = Priority.MEDIUM
    due_at: datetime | None = None
    tags: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    metadata: JsonObject = field(default_factory=dict)
    max_attempts: int = 3
    # The lease each start grants unless it asks for another; None: the server's default.
    lease: timedelta | None = None
    idempotency_key: str = ""
    # A scheduled start: not ready before this time.
    not_before: datetime | None = None


@dataclass(frozen=True)
class Task(NewTask):
    status: TaskStatus = TaskStatus.TODO
    status_reason: str = ""
    unmet_dependency_count: int = 0
    progress: int = 0
    progress_message: str = ""
    attempt: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: TaskResult | None = None
    lease_expires_at: datetime | None = None
    lease_expiry_count: int = 0
    failure_count: int = 0
    retry_at: datetime | None = None
    # The W3C trace context of the call that created it; None when that call sent none.
    trace_context: TraceContext | None = None
    # As estimated at the running attempt's latest progress report (domain/eta.py); None
    # when there was nothing to go on. Meaningful only while IN_PROGRESS.
    estimated_completion_at: datetime | None = None


@dataclass(frozen=True)
class TaskAttempt:
    """One run of a task: who started it, when, and how it ended."""

    attempt: int
    identity: str
    started_at: datetime
    ended_at: datetime | None
    outcome: AttemptOutcome
    reason: str = ""


@dataclass(frozen=True)
class SelectionCriteria:
    required_tags: tuple[str, ...] = ()
    min_priority: Priority | None = None
    max_priority: Priority | None = None
    exclude_task_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScoredTask:
    task: Task
    score: int


@dataclass(frozen=True)
class DependencyState:
    task_id: str
    title: str
    status: TaskStatus

    @property
    def met(self) -> bool:
        return self.status in (TaskStatus.DONE, TaskStatus.CANCELLED)


@dataclass(frozen=True)
class QueueState:
    """The unfinished tasks per status, cluster-wide, and how long the oldest ready (TODO) task
    has waited since it became ready (None: none is ready)."""

    counts: dict[TaskStatus, int]
    oldest_ready_age: timedelta | None


@dataclass(frozen=True)
class TaskContext:
    task: Task
    orchestrator: Orchestrator
    dependencies: tuple[DependencyState, ...]
    related_tasks: tuple[Task, ...]
    # The history and estimate; None when the request turned them off (history_limit 0).
    memory: Memory | None = None


@dataclass(frozen=True)
class TaskEvent:
    cursor: int
    kind: EventKind
    occurred_at: datetime
    task: Task
    attempt: int = 0
    progress: int = 0
    message: str = ""
    metadata: JsonObject = field(default_factory=dict)
    # For PROGRESS: the ETA estimated at this report.
    estimated_completion_at: datetime | None = None
    # Known only to the process whose statement recorded the event (not stored, not replayed),
    # for its metrics: a STARTED event's time from ready (TODO) to started, and a finishing
    # event's time since its attempt started.
    queued_for: timedelta | None = None
    ran_for: timedelta | None = None


@dataclass(frozen=True)
class Bookmark:
    """Sent on an idle watch: everything it covers up to `cursor` has been sent."""

    cursor: int
    occurred_at: datetime


class EventScope(enum.Enum):
    """What a watch covers; the value names the store's statements for that scope."""

    TASK = "task"
    ORCHESTRATOR = "orchestrator"
    WORKSPACE = "workspace"
    # Every task (the dashboard's overview; no RPC asks for it): its snapshot is the running tasks.
    ALL = "all"


@dataclass(frozen=True)
class EventPage:
    """Committed events in position order, with the log's head and pruning horizon read in
    the same snapshot: a cursor below `pruned_through` has lost events to retention."""

    events: tuple[TaskEvent, ...]
    # Rows the page covered and the last one's position, counting events it left out.
    size: int
    last_position: int | None
    head: int
    pruned_through: int


@dataclass(frozen=True)
class Snapshot:
    """Tasks as they are, the log position they reflect, and the positions beyond it whose
    effect they already show."""

    position: int
    seen_positions: frozenset[int]
    tasks: tuple[Task, ...]


@dataclass(frozen=True)
class ExecutionStats:
    total: int
    completed: int
    failed: int
    success_rate_percent: float
    average_seconds: float
    p50_seconds: float
    p95_seconds: float
    by_status: tuple[tuple[TaskStatus, int], ...]
    by_priority: tuple[tuple[Priority, int], ...]
    # The completion times as a histogram, one bar per doubling: (upper bound in seconds, tasks),
    # shortest first, empty bars between the first and the last kept (the dashboard's chart).
    completion_histogram: tuple[tuple[float, int], ...] = ()


@dataclass(frozen=True)
class TaskFilter:
    orchestrator_id: str = ""
    workspace_id: str = ""
    statuses: tuple[TaskStatus, ...] = ()
    tag: str = ""


@dataclass(frozen=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    next_page_token: str

import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from workengine.v1 import orchestrator_pb2 as _orchestrator_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskPriority(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_PRIORITY_UNSPECIFIED: _ClassVar[TaskPriority]
    TASK_PRIORITY_LOW: _ClassVar[TaskPriority]
    TASK_PRIORITY_MEDIUM: _ClassVar[TaskPriority]
    TASK_PRIORITY_HIGH: _ClassVar[TaskPriority]
    TASK_PRIORITY_CRITICAL: _ClassVar[TaskPriority]

class TaskStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATUS_UNSPECIFIED: _ClassVar[TaskStatus]
    TASK_STATUS_TODO: _ClassVar[TaskStatus]
    TASK_STATUS_IN_PROGRESS: _ClassVar[TaskStatus]
    TASK_STATUS_BLOCKED: _ClassVar[TaskStatus]
    TASK_STATUS_DONE: _ClassVar[TaskStatus]
    TASK_STATUS_FAILED: _ClassVar[TaskStatus]
    TASK_STATUS_CANCELLED: _ClassVar[TaskStatus]

class AttemptOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTEMPT_OUTCOME_UNSPECIFIED: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_RUNNING: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_COMPLETED: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_FAILED: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_BLOCKED: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_LEASE_EXPIRED: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_CANCELLED: _ClassVar[AttemptOutcome]

class PastExecutionSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAST_EXECUTION_SOURCE_UNSPECIFIED: _ClassVar[PastExecutionSource]
    PAST_EXECUTION_SOURCE_SAME_TASK: _ClassVar[PastExecutionSource]
    PAST_EXECUTION_SOURCE_SIMILAR_TASK: _ClassVar[PastExecutionSource]
    PAST_EXECUTION_SOURCE_WORKSPACE: _ClassVar[PastExecutionSource]

class SimilarityGroup(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIMILARITY_GROUP_UNSPECIFIED: _ClassVar[SimilarityGroup]
    SIMILARITY_GROUP_ORCHESTRATOR_WORKSPACE_TAGS: _ClassVar[SimilarityGroup]
    SIMILARITY_GROUP_ORCHESTRATOR_WORKSPACE: _ClassVar[SimilarityGroup]
    SIMILARITY_GROUP_WORKSPACE: _ClassVar[SimilarityGroup]

class TaskEventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_EVENT_KIND_UNSPECIFIED: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_SNAPSHOT: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_CREATED: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_STARTED: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_PROGRESS: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_COMPLETED: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_FAILED: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_BLOCKED: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_UNBLOCKED: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_CANCELLED: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_LEASE_EXPIRED: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_BOOKMARK: _ClassVar[TaskEventKind]
    TASK_EVENT_KIND_RETRIED: _ClassVar[TaskEventKind]
TASK_PRIORITY_UNSPECIFIED: TaskPriority
TASK_PRIORITY_LOW: TaskPriority
TASK_PRIORITY_MEDIUM: TaskPriority
TASK_PRIORITY_HIGH: TaskPriority
TASK_PRIORITY_CRITICAL: TaskPriority
TASK_STATUS_UNSPECIFIED: TaskStatus
TASK_STATUS_TODO: TaskStatus
TASK_STATUS_IN_PROGRESS: TaskStatus
TASK_STATUS_BLOCKED: TaskStatus
TASK_STATUS_DONE: TaskStatus
TASK_STATUS_FAILED: TaskStatus
TASK_STATUS_CANCELLED: TaskStatus
ATTEMPT_OUTCOME_UNSPECIFIED: AttemptOutcome
ATTEMPT_OUTCOME_RUNNING: AttemptOutcome
ATTEMPT_OUTCOME_COMPLETED: AttemptOutcome
ATTEMPT_OUTCOME_FAILED: AttemptOutcome
ATTEMPT_OUTCOME_BLOCKED: AttemptOutcome
ATTEMPT_OUTCOME_LEASE_EXPIRED: AttemptOutcome
ATTEMPT_OUTCOME_CANCELLED: AttemptOutcome
PAST_EXECUTION_SOURCE_UNSPECIFIED: PastExecutionSource
PAST_EXECUTION_SOURCE_SAME_TASK: PastExecutionSource
PAST_EXECUTION_SOURCE_SIMILAR_TASK: PastExecutionSource
PAST_EXECUTION_SOURCE_WORKSPACE: PastExecutionSource
SIMILARITY_GROUP_UNSPECIFIED: SimilarityGroup
SIMILARITY_GROUP_ORCHESTRATOR_WORKSPACE_TAGS: SimilarityGroup
SIMILARITY_GROUP_ORCHESTRATOR_WORKSPACE: SimilarityGroup
SIMILARITY_GROUP_WORKSPACE: SimilarityGroup
TASK_EVENT_KIND_UNSPECIFIED: TaskEventKind
TASK_EVENT_KIND_SNAPSHOT: TaskEventKind
TASK_EVENT_KIND_CREATED: TaskEventKind
TASK_EVENT_KIND_STARTED: TaskEventKind
TASK_EVENT_KIND_PROGRESS: TaskEventKind
TASK_EVENT_KIND_COMPLETED: TaskEventKind
TASK_EVENT_KIND_FAILED: TaskEventKind
TASK_EVENT_KIND_BLOCKED: TaskEventKind
TASK_EVENT_KIND_UNBLOCKED: TaskEventKind
TASK_EVENT_KIND_CANCELLED: TaskEventKind
TASK_EVENT_KIND_LEASE_EXPIRED: TaskEventKind
TASK_EVENT_KIND_BOOKMARK: TaskEventKind
TASK_EVENT_KIND_RETRIED: TaskEventKind

class Artifact(_message.Message):
    __slots__ = ("type", "content")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    type: str
    content: str
    def __init__(self, type: _Optional[str] = ..., content: _Optional[str] = ...) -> None: ...

class TaskResult(_message.Message):
    __slots__ = ("output", "error", "artifacts", "metrics", "lessons")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    LESSONS_FIELD_NUMBER: _ClassVar[int]
    output: _struct_pb2.Struct
    error: str
    artifacts: _containers.RepeatedCompositeFieldContainer[Artifact]
    metrics: _struct_pb2.Struct
    lessons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., error: _Optional[str] = ..., artifacts: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ..., metrics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., lessons: _Optional[_Iterable[str]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("id", "orchestrator_id", "workspace_id", "channel_id", "title", "description", "priority", "status", "due_time", "tags", "depends_on", "metadata", "progress", "progress_message", "attempt", "create_time", "update_time", "start_time", "complete_time", "result", "status_reason", "unmet_dependency_count", "max_attempts", "lease_expire_time", "lease_duration", "lease_expiry_count", "failure_count", "retry_time", "idempotency_key", "estimated_completion_time", "not_before_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DUE_TIME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    STATUS_REASON_FIELD_NUMBER: _ClassVar[int]
    UNMET_DEPENDENCY_COUNT_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    LEASE_EXPIRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_COUNT_FIELD_NUMBER: _ClassVar[int]
    RETRY_TIME_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COMPLETION_TIME_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    orchestrator_id: str
    workspace_id: str
    channel_id: str
    title: str
    description: str
    priority: TaskPriority
    status: TaskStatus
    due_time: _timestamp_pb2.Timestamp
    tags: _containers.RepeatedScalarFieldContainer[str]
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    metadata: _struct_pb2.Struct
    progress: int
    progress_message: str
    attempt: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    complete_time: _timestamp_pb2.Timestamp
    result: TaskResult
    status_reason: str
    unmet_dependency_count: int
    max_attempts: int
    lease_expire_time: _timestamp_pb2.Timestamp
    lease_duration: _duration_pb2.Duration
    lease_expiry_count: int
    failure_count: int
    retry_time: _timestamp_pb2.Timestamp
    idempotency_key: str
    estimated_completion_time: _timestamp_pb2.Timestamp
    not_before_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., orchestrator_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., channel_id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., priority: _Optional[_Union[TaskPriority, str]] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., due_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ..., depends_on: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., progress: _Optional[int] = ..., progress_message: _Optional[str] = ..., attempt: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[_Union[TaskResult, _Mapping]] = ..., status_reason: _Optional[str] = ..., unmet_dependency_count: _Optional[int] = ..., max_attempts: _Optional[int] = ..., lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., lease_expiry_count: _Optional[int] = ..., failure_count: _Optional[int] = ..., retry_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., estimated_completion_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_before_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TaskAttempt(_message.Message):
    __slots__ = ("attempt", "identity", "start_time", "end_time", "outcome", "reason")
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    attempt: int
    identity: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    outcome: AttemptOutcome
    reason: str
    def __init__(self, attempt: _Optional[int] = ..., identity: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., outcome: _Optional[_Union[AttemptOutcome, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class SelectionCriteria(_message.Message):
    __slots__ = ("required_tags", "min_priority", "max_priority", "exclude_task_ids")
    REQUIRED_TAGS_FIELD_NUMBER: _ClassVar[int]
    MIN_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    MAX_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    required_tags: _containers.RepeatedScalarFieldContainer[str]
    min_priority: TaskPriority
    max_priority: TaskPriority
    exclude_task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, required_tags: _Optional[_Iterable[str]] = ..., min_priority: _Optional[_Union[TaskPriority, str]] = ..., max_priority: _Optional[_Union[TaskPriority, str]] = ..., exclude_task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DependencyState(_message.Message):
    __slots__ = ("task_id", "title", "status", "met")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MET_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    title: str
    status: TaskStatus
    met: bool
    def __init__(self, task_id: _Optional[str] = ..., title: _Optional[str] = ..., status: _Optional[_Union[TaskStatus, str]] = ..., met: _Optional[bool] = ...) -> None: ...

class TaskContext(_message.Message):
    __slots__ = ("task", "orchestrator", "dependencies", "related_tasks", "workspace_id", "channel_id", "trace_context", "history", "estimate")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ORCHESTRATOR_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    RELATED_TASKS_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    TRACE_CONTEXT_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    ESTIMATE_FIELD_NUMBER: _ClassVar[int]
    task: Task
    orchestrator: _orchestrator_pb2.Orchestrator
    dependencies: _containers.RepeatedCompositeFieldContainer[DependencyState]
    related_tasks: _containers.RepeatedCompositeFieldContainer[Task]
    workspace_id: str
    channel_id: str
    trace_context: TraceContext
    history: _containers.RepeatedCompositeFieldContainer[PastExecution]
    estimate: ExecutionEstimate
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ..., orchestrator: _Optional[_Union[_orchestrator_pb2.Orchestrator, _Mapping]] = ..., dependencies: _Optional[_Iterable[_Union[DependencyState, _Mapping]]] = ..., related_tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., workspace_id: _Optional[str] = ..., channel_id: _Optional[str] = ..., trace_context: _Optional[_Union[TraceContext, _Mapping]] = ..., history: _Optional[_Iterable[_Union[PastExecution, _Mapping]]] = ..., estimate: _Optional[_Union[ExecutionEstimate, _Mapping]] = ...) -> None: ...

class PastExecution(_message.Message):
    __slots__ = ("source", "task_id", "title", "orchestrator_id", "attempt", "identity", "outcome", "finish_time", "duration", "error", "output_excerpt", "lessons")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_EXCERPT_FIELD_NUMBER: _ClassVar[int]
    LESSONS_FIELD_NUMBER: _ClassVar[int]
    source: PastExecutionSource
    task_id: str
    title: str
    orchestrator_id: str
    attempt: int
    identity: str
    outcome: AttemptOutcome
    finish_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    error: str
    output_excerpt: str
    lessons: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, source: _Optional[_Union[PastExecutionSource, str]] = ..., task_id: _Optional[str] = ..., title: _Optional[str] = ..., orchestrator_id: _Optional[str] = ..., attempt: _Optional[int] = ..., identity: _Optional[str] = ..., outcome: _Optional[_Union[AttemptOutcome, str]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., error: _Optional[str] = ..., output_excerpt: _Optional[str] = ..., lessons: _Optional[_Iterable[str]] = ...) -> None: ...

class SimilarityGroupSamples(_message.Message):
    __slots__ = ("group", "completed", "finished")
    GROUP_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    group: SimilarityGroup
    completed: int
    finished: int
    def __init__(self, group: _Optional[_Union[SimilarityGroup, str]] = ..., completed: _Optional[int] = ..., finished: _Optional[int] = ...) -> None: ...

class ExecutionEstimate(_message.Message):
    __slots__ = ("p50_duration", "p90_duration", "duration_group", "duration_samples", "failure_share", "failure_group", "failure_samples", "groups", "min_samples", "window")
    P50_DURATION_FIELD_NUMBER: _ClassVar[int]
    P90_DURATION_FIELD_NUMBER: _ClassVar[int]
    DURATION_GROUP_FIELD_NUMBER: _ClassVar[int]
    DURATION_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    FAILURE_SHARE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_GROUP_FIELD_NUMBER: _ClassVar[int]
    FAILURE_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    MIN_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    p50_duration: _duration_pb2.Duration
    p90_duration: _duration_pb2.Duration
    duration_group: SimilarityGroup
    duration_samples: int
    failure_share: float
    failure_group: SimilarityGroup
    failure_samples: int
    groups: _containers.RepeatedCompositeFieldContainer[SimilarityGroupSamples]
    min_samples: int
    window: int
    def __init__(self, p50_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., p90_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., duration_group: _Optional[_Union[SimilarityGroup, str]] = ..., duration_samples: _Optional[int] = ..., failure_share: _Optional[float] = ..., failure_group: _Optional[_Union[SimilarityGroup, str]] = ..., failure_samples: _Optional[int] = ..., groups: _Optional[_Iterable[_Union[SimilarityGroupSamples, _Mapping]]] = ..., min_samples: _Optional[int] = ..., window: _Optional[int] = ...) -> None: ...

class TraceContext(_message.Message):
    __slots__ = ("traceparent", "tracestate")
    TRACEPARENT_FIELD_NUMBER: _ClassVar[int]
    TRACESTATE_FIELD_NUMBER: _ClassVar[int]
    traceparent: str
    tracestate: str
    def __init__(self, traceparent: _Optional[str] = ..., tracestate: _Optional[str] = ...) -> None: ...

class TaskEvent(_message.Message):
    __slots__ = ("cursor", "kind", "event_time", "task", "attempt", "progress", "message", "metadata", "estimated_completion_time")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    EVENT_TIME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_COMPLETION_TIME_FIELD_NUMBER: _ClassVar[int]
    cursor: int
    kind: TaskEventKind
    event_time: _timestamp_pb2.Timestamp
    task: Task
    attempt: int
    progress: int
    message: str
    metadata: _struct_pb2.Struct
    estimated_completion_time: _timestamp_pb2.Timestamp
    def __init__(self, cursor: _Optional[int] = ..., kind: _Optional[_Union[TaskEventKind, str]] = ..., event_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., task: _Optional[_Union[Task, _Mapping]] = ..., attempt: _Optional[int] = ..., progress: _Optional[int] = ..., message: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., estimated_completion_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StatusCount(_message.Message):
    __slots__ = ("status", "count")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    status: TaskStatus
    count: int
    def __init__(self, status: _Optional[_Union[TaskStatus, str]] = ..., count: _Optional[int] = ...) -> None: ...

class PriorityCount(_message.Message):
    __slots__ = ("priority", "count")
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    priority: TaskPriority
    count: int
    def __init__(self, priority: _Optional[_Union[TaskPriority, str]] = ..., count: _Optional[int] = ...) -> None: ...

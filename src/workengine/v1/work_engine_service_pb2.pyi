import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from workengine.v1 import orchestrator_pb2 as _orchestrator_pb2
from workengine.v1 import task_pb2 as _task_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeadlineBucket(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEADLINE_BUCKET_UNSPECIFIED: _ClassVar[DeadlineBucket]
    DEADLINE_BUCKET_OVERDUE: _ClassVar[DeadlineBucket]
    DEADLINE_BUCKET_DUE_TODAY: _ClassVar[DeadlineBucket]
    DEADLINE_BUCKET_DUE_SOON: _ClassVar[DeadlineBucket]
    DEADLINE_BUCKET_LATER: _ClassVar[DeadlineBucket]

class NotFirstReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOT_FIRST_REASON_UNSPECIFIED: _ClassVar[NotFirstReason]
    NOT_FIRST_REASON_RANKED: _ClassVar[NotFirstReason]
    NOT_FIRST_REASON_BLOCKED: _ClassVar[NotFirstReason]
    NOT_FIRST_REASON_IN_PROGRESS: _ClassVar[NotFirstReason]
    NOT_FIRST_REASON_FINISHED: _ClassVar[NotFirstReason]
    NOT_FIRST_REASON_FILTERED: _ClassVar[NotFirstReason]
    NOT_FIRST_REASON_OTHER_ORCHESTRATOR: _ClassVar[NotFirstReason]
    NOT_FIRST_REASON_NOT_FOUND: _ClassVar[NotFirstReason]

class ExecuteOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXECUTE_OUTCOME_UNSPECIFIED: _ClassVar[ExecuteOutcome]
    EXECUTE_OUTCOME_STARTED: _ClassVar[ExecuteOutcome]
    EXECUTE_OUTCOME_BLOCKED: _ClassVar[ExecuteOutcome]

class CompletionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COMPLETION_STATUS_UNSPECIFIED: _ClassVar[CompletionStatus]
    COMPLETION_STATUS_COMPLETED: _ClassVar[CompletionStatus]
    COMPLETION_STATUS_FAILED: _ClassVar[CompletionStatus]
    COMPLETION_STATUS_BLOCKED: _ClassVar[CompletionStatus]
DEADLINE_BUCKET_UNSPECIFIED: DeadlineBucket
DEADLINE_BUCKET_OVERDUE: DeadlineBucket
DEADLINE_BUCKET_DUE_TODAY: DeadlineBucket
DEADLINE_BUCKET_DUE_SOON: DeadlineBucket
DEADLINE_BUCKET_LATER: DeadlineBucket
NOT_FIRST_REASON_UNSPECIFIED: NotFirstReason
NOT_FIRST_REASON_RANKED: NotFirstReason
NOT_FIRST_REASON_BLOCKED: NotFirstReason
NOT_FIRST_REASON_IN_PROGRESS: NotFirstReason
NOT_FIRST_REASON_FINISHED: NotFirstReason
NOT_FIRST_REASON_FILTERED: NotFirstReason
NOT_FIRST_REASON_OTHER_ORCHESTRATOR: NotFirstReason
NOT_FIRST_REASON_NOT_FOUND: NotFirstReason
EXECUTE_OUTCOME_UNSPECIFIED: ExecuteOutcome
EXECUTE_OUTCOME_STARTED: ExecuteOutcome
EXECUTE_OUTCOME_BLOCKED: ExecuteOutcome
COMPLETION_STATUS_UNSPECIFIED: CompletionStatus
COMPLETION_STATUS_COMPLETED: CompletionStatus
COMPLETION_STATUS_FAILED: CompletionStatus
COMPLETION_STATUS_BLOCKED: CompletionStatus

class SelectNextTaskRequest(_message.Message):
    __slots__ = ("orchestrator_id", "criteria")
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    CRITERIA_FIELD_NUMBER: _ClassVar[int]
    orchestrator_id: str
    criteria: _task_pb2.SelectionCriteria
    def __init__(self, orchestrator_id: _Optional[str] = ..., criteria: _Optional[_Union[_task_pb2.SelectionCriteria, _Mapping]] = ...) -> None: ...

class SelectNextTaskResponse(_message.Message):
    __slots__ = ("task", "score")
    TASK_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    task: _task_pb2.Task
    score: int
    def __init__(self, task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ..., score: _Optional[int] = ...) -> None: ...

class ClaimNextTaskRequest(_message.Message):
    __slots__ = ("orchestrator_id", "criteria", "wait", "lease_duration", "identity", "history_limit")
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    CRITERIA_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    HISTORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    orchestrator_id: str
    criteria: _task_pb2.SelectionCriteria
    wait: _duration_pb2.Duration
    lease_duration: _duration_pb2.Duration
    identity: str
    history_limit: int
    def __init__(self, orchestrator_id: _Optional[str] = ..., criteria: _Optional[_Union[_task_pb2.SelectionCriteria, _Mapping]] = ..., wait: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., identity: _Optional[str] = ..., history_limit: _Optional[int] = ...) -> None: ...

class ClaimNextTaskResponse(_message.Message):
    __slots__ = ("context", "attempt", "score")
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    context: _task_pb2.TaskContext
    attempt: int
    score: int
    def __init__(self, context: _Optional[_Union[_task_pb2.TaskContext, _Mapping]] = ..., attempt: _Optional[int] = ..., score: _Optional[int] = ...) -> None: ...

class ExplainSelectionRequest(_message.Message):
    __slots__ = ("orchestrator_id", "criteria", "limit", "task_ids")
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    CRITERIA_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    orchestrator_id: str
    criteria: _task_pb2.SelectionCriteria
    limit: int
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, orchestrator_id: _Optional[str] = ..., criteria: _Optional[_Union[_task_pb2.SelectionCriteria, _Mapping]] = ..., limit: _Optional[int] = ..., task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RankedTask(_message.Message):
    __slots__ = ("rank", "task", "score", "priority_weight", "deadline_bucket", "deadline_boost", "local_due_time")
    RANK_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_BUCKET_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_BOOST_FIELD_NUMBER: _ClassVar[int]
    LOCAL_DUE_TIME_FIELD_NUMBER: _ClassVar[int]
    rank: int
    task: _task_pb2.Task
    score: int
    priority_weight: int
    deadline_bucket: DeadlineBucket
    deadline_boost: int
    local_due_time: str
    def __init__(self, rank: _Optional[int] = ..., task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ..., score: _Optional[int] = ..., priority_weight: _Optional[int] = ..., deadline_bucket: _Optional[_Union[DeadlineBucket, str]] = ..., deadline_boost: _Optional[int] = ..., local_due_time: _Optional[str] = ...) -> None: ...

class TaskExplanation(_message.Message):
    __slots__ = ("task_id", "reason", "rank", "detail", "blocked_on", "attempt")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    RANK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_ON_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    reason: NotFirstReason
    rank: int
    detail: str
    blocked_on: _containers.RepeatedScalarFieldContainer[str]
    attempt: int
    def __init__(self, task_id: _Optional[str] = ..., reason: _Optional[_Union[NotFirstReason, str]] = ..., rank: _Optional[int] = ..., detail: _Optional[str] = ..., blocked_on: _Optional[_Iterable[str]] = ..., attempt: _Optional[int] = ...) -> None: ...

class ExplainSelectionResponse(_message.Message):
    __slots__ = ("orchestrator_id", "timezone", "ranked", "explained")
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    RANKED_FIELD_NUMBER: _ClassVar[int]
    EXPLAINED_FIELD_NUMBER: _ClassVar[int]
    orchestrator_id: str
    timezone: str
    ranked: _containers.RepeatedCompositeFieldContainer[RankedTask]
    explained: _containers.RepeatedCompositeFieldContainer[TaskExplanation]
    def __init__(self, orchestrator_id: _Optional[str] = ..., timezone: _Optional[str] = ..., ranked: _Optional[_Iterable[_Union[RankedTask, _Mapping]]] = ..., explained: _Optional[_Iterable[_Union[TaskExplanation, _Mapping]]] = ...) -> None: ...

class PrepareTaskContextRequest(_message.Message):
    __slots__ = ("orchestrator_id", "task_id", "history_limit")
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    orchestrator_id: str
    task_id: str
    history_limit: int
    def __init__(self, orchestrator_id: _Optional[str] = ..., task_id: _Optional[str] = ..., history_limit: _Optional[int] = ...) -> None: ...

class PrepareTaskContextResponse(_message.Message):
    __slots__ = ("context",)
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    context: _task_pb2.TaskContext
    def __init__(self, context: _Optional[_Union[_task_pb2.TaskContext, _Mapping]] = ...) -> None: ...

class ExecuteTaskRequest(_message.Message):
    __slots__ = ("orchestrator_id", "task_id", "lease_duration", "identity", "history_limit")
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    HISTORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    orchestrator_id: str
    task_id: str
    lease_duration: _duration_pb2.Duration
    identity: str
    history_limit: int
    def __init__(self, orchestrator_id: _Optional[str] = ..., task_id: _Optional[str] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., identity: _Optional[str] = ..., history_limit: _Optional[int] = ...) -> None: ...

class ExecuteTaskResponse(_message.Message):
    __slots__ = ("outcome", "context", "attempt", "blocked_reason", "unmet_dependency_ids")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_REASON_FIELD_NUMBER: _ClassVar[int]
    UNMET_DEPENDENCY_IDS_FIELD_NUMBER: _ClassVar[int]
    outcome: ExecuteOutcome
    context: _task_pb2.TaskContext
    attempt: int
    blocked_reason: str
    unmet_dependency_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, outcome: _Optional[_Union[ExecuteOutcome, str]] = ..., context: _Optional[_Union[_task_pb2.TaskContext, _Mapping]] = ..., attempt: _Optional[int] = ..., blocked_reason: _Optional[str] = ..., unmet_dependency_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateTaskProgressRequest(_message.Message):
    __slots__ = ("task_id", "attempt", "progress", "message", "metadata")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    progress: int
    message: str
    metadata: _struct_pb2.Struct
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., progress: _Optional[int] = ..., message: _Optional[str] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class UpdateTaskProgressResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: _task_pb2.Task
    def __init__(self, task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ...) -> None: ...

class CompleteTaskRequest(_message.Message):
    __slots__ = ("task_id", "attempt", "status", "result", "retry_after")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    status: CompletionStatus
    result: _task_pb2.TaskResult
    retry_after: _duration_pb2.Duration
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., status: _Optional[_Union[CompletionStatus, str]] = ..., result: _Optional[_Union[_task_pb2.TaskResult, _Mapping]] = ..., retry_after: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("task_id", "attempt", "lease_duration")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    attempt: int
    lease_duration: _duration_pb2.Duration
    def __init__(self, task_id: _Optional[str] = ..., attempt: _Optional[int] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("lease_expire_time",)
    LEASE_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    lease_expire_time: _timestamp_pb2.Timestamp
    def __init__(self, lease_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RetryTaskRequest(_message.Message):
    __slots__ = ("task_id", "max_attempts")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    max_attempts: int
    def __init__(self, task_id: _Optional[str] = ..., max_attempts: _Optional[int] = ...) -> None: ...

class RetryTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: _task_pb2.Task
    def __init__(self, task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ...) -> None: ...

class CompleteTaskResponse(_message.Message):
    __slots__ = ("task", "unblocked_task_ids")
    TASK_FIELD_NUMBER: _ClassVar[int]
    UNBLOCKED_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    task: _task_pb2.Task
    unblocked_task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ..., unblocked_task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetExecutionStatsRequest(_message.Message):
    __slots__ = ("orchestrator_id", "start_time", "end_time")
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    orchestrator_id: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, orchestrator_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetExecutionStatsResponse(_message.Message):
    __slots__ = ("total_tasks", "completed_tasks", "failed_tasks", "success_rate_percent", "average_completion_seconds", "p50_completion_seconds", "p95_completion_seconds", "by_status", "by_priority")
    TOTAL_TASKS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_TASKS_FIELD_NUMBER: _ClassVar[int]
    FAILED_TASKS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_RATE_PERCENT_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_COMPLETION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    P50_COMPLETION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    P95_COMPLETION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    BY_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    total_tasks: int
    completed_tasks: int
    failed_tasks: int
    success_rate_percent: float
    average_completion_seconds: float
    p50_completion_seconds: float
    p95_completion_seconds: float
    by_status: _containers.RepeatedCompositeFieldContainer[_task_pb2.StatusCount]
    by_priority: _containers.RepeatedCompositeFieldContainer[_task_pb2.PriorityCount]
    def __init__(self, total_tasks: _Optional[int] = ..., completed_tasks: _Optional[int] = ..., failed_tasks: _Optional[int] = ..., success_rate_percent: _Optional[float] = ..., average_completion_seconds: _Optional[float] = ..., p50_completion_seconds: _Optional[float] = ..., p95_completion_seconds: _Optional[float] = ..., by_status: _Optional[_Iterable[_Union[_task_pb2.StatusCount, _Mapping]]] = ..., by_priority: _Optional[_Iterable[_Union[_task_pb2.PriorityCount, _Mapping]]] = ...) -> None: ...

class WatchTaskProgressRequest(_message.Message):
    __slots__ = ("task_id", "orchestrator_id", "workspace_id", "after_cursor", "kinds", "keep_open", "bookmark_interval")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_CURSOR_FIELD_NUMBER: _ClassVar[int]
    KINDS_FIELD_NUMBER: _ClassVar[int]
    KEEP_OPEN_FIELD_NUMBER: _ClassVar[int]
    BOOKMARK_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    orchestrator_id: str
    workspace_id: str
    after_cursor: int
    kinds: _containers.RepeatedScalarFieldContainer[_task_pb2.TaskEventKind]
    keep_open: bool
    bookmark_interval: _duration_pb2.Duration
    def __init__(self, task_id: _Optional[str] = ..., orchestrator_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., after_cursor: _Optional[int] = ..., kinds: _Optional[_Iterable[_Union[_task_pb2.TaskEventKind, str]]] = ..., keep_open: _Optional[bool] = ..., bookmark_interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class WatchTaskProgressResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _task_pb2.TaskEvent
    def __init__(self, event: _Optional[_Union[_task_pb2.TaskEvent, _Mapping]] = ...) -> None: ...

class RegisterOrchestratorRequest(_message.Message):
    __slots__ = ("orchestrator_id", "display_name", "role", "discipline", "capabilities", "daemon_endpoint", "timezone", "charter", "status", "token_ttl")
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    DISCIPLINE_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    DAEMON_ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    CHARTER_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TTL_FIELD_NUMBER: _ClassVar[int]
    orchestrator_id: str
    display_name: str
    role: str
    discipline: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    daemon_endpoint: str
    timezone: str
    charter: _orchestrator_pb2.Charter
    status: _orchestrator_pb2.OrchestratorStatus
    token_ttl: _duration_pb2.Duration
    def __init__(self, orchestrator_id: _Optional[str] = ..., display_name: _Optional[str] = ..., role: _Optional[str] = ..., discipline: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., daemon_endpoint: _Optional[str] = ..., timezone: _Optional[str] = ..., charter: _Optional[_Union[_orchestrator_pb2.Charter, _Mapping]] = ..., status: _Optional[_Union[_orchestrator_pb2.OrchestratorStatus, str]] = ..., token_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RegisterOrchestratorResponse(_message.Message):
    __slots__ = ("orchestrator", "token", "token_expire_time")
    ORCHESTRATOR_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    orchestrator: _orchestrator_pb2.Orchestrator
    token: str
    token_expire_time: _timestamp_pb2.Timestamp
    def __init__(self, orchestrator: _Optional[_Union[_orchestrator_pb2.Orchestrator, _Mapping]] = ..., token: _Optional[str] = ..., token_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RotateOrchestratorTokenRequest(_message.Message):
    __slots__ = ("orchestrator_id", "token_ttl", "previous_token_grace")
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TTL_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_TOKEN_GRACE_FIELD_NUMBER: _ClassVar[int]
    orchestrator_id: str
    token_ttl: _duration_pb2.Duration
    previous_token_grace: _duration_pb2.Duration
    def __init__(self, orchestrator_id: _Optional[str] = ..., token_ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., previous_token_grace: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class RotateOrchestratorTokenResponse(_message.Message):
    __slots__ = ("token", "token_expire_time")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    token: str
    token_expire_time: _timestamp_pb2.Timestamp
    def __init__(self, token: _Optional[str] = ..., token_expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RevokeOrchestratorTokensRequest(_message.Message):
    __slots__ = ("orchestrator_id",)
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    orchestrator_id: str
    def __init__(self, orchestrator_id: _Optional[str] = ...) -> None: ...

class RevokeOrchestratorTokensResponse(_message.Message):
    __slots__ = ("revoked_count",)
    REVOKED_COUNT_FIELD_NUMBER: _ClassVar[int]
    revoked_count: int
    def __init__(self, revoked_count: _Optional[int] = ...) -> None: ...

class GetOrchestratorRequest(_message.Message):
    __slots__ = ("orchestrator_id",)
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    orchestrator_id: str
    def __init__(self, orchestrator_id: _Optional[str] = ...) -> None: ...

class GetOrchestratorResponse(_message.Message):
    __slots__ = ("orchestrator",)
    ORCHESTRATOR_FIELD_NUMBER: _ClassVar[int]
    orchestrator: _orchestrator_pb2.Orchestrator
    def __init__(self, orchestrator: _Optional[_Union[_orchestrator_pb2.Orchestrator, _Mapping]] = ...) -> None: ...

class ListOrchestratorsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "status")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: _orchestrator_pb2.OrchestratorStatus
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[_orchestrator_pb2.OrchestratorStatus, str]] = ...) -> None: ...

class ListOrchestratorsResponse(_message.Message):
    __slots__ = ("orchestrators", "next_page_token")
    ORCHESTRATORS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    orchestrators: _containers.RepeatedCompositeFieldContainer[_orchestrator_pb2.Orchestrator]
    next_page_token: str
    def __init__(self, orchestrators: _Optional[_Iterable[_Union[_orchestrator_pb2.Orchestrator, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class SetOrchestratorStatusRequest(_message.Message):
    __slots__ = ("orchestrator_id", "status")
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    orchestrator_id: str
    status: _orchestrator_pb2.OrchestratorStatus
    def __init__(self, orchestrator_id: _Optional[str] = ..., status: _Optional[_Union[_orchestrator_pb2.OrchestratorStatus, str]] = ...) -> None: ...

class SetOrchestratorStatusResponse(_message.Message):
    __slots__ = ("orchestrator",)
    ORCHESTRATOR_FIELD_NUMBER: _ClassVar[int]
    orchestrator: _orchestrator_pb2.Orchestrator
    def __init__(self, orchestrator: _Optional[_Union[_orchestrator_pb2.Orchestrator, _Mapping]] = ...) -> None: ...

class CreateTaskRequest(_message.Message):
    __slots__ = ("task_id", "orchestrator_id", "workspace_id", "channel_id", "title", "description", "priority", "due_time", "tags", "depends_on", "metadata", "max_attempts", "lease_duration", "idempotency_key", "not_before")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    DUE_TIME_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    LEASE_DURATION_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    orchestrator_id: str
    workspace_id: str
    channel_id: str
    title: str
    description: str
    priority: _task_pb2.TaskPriority
    due_time: _timestamp_pb2.Timestamp
    tags: _containers.RepeatedScalarFieldContainer[str]
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    metadata: _struct_pb2.Struct
    max_attempts: int
    lease_duration: _duration_pb2.Duration
    idempotency_key: str
    not_before: _timestamp_pb2.Timestamp
    def __init__(self, task_id: _Optional[str] = ..., orchestrator_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., channel_id: _Optional[str] = ..., title: _Optional[str] = ..., description: _Optional[str] = ..., priority: _Optional[_Union[_task_pb2.TaskPriority, str]] = ..., due_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tags: _Optional[_Iterable[str]] = ..., depends_on: _Optional[_Iterable[str]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., max_attempts: _Optional[int] = ..., lease_duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateTaskResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: _task_pb2.Task
    def __init__(self, task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class GetTaskResponse(_message.Message):
    __slots__ = ("task", "attempts")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    task: _task_pb2.Task
    attempts: _containers.RepeatedCompositeFieldContainer[_task_pb2.TaskAttempt]
    def __init__(self, task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[_task_pb2.TaskAttempt, _Mapping]]] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("orchestrator_id", "workspace_id", "statuses", "tag", "page_size", "page_token")
    ORCHESTRATOR_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUSES_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    orchestrator_id: str
    workspace_id: str
    statuses: _containers.RepeatedScalarFieldContainer[_task_pb2.TaskStatus]
    tag: str
    page_size: int
    page_token: str
    def __init__(self, orchestrator_id: _Optional[str] = ..., workspace_id: _Optional[str] = ..., statuses: _Optional[_Iterable[_Union[_task_pb2.TaskStatus, str]]] = ..., tag: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_page_token")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[_task_pb2.Task]
    next_page_token: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[_task_pb2.Task, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelTaskRequest(_message.Message):
    __slots__ = ("task_id", "reason")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    reason: str
    def __init__(self, task_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class CancelTaskResponse(_message.Message):
    __slots__ = ("task", "unblocked_task_ids")
    TASK_FIELD_NUMBER: _ClassVar[int]
    UNBLOCKED_TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    task: _task_pb2.Task
    unblocked_task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[_Union[_task_pb2.Task, _Mapping]] = ..., unblocked_task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

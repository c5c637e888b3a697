"""The WorkEngine client library for Python daemons, over the generated stubs.

    from workengine.client import WorkEngineClient          # blocking, over grpc
    from workengine.client import AsyncWorkEngineClient     # asyncio, over grpc.aio

Both take the server's `target` ("host:port"), a per-call deadline (`timeout`, seconds), a
`RetryPolicy` (jittered exponential backoff on UNAVAILABLE, for the calls that are safe to
repeat; `workengine.client.retry` lists them and says why), a `metadata` hook called before
every call (for auth tokens) and optional TLS `credentials`.

Errors are typed (`workengine.client.errors`, re-exported here), one class per status code,
each still a `grpc.RpcError` with the server's `code()` and `details()` and the original
error as `.rpc_error`:

    try:
        client.heartbeat(task.id, attempt)
    except ReportRefused as refused:  # the attempt is no longer ours: stop working on it
        log(f"gave up {task.id}: {refused.reason}")  # Refusal.LEASE_EXPIRED, TASK_CANCELLED, ...

`NotFound.field` and `InvalidArgument.field` name the request field at fault.

A claimed task's context recalls past executions of it and of similar work (`history`) and
estimates its run time and failure share (`estimate`); `history_limit=` on `claim_next_task`,
`execute_task` and `prepare_task_context` sets how many (None: the server's 5; 0: none), and
`complete_task(..., lessons=[...])` leaves notes for later attempts (docs/history.md).

The raw generated stubs and messages are the public package `workengine.v1`
(`work_engine_service_pb2`, `work_engine_service_pb2_grpc`, `task_pb2`, `orchestrator_pb2`),
for code that wants them directly.
"""

from workengine.client.aio import AsyncWorkEngineClient
from workengine.client.errors import (
    Aborted,
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    Refusal,
    ReportRefused,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    WorkEngineError,
)
from workengine.client.retry import IDEMPOTENT_METHODS, NO_RETRY, MetadataProvider, RetryPolicy
from workengine.client.sync import WorkEngineClient

__all__ = [
    "IDEMPOTENT_METHODS",
    "NO_RETRY",
    "Aborted",
    "AlreadyExists",
    "AsyncWorkEngineClient",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "MetadataProvider",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "Refusal",
    "ReportRefused",
    "ResourceExhausted",
    "RetryPolicy",
    "Unauthenticated",
    "Unavailable",
    "WorkEngineClient",
    "WorkEngineError",
]

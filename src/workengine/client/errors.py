"""Typed errors of the WorkEngine clients: one class per status code a caller acts on.

Every call of `WorkEngineClient` and `AsyncWorkEngineClient` (streams included) raises a
`WorkEngineError` subclass instead of the raw `grpc.RpcError`. Each one still *is* a
`grpc.RpcError` with the same `code()`, `details()` and `trailing_metadata()` (so code written
against raw gRPC errors keeps working), and keeps the original as `.rpc_error` (and as
`__cause__`). What the server said in rich error details is parsed out:

- `ReportRefused` (FAILED_PRECONDITION answering Heartbeat, UpdateTaskProgress or
  CompleteTask): the attempt is no longer the daemon's; stop working on it. `.reason` is a
  `Refusal` (LEASE_EXPIRED, TASK_CANCELLED, ATTEMPT_SUPERSEDED, ...), or the server's text for
  a reason this client does not know yet.
- `FailedPrecondition` (its base): any other call the task's or orchestrator's state forbids;
  `.reason` when the server gave one, else "".
- `InvalidArgument` and `NotFound`: `.field` names the request field (e.g. "progress",
  "task_id"); "" when the server did not say.
- `AlreadyExists`, `PermissionDenied`, `Unauthenticated`, `Aborted`, `OutOfRange`,
  `ResourceExhausted`, `Unavailable`, `DeadlineExceeded`, `Cancelled`; any other code raises
  `WorkEngineError` itself.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import message
from google.rpc import error_details_pb2, status_pb2

# The server's own list of reasons (TASK_CANCELLED, TASK_NOT_RUNNING, ATTEMPT_SUPERSEDED,
# ATTEMPT_NOT_STARTED, LEASE_EXPIRED, COMPLETION_CONFLICT), a str enum; a reason a newer
# server sends that this one does not know stays text.
from workengine.domain.attempts import Refusal as Refusal
from workengine.domain.errors import ERROR_DOMAIN

_STATUS_DETAILS_KEY = "grpc-status-details-bin"
# The calls a daemon reports on its attempt with: their FAILED_PRECONDITION means "stop".
REPORT_METHODS = frozenset({"Heartbeat", "UpdateTaskProgress", "CompleteTask"})


class WorkEngineError(grpc.RpcError):  # type: ignore[misc]
    """A call that ended with a non-OK status. Still a `grpc.RpcError`: `code()`, `details()`
    and `trailing_metadata()` answer as the original, which is `.rpc_error`. `.status` is the
    google.rpc.Status the server attached (its rich details), or None."""

    def __init__(self, rpc_error: grpc.RpcError, status: status_pb2.Status | None = None) -> None:
        self.rpc_error = rpc_error
        self.status = status
        super().__init__(f"{self.code().name}: {self.details()}")

    def code(self) -> grpc.StatusCode:
        return rpc_error_code(self.rpc_error)

    def details(self) -> str:
        details = getattr(self.rpc_error, "details", None)
        return (details() if callable(details) else None) or ""

    def trailing_metadata(self) -> Any:
        metadata = getattr(self.rpc_error, "trailing_metadata", None)
        return metadata() if callable(metadata) else None

    def initial_metadata(self) -> Any:
        metadata = getattr(self.rpc_error, "initial_metadata", None)
        return metadata() if callable(metadata) else None

    def debug_error_string(self) -> str:
        debug = getattr(self.rpc_error, "debug_error_string", None)
        return str(debug()) if callable(debug) else ""

    def detail(self, kind: type[message.Message]) -> Any:
        """The first detail of the status of type `kind` (e.g. error_details_pb2.ErrorInfo), or None."""
        for packed in self.status.details if self.status is not None else ():
            if packed.Is(kind.DESCRIPTOR):
                found = kind()
                packed.Unpack(found)
                return found
        return None

    def _error_info(self) -> error_details_pb2.ErrorInfo | None:
        info = self.detail(error_details_pb2.ErrorInfo)
        return info if info is not None and info.domain == ERROR_DOMAIN else None


class InvalidArgument(WorkEngineError):
    """INVALID_ARGUMENT: a request field is malformed; `.field` names it (dotted path),
    `.description` says what is wrong."""

    @property
    def field(self) -> str:
        violation = self._violation()
        return violation.field if violation is not None else _field_of(self.details())

    @property
    def description(self) -> str:
        violation = self._violation()
        return violation.description if violation is not None else self.details()

    def _violation(self) -> error_details_pb2.BadRequest.FieldViolation | None:
        bad_request = self.detail(error_details_pb2.BadRequest)
        return bad_request.field_violations[0] if bad_request and bad_request.field_violations else None


class NotFound(WorkEngineError):
    """NOT_FOUND: an id names nothing; `.field` names the request field that carried it."""

    @property
    def field(self) -> str:
        info = self._error_info()
        if info is not None and "field" in info.metadata:
            return str(info.metadata["field"])
        return _field_of(self.details())


class FailedPrecondition(WorkEngineError):
    """FAILED_PRECONDITION: the current state forbids the call. `.reason` is the server's
    ErrorInfo reason (a `Refusal` when this client knows it, else its text), or ""."""

    @property
    def reason(self) -> Refusal | str:
        info = self._error_info()
        if info is None:
            return ""
        try:
            return Refusal(info.reason)
        except ValueError:
            return str(info.reason)


class ReportRefused(FailedPrecondition):
    """A heartbeat, progress report or completion was refused: the attempt is no longer yours
    (cancelled, lease expired, superseded, ...; `.reason` says which). Stop working on it."""


class AlreadyExists(WorkEngineError):
    """ALREADY_EXISTS: a client-chosen id (task, orchestrator) is taken."""


class PermissionDenied(WorkEngineError):
    """PERMISSION_DENIED: the token may not act on this (another orchestrator's task)."""


class Unauthenticated(WorkEngineError):
    """UNAUTHENTICATED: the token is missing, unknown, revoked or expired."""


class Aborted(WorkEngineError):
    """ABORTED: a concurrent caller won a race (e.g. started the same task first)."""


class OutOfRange(WorkEngineError):
    """OUT_OF_RANGE: e.g. a watch's after_cursor whose events were pruned; watch from 0 again."""


class ResourceExhausted(WorkEngineError):
    """RESOURCE_EXHAUSTED: a per-client limit (concurrent streams) or a message size limit."""


class Unavailable(WorkEngineError):
    """UNAVAILABLE: the server or its database cannot be reached now (after the retries the
    client's RetryPolicy allows for this call); trying later may succeed."""


class DeadlineExceeded(WorkEngineError):
    """DEADLINE_EXCEEDED: no answer within the call's deadline; the call may have taken effect."""


class Cancelled(WorkEngineError):
    """CANCELLED: the call was cancelled (by this side, or the connection went away)."""


_CLASS_OF: dict[grpc.StatusCode, type[WorkEngineError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.ABORTED: Aborted,
    grpc.StatusCode.OUT_OF_RANGE: OutOfRange,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
    grpc.StatusCode.CANCELLED: Cancelled,
}


def from_rpc_error(error: grpc.RpcError, method: str = "") -> WorkEngineError:
    """The typed error for `error`, raised by a call of RPC `method` (e.g. "Heartbeat").
    Raise it `from error`. An error that is already typed is returned as is."""
    if isinstance(error, WorkEngineError):
        return error
    code = rpc_error_code(error)
    cls = _CLASS_OF.get(code, WorkEngineError)
    if cls is FailedPrecondition and method in REPORT_METHODS:
        cls = ReportRefused
    return cls(error, _rich_status(error))


def rpc_error_code(error: grpc.RpcError) -> grpc.StatusCode:
    """The status code of an RpcError (UNKNOWN for one that carries none)."""
    code = getattr(error, "code", None)
    found = code() if callable(code) else None
    return found if isinstance(found, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    """The google.rpc.Status in the trailing metadata, or None (absent or unreadable)."""
    metadata = getattr(error, "trailing_metadata", None)
    for key, value in (metadata() if callable(metadata) else None) or ():
        if key == _STATUS_DETAILS_KEY:
            try:
                return status_pb2.Status.FromString(value)
            except message.DecodeError:
                return None
    return None


def _field_of(details: str) -> str:
    """The field a "<field>: <problem>" message starts with (servers without a structured detail)."""
    field, separator, _ = details.partition(": ")
    return field if separator and field and " " not in field else ""

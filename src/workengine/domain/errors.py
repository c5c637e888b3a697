"""Domain errors. The api layer maps each class to one gRPC status code."""

from __future__ import annotations

# google.rpc.ErrorInfo.domain of the reasons and fields WorkEngine's errors carry (the api
# layer attaches them, the client reads them).
ERROR_DOMAIN = "workengine.v1"


class WorkEngineError(Exception):
    """Base class; `message` is short and safe to show to a client."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class FieldError(WorkEngineError):
    """An error about one request field: `field` names it (a dotted path), and the message is
    "<field>: <problem>"."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class InvalidArgument(FieldError):
    """A request field is malformed."""


class NotFound(FieldError):
    """An id names nothing; `field` names the request field that carried it."""


class AlreadyExists(WorkEngineError):
    """A client-chosen id is already taken."""


class PermissionDenied(WorkEngineError):
    """The caller acts on something that is not its own (a task of another orchestrator)."""


class FailedPrecondition(WorkEngineError):
    """The request is well-formed but the current state forbids it. `reason`, when set, is a
    stable UPPER_SNAKE code a client can branch on (e.g. LEASE_EXPIRED: stop working)."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class Aborted(WorkEngineError):
    """A concurrent caller won a race (e.g. started the same task first)."""


class TransactionConflict(Aborted):
    """The database aborted the transaction to resolve a conflict with a concurrent one
    (deadlock, serialization failure). Nothing was written; the whole call can be retried."""


class OutOfRange(FieldError):
    """A position outside what exists: a resume cursor whose following events were pruned,
    or one ahead of the event log. `field` names the request field that carried it."""


class Unavailable(WorkEngineError):
    """The database cannot be reached; retrying later may succeed."""


class Unauthenticated(WorkEngineError):
    """No valid credentials: the token is missing, malformed, unknown, revoked or expired."""


class ResourceExhausted(WorkEngineError):
    """A per-client limit was reached (e.g. concurrent streams); the message names the limit."""


def not_found(field: str, what: str, name: str) -> NotFound:
    """NOT_FOUND for the `what` (task, orchestrator) named `name` by the request field `field`."""
    return NotFound(field, f"{what} {name} not found")

"""Who is calling and what they may touch: bearer tokens and the authorization rules.

Pure functions; the engine looks tokens and task owners up, the api layer applies these rules.

- The admin token (configured on the server) may do everything.
- An orchestrator token acts for one orchestrator: on that orchestrator and its own tasks only.
  Anything else is PERMISSION_DENIED; a missing, malformed, unknown, revoked or expired token
  is UNAUTHENTICATED.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from workengine.domain.errors import InvalidArgument, PermissionDenied, Unauthenticated

# Issued tokens start with this, so secret scanners (and people) can tell what they are.
TOKEN_PREFIX = "wet_"
# 32 random bytes: 256 bits, so a sha256 of the token is a safe thing to store and look up.
TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 512
MAX_TOKEN_TTL = timedelta(days=3650)
_TOKEN_CHARACTERS = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no spaces
_BEARER = re.compile(r"^bearer[ \t]+(\S+)[ \t]*$", re.IGNORECASE)


class Role(enum.Enum):
    ADMIN = "admin"
    ORCHESTRATOR = "orchestrator"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller. With authentication off every caller is ADMIN."""

    role: Role
    orchestrator_id: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def name(self) -> str:
        """Stable name for per-client limits and logs (never the token)."""
        return "admin" if self.is_admin else f"orchestrator {self.orchestrator_id}"


ADMIN = Principal(Role.ADMIN)


def orchestrator_principal(orchestrator_id: str) -> Principal:
    return Principal(Role.ORCHESTRATOR, orchestrator_id)


@dataclass(frozen=True)
class IssuedToken:
    """A freshly issued orchestrator token: the secret is shown once, only its hash is stored."""

    orchestrator_id: str
    token: str
    expires_at: datetime | None


@dataclass(frozen=True)
class StoredToken:
    """What the database keeps of a token."""

    orchestrator_id: str
    expires_at: datetime | None
    # When the token stops working because it was revoked or rotated (may be in the future:
    # a rotation can leave the previous token working for a grace period).
    revoked_at: datetime | None


# Tokens


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    """What is stored and looked up: the sha256 of the token, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_secret(given: str, expected: str) -> bool:
    """Constant-time comparison (of digests, so neither length nor content leaks by timing)."""
    return hmac.compare_digest(token_hash(given).encode(), token_hash(expected).encode())


def bearer_token(authorization: Sequence[str]) -> str:
    """The token of the one `authorization: Bearer <token>` metadata entry, or UNAUTHENTICATED."""
    if not authorization:
        raise Unauthenticated("authorization: missing; send the metadata `authorization: Bearer <token>`")
    if len(authorization) > 1:
        raise Unauthenticated("authorization: sent more than once")
    match = _BEARER.match(authorization[0])
    if match is None:
        raise Unauthenticated("authorization: malformed; expected `Bearer <token>`")
    token = match[1]
    if len(token) > MAX_TOKEN_LENGTH or not _TOKEN_CHARACTERS.match(token):
        raise Unauthenticated("authorization: malformed token")
    return token


def check_stored_token(stored: StoredToken | None, now: datetime) -> Principal:
    """The principal a stored token stands for, if it still works at `now`."""
    if stored is None:
        raise Unauthenticated("authorization: unknown token")
    if stored.revoked_at is not None and stored.revoked_at <= now:
        raise Unauthenticated("authorization: token revoked")
    if stored.expires_at is not None and stored.expires_at <= now:
        raise Unauthenticated("authorization: token expired")
    return orchestrator_principal(stored.orchestrator_id)


def token_ttl(field: str, value: timedelta | None) -> timedelta | None:
    """A token lifetime from a request: unset means the token does not expire."""
    if value is None:
        return None
    if value <= timedelta(0):
        raise InvalidArgument(field, "must be positive")
    if value > MAX_TOKEN_TTL:
        raise InvalidArgument(field, f"must be at most {MAX_TOKEN_TTL.days} days")
    return value


def rotation_grace(field: str, value: timedelta | None) -> timedelta:
    """How long tokens replaced by a rotation keep working: unset or 0 revokes them at once."""
    if value is None:
        return timedelta(0)
    if value < timedelta(0):
        raise InvalidArgument(field, "must not be negative")
    if value > timedelta(days=30):
        raise InvalidArgument(field, "must be at most 30 days")
    return value


# Authorization


class Scope(enum.Enum):
    """What an RPC's request names, and so what the caller must own."""

    ADMIN = "admin"  # nothing an orchestrator owns: admin only
    ORCHESTRATOR = "orchestrator"  # request.orchestrator_id must be the caller's
    TASK = "task"  # request.task_id must be assigned to the caller
    TASK_LIST = "task_list"  # request.orchestrator_id: forced to the caller's when empty
    WATCH = "watch"  # one of task_id / orchestrator_id / workspace_id, see watch_scope
    ANY = "any"  # any authenticated caller (the engine refuses the request anyway)


# Per RPC of workengine.v1.WorkEngineService. An RPC not listed is admin only (fail closed).
RULES: dict[str, Scope] = {
    "SelectNextTask": Scope.ORCHESTRATOR,
    "ClaimNextTask": Scope.ORCHESTRATOR,
    # The engine also refuses a task of another orchestrator (PERMISSION_DENIED).
    "PrepareTaskContext": Scope.ORCHESTRATOR,
    "ExecuteTask": Scope.ORCHESTRATOR,
    "UpdateTaskProgress": Scope.TASK,
    "CompleteTask": Scope.TASK,
    "Heartbeat": Scope.TASK,
    "RetryTask": Scope.TASK,
    "GetExecutionStats": Scope.ORCHESTRATOR,
    "WatchTaskProgress": Scope.WATCH,
    "RegisterOrchestrator": Scope.ADMIN,
    "GetOrchestrator": Scope.ORCHESTRATOR,
    "ListOrchestrators": Scope.ADMIN,
    "SetOrchestratorStatus": Scope.ORCHESTRATOR,
    "RotateOrchestratorToken": Scope.ORCHESTRATOR,
    "RevokeOrchestratorTokens": Scope.ADMIN,
    "CreateTask": Scope.ORCHESTRATOR,
    "GetTask": Scope.TASK,
    "ListTasks": Scope.TASK_LIST,
    "CancelTask": Scope.TASK,
}


def scope_of(rpc: str) -> Scope:
    return RULES.get(rpc, Scope.ADMIN)


def watch_scope(task_id: str, orchestrator_id: str, workspace_id: str) -> Scope:
    """A task or orchestrator watch is the owner's; a workspace spans orchestrators: admin only.
    No target at all is left to the engine (INVALID_ARGUMENT)."""
    if task_id:
        return Scope.TASK
    if orchestrator_id:
        return Scope.ORCHESTRATOR
    if workspace_id:
        return Scope.ADMIN
    return Scope.ANY


def require_admin(principal: Principal, rpc: str) -> None:
    if not principal.is_admin:
        raise PermissionDenied(f"{rpc} needs the admin token; an orchestrator token cannot call it")


def allow_orchestrator(principal: Principal, orchestrator_id: str) -> None:
    """An orchestrator token acts for its own orchestrator only. An empty id is left to the
    use case, which refuses it with INVALID_ARGUMENT (it is required wherever this applies)."""
    if principal.is_admin or not orchestrator_id or orchestrator_id == principal.orchestrator_id:
        return
    raise PermissionDenied(
        f"orchestrator_id: this token acts for orchestrator {principal.orchestrator_id} only"
    )


def allow_task(principal: Principal, owner: str | None) -> None:
    """`owner` is the task's orchestrator; None (no such task) is left to the engine's NOT_FOUND."""
    if principal.is_admin or owner is None or owner == principal.orchestrator_id:
        return
    raise PermissionDenied(
        f"task_id: the task is assigned to another orchestrator; this token acts for "
        f"{principal.orchestrator_id} only"
    )


def task_list_orchestrator(principal: Principal, requested: str) -> str:
    """The orchestrator filter a task listing runs with: an orchestrator lists its own tasks."""
    if principal.is_admin:
        return requested
    allow_orchestrator(principal, requested or principal.orchestrator_id)
    return principal.orchestrator_id

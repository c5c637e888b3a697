"""Who is calling and what they may touch: bearer tokens, principals, ownership.

Pure functions; the engine looks tokens and task owners up, and api/authorization.py says which
request field each RPC names what it touches by.

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
from datetime import datetime

from workengine.domain.errors import PermissionDenied, Unauthenticated

# Issued tokens start with this, so secret scanners (and people) can tell what they are.
TOKEN_PREFIX = "wet_"
# 32 random bytes: 256 bits, so a sha256 of the token is a safe thing to store and look up.
TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 512
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


# Authorization


def allow_orchestrator(principal: Principal, orchestrator_id: str) -> None:
    """An orchestrator token acts for its own orchestrator only. An empty id names none: a use
    case that needs one refuses it (INVALID_ARGUMENT); a task listing lists the caller's own."""
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

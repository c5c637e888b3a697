"""Opaque keyset page tokens, bound to the filters they were issued for."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, TypeVar

from workengine.domain.errors import InvalidArgument
from workengine.domain.model import Page
from workengine.domain.validation import ID_PATTERN

# Tokens this server issues are about 150 characters; anything far longer is not one of them.
MAX_TOKEN_LENGTH = 1024


class Listed(Protocol):
    """What a listing pages by: creation time, then id."""

    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> datetime | None: ...


Item = TypeVar("Item", bound=Listed)


def page_of(found: Sequence[Item], limit: int, filters: object) -> Page[Item]:
    """The first `limit` items of `found` (read as limit + 1, so a next page shows), with the
    token of the next page when there is one."""
    if len(found) <= limit:
        return Page(tuple(found), "")
    last = found[limit - 1]
    assert last.created_at is not None  # the database sets it
    return Page(tuple(found[:limit]), encode(last.created_at, last.id, filters))


def _filter_digest(filters: object) -> str:
    return hashlib.sha256(repr(filters).encode()).hexdigest()[:16]


def encode(created_at: datetime, item_id: str, filters: object) -> str:
    payload = json.dumps([created_at.isoformat(), item_id, _filter_digest(filters)])
    return base64.urlsafe_b64encode(payload.encode()).decode()


def decode(token: str, filters: object) -> tuple[datetime, str] | None:
    if not token:
        return None
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidArgument("page_token", "is not a token this server issued")
    try:
        created_at, item_id, digest = json.loads(base64.urlsafe_b64decode(token.encode()))
        position = (datetime.fromisoformat(created_at), item_id)
    except (ValueError, TypeError, RecursionError):
        raise InvalidArgument("page_token", "is not a token this server issued") from None
    # The digest is no secret: a forged token can be well-formed. What goes to the database
    # must be what this server writes (an aware time, an id), not a NUL byte or a lone
    # surrogate the driver cannot send.
    if not isinstance(item_id, str) or not ID_PATTERN.match(item_id) or position[0].tzinfo is None:
        raise InvalidArgument("page_token", "is not a token this server issued")
    if digest != _filter_digest(filters):
        raise InvalidArgument("page_token", "was issued for different filters")
    return position

"""Orchestrator tokens and task ownership: the lookups authorization needs, with their caches.

The rules themselves are in domain/access.py; api/authorization.py applies them to each call.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import timedelta
from typing import Generic, TypeVar

from workengine.domain import access, validation
from workengine.domain.access import IssuedToken, Principal, StoredToken
from workengine.domain.errors import AlreadyExists, not_found
from workengine.domain.model import NewOrchestrator, Orchestrator
from workengine.engine.base import Deps, require_orchestrator
from workengine.engine.orchestrators import prepare_orchestrator
from workengine.store.session import Session

K = TypeVar("K")
V = TypeVar("V")

# A token looked up once is trusted for this long by this process: a revocation takes effect at
# once on the process that made it and within this time on the other replicas.
TOKEN_CACHE_SECONDS = 5.0
TOKEN_CACHE_SIZE = 10_000
# task id -> orchestrator id. Ownership never changes, so entries never go stale.
OWNER_CACHE_SIZE = 100_000


class Lru(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self._size:
            self._items.popitem(last=False)

    def discard_where(self, predicate: Callable[[V], bool]) -> None:
        for key in [k for k, v in self._items.items() if predicate(v)]:
            del self._items[key]

    def __len__(self) -> int:
        return len(self._items)


class Access:
    def __init__(self, deps: Deps, *, token_cache_seconds: float = TOKEN_CACHE_SECONDS) -> None:
        self._deps = deps
        self._token_cache_seconds = token_cache_seconds
        # token hash -> (stored token, monotonic time it was read)
        self._tokens: Lru[str, tuple[StoredToken, float]] = Lru(TOKEN_CACHE_SIZE)
        self._owners: Lru[str, str] = Lru(OWNER_CACHE_SIZE)

    async def authenticate(self, token: str) -> Principal:
        """The orchestrator an orchestrator token stands for; UNAUTHENTICATED if it does not work."""
        digest = access.token_hash(token)
        cached = self._tokens.get(digest)
        if cached is not None and time.monotonic() - cached[1] < self._token_cache_seconds:
            stored: StoredToken | None = cached[0]
        else:
            async with self._deps.db.autocommit() as session:
                stored = await session.orchestrators.find_token(digest)
            if stored is not None:
                self._tokens.put(digest, (stored, time.monotonic()))
        return access.check_stored_token(stored, self._deps.clock())

    async def task_owner(self, task_id: str) -> str | None:
        """The orchestrator the task is assigned to; None when there is no such task."""
        owner = self._owners.get(task_id)
        if owner is not None:
            return owner
        if not validation.ID_PATTERN.match(task_id):
            return None  # the use case refuses it with INVALID_ARGUMENT
        async with self._deps.db.autocommit() as session:
            owner = await session.tasks.owner(task_id)
        if owner is not None:
            self._owners.put(task_id, owner)
        return owner

    async def _issue(self, session: Session, orchestrator_id: str, ttl: timedelta | None) -> IssuedToken:
        token = access.new_token()
        expires_at = self._deps.clock() + ttl if ttl is not None else None
        await session.orchestrators.insert_token(orchestrator_id, access.token_hash(token), expires_at)
        return IssuedToken(orchestrator_id, token, expires_at)

    async def register(
        self, new: NewOrchestrator, token_ttl: timedelta | None
    ) -> tuple[Orchestrator, IssuedToken]:
        """Registers the orchestrator and issues its first token, in one transaction."""
        token_ttl = validation.token_ttl("token_ttl", token_ttl)
        new = prepare_orchestrator(new)
        async with self._deps.db.transaction() as session:
            created = await session.orchestrators.insert(new)
            if created is None:
                raise AlreadyExists(f"orchestrator {new.id} already exists")
            issued = await self._issue(session, created.id, token_ttl)
        return created, issued

    async def rotate(
        self, orchestrator_id: str, token_ttl: timedelta | None, grace: timedelta | None
    ) -> IssuedToken:
        """Issues a new token; the orchestrator's other tokens stop working after `grace` (0: now)."""
        validation.require_id("orchestrator_id", orchestrator_id)
        token_ttl = validation.token_ttl("token_ttl", token_ttl)
        grace = validation.rotation_grace("previous_token_grace", grace)
        async with self._deps.db.transaction() as session:
            await require_orchestrator(session, orchestrator_id)
            await session.orchestrators.retire_tokens(orchestrator_id, self._deps.clock() + grace)
            issued = await self._issue(session, orchestrator_id, token_ttl)
        self._forget(orchestrator_id)
        return issued

    async def revoke(self, orchestrator_id: str) -> int:
        """Every token of the orchestrator stops working now; returns how many did work."""
        validation.require_id("orchestrator_id", orchestrator_id)
        async with self._deps.db.transaction() as session:
            retired = await session.orchestrators.retire_tokens(orchestrator_id, self._deps.clock())
            if not retired and await session.orchestrators.get(orchestrator_id) is None:
                raise not_found("orchestrator_id", "orchestrator", orchestrator_id)
        self._forget(orchestrator_id)
        return retired

    def _forget(self, orchestrator_id: str) -> None:
        self._tokens.discard_where(lambda entry: entry[0].orchestrator_id == orchestrator_id)

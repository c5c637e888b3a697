"""Authentication, authorization and the per-client stream limit, in front of WorkEngineService.

One server interceptor: health and reflection pass untouched (always open). For the service's
own RPCs it reads `authorization: Bearer <token>` (when an admin token is configured), applies
the rules of api/authorization.py to the request (never changing it), records the caller in
workengine.calls.CALLER for the call, then calls the servicer. The servicer never sees tokens; the
engine looks tokens and task owners up.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc

from workengine.api import authorization
from workengine.api.errors import abort, require_decoded, status_for
from workengine.api.handlers import Behavior, rewrapped
from workengine.calls import CALLER
from workengine.domain import access
from workengine.domain.access import Principal
from workengine.domain.errors import PermissionDenied, ResourceExhausted, Unauthenticated
from workengine.engine import WorkEngine

DEFAULT_MAX_STREAMS_PER_CLIENT = 100

log = logging.getLogger(__name__)


def peer_host(peer: str) -> str:
    """'ipv4:10.0.0.7:51234' -> 'ipv4:10.0.0.7'; '[::1]' ports likewise; others unchanged."""
    if peer.startswith(("ipv4:", "ipv6:")):
        return peer.rsplit(":", 1)[0]
    return peer


async def refuse(context: grpc.aio.ServicerContext[Any, Any], error: Exception) -> None:
    """Ends the call with `error`'s status. A refused token or permission is logged, for whoever
    watches for stolen or misconfigured tokens: the reason (which never quotes the token), with
    the call's method and peer (api/call_context.py)."""
    if isinstance(error, Unauthenticated | PermissionDenied):
        log.warning("call refused: %s: %s", status_for(error).name, error.message)
    await abort(context, error)


class Guard(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(
        self,
        engine: WorkEngine,
        service_name: str,
        *,
        admin_token: str | None = None,
        max_streams_per_client: int = DEFAULT_MAX_STREAMS_PER_CLIENT,
    ) -> None:
        self._engine = engine
        self._prefix = f"/{service_name}/"
        self._admin_token = admin_token or None
        self._max_streams = max_streams_per_client
        self._streams: dict[str, int] = {}

    @property
    def authenticating(self) -> bool:
        return self._admin_token is not None

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method: str = details.method
        if handler is None or not method.startswith(self._prefix):
            return handler  # health and reflection stay open
        rpc = method[len(self._prefix) :]
        authorization = [
            value
            for key, value in (details.invocation_metadata or ())
            if key == "authorization" and isinstance(value, str)
        ]
        if handler.unary_unary is not None:
            if not self.authenticating:
                return handler
            return rewrapped(
                handler, "unary_unary", self._guard_unary(rpc, authorization, handler.unary_unary)
            )
        if handler.unary_stream is not None:
            if not self.authenticating and self._max_streams <= 0:
                return handler
            return rewrapped(
                handler, "unary_stream", self._guard_stream(rpc, authorization, handler.unary_stream)
            )
        return handler

    # Checks

    async def principal(self, authorization: Sequence[str]) -> Principal:
        if self._admin_token is None:
            return access.ADMIN
        token = access.bearer_token(authorization)
        if access.same_secret(token, self._admin_token):
            return access.ADMIN
        return await self._engine.access.authenticate(token)

    async def authorize(self, principal: Principal, rpc: str, request: Any) -> None:
        """Refuses what `principal` may not do; records it as the call's caller otherwise."""
        await authorization.authorize(principal, rpc, request, self._engine.access.task_owner)
        CALLER.set(principal)

    def _open_stream(self, client: str, described: str) -> None:
        if self._max_streams <= 0:
            return
        open_now = self._streams.get(client, 0)
        if open_now >= self._max_streams:
            raise ResourceExhausted(
                f"max_streams_per_client: {described} already has {open_now} open streams, the "
                f"server's limit (--max-streams-per-client); close one first"
            )
        self._streams[client] = open_now + 1

    def _close_stream(self, client: str) -> None:
        if self._max_streams <= 0:
            return
        left = self._streams.get(client, 1) - 1
        if left > 0:
            self._streams[client] = left
        else:
            self._streams.pop(client, None)

    def open_streams(self, client: str) -> int:
        return self._streams.get(client, 0)

    # Wrapped behaviours

    def _guard_unary(self, rpc: str, authorization: list[str], inner: Behavior) -> Behavior:
        async def behavior(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            try:
                principal = await self.principal(authorization)
                require_decoded(request)  # the rules read the request's fields
                await self.authorize(principal, rpc, request)
            except Exception as error:
                await refuse(context, error)
            return await inner(request, context)

        return behavior

    def _guard_stream(self, rpc: str, authorization: list[str], inner: Behavior) -> Behavior:
        async def behavior(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            try:
                principal = await self.principal(authorization)
                require_decoded(request)  # the rules read the request's fields
                await self.authorize(principal, rpc, request)
                if self.authenticating:
                    client = described = principal.name
                else:
                    client = peer_host(context.peer())
                    described = f"client address {client.split(':', 1)[-1]}"
                self._open_stream(client, described)
            except Exception as error:
                await refuse(context, error)
                return
            try:
                async for item in inner(request, context):
                    yield item
            finally:
                self._close_stream(client)

        return behavior

"""The call being served, for log records: which RPC, from which peer.

`CallContext`, a server interceptor, records them in `CALL` from inside the call's own
behaviour, which grpc.aio runs in the call's task for unary and streaming calls alike, so the
records the guard, the servicer and the engine emit while serving the call carry them (and
those of tasks started during the call, which copy its context). Setting the variable in
`intercept_service` instead would not do: the peer is not known there, and grpc.aio runs a
synchronous unary handler in an executor that does not see it.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from workengine.api.handlers import Behavior, kind_of, rewrapped
from workengine.calls import CALL, Call


def _recording(method: str, behavior: Behavior) -> Behavior | None:
    """`behavior`, first recording the call; None for a synchronous one (left alone: wrapping
    it in a coroutine would run it on the event loop instead of grpc's executor)."""
    if inspect.isasyncgenfunction(behavior):

        async def stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            CALL.set(Call(method, context.peer()))
            async for response in behavior(request, context):
                yield response

        return stream
    if inspect.iscoroutinefunction(behavior):
        # Also a streaming handler that writes with context.write() (the health service's Watch).

        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            CALL.set(Call(method, context.peer()))
            return await behavior(request, context)

        return call
    return None


class CallContext(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Records every served call's method and peer in `CALL`; first in the interceptor list,
    so that the other interceptors' records carry them too."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or (kind := kind_of(handler)) is None:
            return handler
        recording = _recording(details.method, getattr(handler, kind))
        return handler if recording is None else rewrapped(handler, kind, recording)

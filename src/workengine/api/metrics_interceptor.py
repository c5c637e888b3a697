"""Counts every RPC for Prometheus, as go-grpc-prometheus does: started, handled by status code,
handling time, messages received and sent, and the watch streams open now.

The outermost interceptor, so refusals by the guard (authentication, limits) count with their
codes too. Handlers that write with `context.write()` instead of yielding (the health service's
Watch) are timed and counted as calls, not per message.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from workengine.telemetry.metrics import RpcMetrics

Behavior = Callable[[Any, Any], Any]
WATCH_METHOD = "WatchTaskProgress"


def status_name(context: grpc.aio.ServicerContext[Any, Any], error: BaseException | None) -> str:
    """The call's status code name, as the client will see it."""
    if isinstance(error, asyncio.CancelledError):
        return "CANCELLED"
    code = context.code()
    if code is None:
        return "UNKNOWN" if error is not None else "OK"
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return next((str(c.name) for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        service, _, method = str(details.method).lstrip("/").rpartition("/")
        if handler.unary_unary is not None:
            labels = ("unary", service, method)
            return grpc.unary_unary_rpc_method_handler(
                self._unary(labels, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            labels = ("server_stream", service, method)
            inner = handler.unary_stream
            wrapped = (
                self._stream(labels, inner)
                if inspect.isasyncgenfunction(inner)
                else self._unary(labels, inner)
            )
            return grpc.unary_stream_rpc_method_handler(
                wrapped,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler  # client and bidirectional streams (reflection): not counted

    def _begin(self, labels: tuple[str, str, str]) -> float:
        self._metrics.started.labels(*labels).inc()
        self._metrics.received.labels(*labels).inc()
        return time.perf_counter()

    def _end(
        self,
        labels: tuple[str, str, str],
        began: float,
        context: grpc.aio.ServicerContext[Any, Any],
        error: BaseException | None,
    ) -> None:
        self._metrics.handled.labels(*labels, status_name(context, error)).inc()
        self._metrics.handling.labels(*labels).observe(time.perf_counter() - began)

    def _unary(self, labels: tuple[str, str, str], inner: Behavior) -> Behavior:
        async def behavior(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            began, error = self._begin(labels), None
            try:
                response = await inner(request, context)
                if labels[0] == "unary":
                    self._metrics.sent.labels(*labels).inc()
                return response
            except BaseException as raised:
                error = raised
                raise
            finally:
                self._end(labels, began, context, error)

        return behavior

    def _stream(self, labels: tuple[str, str, str], inner: Behavior) -> Behavior:
        watch = labels[2] == WATCH_METHOD

        async def behavior(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
            began, error = self._begin(labels), None
            sent = self._metrics.sent.labels(*labels)
            if watch:
                self._metrics.watch_streams.inc()
            try:
                async for response in inner(request, context):
                    yield response
                    sent.inc()
            except BaseException as raised:
                error = raised
                raise
            finally:
                if watch:
                    self._metrics.watch_streams.dec()
                self._end(labels, began, context, error)

        return behavior

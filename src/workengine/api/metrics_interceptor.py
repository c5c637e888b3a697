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

from workengine.api.handlers import Behavior, rewrapped
from workengine.telemetry.metrics import RpcMetrics

WATCH_METHOD = "WatchTaskProgress"
# Seconds before the server's deadline within which a cancelled call counts as past its deadline.
DEADLINE_SLACK = 0.1


def status_name(context: grpc.aio.ServicerContext[Any, Any], error: BaseException | None) -> str:
    """The call's status code name, as the client will see it."""
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        # The call ended before its handler did: its deadline passed, or the client went away.
        # At its deadline the client cancels the call too, and that can arrive a little before
        # the server's copy of the deadline (sent as a timeout, so it starts a little later).
        remaining = context.time_remaining()
        return "DEADLINE_EXCEEDED" if remaining is not None and remaining < DEADLINE_SLACK else "CANCELLED"
    code = context.code()
    if code is None:
        return "UNKNOWN" if error is not None else "OK"
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return next((str(c.name) for c in grpc.StatusCode if c.value[0] == code), "UNKNOWN")


class MethodSeries:
    """One method's series, looked up once: `labels()` per call would cost more than the count."""

    def __init__(self, metrics: RpcMetrics, labels: tuple[str, str, str]) -> None:
        self._metrics = metrics
        self._labels = labels
        self.started = metrics.started.labels(*labels)
        self.received = metrics.received.labels(*labels)
        self.sent = metrics.sent.labels(*labels)
        self.handling = metrics.handling.labels(*labels)
        self._handled: dict[str, Any] = {}
        self.watch = metrics.watch_streams if labels[2] == WATCH_METHOD else None

    def begin(self) -> float:
        self.started.inc()
        self.received.inc()
        return time.perf_counter()

    def end(self, began: float, code: str) -> None:
        handled = self._handled.get(code)
        if handled is None:
            handled = self._handled[code] = self._metrics.handled.labels(*self._labels, code)
        handled.inc()
        self.handling.observe(time.perf_counter() - began)


class MetricsInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics
        self._series: dict[tuple[str, str], MethodSeries] = {}

    def series(self, kind: str, full_method: str) -> MethodSeries:
        found = self._series.get((kind, full_method))
        if found is None:
            service, _, method = full_method.lstrip("/").rpartition("/")
            found = self._series[(kind, full_method)] = MethodSeries(self._metrics, (kind, service, method))
        return found

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        if handler.unary_unary is not None:
            series = self.series("unary", details.method)
            return rewrapped(handler, "unary_unary", counted_unary(series, handler.unary_unary, replies=True))
        if handler.unary_stream is not None:
            series, inner = self.series("server_stream", details.method), handler.unary_stream
            # A handler that writes with context.write() (health's Watch) cannot be iterated.
            yielding = inspect.isasyncgenfunction(inner)
            counted = (
                counted_stream(series, inner) if yielding else counted_unary(series, inner, replies=False)
            )
            return rewrapped(handler, "unary_stream", counted)
        return handler  # client and bidirectional streams (reflection): not counted


def counted_unary(series: MethodSeries, inner: Behavior, *, replies: bool) -> Behavior:
    async def behavior(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        began, error = series.begin(), None
        try:
            response = await inner(request, context)
            if replies:
                series.sent.inc()
            return response
        except BaseException as raised:
            error = raised
            raise
        finally:
            series.end(began, status_name(context, error))

    return behavior


def counted_stream(series: MethodSeries, inner: Behavior) -> Behavior:
    async def behavior(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        began, error = series.begin(), None
        if series.watch is not None:
            series.watch.inc()
        try:
            async for response in inner(request, context):
                series.sent.inc()  # before the yield: a stream cut while paused there sent it
                yield response
        except BaseException as raised:
            error = raised
            raise
        finally:
            if series.watch is not None:
                series.watch.dec()
            series.end(began, status_name(context, error))

    return behavior

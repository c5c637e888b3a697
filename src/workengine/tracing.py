"""OpenTelemetry traces: the optional `otel` extra (`pip install 'workengine[otel]'`).

Tracing is on when the standard variables ask for it: OTEL_EXPORTER_OTLP_ENDPOINT (or
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set, or OTEL_TRACES_EXPORTER names an exporter
("otlp", "console"; "none" is off). The other OTEL_* variables (service name, resource
attributes, sampler, batch sizes, OTLP headers and certificates) apply as OpenTelemetry
defines them. Off, nothing of OpenTelemetry is imported: the hooks below are None checks.

`workengine serve` calls `configure_tracing()` and `Tracing.instrument_server()`; a daemon
calls `configure_tracing(its name)` alone and continues each task's trace with
`workengine.client.tracing.task_span`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

    from workengine.domain.model import Task

log = logging.getLogger("workengine.tracing")

# The tracing of this process's server, once instrument_server ran; None: off.
_active: Tracing | None = None


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The span exporters the environment asks for; empty: tracing off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    named = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if named:
        return [name for name in (part.strip() for part in named.split(",")) if name and name != "none"]
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return ["otlp"] if endpoint else []


def _exporter(name: str, environ: Mapping[str, str]) -> SpanExporter | None:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        log.warning("OTEL_TRACES_EXPORTER: %r is not available here (otlp, console); ignored", name)
        return None
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol and protocol.strip().lower() != "grpc":
        log.warning("OTLP protocol %r: the otel extra exports with grpc only (port 4317)", protocol)
    # Reads the endpoint, headers, certificates, compression and timeout from OTEL_EXPORTER_OTLP_*.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def _provider(service_name: str, exporters: list[SpanExporter]) -> TracerProvider:
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, when set
    if str(resource.attributes.get(SERVICE_NAME, "unknown_service")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def configure_tracing(
    service_name: str = "workengine", environ: Mapping[str, str] | None = None
) -> Tracing | None:
    """Sets the process's tracer provider as the environment asks; None when tracing is off
    (or asked for without the otel extra installed, which is logged)."""
    environ = os.environ if environ is None else environ
    names = exporter_names(environ)
    if not names:
        return None
    try:
        from opentelemetry import trace
    except ImportError:
        log.warning("tracing asked for (OTEL_*) but OpenTelemetry is missing: pip install 'workengine[otel]'")
        return None
    exporters = [exporter for name in names if (exporter := _exporter(name, environ)) is not None]
    if not exporters:
        return None
    provider = _provider(service_name, exporters)
    trace.set_tracer_provider(provider)
    return Tracing(provider)


class Tracing:
    """A configured tracer provider: the server's spans, and the flush at exit."""

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer("workengine")

    def instrument_server(self) -> list[Any]:
        """Turns on the spans of database statements and task starts in this process, and
        returns the interceptors for start_server: a span per WorkEngineService call. Health
        and reflection are left out: the instrumentation's wrapper breaks handlers that call
        context.write(), as the health service's Watch does."""
        global _active
        from opentelemetry.instrumentation.grpc import aio_server_interceptor, filters

        from workengine.api.server import SERVICE_NAME
        from workengine.store import runner

        _active = self
        runner.trace_statements(self.statement_span)
        only_ours = filters.service_name(SERVICE_NAME)
        return [aio_server_interceptor(self.provider, filter_=only_ours)]  # type: ignore[no-untyped-call]

    def statement_span(self, name: str) -> AbstractContextManager[Any]:
        """A span for one named statement, inside a call's span only: the background duties'
        statements (maintenance, the event feed) would otherwise each be a trace of their own,
        several a second."""
        from opentelemetry import trace

        if not trace.get_current_span().is_recording():
            return nullcontext()
        return self.tracer.start_as_current_span(
            name,
            kind=trace.SpanKind.CLIENT,
            attributes={"db.system.name": "postgresql", "db.query.summary": name},
        )

    def task_started(self, task: Task) -> None:
        """Puts a task's start into the task's own trace: a span whose parent is the creator's
        stored context, from the claim (the task's start time) to now, linked to the call that
        claimed it. The claim's own span cannot be in that trace: it began before the task was
        known."""
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        assert task.trace_context is not None
        parent = TraceContextTextMapPropagator().extract(task.trace_context.as_json())
        call = trace.get_current_span()
        call.set_attribute("workengine.task.id", task.id)
        links = [trace.Link(call.get_span_context())] if call.get_span_context().is_valid else []
        now = time.time_ns()
        started = int(task.started_at.timestamp() * 1e9) if task.started_at else now
        span = self.tracer.start_span(
            "start task",
            context=parent,
            links=links,
            start_time=min(started, now),  # the database's clock may run ahead of this one
            attributes={
                "workengine.task.id": task.id,
                "workengine.task.attempt": task.attempt,
                "workengine.orchestrator.id": task.orchestrator_id,
            },
        )
        span.end(end_time=now)

    def shutdown(self) -> None:
        """Exports the spans still buffered, then stops (blocks up to the exporter's timeout)."""
        global _active
        if _active is self:
            from workengine.store import runner

            _active = None
            runner.trace_statements(None)
        self.provider.shutdown()


def task_started(task: Task) -> None:
    """Called by the api when an attempt starts; nothing unless the server traces and the task
    carries a trace context."""
    if _active is not None and task.trace_context is not None:
        _active.task_started(task)

"""Following a task's trace from its creator to the daemon that runs it (OpenTelemetry).

Optional: it needs opentelemetry-api (`pip install 'workengine[otel]'` brings it with the SDK
and exporter), and does nothing without it.

- Every call of the clients carries the current span's W3C context (`traceparent`,
  `tracestate`, by the configured propagators) as metadata, once the program uses
  OpenTelemetry; a program that never imported it pays nothing. So a CreateTask made inside a
  span records that span as the task's creator (TaskContext.trace_context).
- `task_span(context)` runs a daemon's work on a task as a child of that context: the
  progress reports and the completion it makes inside carry the creator's trace, and one
  trace shows create -> start -> progress -> complete across processes.

    with task_span(claimed.context):
        client.update_task_progress(task.id, attempt, 50, "halfway")
        ...
        client.complete_task(task.id, attempt, output=output)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from workengine.v1 import task_pb2

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer


def propagation_metadata() -> tuple[tuple[str, str], ...]:
    """The current trace context as gRPC metadata; empty when the program does not trace."""
    if "opentelemetry.trace" not in sys.modules:
        return ()  # never imported: nothing to propagate, and no import to pay for
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())


@contextmanager
def task_span(
    context: task_pb2.TaskContext, name: str = "run task", tracer: Tracer | None = None
) -> Iterator[Span | None]:
    """A span, current for its body, whose parent is the task's creator (its trace_context),
    or whatever is current when the task has none; yields it (None without OpenTelemetry).
    An exception leaving the body is recorded on it. `tracer` defaults to the global
    provider's."""
    try:
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
    except ImportError:
        yield None
        return
    parent = None  # the current context
    if context.HasField("trace_context"):
        carrier = {"traceparent": context.trace_context.traceparent}
        if context.trace_context.tracestate:
            carrier["tracestate"] = context.trace_context.tracestate
        parent = TraceContextTextMapPropagator().extract(carrier)
    tracer = tracer or trace.get_tracer("workengine.client")
    attributes: dict[str, str | int] = {
        "workengine.task.id": context.task.id,
        "workengine.task.attempt": context.task.attempt,
        "workengine.orchestrator.id": context.task.orchestrator_id,
    }
    with tracer.start_as_current_span(
        name, context=parent, kind=trace.SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span

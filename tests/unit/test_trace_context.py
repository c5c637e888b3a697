"""What CreateTask accepts as a task's W3C trace context, and when tracing is on."""

from __future__ import annotations

import pytest

from workengine.domain.trace_context import MAX_TRACESTATE, TraceContext, from_headers, valid_traceparent
from workengine.tracing import exporter_names

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.mark.parametrize(
    "value",
    [
        VALID,
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",  # not sampled: still a context
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more",  # a later version may add fields
    ],
)
def test_valid_traceparents(value: str) -> None:
    assert valid_traceparent(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "garbage",
        VALID.upper(),  # W3C: lowercase hex only
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is forbidden
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero parent id
        VALID + "-extra",  # version 00 has exactly four fields
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # a short trace id
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-" + "x" * 600,  # too long
    ],
)
def test_malformed_traceparents(value: str) -> None:
    assert not valid_traceparent(value)


def test_a_malformed_or_ambiguous_traceparent_gives_no_context_at_all() -> None:
    assert from_headers(["garbage"], ["vendor=1"]) is None
    assert from_headers([], ["vendor=1"]) is None
    assert from_headers([VALID, VALID.replace("01", "00", 1)], []) is None


def test_tracestate_values_are_joined_and_kept_only_when_short_and_printable() -> None:
    assert from_headers([VALID], ["a=1", " b=2 "]) == TraceContext(VALID, "a=1,b=2")
    assert from_headers([VALID], []) == TraceContext(VALID, "")
    assert from_headers([VALID], ["a=" + "x" * MAX_TRACESTATE]) == TraceContext(VALID, "")
    assert from_headers([VALID], ["a=\x01"]) == TraceContext(VALID, "")


def test_the_stored_form_round_trips() -> None:
    for context in (TraceContext(VALID, "a=1"), TraceContext(VALID)):
        assert TraceContext.from_json(context.as_json()) == context
    assert TraceContext(VALID).as_json() == {"traceparent": VALID}
    assert TraceContext.from_json(None) is None
    assert TraceContext.from_json({}) is None


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4317"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp, console"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, []),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, []),
    ],
)
def test_tracing_is_on_when_the_standard_variables_ask_for_it(
    environ: dict[str, str], expected: list[str]
) -> None:
    assert exporter_names(environ) == expected

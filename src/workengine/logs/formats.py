"""The two log formats, and the fields a record takes from where it was emitted: the RPC being
served (method, peer, caller) and the current trace.

text: `2026-05-09 07:35:25,123 WARNING workengine.api.guard: call refused: ... [method=... peer=...]`
json: one object per line: time (RFC 3339, UTC), level, logger, message, then method, peer,
caller and trace_id where there is one, and exception ({type, message, traceback}).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from workengine.calls import CALLER, current_call
from workengine.logs.redaction import ExceptionFields, type_name

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The record attributes CallFields sets (None where there is none), in the order lines show them.
CONTEXT_FIELDS = ("method", "peer", "caller", "trace_id")


def current_trace_id() -> str | None:
    """The current span's trace id, 32 hex digits, when OpenTelemetry is tracing. The module is
    looked up, never imported: tracing is optional, and a process that does not trace must not
    pay for importing it on its first log record."""
    # getattr: a record logged while the module is still being imported finds it half made.
    get_current_span = getattr(sys.modules.get("opentelemetry.trace"), "get_current_span", None)
    if get_current_span is None:
        return None
    span_context = get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x")


class CallFields(logging.Filter):
    """Adds the call's method and peer, its authenticated caller and the trace id to a record.
    A handler runs in the task or thread that logs, so these are the emitter's own."""

    def filter(self, record: logging.LogRecord) -> bool:
        call = current_call()
        principal = CALLER.get(None)  # unset without authentication: no caller
        values = (
            call.method if call else None,
            call.peer if call else None,
            principal.name if principal else None,
            current_trace_id(),
        )
        for name, value in zip(CONTEXT_FIELDS, values, strict=True):
            setattr(record, name, value)
        return True


def context_of(record: logging.LogRecord) -> dict[str, str]:
    """The context fields a record has (none when CallFields did not see it)."""
    found = {name: getattr(record, name, None) for name in CONTEXT_FIELDS}
    return {name: value for name, value in found.items() if value}


class TextFormatter(logging.Formatter):
    """The classic line, with the call's fields after the message (logfmt style) when there is
    a call: a person reading the log sees which RPC, from where."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        context = context_of(record)
        if not context:
            return line
        shown = (f"{name}={json.dumps(value) if ' ' in value else value}" for name, value in context.items())
        return f"{line} [{' '.join(shown)}]"


def rfc3339(created: float) -> str:
    """'2026-05-09T07:35:25.123Z': UTC, milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{int(created * 1000) % 1000:03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in a message or traceback are escaped),
    ASCII only, so no terminal or collector encoding can garble it."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **context_of(record),
        }
        exception = self._exception(record)
        if exception is not None:
            entry["exception"] = {
                "type": exception.type,
                "message": exception.message,
                "traceback": exception.traceback,
            }
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str)

    def _exception(self, record: logging.LogRecord) -> ExceptionFields | None:
        """What the Redactor left on the record; else (no Redactor on this handler) the record's own."""
        fields = getattr(record, "exception", None)
        if isinstance(fields, ExceptionFields):
            return fields
        if not record.exc_info or record.exc_info[0] is None:
            return None
        kind, error, _ = record.exc_info
        return ExceptionFields(type_name(kind), str(error), self.formatException(record.exc_info))

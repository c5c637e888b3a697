"""A task's W3C trace context (https://www.w3.org/TR/trace-context/): what CreateTask accepts.

Tracing never fails a request: a malformed `traceparent` is ignored (the task is created
without a trace context, as the W3C recommendation says a receiver should treat it), and a
`tracestate` is kept only beside a valid `traceparent` and when it is short and printable.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# version-trace_id-parent_id-flags, lowercase hex. A later version may append fields after
# another "-"; version ff is forbidden.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
# Receivers need keep no more (W3C: "at least 512 characters" of tracestate); the same cap
# bounds a later version's traceparent, which stays short too.
MAX_TRACESTATE = 512
MAX_TRACEPARENT = 512


@dataclass(frozen=True)
class TraceContext:
    traceparent: str
    tracestate: str = ""

    def as_json(self) -> dict[str, str]:
        """What the store keeps in tasks.trace_context."""
        stored = {"traceparent": self.traceparent}
        if self.tracestate:
            stored["tracestate"] = self.tracestate
        return stored

    @staticmethod
    def from_json(stored: dict[str, Any] | None) -> TraceContext | None:
        if not stored or not isinstance(stored.get("traceparent"), str):
            return None
        return TraceContext(stored["traceparent"], str(stored.get("tracestate", "")))


def valid_traceparent(value: str) -> bool:
    found = _TRACEPARENT.fullmatch(value)
    if found is None or len(value) > MAX_TRACEPARENT:
        return False
    version, trace_id, parent_id, _flags, rest = found.groups()
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return False
    return version != "00" or rest is None  # version 00 has exactly four fields


def _printable(value: str) -> bool:
    return all(" " <= character <= "~" for character in value)


def from_headers(traceparents: Iterable[str], tracestates: Iterable[str]) -> TraceContext | None:
    """The trace context of a request's headers (or gRPC metadata), None when there is no valid
    one. Several `traceparent` values are ambiguous: ignored. Several `tracestate` values are
    one list split over headers, joined with commas as W3C says."""
    parents = list(traceparents)
    if len(parents) != 1 or not valid_traceparent(parents[0].strip()):
        return None
    state = ",".join(part.strip() for part in tracestates if part.strip())
    if len(state) > MAX_TRACESTATE or not _printable(state):
        state = ""
    return TraceContext(parents[0].strip(), state)

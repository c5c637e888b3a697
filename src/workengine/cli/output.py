"""How the client commands print: for a person (a table for lists, a short summary for one
thing), or with `--output json` the response message as JSON, for scripts."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from datetime import UTC
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message

TEXT = "text"
JSON = "json"


def add_output_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--output",
        "-o",
        choices=(TEXT, JSON),
        default=TEXT,
        help="text for a person (default), or json: the response message, as scripts read it",
    )


def show(args: argparse.Namespace, message: Message, text: str) -> None:
    """Prints `text`, or `message` as JSON with --output json."""
    print(as_json(message) if args.output == JSON else text)


def as_json(message: Message, indent: int | None = 2) -> str:
    """The message as JSON with the proto's field names (`orchestrator_id`); one line without
    `indent`."""
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=indent)


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Columns aligned under upper-case headers; the last column is not padded."""
    lines = [list(headers), *(list(row) for row in rows)]
    widths = [max(len(line[column]) for line in lines) for column in range(len(headers) - 1)]
    return "\n".join(
        "  ".join(
            [*(cell.ljust(width) for cell, width in zip(line, widths, strict=False)), line[-1]]
        ).rstrip()
        for line in lines
    )


def summary(heading: str, fields: Iterable[tuple[str, str]]) -> str:
    """A heading, then one `label  value` line per field that has a value."""
    shown = [(label, value) for label, value in fields if value]
    width = max((len(label) for label, _ in shown), default=0)
    return "\n".join([heading, *(f"  {label.ljust(width)}  {value}" for label, value in shown)])


def enum_name(enum: Any, value: int, prefix: str) -> str:
    """TASK_STATUS_DONE -> DONE; "" for the UNSPECIFIED value."""
    name = str(enum.Name(value)).removeprefix(prefix)
    return "" if name == "UNSPECIFIED" else name


def enum_value(enum: Any, name: str, prefix: str) -> Any:
    """done -> the value of TASK_STATUS_DONE (with prefix TASK_STATUS_)."""
    return enum.Value(prefix + name.upper())


def when(stamp: timestamp_pb2.Timestamp) -> str:
    """An instant as `2026-12-01 17:00:00Z`; "" when unset."""
    if not stamp.seconds and not stamp.nanos:
        return ""
    return stamp.ToDatetime(tzinfo=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def seconds(value: float) -> str:
    """A duration for a person: 17ms, 4.25s, 12.3s, 4m 05s, 2h 03m."""
    if value < 1:
        return f"{value * 1000:.0f}ms"
    if value < 60:
        return f"{value:.3g}s" if value < 10 else f"{value:.1f}s"
    minutes, rest = divmod(round(value), 60)
    if minutes < 60:
        return f"{minutes}m {rest:02d}s"
    return f"{minutes // 60}h {minutes % 60:02d}m"


def compact(value: struct_pb2.Struct) -> str:
    """A JSON object on one line; "" when empty."""
    return as_json(value, indent=None) if value.fields else ""

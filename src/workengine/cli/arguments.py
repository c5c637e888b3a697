"""Argument types the commands share: durations, sizes, times."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta

from workengine.values import parse_duration, parse_size


def duration(text: str) -> timedelta:
    """A positive duration: 90, 90s, 15m, 12h, 7d."""
    try:
        value = parse_duration(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    if value <= timedelta(0):
        raise argparse.ArgumentTypeError("must be positive")
    return value


def positive_seconds(text: str) -> float:
    return duration(text).total_seconds()


def size(text: str) -> int:
    """A byte count: 4096, 4KiB, 8MiB."""
    try:
        return parse_size(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def timestamp(text: str) -> datetime:
    """An ISO 8601 time with a zone."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give a time zone, e.g. 2026-12-01T17:00:00+00:00")
    return value


def moment(text: str) -> datetime:
    """An ISO 8601 time with a zone, or a duration meaning that long ago (24h, 7d)."""
    try:
        return datetime.now(UTC) - parse_duration(text)
    except ValueError:
        return timestamp(text)

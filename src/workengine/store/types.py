"""psycopg type adaptation: PostgreSQL's ±infinity timestamps as datetime.max / datetime.min.

`tasks.due_key` is 'infinity' for a task without a due time; psycopg refuses to load it by
default. The domain never sees due_key, but `RETURNING *` reads it.
"""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
from psycopg.types.datetime import TimestamptzBinaryLoader, TimestamptzLoader

POSITIVE_INFINITY = datetime.max.replace(tzinfo=UTC)
NEGATIVE_INFINITY = datetime.min.replace(tzinfo=UTC)


class InfinityTimestamptzLoader(TimestamptzLoader):
    def load(self, data: bytes | bytearray | memoryview) -> datetime:
        raw = bytes(data)
        if raw == b"infinity":
            return POSITIVE_INFINITY
        if raw == b"-infinity":
            return NEGATIVE_INFINITY
        return super().load(data)


# The binary form of ±infinity: the largest and smallest int64.
_BINARY_INFINITY = (2**63 - 1).to_bytes(8, "big", signed=True)
_BINARY_NEGATIVE_INFINITY = (-(2**63)).to_bytes(8, "big", signed=True)


class InfinityTimestamptzBinaryLoader(TimestamptzBinaryLoader):
    def load(self, data: bytes | bytearray | memoryview) -> datetime:
        if data == _BINARY_INFINITY:  # compared in place: no copy for the common case
            return POSITIVE_INFINITY
        if data == _BINARY_NEGATIVE_INFINITY:
            return NEGATIVE_INFINITY
        return super().load(data)


def register() -> None:
    psycopg.adapters.register_loader("timestamptz", InfinityTimestamptzLoader)
    psycopg.adapters.register_loader("timestamptz", InfinityTimestamptzBinaryLoader)

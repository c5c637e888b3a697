"""The proto conversions that replace protobuf's own helpers for speed give the same answers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from google.protobuf import timestamp_pb2

from workengine.api.convert import time_out


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 12, 1, 2, 26, 42, 155515, tzinfo=UTC),
        datetime(2026, 12, 1, 4, 26, 42, 1, tzinfo=timezone(timedelta(hours=2))),
        datetime(1960, 5, 5, 1, 2, 3, 500, tzinfo=UTC),  # before the epoch: nanos stay positive
        datetime(1, 1, 1, 0, 0, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_time_out_matches_from_datetime(value: datetime) -> None:
    expected = timestamp_pb2.Timestamp()
    expected.FromDatetime(value)
    converted = timestamp_pb2.Timestamp()

    time_out(converted, value)

    assert converted == expected


def test_time_out_leaves_absent_and_minus_infinity_unset() -> None:
    for value in (None, datetime(1, 1, 1, tzinfo=UTC)):
        converted = timestamp_pb2.Timestamp()
        time_out(converted, value)
        assert converted == timestamp_pb2.Timestamp()

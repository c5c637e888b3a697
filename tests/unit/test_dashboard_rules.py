"""Pure rules behind the dashboard: the completion-time histogram's bars, the throughput's
minutes, the sign-in sessions' expiry and bound, and the ETA in its JSON."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from workengine.domain.model import EventKind, Task, TaskEvent, TaskStatus
from workengine.domain.statistics import MinuteCount, histogram_by_doubling, per_minute
from workengine.web import convert
from workengine.web.auth import Sessions, host_name


def test_the_histogram_has_one_bar_per_doubling_and_keeps_empty_ones_between() -> None:
    # Buckets 1..16 are [1 ms, 2 ms), 17..32 [2 ms, 4 ms), ...; bucket 0 is under 1 ms.
    bars = histogram_by_doubling({0: 1, 1: 2, 16: 3, 49: 4})
    assert bars == ((0.001, 1), (0.002, 5), (0.004, 0), (0.008, 0), (0.016, 4))
    assert histogram_by_doubling({}) == ()
    assert histogram_by_doubling({5: 0}) == ()


def test_throughput_has_every_minute_of_the_window_zeros_included() -> None:
    since = datetime(2025, 1, 1, 12, 0, 30, tzinfo=UTC)
    now = since + timedelta(minutes=3)
    found = [MinuteCount(datetime(2025, 1, 1, 12, 2, tzinfo=UTC), 4, 1)]
    counted = per_minute(since, now, since, found)
    assert [(m.minute.minute, m.completed, m.failed) for m in counted.minutes] == [
        (0, 0, 0),
        (1, 0, 0),
        (2, 4, 1),
        (3, 0, 0),
    ]
    assert per_minute(since, now, since - timedelta(hours=1), []).counted_since == since


def test_sessions_expire_and_stay_bounded() -> None:
    clock = [1000.0]
    sessions = Sessions(lifetime=60, limit=2, clock=lambda: clock[0])
    first = sessions.create()
    assert sessions.get(first) is not None and sessions.get("guessed") is None
    clock[0] += 61
    assert sessions.get(first) is None
    a, b, c = sessions.create(), sessions.create(), sessions.create()
    assert sessions.get(a) is None and sessions.get(b) is not None and sessions.get(c) is not None
    assert len({a, b, c}) == 3 and all(len(s) >= 40 for s in (a, b, c))


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("127.0.0.1:8081", "127.0.0.1"),
        ("[::1]:8081", "::1"),
        ("LocalHost", "localhost"),
        ("evil.example:1", "evil.example"),
    ],
)
def test_host_names_are_read_without_their_port(header: str, name: str) -> None:
    assert host_name(header) == name


ETA = datetime(2026, 11, 30, 12, 3, tzinfo=UTC)


@pytest.mark.parametrize("status", list(TaskStatus))
def test_a_tasks_eta_is_in_its_json_only_while_in_progress(status: TaskStatus) -> None:
    task = Task(id="t-1", orchestrator_id="ada", workspace_id="ws", title="t", status=status)
    with_eta = convert.task_summary(replace(task, estimated_completion_at=ETA))
    assert convert.task_summary(task)["estimated_completion_at"] is None
    if status is TaskStatus.IN_PROGRESS:
        assert with_eta["estimated_completion_at"] == "2026-11-30T12:03:00+00:00"
        assert convert.task_full(replace(task, estimated_completion_at=ETA))["estimated_completion_at"] == (
            "2026-11-30T12:03:00+00:00"
        )
    else:
        assert with_eta["estimated_completion_at"] is None


def test_a_progress_events_json_carries_the_eta_of_its_report() -> None:
    task = Task(
        id="t-1",
        orchestrator_id="ada",
        workspace_id="ws",
        title="t",
        status=TaskStatus.IN_PROGRESS,
        progress=40,
        estimated_completion_at=ETA,
    )
    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    report = convert.event(TaskEvent(1, EventKind.PROGRESS, at, task, 1, 40, estimated_completion_at=ETA))
    started = convert.event(TaskEvent(2, EventKind.STARTED, at, replace(task, estimated_completion_at=None)))
    assert report["estimated_completion_at"] == report["task"]["estimated_completion_at"] == ETA.isoformat()
    assert started["estimated_completion_at"] is started["task"]["estimated_completion_at"] is None

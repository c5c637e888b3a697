"""How `workengine watch` renders events, and the duration flags of `serve`."""

from __future__ import annotations

from datetime import timedelta

import pytest

from workengine.cli.watch_view import ProgressBoard, plain_line, progress_bar
from workengine.v1 import task_pb2
from workengine.values import parse_duration


def event(task_id: str, kind: int, status: int, percent: int = 0, message: str = "") -> task_pb2.TaskEvent:
    made = task_pb2.TaskEvent(
        cursor=42,
        kind=kind,  # type: ignore[arg-type]
        message=message,
        task=task_pb2.Task(id=task_id, title=task_id.title(), status=status, progress=percent),  # type: ignore[arg-type]
    )
    made.event_time.FromJsonString("2026-11-30T12:00:00Z")
    return made


@pytest.mark.parametrize(
    ("percent", "expected"),
    [
        (0, "[----------]   0%"),
        (45, "[####------]  45%"),
        (100, "[##########] 100%"),
        (150, "[##########] 100%"),
        (-5, "[----------]   0%"),
    ],
)
def test_progress_bar_fills_in_proportion_and_clamps(percent: int, expected: str) -> None:
    assert progress_bar(percent, width=10) == expected


def test_plain_line_has_cursor_time_kind_task_status_percent_and_message() -> None:
    line = plain_line(
        event("t1", task_pb2.TASK_EVENT_KIND_PROGRESS, task_pb2.TASK_STATUS_IN_PROGRESS, 40, "drafting")
    )
    assert line == "42 2026-11-30T12:00:00Z PROGRESS t1 IN_PROGRESS 40% drafting"


def test_plain_line_shows_metadata_as_json() -> None:
    with_metadata = event("t1", task_pb2.TASK_EVENT_KIND_PROGRESS, task_pb2.TASK_STATUS_IN_PROGRESS, 5)
    with_metadata.metadata.update({"step": "fetch"})
    assert plain_line(with_metadata).endswith('5% {"step": "fetch"}')


def test_board_keeps_one_line_per_task_in_first_seen_order_and_redraws_in_place() -> None:
    board = ProgressBoard()
    board.apply(event("alpha", task_pb2.TASK_EVENT_KIND_SNAPSHOT, task_pb2.TASK_STATUS_TODO))
    board.apply(event("beta", task_pb2.TASK_EVENT_KIND_SNAPSHOT, task_pb2.TASK_STATUS_TODO))
    first = board.redraw()
    assert not first.startswith("\x1b[")  # nothing drawn yet to move over
    board.apply(
        event("alpha", task_pb2.TASK_EVENT_KIND_PROGRESS, task_pb2.TASK_STATUS_IN_PROGRESS, 50, "half")
    )
    second = board.redraw()
    assert second.startswith("\x1b[2F")
    lines = board.lines()
    assert [line.split()[0] for line in lines] == ["Alpha", "Beta"]
    assert "50%" in lines[0] and "IN_PROGRESS" in lines[0] and lines[0].endswith("half")


def test_a_done_task_shows_a_full_bar() -> None:
    board = ProgressBoard()
    board.apply(event("alpha", task_pb2.TASK_EVENT_KIND_COMPLETED, task_pb2.TASK_STATUS_DONE, 30))
    assert "100%" in board.lines()[0]


def test_a_finished_task_shows_its_outcome_instead_of_the_last_progress_message() -> None:
    board = ProgressBoard()
    running = event(
        "py", task_pb2.TASK_EVENT_KIND_PROGRESS, task_pb2.TASK_STATUS_IN_PROGRESS, 50, "py-1 is halfway"
    )
    board.apply(running)
    assert board.lines()[0].endswith("IN_PROGRESS py-1 is halfway")

    done = event("py", task_pb2.TASK_EVENT_KIND_COMPLETED, task_pb2.TASK_STATUS_DONE, 50)
    done.task.progress_message = "py-1 is halfway"
    board.apply(done)
    failed = event("ko", task_pb2.TASK_EVENT_KIND_FAILED, task_pb2.TASK_STATUS_FAILED, 50)
    failed.task.progress_message = "py-1 is halfway"
    failed.task.result.error = "boom"
    board.apply(failed)
    board.apply(
        event("no", task_pb2.TASK_EVENT_KIND_CANCELLED, task_pb2.TASK_STATUS_CANCELLED, 0, "not needed")
    )

    assert [line.split(maxsplit=3)[-1] for line in board.lines()] == [
        "DONE        done",
        "FAILED      failed: boom",
        "CANCELLED   cancelled: not needed",
    ]
    assert plain_line(done).endswith("COMPLETED py DONE 100% done")
    assert plain_line(failed).endswith("FAILED ko FAILED 50% failed: boom")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90", timedelta(seconds=90)),
        ("90s", timedelta(seconds=90)),
        ("1.5m", timedelta(seconds=90)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
    ],
)
def test_durations_take_seconds_minutes_hours_or_days(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "7w", "-1d", "d", "1 day"])
def test_malformed_durations_are_refused_with_an_example(text: str) -> None:
    with pytest.raises(ValueError, match="like 90s, 15m, 12h or 7d"):
        parse_duration(text)

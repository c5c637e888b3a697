"""How `workengine watch` renders events (with the time left until an ETA), and the duration
flags of `serve`."""

from __future__ import annotations

import argparse
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from workengine.cli.output import TEXT
from workengine.cli.watch import Printer
from workengine.cli.watch_view import ProgressBoard, estimated_completion, plain_line, progress_bar
from workengine.v1 import task_pb2
from workengine.values import parse_duration, show_time_left

EVENT_TIME = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


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


# The time left until an ETA


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-30, "~0 s left"),  # an ETA already passed is never negative
        (0, "~0 s left"),
        (0.49, "~0 s left"),
        (0.5, "~1 s left"),  # halves round up, not to even
        (2.5, "~3 s left"),
        (40, "~40 s left"),
        (59.49, "~59 s left"),
        (59.5, "~1 min left"),  # rounds to 60 s: shown in the next unit
        (89.9, "~1 min left"),
        (90, "~2 min left"),
        (150, "~3 min left"),
        (59 * 60 + 29, "~59 min left"),
        (59 * 60 + 30, "~1 h left"),
        (2 * 3600, "~2 h left"),
        (2 * 3600 + 5 * 60, "~2 h 5 min left"),
        (2 * 3600 + 5 * 60 + 31, "~2 h 6 min left"),
        (23 * 3600 + 59 * 60 + 29, "~23 h 59 min left"),
        (23 * 3600 + 59 * 60 + 30, "~1 d left"),
        (28 * 3600, "~1 d 4 h left"),
        (3 * 86400 + 1799, "~3 d left"),
    ],
)
def test_the_time_left_is_rounded_to_the_unit_shown(seconds: float, expected: str) -> None:
    assert show_time_left(timedelta(seconds=seconds)) == expected


def running(
    kind: int = task_pb2.TASK_EVENT_KIND_PROGRESS,
    *,
    eta: timedelta | None = timedelta(minutes=3),
    task_eta: timedelta | None = None,
    status: int = task_pb2.TASK_STATUS_IN_PROGRESS,
) -> task_pb2.TaskEvent:
    """A task event at EVENT_TIME whose report (`eta`) and task (`task_eta`) ETAs are that far
    after it."""
    made = event("t1", kind, status, 40, "drafting")
    if eta is not None:
        made.estimated_completion_time.FromDatetime(EVENT_TIME + eta)
    if task_eta is not None:
        made.task.estimated_completion_time.FromDatetime(EVENT_TIME + task_eta)
    return made


def test_a_progress_line_shows_the_time_left_from_its_own_time() -> None:
    line = plain_line(running(eta=timedelta(minutes=3), task_eta=timedelta(minutes=3)))
    assert line == "42 2026-11-30T12:00:00Z PROGRESS t1 IN_PROGRESS 40% (~3 min left) drafting"
    # Replayed long after its ETA passed, the line still reads as it did live.
    assert plain_line(running(eta=timedelta(seconds=40))).endswith("40% (~40 s left) drafting")


def test_no_eta_shows_nothing_and_only_a_running_tasks_report_or_snapshot_shows_one() -> None:
    assert plain_line(running(eta=None)).endswith("IN_PROGRESS 40% drafting")
    assert estimated_completion(running(status=task_pb2.TASK_STATUS_DONE)) is None
    assert estimated_completion(running(status=task_pb2.TASK_STATUS_TODO)) is None
    # A replayed STARTED event's task carries the ETA of today, not of the event's time.
    started = running(task_pb2.TASK_EVENT_KIND_STARTED, eta=None, task_eta=timedelta(minutes=5))
    assert estimated_completion(started) is None
    snapshot = running(task_pb2.TASK_EVENT_KIND_SNAPSHOT, eta=None, task_eta=timedelta(hours=2, minutes=5))
    assert estimated_completion(snapshot) == EVENT_TIME + timedelta(hours=2, minutes=5)
    assert " 40% (~2 h 5 min left) drafting" in plain_line(snapshot)


def test_the_board_shows_the_time_left_beside_each_bar_counted_when_drawn() -> None:
    board = ProgressBoard()
    board.apply(event("alpha", task_pb2.TASK_EVENT_KIND_SNAPSHOT, task_pb2.TASK_STATUS_TODO))
    assert not board.ticking
    assert board.lines(EVENT_TIME)[0].endswith("]   0% TODO        ")  # no ETA column yet
    board.apply(running(eta=timedelta(minutes=3)))

    assert board.ticking
    at_report, later, past = (
        board.lines(EVENT_TIME + after)
        for after in (timedelta(0), timedelta(seconds=150), timedelta(minutes=4))
    )
    assert at_report[1].endswith("]  40% ~3 min left IN_PROGRESS drafting")
    assert at_report[0].endswith("]   0%             TODO        ")  # aligned under it
    assert later[1].endswith("]  40% ~30 s left IN_PROGRESS drafting")
    assert past[1].endswith("]  40% ~0 s left IN_PROGRESS drafting")

    board.apply(event("t1", task_pb2.TASK_EVENT_KIND_COMPLETED, task_pb2.TASK_STATUS_DONE, 40))
    assert not board.ticking
    assert board.lines(EVENT_TIME)[1].endswith("] 100% DONE        done")


def test_a_redraw_if_changed_draws_only_when_a_time_left_moved() -> None:
    board = ProgressBoard()
    board.apply(running(eta=timedelta(minutes=3)))
    assert "~3 min left" in board.redraw(EVENT_TIME)
    assert board.redraw(EVENT_TIME + timedelta(seconds=20), if_changed=True) == ""  # still ~3 min
    moved = board.redraw(EVENT_TIME + timedelta(seconds=40), if_changed=True)
    assert moved.startswith("\x1b[1F") and "~2 min left" in moved


def test_the_board_counts_down_between_events_on_its_clock(capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(output=TEXT, bars=True)
    report = running(eta=timedelta(0))
    report.estimated_completion_time.FromDatetime(datetime.now(UTC) + timedelta(seconds=30))
    with Printer(args, tick=0.05) as show:
        show(report)
        drawn = capsys.readouterr().out
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "\x1b[1F" not in drawn:
            time.sleep(0.05)
            drawn += capsys.readouterr().out
    capsys.readouterr()  # what the clock drew before it stopped
    time.sleep(0.2)

    first, *redrawn = drawn.split("\x1b[1F")  # redrawn in place, with no new event
    assert redrawn, drawn
    left = [int(re.findall(r"~(\d+) s left", part)[0]) for part in (first, redrawn[-1])]
    assert 28 <= left[1] < left[0] <= 30, drawn
    assert capsys.readouterr().out == ""  # the clock stopped with the printer
